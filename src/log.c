/*
 * log.c: one logger for every process.  Info lines read exactly like the
 * seed's ("[A] Sent hello to B"), because operators grep for them; warnings,
 * errors and debug lines add the process name so a line from a worker is
 * told apart from one of the master's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char	 log_node[64];
static char	 log_proc[32] = "nodetalkd";
static int	 log_level = LOG_LVL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *node_id, const char *procname)
{
	log_setnode(node_id);
	log_setproc(procname);
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
 * One write(2) per line, so lines from the three processes sharing stderr
 * never interleave mid-line.
 */
static void
log_emit(int level, const char *tag, const char *fmt, va_list ap, int err)
{
	char	 line[4096];
	int	 n, len;

	if (level > log_level)
		return;
	if (level == LOG_LVL_INFO)
		len = snprintf(line, sizeof(line), "%s", log_node);
	else
		len = snprintf(line, sizeof(line), "%s%s: %s", log_node,
		    log_proc, tag);
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
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
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
