/*
 * commit.c: what the master does with a chat.  A client's chat gets its
 * identity and clock and is appended to the store; so is a seed node's,
 * under a local-only identity.  Nobody hears of a message before it is
 * durable: appends collect in a pending list that one sync releases
 * (group commit), acknowledging, pushing to clients and replicating.
 * Joins are answered here too, from the store in cluster order.
 */
#include <sys/types.h>

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

#define AFTER_MAX_JUMP	1000000	/* how far a client may push our clock */

void
send_msg_frame(struct worker *w, enum chan_type type, int with_conn,
    uint64_t conn, const char *peer, const struct nt_msg *m)
{
	struct chan_frame	 f;

	if (w->ch == NULL || !w->hello)
		return;
	frame_begin(&f, type, 1 + (with_conn ? 1 : 0) + (peer ? 1 : 0));
	if (with_conn)
		frame_u64(&f, "conn", conn);
	if (peer != NULL)
		frame_str(&f, "peer", peer);
	frame_msg(&f, "msg", m);
	chan_send(w->ch, &f);
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

void
pending_add(const struct nt_msg *m, int ack, uint64_t conn, int fresh,
    int replicate)
{
	struct pending	*p;

	M.pend = xreallocarray(M.pend, M.npend + 1, sizeof(*M.pend));
	p = &M.pend[M.npend++];
	memset(p, 0, sizeof(*p));
	memcpy(p->origin, m->origin, sizeof(p->origin));
	p->seq = m->seq;
	p->conn = conn;
	p->ack = ack;
	p->fresh = fresh;
	p->replicate = replicate;
	p->t_us = mono_us();
	commit_schedule();
}

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
 * A client's chat comes after everything this node stored and after the
 * newest message the client says it saw ("after"), which may not have
 * reached this node yet: an answer then sorts after its question on every
 * node.  A client may not push the clock arbitrarily far.
 */
static uint64_t
client_lamport(const msgpack_object *o)
{
	uint64_t	 after = 0, clock = store_lamport(M.store);

	frame_get_u64(o, "after", &after);
	if (after > clock + AFTER_MAX_JUMP)
		after = clock + AFTER_MAX_JUMP;
	return ((after > clock ? after : clock) + 1);
}

void
on_client_chat(const msgpack_object *o)
{
	const struct nt_msg	*old;
	struct nt_msg		 m;
	uint64_t		 conn;
	int64_t			 t;

	memset(&m, 0, sizeof(m));
	if (frame_get_i64(o, "t", &t) == 0)
		hist_add(&M.stats.chan_lat, (mono_us() - t) / 1e6);
	if (frame_get_u64(o, "conn", &conn) == -1 ||
	    (m.from = frame_get_str(o, "from")) == NULL ||
	    (m.text = frame_get_str(o, "text")) == NULL)
		goto out;
	m.client_id = frame_get_str(o, "cid");
	/* A retry after a lost ack: answer with what was stored. */
	if (m.client_id != NULL && (old = store_lookup_client_id(M.store,
	    M.conf->node_id, m.client_id)) != NULL) {
		M.stats.retries++;
		pending_add(old, 1, conn, 0, 0);
		goto out;
	}
	if (M.recovering) {
		send_fail(conn, "recovering", "this node lost the end of its "
		    "log and waits to hear from every peer; retry shortly");
		goto out;
	}
	snprintf(m.origin, sizeof(m.origin), "%s", M.conf->node_id);
	m.seq = have_get(store_have(M.store), m.origin) + 1;
	m.lamport = client_lamport(o);
	m.ts = now_ms();
	if (store_message(&m) == 1) {
		M.stats.accepted++;
		pending_add(&m, 1, conn, 1, 1);
	} else
		send_fail(conn, "store_failed", "the message could not be stored");
out:
	msg_clear(&m);
}

/* A seed node's chat: no identity, so it gets a local-only one. */
void
on_seed_chat(const msgpack_object *o)
{
	struct nt_msg	 m;

	memset(&m, 0, sizeof(m));
	if ((m.from = frame_get_str(o, "from")) == NULL ||
	    (m.text = frame_get_str(o, "text")) == NULL) {
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
	}
	msg_clear(&m);
}

/* Recovered: we hold at least what the client says it saw, everywhere. */
static int
join_recovered(const struct nt_have *since)
{
	size_t	 i;

	for (i = 0; i < since->n; i++)
		if (since->v[i].seq > have_get(store_have(M.store),
		    since->v[i].origin))
			return (0);
	return (1);
}

void
on_join(const msgpack_object *o)
{
	const struct nt_msg	*m;
	struct nt_have		 since;
	struct chan_frame	 f;
	uint64_t		 conn, count = 0;
	size_t			 i;

	if (frame_get_u64(o, "conn", &conn) == -1)
		return;
	if (frame_get_have(o, "since", &since) == -1)
		memset(&since, 0, sizeof(since));
	for (i = 0; i < store_count(M.store); i++) {
		m = store_at(M.store, i);
		if (m->seq <= have_get(&since, m->origin) || pending_has(m))
			continue;
		send_msg_frame(&M.ws, CH_HISTORY, 1, conn, NULL, m);
		count++;
	}
	frame_begin(&f, CH_JOINED, 3);
	frame_u64(&f, "conn", conn);
	frame_u64(&f, "count", count);
	frame_bool(&f, "recovered", join_recovered(&since));
	chan_send(M.ws.ch, &f);
	have_clear(&since);
}

void
commit_cb(evutil_socket_t fd, short ev, void *arg)
{
	M.sync_armed = 0;
	commit_release();
}

void
commit_schedule(void)
{
	struct timeval	 tv = { 0, 0 };
	int64_t		 wait_us;

	if (M.sync_armed)
		return;
	M.sync_armed = 1;
	/*
	 * The commit runs once the frames at hand are handled, so one sync
	 * covers all of them.  "batch" also spaces syncs at least
	 * fsync_interval_ms apart: a sync right away when the last one is
	 * that old, else when it will be.  A quiet node acks at once; a busy
	 * one makes at most one sync per interval.
	 */
	if (M.conf->fsync == FSYNC_BATCH && store_dirty(M.store)) {
		wait_us = M.last_sync_us + M.conf->fsync_interval_ms * 1000LL -
		    mono_us();
		if (wait_us > 0) {
			tv.tv_sec = wait_us / 1000000;
			tv.tv_usec = wait_us % 1000000;
		}
	}
	evtimer_add(M.sync_ev, &tv);
}

void
commit_release(void)
{
	const struct nt_msg	*m;
	struct pending		*p;
	size_t			 i, n;
	int64_t			 t, now;

	/*
	 * After a failed fsync the kernel may have dropped the dirty pages,
	 * so a retry could "succeed" over lost data: nothing unacknowledged
	 * may be acknowledged now, and the safe answer is to stop.
	 */
	if (M.conf->fsync != FSYNC_NONE && store_dirty(M.store)) {
		t = mono_us();
		if (store_sync(M.store) == -1)
			fatal("%s: fsync", store_path(M.store));
		M.stats.syncs++;
		M.last_sync_us = mono_us();
		hist_add(&M.stats.fsync_lat, (M.last_sync_us - t) / 1e6);
	}
	now = mono_us();
	n = M.npend;
	for (i = 0; i < n; i++) {
		p = &M.pend[i];
		if ((m = store_lookup(M.store, p->origin, p->seq)) == NULL)
			continue;
		if (p->ack)
			send_msg_frame(&M.ws, CH_ACK, 1, p->conn, NULL, m);
		if (p->fresh) {
			hist_add(&M.stats.commit_lat, (now - p->t_us) / 1e6);
			send_msg_frame(&M.ws, CH_PUSH, 0, 0, NULL, m);
		}
		if (p->replicate) {
			M.stats.replicated_out++;
			send_msg_frame(&M.peer, CH_REPLICATE, 0, 0, "", m);
		}
	}
	free(M.pend);
	M.pend = NULL;
	M.npend = 0;
	M.engine->committed();
}
