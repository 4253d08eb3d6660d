/*
 * ws_worker.h: the ws worker's own parts.  ws_worker.c runs the worker
 * (its connections, their WebSocket frames, the master's frames),
 * ws_http.c answers HTTP on the port, ws_admit.c decides who gets a
 * place (the limits) and keeps the listener alive when descriptors run
 * out.
 */
#ifndef WS_WORKER_H
#define WS_WORKER_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "nodetalk.h"
#include "ws.h"

/*
 * Connections past max_clients (HTTP requests and clients that have not
 * joined yet, within limits of their own) before the node answers 503.
 */
#define CONN_SLACK		16
/* Seconds a closed HTTP connection waits for the client's own close. */
#define LINGER_MS		2000

enum conn_kind {
	CONN_HTTP,		/* reading a request head */
	CONN_CLIENT,		/* WebSocket, not (yet) a peer */
	CONN_PEER		/* WebSocket, said hello as a configured node */
};

/* Which count a connection holds a place in (ws_admit.c). */
enum conn_pool {
	POOL_NONE,		/* refused: its answer goes out, then it goes */
	POOL_GENERAL,		/* clients and requests: max_clients + slack */
	POOL_RESERVE,		/* a peer's address when the rest is full */
	POOL_PEER,		/* said hello as a configured node */
	POOL_N
};

struct addr_slot;

struct conn {
	uint64_t		 id;
	enum conn_kind		 kind;
	enum conn_pool		 pool;
	struct bufferevent	*bev;		/* while HTTP */
	struct ws_conn		*ws;		/* once upgraded */
	struct addr_slot	*addr;		/* its address's count */
	int64_t			 since_ms;	/* the clock its timeouts run on */
	size_t			 allowance;	/* history queued when it joined */
	unsigned		 joined:1;	/* gets pushed messages */
	unsigned		 streaming:1;	/* its history (or a page) is coming */
	unsigned		 want_more:1;	/* ... next chunk once drained */
	unsigned		 cluster:1;	/* ... and "cluster" frames */
	unsigned		 closing:1;	/* close sent: send nothing */
	unsigned		 active:1;	/* joined, said hello or chatted */
	unsigned		 waiting:1;	/* for the master's /status */
	unsigned		 keep:1;	/* keep-alive after it */
	unsigned		 head_only:1;	/* ... and it was a HEAD */
	unsigned		 paused:1;	/* HTTP: output over the cap */
	unsigned		 lingering:1;	/* HTTP: answered, half-closed */
	char			 peer[NT_ID_MAX + 1];
	TAILQ_ENTRY(conn)	 entry;
	struct conn		*hnext;		/* W.hash chain */
};

/* A peer's address, as ws_admit.c compares them. */
struct addr_key {
	uint8_t		 len;		/* 4 or 16; 0: not IP */
	uint8_t		 a[16];
};

struct ws_worker {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct nt_config	*conf;
	struct chan		*ch;
	struct evconnlistener	*listener;
	struct event		*sweep_ev;
	struct event		*report_ev;	/* clients count to the master */
	struct event		*resume_ev;	/* the listener, after EMFILE */
	TAILQ_HEAD(, conn)	 conns;
	size_t			 nconns;
	struct conn		**hash;		/* by id: nhash buckets */
	size_t			 nhash;
	size_t			 npool[POOL_N];
	size_t			 nclients;	/* CONN_CLIENT, for /status */
	size_t			 njoined;
	int			 max_clients;	/* as the descriptors allow */
	uint64_t		 next_id;
	char			**peers;	/* configured node ids */
	int			*peer_seed;	/* ... that run the prototype */
	int64_t			*peer_ts;	/* last signed hello taken */
	size_t			 npeers;
	int			 seeds;		/* any seed peer configured */
	struct addr_key		*peer_addrs;	/* where peers dial from */
	size_t			 npeer_addrs;
	unsigned		 dns_gen;	/* lookups of older peers lose */
	void			*addr_root;	/* tsearch(3): addr_slot */
	int			 quitting;
	size_t			 clients_sent;
	char			*www_dir;
	struct nt_have		 errors;	/* error frames sent, by code */
	char			*cluster;	/* the latest "cluster" frame */
};

extern struct ws_worker	 W;

/* ws_worker.c */
int64_t		 ws_now(void);
void		 conn_free(struct conn *);
void		 conn_set_kind(struct conn *, enum conn_kind);
void		 conn_close(struct conn *, uint16_t, const char *);
void		 conn_upgraded(struct conn *);
void		 ask_status(struct conn *, const char *, int, int);

/* ws_http.c */
void		 http_start(struct conn *);
void		 http_refuse(struct conn *, int status, const char *why);
void		 http_status_answer(struct conn *, const char *body);
void		 http_sweep(struct conn *, int64_t now);
void		 www_set(const char *);

/* ws_admit.c */
enum conn_pool	 admit(const struct sockaddr *, struct addr_slot **,
		    const char **why);
void		 admit_leave(struct conn *);
void		 admit_as_peer(struct conn *);
void		 admit_forget(struct conn *);
void		 admit_peer_hosts(const char **hosts, size_t n);
void		 admit_clamp(void);
void		 admit_listener(void);
const char	*addr_str(const struct addr_slot *, char *, size_t);

#endif /* WS_WORKER_H */
