/*
 * nats_worker.c: the second worker with engine = "nats", the gateway's
 * link to a NATS JetStream stream (nats_link.c connects and reads the
 * stream; this file is the worker's loop).
 *
 * Publishing: each client chat the master hands over (CH_PUBLISH) is
 * published to the stream with a message id (the client's own id when it
 * gave one, so that a retry on any gateway is the same message; else one
 * made here).  JetStream answers once the message is stored on its
 * replicas: CH_PUBLISHED, with the stream sequence, which is the
 * message's identity.  An attempt that fails or goes unanswered is made
 * again, with the same message id (JetStream keeps the first), until
 * timeout_ms after the chat came: then CH_PUBLISH_FAIL "unavailable".
 * While no server has been reachable for timeout_ms, chats fail at once.
 *
 * Reading: the master says where its store ends (CH_CONSUME); every
 * message of the stream from there on goes to it (CH_STREAM_MSG), at
 * most WINDOW ahead of what it reported durable (CH_STORED).
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <nats/nats.h>
#include <openssl/rand.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "nats_worker.h"

#define TICK_MS		100
#define ATTEMPT_MS	1500	/* one attempt's wait for JetStream's answer */
#define RETRY_MS	200	/* after a failed attempt */
#define WINDOW		1024	/* stream messages the master has not synced */
#define STATE_EVERY_MS	1000

/* A client's chat on its way into the stream. */
struct pub {
	TAILQ_ENTRY(pub)	 entry;
	uint64_t		 id;	/* the master's */
	char			*msgid;	/* Nats-Msg-Id */
	char			*body;
	int64_t			 deadline;
	int64_t			 next;	/* the next attempt; 0: none due */
	uint64_t		 attempt;	/* the latest one's number */
	uint64_t		 reconnected;	/* NS.reconnected at it */
	char			 why[160];
};

/* One publish attempt, which libnats owns until its answer comes. */
struct attempt {
	TAILQ_ENTRY(attempt)	 entry;
	natsMsg			*nm;
	uint64_t		 pub;
	uint64_t		 no;
};

static struct {
	struct event_base	*base;
	struct nt_config	*conf;
	struct chan		*ch;
	struct event		*tick;
	TAILQ_HEAD(, pub)	 pubs;
	TAILQ_HEAD(, attempt)	 attempts;
	uint64_t		 gen;		/* of the master's CH_CONSUME */
	uint64_t		 fwd;		/* last seq sent to the master */
	uint64_t		 stored;	/* its last CH_STORED */
	struct nw_state		 sent;		/* in the last CH_NATS_STATE */
	int64_t			 sent_ms;
	int			 quitting;
} N;

static void
send_fail(uint64_t id, const char *message)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_PUBLISH_FAIL, 3);
	frame_u64(&f, "id", id);
	frame_str(&f, "code", "unavailable");
	frame_str(&f, "message", message);
	chan_send(N.ch, &f);
}

static struct pub *
pub_find(uint64_t id)
{
	struct pub	*p;

	TAILQ_FOREACH(p, &N.pubs, entry)
		if (p->id == id)
			return (p);
	return (NULL);
}

static void
pub_free(struct pub *p)
{
	TAILQ_REMOVE(&N.pubs, p, entry);
	free(p->msgid);
	free(p->body);
	free(p);
}

/* The stream's copy of a chat: what nats_link.c reads back. */
static char *
pub_body(const char *from, const char *text, const char *cid, int64_t ts)
{
	cJSON	*o = cJSON_CreateObject();
	char	*s;

	cJSON_AddStringToObject(o, "from", from);
	cJSON_AddStringToObject(o, "text", text);
	cJSON_AddNumberToObject(o, "ts", (double)ts);
	cJSON_AddStringToObject(o, "gateway", N.conf->node_id);
	if (cid != NULL)
		cJSON_AddStringToObject(o, "id", cid);
	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		fatalx("cJSON_PrintUnformatted");
	cJSON_Delete(o);
	return (s);
}

/* Without a client id, a message id of our own, unique enough. */
static char *
pub_msgid(const char *cid)
{
	unsigned char	 r[12];
	char		*s;

	if (cid != NULL)
		return (xstrdup(cid));
	if (RAND_bytes(r, sizeof(r)) != 1)
		fatalx("RAND_bytes");
	xasprintf(&s, "nodetalkd-%s-%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x"
	    "%02x%02x", N.conf->node_id, r[0], r[1], r[2], r[3], r[4], r[5],
	    r[6], r[7], r[8], r[9], r[10], r[11]);
	return (s);
}

static int
link_up(uint64_t *reconnected, int64_t *down_ms)
{
	int	 up;

	pthread_mutex_lock(&NS.mu);
	up = NS.st.up;
	if (reconnected != NULL)
		*reconnected = NS.reconnected;
	if (down_ms != NULL)
		*down_ms = NS.down_ms;
	pthread_mutex_unlock(&NS.mu);
	return (up);
}

static void
pub_attempt(struct pub *p, int64_t now)
{
	const struct nt_nats	*n = &N.conf->nats;
	struct attempt		*a;
	jsPubOptions		 po;
	natsMsg			*nm = NULL;
	natsStatus		 s;
	int64_t			 wait = p->deadline - now;

	if (natsMsg_Create(&nm, n->subject, NULL, p->body,
	    (int)strlen(p->body)) != NATS_OK)
		fatalx("natsMsg_Create");
	jsPubOptions_Init(&po);
	po.MsgId = p->msgid;
	po.ExpectStream = n->stream;
	po.MaxWait = wait < ATTEMPT_MS ? (wait > 50 ? wait : 50) : ATTEMPT_MS;
	a = xcalloc(1, sizeof(*a));
	a->nm = nm;
	a->pub = p->id;
	a->no = ++p->attempt;
	link_up(&p->reconnected, NULL);
	TAILQ_INSERT_TAIL(&N.attempts, a, entry);
	p->next = 0;
	if ((s = js_PublishMsgAsync(NS.js, &nm, &po)) != NATS_OK) {
		TAILQ_REMOVE(&N.attempts, a, entry);
		free(a);
		natsMsg_Destroy(nm);
		snprintf(p->why, sizeof(p->why), "%s", natsStatus_GetText(s));
		p->next = now + RETRY_MS;
	}
}

/* A chat for the stream. */
static void
on_publish(const msgpack_object *o)
{
	struct pub	*p;
	char		*from, *text, *cid, msg[160];
	int64_t		 ts, now = now_ms(), down;
	uint64_t	 id;

	from = frame_get_str(o, "from");
	text = frame_get_str(o, "text");
	cid = frame_get_str(o, "cid");
	if (from == NULL || text == NULL || frame_get_u64(o, "id", &id) == -1 ||
	    frame_get_i64(o, "ts", &ts) == -1)
		fatalx("bad CH_PUBLISH frame from the master");
	if (!link_up(NULL, &down) && now - down >= N.conf->nats.timeout_ms) {
		snprintf(msg, sizeof(msg), "no NATS server has been reachable "
		    "for %lld s; nothing was stored",
		    (long long)((now - down) / 1000));
		send_fail(id, msg);
	} else {
		p = xcalloc(1, sizeof(*p));
		p->id = id;
		p->msgid = pub_msgid(cid);
		p->body = pub_body(from, text, cid, ts);
		p->deadline = now + N.conf->nats.timeout_ms;
		p->next = now;
		TAILQ_INSERT_TAIL(&N.pubs, p, entry);
		if (link_up(NULL, NULL))
			pub_attempt(p, now);
	}
	free(from);
	free(text);
	free(cid);
}

static void
pub_answered(struct pub *p, const struct nw_ack *k)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_PUBLISHED, 3);
	frame_u64(&f, "id", p->id);
	frame_u64(&f, "seq", k->seq);
	frame_bool(&f, "dup", k->dup);
	chan_queue(N.ch, &f);	/* with the others of this turn */
	pub_free(p);
}

/* JetStream's answer to an attempt; the message is ours again. */
static void
on_ack(const struct nw_ack *k)
{
	struct attempt	*a;
	struct pub	*p;

	TAILQ_FOREACH(a, &N.attempts, entry)
		if (a->nm == k->nm)
			break;
	natsMsg_Destroy(k->nm);
	if (a == NULL)
		return;
	TAILQ_REMOVE(&N.attempts, a, entry);
	/* A late answer to an earlier attempt still counts when it is yes. */
	if ((p = pub_find(a->pub)) != NULL) {
		if (k->ok)
			pub_answered(p, k);
		else if (a->no == p->attempt) {
			snprintf(p->why, sizeof(p->why), "%s", k->why);
			p->next = now_ms() + RETRY_MS;
		}
	}
	free(a);
}

/*
 * Due attempts, and a fresh one for every chat whose attempt went out
 * before a reconnection (it may have been lost with the old socket).
 * Past its deadline a chat fails: it may still have been stored, which
 * a retry with the same id finds out.
 */
static void
pubs_tick(int64_t now)
{
	struct pub	*p, *next;
	uint64_t	 rc;
	char		 msg[320];
	int		 up = link_up(&rc, NULL);

	TAILQ_FOREACH_SAFE(p, &N.pubs, entry, next) {
		if (now >= p->deadline && p->attempt == 0) {
			snprintf(msg, sizeof(msg), "no NATS server was "
			    "reachable within %d ms; nothing was stored",
			    N.conf->nats.timeout_ms);
			send_fail(p->id, msg);
			pub_free(p);
		} else if (now >= p->deadline) {
			snprintf(msg, sizeof(msg), "NATS did not acknowledge "
			    "the message within %d ms (%s); it may still be "
			    "stored: retry with the same id",
			    N.conf->nats.timeout_ms, p->why);
			send_fail(p->id, msg);
			pub_free(p);
		} else if (up && ((p->next != 0 && now >= p->next) ||
		    (p->next == 0 && p->reconnected != rc)))
			pub_attempt(p, now);
	}
}

/* The link's state, to the master when it changed or once a second. */
static void
state_report(int64_t now)
{
	struct chan_frame	 f;
	struct nw_state		 st;

	pthread_mutex_lock(&NS.mu);
	st = NS.st;
	pthread_mutex_unlock(&NS.mu);
	if (memcmp(&st, &N.sent, sizeof(st)) == 0 &&
	    now - N.sent_ms < STATE_EVERY_MS)
		return;
	N.sent = st;
	N.sent_ms = now;
	frame_begin(&f, CH_NATS_STATE, 8);
	frame_bool(&f, "up", st.up);
	frame_str(&f, "server", st.server);
	frame_bool(&f, "stream_ok", st.stream_ok);
	frame_u64(&f, "stream_seq", st.stream_seq);
	frame_u64(&f, "replicas", (uint64_t)st.replicas);
	frame_str(&f, "leader", st.leader);
	frame_u64(&f, "reconnects", st.reconnects);
	frame_str(&f, "error", st.error);
	chan_send(N.ch, &f);
}

static void
forward(struct nw_in *in)
{
	struct chan_frame	 f;

	if (in->gen == N.gen && in->m.seq > N.fwd) {
		frame_begin(&f, CH_STREAM_MSG, 2);
		frame_u64(&f, "gen", in->gen);
		frame_msg(&f, "msg", &in->m);
		chan_queue(N.ch, &f);	/* with the others of this turn */
		N.fwd = in->m.seq;
	}
	msg_clear(&in->m);
	free(in);
}

/* What the other threads queued: answers, and stream messages. */
static void
drain(void)
{
	TAILQ_HEAD(, nw_ack)	 acks = TAILQ_HEAD_INITIALIZER(acks);
	TAILQ_HEAD(, nw_in)	 in = TAILQ_HEAD_INITIALIZER(in);
	struct nw_ack		*k;
	struct nw_in		*m;
	uint64_t		 room;

	room = N.fwd - N.stored < WINDOW ? WINDOW - (N.fwd - N.stored) : 0;
	pthread_mutex_lock(&NS.mu);
	TAILQ_CONCAT(&acks, &NS.acks, entry);
	while (room > 0 && (m = TAILQ_FIRST(&NS.in)) != NULL) {
		TAILQ_REMOVE(&NS.in, m, entry);
		NS.nin--;
		TAILQ_INSERT_TAIL(&in, m, entry);
		room--;
	}
	pthread_cond_broadcast(&NS.cond);
	pthread_mutex_unlock(&NS.mu);
	while ((k = TAILQ_FIRST(&acks)) != NULL) {
		TAILQ_REMOVE(&acks, k, entry);
		on_ack(k);
		free(k);
	}
	while ((m = TAILQ_FIRST(&in)) != NULL) {
		TAILQ_REMOVE(&in, m, entry);
		forward(m);
	}
}

static void
wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	if (N.quitting) {
		if (nats_link_stopped())
			event_base_loopbreak(N.base);
		return;
	}
	drain();
	state_report(now_ms());
}

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, TICK_MS * 1000 };
	int64_t		 now = now_ms();

	drain();
	pubs_tick(now);
	state_report(now);
	evtimer_add(N.tick, &tv);
}

/* Read the stream from `from` on: what is queued from before is stale. */
static void
on_consume(const msgpack_object *o)
{
	struct nw_in	*m;
	uint64_t	 gen, from;

	if (frame_get_u64(o, "gen", &gen) == -1 ||
	    frame_get_u64(o, "from", &from) == -1 || from == 0)
		fatalx("bad CH_CONSUME frame from the master");
	pthread_mutex_lock(&NS.mu);
	NS.want_gen = gen;
	NS.want_from = from;
	while ((m = TAILQ_FIRST(&NS.in)) != NULL) {
		TAILQ_REMOVE(&NS.in, m, entry);
		msg_clear(&m->m);
		free(m);
	}
	NS.nin = 0;
	pthread_cond_broadcast(&NS.cond);
	pthread_mutex_unlock(&NS.mu);
	N.gen = gen;
	N.fwd = N.stored = from - 1;
}

static void
on_stored(const msgpack_object *o)
{
	uint64_t	 seq;

	if (frame_get_u64(o, "seq", &seq) == -1)
		fatalx("bad CH_STORED frame from the master");
	if (seq > N.stored)
		N.stored = seq;
	drain();
}

/* Quit once the stream thread is done (wake_cb). */
static void
nats_quit(void)
{
	N.quitting = 1;
	evtimer_del(N.tick);
	nats_link_stop();
}

static void
nats_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	if (worker_frame_common(type, o))
		return;
	switch (type) {
	case CH_PUBLISH:
		on_publish(o);
		break;
	case CH_CONSUME:
		on_consume(o);
		break;
	case CH_STORED:
		on_stored(o);
		break;
	case CH_QUIT:
		nats_quit();
		break;
	default:
		fatalx("unexpected frame %d from the master", type);
	}
}

static void
shared_init(struct nt_config *conf)
{
	pthread_mutex_init(&NS.mu, NULL);
	pthread_cond_init(&NS.cond, NULL);
	TAILQ_INIT(&NS.in);
	TAILQ_INIT(&NS.acks);
	NS.conf = conf;
	NS.wake = event_new(N.base, -1, 0, wake_cb, NULL);
	if (NS.wake == NULL)
		fatalx("event_new");
}

void
nats_worker_main(struct worker_args *wa)
{
	char	*cause = NULL;

	N.conf = wa->conf;
	TAILQ_INIT(&N.pubs);
	TAILQ_INIT(&N.attempts);
	/* libnats reaches into the loop from its threads. */
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads");
	if ((N.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	shared_init(wa->conf);
	N.ch = chan_new(N.base, wa->chan_fd, "master", nats_frame,
	    worker_chan_lost, NULL);
	if (nats_link_open(N.base, &cause) == -1) {
		log_warnx("%s", cause);
		exit(NT_EXIT_FATAL);
	}
	N.tick = evtimer_new(N.base, tick_cb, NULL);
	tick_cb(-1, 0, NULL);
	event_base_dispatch(N.base);
	nats_link_close();
	exit(0);
}
