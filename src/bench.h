/*
 * bench.h: nodetalk-bench, the load generator and meter for a nodetalk
 * cluster.  One file per role: bench.c (command line, shared set-up),
 * bench_conn.c (a lean WebSocket client: many connections, little CPU),
 * bench_json.c (the few fields it needs out of a node's frames, without a
 * parser), bench_load.c (pipelined senders), bench_watch.c (joined
 * clients that note every chat once), bench_proc.c (CPU and memory of the
 * node processes, from /proc), bench_status.c (a node's /status),
 * bench_report.c (numbers, percentiles, the table and --json) and one
 * file per measurement (bench_throughput.c, bench_latency.c,
 * bench_connections.c, bench_history.c).
 */
#ifndef BENCH_H
#define BENCH_H

#include <sys/types.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>

#include "nodetalk.h"

struct event_base;
struct cJSON;

#define BENCH_TAG_LEN		8	/* hex digits naming one run */

/* Exit codes: 0 measured and clean, 1 failed or unclean, 2 usage. */
#define BENCH_EXIT_OK		0
#define BENCH_EXIT_FAIL		1
#define BENCH_EXIT_USAGE	2

/* One node as the command line gave it. */
struct bench_node {
	char			*name;		/* host:port, for people */
	char			*host;
	int			 port;
	struct sockaddr_in	 sin;		/* its IPv4 address */
	pid_t			 master;	/* 0: not found here */
};

/* What the command line asked for; 0 or NULL: the command's default. */
struct bench_opts {
	const char		*command;
	struct bench_node	*nodes;
	size_t			 nnodes;
	struct sockaddr_in	*src;		/* source addresses */
	size_t			 nsrc;
	pid_t			*pids;		/* --pid, per node */
	size_t			 npids;
	int			 json;
	int			 no_ids;	/* chats without a client id */
	double			 timeout;	/* seconds, whole measurement */

	uint64_t		 count;		/* -n */
	int			 conns;		/* -c */
	int			 window;	/* -w */
	int			 size;		/* -s: text bytes */
	int			 receivers;	/* -R: per node */
	double			 rate;		/* -r: chats per second */
	double			 duration;	/* -d: seconds */
	double			 warmup;	/* seconds not counted */
	int			 repeat;	/* fan-outs, joins */
	int			 retry_ms;	/* reconnect delay */
	const char		*restart_cmd;
	int			 kill_ws;	/* signal for the ws worker */
	int			 existing;	/* history: as stored */
};

/* Shared state of one run. */
struct bench {
	struct bench_opts	 o;
	struct event_base	*base;
	char			 tag[BENCH_TAG_LEN + 1];
	struct bench_report	*report;
	uint64_t		 errors;	/* error frames from nodes */
	int			 failed;	/* something went wrong */
};

/* bench.c */
int64_t		 bench_now_us(void);
uint64_t	 bench_random(void);
void		 bench_fail(struct bench *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 bench_note(struct bench *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 bench_error_frame(struct bench *, const char *, size_t);
const struct sockaddr_in *bench_src(struct bench *, size_t);
int		 bench_nofile(size_t, char **);
int		 bench_wait(struct bench *, int (*)(void *), void *,
		    double seconds);
void		 bench_loop_for(struct bench *, double seconds);
double		 bench_left(struct bench *, int64_t start_us);
void		 bench_find_pids(struct bench *);
size_t		 bench_masters_found(struct bench *);
pid_t		 bench_spawn(const char *);
int		 bench_cmd_status(int, char *, size_t);

/* bench_conn.c: a client WebSocket connection. */
struct bench_conn;
struct bench_conn_cbs {
	void	(*on_open)(struct bench_conn *, void *);
	/* one text message, not NUL-terminated */
	void	(*on_text)(struct bench_conn *, const char *, size_t, void *);
	/* connect, handshake or connection failed or ended; why is valid
	   during the call */
	void	(*on_close)(struct bench_conn *, const char *why, void *);
	void	(*on_pong)(struct bench_conn *, void *);	/* or NULL */
};
struct bench_conn *bench_conn_new(struct event_base *,
		    const struct bench_node *, const struct sockaddr_in *src,
		    const struct bench_conn_cbs *, void *);
void		 bench_conn_free(struct bench_conn *);
void		 bench_conn_send(struct bench_conn *, const char *, size_t);
void		 bench_conn_flush(struct bench_conn *);
void		 bench_conn_ping(struct bench_conn *);
int		 bench_conn_open(const struct bench_conn *);
void		 bench_conn_set_arg(struct bench_conn *, void *);
void		 bench_conn_mask_seed(uint64_t);

/* bench_json.c: fields of the flat JSON objects a node sends. */
enum bench_frame {
	BENCH_F_OTHER = 0,
	BENCH_F_CHAT,
	BENCH_F_ACK,
	BENCH_F_JOINED,
	BENCH_F_ERROR
};
enum bench_frame bench_json_type(const char *, size_t);
int		 bench_json_str(const char *, size_t, const char *key,
		    const char **val, size_t *vlen);
int		 bench_json_uint(const char *, size_t, const char *key,
		    uint64_t *);
int		 bench_json_token(const char *, size_t, const char *key,
		    const char *tag, uint64_t *n);
size_t		 bench_json_chat(char *, size_t, const char *tag, uint64_t n,
		    int size, int with_id);

/* bench_proc.c: the node processes on this machine. */
struct bench_cpu {
	size_t		 n;
	struct bench_cpu_ent {
		pid_t		 pid;
		uint64_t	 start;		/* start time: pid reuse */
		uint64_t	 ticks;		/* utime + stime */
	}		*v;
};
struct bench_mem {
	uint64_t	 rss;		/* bytes */
	uint64_t	 anon;		/* bytes not backed by a file */
};
pid_t		 bench_proc_master(const struct sockaddr_in *, int port);
int		 bench_proc_cpu(const pid_t *, size_t, struct bench_cpu *);
double		 bench_proc_cpu_secs(const struct bench_cpu *before,
		    const struct bench_cpu *after);
void		 bench_cpu_clear(struct bench_cpu *);
int		 bench_proc_mem(pid_t, struct bench_mem *);
int		 bench_proc_tree_mem(pid_t, struct bench_mem *);
pid_t		 bench_proc_ppid(pid_t);
double		 bench_proc_self_cpu(void);
void		 bench_proc_machine(int *nproc, char *cpu, size_t,
		    char *kernel, size_t);

/* bench_status.c: GET /status. */
struct bench_status {
	uint64_t	 messages;
	int		 clients;
	pid_t		 ws_pid;
	struct nt_have	 have;
};
int		 bench_status_get(const struct bench_node *,
		    struct bench_status *, char **cause);
void		 bench_status_clear(struct bench_status *);

/* bench_report.c: what a run found, as a table or as JSON. */
struct bench_report;
struct bench_report *bench_report_new(const char *command);
void		 bench_report_free(struct bench_report *);
void		 bench_report_param(struct bench_report *, const char *key,
		    double);
void		 bench_report_param_str(struct bench_report *,
		    const char *key, const char *);
void		 bench_report_num(struct bench_report *, const char *key,
		    const char *label, const char *unit, int decimals,
		    double);
void		 bench_report_none(struct bench_report *, const char *key,
		    const char *label, const char *why);
void		 bench_report_note(struct bench_report *, const char *);
void		 bench_report_print(struct bench_report *, int json, int ok);
double		 bench_pct(double *, size_t, double p);
double		 bench_median(double *, size_t);
void		 bench_report_pcts(struct bench_report *, const char *key,
		    const char *label, double *, size_t);

/* bench_load.c: N chats into a node, K connections, W unacked on each. */
struct bench_load {
	struct bench		*b;
	uint64_t		 n, next, acked, bad;
	int			 window, size, ids;
	int64_t			*sent_us;	/* per token */
	double			*acklat;	/* seconds, per ack */
	struct load_conn	*conns;
	size_t			 nconns, nopen;
	int64_t			 t0, t_acked;
	int			 broken;
	char			*frame;
	size_t			 framecap;
};
struct bench_load *bench_load_new(struct bench *, const struct bench_node *,
		    size_t conns, int window, int size, uint64_t n,
		    size_t src_first);
void		 bench_load_start(struct bench_load *);
int		 bench_load_ready(void *);
int		 bench_load_done(void *);
void		 bench_load_report(struct bench_load *);
void		 bench_load_free(struct bench_load *);

/* bench_watch.c: clients joined on every node, noting each chat once. */
struct bench_watch {
	struct bench		*b;
	uint64_t		 n, dups, bad;
	struct watch_client	*clients;
	size_t			 nclients, njoined, complete;
	int64_t			 t_done;	/* the last one got all */
	int			 broken;
	void			(*on_chat)(size_t node, uint64_t, void *);
	void			*arg;
};
struct bench_watch *bench_watch_new(struct bench *, int per_node, uint64_t n,
		    size_t src_first, void (*)(size_t, uint64_t, void *),
		    void *);
int		 bench_watch_ready(void *);
int		 bench_watch_complete(void *);
uint64_t	 bench_watch_missing(const struct bench_watch *);
void		 bench_watch_report(struct bench_watch *, uint64_t more_bad);
void		 bench_watch_free(struct bench_watch *);

/* One function per measurement; each returns an exit code. */
int		 bench_throughput(struct bench *);
int		 bench_latency(struct bench *);
int		 bench_connections(struct bench *);
int		 bench_history(struct bench *);

#endif /* BENCH_H */
