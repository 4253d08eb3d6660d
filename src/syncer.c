/*
 * syncer.c: the master's sync thread.  An fdatasync(2) of the log takes
 * from a fraction of a millisecond to many on a busy disk; run in the
 * event loop it would stall every client, peer and worker while it runs.
 * The thread syncs one descriptor when asked and wakes the loop through a
 * pipe when the sync returns; the loop never waits for it, except at a
 * clean stop (syncer_wait).  One sync at a time: what is written while one
 * runs waits for the next, which the caller asks for when this one
 * returns (commit.c).
 *
 * The thread touches nothing but the descriptor and the fields below under
 * the mutex: no log lines, no allocation, no libevent.  It blocks every
 * signal, so that they all reach the loop's handlers.
 */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "master.h"

struct syncer {
	int		 fd;		/* the descriptor to sync */
	int		 wake[2];	/* thread -> loop */
	struct event	*ev;
	int		 busy;		/* asked, done not reported (loop) */
	syncer_done_fn	 done;
	void		*arg;

	pthread_t	 thread;
	int		 running;	/* thread exists (loop) */
	pthread_mutex_t	 mtx;		/* guards what follows */
	pthread_cond_t	 cond;
	int		 asked;		/* a sync to start */
	int		 finished;	/* a sync returned */
	int		 error;		/* its errno, or 0 */
	int64_t		 took_us;
	int		 quit;
};

static void	*syncer_thread(void *);
static void	 syncer_wake_cb(evutil_socket_t, short, void *);
static void	 syncer_report(struct syncer *);

struct syncer *
syncer_new(struct event_base *base, int fd, syncer_done_fn done, void *arg)
{
	struct syncer	*s;

	s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->done = done;
	s->arg = arg;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe2");
	if ((s->ev = event_new(base, s->wake[0], EV_READ | EV_PERSIST,
	    syncer_wake_cb, s)) == NULL || event_add(s->ev, NULL) == -1)
		fatalx("syncer: event_new");
	pthread_mutex_init(&s->mtx, NULL);
	pthread_cond_init(&s->cond, NULL);
	syncer_resume(s);
	return (s);
}

/* Wait for a sync under way, end the thread and free s. */
void
syncer_free(struct syncer *s)
{
	if (s == NULL)
		return;
	syncer_suspend(s);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mtx);
	event_free(s->ev);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s);
}

/*
 * End the thread, after the sync it was asked for, if any, has returned
 * (that sync is reported through the pipe as usual).  The master forks
 * its workers only while it has no thread: a child forked from a threaded
 * process inherits the other threads' locks in whatever state they were,
 * and a sanitizer's runtime in the child still counts the vanished
 * thread and hangs stopping it at exit.  Forks are rare (start, a worker
 * restart); a sync at most delays one.
 */
void
syncer_suspend(struct syncer *s)
{
	if (!s->running)
		return;
	pthread_mutex_lock(&s->mtx);
	s->quit = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
	pthread_join(s->thread, NULL);
	s->running = 0;
}

void
syncer_resume(struct syncer *s)
{
	sigset_t	 all, old;
	int		 e;

	if (s->running)
		return;
	s->quit = 0;
	/* The thread inherits the mask: every signal stays the loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = pthread_create(&s->thread, NULL, syncer_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		fatal("pthread_create");
	}
	s->running = 1;
}

/*
 * Start a sync, which covers everything written to the descriptor before
 * this call.  Only when none is under way (syncer_busy).
 */
void
syncer_start(struct syncer *s)
{
	if (s->busy)
		fatalx("syncer_start: a sync is under way");
	s->busy = 1;
	pthread_mutex_lock(&s->mtx);
	s->asked = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mtx);
}

int
syncer_busy(const struct syncer *s)
{
	return (s->busy);
}

/*
 * Block until the sync under way returns and report it (done runs here,
 * and may start the next one).  For a clean stop only.
 */
void
syncer_wait(struct syncer *s)
{
	if (!s->busy)
		return;
	pthread_mutex_lock(&s->mtx);
	while (!s->finished)
		pthread_cond_wait(&s->cond, &s->mtx);
	pthread_mutex_unlock(&s->mtx);
	syncer_report(s);
}

static void *
syncer_thread(void *arg)
{
	struct syncer	*s = arg;
	int64_t		 t;
	int		 rv, error;

	pthread_mutex_lock(&s->mtx);
	for (;;) {
		while (!s->asked && !s->quit)
			pthread_cond_wait(&s->cond, &s->mtx);
		if (!s->asked)
			break;		/* quit, nothing left to sync */
		s->asked = 0;
		pthread_mutex_unlock(&s->mtx);

		t = mono_us();
		do
			rv = fdatasync(s->fd);
		while (rv == -1 && errno == EINTR);
		error = rv == -1 ? errno : 0;

		pthread_mutex_lock(&s->mtx);
		s->error = error;
		s->took_us = mono_us() - t;
		s->finished = 1;
		pthread_cond_broadcast(&s->cond);
		/* A full pipe already holds a wake-up: nothing is lost. */
		(void)!write(s->wake[1], "", 1);
	}
	pthread_mutex_unlock(&s->mtx);
	return (NULL);
}

static void
syncer_wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct syncer	*s = arg;
	char		 buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		continue;
	syncer_report(s);
}

/* The sync returned: tell the caller (once, whoever notices first). */
static void
syncer_report(struct syncer *s)
{
	int64_t	 took;
	int	 error, finished;

	pthread_mutex_lock(&s->mtx);
	finished = s->finished;
	s->finished = 0;
	error = s->error;
	took = s->took_us;
	pthread_mutex_unlock(&s->mtx);
	if (!finished)
		return;
	s->busy = 0;
	s->done(error, took, s->arg);
}
