/*
 * peer_worker.c: the outgoing links.  For every other configured node it
 * dials the node's port, says hello (as the seed does), forwards the peer's
 * sync requests to the master and sends what the master hands it: catch-up
 * for one peer, or a new message of ours for every peer.  A link that
 * fails is retried with capped exponential backoff and jitter.  A link
 * whose peer stops answering pings, or falls too far behind, is dropped
 * (catch-up repairs what it missed once it is back).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "nodetalk.h"
#include "auth.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "wire.h"
#include "ws.h"

#define BACKOFF_MIN_MS	250
#define BACKOFF_MAX_MS	5000
#define SWEEP_MS	500	/* heartbeats of every link */
/* Catch-up comes in chunks; the next once less than this waits to go. */
#define CATCHUP_LOW	(64 * 1024)

struct link {
	char		 id[NT_ID_MAX + 1];
	char		*host;
	int		 port;
	int		 seed;
	struct ws_dial	*dial;
	struct ws_conn	*ws;
	struct event	*retry_ev;
	int		 backoff_ms;
	int		 failures;	/* in a row, for quieter logs */
	int		 dropping;	/* gave up; link_closed follows */
	uint64_t	 taken;		/* bytes the peer's TCP took */
	int64_t		 moved_ms;	/* ... the last time that grew */
	uint64_t	 gen;		/* this connection's number */
	int		 want_more;	/* catch-up: next chunk once drained */
};

static struct {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct nt_config	*conf;
	struct chan		*ch;
	struct link		*links;
	size_t			 nlinks;
	struct event		*sweep_ev;
	int			 quitting;
	uint64_t		 next_gen;
} P;

static void	link_connect(struct link *);

static void
link_report(struct link *l, int up)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_LINK, 3);
	frame_str(&f, "peer", l->id);
	frame_bool(&f, "up", up);
	frame_u64(&f, "link", l->gen);
	chan_send(P.ch, &f);
}

/* Capped exponential backoff with +-25% jitter, so nodes don't sync up. */
static void
link_retry(struct link *l)
{
	struct timeval	 tv;
	uint32_t	 r = 0;
	int		 ms;

	if (P.quitting)
		return;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	ms = l->backoff_ms * 3 / 4 + (int)(r % (uint32_t)(l->backoff_ms / 2 + 1));
	l->backoff_ms *= 2;
	if (l->backoff_ms > BACKOFF_MAX_MS)
		l->backoff_ms = BACKOFF_MAX_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(l->retry_ev, &tv);
}

static void
link_text(struct ws_conn *ws, const char *buf, size_t len, void *arg)
{
	struct link		*l = arg;
	struct wire_in		 w;
	struct wire_limits	 lim;
	struct chan_frame	 f;
	const char		*code;
	char			*why;

	lim.max_text = 0;
	lim.max_origins = wire_origin_cap(P.conf->nnodes);
	if (wire_parse(buf, len, &lim, &w, &code, &why) == -1) {
		log_debug("from %s: unparsable frame (%s)", l->id, why);
		free(why);
		return;
	}
	if (w.type == WIRE_SYNC) {
		frame_begin(&f, CH_SYNC_REQ, 3);
		frame_str(&f, "peer", l->id);
		frame_u64(&f, "link", l->gen);
		frame_have(&f, "have", &w.have);
		chan_send(P.ch, &f);
	} else if (w.type == WIRE_ERROR)
		log_warnx("peer %s answered with error %s: %s", l->id, w.code,
		    w.message != NULL ? w.message : "");
	wire_in_clear(&w);
}

static void
link_closed(struct ws_conn *ws, int code, void *arg)
{
	struct link	*l = arg;

	ws_conn_free(l->ws);
	l->ws = NULL;
	link_report(l, 0);
	if (!P.quitting)
		log_info("Lost connection to peer %s (code %d); reconnecting",
		    l->id, code);
	link_retry(l);
}

static void
catchup_more(struct link *l)
{
	struct chan_frame	 f;

	l->want_more = 0;
	frame_begin(&f, CH_CATCHUP_MORE, 2);
	frame_str(&f, "peer", l->id);
	frame_u64(&f, "link", l->gen);
	chan_send(P.ch, &f);
}

/* The link's output drained: the next chunk of catch-up, if one waits. */
static void
link_drain(struct ws_conn *ws, void *arg)
{
	struct link	*l = arg;

	if (l->want_more)
		catchup_more(l);
}

static const struct ws_conn_cbs link_cbs = { link_text, link_closed,
    link_drain };

static void
link_open(struct ws_conn *ws, void *arg)
{
	struct link	*l = arg;
	char		*hello, mac[AUTH_HEX_LEN + 1];
	int64_t		 ts;

	l->dial = NULL;
	l->ws = ws;
	l->dropping = 0;
	l->taken = 0;
	l->moved_ms = mono_us() / 1000;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->failures = 0;
	l->gen = ++P.next_gen;
	l->want_more = 0;
	if (P.conf->secret[0] != '\0') {
		ts = now_ms();
		auth_hello_mac(P.conf->secret, P.conf->node_id, l->id, ts, mac);
		hello = wire_hello(P.conf->node_id, l->id, ts, mac);
	} else
		hello = wire_hello(P.conf->node_id, l->id, 0, NULL);
	ws_conn_send_text(ws, hello, strlen(hello));
	free(hello);
	log_info("Sent hello to %s", l->id);
	link_report(l, 1);
}

static void
link_fail(const char *reason, void *arg)
{
	struct link	*l = arg;

	l->dial = NULL;
	if (l->failures++ == 0)
		log_info("Peer %s at ws://%s:%d unreachable (%s); retrying",
		    l->id, l->host, l->port, reason);
	else
		log_debug("peer %s: %s", l->id, reason);
	link_retry(l);
}

static void
link_connect(struct link *l)
{
	if (l->failures == 0)
		log_info("Trying to connect to peer %s at ws://%s:%d", l->id,
		    l->host, l->port);
	l->dial = ws_dial(P.base, P.dns, l->host, l->port,
	    (size_t)P.conf->max_frame_bytes, &link_cbs, link_open, link_fail,
	    l);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	link_connect(arg);
}

static void
links_init(void)
{
	struct nt_node	*n;
	struct link	*l;
	size_t		 i;

	P.links = xcalloc(P.conf->nnodes, sizeof(*P.links));
	for (i = 0; i < P.conf->nnodes; i++) {
		n = &P.conf->nodes[i];
		if (n == P.conf->self)
			continue;
		l = &P.links[P.nlinks++];
		snprintf(l->id, sizeof(l->id), "%s", n->id);
		l->host = xstrdup(n->host);
		l->port = n->port;
		l->seed = n->seed;
		l->backoff_ms = BACKOFF_MIN_MS;
		l->retry_ev = evtimer_new(P.base, retry_cb, l);
		link_connect(l);
	}
}

/*
 * Whether the peer's TCP took any of what waits for it lately: a link
 * with nothing waiting counts as moving.
 */
static void
link_watch(struct link *l, int64_t now)
{
	size_t		 waiting;
	uint64_t	 taken = ws_conn_taken(l->ws, &waiting);

	if (taken != l->taken || waiting == 0)
		l->moved_ms = now;
	l->taken = taken;
}

/*
 * A peer that does not read what we send it (stopped, or far slower than
 * we are) would make us buffer without end.  Past max_peer_backlog_bytes
 * the link is dropped once the peer took nothing for ping_timeout_ms, and
 * past four times that anyway (a catch-up burst to a peer that reads is
 * let through up to there); catch-up sends what it missed once it is
 * back.
 */
static int
link_too_slow(struct link *l, int64_t now)
{
	size_t	 pending = ws_conn_pending(l->ws);
	size_t	 cap = (size_t)P.conf->max_peer_backlog_bytes;
	int	 stalled;

	if (l->dropping)
		return (1);
	if (pending <= cap)
		return (0);
	stalled = now - l->moved_ms >= P.conf->ping_timeout_ms;
	if (!stalled && pending <= 4 * cap)
		return (0);
	l->dropping = 1;
	log_warnx("Peer %s reads too slowly (%zu bytes waiting, %s); dropping "
	    "the link", l->id, pending, stalled ? "none taken lately" :
	    "four times max_peer_backlog_bytes");
	ws_conn_abort(l->ws, 1008, "too slow");
	return (1);
}

/* Whether id is one of the strings in the array a (NULL: none). */
static int
strv_has(const msgpack_object *a, const char *id)
{
	const msgpack_object	*e;
	uint32_t		 i;

	for (i = 0; a != NULL && i < a->via.array.size; i++) {
		e = &a->via.array.ptr[i];
		if (e->type == MSGPACK_OBJECT_STR &&
		    e->via.str.size == strlen(id) &&
		    memcmp(e->via.str.ptr, id, e->via.str.size) == 0)
			return (1);
	}
	return (0);
}

/* One new message of ours, for the links that take it live. */
static void
replicate_msg(const struct nt_msg *m, const char *peer,
    const msgpack_object *except, int64_t now)
{
	struct link	*l;
	char		*json;
	size_t		 i, len;

	json = wire_chat(m, 1);
	len = strlen(json);
	for (i = 0; i < P.nlinks; i++) {
		l = &P.links[i];
		if (l->ws == NULL || (peer[0] != '\0' &&
		    strcmp(peer, l->id) != 0) || strv_has(except, l->id))
			continue;
		if (link_too_slow(l, now))
			continue;
		log_debug("Broadcasting chat to %s at ws://%s:%d", l->id,
		    l->host, l->port);
		ws_conn_send_text(l->ws, json, len);
	}
	free(json);
}

/*
 * New messages of ours, for every peer (or one), but those whose
 * catch-up is under way: they reach them in that catch-up's turn.
 */
static void
on_replicate(const msgpack_object *o)
{
	const msgpack_object	*except, *msgs;
	struct nt_msg		 m;
	char			*peer;
	int64_t			 now = mono_us() / 1000;
	uint32_t		 i;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || (msgs = frame_get_array(o, "msgs")) == NULL)
		fatalx("bad CH_REPLICATE frame from the master");
	except = frame_get_array(o, "except");
	for (i = 0; i < msgs->via.array.size; i++) {
		if (msg_unpack(&msgs->via.array.ptr[i], &m) == -1)
			fatalx("bad message in CH_REPLICATE from the master");
		replicate_msg(&m, peer, except, now);
		msg_clear(&m);
	}
	free(peer);
}

/* One timer for every link's heartbeat and backlog. */
static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct link	*l;
	int64_t		 now = mono_us() / 1000;
	size_t		 i;

	for (i = 0; i < P.nlinks; i++) {
		l = &P.links[i];
		if (l->ws == NULL)
			continue;
		link_watch(l, now);
		if (link_too_slow(l, now) ||
		    ws_conn_heartbeat(l->ws, now, P.conf->peer_ping_interval_ms,
		    P.conf->ping_timeout_ms) == 0)
			continue;
		log_info("Peer %s did not answer a ping in %d ms; dropping the "
		    "link", l->id, P.conf->ping_timeout_ms);
		l->dropping = 1;
		ws_conn_abort(l->ws, 1011, "ping timeout");
	}
}

/* A reload: the heartbeat and the backlog cap (the rest restarts us). */
static void
on_settings(const msgpack_object *o)
{
	uint64_t	 interval, timeout, backlog;

	if (frame_get_u64(o, "peer_ping_interval_ms", &interval) == -1 ||
	    frame_get_u64(o, "ping_timeout_ms", &timeout) == -1 ||
	    frame_get_u64(o, "max_peer_backlog_bytes", &backlog) == -1 ||
	    interval > INT32_MAX || timeout > INT32_MAX || backlog > INT32_MAX)
		fatalx("bad CH_SETTINGS frame from the master");
	P.conf->peer_ping_interval_ms = (int)interval;
	P.conf->ping_timeout_ms = (int)timeout;
	P.conf->max_peer_backlog_bytes = (int)backlog;
}

/*
 * A chunk of catch-up for one link.  One for a link that has gone since
 * is dropped: the master learns of the loss (CH_LINK) and starts again on
 * the next link's sync.
 */
static void
on_catchup(const msgpack_object *o)
{
	const msgpack_object	*a;
	struct nt_msg		 m;
	struct link		*l = NULL;
	char			*peer, *json;
	uint64_t		 gen;
	uint32_t		 i;
	size_t			 j;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "link", &gen) == -1 ||
	    (a = frame_get_array(o, "msgs")) == NULL)
		fatalx("bad CH_CATCHUP frame from the master");
	for (j = 0; j < P.nlinks; j++)
		if (strcmp(P.links[j].id, peer) == 0)
			l = &P.links[j];
	free(peer);
	if (l == NULL || l->ws == NULL || l->gen != gen)
		return;
	for (i = 0; i < a->via.array.size; i++) {
		if (msg_unpack(&a->via.array.ptr[i], &m) == -1)
			fatalx("bad message in CH_CATCHUP from the master");
		json = wire_chat(&m, 1);
		ws_conn_send_text(l->ws, json, strlen(json));
		free(json);
		msg_clear(&m);
	}
	if (l->ws == NULL)
		return;
	if (ws_conn_pending(l->ws) < CATCHUP_LOW)
		catchup_more(l);
	else
		l->want_more = 1;
}

/* The peer dialled us, so it is up: dial it now, not after the backoff. */
static void
on_dial(const msgpack_object *o)
{
	char	*peer;
	size_t	 i;

	if ((peer = frame_get_str(o, "peer")) == NULL)
		fatalx("bad CH_DIAL frame from the master");
	for (i = 0; i < P.nlinks && !P.quitting; i++) {
		if (strcmp(P.links[i].id, peer) != 0 ||
		    P.links[i].ws != NULL || P.links[i].dial != NULL)
			continue;
		evtimer_del(P.links[i].retry_ev);
		P.links[i].backoff_ms = BACKOFF_MIN_MS;
		link_connect(&P.links[i]);
	}
	free(peer);
}

static void
quit_cb(evutil_socket_t fd, short ev, void *arg)
{
	event_base_loopbreak(P.base);
}

static void
peer_quit(void)
{
	struct timeval	 tv = { 0, 300 * 1000 };
	size_t		 i;

	P.quitting = 1;
	for (i = 0; i < P.nlinks; i++) {
		evtimer_del(P.links[i].retry_ev);
		if (P.links[i].dial != NULL) {
			ws_dial_cancel(P.links[i].dial);
			P.links[i].dial = NULL;
		}
		if (P.links[i].ws != NULL)
			ws_conn_close(P.links[i].ws, 1001, "node stopping");
	}
	/* Give the close frames a moment to leave. */
	event_base_once(P.base, -1, EV_TIMEOUT, quit_cb, NULL, &tv);
}

static void
peer_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	if (worker_frame_common(type, o))
		return;
	switch (type) {
	case CH_REPLICATE:
		on_replicate(o);
		break;
	case CH_SETTINGS:
		on_settings(o);
		break;
	case CH_DIAL:
		on_dial(o);
		break;
	case CH_CATCHUP:
		on_catchup(o);
		break;
	case CH_QUIT:
		peer_quit();
		break;
	default:
		fatalx("unexpected frame %d from the master", type);
	}
}

void
peer_worker_main(struct worker_args *wa)
{
	struct timeval	 tv = { 0, SWEEP_MS * 1000 };

	P.conf = wa->conf;
	if ((P.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	log_batch_on(P.base);
	/* Hosts may be names: resolve without blocking the other links. */
	P.dns = evdns_base_new(P.base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (P.dns == NULL)
		log_warnx("no DNS resolver; using the system's, blocking");
	P.ch = chan_new(P.base, wa->chan_fd, "master", peer_frame,
	    worker_chan_lost, NULL);
	links_init();
	if ((P.sweep_ev = event_new(P.base, -1, EV_PERSIST, sweep_cb,
	    NULL)) == NULL || event_add(P.sweep_ev, &tv) == -1)
		fatalx("event_new");
	event_base_dispatch(P.base);
	exit(0);
}
