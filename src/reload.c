/*
 * reload.c: a reload that says how it went.  SIGHUP alone cannot answer
 * its sender, so the master writes the outcome of each reload to a small
 * file, and "nodetalkd -s reload" (systemd's ExecReload) sends the signal
 * and waits for the next line to appear there: exit 0 when the new
 * configuration runs, 1 when it was refused, with the master's reason.
 *
 * The file is PIDFILE.reload with -p PIDFILE, else
 * $RUNTIME_DIRECTORY/nodetalkd.reload under systemd (RuntimeDirectory=);
 * one line, "GENERATION ok|failed MESSAGE", generation 0 at start-up.
 */
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "log.h"

#define RELOAD_WAIT_MS	30000	/* a reload that takes longer has failed */
#define RELOAD_POLL_MS	50

/* Where the outcome goes, or NULL when there is no place for it. */
char *
reload_status_path(const char *pidfile)
{
	const char	*dir;
	char		*path;

	if (pidfile != NULL)
		xasprintf(&path, "%s.reload", pidfile);
	else if ((dir = getenv("RUNTIME_DIRECTORY")) != NULL && *dir == '/' &&
	    strchr(dir, ':') == NULL)
		xasprintf(&path, "%s/nodetalkd.reload", dir);
	else
		return (NULL);
	return (path);
}

/* Written whole and renamed into place: a reader never sees half. */
void
reload_status_write(const char *path, unsigned long gen, int ok,
    const char *msg)
{
	char	*tmp;
	FILE	*f;

	if (path == NULL)
		return;
	xasprintf(&tmp, "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		log_warn("%s", tmp);
		free(tmp);
		return;
	}
	fprintf(f, "%lu %s %.*s\n", gen, ok ? "ok" : "failed",
	    (int)strcspn(msg, "\n"), msg);
	if (fclose(f) != 0 || rename(tmp, path) == -1) {
		log_warn("%s", path);
		unlink(tmp);
	}
	free(tmp);
}

/* The line's generation and (a fresh copy of) the rest; -1 if unreadable. */
static int
reload_status_read(const char *path, unsigned long *gen, char **rest)
{
	char	 line[1024];
	char	*end;
	FILE	*f;

	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		return (-1);
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	errno = 0;
	*gen = strtoul(line, &end, 10);
	if (errno != 0 || end == line || *end != ' ')
		return (-1);
	*rest = xstrdup(end + 1);
	return (0);
}

static pid_t
reload_target(const char *pidfile, char **cause)
{
	const char	*s;
	char		 buf[32], *end;
	FILE		*f;
	long		 pid;

	if (pidfile != NULL) {
		if ((f = fopen(pidfile, "r")) == NULL) {
			xasprintf(cause, "%s: %s", pidfile, strerror(errno));
			return (-1);
		}
		s = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (s == NULL)
			buf[0] = '\0';
	} else if ((s = getenv("MAINPID")) != NULL)
		snprintf(buf, sizeof(buf), "%s", s);
	else {
		xasprintf(cause, "-s reload needs -p PIDFILE, or systemd's "
		    "MAINPID and RUNTIME_DIRECTORY (ExecReload=)");
		return (-1);
	}
	pid = strtol(buf, &end, 10);
	if (pid <= 1 || (*end != '\0' && *end != '\n')) {
		xasprintf(cause, "no process ID in %s", pidfile != NULL ?
		    pidfile : "MAINPID");
		return (-1);
	}
	return ((pid_t)pid);
}

static void
sleep_ms(int ms)
{
	struct timespec	 ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* -s reload: 0 when the master took the new configuration, else 1. */
int
reload_signal(const char *pidfile)
{
	unsigned long	 gen, now;
	char		*path, *rest, *cause = NULL;
	pid_t		 pid;
	int		 waited, ok;

	if ((pid = reload_target(pidfile, &cause)) == -1) {
		log_stderr(LOG_LVL_ERROR, "nodetalkd: %s", cause);
		free(cause);
		return (1);
	}
	path = reload_status_path(pidfile);
	if (path == NULL || reload_status_read(path, &gen, &rest) == -1) {
		log_stderr(LOG_LVL_ERROR, "nodetalkd: no reload status at "
		    "%s: is nodetalkd (pid %ld) running with the same -p?",
		    path != NULL ? path : "$RUNTIME_DIRECTORY", (long)pid);
		free(path);
		return (1);
	}
	free(rest);
	if (kill(pid, SIGHUP) == -1) {
		log_stderr(LOG_LVL_ERROR, "nodetalkd: pid %ld: %s",
		    (long)pid, strerror(errno));
		free(path);
		return (1);
	}
	for (waited = 0; waited < RELOAD_WAIT_MS; waited += RELOAD_POLL_MS) {
		sleep_ms(RELOAD_POLL_MS);
		if (reload_status_read(path, &now, &rest) == -1)
			continue;
		if (now != gen) {
			ok = strncmp(rest, "ok ", 3) == 0;
			log_stderr(ok ? LOG_LVL_INFO : LOG_LVL_ERROR,
			    "nodetalkd: %s", rest + (ok ? 3 : strcspn(rest,
			    " ") + (rest[strcspn(rest, " ")] != '\0')));
			free(rest);
			free(path);
			return (ok ? 0 : 1);
		}
		free(rest);
	}
	log_stderr(LOG_LVL_ERROR, "nodetalkd: pid %ld did not finish the "
	    "reload in %d s", (long)pid, RELOAD_WAIT_MS / 1000);
	free(path);
	return (1);
}
