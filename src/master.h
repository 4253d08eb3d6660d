/*
 * master.h: the master process's state, shared by its files: master.c
 * (start-up, workers, signals, reload), commit.c (storing a chat, group
 * commit, joins), replicate.c (peers: catch-up, gaps, anti-entropy,
 * recovery after a damaged log) and stream.c (history and catch-up sent
 * in chunks, as fast as the reader takes them).
 */
#ifndef MASTER_H
#define MASTER_H

#include <sys/types.h>
#include <time.h>

#include <event2/event.h>
#include <msgpack.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "status.h"

/*
 * How far one message may move a node's Lamport clock.  A client's
 * "after" may push it AFTER_MAX_JUMP past the node's clock; a replicated
 * message at most PEER_MAX_JUMP past ours, or it is refused like a gap and
 * asked for again later.  PEER_MAX_JUMP must be above AFTER_MAX_JUMP + 1:
 * see replicate.c for why catch-up in cluster order then always goes
 * through.
 */
#define AFTER_MAX_JUMP	1000000
#define PEER_MAX_JUMP	(2 * AFTER_MAX_JUMP)
struct engine;

struct worker {
	const char	*name;		/* "ws", "peer", "nats" */
	worker_main_fn	 main;
	pid_t		 pid;
	struct chan	*ch;
	int		 restarts;
	int		 backoff_ms;
	time_t		 started;
	int64_t		 started_ms;	/* wall clock, for /metrics */
	int		 hello;		/* channel handshake done */
	int		 planned;	/* quit on purpose: respawn at once */
	struct event	*respawn_ev;
};

/* A stored message waiting for its sync before anyone hears of it. */
struct pending {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	char		*packed;	/* msg_pack() form, owned */
	size_t		 plen;
	uint64_t	 conn;		/* the ws connection to ack */
	int		 ack;
	int		 fresh;		/* newly stored: push it */
	int		 replicate;	/* ours: send it to every peer */
	int64_t		 t_us;		/* when it was appended */
};

/* A client's chat as the ws worker relayed it (commit.c). */
struct client_chat {
	uint64_t	 conn;
	char		*from;
	char		*text;
	char		*cid;		/* may be NULL */
	uint64_t	 after;
	int64_t		 until_ms;	/* held: answered "recovering" then */
};

/* What the master knows of a peer: the public part and gap bookkeeping. */
struct peer_state {
	struct peer_view view;
	uint64_t	 gap_conn;
	int64_t		 gap_ms;
	uint64_t	 in_conn;	/* its link to us, in the ws worker */
	int		 in_known;
	struct nt_have	 sent;		/* what our link to it carried */
	struct nt_have	 told;		/* our have in our last sync to it */
	int64_t		 told_ms;
	uint64_t	 link;		/* our link to it (CH_LINK) */
};

struct master {
	struct event_base	*base;
	struct nt_config	*conf;
	const char		*conf_path;
	const char		*node_opt;
	struct store		*store;
	int			 listen_fd;
	const struct engine	*engine;	/* engine.h */
	struct worker		 ws;
	struct worker		 peer;		/* the engine's worker:
						   "peer" or "nats" */
	/*
	 * Group commit (commit.c): pend[] in append order; the first
	 * npend_syncing wait for the sync under way, up to npend_written
	 * for the next one, the rest for the write at the end of the turn.
	 */
	struct pending		*pend;
	size_t			 npend;
	size_t			 pendcap;
	size_t			 npend_written;
	size_t			 npend_syncing;
	off_t			 synced_to;	/* the log size the last sync
						   started at */
	struct event		*sync_ev;	/* the end of a turn */
	int			 sync_armed;
	struct syncer		*syncer;
	int			 stopping;
	int			 ready;
	struct event		*kill_ev;
	struct event		*antientropy_ev;
	int			 detached;
	int			 verbose;	/* -v: debug, whatever the file says */
	int			 relisten;	/* bind anew before the next ws */
	int			 recovering;	/* see replicate.c */
	const char		*recovery_why;	/* store_doubt() at start */
	char			 recovery_waits[512];	/* for the log */
	struct client_chat	*held;		/* chats waiting for recovery */
	size_t			 nheld;
	struct event		*hold_ev;
	char			*old_listen;
	int			 old_port;
	struct event		*sigs[5];
	int			 clients;
	struct peer_state	*peers;
	size_t			 npeers;
	struct stats		 stats;
	char			*reload_path;	/* outcomes for -s reload */
	unsigned long		 reload_gen;
	int			 reload_waits;	/* for relisten() to finish */
};

extern struct master	 M;

/* master.c */
void	send_cluster(void);

/* commit.c */
void	send_ack(uint64_t, const struct nt_msg *);
int	pending_has(const struct nt_msg *);
void	pending_add(const struct nt_msg *, int, uint64_t, int, int);
void	pending_unparked(const struct nt_msg *);
int	store_message(const struct nt_msg *);
int	origin_known(const char *);
const char *chat_invalid(const struct nt_msg *, const char *);
void	on_client_chat(const msgpack_object *);
void	on_seed_chat(const msgpack_object *);
void	on_join(const msgpack_object *);
void	on_page(const msgpack_object *);
void	commit_cb(evutil_socket_t, short, void *);
void	commit_schedule(void);
void	commit_synced(int, int64_t, void *);
void	commit_drain(void);
void	release_free(void);

/* syncer.c */
struct syncer;
typedef void	(*syncer_done_fn)(int, int64_t, void *);
struct syncer	*syncer_new(struct event_base *, int, syncer_done_fn, void *);
void		 syncer_free(struct syncer *);
void		 syncer_suspend(struct syncer *);
void		 syncer_resume(struct syncer *);
void		 syncer_start(struct syncer *);
int		 syncer_busy(const struct syncer *);
void		 syncer_wait(struct syncer *);
int	hold_add(struct client_chat *);
void	hold_expire_cb(evutil_socket_t, short, void *);
void	hold_release(void);
void	hold_drop(void);

/* replicate.c */
void	peers_rebuild(void);
void	on_peer_chat(const msgpack_object *);
void	recovery_start(void);
void	replicate_count_live(void);
void	recovery_check(void);
size_t	recovery_waiting(const char **, size_t);
void	on_peer_hello(const msgpack_object *);
void	on_sync_request(const msgpack_object *);
void	on_catchup_more(const msgpack_object *);
void	on_link(const msgpack_object *);
void	antientropy_cb(evutil_socket_t, short, void *);
void	catchup_done(const char *, const struct nt_have *);
void	replicate_queue(const char *, uint64_t, const char *, size_t);
void	replicate_flush(void);
void	replicate_free(void);

/* stream.c */
void	stream_drain(struct chan *, void *);
void	stream_join(uint64_t, const struct nt_have *, int, uint64_t);
void	stream_page(uint64_t, const char *, uint64_t, uint64_t, uint64_t);
void	stream_more(uint64_t, int);
uint64_t stream_catchup(const char *, uint64_t, const struct nt_have *);
int	stream_catchup_active(const char *);
void	stream_catchup_skip(const char *, const struct nt_have *);
void	stream_catchup_more(const char *, uint64_t);
void	stream_drop_peer(const char *);
void	stream_drop_worker(struct worker *);
size_t	stream_catchup_peers(const char **, size_t);

#endif /* MASTER_H */
