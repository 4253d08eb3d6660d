/*
 * ws_worker.c: the node's only listener.  It speaks HTTP/1.1 on the port,
 * upgrades clients and peers' inbound links to WebSocket, checks every
 * frame (wire.c) and relays what is valid to the master, which owns the
 * store.  It keeps no messages of its own, so a restart loses nothing.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
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

#define HTTP_TIMEOUT_SECS	10
#define SLOW_CLIENT_BYTES	(16 * 1024 * 1024)
#define QUIT_GRACE_MS		1500
#define CONN_SLACK		16
/*
 * A peer's messages were accepted under its own limits, which may be
 * larger than ours: its link gets a generous cap, so that one large
 * message cannot stall replication from it for good.
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

enum conn_kind {
	CONN_HTTP,		/* reading a request head */
	CONN_CLIENT,		/* WebSocket, not (yet) a peer */
	CONN_PEER		/* WebSocket, said hello as a configured node */
};

struct conn {
	uint64_t		 id;
	enum conn_kind		 kind;
	struct bufferevent	*bev;		/* while HTTP */
	struct ws_conn		*ws;		/* once upgraded */
	int			 joined;	/* gets pushed messages */
	int			 streaming;	/* its history (or a page) is coming */
	int			 want_more;	/* ... next chunk once drained */
	int			 closing;	/* close sent: send nothing */
	int			 waiting;	/* for the master's /status */
	int			 keep;		/* keep-alive after it */
	int			 head_only;	/* ... and it was a HEAD */
	char			 peer[NT_ID_MAX + 1];
	TAILQ_ENTRY(conn)	 entry;
};

static struct {
	struct event_base	*base;
	struct nt_config	*conf;
	struct chan		*ch;
	struct evconnlistener	*listener;
	TAILQ_HEAD(, conn)	 conns;
	size_t			 nconns;
	uint64_t		 next_id;
	char			**peers;	/* configured node ids */
	int64_t			*peer_ts;	/* last signed hello taken */
	size_t			 npeers;
	int			 seeds;		/* any seed peer configured */
	int			 quitting;
	int			 clients_sent;
	char			*www_dir;
} W;

/* What GET / serves: the page, from www_dir. */
static const struct {
	const char	*path;
	const char	*file;
	const char	*type;
} page_files[] = {
	{ "/", "index.html", "text/html; charset=utf-8" },
	{ "/index.html", "index.html", "text/html; charset=utf-8" },
	{ "/app.js", "app.js", "text/javascript; charset=utf-8" },
	{ "/style.css", "style.css", "text/css; charset=utf-8" },
};

#define PAGE_MAX	(1024 * 1024)

static void	conn_free(struct conn *);
static void	conn_send(struct conn *, char *json);
static struct conn *frame_conn_req(const msgpack_object *);

static struct conn *
conn_find(uint64_t id)
{
	struct conn	*c;

	TAILQ_FOREACH(c, &W.conns, entry)
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

static void
peers_set(char **ids, size_t n, int seeds)
{
	size_t	 i;

	for (i = 0; i < W.npeers; i++)
		free(W.peers[i]);
	free(W.peers);
	free(W.peer_ts);
	W.peers = ids;
	W.peer_ts = xcalloc(n, sizeof(*W.peer_ts));
	W.npeers = n;
	W.seeds = seeds;
}

static void
peers_from_config(void)
{
	char	**ids;
	size_t	  i, n = 0;

	ids = xcalloc(W.conf->nnodes, sizeof(*ids));
	for (i = 0; i < W.conf->nnodes; i++)
		if (&W.conf->nodes[i] != W.conf->self)
			ids[n++] = xstrdup(W.conf->nodes[i].id);
	peers_set(ids, n, config_has_seed(W.conf));
}

/* Tell the master how many WebSocket clients we serve (for /status). */
static void
clients_report(void)
{
	struct chan_frame	 f;
	struct conn		*c;
	int			 n = 0;

	TAILQ_FOREACH(c, &W.conns, entry)
		n += (c->kind == CONN_CLIENT);
	if (n == W.clients_sent)
		return;
	W.clients_sent = n;
	frame_begin(&f, CH_CLIENTS, 1);
	frame_u64(&f, "n", (uint64_t)n);
	chan_send(W.ch, &f);
}

static void
quit_check(void)
{
	if (W.quitting && TAILQ_EMPTY(&W.conns))
		event_base_loopbreak(W.base);
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

static void
conn_free(struct conn *c)
{
	if (c->streaming)
		history_more(c, 1);
	TAILQ_REMOVE(&W.conns, c, entry);
	W.nconns--;
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

static void
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
	conn_send(c, wire_error(code, message));
}

/* Frames from WebSocket connections. */

static void
relay_chat(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_CHAT, w->msg.client_id != NULL ? 6 : 5);
	frame_u64(&f, "conn", c->id);
	frame_i64(&f, "t", mono_us());
	frame_u64(&f, "after", w->after);
	frame_str(&f, "from", w->msg.from);
	frame_str(&f, "text", w->msg.text);
	if (w->msg.client_id != NULL)
		frame_str(&f, "cid", w->msg.client_id);
	chan_send(W.ch, &f);
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
static void
on_replicated(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	if (c->kind == CONN_PEER && w->has_identity) {
		frame_begin(&f, CH_PEER_CHAT, 3);
		frame_u64(&f, "conn", c->id);
		frame_str(&f, "peer", c->peer);
		frame_msg(&f, "msg", &w->msg);
		chan_send(W.ch, &f);
	} else if (W.seeds && W.conf->secret[0] == '\0' && !w->has_identity)
		relay_seed_chat(w);
	else if (c->kind == CONN_PEER)
		send_error(c, "missing_field",
		    "a replicated chat needs origin and seq");
	else
		send_error(c, "not_peer",
		    "only a configured node may send replicated messages");
}

static size_t
joined_clients(void)
{
	struct conn	*c;
	size_t		 n = 0;

	TAILQ_FOREACH(c, &W.conns, entry)
		n += c->joined || c->streaming;
	return (n);
}

static void
on_join(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;

	/* One history at a time: a client cannot make us queue many. */
	if (c->streaming) {
		send_error(c, "busy", "a join or a history request is still "
		    "sending on this connection");
		return;
	}
	/* max_clients counts joined clients; peers never join. */
	if (!c->joined && joined_clients() >= (size_t)W.conf->max_clients) {
		send_error(c, "too_many_clients", "max_clients reached; try "
		    "again later");
		conn_close(c, 1013, "try again later");
		return;
	}
	/* Pushes wait for the end of the history, which carries them. */
	c->joined = 0;
	c->streaming = 1;
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

	if (c->streaming) {
		send_error(c, "busy", "a join or a history request is still "
		    "sending on this connection");
		return;
	}
	if (limit == 0)
		limit = HISTORY_PAGE_DEFAULT;
	if (limit > HISTORY_PAGE_MAX)
		limit = HISTORY_PAGE_MAX;
	c->streaming = 1;
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

static void
on_hello(struct conn *c, struct wire_in *w)
{
	struct chan_frame	 f;
	const char		*why;
	int			 i;

	if ((i = peer_index(w->from)) == -1) {
		send_error(c, "unknown_peer", "hello from a node that is not "
		    "configured here");
		return;
	}
	/* With a cluster secret, only a signed, fresh hello makes a peer. */
	if (W.conf->secret[0] != '\0') {
		if (auth_hello_check(W.conf->secret, w->from,
		    w->to != NULL ? w->to : "", (int64_t)w->hello_ts, w->auth,
		    now_ms(), W.peer_ts[i], &why) == -1) {
			log_warnx("refused hello from %s: %s", w->from, why);
			send_error(c, "auth_failed", why);
			conn_close(c, 1008, "authentication failed");
			return;
		}
		if (w->to == NULL || strcmp(w->to, W.conf->node_id) != 0) {
			send_error(c, "auth_failed", "hello for another node");
			conn_close(c, 1008, "authentication failed");
			return;
		}
		W.peer_ts[i] = (int64_t)w->hello_ts;
	}
	c->kind = CONN_PEER;
	snprintf(c->peer, sizeof(c->peer), "%s", w->from);
	ws_conn_set_max(c->ws, PEER_MAX_FRAME);
	frame_begin(&f, CH_PEER_HELLO, 2);
	frame_u64(&f, "conn", c->id);
	frame_str(&f, "peer", c->peer);
	chan_send(W.ch, &f);
	clients_report();
}

static void
on_text(struct ws_conn *ws, const char *buf, size_t len, void *arg)
{
	struct conn	*c = arg;
	struct wire_in	 w;
	const char	*code;
	char		*why;

	if (c->closing)
		return;
	/* The text cap is a client's: replicated text was accepted elsewhere. */
	if (wire_parse(buf, len, 0, &w, &code, &why) == -1) {
		send_error(c, code, why);
		free(why);
		return;
	}
	switch (w.type) {
	case WIRE_CHAT:
		if (w.replicated)
			on_replicated(c, &w);
		else if (strlen(w.msg.text) > (size_t)W.conf->max_message_bytes)
			send_error(c, "too_long", "'text' is too long");
		else
			relay_chat(c, &w);
		break;
	case WIRE_JOIN:
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

/* HTTP. */

static void
http_reply(struct conn *c, int status, const char *extra, int keep)
{
	char	 body[128];
	int	 len;

	len = snprintf(body, sizeof(body), "%d %s\n", status,
	    http_reason(status));
	http_respond(bufferevent_get_output(c->bev), status,
	    "text/plain; charset=utf-8", extra, body, len, 0, keep);
}

static void
http_upgrade(struct conn *c, struct http_req *req)
{
	int	 status;

	if ((status = ws_check_upgrade(req)) != 0) {
		http_reply(c, status, status == 426 ?
		    "Sec-WebSocket-Version: 13\r\n" : NULL, 0);
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	ws_server_accept(bufferevent_get_output(c->bev), req);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	c->kind = CONN_CLIENT;
	c->ws = ws_conn_new(c->bev, 1, W.conf->max_frame_bytes, &conn_cbs, c);
	c->bev = NULL;
	clients_report();
}

static void
http_after_reply(struct conn *c, int keep);

static void
www_set(const char *dir)
{
	free(W.www_dir);
	W.www_dir = xstrdup(dir[0] != '\0' ? dir : PKGDATADIR "/www");
}

/* Read one of the page's files; NULL when it cannot be read. */
static char *
www_read(const char *file, size_t *len)
{
	char	*path, *buf;
	FILE	*f;

	xasprintf(&path, "%s/%s", W.www_dir, file);
	f = fopen(path, "r");
	if (f == NULL) {
		log_warn("%s", path);
		free(path);
		return (NULL);
	}
	buf = xmalloc(PAGE_MAX);
	*len = fread(buf, 1, PAGE_MAX, f);
	if (ferror(f) || !feof(f)) {
		log_warnx("%s: unreadable or over %d bytes", path, PAGE_MAX);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	free(path);
	return (buf);
}

static int
serve_file(struct conn *c, const char *file, const char *type, int head,
    int keep)
{
	char	*body;
	size_t	 len;

	if ((body = www_read(file, &len)) == NULL) {
		http_reply(c, 500, NULL, keep);
		return (keep);
	}
	/* Revalidate on every load: an upgrade must reach open browsers. */
	http_respond(bufferevent_get_output(c->bev), 200, type,
	    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
	    body, len, head, keep);
	free(body);
	return (keep);
}

/* /status and /metrics come from the master; reading pauses meanwhile. */
static void
ask_status(struct conn *c, const char *what, int head, int keep)
{
	struct chan_frame	 f;

	c->waiting = 1;
	c->keep = keep;
	c->head_only = head;
	frame_begin(&f, CH_STATUS, 2);
	frame_u64(&f, "req", c->id);
	frame_str(&f, "what", what);
	chan_send(W.ch, &f);
}

/* Returns whether to keep the connection (-1: wait for the master). */
static int
http_route(struct conn *c, struct http_req *req)
{
	int	 keep = http_keepalive(req), head, known = 0;
	size_t	 i;
	char	*q;

	/* We never read bodies, so a request with one ends the connection. */
	if (http_header(req, "Content-Length") != NULL &&
	    strcmp(http_header(req, "Content-Length"), "0") != 0)
		keep = 0;
	if (http_header(req, "Transfer-Encoding") != NULL)
		keep = 0;
	if ((q = strchr(req->path, '?')) != NULL)
		*q = '\0';
	head = strcmp(req->method, "HEAD") == 0;
	for (i = 0; i < sizeof(page_files) / sizeof(page_files[0]); i++)
		known |= strcmp(req->path, page_files[i].path) == 0;
	known |= strcmp(req->path, "/status") == 0 ||
	    strcmp(req->path, "/metrics") == 0;
	if (!known) {
		http_reply(c, 404, NULL, keep);
		return (keep);
	}
	if (!head && strcmp(req->method, "GET") != 0) {
		http_reply(c, 405, "Allow: GET, HEAD\r\n", keep);
		return (keep);
	}
	if (strcmp(req->path, "/status") == 0 ||
	    strcmp(req->path, "/metrics") == 0) {
		ask_status(c, req->path + 1, head, keep);
		return (-1);
	}
	for (i = 0; i < sizeof(page_files) / sizeof(page_files[0]); i++)
		if (strcmp(req->path, page_files[i].path) == 0)
			break;
	return (serve_file(c, page_files[i].file, page_files[i].type, head,
	    keep));
}

static void
http_done_cb(struct bufferevent *bev, void *arg)
{
	conn_free(arg);
}

static void
http_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	struct http_req	 req;
	int		 rv, status, keep;

	while (c->bev != NULL && !c->waiting &&
	    (rv = http_parse_request(bufferevent_get_input(bev), &req,
	    &status)) != 0) {
		if (rv == -1) {
			http_reply(c, status, NULL, 0);
			keep = 0;
		} else if (ws_is_upgrade(&req)) {
			http_upgrade(c, &req);
			http_req_clear(&req);
			return;
		} else
			keep = http_route(c, &req);
		if (rv == 1)
			http_req_clear(&req);
		if (keep == -1)
			return;
		if (!keep) {
			http_after_reply(c, 0);
			return;
		}
	}
}

static void
http_after_reply(struct conn *c, int keep)
{
	if (keep) {
		http_read_cb(c->bev, c);	/* a pipelined request */
		return;
	}
	/* Close once the answer is out. */
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, http_done_cb, NULL, c);
}

static void
on_status(const msgpack_object *o)
{
	struct conn	*c;
	char		*body;
	int		 metrics;

	if ((body = frame_get_str(o, "body")) == NULL)
		fatalx("bad CH_STATUS frame from the master");
	if ((c = frame_conn_req(o)) != NULL && c->waiting && c->bev != NULL) {
		c->waiting = 0;
		metrics = body[0] == '#';
		http_respond(bufferevent_get_output(c->bev), 200, metrics ?
		    "text/plain; version=0.0.4; charset=utf-8" :
		    "application/json", "Cache-Control: no-store\r\n",
		    body, strlen(body), c->head_only, c->keep);
		http_after_reply(c, c->keep);
	}
	free(body);
}

static void
http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct conn	*c;
	struct timeval	 tv = { HTTP_TIMEOUT_SECS, 0 };

	c = xcalloc(1, sizeof(*c));
	c->id = ++W.next_id;
	c->kind = CONN_HTTP;
	c->bev = bufferevent_socket_new(W.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("bufferevent_socket_new");
	TAILQ_INSERT_TAIL(&W.conns, c, entry);
	W.nconns++;
	/* Room for every peer's link and a few HTTP requests beyond. */
	if (W.quitting || W.nconns > (size_t)W.conf->max_clients + W.npeers +
	    CONN_SLACK) {
		log_warnx("refusing a connection: %s", W.quitting ?
		    "shutting down" : "too many connections");
		http_reply(c, 503, NULL, 0);
		bufferevent_setcb(c->bev, NULL, http_done_cb, NULL, c);
		return;
	}
	bufferevent_setcb(c->bev, http_read_cb, NULL, http_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	/* Out of descriptors, most likely: pause instead of spinning. */
	log_warn("accept");
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

static void
on_push(const msgpack_object *o)
{
	struct conn	*c, *next;
	struct nt_msg	 m;
	char		*json;
	size_t		 len;

	if (frame_get_msg(o, "msg", &m) == -1)
		fatalx("bad CH_PUSH frame from the master");
	json = wire_chat(&m, 0);
	len = strlen(json);
	TAILQ_FOREACH_SAFE(c, &W.conns, entry, next) {
		if (!c->joined || c->closing)
			continue;
		if (ws_conn_pending(c->ws) > SLOW_CLIENT_BYTES) {
			log_warnx("conn %llu reads too slowly; closing it",
			    (unsigned long long)c->id);
			conn_close(c, 1008, "too slow");
			continue;
		}
		ws_conn_send_text(c->ws, json, len);
	}
	free(json);
	msg_clear(&m);
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
	c->streaming = 0;
	c->want_more = 0;
	c->joined = 1;
	conn_send(c, wire_joined(W.conf->node_id, count, recovered, older));
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
	c->streaming = 0;
	c->want_more = 0;
	conn_send(c, wire_history_end(count, older));
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

static char **
strv_get(const msgpack_object *o, const char *key, size_t *n)
{
	const msgpack_object	*a = frame_get(o, key);
	char			**v;
	uint32_t		  i;

	*n = 0;
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
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

static void
on_peers(const msgpack_object *o)
{
	char	**ids, **seeds;
	size_t	  n, ns, i;

	ids = strv_get(o, "ids", &n);
	seeds = strv_get(o, "seeds", &ns);
	for (i = 0; i < ns; i++)
		free(seeds[i]);
	free(seeds);
	peers_set(ids, n, ns > 0);
}

/* A reload changed the limits or the page's directory. */
static void
on_settings(const msgpack_object *o)
{
	uint64_t	 clients, message, frame;
	char		*www, *secret;

	if (frame_get_u64(o, "max_clients", &clients) == -1 ||
	    frame_get_u64(o, "max_message_bytes", &message) == -1 ||
	    frame_get_u64(o, "max_frame_bytes", &frame) == -1 ||
	    (www = frame_get_str(o, "www_dir")) == NULL ||
	    (secret = frame_get_str(o, "secret")) == NULL)
		fatalx("bad CH_SETTINGS frame from the master");
	free(W.conf->secret);
	W.conf->secret = secret;
	W.conf->max_clients = (int)clients;
	W.conf->max_message_bytes = (int)message;
	/* Connections already open keep the cap they were made with. */
	W.conf->max_frame_bytes = (int)frame;
	www_set(www);
	free(www);
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
	case CH_PUSH:
		on_push(o);
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
	case CH_QUIT:
		ws_quit();
		break;
	default:
		fatalx("unexpected frame %d from the master", type);
	}
}

void
ws_worker_main(struct worker_args *wa)
{
	W.conf = wa->conf;
	TAILQ_INIT(&W.conns);
	if ((W.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	peers_from_config();
	www_set(W.conf->www_dir);
	W.ch = chan_new(W.base, wa->chan_fd, "master", ws_frame, worker_chan_lost,
	    NULL);
	W.listener = evconnlistener_new(W.base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, wa->listen_fd);
	if (W.listener == NULL) {
		log_warnx("cannot use the listening socket");
		exit(NT_EXIT_FATAL);
	}
	evconnlistener_set_error_cb(W.listener, accept_error_cb);
	log_info("Starting WebSocket server on port %d...",
	    W.conf->self->port);
	event_base_dispatch(W.base);
	exit(0);
}
