/*
 * nodetalkd.h: what the daemon's processes share: the worker entry points,
 * the spawn helper and the exit codes the master acts on.
 */
#ifndef NODETALKD_H
#define NODETALKD_H

#include <sys/types.h>
#include <event2/event.h>

#include <msgpack.h>

#include "config.h"

struct chan;

/*
 * A worker exits with NT_EXIT_FATAL when restarting it cannot help (its
 * listener is unusable, say): the master then stops instead of looping.
 */
#define NT_EXIT_FATAL	3

/* What a worker is started with: the config and its end of the channel. */
struct worker_args {
	struct nt_config	*conf;
	int			 chan_fd;
	int			 listen_fd;	/* ws worker only, else -1 */
};

typedef void	(*worker_main_fn)(struct worker_args *);

/* proc.c */
void	proc_title_init(int, char *[]);
void	proc_title_set(const char *, ...) __attribute__((format(printf, 1, 2)));
pid_t	proc_spawn(const char *procname, worker_main_fn, struct worker_args *,
	    int *chan_fd);
int	proc_listen(const char *addr, int port, char **cause);
void	proc_describe_status(int status, char *buf, size_t len);
void	proc_drop_privileges(const char *user);
int	proc_detach(void);
void	proc_detach_done(int);
int	worker_frame_common(int, const msgpack_object *);
void	worker_chan_lost(struct chan *, const char *, void *);

/* notify.c: sd_notify(3), or nothing without libsystemd */
void	notify_ready(const char *, ...) __attribute__((format(printf, 1, 2)));
void	notify_reloading(void);
void	notify_stopping(void);

/* reload.c */
char	*reload_status_path(const char *pidfile);
void	reload_status_write(const char *, unsigned long, int, const char *);
int	reload_signal(const char *pidfile);

/* ws_worker.c */
void	ws_worker_main(struct worker_args *) __attribute__((noreturn));

/* peer_worker.c */
void	peer_worker_main(struct worker_args *) __attribute__((noreturn));

/* nats_worker.c */
void	nats_worker_main(struct worker_args *) __attribute__((noreturn));

#endif /* NODETALKD_H */
