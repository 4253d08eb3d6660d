/*
 * proc.c: starting workers and the listening socket.  The master binds the
 * node's port itself, so a port in use is reported at start-up with a clear
 * line, and the ws worker inherits the socket across fork.  Each process
 * names its role in ps (proc_title_set).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <pwd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "log.h"

extern char	**environ;

/* The bytes ps reads as our command line: argv's strings, then environ's. */
static char	*title_area;
static size_t	 title_len;

/*
 * As nginx does: the command line and the environment lie end to end in
 * memory and ps shows what is there, so once the environment has moved
 * to the heap that whole area can hold a title.  argv's strings are lost:
 * the caller keeps copies of what it needs.  The command name (comm) stays
 * "nodetalkd", so pidof and pgrep still find every process.
 */
void
proc_title_init(int argc, char *argv[])
{
	char	*end, **env;
	int	 i, n;

	if (argc == 0 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	for (i = 1; i < argc; i++)
		if (argv[i] == end)
			end = argv[i] + strlen(argv[i]) + 1;
	for (n = 0; environ[n] != NULL; n++)
		;
	env = xcalloc(n + 1, sizeof(*env));
	for (i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		env[i] = xstrdup(environ[i]);
	}
	environ = env;
	title_area = argv[0];
	title_len = end - argv[0];
}

void
proc_title_set(const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (title_area == NULL || title_len < 2)
		return;
	va_start(ap, fmt);
	n = vsnprintf(title_area, title_len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= title_len)
		n = title_len - 1;
	/* No stale argument may show after the title. */
	memset(title_area + n, '\0', title_len - n);
}

/*
 * The worker must not run the master's libevent signal handlers (they
 * would wake the master's loop through a shared socketpair): signals are
 * blocked across fork and the child resets them before unblocking.
 * SIGINT from a terminal hits the whole process group, so workers ignore
 * it and wait for the master's orderly CH_QUIT.
 */
static void
proc_child_signals(void)
{
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
}

/*
 * A worker keeps only its own channel and, for the ws worker, the listening
 * socket.  Anything else it inherited (the store's log and its lock, the
 * master's end of the other worker's channel, libevent's descriptors) would
 * keep those open after the master is gone, so a worker could never notice
 * it is orphaned, and a restarted master would find its data_dir in use.
 */
static void
proc_close_inherited(int keep1, int keep2)
{
	struct rlimit	 rl;
	int		 fd, max = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = (int)rl.rlim_cur;
	for (fd = STDERR_FILENO + 1; fd < max; fd++)
		if (fd != keep1 && fd != keep2)
			close(fd);
}

pid_t
proc_spawn(const char *procname, worker_main_fn fn, struct worker_args *wa,
    int *chan_fd)
{
	sigset_t	 all, old;
	char		*cause = NULL;
	int		 sv[2];
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		fatal("socketpair");
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	switch (pid = fork()) {
	case -1:
		fatal("fork");
	case 0:
		proc_close_inherited(sv[1], wa->listen_fd);
		log_forget();
		proc_child_signals();
		if (log_reopen(&cause) == -1)
			log_open("", &cause);	/* stderr, rather than nothing */
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_setproc(procname);
		proc_title_set("nodetalkd: %s worker [%s]", procname,
		    wa->conf->node_id);
		wa->chan_fd = sv[1];
		fn(wa);
		/* NOTREACHED */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	*chan_fd = sv[0];
	return (pid);
}

/*
 * The longest accept queue the kernel allows (it caps listen(2) at
 * net.core.somaxconn anyway): a burst of thousands of connects, such as
 * every client coming back after a restart, must not overflow a short
 * queue, or the SYNs dropped wait for TCP's retransmit, a second or more.
 */
static int
proc_backlog(void)
{
	FILE	*f;
	int	 n = 0;

	if ((f = fopen("/proc/sys/net/core/somaxconn", "r")) != NULL) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		fclose(f);
	}
	return (n > 0 ? n : SOMAXCONN);
}

int
proc_listen(const char *addr, int port, char **cause)
{
	struct addrinfo	 hints, *res;
	char		 service[16];
	int		 fd, on = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	if ((e = getaddrinfo(addr, service, &hints, &res)) != 0) {
		xasprintf(cause, "cannot listen on %s port %d: %s", addr,
		    port, gai_strerror(e));
		return (-1);
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK,
	    res->ai_protocol);
	/*
	 * TCP_NODELAY here is inherited by every accepted socket: frames are
	 * small and must not wait for Nagle, and no client pays a
	 * setsockopt(2) of its own.
	 */
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, proc_backlog()) == -1) {
		xasprintf(cause, "cannot listen on %s port %d: %s", addr,
		    port, strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return (fd);
}

/*
 * Started as root with a user configured: keep nothing of root once the
 * port is bound and the store is open.
 */
void
proc_drop_privileges(const char *user)
{
	struct passwd	*pw;

	if (user[0] == '\0' || geteuid() != 0)
		return;
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s: no such user", user);
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("cannot drop privileges to %s", user);
	log_info("running as %s (uid %ld)", user, (long)pw->pw_uid);
}

void
proc_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "stopped (status %d)", status);
}

/* CH_REOPEN: the master reopened its log; a worker follows suit. */
static void
worker_reopen_log(const msgpack_object *o)
{
	char	*target, *cause = NULL;

	if ((target = frame_get_str(o, "target")) == NULL)
		fatalx("bad CH_REOPEN frame from the master");
	if (log_open(target, &cause) == -1) {
		log_warnx("%s", cause);
		free(cause);
	}
	free(target);
}

/* Frames every worker handles alike; 1 when the frame was one of them. */
int
worker_frame_common(int type, const msgpack_object *o)
{
	uint64_t	 level;

	switch (type) {
	case CH_HELLO:
		return (1);
	case CH_LOGLEVEL:
		if (frame_get_u64(o, "level", &level) == 0)
			log_setlevel((int)level);
		return (1);
	case CH_REOPEN:
		worker_reopen_log(o);
		return (1);
	}
	return (0);
}

/*
 * The master is gone: there is nobody to store anything for.  Go at once:
 * a master killed with -9 is restarted, and its new workers need the
 * port.  exit(3)'s handlers are for clean stops (a sanitizer's exit-time
 * scan, in a child forked from the threaded master, took seconds).
 */
void
worker_chan_lost(struct chan *ch, const char *why, void *arg)
{
	log_warnx("lost the master (%s); exiting", why);
	log_flush();
	_exit(1);
}

/*
 * -d: leave the terminal, but let the parent exit only once the daemon
 * says it runs (its exit status then tells whether the start worked, and
 * the pid file exists).  Returns, in the daemon, the descriptor to hand
 * to proc_detach_done().
 */
int
proc_detach(void)
{
	char	 c;
	int	 p[2];
	pid_t	 pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch (pid = fork()) {
	case -1:
		fatal("fork");
	case 0:
		close(p[0]);
		if (setsid() == -1)
			fatal("setsid");
		return (p[1]);
	}
	close(p[1]);
	/* EOF without the byte: the daemon died first; it said why. */
	_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
}

void
proc_detach_done(int fd)
{
	int	 null;

	if ((null = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	if (null > STDERR_FILENO)
		close(null);
	if (write(fd, "1", 1) != 1)
		log_warn("telling the parent we run");
	close(fd);
}
