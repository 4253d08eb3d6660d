/*
 * ws_worker.c: the node's only listener.  It speaks HTTP/1.1 on the port
 * (ws_http.c), upgrades clients and peers' inbound links to WebSocket,
 * checks every frame (wire.c) and relays what is valid to the master,
 * which owns the store.  It keeps no messages of its own, so a restart
 * loses nothing.  Who gets a place at all is ws_admit.c's to say; one
 * sweep timer runs every connection's timeouts and heartbeats.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "nodetalk.h"
#include "auth.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "wire.h"
#include "ws.h"
#include "ws_worker.h"

#define QUIT_GRACE_MS		1500
#define SWEEP_MS		500
/*
 * A peer's messages were accepted under its own limits, which may be
 * larger than ours: a link that proved itself (a signed hello, or a seed
 * peer, which cannot sign) gets a generous cap, so that one large message
 * cannot stall replication from it for good.  Anyone else who claims to
 * be a node gets max_frame_bytes like every client.
 */
#define PEER_MAX_FRAME		(16 * 1024 * 1024)
/*
 * A client's history comes in chunks (stream.c); the next is asked for
 * once less than this waits to be sent to it, so that a client that does
 * not read holds a chunk or two here and nothing more.
 */
#define HISTORY_LOW		(32 * 1024)
#define HISTORY_PAGE_DEFAULT	100	/* a history request's limit */
#define HISTORY_PAGE_MAX	1000
/* Free heap kept rather than returned to the kernel (see mallopt(3)). */
#define WS_TRIM_THRESHOLD	(16 * 1024 * 1024)

struct ws_worker	 W;

static void	conn_send(struct conn *, char *json);
static struct conn *frame_conn_req(const msgpack_object *);

/* Monotonic milliseconds: what every timeout here is measured in. */
int64_t
ws_now(void)
{
	return (mono_us() / 1000);
}

/*
 * Connections by id: every frame from the master names one, and a walk of
 * the list per frame would cost O(clients) each (a burst of 10,000 joins,
 * O(clients^2)).  Ids are handed out in sequence, so the low bits spread
 * them evenly; the table doubles to keep chains short.
 */
static struct conn **
conn_bucket(uint64_t id)
{
	return (&W.hash[id & (W.nhash - 1)]);
}

static void
conn_hash_grow(void)
{
	struct conn	**old = W.hash, *c, *next, **b;
	size_t		  i, n = W.nhash;

	W.nhash = n == 0 ? 1024 : n * 2;
	W.hash = xcalloc(W.nhash, sizeof(*W.hash));
	for (i = 0; i < n; i++) {
		for (c = old[i]; c != NULL; c = next) {
			next = c->hnext;
			b = conn_bucket(c->id);
			c->hnext = *b;
			*b = c;
		}
	}
	free(old);
}

static void
conn_hash_add(struct conn *c)
{
	struct conn	**b;

	if (W.nconns >= W.nhash)
		conn_hash_grow();
	b = conn_bucket(c->id);
	c->hnext = *b;
	*b = c;
}

static void
conn_hash_del(struct conn *c)
{
	struct conn	**b;

	for (b = conn_bucket(c->id); *b != NULL; b = &(*b)->hnext) {
		if (*b == c) {
			*b = c->hnext;
			return;
		}
	}
}

static struct conn *
conn_find(uint64_t id)
{
	struct conn	*c;

	if (W.nhash == 0)
		return (NULL);
	for (c = *conn_bucket(id); c != NULL; c = c->hnext)
		if (c->id == id)
			return (c);
	return (NULL);
}

/* Index in W.peers, or -1 when id is not another configured node. */
static int
peer_index(const char *id)
{
	size_t	 i;

	for (i = 0; i < W.npeers; i++)
		if (strcmp(W.peers[i], id) == 0)
			return ((int)i);
	return (-1);
}

/* A new set of peers; what is known of a kept one (its last hello) stays. */
static void
peers_set(char **ids, int *seed, size_t n)
{
	int64_t	*ts;
	size_t	 i;
	int	 j;

	ts = xcalloc(n, sizeof(*ts));
	for (i = 0; i < n; i++)
		if ((j = peer_index(ids[i])) != -1)
			ts[i] = W.peer_ts[j];
	for (i = 0; i < W.npeers; i++)
		free(W.peers[i]);
	free(W.peers);
	free(W.peer_seed);
	free(W.peer_ts);
	W.peers = ids;
	W.peer_seed = seed;
	W.peer_ts = ts;
	W.npeers = n;
	W.seeds = 0;
	for (i = 0; i < n; i++)
		W.seeds |= seed[i];
}

static void
peers_from_config(void)
{
	const char	**hosts;
	char		**ids;
	int		 *seed;
	size_t		  i, n = 0;

	/* Gateways to a NATS stream have no peers: nobody may replicate. */
	ids = xcalloc(W.conf->nnodes, sizeof(*ids));
	seed = xcalloc(W.conf->nnodes, sizeof(*seed));
	hosts = xcalloc(W.conf->nnodes, sizeof(*hosts));
	for (i = 0; i < W.conf->nnodes; i++) {
		if (&W.conf->nodes[i] == W.conf->self ||
		    W.conf->engine != ENGINE_MESH)
			continue;
		seed[n] = W.conf->nodes[i].seed;
		hosts[n] = W.conf->nodes[i].host;
		ids[n++] = xstrdup(W.conf->nodes[i].id);
	}
	peers_set(ids, seed, n);
	admit_peer_hosts(hosts, n);
	free(hosts);
}

/* Tell the master how many WebSocket clients we serve (for /status). */
static void
clients_report_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct chan_frame	 f;

	if (W.nclients == W.clients_sent)
		return;
	W.clients_sent = W.nclients;
	frame_begin(&f, CH_CLIENTS, 1);
	frame_u64(&f, "n", (uint64_t)W.nclients);
	chan_send(W.ch, &f);
}

/* Once a loop turn at most: a burst of connects is one frame, not many. */
static void
clients_report(void)
{
	if (W.nclients != W.clients_sent && W.report_ev != NULL)
		event_active(W.report_ev, EV_TIMEOUT, 1);
}

static void
quit_check(void)
{
	if (W.quitting && TAILQ_EMPTY(&W.conns))
		event_base_loopbreak(W.base);
}

void
conn_set_kind(struct conn *c, enum conn_kind kind)
{
	W.nclients -= (c->kind == CONN_CLIENT);
	c->kind = kind;
	W.nclients += (c->kind == CONN_CLIENT);
	clients_report();
}

/* The master sends the next chunk of c's history, or stops. */
static void
history_more(struct conn *c, int stop)
{
	struct chan_frame	 f;

	c->want_more = 0;
	frame_begin(&f, CH_HISTORY_MORE, 2);
	frame_u64(&f, "conn", c->id);
	frame_bool(&f, "stop", stop);
	chan_send(W.ch, &f);
}

/*
 * max_clients counts clients that joined and those whose join is under
 * way (their history is coming); peers never join.
 */
static void
conn_set_join(struct conn *c, int joined, int streaming)
{
	W.njoined -= (c->joined || c->streaming);
	c->joined = joined;
	c->streaming = streaming;
	W.njoined += (c->joined || c->streaming);
}

void
conn_free(struct conn *c)
{
	if (c->streaming)
		history_more(c, 1);
	TAILQ_REMOVE(&W.conns, c, entry);
	conn_hash_del(c);
	W.nconns--;
	admit_forget(c);
	W.njoined -= (c->joined || c->streaming);
	W.nclients -= (c->kind == CONN_CLIENT);
	if (c->ws != NULL)
		ws_conn_free(c->ws);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	free(c);
	clients_report();
	quit_check();
}

/* Takes ownership of json. */
static void
conn_send(struct conn *c, char *json)
{
	if (c->ws != NULL && !c->closing)
		ws_conn_send_text(c->ws, json, strlen(json));
	free(json);
}

void
conn_close(struct conn *c, uint16_t code, const char *reason)
{
	if (c->closing || c->ws == NULL)
		return;
	c->closing = 1;
	ws_conn_close(c->ws, code, reason);
}

static void
send_error(struct conn *c, const char *code, const char *message)
{
	log_debug("conn %llu: error %s: %s", (unsigned long long)c->id, code,
	    message);
	have_set(&W.errors, code, have_get(&W.errors, code) + 1);
	conn_send(c, wire_error(code, message));
}

/* Frames from WebSocket connections. */

static void
relay_chat(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_CHAT, w->msg.client_id != NULL ? 6 : 5);
	frame_u64(&f, "conn", c->id);
	frame_i64(&f, "t_us", mono_us());
	frame_u64(&f, "after", w->after);
	frame_str(&f, "from", w->msg.from);
	frame_str(&f, "text", w->msg.text);
	if (w->msg.client_id != NULL)
		frame_str(&f, "cid", w->msg.client_id);
	chan_queue(W.ch, &f);	/* with the others of this turn */
}

static void
relay_seed_chat(struct wire_in *w)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_SEED_CHAT, 2);
	frame_str(&f, "from", w->msg.from);
	frame_str(&f, "text", w->msg.text);
	chan_send(W.ch, &f);
}

/*
 * Only a configured node's link may replicate.  The exception is the
 * Python prototype, which sends each replicated chat on a fresh,
 * hello-less connection: accepted where a seed peer is configured.
 */
/*
 * A replicated chat follows our max_message_bytes like a client's: a
 * longer one was accepted by a node with a larger limit, and is refused
 * here (nodes must agree on limits).  Said once in a while in the log,
 * with the peer, the message and the limit, and to the sender.
 */
static int
replicated_too_long(struct conn *c, struct wire_in *w)
{
	static struct ratelimit	 rl_peer, rl_seed;
	size_t			 len = strlen(w->msg.text);
	char			 note[RATELIMIT_NOTE];

	if (len <= (size_t)W.conf->max_message_bytes)
		return (0);
	if (w->has_identity && ratelimit_pass(&rl_peer, now_ms(), note,
	    sizeof(note)))
		log_warnx("refusing a replicated chat %s-%llu from peer %s: "
		    "its text of %zu bytes is over max_message_bytes (%d); "
		    "nodes must agree on limits%s", w->msg.origin,
		    (unsigned long long)w->msg.seq, c->peer, len,
		    W.conf->max_message_bytes, note);
	else if (!w->has_identity && ratelimit_pass(&rl_seed, now_ms(), note,
	    sizeof(note)))
		log_warnx("refusing a replicated chat from a seed node: its "
		    "text of %zu bytes is over max_message_bytes (%d); nodes "
		    "must agree on limits%s", len, W.conf->max_message_bytes,
		    note);
	send_error(c, "too_long", "'text' is over this node's "
	    "max_message_bytes");
	return (1);
}

static void
on_replicated(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	if (c->kind == CONN_PEER && w->has_identity) {
		if (replicated_too_long(c, w))
			return;
		frame_begin(&f, CH_PEER_CHAT, 3);
		frame_u64(&f, "conn", c->id);
		frame_str(&f, "peer", c->peer);
		frame_msg(&f, "msg", &w->msg);
		chan_queue(W.ch, &f);	/* with the others of this turn */
	} else if (W.seeds && W.conf->secret[0] == '\0' &&
	    !w->has_identity) {
		if (!replicated_too_long(c, w))
			relay_seed_chat(w);
	} else if (c->kind == CONN_PEER)
		send_error(c, "missing_field",
		    "a replicated chat needs origin and seq");
	else
		send_error(c, "not_peer",
		    "only a configured node may send replicated messages");
}

/*
 * A join or a history request sends history: one at a time per connection
 * (a client cannot make us queue many), and a reader that has not joined
 * counts as a client while it reads.  1 when c was refused.
 */
static int
history_refused(struct conn *c)
{
	if (c->streaming) {
		send_error(c, "busy", "a join or a history request is still "
		    "sending on this connection");
		return (1);
	}
	if (!c->joined && W.njoined >= (size_t)W.max_clients) {
		send_error(c, "too_many_clients", "max_clients reached; try "
		    "again later");
		conn_close(c, 1013, "try again later");
		return (1);
	}
	return (0);
}

static void
on_join(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	if (history_refused(c))
		return;
	/* Pushes wait for the end of the history, which carries them. */
	conn_set_join(c, 0, 1);
	c->cluster = w->want_cluster;
	frame_begin(&f, CH_JOIN, w->has_since ? 2 : 1);
	frame_u64(&f, "conn", c->id);
	if (w->has_since)
		frame_have(&f, "since", &w->have);
	chan_send(W.ch, &f);
}

/* A page of older history, before a message; pushes go on meanwhile. */
static void
on_history_req(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;
	uint64_t		 limit = w->limit;

	if (history_refused(c))
		return;
	if (limit == 0)
		limit = HISTORY_PAGE_DEFAULT;
	if (limit > HISTORY_PAGE_MAX)
		limit = HISTORY_PAGE_MAX;
	conn_set_join(c, c->joined, 1);
	frame_begin(&f, CH_PAGE, w->has_before ? 5 : 2);
	frame_u64(&f, "conn", c->id);
	frame_u64(&f, "limit", limit);
	if (w->has_before) {
		frame_str(&f, "origin", w->msg.origin);
		frame_u64(&f, "seq", w->msg.seq);
		frame_u64(&f, "lamport", w->msg.lamport);
	}
	chan_send(W.ch, &f);
}

/* A hello that does not make a peer: one log line per cause, then close. */
static void
hello_refuse(struct conn *c, const char *from, const char *code,
    const char *why, uint16_t close_code, const char *close_reason)
{
	char	 addr[64];

	log_limit_warnx(why, "refused hello from %s: %s (address %s)", from,
	    why, addr_str(c->addr, addr, sizeof(addr)));
	send_error(c, code, why);
	conn_close(c, close_code, close_reason);
}

/* With a cluster secret, only a signed, fresh hello for us makes a peer. */
static int
hello_auth(struct conn *c, struct wire_in *w, int i)
{
	const char	*why;

	if (auth_hello_check(W.conf->secret, w->from, w->to != NULL ? w->to :
	    "", (int64_t)w->hello_ts, w->auth, now_ms(), W.peer_ts[i],
	    &why) == -1) {
		hello_refuse(c, w->from, "auth_failed", why, 1008,
		    "authentication failed");
		return (-1);
	}
	if (w->to == NULL || strcmp(w->to, W.conf->node_id) != 0) {
		hello_refuse(c, w->from, "auth_failed",
		    "hello for another node", 1008, "authentication failed");
		return (-1);
	}
	W.peer_ts[i] = (int64_t)w->hello_ts;
	return (0);
}

static void
on_hello(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;
	int			 i;

	if (c->kind == CONN_PEER) {
		send_error(c, "bad_type", "this link said hello already");
		return;
	}
	if ((i = peer_index(w->from)) == -1) {
		hello_refuse(c, w->from, "unknown_peer",
		    strcmp(w->from, W.conf->node_id) == 0 ?
		    "a hello with this node's own id" :
		    "hello from a node that is not configured here", 1008,
		    "not a configured node");
		return;
	}
	if (W.conf->secret[0] != '\0' && hello_auth(c, w, i) == -1)
		return;
	admit_as_peer(c);
	c->active = 1;
	conn_set_kind(c, CONN_PEER);
	snprintf(c->peer, sizeof(c->peer), "%s", w->from);
	if (W.conf->secret[0] != '\0' || W.peer_seed[i])
		ws_conn_set_max(c->ws, PEER_MAX_FRAME);
	frame_begin(&f, CH_PEER_HELLO, 2);
	frame_u64(&f, "conn", c->id);
	frame_str(&f, "peer", c->peer);
	chan_send(W.ch, &f);
}

/* Say the limit, so that the sender knows what would be taken. */
static void
text_too_long(struct conn *c, size_t len)
{
	char	*why;

	xasprintf(&why, "'text' is %zu bytes; this node takes at most %d "
	    "(max_message_bytes)", len, W.conf->max_message_bytes);
	send_error(c, "too_long", why);
	free(why);
}

static void
on_text(struct ws_conn *ws, const char *buf, size_t len, void *arg)
{
	struct conn		*c = arg;
	struct wire_in		 w;
	struct wire_limits	 lim;
	const char		*code;
	char			*why;

	if (c->closing)
		return;
	/* The text cap depends on the path: see on_replicated, relay_chat. */
	lim.max_text = 0;
	lim.max_origins = wire_origin_cap(W.npeers + 1);
	if (wire_parse(buf, len, &lim, &w, &code, &why) == -1) {
		send_error(c, code, why);
		free(why);
		return;
	}
	/* A place kept for a peer's link: a hello, or it goes. */
	if (c->pool == POOL_RESERVE && w.type != WIRE_HELLO) {
		send_error(c, "too_many_clients", "no room for more clients; "
		    "try again later");
		conn_close(c, 1013, "try again later");
		wire_in_clear(&w);
		return;
	}
	switch (w.type) {
	case WIRE_CHAT:
		c->active = 1;
		if (w.replicated)
			on_replicated(c, &w);
		else if (strlen(w.msg.text) > (size_t)W.conf->max_message_bytes)
			text_too_long(c, strlen(w.msg.text));
		else
			relay_chat(c, &w);
		break;
	case WIRE_JOIN:
		c->active = 1;
		on_join(c, &w);
		break;
	case WIRE_HISTORY:
		on_history_req(c, &w);
		break;
	case WIRE_HELLO:
		on_hello(c, &w);
		break;
	default:
		send_error(c, "bad_type", "this type is not accepted here");
		break;
	}
	wire_in_clear(&w);
}

static void
on_close(struct ws_conn *ws, int code, void *arg)
{
	struct conn	*c = arg;

	if (c->kind == CONN_PEER)
		log_info("Peer %s disconnected (code %d)", c->peer, code);
	conn_free(c);
}

/* Its output drained: the next chunk of history, if one is wanted. */
static void
on_drain(struct ws_conn *ws, void *arg)
{
	struct conn	*c = arg;

	if (c->want_more && c->streaming && !c->closing)
		history_more(c, 0);
}

static const struct ws_conn_cbs conn_cbs = { on_text, on_close, on_drain };

/* The handshake went out: the connection speaks WebSocket from now on. */
void
conn_upgraded(struct conn *c)
{
	c->since_ms = ws_now();
	c->ws = ws_conn_new(c->bev, 1, W.conf->max_frame_bytes, &conn_cbs, c);
	c->bev = NULL;
	conn_set_kind(c, CONN_CLIENT);
}

/* /status and /metrics come from the master. */
void
ask_status(struct conn *c, const char *what, int head, int keep)
{
	struct chan_frame	 f;

	c->waiting = 1;
	c->keep = keep;
	c->head_only = head;
	frame_begin(&f, CH_STATUS, 3);
	frame_u64(&f, "req", c->id);
	frame_str(&f, "what", what);
	frame_have(&f, "errors", &W.errors);
	chan_send(W.ch, &f);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct conn	*c;
	const char	*why = NULL;
	char		 addr[64];

	c = xcalloc(1, sizeof(*c));
	c->id = ++W.next_id;
	c->kind = CONN_HTTP;
	c->since_ms = ws_now();
	c->bev = bufferevent_socket_new(W.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new");
	c->pool = admit(sa, &c->addr, &why);
	W.npool[c->pool]++;
	conn_hash_add(c);
	TAILQ_INSERT_TAIL(&W.conns, c, entry);
	W.nconns++;
	if (c->pool != POOL_NONE) {
		http_start(c);
		return;
	}
	log_limit_warnx(why, "refusing a connection from %s: %s",
	    addr_str(c->addr, addr, sizeof(addr)), why);
	http_refuse(c, 503, why);
}

/* Timeouts and heartbeats, every connection's, from one timer. */

/* A WebSocket connection: idle, a reserved place unused, or dead. */
static void
sweep_ws(struct conn *c, int64_t now)
{
	int64_t		 age = now - c->since_ms;
	int		 interval;

	if (c->closing)
		return;
	if (c->pool == POOL_RESERVE && age >= W.conf->http_timeout_ms) {
		conn_close(c, 1013, "try again later");
		return;
	}
	if (!c->active && age >= W.conf->join_timeout_ms) {
		log_debug("conn %llu: no join, hello or chat in %d ms; closing",
		    (unsigned long long)c->id, W.conf->join_timeout_ms);
		conn_close(c, 1008, "idle: no join, hello or chat");
		return;
	}
	interval = c->kind == CONN_PEER ? W.conf->peer_ping_interval_ms :
	    W.conf->ping_interval_ms;
	if (ws_conn_heartbeat(c->ws, now, interval,
	    W.conf->ping_timeout_ms) == 0)
		return;
	if (c->kind == CONN_PEER)
		log_info("Peer %s did not answer a ping in %d ms; closing its "
		    "link", c->peer, W.conf->ping_timeout_ms);
	else
		log_debug("conn %llu: no answer to a ping in %d ms; closing",
		    (unsigned long long)c->id, W.conf->ping_timeout_ms);
	c->closing = 1;
	ws_conn_abort(c->ws, 1011, "ping timeout");
}

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct conn	*c, *next;
	int64_t		 now = ws_now();

	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (c->ws != NULL)
			sweep_ws(c, now);
		else
			http_sweep(c, now);
	}
}

/* Frames from the master. */

static struct conn *
frame_conn_req(const msgpack_object *o)
{
	uint64_t	 id;

	if (frame_get_u64(o, "req", &id) == -1)
		return (NULL);
	return (conn_find(id));
}

static struct conn *
frame_conn(const msgpack_object *o)
{
	uint64_t	 id;

	if (frame_get_u64(o, "conn", &id) == -1)
		return (NULL);
	return (conn_find(id));
}

/*
 * Whether a joined client fell too far behind: more than
 * max_client_backlog_bytes wait for it, not counting what was still
 * queued of its history when it joined (that drains first).
 */
static int
conn_too_slow(struct conn *c)
{
	size_t	 pending = ws_conn_pending(c->ws);
	size_t	 cap = (size_t)W.conf->max_client_backlog_bytes;

	if (pending <= cap)
		c->allowance = 0;
	return (pending > cap + c->allowance);
}

/* A newly stored message to every joined client. */
static void
push_msg(const struct nt_msg *m)
{
	struct conn	*c, *next;
	struct ws_msg	*wm;
	char		*json, addr[64];

	/* Encoded and framed once; every client's output refers to it. */
	json = wire_chat(m, 0);
	wm = ws_msg_text(json, strlen(json));
	free(json);
	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (!c->joined || c->closing)
			continue;
		if (conn_too_slow(c)) {
			log_limit_warnx("too slow", "a client at %s reads "
			    "too slowly (over %d bytes waiting); closing it",
			    addr_str(c->addr, addr, sizeof(addr)),
			    W.conf->max_client_backlog_bytes);
			conn_close(c, 1008, "too slow");
			continue;
		}
		ws_conn_send_msg(c->ws, wm);
	}
	ws_msg_unref(wm);
}

/*
 * What one sync made durable, in order: each message acknowledged to the
 * client that sent it, if any, and pushed to joined clients, if new.
 */
static void
on_release(const msgpack_object *o)
{
	const msgpack_object	*msgs, *acks, *push;
	struct conn		*c;
	struct nt_msg		 m;
	uint32_t		 i, n;

	msgs = frame_get_array(o, "msgs");
	acks = frame_get_array(o, "acks");
	push = frame_get_array(o, "push");
	if (msgs == NULL || acks == NULL || push == NULL ||
	    acks->via.array.size != msgs->via.array.size ||
	    push->via.array.size != msgs->via.array.size)
		fatalx("bad CH_RELEASE frame from the master");
	n = msgs->via.array.size;
	for (i = 0; i < n; i++) {
		if (acks->via.array.ptr[i].type !=
		    MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    push->via.array.ptr[i].type != MSGPACK_OBJECT_BOOLEAN ||
		    msg_unpack(&msgs->via.array.ptr[i], &m) == -1)
			fatalx("bad message in CH_RELEASE from the master");
		if (acks->via.array.ptr[i].via.u64 != 0 &&
		    (c = conn_find(acks->via.array.ptr[i].via.u64)) != NULL)
			conn_send(c, wire_ack(&m));
		if (push->via.array.ptr[i].via.boolean)
			push_msg(&m);
		msg_clear(&m);
	}
}

static void
on_ack(const msgpack_object *o)
{
	struct conn	*c;
	struct nt_msg	 m;

	if (frame_get_msg(o, "msg", &m) == -1)
		fatalx("bad CH_ACK frame from the master");
	if ((c = frame_conn(o)) != NULL)
		conn_send(c, wire_ack(&m));
	msg_clear(&m);
}

/* A chunk of a client's history; then ask for the next when it drained. */
static void
on_history(const msgpack_object *o)
{
	const msgpack_object	*a;
	struct conn		*c;
	struct nt_msg		 m;
	uint32_t		 i;

	if ((a = frame_get_array(o, "msgs")) == NULL)
		fatalx("bad CH_HISTORY frame from the master");
	if ((c = frame_conn(o)) == NULL || !c->streaming)
		return;		/* gone: the master heard "stop" */
	for (i = 0; i < a->via.array.size; i++) {
		if (msg_unpack(&a->via.array.ptr[i], &m) == -1)
			fatalx("bad message in CH_HISTORY from the master");
		conn_send(c, wire_chat(&m, 0));
		msg_clear(&m);
	}
	if (c->closing || c->ws == NULL)
		return;		/* conn_free() stops the stream */
	if (ws_conn_pending(c->ws) < HISTORY_LOW)
		history_more(c, 0);
	else
		c->want_more = 1;
}

static void
on_joined(const msgpack_object *o)
{
	struct conn	*c;
	uint64_t	 count = 0;
	int		 recovered = 1, older = 0;

	if ((c = frame_conn(o)) == NULL)
		return;
	frame_get_u64(o, "count", &count);
	frame_get_bool(o, "recovered", &recovered);
	frame_get_bool(o, "older", &older);
	conn_set_join(c, 1, 0);
	c->want_more = 0;
	conn_send(c, wire_joined(W.conf->node_id, count, recovered, older));
	if (c->cluster && W.cluster != NULL)
		conn_send(c, xstrdup(W.cluster));
	if (c->ws != NULL)
		c->allowance = ws_conn_pending(c->ws);
}

/* A page's last chunk went out. */
static void
on_page_end(const msgpack_object *o)
{
	struct conn	*c;
	uint64_t	 count = 0;
	int		 older = 0;

	if ((c = frame_conn(o)) == NULL)
		return;
	frame_get_u64(o, "count", &count);
	frame_get_bool(o, "older", &older);
	conn_set_join(c, c->joined, 0);
	c->want_more = 0;
	conn_send(c, wire_history_end(count, older));
	if (c->ws != NULL && c->joined)
		c->allowance = ws_conn_pending(c->ws);
}

/* The cluster changed: every page that asked hears it. */
static void
on_cluster(const msgpack_object *o)
{
	struct conn	*c;
	struct ws_msg	*wm;

	free(W.cluster);
	if ((W.cluster = frame_get_str(o, "json")) == NULL)
		fatalx("bad CH_CLUSTER frame from the master");
	wm = ws_msg_text(W.cluster, strlen(W.cluster));
	TAILQ_FOREACH(c, &W.conns, entry)
		if (c->joined && c->cluster && !c->closing)
			ws_conn_send_msg(c->ws, wm);
	ws_msg_unref(wm);
}

static void
on_sync(const msgpack_object *o)
{
	struct conn	*c;
	struct nt_have	 have;

	if (frame_get_have(o, "have", &have) == -1)
		fatalx("bad CH_SYNC frame from the master");
	if ((c = frame_conn(o)) != NULL)
		conn_send(c, wire_sync(W.conf->node_id, &have));
	have_clear(&have);
}

static void
on_fail(const msgpack_object *o)
{
	struct conn	*c;
	char		*code, *message;

	code = frame_get_str(o, "code");
	message = frame_get_str(o, "message");
	if ((c = frame_conn(o)) != NULL && code != NULL && message != NULL)
		send_error(c, code, message);
	free(code);
	free(message);
}

/* An array of strings; an absent key is an empty one. */
static char **
strv_get(const msgpack_object *o, const char *key, size_t *n)
{
	const msgpack_object	*a = frame_get(o, key);
	char			**v;
	uint32_t		  i;

	*n = 0;
	if (a == NULL)
		return (xcalloc(1, sizeof(char *)));
	if (a->type != MSGPACK_OBJECT_ARRAY)
		fatalx("bad CH_PEERS frame from the master");
	v = xcalloc(a->via.array.size + 1, sizeof(*v));
	for (i = 0; i < a->via.array.size; i++) {
		if (a->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			fatalx("bad CH_PEERS frame from the master");
		v[i] = xstrndup(a->via.array.ptr[i].via.str.ptr,
		    a->via.array.ptr[i].via.str.size);
	}
	*n = a->via.array.size;
	return (v);
}

/* The master's answer to a request for /status or /metrics. */
static void
on_status(const msgpack_object *o)
{
	struct conn	*c;
	char		*body;

	if ((body = frame_get_str(o, "body")) == NULL)
		fatalx("bad CH_STATUS frame from the master");
	if ((c = frame_conn_req(o)) != NULL && c->waiting && c->bev != NULL)
		http_status_answer(c, body);
	free(body);
}

static int
strv_has(char **v, size_t n, const char *s)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return (1);
	return (0);
}

static void
strv_free(char **v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Links from a node that is no longer configured replicate no more. */
static void
peers_revoke(void)
{
	struct conn	*c, *next;

	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (c->kind != CONN_PEER || c->closing ||
		    peer_index(c->peer) != -1)
			continue;
		log_info("Peer %s is no longer configured; closing its link",
		    c->peer);
		conn_close(c, 1008, "not a configured node");
	}
}

/* A reload changed the nodes: who may replicate, and from where. */
static void
on_peers(const msgpack_object *o)
{
	char	**ids, **seeds, **hosts;
	int	 *seed;
	size_t	  n, ns, nh, i;

	ids = strv_get(o, "ids", &n);
	seeds = strv_get(o, "seeds", &ns);
	hosts = strv_get(o, "hosts", &nh);
	seed = xcalloc(n + 1, sizeof(*seed));
	for (i = 0; i < n; i++)
		seed[i] = strv_has(seeds, ns, ids[i]);
	peers_set(ids, seed, n);
	admit_peer_hosts((const char **)hosts, nh);
	strv_free(seeds, ns);
	strv_free(hosts, nh);
	peers_revoke();
	admit_clamp();
}

/* A new secret: every peer link proves it again, or is gone. */
static void
secret_changed(void)
{
	struct conn	*c, *next;

	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (c->kind != CONN_PEER || c->closing)
			continue;
		log_info("The cluster secret changed; closing the link from "
		    "%s until it says hello again", c->peer);
		conn_close(c, 1012, "cluster secret changed");
	}
}

static void
settings_int(const msgpack_object *o, const char *key, int *v)
{
	uint64_t	 u;

	if (frame_get_u64(o, key, &u) == -1 || u > INT32_MAX)
		fatalx("bad CH_SETTINGS frame from the master (%s)", key);
	*v = (int)u;
}

/* A reload changed the limits, the page's directory or the secret. */
static void
on_settings(const msgpack_object *o)
{
	struct nt_config	*cf = W.conf;
	char			*www, *secret;
	int			 changed;

	if ((www = frame_get_str(o, "www_dir")) == NULL ||
	    (secret = frame_get_str(o, "secret")) == NULL)
		fatalx("bad CH_SETTINGS frame from the master");
	settings_int(o, "max_clients", &cf->max_clients);
	settings_int(o, "max_message_bytes", &cf->max_message_bytes);
	/* Connections already open keep the cap they were made with. */
	settings_int(o, "max_frame_bytes", &cf->max_frame_bytes);
	settings_int(o, "max_clients_per_address",
	    &cf->max_clients_per_address);
	settings_int(o, "max_client_backlog_bytes",
	    &cf->max_client_backlog_bytes);
	settings_int(o, "http_timeout_ms", &cf->http_timeout_ms);
	settings_int(o, "join_timeout_ms", &cf->join_timeout_ms);
	settings_int(o, "ping_interval_ms", &cf->ping_interval_ms);
	settings_int(o, "peer_ping_interval_ms", &cf->peer_ping_interval_ms);
	settings_int(o, "ping_timeout_ms", &cf->ping_timeout_ms);
	changed = strcmp(cf->secret, secret) != 0;
	free(cf->secret);
	cf->secret = secret;
	www_set(www);
	free(www);
	admit_clamp();
	if (changed)
		secret_changed();
}

static void
quit_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	event_base_loopbreak(W.base);
}

/* Going away: every client hears 1001, then we leave. */
static void
ws_quit(void)
{
	struct conn	*c, *next;
	struct timeval	 tv = { 0, QUIT_GRACE_MS * 1000 };

	W.quitting = 1;
	evconnlistener_disable(W.listener);
	evtimer_del(W.resume_ev);
	event_base_once(W.base, -1, EV_TIMEOUT, quit_timeout_cb, NULL, &tv);
	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (c->ws != NULL)
			conn_close(c, 1001, "server shutting down");
		else
			conn_free(c);
	}
	quit_check();
}

static void
ws_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	if (worker_frame_common(type, o))
		return;
	switch (type) {
	case CH_ACK:
		on_ack(o);
		break;
	case CH_HISTORY:
		on_history(o);
		break;
	case CH_JOINED:
		on_joined(o);
		break;
	case CH_PAGE_END:
		on_page_end(o);
		break;
	case CH_RELEASE:
		on_release(o);
		break;
	case CH_SYNC:
		on_sync(o);
		break;
	case CH_CHAT_FAIL:
		on_fail(o);
		break;
	case CH_PEERS:
		on_peers(o);
		break;
	case CH_SETTINGS:
		on_settings(o);
		break;
	case CH_STATUS:
		on_status(o);
		break;
	case CH_CLUSTER:
		on_cluster(o);
		break;
	case CH_QUIT:
		ws_quit();
		break;
	default:
		fatalx("unexpected frame %d from the master", type);
	}
}

/*
 * epoll's changes go in together just before the loop waits: a write
 * event added and deleted within one turn (a reply written at once)
 * then costs no epoll_ctl(2) at all.  Safe here: no descriptor is dup'd.
 */
static struct event_base *
ws_base_new(void)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new");
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base == NULL)
		fatalx("event_base_new");
	return (base);
}

void
ws_worker_main(struct worker_args *wa)
{
	struct timeval	 tv = { 0, SWEEP_MS * 1000 };

	W.conf = wa->conf;
	/*
	 * A push to every client allocates a little for each and frees it
	 * all once written: were the freed top of the heap given back each
	 * time, the next push would fault every page of it in again.
	 */
	mallopt(M_TRIM_THRESHOLD, WS_TRIM_THRESHOLD);
	TAILQ_INIT(&W.conns);
	W.base = ws_base_new();
	/* Peers' host names are resolved without blocking the port. */
	W.dns = evdns_base_new(W.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (W.dns == NULL)
		log_warnx("no DNS resolver; using the system's, blocking");
	log_batch_on(W.base);
	peers_from_config();
	admit_clamp();
	www_set(W.conf->www_dir);
	W.ch = chan_new(W.base, wa->chan_fd, "master", ws_frame, worker_chan_lost,
	    NULL);
	/*
	 * Backlog 0: the master listens with the kernel's longest queue
	 * (proc_listen); -1 would make libevent listen again with 128.
	 */
	W.listener = evconnlistener_new(W.base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, wa->listen_fd);
	if (W.listener == NULL) {
		log_warnx("cannot use the listening socket");
		exit(NT_EXIT_FATAL);
	}
	admit_listener();
	if ((W.sweep_ev = event_new(W.base, -1, EV_PERSIST, sweep_cb,
	    NULL)) == NULL || event_add(W.sweep_ev, &tv) == -1 ||
	    (W.report_ev = event_new(W.base, -1, 0, clients_report_cb,
	    NULL)) == NULL)
		fatalx("event_new");
	log_info("Starting WebSocket server on port %d...",
	    W.conf->self->port);
	event_base_dispatch(W.base);
	exit(0);
}
