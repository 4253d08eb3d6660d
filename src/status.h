/*
 * status.h: what an operator can see: the numbers the master keeps, and
 * the /status JSON and /metrics text built from them.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nodetalk.h"
#include "config.h"

struct store;

#define HIST_BUCKETS	10

/* A Prometheus histogram of durations, in seconds. */
struct hist {
	uint64_t	 counts[HIST_BUCKETS];	/* non-cumulative */
	uint64_t	 count;
	double		 sum;
};

struct peer_view {
	char		 id[NT_ID_MAX + 1];
	int		 up;		/* our outgoing link */
	int		 have_known;	/* it has sent a sync */
	struct nt_have	 have;		/* its last sync */
	int64_t		 last_sync_ms;
	/* Replication with this peer, by the link it came on or went to. */
	uint64_t	 replicated_in;	/* stored from it */
	uint64_t	 replicated_out; /* catch-up to it, and live messages
					   handed over while its link was up */
	uint64_t	 duplicates;	/* from it, already held */
	uint64_t	 gaps;		/* from it, refused for a gap */
};

/* engine = "nats": the gateway's link to the stream. */
struct nats_view {
	int		 known;		/* the nats worker has reported */
	int		 up;		/* connected to a NATS server */
	char		 server[128];	/* which one */
	int		 stream_ok;	/* the stream is there as configured */
	uint64_t	 stream_seq;	/* its last sequence, as last heard */
	int		 replicas;
	char		 leader[64];	/* the server leading the stream */
	uint64_t	 reconnects;
	char		 error[256];	/* the last error, "" when none */
	int64_t		 since_ms;	/* up (or down) since */
	uint64_t	 published;	/* chats JetStream acknowledged */
	uint64_t	 deduplicated;	/* ... as a message it already held */
	uint64_t	 failed;	/* chats answered "unavailable" */
	struct hist	 publish_lat;	/* a chat's way to JetStream's ack */
};

struct worker_view {
	const char	*name;
	pid_t		 pid;
	int		 restarts;
	int64_t		 started_ms;	/* wall clock, when it was forked */
};

/* What /proc says of a process; -1 where it could not be read. */
struct proc_view {
	double		 cpu_seconds;
	int64_t		 rss_bytes;
	int64_t		 vsize_bytes;
	int		 open_fds;
};

struct stats {
	uint64_t	 accepted;	/* chats from our clients, stored */
	uint64_t	 replicated_in;	/* stored from peers */
	uint64_t	 replicated_out;	/* handed to the peer worker */
	uint64_t	 seed_in;	/* hello-less seed chats stored */
	uint64_t	 duplicates;	/* replicated, already held */
	uint64_t	 gaps;		/* replicated, refused for a gap */
	uint64_t	 retries;	/* client retries answered from the store */
	uint64_t	 syncs;		/* fsyncs */
	struct hist	 fsync_lat;
	struct hist	 commit_lat;	/* append to release (ack) */
	struct hist	 chan_lat;	/* ws worker to master */
	int64_t		 started_ms;
};

struct status_ctx {
	const struct nt_config	*conf;
	const char		*engine;	/* "mesh", "nats" */
	const struct nats_view	*nats;		/* engine = "nats" only */
	const struct store	*store;
	const struct stats	*stats;
	const struct peer_view	*peers;
	size_t			 npeers;
	const struct worker_view *workers;
	size_t			 nworkers;
	int			 clients;
	int			 recovering;	/* see replicate.c */
	const char		*recovery_why;
	const char		**waiting;	/* peers recovery waits for */
	size_t			 nwaiting;
	/* Error frames the ws worker sent, by code ("too_long" -> 3). */
	const struct nt_have	*client_errors;
};

void	 hist_add(struct hist *, double seconds);
int	 proc_view_read(pid_t, struct proc_view *);
uint64_t peer_lag(const struct nt_have *mine, const struct nt_have *theirs);
/* Fresh strings; the caller frees them. */
char	*status_json(const struct status_ctx *);
char	*status_metrics(const struct status_ctx *);
char	*status_cluster(const struct status_ctx *);

#endif /* STATUS_H */
