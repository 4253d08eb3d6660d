/*
 * stream.c: history for a client and catch-up for a peer, one mechanism.
 * A stream is a store cursor and a destination: a ws connection, or the
 * peer worker's link to a peer.  It goes out in chunks of at most
 * STREAM_CHUNK_MSGS messages and about STREAM_CHUNK_BYTES bytes, one at a
 * time: the worker asks for the next chunk once the connection's output
 * has drained (CH_HISTORY_MORE, CH_CATCHUP_MORE), so a reader that stops
 * reading costs one chunk in the worker and nothing more.  The master
 * holds back too: while more than STREAM_CHAN_HIGH bytes wait in the
 * channel to a worker, chunks wait until it drains (stream_drain()).
 *
 * A client's stream ends with CH_JOINED, after which its connection gets
 * pushes; a peer's ends when the peer holds everything we may serve, after
 * which our new messages go to it live (replicate_queue()).  A message
 * released while a stream runs is ahead of its cursor (the cursor never
 * passes what is not released), so the stream sends it: nothing is sent
 * twice, nothing is skipped.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "channel.h"
#include "log.h"
#include "store.h"
#include "master.h"

#define STREAM_CHUNK_MSGS	256
#define STREAM_CHUNK_BYTES	(32 * 1024)
#define STREAM_CHAN_HIGH	(1024 * 1024)	/* hold chunks back above */
#define HASH_MIN		64

enum stream_kind {
	STREAM_HISTORY,		/* to a client, by conn: a join, or a page */
	STREAM_CATCHUP		/* to a peer, by peer and link */
};

struct stream {
	enum stream_kind	 kind;
	uint64_t		 conn;
	char			 peer[NT_ID_MAX + 1];
	uint64_t		 link;
	struct store_cursor	 cur;
	uint64_t		 count;		/* messages sent */
	int			 recovered;	/* for CH_JOINED */
	int			 older;		/* ... and older ones exist */
	int			 page;		/* ends with CH_PAGE_END */
	int			 waiting;	/* a chunk is out: wait for more */
	int			 blocked;	/* on the blocked queue */
	struct stream		*hnext;		/* history: hash chain */
	TAILQ_ENTRY(stream)	 entry;		/* every stream */
	TAILQ_ENTRY(stream)	 bentry;	/* waiting for the channel */
};

TAILQ_HEAD(stream_list, stream);

static struct {
	struct stream_list	  all;
	struct stream_list	  blocked;
	int			  init;
	struct stream		**htab;		/* history streams by conn */
	size_t			  hcap;		/* 0 or a power of two */
	size_t			  hn;
} S;

static void	stream_pump(struct stream *);

static void
stream_init(void)
{
	if (S.init)
		return;
	TAILQ_INIT(&S.all);
	TAILQ_INIT(&S.blocked);
	S.init = 1;
}

static struct worker *
stream_worker(const struct stream *st)
{
	return (st->kind == STREAM_HISTORY ? &M.ws : &M.peer);
}

/* History streams are found by conn: a few may run for every client. */
static size_t
hash_conn(uint64_t conn, size_t cap)
{
	conn ^= conn >> 33;
	conn *= 0xff51afd7ed558ccdULL;
	conn ^= conn >> 33;
	return (conn & (cap - 1));
}

static void
hash_grow(void)
{
	struct stream	**tab, *st, *next;
	size_t		  cap, i, h;

	cap = S.hcap == 0 ? HASH_MIN : S.hcap * 2;
	tab = xcalloc(cap, sizeof(*tab));
	for (i = 0; i < S.hcap; i++) {
		for (st = S.htab[i]; st != NULL; st = next) {
			next = st->hnext;
			h = hash_conn(st->conn, cap);
			st->hnext = tab[h];
			tab[h] = st;
		}
	}
	free(S.htab);
	S.htab = tab;
	S.hcap = cap;
}

static struct stream *
history_find(uint64_t conn)
{
	struct stream	*st;

	if (S.hcap == 0)
		return (NULL);
	for (st = S.htab[hash_conn(conn, S.hcap)]; st != NULL; st = st->hnext)
		if (st->conn == conn)
			return (st);
	return (NULL);
}

static void
hash_remove(struct stream *st)
{
	struct stream	**pp;

	for (pp = &S.htab[hash_conn(st->conn, S.hcap)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == st) {
			*pp = st->hnext;
			S.hn--;
			return;
		}
	}
}

static struct stream *
catchup_find(const char *peer)
{
	struct stream	*st;

	stream_init();
	TAILQ_FOREACH(st, &S.all, entry)
		if (st->kind == STREAM_CATCHUP && strcmp(st->peer, peer) == 0)
			return (st);
	return (NULL);
}

static struct stream *
stream_new(enum stream_kind kind, const struct nt_have *from, int flags)
{
	struct stream	*st;

	stream_init();
	st = xcalloc(1, sizeof(*st));
	st->kind = kind;
	store_cursor_init(&st->cur, from, flags);
	TAILQ_INSERT_TAIL(&S.all, st, entry);
	return (st);
}

static void
stream_free(struct stream *st)
{
	TAILQ_REMOVE(&S.all, st, entry);
	if (st->blocked)
		TAILQ_REMOVE(&S.blocked, st, bentry);
	if (st->kind == STREAM_HISTORY)
		hash_remove(st);
	store_cursor_clear(&st->cur);
	free(st);
}

/* The stream is done: say so, and forget it. */
static void
stream_end(struct stream *st)
{
	struct chan_frame	 f;
	struct nt_have		 sent = { NULL, 0 };

	if (st->kind == STREAM_HISTORY && st->page) {
		frame_begin(&f, CH_PAGE_END, 3);
		frame_u64(&f, "conn", st->conn);
		frame_u64(&f, "count", st->count);
		frame_bool(&f, "older", st->older);
		chan_send(M.ws.ch, &f);
	} else if (st->kind == STREAM_HISTORY) {
		frame_begin(&f, CH_JOINED, 4);
		frame_u64(&f, "conn", st->conn);
		frame_u64(&f, "count", st->count);
		frame_bool(&f, "recovered", st->recovered);
		frame_bool(&f, "older", st->older);
		chan_send(M.ws.ch, &f);
	} else {
		store_cursor_have(M.store, &st->cur, &sent);
		catchup_done(st->peer, &sent);
		have_clear(&sent);
	}
	stream_free(st);
}

static void
stream_send(struct stream *st, const struct chan_batch *b)
{
	struct chan_frame	 f;

	if (st->kind == STREAM_HISTORY) {
		frame_begin(&f, CH_HISTORY, 2);
		frame_u64(&f, "conn", st->conn);
	} else {
		frame_begin(&f, CH_CATCHUP, 3);
		frame_str(&f, "peer", st->peer);
		frame_u64(&f, "link", st->link);
	}
	frame_batch(&f, "msgs", b);
	chan_send(stream_worker(st)->ch, &f);
}

/*
 * The next chunk, or the end.  The log's records are the channel's form
 * of a message already: they go out as they are, never decoded here.
 */
static void
stream_chunk(struct stream *st)
{
	struct chan_batch	 b;
	const char		*payload;
	size_t			 len;
	int			 more = 1;

	batch_init(&b);
	while (b.n < STREAM_CHUNK_MSGS && b.sb.size < STREAM_CHUNK_BYTES &&
	    (more = store_cursor_next_raw(M.store, &st->cur, &payload, &len)))
		batch_add_raw(&b, payload, len);
	if (b.n > 0)
		stream_send(st, &b);
	st->count += b.n;
	batch_clear(&b);
	if (!more)
		stream_end(st);
	else
		st->waiting = 1;
}

static void
stream_pump(struct stream *st)
{
	struct worker	*w = stream_worker(st);

	if (st->waiting || st->blocked || w->ch == NULL)
		return;
	if (chan_pending(w->ch) > STREAM_CHAN_HIGH) {
		st->blocked = 1;
		TAILQ_INSERT_TAIL(&S.blocked, st, bentry);
		return;
	}
	stream_chunk(st);
}

/* The channel to a worker drained: chunks that waited go, in order. */
void
stream_drain(struct chan *ch, void *arg)
{
	struct worker	*w = arg;
	struct stream	*st, *next;

	stream_init();
	TAILQ_FOREACH_SAFE(st, &S.blocked, bentry, next) {
		if (stream_worker(st) != w)
			continue;
		if (w->ch == NULL || chan_pending(w->ch) > STREAM_CHAN_HIGH)
			return;
		TAILQ_REMOVE(&S.blocked, st, bentry);
		st->blocked = 0;
		stream_pump(st);
	}
}

/*
 * A history stream for conn.  One on a connection that still streams is
 * replaced (the ws worker refuses it first, so this only happens across
 * its restart).
 */
static struct stream *
history_new(uint64_t conn, const struct nt_have *from)
{
	struct stream	*st;

	if ((st = history_find(conn)) != NULL)
		stream_free(st);
	st = stream_new(STREAM_HISTORY, from, 0);
	st->conn = conn;
	if ((S.hn + 1) * 2 > S.hcap)
		hash_grow();
	st->hnext = S.htab[hash_conn(conn, S.hcap)];
	S.htab[hash_conn(conn, S.hcap)] = st;
	S.hn++;
	return (st);
}

/*
 * A join: the history after since, then CH_JOINED.  Without since, the
 * newest `newest` messages (0: all), and CH_JOINED says whether older
 * ones exist.
 */
void
stream_join(uint64_t conn, const struct nt_have *since, int recovered,
    uint64_t newest)
{
	struct stream	*st;

	st = history_new(conn, since);
	st->recovered = recovered;
	if (since == NULL)
		st->older = store_cursor_newest(M.store, &st->cur, newest);
	stream_pump(st);
}

/* A page: limit messages before (origin, seq), oldest first. */
void
stream_page(uint64_t conn, const char *origin, uint64_t seq,
    uint64_t lamport, uint64_t limit)
{
	struct stream	*st;

	st = history_new(conn, NULL);
	st->page = 1;
	st->older = store_cursor_before(M.store, &st->cur, origin, seq,
	    lamport, limit);
	stream_pump(st);
}

/* The ws worker wants the next chunk for conn, or says conn is gone. */
void
stream_more(uint64_t conn, int stop)
{
	struct stream	*st;

	if ((st = history_find(conn)) == NULL)
		return;
	if (stop) {
		stream_free(st);
		return;
	}
	st->waiting = 0;
	stream_pump(st);
}

/*
 * Catch-up for a peer on one of the peer worker's links, from want on.
 * Returns how many messages the peer lacks (that the stream will send).
 */
uint64_t
stream_catchup(const char *peer, uint64_t link, const struct nt_have *want)
{
	struct stream	*st;
	uint64_t	 n;

	if ((st = catchup_find(peer)) != NULL)
		stream_free(st);
	st = stream_new(STREAM_CATCHUP, want, CURSOR_NO_LOCAL);
	snprintf(st->peer, sizeof(st->peer), "%s", peer);
	st->link = link;
	n = store_cursor_left(M.store, &st->cur);
	stream_pump(st);
	return (n);
}

int
stream_catchup_active(const char *peer)
{
	return (catchup_find(peer) != NULL);
}

/* The peer said it holds `have` while its catch-up runs: skip that. */
void
stream_catchup_skip(const char *peer, const struct nt_have *have)
{
	struct stream	*st;

	if ((st = catchup_find(peer)) != NULL)
		store_cursor_skip(M.store, &st->cur, have);
}

void
stream_catchup_more(const char *peer, uint64_t link)
{
	struct stream	*st;

	if ((st = catchup_find(peer)) == NULL || st->link != link)
		return;
	st->waiting = 0;
	stream_pump(st);
}

/* The link to the peer went down: what is on its way may be lost. */
void
stream_drop_peer(const char *peer)
{
	struct stream	*st;

	if ((st = catchup_find(peer)) != NULL)
		stream_free(st);
}

/* A worker went away, and with it every connection it streamed to. */
void
stream_drop_worker(struct worker *w)
{
	struct stream	*st, *next;

	stream_init();
	TAILQ_FOREACH_SAFE(st, &S.all, entry, next)
		if (stream_worker(st) == w)
			stream_free(st);
}

/* Peers with a catch-up under way, which get our new messages from it. */
size_t
stream_catchup_peers(const char **ids, size_t max)
{
	struct stream	*st;
	size_t		 n = 0;

	stream_init();
	TAILQ_FOREACH(st, &S.all, entry)
		if (st->kind == STREAM_CATCHUP && n < max)
			ids[n++] = st->peer;
	return (n);
}
