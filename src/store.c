/*
 * store.c: MESSAGES, the master's durable store.
 *
 * Memory holds an index, not the messages: per origin, in seq order (the
 * store is gap-free per origin), one 16-byte entry per message with its
 * clock and where its record is in the log; the have vector; and a hash
 * table of client ids for retried sends.  Texts are read back from the
 * log (journal.c) when a message is wanted, through the page cache.
 * Messages the log holds beyond a gap (a record before them was damaged)
 * are parked per origin until the gap is filled, by a peer, and then take
 * their place.
 *
 * The cluster order is never stored: each origin's messages sort by seq
 * in it too (an origin gives each message a clock above its last one), so
 * the next message in the cluster order is the least of the origins'
 * next ones, a merge of a handful of arrays (cursors, below).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "nodetalk.h"
#include "channel.h"
#include "journal.h"
#include "log.h"
#include "store.h"

/* An entry: the message's clock and its record (offset, payload length). */
struct store_ent {
	uint64_t	 lamport;
	uint64_t	 at;		/* offset << LEN_BITS | length */
};
#define LEN_BITS	25		/* JOURNAL_MAX_RECORD fits */
#define LEN_MASK	(((uint64_t)1 << LEN_BITS) - 1)
#define OFF_MAX		((uint64_t)1 << (64 - LEN_BITS))	/* 512 GiB */

/* Entries live in blocks, so that a long origin never moves. */
#define BLOCK_SHIFT	12
#define BLOCK_LEN	((uint64_t)1 << BLOCK_SHIFT)

/* A message beyond a gap: its entry waits here, by seq. */
struct parked {
	uint64_t	 seq;
	struct store_ent e;
	uint64_t	 cidhash;
};

/*
 * One origin's messages: entry seq - 1.  The first nrel may be served
 * (store_release()); the rest wait for their sync.
 */
struct store_origin {
	char		  name[NT_ORIGIN_MAX + 1];
	struct store_ent **blocks;
	size_t		  nblocks;
	uint64_t	  n;
	uint64_t	  nrel;
	int		  local;	/* origin_is_local_only() */
	int		  cids;		/* its client ids are indexed */
	struct parked	 *parked;
	size_t		  nparked;
};

/* Client ids: a hash of (origin, id), and origin number << 48 | seq. */
struct cid_slot {
	uint64_t	 hash;		/* 0: empty */
	uint64_t	 ref;
};
#define CID_MIN_SLOTS	1024
#define REF(o, seq)	((uint64_t)(o) << 48 | (seq))

struct store {
	struct journal		 *journal;
	int			  replaying;
	struct store_origin	 *origins;
	size_t			  norigins;
	struct nt_have		  have;
	uint64_t		  lamport;
	uint64_t		  count;
	struct cid_slot		 *cidtab;
	size_t			  cidcap;	/* 0 or a power of two */
	size_t			  ncid;
	char			 *cid_origin;	/* NULL: every origin's ids */
	struct cid_slot		 *cidlater;	/* replayed, not in the table */
	size_t			  ncidlater, cidlatercap;
	struct nt_msg		  scratch;	/* what the last lookup read */
	int64_t			  warned_ms;	/* last warning of a bad read */
};

static void	 store_replay_one(const struct journal_rec *, void *);
static int	 store_check(const struct store *, const char *, uint64_t);
static void	 store_take(struct store *, const struct journal_rec *);
static void	 store_index(struct store *, size_t, uint64_t,
		    const struct store_ent *, uint64_t);
static void	 store_park(struct store *, const struct journal_rec *);
static void	 store_unpark(struct store *, size_t);
static size_t	 origin_find(const struct store *, const char *, int *);
static size_t	 origin_add(struct store *, const char *);
static struct store_ent *ent_at(const struct store_origin *, uint64_t);
static void	 cid_add(struct store *, uint64_t, uint64_t);
static void	 cid_build(struct store *);
static void	 cid_later(struct store *, uint64_t, uint64_t);
static void	 store_reset(struct store *);

/*
 * Open the store and read the index of the log.  The fsync policy is only
 * kept for the caller: the master decides when to sync.
 */
struct store *
store_open(const char *data_dir, enum fsync_policy fsync, char **cause)
{
	struct store	*s;
	size_t		 i;
	int		 rv;

	*cause = NULL;
	s = xcalloc(1, sizeof(*s));
	if ((s->journal = journal_open(data_dir, fsync, cause)) == NULL) {
		free(s);
		return (NULL);
	}
	s->replaying = 1;
	/* Damage moved out of the middle of the log moves offsets: again. */
	while ((rv = journal_replay(s->journal, store_replay_one, s,
	    cause)) == 1)
		store_reset(s);
	s->replaying = 0;
	if (rv == -1) {
		store_close(s);
		return (NULL);
	}
	for (i = 0; i < s->norigins; i++) {
		/* What the log held at open is durable: readers may see it. */
		s->origins[i].nrel = s->origins[i].n;
		if (s->origins[i].nparked > 0)
			log_warnx("%s: %zu messages of %s after a gap at "
			    "%s-%llu are kept aside until the gap is filled",
			    journal_path(s->journal), s->origins[i].nparked,
			    s->origins[i].name, s->origins[i].name,
			    (unsigned long long)(s->origins[i].n + 1));
	}
	return (s);
}

/* One record from the log: indexed, parked after a gap, or a duplicate. */
static void
store_replay_one(const struct journal_rec *rec, void *arg)
{
	struct store	*s = arg;

	switch (store_check(s, rec->origin, rec->seq)) {
	case 1:
		store_take(s, rec);
		break;
	case -2:
		store_park(s, rec);
		break;
	default:
		break;		/* a duplicate: the first copy stands */
	}
}

/* Forget what replay built (it runs again). */
static void
store_reset(struct store *s)
{
	size_t	 i, b;

	for (i = 0; i < s->norigins; i++) {
		for (b = 0; b < s->origins[i].nblocks; b++)
			free(s->origins[i].blocks[b]);
		free(s->origins[i].blocks);
		free(s->origins[i].parked);
	}
	free(s->origins);
	s->origins = NULL;
	s->norigins = 0;
	have_clear(&s->have);
	free(s->cidtab);
	s->cidtab = NULL;
	s->cidcap = s->ncid = 0;
	free(s->cidlater);
	s->cidlater = NULL;
	s->ncidlater = s->cidlatercap = 0;
	s->lamport = s->count = 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	store_reset(s);
	msg_clear(&s->scratch);
	journal_close(s->journal);
	free(s->cid_origin);
	free(s);
}

/*
 * Append a stamped message to this turn's output of the log and take it
 * into the index.  Nothing is on disk before store_write(); nothing is
 * served before store_release().
 */
int
store_append(struct store *s, const struct nt_msg *m)
{
	struct journal_rec	 rec;
	int			 rv;

	if (memchr(m->origin, '\0', sizeof(m->origin)) == NULL ||
	    m->origin[0] == '\0' || m->seq == 0) {
		errno = EINVAL;
		return (-1);
	}
	if ((rv = store_check(s, m->origin, m->seq)) != 1)
		return (rv);
	if ((uint64_t)journal_size(s->journal) >= OFF_MAX) {
		errno = EFBIG;
		return (-1);
	}
	if (journal_append(s->journal, m, &rec) == -1)
		return (-1);
	store_take(s, &rec);
	return (1);
}

int
store_last_packed(const struct store *s, const char *origin, uint64_t seq,
    const char **packed, size_t *len)
{
	return (journal_last(s->journal, origin, seq, packed, len));
}

/* This turn's records, in one write(2).  0 or -1 (errno). */
int
store_write(struct store *s)
{
	return (journal_write(s->journal));
}

int
store_log_fd(const struct store *s)
{
	return (journal_fd(s->journal));
}

/* 1 when seq is the origin's next, 0 when stored, -2 when it leaves a gap. */
static int
store_check(const struct store *s, const char *origin, uint64_t seq)
{
	uint64_t	 have = have_get(&s->have, origin);

	if (seq <= have)
		return (0);
	if (seq > have + 1)
		return (-2);
	return (1);
}

static void
store_take(struct store *s, const struct journal_rec *rec)
{
	struct store_ent	 e;
	size_t			 o;
	int			 found;

	o = origin_find(s, rec->origin, &found);
	if (!found)
		o = origin_add(s, rec->origin);
	e.lamport = rec->lamport;
	e.at = (uint64_t)rec->off << LEN_BITS | rec->len;
	store_index(s, o, rec->seq, &e, rec->cidhash);
	store_unpark(s, o);
}

/* Entry seq of origin o, which store_check() accepted. */
static void
store_index(struct store *s, size_t o, uint64_t seq,
    const struct store_ent *e, uint64_t cidhash)
{
	struct store_origin	*so = &s->origins[o];
	uint64_t		 b = so->n >> BLOCK_SHIFT;

	if (b == so->nblocks) {
		so->blocks = xreallocarray(so->blocks, so->nblocks + 1,
		    sizeof(*so->blocks));
		so->blocks[so->nblocks++] = xreallocarray(NULL, BLOCK_LEN,
		    sizeof(struct store_ent));
	}
	so->blocks[b][so->n & (BLOCK_LEN - 1)] = *e;
	so->n = seq;
	s->count++;
	have_set(&s->have, so->name, seq);
	if (e->lamport > s->lamport)
		s->lamport = e->lamport;
	if (cidhash != 0 && so->cids)
		cid_add(s, cidhash, REF(o, seq));
}

static struct store_ent *
ent_at(const struct store_origin *so, uint64_t i)
{
	return (&so->blocks[i >> BLOCK_SHIFT][i & (BLOCK_LEN - 1)]);
}

/* Keep a record beyond a gap, by seq; the first copy stands. */
static void
store_park(struct store *s, const struct journal_rec *rec)
{
	struct store_origin	*so;
	struct parked		 p;
	size_t			 o, lo = 0, hi, mid;
	int			 found;

	o = origin_find(s, rec->origin, &found);
	if (!found)
		o = origin_add(s, rec->origin);
	so = &s->origins[o];
	hi = so->nparked;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (so->parked[mid].seq < rec->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < so->nparked && so->parked[lo].seq == rec->seq)
		return;
	p.seq = rec->seq;
	p.e.lamport = rec->lamport;
	p.e.at = (uint64_t)rec->off << LEN_BITS | rec->len;
	p.cidhash = rec->cidhash;
	so->parked = xreallocarray(so->parked, so->nparked + 1,
	    sizeof(*so->parked));
	memmove(&so->parked[lo + 1], &so->parked[lo],
	    (so->nparked - lo) * sizeof(*so->parked));
	so->parked[lo] = p;
	so->nparked++;
}

/* The gap before an origin's parked messages may be filled now. */
static void
store_unpark(struct store *s, size_t o)
{
	struct store_origin	*so = &s->origins[o];
	struct parked		 p;
	size_t			 i = 0;

	while (i < so->nparked && so->parked[i].seq <= so->n + 1) {
		p = so->parked[i++];
		if (p.seq == so->n + 1)
			store_index(s, o, p.seq, &p.e, p.cidhash);
		/* else it came again meanwhile */
	}
	if (i == 0)
		return;
	memmove(so->parked, so->parked + i,
	    (so->nparked - i) * sizeof(*so->parked));
	so->nparked -= i;
}

size_t
store_parked(const struct store *s, const char *origin)
{
	size_t	 o;
	int	 found;

	o = origin_find(s, origin, &found);
	return (found ? s->origins[o].nparked : 0);
}

/* A cluster has a handful of origins: a linear scan is the fast path. */
static size_t
origin_find(const struct store *s, const char *origin, int *found)
{
	size_t	 i;

	for (i = 0; i < s->norigins; i++)
		if (strcmp(s->origins[i].name, origin) == 0) {
			*found = 1;
			return (i);
		}
	*found = 0;
	return (0);
}

static size_t
origin_add(struct store *s, const char *origin)
{
	struct store_origin	*so;

	s->origins = xreallocarray(s->origins, s->norigins + 1,
	    sizeof(*s->origins));
	so = &s->origins[s->norigins];
	memset(so, 0, sizeof(*so));
	snprintf(so->name, sizeof(so->name), "%s", origin);
	so->local = origin_is_local_only(origin);
	so->cids = s->cid_origin == NULL || strcmp(origin, s->cid_origin) == 0;
	return (s->norigins++);
}

/* Client ids. */

/*
 * Only origin's client ids are looked up (a node's own, for retries): the
 * others need not cost a slot each.  The table is rebuilt without them.
 */
void
store_cid_origin(struct store *s, const char *origin)
{
	size_t	 i, o;

	free(s->cid_origin);
	s->cid_origin = xstrdup(origin);
	for (o = 0; o < s->norigins; o++)
		s->origins[o].cids = strcmp(s->origins[o].name, origin) == 0;
	/*
	 * What the table holds goes in again with the rest; cid_build()
	 * keeps origin's only, now rather than at the first chat.
	 */
	for (i = 0; i < s->cidcap; i++)
		if (s->cidtab[i].hash != 0)
			cid_later(s, s->cidtab[i].hash, s->cidtab[i].ref);
	free(s->cidtab);
	s->cidtab = NULL;
	s->cidcap = s->ncid = 0;
	cid_build(s);
}

static void
cid_put(struct cid_slot *tab, size_t cap, uint64_t hash, uint64_t ref)
{
	size_t	 i = hash & (cap - 1);

	while (tab[i].hash != 0)
		i = (i + 1) & (cap - 1);
	tab[i].hash = hash;
	tab[i].ref = ref;
}

static void
cid_resize(struct store *s, size_t cap)
{
	struct cid_slot	*tab = xcalloc(cap, sizeof(*tab));
	size_t		 i;

	for (i = 0; i < s->cidcap; i++)
		if (s->cidtab[i].hash != 0)
			cid_put(tab, cap, s->cidtab[i].hash, s->cidtab[i].ref);
	free(s->cidtab);
	s->cidtab = tab;
	s->cidcap = cap;
}

/* An id for cid_build() to put in the table. */
static void
cid_later(struct store *s, uint64_t hash, uint64_t ref)
{
	if (s->ncidlater == s->cidlatercap) {
		s->cidlatercap = s->cidlatercap == 0 ? 4096 :
		    s->cidlatercap * 2;
		s->cidlater = xreallocarray(s->cidlater, s->cidlatercap,
		    sizeof(*s->cidlater));
	}
	s->cidlater[s->ncidlater].hash = hash;
	s->cidlater[s->ncidlater++].ref = ref;
}

static size_t	 cid_sort_mask;	/* for qsort's comparison */

static int
cid_slot_cmp(const void *a, const void *b)
{
	size_t	 x = ((const struct cid_slot *)a)->hash & cid_sort_mask;
	size_t	 y = ((const struct cid_slot *)b)->hash & cid_sort_mask;

	return (x < y ? -1 : x > y);
}

/*
 * The ids replay found, into the table at once.  Put one by one as the
 * log is read, a million ids cost the restart a second (the table grown
 * many times, each put a cache miss at a random place); sized once and
 * put in the order of their slots, they cost a tenth of it.
 */
static void
cid_build(struct store *s)
{
	struct cid_slot	*v = s->cidlater;
	size_t		 n = 0, i, cap;

	if (v == NULL)
		return;
	s->cidlater = NULL;
	for (i = 0; i < s->ncidlater; i++)
		if (s->origins[v[i].ref >> 48].cids)
			v[n++] = v[i];
	for (cap = s->cidcap > 0 ? s->cidcap : CID_MIN_SLOTS;
	    (s->ncid + n) * 4 > cap * 3; cap *= 2)
		;
	if (cap != s->cidcap)
		cid_resize(s, cap);
	cid_sort_mask = cap - 1;
	qsort(v, n, sizeof(*v), cid_slot_cmp);
	for (i = 0; i < n; i++)
		cid_put(s->cidtab, s->cidcap, v[i].hash, v[i].ref);
	s->ncid += n;
	free(v);
	s->ncidlater = s->cidlatercap = 0;
}

/* Keep the load under 75%; several refs may share a hash. */
static void
cid_add(struct store *s, uint64_t hash, uint64_t ref)
{
	if (s->replaying) {
		cid_later(s, hash, ref);
		return;
	}
	cid_build(s);
	if ((s->ncid + 1) * 4 > s->cidcap * 3)
		cid_resize(s, s->cidcap == 0 ? CID_MIN_SLOTS : s->cidcap * 2);
	cid_put(s->cidtab, s->cidcap, hash, ref);
	s->ncid++;
}

/* Reading messages back. */

/* Message i of origin o into the scratch message; NULL if unreadable. */
static const struct nt_msg *
store_read(struct store *s, size_t o, uint64_t i)
{
	const struct store_ent	*e = ent_at(&s->origins[o], i);
	msgpack_zone		 zone;
	msgpack_object		 obj;
	const char		*payload;
	size_t			 used = 0;
	uint32_t		 len = e->at & LEN_MASK;
	int			 ok;

	msg_clear(&s->scratch);
	if (journal_read(s->journal, (off_t)(e->at >> LEN_BITS), len,
	    &payload) == -1)
		goto bad;
	msgpack_zone_init(&zone, 1024);
	ok = msgpack_unpack(payload, len, &used, &zone, &obj) ==
	    MSGPACK_UNPACK_SUCCESS && used == len &&
	    msg_unpack(&obj, &s->scratch) == 0;
	msgpack_zone_destroy(&zone);
	if (ok)
		return (&s->scratch);
bad:
	/* The disk failed us since the start: say so, at most each second. */
	if (now_ms() - s->warned_ms >= 1000) {
		s->warned_ms = now_ms();
		log_warnx("%s: the record of %s-%llu at offset %llu cannot be "
		    "read back (damaged?); it is skipped",
		    journal_path(s->journal), s->origins[o].name,
		    (unsigned long long)(i + 1),
		    (unsigned long long)(e->at >> LEN_BITS));
	}
	return (NULL);
}

const struct nt_msg *
store_lookup(struct store *s, const char *origin, uint64_t seq)
{
	size_t	 o;
	int	 found;

	o = origin_find(s, origin, &found);
	if (!found || seq == 0 || seq > s->origins[o].n)
		return (NULL);
	return (store_read(s, o, seq - 1));
}

const struct nt_msg *
store_lookup_client_id(struct store *s, const char *origin,
    const char *client_id)
{
	const struct nt_msg	*m;
	uint64_t		 hash = msg_cid_hash(origin, client_id);
	size_t			 i, o;

	cid_build(s);
	if (s->cidcap == 0 || hash == 0)
		return (NULL);
	for (i = hash & (s->cidcap - 1); s->cidtab[i].hash != 0;
	    i = (i + 1) & (s->cidcap - 1)) {
		if (s->cidtab[i].hash != hash)
			continue;
		o = s->cidtab[i].ref >> 48;
		if (strcmp(s->origins[o].name, origin) != 0)
			continue;
		/* The hash says maybe; the record says yes. */
		m = store_read(s, o, (s->cidtab[i].ref & 0xffffffffffffULL) - 1);
		if (m != NULL && m->client_id != NULL &&
		    strcmp(m->client_id, client_id) == 0)
			return (m);
	}
	return (NULL);
}

uint64_t
store_count(const struct store *s)
{
	return (s->count);
}

const struct nt_have *
store_have(const struct store *s)
{
	return (&s->have);
}

uint64_t
store_lamport(const struct store *s)
{
	return (s->lamport);
}

void
store_release(struct store *s, const char *origin, uint64_t seq)
{
	struct store_origin	*so;
	size_t			 o;
	int			 found;

	o = origin_find(s, origin, &found);
	if (!found)
		return;
	so = &s->origins[o];
	if (seq > so->n)
		seq = so->n;
	if (seq > so->nrel)
		so->nrel = seq;
}

/*
 * Cursors: a position per origin (how many of its messages lie behind the
 * cursor), and for a page of history a stop per origin.  A message stored
 * later behind the cursor (a late one with a small clock) is simply the
 * next one then.
 */
void
store_cursor_init(struct store_cursor *c, const struct nt_have *from,
    int flags)
{
	memset(c, 0, sizeof(*c));
	if (from != NULL)
		have_copy(&c->from, from);
	c->flags = flags;
}

void
store_cursor_clear(struct store_cursor *c)
{
	free(c->pos);
	free(c->stop);
	have_clear(&c->from);
	memset(c, 0, sizeof(*c));
}

/* A position for every origin the store knows, new ones from c->from. */
static void
cursor_extend(const struct store *s, struct store_cursor *c)
{
	size_t	 i;

	if (c->npos == s->norigins)
		return;
	c->pos = xreallocarray(c->pos, s->norigins, sizeof(*c->pos));
	if (c->stop != NULL)
		c->stop = xreallocarray(c->stop, s->norigins,
		    sizeof(*c->stop));
	for (i = c->npos; i < s->norigins; i++) {
		c->pos[i] = have_get(&c->from, s->origins[i].name);
		if (c->stop != NULL)
			c->stop[i] = 0;	/* a page never reaches new origins */
	}
	c->npos = s->norigins;
}

static int
cursor_skips(const struct store_cursor *c, const struct store_origin *so)
{
	return ((c->flags & CURSOR_NO_LOCAL) && so->local);
}

/* How far origin i may go: released, and short of a page's stop. */
static uint64_t
cursor_limit(const struct store *s, const struct store_cursor *c, size_t i)
{
	uint64_t	 lim = s->origins[i].nrel;

	if (c->stop != NULL && c->stop[i] < lim)
		lim = c->stop[i];
	return (lim);
}

/* (lamport, origin, seq) of entry i of origin o against another's. */
static int
ent_cmp(const struct store *s, size_t o, uint64_t i, size_t p, uint64_t j)
{
	const struct store_ent	*a = ent_at(&s->origins[o], i);
	const struct store_ent	*b = ent_at(&s->origins[p], j);
	int			 r;

	if (a->lamport != b->lamport)
		return (a->lamport < b->lamport ? -1 : 1);
	if ((r = strcmp(s->origins[o].name, s->origins[p].name)) != 0)
		return (r);
	return (i < j ? -1 : i > j);
}

/* The origin of the next message, or -1 at the end; advances. */
static ssize_t
cursor_step(struct store *s, struct store_cursor *c)
{
	ssize_t	 best = -1;
	size_t	 i;

	cursor_extend(s, c);
	for (i = 0; i < s->norigins; i++) {
		if (c->pos[i] >= cursor_limit(s, c, i) ||
		    cursor_skips(c, &s->origins[i]))
			continue;
		if (best == -1 || ent_cmp(s, i, c->pos[i], best,
		    c->pos[best]) < 0)
			best = i;
	}
	if (best != -1)
		c->pos[best]++;
	return (best);
}

const struct nt_msg *
store_cursor_next(struct store *s, struct store_cursor *c)
{
	const struct nt_msg	*m;
	ssize_t			 o;

	while ((o = cursor_step(s, c)) != -1)
		if ((m = store_read(s, o, c->pos[o] - 1)) != NULL)
			return (m);
	return (NULL);
}

/*
 * The next message's record payload as it is in the log (a msg_pack()
 * map, what the channel carries): 1, or 0 at the end.
 */
int
store_cursor_next_raw(struct store *s, struct store_cursor *c,
    const char **payload, size_t *len)
{
	const struct store_ent	*e;
	ssize_t			 o;

	while ((o = cursor_step(s, c)) != -1) {
		e = ent_at(&s->origins[o], c->pos[o] - 1);
		*len = e->at & LEN_MASK;
		if (journal_read(s->journal, (off_t)(e->at >> LEN_BITS),
		    *len, payload) == 0)
			return (1);
		(void)store_read(s, o, c->pos[o] - 1);	/* logs it */
	}
	return (0);
}

/* Step back: the origin of the message before the cursor, or -1. */
static ssize_t
cursor_back(const struct store *s, struct store_cursor *c)
{
	ssize_t	 best = -1;
	size_t	 i;

	for (i = 0; i < s->norigins; i++) {
		if (c->pos[i] <= have_get(&c->from, s->origins[i].name) ||
		    cursor_skips(c, &s->origins[i]))
			continue;
		if (best == -1 || ent_cmp(s, i, c->pos[i] - 1, best,
		    c->pos[best] - 1) > 0)
			best = i;
	}
	if (best != -1)
		c->pos[best]--;
	return (best);
}

/* Back n messages from where the cursor is; 1 when older ones remain. */
static int
cursor_rewind(const struct store *s, struct store_cursor *c, uint64_t n)
{
	uint64_t	 i;

	for (i = 0; i < n; i++)
		if (cursor_back(s, c) == -1)
			return (0);
	for (i = 0; i < s->norigins; i++)
		if (c->pos[i] > have_get(&c->from, s->origins[i].name) &&
		    !cursor_skips(c, &s->origins[i]))
			return (1);
	return (0);
}

/*
 * Put the cursor n messages before the end (n 0: at the start).  Returns
 * 1 when older messages than those n exist.
 */
int
store_cursor_newest(struct store *s, struct store_cursor *c, uint64_t n)
{
	size_t	 i;

	cursor_extend(s, c);
	if (n == 0)
		return (0);
	for (i = 0; i < s->norigins; i++)
		c->pos[i] = s->origins[i].nrel;
	return (cursor_rewind(s, c, n));
}

/* Entry i of origin o against the place (lamport, origin, seq): <0, 0, >0. */
static int
ent_cmp_key(const struct store *s, size_t o, uint64_t i, uint64_t lamport,
    const char *origin, uint64_t seq)
{
	const struct store_ent	*a = ent_at(&s->origins[o], i);
	int			 r;

	if (a->lamport != lamport)
		return (a->lamport < lamport ? -1 : 1);
	if ((r = strcmp(s->origins[o].name, origin)) != 0)
		return (r);
	return (i + 1 < seq ? -1 : i + 1 > seq);
}

/*
 * How many of origin o's released messages sort before the place
 * (lamport, origin, seq): a binary search, each origin's entries being in
 * the cluster order.
 */
static uint64_t
count_before(const struct store *s, size_t o, uint64_t lamport,
    const char *origin, uint64_t seq)
{
	const struct store_origin	*so = &s->origins[o];
	uint64_t			 lo = 0, hi = so->nrel, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ent_cmp_key(s, o, mid, lamport, origin, seq) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo);
}

/*
 * A page of history: the limit messages just before (origin, seq), which
 * the cursor returns oldest first and stops after.  A message this node
 * holds is placed by its own clock; one it does not hold (a client that
 * came from a node ahead of this one) by the lamport the client gives, and
 * without one (0) it stands for the end.  Returns 1 when older messages
 * exist.
 */
int
store_cursor_before(struct store *s, struct store_cursor *c,
    const char *origin, uint64_t seq, uint64_t lamport, uint64_t limit)
{
	size_t	 i, xo;
	int	 found;

	cursor_extend(s, c);
	c->stop = xreallocarray(c->stop, c->npos, sizeof(*c->stop));
	if (origin == NULL)
		origin = "";
	xo = origin_find(s, origin, &found);
	if (found && seq >= 1 && seq <= s->origins[xo].nrel)
		lamport = ent_at(&s->origins[xo], seq - 1)->lamport;
	for (i = 0; i < s->norigins; i++) {
		c->stop[i] = lamport > 0 && *origin != '\0' ?
		    count_before(s, i, lamport, origin, seq) :
		    s->origins[i].nrel;
		c->pos[i] = c->stop[i];
	}
	return (cursor_rewind(s, c, limit));
}

/* The reader holds `have` already: skip what it names. */
void
store_cursor_skip(const struct store *s, struct store_cursor *c,
    const struct nt_have *have)
{
	size_t		 i;
	uint64_t	 seq;

	cursor_extend(s, c);
	for (i = 0; i < have->n; i++)
		if (have->v[i].seq > have_get(&c->from, have->v[i].origin))
			have_set(&c->from, have->v[i].origin, have->v[i].seq);
	for (i = 0; i < s->norigins; i++) {
		seq = have_get(have, s->origins[i].name);
		if (seq > c->pos[i])
			c->pos[i] = seq;
	}
}

/* Where the cursor is, as a have vector (what lies behind it). */
void
store_cursor_have(const struct store *s, struct store_cursor *c,
    struct nt_have *out)
{
	size_t	 i;

	cursor_extend(s, c);
	have_copy(out, &c->from);
	for (i = 0; i < s->norigins; i++)
		if (c->pos[i] > 0)
			have_set(out, s->origins[i].name, c->pos[i]);
}

/* How many messages that may be served lie ahead of the cursor. */
uint64_t
store_cursor_left(const struct store *s, struct store_cursor *c)
{
	uint64_t	 n = 0, lim;
	size_t		 i;

	cursor_extend(s, c);
	for (i = 0; i < s->norigins; i++) {
		lim = cursor_limit(s, c, i);
		if (lim > c->pos[i] && !cursor_skips(c, &s->origins[i]))
			n += lim - c->pos[i];
	}
	return (n);
}

/* The log. */

int
store_sync(struct store *s)
{
	return (journal_sync(s->journal));
}

int
store_dirty(const struct store *s)
{
	return (journal_dirty(s->journal));
}

const char *
store_path(const struct store *s)
{
	return (journal_path(s->journal));
}

off_t
store_log_size(const struct store *s)
{
	return (journal_size(s->journal));
}

/* Whether open found damage: what it held must come back from peers. */
int
store_was_cut(const struct store *s)
{
	return (journal_damage(s->journal) != NULL);
}

/*
 * Why this node may lack messages of its own origin that others hold (and
 * so must hear its peers before it numbers one), or NULL.
 */
const char *
store_doubt(const struct store *s)
{
	if (journal_damage(s->journal) != NULL)
		return (journal_damage(s->journal));
	if (journal_recovering(s->journal))
		return ("a recovery was under way when the node stopped");
	if (journal_unclean_none(s->journal))
		return ("the node did not stop cleanly, and with fsync = "
		    "\"none\" acknowledged messages may not have reached "
		    "the disk");
	if (s->count == 0)
		return ("the log is empty");
	return (NULL);
}

int
store_set_recovering(struct store *s, int on, char **cause)
{
	return (journal_set_recovering(s->journal, on, cause));
}

int
store_stop(struct store *s, char **cause)
{
	return (journal_stop(s->journal, cause));
}
