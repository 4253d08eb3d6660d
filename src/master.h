/*
 * master.h: the master process's state, shared by its three files:
 * master.c (start-up, workers, signals, reload), commit.c (storing a
 * chat, group commit, joins) and replicate.c (peers: catch-up, gaps,
 * anti-entropy, recovery after a damaged log).
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

struct engine;

struct worker {
	const char	*name;		/* "ws", "peer", "nats" */
	worker_main_fn	 main;
	pid_t		 pid;
	struct chan	*ch;
	int		 restarts;
	int		 backoff_ms;
	time_t		 started;
	int		 hello;		/* channel handshake done */
	int		 planned;	/* quit on purpose: respawn at once */
	struct event	*respawn_ev;
};

/* A stored message waiting for its sync before anyone hears of it. */
struct pending {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	uint64_t	 conn;		/* the ws connection to ack */
	int		 ack;
	int		 fresh;		/* newly stored: push it */
	int		 replicate;	/* ours: send it to every peer */
	int64_t		 t_us;		/* when it was appended */
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
	struct pending		*pend;
	size_t			 npend;
	struct event		*sync_ev;
	int			 sync_armed;
	int64_t			 last_sync_us;	/* end of the last fsync */
	int			 stopping;
	int			 ready;
	struct event		*kill_ev;
	struct event		*antientropy_ev;
	int			 detached;
	int			 verbose;	/* -v: debug, whatever the file says */
	int			 relisten;	/* bind anew before the next ws */
	int			 recovering;	/* lost its log's tail: see below */
	char			*old_listen;
	int			 old_port;
	struct event		*sigs[5];
	int			 clients;
	struct peer_state	*peers;
	size_t			 npeers;
	struct stats		 stats;
};

extern struct master	 M;

/* commit.c */
void	send_msg_frame(struct worker *, enum chan_type, int, uint64_t,
	    const char *, const struct nt_msg *);
void	pending_add(const struct nt_msg *, int, uint64_t, int, int);
int	pending_has(const struct nt_msg *);
int	store_message(const struct nt_msg *);
void	on_client_chat(const msgpack_object *);
void	on_seed_chat(const msgpack_object *);
void	on_join(const msgpack_object *);
void	commit_cb(evutil_socket_t, short, void *);
void	commit_schedule(void);
void	commit_release(void);

/* replicate.c */
void	peers_rebuild(void);
void	on_peer_chat(const msgpack_object *);
void	recovery_check(void);
void	on_peer_hello(const msgpack_object *);
void	on_sync_request(const msgpack_object *);
void	on_link(const msgpack_object *);
void	antientropy_cb(evutil_socket_t, short, void *);

#endif /* MASTER_H */
