/*
 * log.h: the daemon's log.  Info lines keep the seed's "[A] " prefix so
 * operators can grep for the lines they know; warnings and debug lines also
 * name the process ("ws", "peer") that wrote them.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG
};

struct event_base;

void	log_init(const char *node_id, const char *procname);
void	log_batch_on(struct event_base *);
void	log_flush(void);
int	log_open(const char *target, char **cause);
int	log_reopen(char **cause);
void	log_forget(void);
const char *log_current(void);
void	log_setproc(const char *procname);
void	log_setnode(const char *node_id);
void	log_setlevel(int);
int	log_getlevel(void);
int	log_level_parse(const char *);
const char *log_level_name(int);
void	log_stderr(int, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/*
 * Rate-limited lines, for what a peer or a client can cause at will: at
 * most one line per cause every RATELIMIT_MS (ratelimit_pass(), msg.c),
 * and the next line of that cause says how many were held back.  cause
 * is any pointer that names the reason, typically a string constant.
 */
void	log_limit_warn(const void *cause, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_limit_warnx(const void *cause, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_limit_info(const void *cause, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif /* LOG_H */
