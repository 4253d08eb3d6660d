/*
 * engine_nats.c: engine = "nats".  This node is a gateway to one NATS
 * JetStream stream, which is the cluster's ordered, replicated log; the
 * nats worker (nats_worker.c) is its link to the stream.
 *
 * A client's chat goes to the worker, which publishes it; once JetStream
 * has stored it on its replicas it answers with the stream sequence.
 * That sequence is the message's identity and its place in the one
 * order: origin = the stream's name, seq = lamport = the sequence.  The
 * client's ack waits until the message is also in this node's store
 * (read back from the stream like everyone else's, and synced), so what
 * a client was told is there is in its history too; if reading lags by
 * more than timeout_ms, the ack goes without waiting (the stream has the
 * message: that is what the ack promises).  Acks and errors leave in the
 * order the chats came on each connection, as with the mesh.
 *
 * Every message of the stream is read into the store, in sequence, from
 * where the store ends (CH_CONSUME, again after a gap or a restart of
 * the worker); the store is a cache of the stream.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "master.h"

#define CONSUME_GAP_MS	1000	/* at most one restart of reading per gap */
#define TICK_MS		250	/* acks that waited long enough for reading */

enum chat_state {
	CHAT_PUBLISHING,	/* with the nats worker */
	CHAT_STORED,		/* in the stream at seq; ack once here */
	CHAT_FAILED
};

/* A client's chat between CH_CHAT and its ack or error. */
struct chat {
	TAILQ_ENTRY(chat)	 entry;
	uint64_t		 id;
	uint64_t		 conn;
	enum chat_state		 state;
	uint64_t		 seq;
	char			*message;	/* CHAT_FAILED */
	char			*cid;
	int64_t			 ts;		/* as published */
	int64_t			 t_us;
	int64_t			 deadline;	/* CHAT_STORED: ack by then */
};

static struct {
	struct nats_view	 view;
	TAILQ_HEAD(, chat)	 chats;
	uint64_t		 next_id;
	uint64_t		 gen;		/* of the last CH_CONSUME */
	int64_t			 consume_ms;
	struct event		*consume_ev;
	struct event		*tick_ev;
	uint64_t		 told;		/* in the last CH_STORED */
} G;

static const char *
stream(void)
{
	return (M.conf->nats.stream);
}

static int
worker_ok(void)
{
	return (M.peer.ch != NULL && M.peer.hello);
}

static struct chat *
chat_new(uint64_t conn, const char *cid)
{
	struct chat	*c;

	c = xcalloc(1, sizeof(*c));
	c->id = ++G.next_id;
	c->conn = conn;
	c->cid = cid != NULL ? xstrdup(cid) : NULL;
	c->ts = now_ms();
	c->t_us = mono_us();
	TAILQ_INSERT_TAIL(&G.chats, c, entry);
	return (c);
}

static void
chat_free(struct chat *c)
{
	TAILQ_REMOVE(&G.chats, c, entry);
	free(c->message);
	free(c->cid);
	free(c);
}

static void
chat_fail(struct chat *c, const char *message)
{
	c->state = CHAT_FAILED;
	free(c->message);
	c->message = xstrdup(message);
	G.view.failed++;
}

static void
send_fail(uint64_t conn, const char *message)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL)
		return;
	frame_begin(&f, CH_CHAT_FAIL, 3);
	frame_u64(&f, "conn", conn);
	frame_str(&f, "code", "unavailable");
	frame_str(&f, "message", message);
	chan_send(M.ws.ch, &f);
}

/*
 * Answered when stored here and synced, or when reading took longer than
 * timeout_ms: with the identity JetStream gave (into *tmp).  NULL while
 * neither.
 */
static const struct nt_msg *
chat_ready(const struct chat *c, struct nt_msg *tmp)
{
	const struct nt_msg	*m;

	if (c->state != CHAT_STORED)
		return (NULL);
	if ((m = store_lookup(M.store, stream(), c->seq)) != NULL &&
	    !pending_has(m))
		return (m);
	if (now_ms() < c->deadline)
		return (NULL);
	memset(tmp, 0, sizeof(*tmp));
	snprintf(tmp->origin, sizeof(tmp->origin), "%s", stream());
	tmp->seq = tmp->lamport = c->seq;
	tmp->ts = c->ts;
	tmp->client_id = c->cid;
	return (tmp);
}

static int
conn_in(const uint64_t *v, size_t n, uint64_t conn)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (v[i] == conn)
			return (1);
	return (0);
}

/*
 * Answer every chat that can be, in the order the chats came on each
 * connection: one still waiting holds back the later ones of its
 * connection, not the others'.
 */
static void
chats_release(void)
{
	const struct nt_msg	*m;
	struct nt_msg		 tmp;
	struct chat		*c, *next;
	uint64_t		*held = NULL;
	size_t			 nheld = 0;

	TAILQ_FOREACH_SAFE(c, &G.chats, entry, next) {
		if (conn_in(held, nheld, c->conn))
			continue;
		if (c->state == CHAT_FAILED)
			send_fail(c->conn, c->message);
		else if ((m = chat_ready(c, &tmp)) != NULL)
			send_ack(c->conn, m);
		else {
			held = xreallocarray(held, nheld + 1, sizeof(*held));
			held[nheld++] = c->conn;
			continue;
		}
		chat_free(c);
	}
	free(held);
}

/*
 * A client's chat.  A retry of a message this gateway already holds
 * (any gateway took it: the client id is the stream's message id) is
 * answered from the store; anything else goes to the stream.
 */
static void
nats_chat(const msgpack_object *o)
{
	const struct nt_msg	*old;
	struct chan_frame	 f;
	struct chat		*c;
	char			*from = NULL, *text = NULL, *cid = NULL;
	uint64_t		 conn;
	int64_t			 t;

	if (frame_get_i64(o, "t", &t) == 0)
		hist_add(&M.stats.chan_lat, (mono_us() - t) / 1e6);
	if (frame_get_u64(o, "conn", &conn) == -1 ||
	    (from = frame_get_str(o, "from")) == NULL ||
	    (text = frame_get_str(o, "text")) == NULL)
		goto out;
	cid = frame_get_str(o, "cid");
	c = chat_new(conn, cid);
	if (cid != NULL && (old = store_lookup_client_id(M.store, stream(),
	    cid)) != NULL) {
		M.stats.retries++;
		c->state = CHAT_STORED;
		c->seq = old->seq;
		c->deadline = now_ms() + M.conf->nats.timeout_ms;
	} else if (!worker_ok())
		chat_fail(c, "the link to NATS is not up yet (its worker is "
		    "starting); nothing was stored: retry shortly");
	else {
		frame_begin(&f, CH_PUBLISH, cid != NULL ? 5 : 4);
		frame_u64(&f, "id", c->id);
		frame_str(&f, "from", from);
		frame_str(&f, "text", text);
		frame_i64(&f, "ts", c->ts);
		if (cid != NULL)
			frame_str(&f, "cid", cid);
		chan_send(M.peer.ch, &f);
	}
	chats_release();
out:
	free(from);
	free(text);
	free(cid);
}

static struct chat *
chat_find(const msgpack_object *o)
{
	struct chat	*c;
	uint64_t	 id;

	if (frame_get_u64(o, "id", &id) == -1)
		return (NULL);
	TAILQ_FOREACH(c, &G.chats, entry)
		if (c->id == id)
			return (c);
	return (NULL);
}

static void
on_published(const msgpack_object *o)
{
	struct chat	*c;
	uint64_t	 seq;
	int		 dup = 0;

	if ((c = chat_find(o)) == NULL || c->state != CHAT_PUBLISHING ||
	    frame_get_u64(o, "seq", &seq) == -1)
		return;
	frame_get_bool(o, "dup", &dup);
	c->state = CHAT_STORED;
	c->seq = seq;
	c->deadline = now_ms() + M.conf->nats.timeout_ms;
	M.stats.accepted++;
	G.view.published++;
	G.view.deduplicated += dup;
	hist_add(&G.view.publish_lat, (mono_us() - c->t_us) / 1e6);
	if (seq > G.view.stream_seq)
		G.view.stream_seq = seq;
	chats_release();
}

static void
on_publish_fail(const msgpack_object *o)
{
	struct chat	*c;
	char		*message;

	if ((c = chat_find(o)) == NULL || c->state != CHAT_PUBLISHING)
		return;
	message = frame_get_str(o, "message");
	chat_fail(c, message != NULL ? message : "NATS is unavailable");
	free(message);
	chats_release();
}

/* Read the stream from the end of the store on. */
static void
consume(void)
{
	struct chan_frame	 f;

	if (!worker_ok())
		return;
	G.consume_ms = now_ms();
	frame_begin(&f, CH_CONSUME, 2);
	frame_u64(&f, "gen", ++G.gen);
	frame_u64(&f, "from", have_get(store_have(M.store), stream()) + 1);
	chan_send(M.peer.ch, &f);
}

static void
consume_cb(evutil_socket_t fd, short ev, void *arg)
{
	consume();
}

/* A gap, or a message the store would not take: read again from its end. */
static void
consume_again(void)
{
	struct timeval	 tv = { 0, 0 };
	int64_t		 wait = G.consume_ms + CONSUME_GAP_MS - now_ms();

	if (evtimer_pending(G.consume_ev, NULL))
		return;
	if (wait > 0)
		tv.tv_usec = wait * 1000;
	evtimer_add(G.consume_ev, &tv);
}

static void
on_stream_msg(const msgpack_object *o)
{
	struct nt_msg	 m;
	uint64_t	 gen;
	int		 rv;

	if (frame_get_u64(o, "gen", &gen) == -1 ||
	    frame_get_msg(o, "msg", &m) == -1) {
		log_warnx("bad CH_STREAM_MSG frame from the nats worker");
		return;
	}
	if (gen == G.gen) {
		if ((rv = store_message(&m)) == 1) {
			M.stats.replicated_in++;
			if (m.seq > G.view.stream_seq)
				G.view.stream_seq = m.seq;
			pending_add(&m, 0, 0, 1, 0);
		} else if (rv == 0)
			M.stats.duplicates++;
		else {
			if (rv == -2) {
				M.stats.gaps++;
				log_warnx("stream %s: sequence %llu came after "
				    "%llu; reading again", stream(),
				    (unsigned long long)m.seq,
				    (unsigned long long)have_get(
				    store_have(M.store), stream()));
			}
			G.gen++;	/* what follows is stale */
			consume_again();
		}
	}
	msg_clear(&m);
}

static void
on_state(const msgpack_object *o)
{
	struct nats_view	*v = &G.view;
	char			*s;
	uint64_t		 n;
	int			 up = 0;

	frame_get_bool(o, "up", &up);
	if (!v->known || up != v->up)
		v->since_ms = now_ms();
	v->known = 1;
	v->up = up;
	frame_get_bool(o, "stream_ok", &v->stream_ok);
	if (frame_get_u64(o, "stream_seq", &n) == 0 && n > v->stream_seq)
		v->stream_seq = n;
	if (frame_get_u64(o, "replicas", &n) == 0)
		v->replicas = (int)n;
	frame_get_u64(o, "reconnects", &v->reconnects);
	if ((s = frame_get_str(o, "server")) != NULL)
		snprintf(v->server, sizeof(v->server), "%s", s);
	free(s);
	if ((s = frame_get_str(o, "leader")) != NULL)
		snprintf(v->leader, sizeof(v->leader), "%s", s);
	free(s);
	if ((s = frame_get_str(o, "error")) != NULL)
		snprintf(v->error, sizeof(v->error), "%s", s);
	free(s);
}

static int
nats_frame(int type, const msgpack_object *o)
{
	switch (type) {
	case CH_PUBLISHED:
		on_published(o);
		return (1);
	case CH_PUBLISH_FAIL:
		on_publish_fail(o);
		return (1);
	case CH_STREAM_MSG:
		on_stream_msg(o);
		return (1);
	case CH_NATS_STATE:
		on_state(o);
		return (1);
	}
	return (0);
}

/* What is durable now may answer chats; the worker may read further. */
static void
nats_committed(void)
{
	struct chan_frame	 f;
	uint64_t		 have;

	chats_release();
	have = have_get(store_have(M.store), stream());
	if (have == G.told || !worker_ok())
		return;
	G.told = have;
	frame_begin(&f, CH_STORED, 1);
	frame_u64(&f, "seq", have);
	chan_send(M.peer.ch, &f);
}

/*
 * The store is a copy of this stream and nothing else: a mesh node's log
 * (or another stream's) would mix two orders into one history.
 */
static int
nats_check(char **cause)
{
	const struct nt_have	*h = store_have(M.store);
	size_t			 i;

	for (i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].origin, stream()) == 0)
			continue;
		xasprintf(cause, "%s holds messages of origin %s: it is not a "
		    "copy of stream %s; a gateway needs a data_dir of its own "
		    "(an empty one reads the stream)", store_path(M.store),
		    h->v[i].origin, stream());
		return (-1);
	}
	return (0);
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, TICK_MS * 1000 };

	chats_release();
	evtimer_add(G.tick_ev, &tv);
}

static void
nats_start(void)
{
	TAILQ_INIT(&G.chats);
	G.consume_ev = evtimer_new(M.base, consume_cb, NULL);
	G.tick_ev = evtimer_new(M.base, tick_cb, NULL);
	tick_cb(-1, 0, NULL);
	log_info("Gateway to NATS stream %s (subject %s, %zu servers)",
	    stream(), M.conf->nats.subject, M.conf->nats.nservers);
}

static void
nats_hello(struct worker *w)
{
	if (w != &M.peer)
		return;
	G.told = 0;
	consume();
}

/*
 * The ws worker's connections are gone, and with them whoever waited
 * for an answer.  Chats the nats worker had may or may not be in the
 * stream: they are answered unavailable (a retry finds out).
 */
static void
nats_lost(struct worker *w)
{
	struct chat	*c, *next;

	TAILQ_FOREACH_SAFE(c, &G.chats, entry, next) {
		if (w == &M.ws)
			chat_free(c);
		else if (c->state == CHAT_PUBLISHING)
			chat_fail(c, "the link to NATS restarted; the message "
			    "may still be stored: retry with the same id");
	}
	if (w == &M.peer) {
		G.view.up = 0;
		G.view.since_ms = now_ms();
		evtimer_del(G.consume_ev);
		chats_release();
	}
}

static int
nats_reload(const struct nt_config *old)
{
	return (!config_nats_equal(&old->nats, &M.conf->nats));
}

static void
nats_status(struct status_ctx *c)
{
	c->nats = &G.view;
}

const struct engine engine_nats = {
	.name = "nats",
	.worker = "nats",
	.worker_main = nats_worker_main,
	.peers = 0,
	.check = nats_check,
	.start = nats_start,
	.hello = nats_hello,
	.lost = nats_lost,
	.chat = nats_chat,
	.frame = nats_frame,
	.committed = nats_committed,
	.reload = nats_reload,
	.status = nats_status,
};
