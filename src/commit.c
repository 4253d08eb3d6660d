/*
 * commit.c: what the master does with a chat.  A client's chat gets its
 * identity and clock and is appended to the store; so is a seed node's,
 * under a local-only identity.  Nobody hears of a message before it is
 * durable: appends collect in a pending list that one sync releases
 * (group commit), acknowledging, pushing to clients and replicating.
 * Joins are taken here too; their history goes out as a stream.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "channel.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "master.h"

#define HOLD_MS		5000	/* a chat waits this long for recovery */
#define HOLD_MAX	4096	/* chats held at most */
#define RECOVERING_TEXT	"this node may have lost messages of its own and " \
	"waits to hear what its peers hold; retry shortly"

static void	commit_write(void);
static void	commit_advance(void);
static void	commit_release(size_t);

/* One ack, apart from a release (the NATS engine's). */
void
send_ack(uint64_t conn, const struct nt_msg *m)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL || !M.ws.hello)
		return;
	frame_begin(&f, CH_ACK, 2);
	frame_u64(&f, "conn", conn);
	frame_msg(&f, "msg", m);
	chan_send(M.ws.ch, &f);
}

static void
send_fail(uint64_t conn, const char *code, const char *message)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL)
		return;
	frame_begin(&f, CH_CHAT_FAIL, 3);
	frame_u64(&f, "conn", conn);
	frame_str(&f, "code", code);
	frame_str(&f, "message", message);
	chan_send(M.ws.ch, &f);
}

/* Whether m is stored here but not yet durable (its ack waits). */
int
pending_has(const struct nt_msg *m)
{
	size_t	 i;

	for (i = 0; i < M.npend; i++)
		if (M.pend[i].fresh && M.pend[i].seq == m->seq &&
		    strcmp(M.pend[i].origin, m->origin) == 0)
			return (1);
	return (0);
}

/*
 * A message that waits for the sync that covers its record before anyone
 * hears of it; a copy, since the store keeps no texts in memory.  A
 * retry's message is durable already, but waits its turn: acks on a
 * connection keep their order.  The copy is in msg_pack() form, as the
 * frames that release and replicate it carry it: the record just
 * appended has those bytes already.
 */
void
pending_add(const struct nt_msg *m, int ack, uint64_t conn, int fresh,
    int replicate)
{
	struct pending	*p;
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;
	const char	*rec;
	size_t		 len;

	if (M.npend == M.pendcap) {
		M.pendcap = M.pendcap == 0 ? 64 : M.pendcap * 2;
		M.pend = xreallocarray(M.pend, M.pendcap, sizeof(*M.pend));
	}
	p = &M.pend[M.npend++];
	memset(p, 0, sizeof(*p));
	memcpy(p->origin, m->origin, sizeof(p->origin));
	p->seq = m->seq;
	if (store_last_packed(M.store, m->origin, m->seq, &rec, &len) == 0) {
		p->packed = xmalloc(len);
		memcpy(p->packed, rec, len);
		p->plen = len;
	} else {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msg_pack(&pk, m);
		p->packed = sb.data;	/* ours now */
		p->plen = sb.size;
	}
	p->conn = conn;
	p->ack = ack;
	p->fresh = fresh;
	p->replicate = replicate;
	p->t_us = mono_us();
	commit_schedule();
}

/*
 * Messages the log held beyond a gap that m filled took their places in
 * the store: like m, they are pushed once the sync is done.
 */
void
pending_unparked(const struct nt_msg *m)
{
	const struct nt_msg	*u;
	uint64_t		 seq, have;

	have = have_get(store_have(M.store), m->origin);
	for (seq = m->seq + 1; seq <= have; seq++)
		if ((u = store_lookup(M.store, m->origin, seq)) != NULL)
			pending_add(u, 0, 0, 1, 0);
}

static void
log_chat(const struct nt_msg *m)
{
	char	 from[NT_FROM_MAX * 4 + 1], text[1024];

	str_escape(m->from, from, sizeof(from));
	str_escape(m->text, text, sizeof(text));
	log_info("CHAT from %s: '%s' (total messages here: %zu)", from, text,
	    store_count(M.store));
}

/* 1 stored, 0 already there, -2 gap, -1 write error (logged). */
int
store_message(const struct nt_msg *m)
{
	int	 rv;

	if ((rv = store_append(M.store, m)) == -1)
		log_warn("%s: append", store_path(M.store));
	else if (rv == 1)
		log_chat(m);
	return (rv);
}

/*
 * Whether this node stores messages of this origin: a configured node's,
 * or its own local-only origin (seed nodes' chats).  Anything else would
 * only fill the have vector that every sync carries.
 */
int
origin_known(const char *origin)
{
	char	 mine[NT_ORIGIN_MAX + 1];

	if (config_node(M.conf, origin) != NULL)
		return (1);
	snprintf(mine, sizeof(mine), "%s/seed", M.conf->node_id);
	return (strcmp(origin, mine) == 0);
}

/* Said once in a while: a clock that cannot go on. */
static void
clock_spent(void)
{
	static struct ratelimit	 rl;
	char			 note[RATELIMIT_NOTE];

	if (ratelimit_pass(&rl, now_ms(), note, sizeof(note)))
		log_warnx("the Lamport clock is at %llu, the largest value a "
		    "message may carry: this node numbers no new message%s",
		    (unsigned long long)store_lamport(M.store), note);
}

/*
 * A client's chat comes after everything this node stored and after the
 * newest message the client says it saw ("after"), which may not have
 * reached this node yet: an answer then sorts after its question on every
 * node.  A client may not push the clock arbitrarily far, and no clock
 * reaches 2^53 (NT_LAMPORT_MAX): 0 once it is spent.
 */
static uint64_t
client_lamport(uint64_t after)
{
	uint64_t	 clock = store_lamport(M.store);

	if (clock >= NT_LAMPORT_MAX)
		return (0);
	if (after > clock + AFTER_MAX_JUMP)
		after = clock + AFTER_MAX_JUMP;
	if (after > clock)
		clock = after;
	return (clock >= NT_LAMPORT_MAX ? NT_LAMPORT_MAX : clock + 1);
}

/*
 * The rules the ws worker applied, checked again against this process's
 * config (a reload reaches the workers a moment later).  NULL when m
 * follows them, else the error code.
 */
const char *
chat_invalid(const struct nt_msg *m, const char *path)
{
	static struct ratelimit	 rl;
	const char		*code, *field, *why;
	char			 note[RATELIMIT_NOTE];

	if (msg_check(m, (size_t)M.conf->max_message_bytes, &code, &field,
	    &why) == 0)
		return (NULL);
	if (ratelimit_pass(&rl, now_ms(), note, sizeof(note)))
		log_warnx("refusing %s: '%s' %s (max_message_bytes %d)%s",
		    path, field, why, M.conf->max_message_bytes, note);
	return (code);
}

static void
chat_clear(struct client_chat *cc)
{
	free(cc->from);
	free(cc->text);
	free(cc->cid);
	memset(cc, 0, sizeof(*cc));
}

/*
 * Number, store and (once durable) acknowledge a client's chat.  Returns 1
 * when the chat was held for later (hold_add() took it), else 0.
 */
static int
chat_take(struct client_chat *cc)
{
	const struct nt_msg	*old;
	struct nt_msg		 m;

	/* Acks on a connection keep the order of its chats. */
	if (M.nheld > 0)
		return (hold_add(cc));
	/* A retry after a lost ack: answer with what was stored. */
	if (cc->cid != NULL && (old = store_lookup_client_id(M.store,
	    M.conf->node_id, cc->cid)) != NULL) {
		M.stats.retries++;
		pending_add(old, 1, cc->conn, 0, 0);
		return (0);
	}
	if (M.recovering)
		return (hold_add(cc));
	memset(&m, 0, sizeof(m));
	if ((m.lamport = client_lamport(cc->after)) == 0) {
		clock_spent();
		send_fail(cc->conn, "clock_exhausted", "this node's Lamport "
		    "clock has reached its largest value");
		return (0);
	}
	snprintf(m.origin, sizeof(m.origin), "%s", M.conf->node_id);
	m.seq = have_get(store_have(M.store), m.origin) + 1;
	m.ts = now_ms();
	m.from = cc->from;
	m.text = cc->text;
	m.client_id = cc->cid;
	if (store_message(&m) == 1) {
		M.stats.accepted++;
		pending_add(&m, 1, cc->conn, 1, 1);
		pending_unparked(&m);
	} else
		send_fail(cc->conn, "store_failed",
		    "the message could not be stored");
	return (0);
}

void
on_client_chat(const msgpack_object *o)
{
	struct client_chat	 cc;
	struct nt_msg		 view;
	const char		*code;
	int64_t			 t;

	memset(&cc, 0, sizeof(cc));
	if (frame_get_i64(o, "t_us", &t) == 0)
		hist_add(&M.stats.chan_lat, (mono_us() - t) / 1e6);
	if (frame_get_u64(o, "conn", &cc.conn) == -1 ||
	    (cc.from = frame_get_str(o, "from")) == NULL ||
	    (cc.text = frame_get_str(o, "text")) == NULL) {
		chat_clear(&cc);
		return;
	}
	cc.cid = frame_get_str(o, "cid");
	frame_get_u64(o, "after", &cc.after);
	memset(&view, 0, sizeof(view));
	view.from = cc.from;
	view.text = cc.text;
	view.client_id = cc.cid;
	if ((code = chat_invalid(&view, "a client's chat")) != NULL) {
		send_fail(cc.conn, code, "the message breaks this node's rules");
		chat_clear(&cc);
		return;
	}
	if (!chat_take(&cc))
		chat_clear(&cc);
}

/*
 * While the node recovers (replicate.c), client chats wait, up to
 * HOLD_MS and HOLD_MAX of them, and are numbered as soon as recovery
 * ends: a cluster that starts with empty logs takes its first chats
 * without an error.  A chat that waited too long is answered with
 * "recovering".  Takes cc's strings.
 */
int
hold_add(struct client_chat *cc)
{
	struct timeval	 tv = { HOLD_MS / 1000, (HOLD_MS % 1000) * 1000 };

	if (M.nheld >= HOLD_MAX) {
		send_fail(cc->conn, "recovering", RECOVERING_TEXT);
		return (0);
	}
	cc->until_ms = now_ms() + HOLD_MS;
	M.held = xreallocarray(M.held, M.nheld + 1, sizeof(*M.held));
	M.held[M.nheld++] = *cc;
	memset(cc, 0, sizeof(*cc));
	if (!evtimer_pending(M.hold_ev, NULL))
		evtimer_add(M.hold_ev, &tv);
	return (1);
}

/* Chats held longer than HOLD_MS get their "recovering" answer. */
void
hold_expire_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv;
	int64_t		 now = now_ms(), wait;
	size_t		 i, n = 0;

	while (n < M.nheld && M.held[n].until_ms <= now)
		n++;
	for (i = 0; i < n; i++) {
		send_fail(M.held[i].conn, "recovering", RECOVERING_TEXT);
		chat_clear(&M.held[i]);
	}
	memmove(M.held, M.held + n, (M.nheld - n) * sizeof(*M.held));
	M.nheld -= n;
	if (M.nheld > 0) {
		wait = M.held[0].until_ms - now;
		tv.tv_sec = wait / 1000;
		tv.tv_usec = (wait % 1000) * 1000;
		evtimer_add(M.hold_ev, &tv);
	}
}

/* Recovery ended: number the held chats in the order they came. */
void
hold_release(void)
{
	struct client_chat	*held = M.held;
	size_t			 i, n = M.nheld;

	M.held = NULL;
	M.nheld = 0;
	evtimer_del(M.hold_ev);
	for (i = 0; i < n; i++)
		if (!chat_take(&held[i]))
			chat_clear(&held[i]);
	free(held);
}

/* The ws worker died: the held chats' connections are gone. */
void
hold_drop(void)
{
	size_t	 i;

	for (i = 0; i < M.nheld; i++)
		chat_clear(&M.held[i]);
	free(M.held);
	M.held = NULL;
	M.nheld = 0;
	evtimer_del(M.hold_ev);
}

/* A seed node's chat: no identity, so it gets a local-only one. */
void
on_seed_chat(const msgpack_object *o)
{
	struct nt_msg	 m;

	memset(&m, 0, sizeof(m));
	if ((m.from = frame_get_str(o, "from")) == NULL ||
	    (m.text = frame_get_str(o, "text")) == NULL ||
	    chat_invalid(&m, "a seed node's chat") != NULL) {
		msg_clear(&m);
		return;
	}
	if (store_lamport(M.store) >= NT_LAMPORT_MAX) {
		clock_spent();
		msg_clear(&m);
		return;
	}
	snprintf(m.origin, sizeof(m.origin), "%s/seed", M.conf->node_id);
	m.seq = have_get(store_have(M.store), m.origin) + 1;
	m.lamport = store_lamport(M.store) + 1;
	m.ts = now_ms();
	if (store_message(&m) == 1) {
		M.stats.seed_in++;
		pending_add(&m, 0, 0, 1, 0);
		pending_unparked(&m);
	}
	msg_clear(&m);
}

/*
 * Recovered: we hold at least what the client says it saw, of every
 * origin we hold or accept.  Another node's local-only origin ("B/seed")
 * or an origin foreign to this cluster can never reach us: such keys of
 * `since` are ignored.
 */
static int
join_recovered(const struct nt_have *since)
{
	const struct nt_have	*mine = store_have(M.store);
	size_t			 i;
	uint64_t		 held;

	for (i = 0; i < since->n; i++) {
		held = have_get(mine, since->v[i].origin);
		if (since->v[i].seq > held &&
		    (held > 0 || origin_known(since->v[i].origin)))
			return (0);
	}
	return (1);
}

/*
 * A join: its history goes out as a stream (stream.c): what the client
 * lacks after since, or without since the newest join_history messages.
 */
void
on_join(const msgpack_object *o)
{
	struct nt_have	 since;
	uint64_t	 conn;
	int		 has_since;

	if (frame_get_u64(o, "conn", &conn) == -1)
		return;
	has_since = frame_get_have(o, "since", &since) == 0;
	if (!has_since)
		memset(&since, 0, sizeof(since));
	stream_join(conn, has_since ? &since : NULL, join_recovered(&since),
	    (uint64_t)M.conf->join_history);
	have_clear(&since);
}

/* A page of older history: limit messages before a message. */
void
on_page(const msgpack_object *o)
{
	char		*origin;
	uint64_t	 conn, seq = 0, lamport = 0, limit;

	if (frame_get_u64(o, "conn", &conn) == -1 ||
	    frame_get_u64(o, "limit", &limit) == -1)
		return;
	origin = frame_get_str(o, "origin");
	frame_get_u64(o, "seq", &seq);
	frame_get_u64(o, "lamport", &lamport);
	stream_page(conn, origin, seq, lamport, limit);
	free(origin);
}

/*
 * Group commit without a timer.  The records a turn of the event loop
 * appended go to the log in one write(2) at the end of the turn; then, if
 * no sync is under way, the sync thread (syncer.c) starts one at once.
 * What is written while it runs waits for the next, which starts as soon
 * as it returns: a quiet node acknowledges a chat one write and one sync
 * after it came, and a busy one makes as many syncs as the disk allows,
 * each covering everything written before it began.
 */
void
commit_cb(evutil_socket_t fd, short ev, void *arg)
{
	M.sync_armed = 0;
	commit_write();
}

/* The end of this turn, when the frames at hand have been handled. */
void
commit_schedule(void)
{
	struct timeval	 tv = { 0, 0 };

	if (M.sync_armed)
		return;
	M.sync_armed = 1;
	evtimer_add(M.sync_ev, &tv);
}

/*
 * The turn's records in one write(2), then on towards durable
 * (commit_advance).  A failed write drops the turn's records (journal.c):
 * what was pending can never be made durable, so the node stops rather
 * than acknowledge it.
 */
static void
commit_write(void)
{
	if (store_write(M.store) == -1)
		fatal("%s: write", store_path(M.store));
	M.npend_written = M.npend;
	commit_advance();
}

/*
 * Release what is durable, or start the sync the written records need;
 * right after commit_write(), so that the log size is what was written.
 * With fsync = "none", written is enough; otherwise it is durable once a
 * sync that began after the write has returned.  Acks keep their order,
 * so nothing overtakes what the sync under way covers.
 */
static void
commit_advance(void)
{
	off_t	 size;

	if (syncer_busy(M.syncer))
		return;		/* commit_synced() comes back here */
	size = store_log_size(M.store);
	if (M.conf->fsync == FSYNC_NONE || size == M.synced_to) {
		commit_release(M.npend_written);
		return;
	}
	M.synced_to = size;
	M.npend_syncing = M.npend_written;
	syncer_start(M.syncer);
}

/*
 * The sync thread's sync returned.  After a failed fsync the kernel may
 * have dropped the dirty pages, so a retry could "succeed" over lost
 * data: nothing unacknowledged may be acknowledged now, and the safe
 * answer is to stop.
 */
void
commit_synced(int error, int64_t took_us, void *arg)
{
	size_t	 n = M.npend_syncing;

	if (error != 0) {
		errno = error;
		fatal("%s: fsync", store_path(M.store));
	}
	M.stats.syncs++;
	hist_add(&M.stats.fsync_lat, took_us / 1e6);
	M.npend_syncing = 0;
	commit_release(n);
	/* What this turn appended so far goes into the next sync too. */
	commit_write();
}

/*
 * A clean stop: everything stored is written, made durable and released
 * now, the loop waiting for the syncs.
 */
void
commit_drain(void)
{
	commit_write();
	while (syncer_busy(M.syncer))
		syncer_wait(M.syncer);
}

/*
 * What one sync released, for the ws worker: one CH_RELEASE frame rather
 * than an ack and a push frame per message.  msgs takes the pending
 * messages' bytes as they are (batch_add_raw: no batch_init needed).
 */
static struct {
	struct chan_batch	 msgs;
	uint64_t		*acks;
	unsigned char		*push;
	size_t			 cap;
} rel;

static void
release_flush(void)
{
	struct chan_frame	 f;

	if (rel.msgs.n == 0)
		return;
	if (M.ws.ch != NULL && M.ws.hello) {
		frame_begin(&f, CH_RELEASE, 3);
		frame_batch(&f, "msgs", &rel.msgs);
		frame_u64v(&f, "acks", rel.acks, rel.msgs.n);
		frame_boolv(&f, "push", rel.push, rel.msgs.n);
		chan_send(M.ws.ch, &f);
	}
	batch_reset(&rel.msgs);
}

static void
release_add(const struct pending *p, uint64_t ack_conn, int push)
{
	if (rel.msgs.sb.size >= CHAN_BATCH_BYTES)
		release_flush();
	if (rel.msgs.n == rel.cap) {
		rel.cap = rel.cap == 0 ? 64 : rel.cap * 2;
		rel.acks = xreallocarray(rel.acks, rel.cap, sizeof(*rel.acks));
		rel.push = xreallocarray(rel.push, rel.cap, sizeof(*rel.push));
	}
	rel.acks[rel.msgs.n] = ack_conn;
	rel.push[rel.msgs.n] = push != 0;
	batch_add_raw(&rel.msgs, p->packed, p->plen);
}

/* At a clean stop. */
void
release_free(void)
{
	batch_clear(&rel.msgs);
	free(rel.acks);
	free(rel.push);
	memset(&rel, 0, sizeof(rel));
}

/* The first n pending messages are durable: everyone may hear of them. */
static void
commit_release(size_t n)
{
	struct pending	 p;
	size_t		 i;
	int64_t		 now;

	now = mono_us();
	for (i = 0; i < n; i++) {
		p = M.pend[i];
		/* Readers (history, catch-up) may see it from now on. */
		store_release(M.store, p.origin, p.seq);
		if (p.fresh)
			hist_add(&M.stats.commit_lat, (now - p.t_us) / 1e6);
		/* Conn ids start at 1: 0 is "no ack". */
		if (p.ack || p.fresh)
			release_add(&p, p.ack ? p.conn : 0, p.fresh);
		if (p.replicate) {
			M.stats.replicated_out++;
			replicate_count_live();
			replicate_queue(p.origin, p.seq, p.packed, p.plen);
		}
		free(p.packed);
	}
	release_flush();
	replicate_flush();
	if (n > 0) {
		memmove(M.pend, M.pend + n, (M.npend - n) * sizeof(*M.pend));
		M.npend -= n;
		M.npend_written -= n;
	}
	M.engine->committed();
}
