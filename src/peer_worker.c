/*
 * peer_worker.c: the outgoing links.  For every other configured node it
 * dials the node's port, says hello (as the seed does), forwards the peer's
 * sync requests to the master and sends what the master hands it: catch-up
 * for one peer, or a new message of ours for every peer.  A link that
 * fails is retried with capped exponential backoff and jitter.
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
};

static struct {
	struct event_base	*base;
	struct evdns_base	*dns;
	struct nt_config	*conf;
	struct chan		*ch;
	struct link		*links;
	size_t			 nlinks;
	int			 quitting;
} P;

static void	link_connect(struct link *);

static void
link_report(struct link *l, int up)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_LINK, 2);
	frame_str(&f, "peer", l->id);
	frame_bool(&f, "up", up);
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
		frame_begin(&f, CH_SYNC_REQ, 2);
		frame_str(&f, "peer", l->id);
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

static const struct ws_conn_cbs link_cbs = { link_text, link_closed };

static void
link_open(struct ws_conn *ws, void *arg)
{
	struct link	*l = arg;
	char		*hello, mac[AUTH_HEX_LEN + 1];
	int64_t		 ts;

	l->dial = NULL;
	l->ws = ws;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->failures = 0;
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

/* Send a message of ours to every peer, or catch-up to one peer. */
static void
on_replicate(const msgpack_object *o)
{
	struct nt_msg	 m;
	struct link	*l;
	char		*peer, *json;
	size_t		 i;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_msg(o, "msg", &m) == -1)
		fatalx("bad CH_REPLICATE frame from the master");
	json = wire_chat(&m, 1);
	for (i = 0; i < P.nlinks; i++) {
		l = &P.links[i];
		if (l->ws == NULL || (peer[0] != '\0' &&
		    strcmp(peer, l->id) != 0))
			continue;
		log_debug("Broadcasting chat to %s at ws://%s:%d", l->id,
		    l->host, l->port);
		ws_conn_send_text(l->ws, json, strlen(json));
	}
	free(json);
	free(peer);
	msg_clear(&m);
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
	event_base_dispatch(P.base);
	exit(0);
}
