/*
 * log.c: one logger for every process.  Info lines read exactly like the
 * seed's ("[A] Sent hello to B"), because operators grep for them; warnings,
 * errors and debug lines add the process name so a line from a worker is
 * told apart from one of the master's.  On systemd's journal each line
 * starts with its syslog priority ("<3>"), which journald turns into the
 * entry's PRIORITY: journalctl -p err finds the fatal lines.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"

/*
 * At most this much waits for the end of a loop turn, and goes out in one
 * write(2): never more than PIPE_BUF, so that a batch on a pipe shared by
 * the three processes is not interleaved with another's.
 */
#define LOG_BATCH	4096

static char	 log_node[64];
static char	 log_proc[32] = "nodetalkd";
static int	 log_level = LOG_LVL_INFO;
static int	 log_fd = STDERR_FILENO;
static int	 log_to_syslog;
static int	 log_stamp;		/* a file: lines carry the time */
static int	 log_prio;		/* stderr is the journal: "<N>" */
static char	 log_target[4096];	/* what log_open() was given */
static char	 log_batch[LOG_BATCH];	/* info and debug lines, waiting */
static size_t	 log_batchlen;
static struct event *log_flush_ev;	/* NULL: every line at once */
static int	 log_flush_armed;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

static int	log_on_journal(void);

void
log_init(const char *node_id, const char *procname)
{
	log_setnode(node_id);
	log_setproc(procname);
	log_prio = log_on_journal();
}

void
log_setnode(const char *node_id)
{
	if (node_id == NULL)
		log_node[0] = '\0';
	else
		snprintf(log_node, sizeof(log_node), "[%s] ", node_id);
}

void
log_setproc(const char *procname)
{
	snprintf(log_proc, sizeof(log_proc), "%s", procname);
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return (log_level);
}

int
log_level_parse(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0)
			return ((int)i);
	return (-1);
}

const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_LVL_DEBUG)
		return ("?");
	return (log_names[level]);
}

/*
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * connected to stderr; when stderr is still that stream, the journal reads
 * our lines (sd-daemon(3)'s "<N>" prefixes apply).
 */
static int
log_on_journal(void)
{
	const char		*js = getenv("JOURNAL_STREAM");
	struct stat		 st;
	unsigned long long	 dev, ino;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return (0);
	return ((unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino);
}

/*
 * Where lines go: "" stderr, "syslog", or a file opened for appending
 * (again on SIGUSR1, after logrotate moved it).  On failure the old target
 * stays and *cause says why.
 */
int
log_open(const char *target_arg, char **cause)
{
	char	 target[sizeof(log_target)];
	int	 fd;

	/* target_arg may be log_current() itself, which is rewritten below. */
	snprintf(target, sizeof(target), "%s", target_arg);
	log_flush();
	if (target[0] != '\0' && strcmp(target, "syslog") != 0) {
		fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (fd == -1) {
			xasprintf(cause, "log file %s: %s", target,
			    strerror(errno));
			return (-1);
		}
	} else
		fd = STDERR_FILENO;
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	if (log_to_syslog)
		closelog();
	log_fd = fd;
	log_stamp = fd != STDERR_FILENO;
	log_prio = fd == STDERR_FILENO && log_on_journal();
	log_to_syslog = strcmp(target, "syslog") == 0;
	if (log_to_syslog)
		openlog("nodetalkd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	snprintf(log_target, sizeof(log_target), "%s", target);
	return (0);
}

/*
 * A forked worker has closed every descriptor it inherited, the log's
 * too: forget it without closing, or log_open() would close whatever
 * reused that number since (libevent's epoll descriptor, say).
 */
void
log_forget(void)
{
	log_fd = STDERR_FILENO;
	log_to_syslog = 0;
	/*
	 * The parent writes what it had waiting.  Its event is a timer in
	 * our copy of the parent's loop, which we never run: freeing it
	 * touches only that copy (a timer is in no epoll set).
	 */
	log_batchlen = 0;
	if (log_flush_ev != NULL)
		event_free(log_flush_ev);
	log_flush_ev = NULL;
	log_flush_armed = 0;
}

/* Write the lines that wait, in one write(2). */
void
log_flush(void)
{
	if (log_batchlen > 0)
		(void)!write(log_fd, log_batch, log_batchlen);
	log_batchlen = 0;
}

static void
log_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	log_flush_armed = 0;
	log_flush();
}

/*
 * From now on, info and debug lines wait for the end of the loop turn of
 * base and go out together: a node logs a line per chat it stores, and a
 * write(2) per line was a good part of its work.  Warnings and errors (and
 * everything when base is NULL) still go out at once, after what waits.
 */
void
log_batch_on(struct event_base *base)
{
	static int	 registered;

	log_flush();
	log_flush_armed = 0;
	if (log_flush_ev != NULL)
		event_free(log_flush_ev);
	log_flush_ev = NULL;
	if (base == NULL)
		return;
	if ((log_flush_ev = evtimer_new(base, log_flush_cb, NULL)) == NULL)
		fatalx("evtimer_new");
	if (!registered && atexit(log_flush) == 0)
		registered = 1;
}

/* Keep line for the end of the turn; 0, or -1 when it must go at once. */
static int
log_batch_add(const char *line, size_t len)
{
	struct timeval	 now = { 0, 0 };

	if (log_flush_ev == NULL || len > LOG_BATCH)
		return (-1);
	if (log_batchlen + len > LOG_BATCH)
		log_flush();
	memcpy(log_batch + log_batchlen, line, len);
	log_batchlen += len;
	/* A timer due now runs after the events of this turn. */
	if (!log_flush_armed) {
		evtimer_add(log_flush_ev, &now);
		log_flush_armed = 1;
	}
	return (0);
}


/* Open the same target again: SIGUSR1, or a freshly forked worker. */
int
log_reopen(char **cause)
{
	return (log_open(log_target, cause));
}

const char *
log_current(void)
{
	return (log_target);
}

static void
log_syslog(int level, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO,
	    LOG_DEBUG };

	syslog(prio[level], "%s", line);
}

/*
 * "2026-11-25T15:48:48.123Z ": a file has no journal to stamp it.  The
 * date and time are formatted once a second (a chat's line is written
 * thousands of times a second), the milliseconds each time.
 */
static int
log_timestamp(char *buf, size_t len)
{
	/* Per thread: libnats' threads log too (nats_link.c). */
	static __thread time_t	 sec = -1;
	static __thread char	 date[32];
	static __thread size_t	 dlen;
	struct timespec	 ts;
	struct tm	 tm;
	long		 ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != sec) {
		gmtime_r(&ts.tv_sec, &tm);
		dlen = strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
		sec = ts.tv_sec;
	}
	if (len < dlen + 7)
		return (0);
	memcpy(buf, date, dlen);
	ms = ts.tv_nsec / 1000000;
	buf[dlen] = '.';
	buf[dlen + 1] = (char)('0' + ms / 100);
	buf[dlen + 2] = (char)('0' + ms / 10 % 10);
	buf[dlen + 3] = (char)('0' + ms % 10);
	buf[dlen + 4] = 'Z';
	buf[dlen + 5] = ' ';
	return ((int)dlen + 6);
}

/*
 * Whole lines in each write(2), so lines from the three processes sharing
 * stderr never interleave mid-line: one line, or a batch (log_batch_on).
 */
static void
log_emit(int level, const char *tag, const char *fmt, va_list ap, int err)
{
	static const int prio[] = { 3, 4, 6, 7 };	/* LOG_ERR... */
	char	 line[4096];
	int	 n, len;

	if (level > log_level)
		return;
	len = log_stamp ? log_timestamp(line, sizeof(line)) : 0;
	if (log_prio && !log_to_syslog)
		len += snprintf(line + len, sizeof(line) - len, "<%d>",
		    prio[level]);
	if (level == LOG_LVL_INFO) {
		n = (int)strlen(log_node);	/* less than 64 */
		memcpy(line + len, log_node, n);
		len += n;
	} else
		len += snprintf(line + len, sizeof(line) - len, "%s%s: %s",
		    log_node, log_proc, tag);
	if (len < 0 || (size_t)len >= sizeof(line))
		len = 0;
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += n;
	if ((size_t)len >= sizeof(line) - 64)
		len = sizeof(line) - 64;
	if (err != 0)
		len += snprintf(line + len, sizeof(line) - len, ": %s",
		    strerror(err));
	if (log_to_syslog) {
		line[len] = '\0';
		log_syslog(level, line);
		return;
	}
	line[len++] = '\n';
	if (level >= LOG_LVL_INFO && log_batch_add(line, len) == 0)
		return;
	log_flush();
	(void)!write(log_fd, line, len);
}

static void __attribute__((format(printf, 3, 4)))
log_emit_str(int level, const char *tag, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(level, tag, fmt, ap, 0);
	va_end(ap);
}

/*
 * A message for whoever started us, on stderr as it is: no node or
 * process name, but the journal's priority when stderr is the journal.
 * Each line of it is one line of output.
 */
void
log_stderr(int level, const char *fmt, ...)
{
	static const int prio[] = { 3, 4, 6, 7 };
	va_list	 ap;
	char	*msg, *line, *save = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	for (line = strtok_r(msg, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (log_prio)
			fprintf(stderr, "<%d>", prio[level]);
		fprintf(stderr, "%s\n", line);
	}
	free(msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_LVL_WARN, "", fmt, ap, saved);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_LVL_WARN, "", fmt, ap, 0);
	va_end(ap);
	errno = saved;
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_LVL_INFO, "", fmt, ap, 0);
	va_end(ap);
	errno = saved;
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_LVL_DEBUG, "debug: ", fmt, ap, 0);
	va_end(ap);
	errno = saved;
}

/*
 * Rate limiting, by ratelimit_pass() (msg.c), with a small table of
 * causes: the least recently logged one makes room for a new cause.
 * Causes are few (one per call site and reason), so an entry is only ever
 * reused after it went quiet.
 */
#define LOG_LIMIT_CAUSES	32

static struct log_cause {
	const void	*cause;
	struct ratelimit rl;
} log_causes[LOG_LIMIT_CAUSES];

static struct log_cause *
log_cause_find(const void *cause)
{
	struct log_cause	*lc, *oldest = &log_causes[0];
	size_t			 i;

	for (i = 0; i < LOG_LIMIT_CAUSES; i++) {
		lc = &log_causes[i];
		if (lc->cause == cause)
			return (lc);
		if (lc->rl.last_ms < oldest->rl.last_ms)
			oldest = lc;
	}
	memset(oldest, 0, sizeof(*oldest));
	oldest->cause = cause;
	return (oldest);
}

static void
log_limited(int level, const char *tag, const void *cause, int err,
    const char *fmt, va_list ap)
{
	char	 msg[2048], note[RATELIMIT_NOTE];

	if (level > log_level ||
	    !ratelimit_pass(&log_cause_find(cause)->rl, mono_us() / 1000,
	    note, sizeof(note)))
		return;
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err != 0)
		log_emit_str(level, tag, "%s: %s%s", msg, strerror(err), note);
	else
		log_emit_str(level, tag, "%s%s", msg, note);
}

void
log_limit_warn(const void *cause, const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_limited(LOG_LVL_WARN, "", cause, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_limit_warnx(const void *cause, const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_limited(LOG_LVL_WARN, "", cause, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_limit_info(const void *cause, const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_limited(LOG_LVL_INFO, "", cause, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, "fatal: ", fmt, ap, saved);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_emit(LOG_LVL_ERROR, "fatal: ", fmt, ap, 0);
	va_end(ap);
	exit(1);
}
