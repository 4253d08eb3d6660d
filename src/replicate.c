/*
 * replicate.c: what the master does with its peers.  Replicated messages
 * are stored once each and only without a gap (a gap asks that link for
 * catch-up); a peer's sync gets what it lacks, of every origin; every
 * link hears our have when it changes and every few seconds regardless
 * (anti-entropy); and a node that lost its log's tail waits for its peers
 * before it numbers a chat again.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "master.h"

#define GAP_SYNC_MS	500	/* at most one gap-triggered sync per link */
#define SYNC_TICK_MS	1000	/* a changed have is told this often */
#define SYNC_EVERY_MS	5000	/* an unchanged one this often */

/*
 * What a sync tells a peer: our have for the configured nodes only.  Our
 * local-only origins mean nothing to a peer, and an origin foreign to the
 * cluster (from a log written before such origins were refused) would only
 * make every sync larger.
 */
static void
nodes_only(const struct nt_have *in, struct nt_have *out)
{
	uint64_t	 seq;
	size_t		 i;

	have_clear(out);
	for (i = 0; i < M.conf->nnodes; i++)
		if ((seq = have_get(in, M.conf->nodes[i].id)) > 0)
			have_set(out, M.conf->nodes[i].id, seq);
}

static void
peer_have(struct nt_have *out)
{
	nodes_only(store_have(M.store), out);
}

static void
send_sync(uint64_t conn)
{
	struct chan_frame	 f;
	struct nt_have		 have = { NULL, 0 };

	if (M.ws.ch == NULL || !M.ws.hello)
		return;
	peer_have(&have);
	frame_begin(&f, CH_SYNC, 2);
	frame_u64(&f, "conn", conn);
	frame_have(&f, "have", &have);
	chan_send(M.ws.ch, &f);
	have_clear(&have);
}

/* A sync on the peer's link to us, and what it said. */
static void
sync_peer(struct peer_state *ps)
{
	send_sync(ps->in_conn);
	peer_have(&ps->told);
	ps->told_ms = now_ms();
}

static struct peer_state *
peer_state(const char *id)
{
	size_t	 i;

	for (i = 0; i < M.npeers; i++)
		if (strcmp(M.peers[i].view.id, id) == 0)
			return (&M.peers[i]);
	return (NULL);
}

/* One entry per configured peer; what is known of a kept peer stays. */
void
peers_rebuild(void)
{
	struct peer_state	*old = M.peers, *o, *p;
	size_t			 nold = M.npeers, i, j;

	M.peers = xcalloc(M.conf->nnodes, sizeof(*M.peers));
	M.npeers = 0;
	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self)
			continue;
		p = &M.peers[M.npeers++];
		snprintf(p->view.id, sizeof(p->view.id), "%s",
		    M.conf->nodes[i].id);
		for (j = 0; j < nold; j++) {
			o = &old[j];
			if (strcmp(o->view.id, p->view.id) != 0)
				continue;
			*p = *o;
			memset(o, 0, sizeof(*o));
		}
	}
	for (j = 0; j < nold; j++) {
		have_clear(&old[j].view.have);
		have_clear(&old[j].sent);
		have_clear(&old[j].told);
	}
	free(old);
}

/*
 * Ask a peer's link for everything we lack, at most once per GAP_SYNC_MS
 * per link: its catch-up comes in cluster order and fills the hole.
 * Returns whether it asked now.
 */
static int
ask_catchup(struct peer_state *ps, uint64_t conn)
{
	M.stats.gaps++;
	ps->view.gaps++;
	if (ps->gap_conn == conn && now_ms() - ps->gap_ms <= GAP_SYNC_MS)
		return (0);
	ps->gap_conn = conn;
	ps->gap_ms = now_ms();
	send_sync(conn);
	return (1);
}

/*
 * A lamport beyond our clock + PEER_MAX_JUMP is refused like a gap: not
 * stored, asked for again.  A node mints at most AFTER_MAX_JUMP + 1 past
 * everything it holds, and stores from peers at most PEER_MAX_JUMP past
 * it, so no node's lamports ever leave a hole wider than PEER_MAX_JUMP.
 * Catch-up comes in cluster order: the first message it brings that we
 * lack follows, in that order, messages we hold or have just stored whose
 * lamport is at most PEER_MAX_JUMP below it, so it is taken, and so is
 * each after it.  After a long partition the other side's clock may be far
 * ahead; its catch-up still walks ours up step by step.  Only a message
 * whose predecessors no peer can give us waits, and it waits not stored:
 * a wrong clock never reaches the log.
 */
static int
lamport_too_far(const char *peer, const struct nt_msg *m)
{
	static struct ratelimit	 rl;
	uint64_t		 clock = store_lamport(M.store);
	char			 note[RATELIMIT_NOTE];

	if (m->lamport <= NT_LAMPORT_MAX && (clock >= NT_LAMPORT_MAX ||
	    m->lamport <= clock + PEER_MAX_JUMP))
		return (0);
	if (ratelimit_pass(&rl, now_ms(), note, sizeof(note)))
		log_warnx("refusing replicated chat %s-%llu from peer %s for "
		    "now: its lamport %llu is more than %d past our clock %llu;"
		    " asking for catch-up%s", m->origin,
		    (unsigned long long)m->seq, peer,
		    (unsigned long long)m->lamport, PEER_MAX_JUMP,
		    (unsigned long long)clock, note);
	return (1);
}

/*
 * Whether a replicated message may be stored here at all: of a configured
 * node, and within our limits (the ws worker checked those too, under a
 * config that may be a reload older).  Refusals are logged now and then,
 * naming the peer, the message and the rule.
 */
static int
peer_chat_ok(const char *peer, const struct nt_msg *m)
{
	static struct ratelimit	 rl;
	char			 what[NT_ID_MAX + NT_ORIGIN_MAX + 64];
	char			 note[RATELIMIT_NOTE];

	snprintf(what, sizeof(what), "replicated chat %s-%llu from peer %s",
	    m->origin, (unsigned long long)m->seq, peer);
	if (chat_invalid(m, what) != NULL)
		return (0);
	if (config_node(M.conf, m->origin) != NULL)
		return (1);
	if (ratelimit_pass(&rl, now_ms(), note, sizeof(note)))
		log_warnx("refusing %s: %s is not a node of this cluster%s",
		    what, m->origin, note);
	return (0);
}

/*
 * A replicated message.  A gap (its seq jumps past what we hold) is not
 * stored: we ask that link for everything we lack instead, so the store
 * stays gap-free per origin.
 */
void
on_peer_chat(const msgpack_object *o)
{
	struct peer_state	*ps;
	struct nt_msg		 m;
	char			*peer;
	uint64_t		 conn;
	int			 rv;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "conn", &conn) == -1 ||
	    frame_get_msg(o, "msg", &m) == -1) {
		log_warnx("bad CH_PEER_CHAT frame from ws worker");
		free(peer);
		return;
	}
	ps = peer_state(peer);
	if (!peer_chat_ok(peer, &m))
		rv = -3;
	else if (m.seq == have_get(store_have(M.store), m.origin) + 1 &&
	    lamport_too_far(peer, &m)) {
		if (ps != NULL)
			ask_catchup(ps, conn);
		rv = -3;
	} else
		rv = store_message(&m);
	if (rv == 1) {
		M.stats.replicated_in++;
		if (ps != NULL)
			ps->view.replicated_in++;
		pending_add(&m, 0, 0, 1, 0);
		pending_unparked(&m);
		recovery_check();
	} else if (rv == 0) {
		M.stats.duplicates++;
		if (ps != NULL)
			ps->view.duplicates++;
	} else if (rv == -2 && ps != NULL && ask_catchup(ps, conn))
		log_info("Gap from %s at %s-%llu; asking for catch-up",
		    peer, m.origin, (unsigned long long)m.seq);
	msg_clear(&m);
	free(peer);
}

/* A new message of ours goes to every peer whose link is up. */
void
replicate_count_live(void)
{
	size_t	 i;

	for (i = 0; i < M.npeers; i++)
		if (M.peers[i].view.up && M.peer.hello)
			M.peers[i].view.replicated_out++;
}

/*
 * A node that may have lost messages of its own that it acknowledged and
 * that other nodes hold (store_doubt(): a damaged or empty log, say)
 * must not number a chat before it knows what they hold: a number given
 * twice names two messages, and no catch-up could tell them apart.  So it
 * takes no chats until every peer (but seed nodes, which keep no
 * identities) has said what it holds and it holds as much of its own
 * origin as any of them.  A peer that never comes back must be removed
 * from the configuration (a reload) to end the wait.  The state is kept
 * on disk (store_set_recovering()), so that a crash does not end it.
 */

/* Whether a peer could hold our messages: a configured node, not a seed. */
static int
peer_counts(const struct peer_state *ps)
{
	struct nt_node	*n = config_node(M.conf, ps->view.id);

	return (n != NULL && !n->seed);
}

/* Whether we still wait for this peer to tell us what it holds of ours. */
static int
peer_awaited(const struct peer_state *ps)
{
	const char	*self = M.conf->node_id;

	return (peer_counts(ps) && (!ps->view.have_known ||
	    have_get(&ps->view.have, self) >
	    have_get(store_have(M.store), self)));
}

/* The peers recovery waits for, at most max of them; returns how many. */
size_t
recovery_waiting(const char **ids, size_t max)
{
	size_t	 i, n = 0;

	for (i = 0; M.recovering && i < M.npeers; i++)
		if (peer_awaited(&M.peers[i]) && n < max)
			ids[n++] = M.peers[i].view.id;
	return (n);
}

/* "B, C": the peers recovery waits for, for the log. */
static void
recovery_list(char *buf, size_t len)
{
	size_t	 i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < M.npeers && off < len; i++)
		if (peer_awaited(&M.peers[i]))
			off += snprintf(buf + off, len - off, "%s%s",
			    off > 0 ? ", " : "", M.peers[i].view.id);
}

static void
recovery_mark(int on)
{
	char	*cause = NULL;

	if (store_set_recovering(M.store, on, &cause) == -1)
		fatalx("%s", cause);
}

/* At start-up: wait when the store gives a reason and there are peers. */
void
recovery_start(void)
{
	const char	*why = store_doubt(M.store);
	char		 list[512];
	size_t		 i;
	int		 peers = 0;

	for (i = 0; i < M.npeers; i++)
		peers += peer_counts(&M.peers[i]);
	if (why == NULL || peers == 0) {
		/* Nobody could hold a message we lack. */
		recovery_mark(0);
		return;
	}
	recovery_mark(1);
	M.recovering = 1;
	M.recovery_why = why;
	recovery_list(list, sizeof(list));
	snprintf(M.recovery_waits, sizeof(M.recovery_waits), "%s", list);
	log_warnx("%s: chats wait until %s %s said what %s of %s's messages "
	    "(to stop waiting for a peer that is gone for good, remove it "
	    "from nodes and reload)", why, list, peers > 1 ? "have" : "has",
	    peers > 1 ? "they hold" : "it holds", M.conf->node_id);
}

void
recovery_check(void)
{
	const char	*self = M.conf->node_id;
	char		 list[512];

	if (!M.recovering)
		return;
	recovery_list(list, sizeof(list));
	if (list[0] != '\0') {
		if (strcmp(list, M.recovery_waits) != 0)
			log_info("recovering: still waiting for %s", list);
		snprintf(M.recovery_waits, sizeof(M.recovery_waits), "%s",
		    list);
		return;
	}
	recovery_mark(0);
	M.recovering = 0;
	log_info("every peer has been heard from and %s-%llu is the last of "
	    "our messages; taking chats again", self,
	    (unsigned long long)have_get(store_have(M.store), self));
	hold_release();
}

/*
 * A peer that dialled us is up: our own link to it should not wait out a
 * backoff that grew while it was down (a recovering node waits for it).
 */
static void
dial_now(const char *peer)
{
	struct peer_state	*ps;
	struct chan_frame	 f;

	if ((ps = peer_state(peer)) == NULL || ps->view.up ||
	    M.peer.ch == NULL || !M.peer.hello)
		return;
	frame_begin(&f, CH_DIAL, 1);
	frame_str(&f, "peer", peer);
	chan_send(M.peer.ch, &f);
}

void
on_peer_hello(const msgpack_object *o)
{
	struct peer_state *ps;
	struct nt_node	*node;
	char		*peer;
	uint64_t	 conn;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "conn", &conn) == -1) {
		free(peer);
		return;
	}
	log_info("Received hello from %s", peer);
	dial_now(peer);
	/* A seed node would not understand a sync. */
	if ((node = config_node(M.conf, peer)) != NULL && !node->seed &&
	    (ps = peer_state(peer)) != NULL) {
		ps->in_conn = conn;
		ps->in_known = 1;
		sync_peer(ps);
	}
	free(peer);
}

/*
 * What to send a peer that holds `have`: what it lacks, less what this
 * link already carried to it (a long catch-up is not sent again by the
 * next periodic sync).  A peer whose have did not move since its last
 * sync may have dropped something: it gets everything it lacks again.
 */
static void
catchup_base(struct peer_state *ps, const struct nt_have *have,
    struct nt_have *want)
{
	size_t	 i;

	if (ps != NULL && ps->view.have_known &&
	    have_equal(have, &ps->view.have))
		have_clear(&ps->sent);
	have_copy(want, have);
	for (i = 0; ps != NULL && i < ps->sent.n; i++)
		if (ps->sent.v[i].seq > have_get(want, ps->sent.v[i].origin))
			have_set(want, ps->sent.v[i].origin, ps->sent.v[i].seq);
}

/*
 * Whether a peer holding `want` lacks any message we could send it: of a
 * configured node (local-only and foreign origins are never offered).
 */
static int
lacks_any(const struct nt_have *want)
{
	const struct nt_have	*mine = store_have(M.store);
	size_t			 i;

	for (i = 0; i < mine->n; i++)
		if (config_node(M.conf, mine->v[i].origin) != NULL &&
		    mine->v[i].seq > have_get(want, mine->v[i].origin))
			return (1);
	return (0);
}

/*
 * A peer told our peer worker what it holds: what it lacks goes out as a
 * stream on that link (stream.c), unless one is under way already: then
 * what it holds meanwhile is skipped, and the stream goes on.
 */
void
on_sync_request(const msgpack_object *o)
{
	struct peer_state	*ps;
	struct nt_have		 got, have = { NULL, 0 }, want = { NULL, 0 };
	char			*peer;
	uint64_t		 link, n = 0;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "link", &link) == -1 ||
	    frame_get_have(o, "have", &got) == -1) {
		log_warnx("bad CH_SYNC_REQ frame from the peer worker");
		free(peer);
		return;
	}
	/* Its local-only origins, or foreign ones, mean nothing here. */
	nodes_only(&got, &have);
	have_clear(&got);
	if ((ps = peer_state(peer)) != NULL) {
		if (stream_catchup_active(peer))
			stream_catchup_skip(peer, &have);
		else {
			catchup_base(ps, &have, &want);
			if (lacks_any(&want))
				n = stream_catchup(peer, link, &want);
		}
		have_copy(&ps->view.have, &have);
		ps->view.have_known = 1;
		ps->view.last_sync_ms = now_ms();
	}
	M.stats.replicated_out += n;
	if (ps != NULL)
		ps->view.replicated_out += n;
	if (n > 0)
		log_info("Catch-up: sending %llu messages to %s",
		    (unsigned long long)n, peer);
	have_clear(&have);
	have_clear(&want);
	free(peer);
	recovery_check();
}

/* The peer's link drained its output: the next chunk of its catch-up. */
void
on_catchup_more(const msgpack_object *o)
{
	char		*peer;
	uint64_t	 link;

	if ((peer = frame_get_str(o, "peer")) != NULL &&
	    frame_get_u64(o, "link", &link) == 0)
		stream_catchup_more(peer, link);
	free(peer);
}

/* A peer's catch-up ended: the link carried it everything up to sent. */
void
catchup_done(const char *peer, const struct nt_have *sent)
{
	struct peer_state	*ps;

	if ((ps = peer_state(peer)) != NULL)
		have_copy(&ps->sent, sent);
}

/*
 * New messages of ours, durable now, to every peer: live to those whose
 * catch-up is done, while a running catch-up sends them in its turn.  All
 * a sync released goes in one CH_REPLICATE frame (replicate_flush).
 */
static struct chan_batch	 repl;	/* batch_add_raw() only: no init */

void
replicate_queue(const char *origin, uint64_t seq, const char *packed,
    size_t len)
{
	size_t	 i;

	if (M.peer.ch == NULL || !M.peer.hello)
		return;
	if (repl.sb.size >= CHAN_BATCH_BYTES)
		replicate_flush();
	batch_add_raw(&repl, packed, len);
	/* What went live need not go again in the next catch-up. */
	for (i = 0; i < M.npeers; i++)
		if (M.peers[i].view.up &&
		    !stream_catchup_active(M.peers[i].view.id) &&
		    have_get(&M.peers[i].sent, origin) + 1 == seq)
			have_set(&M.peers[i].sent, origin, seq);
}

void
replicate_flush(void)
{
	struct chan_frame	 f;
	const char		**except;
	size_t			 n;

	if (repl.n == 0)
		return;
	if (M.peer.ch != NULL && M.peer.hello) {
		except = xcalloc(M.npeers + 1, sizeof(*except));
		n = stream_catchup_peers(except, M.npeers);
		frame_begin(&f, CH_REPLICATE, n > 0 ? 3 : 2);
		frame_str(&f, "peer", "");
		frame_batch(&f, "msgs", &repl);
		if (n > 0)
			frame_strv(&f, "except", except, n);
		chan_send(M.peer.ch, &f);
		free(except);
	}
	batch_reset(&repl);
}

/* At a clean stop. */
void
replicate_free(void)
{
	batch_clear(&repl);
}

void
on_link(const msgpack_object *o)
{
	struct peer_state	*ps;
	char			*peer;
	int			 up;

	if ((peer = frame_get_str(o, "peer")) == NULL)
		return;
	if (frame_get_bool(o, "up", &up) == 0 && (ps = peer_state(peer)) !=
	    NULL) {
		if (ps->view.up != up) {
			ps->view.up = up;
			send_cluster();		/* the pages show it */
		}
		frame_get_u64(o, "link", &ps->link);
		/* What a broken link carried may not have arrived. */
		if (!up) {
			stream_drop_peer(peer);
			have_clear(&ps->sent);
		}
	}
	free(peer);
}

/*
 * Each peer hears what we hold: within a second of a change, and every
 * few seconds regardless.  A message lost as a link broke is found this
 * way even when no later message reveals the gap, and the peers' /status
 * shows a lag that is at most a second old.
 */
void
antientropy_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, SYNC_TICK_MS * 1000 };
	struct peer_state *ps;
	size_t		 i;

	for (i = 0; i < M.npeers; i++) {
		ps = &M.peers[i];
		if (ps->in_known && (now_ms() - ps->told_ms >= SYNC_EVERY_MS ||
		    !have_equal(&ps->told, store_have(M.store))))
			sync_peer(ps);
	}
	evtimer_add(M.antientropy_ev, &tv);
}
