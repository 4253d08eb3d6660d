/*
 * store.c: MESSAGES, the master's durable store.
 *
 * Memory: every message once, in cluster order (msgs[]), plus three views
 * over the same pointers: per origin an array indexed by seq - 1 (the store
 * is gap-free per origin, so that array is dense), the have vector, and a
 * hash of (origin, client_id) for retried sends.  The store owns every
 * message; the views only borrow.  Messages the log holds beyond a gap (a
 * record before them was damaged) are parked per origin until the gap is
 * filled, by a peer, and then take their place.
 *
 * Disk: journal.c, the log of records in arrival order, sorted at open.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "journal.h"
#include "log.h"
#include "store.h"

#define CID_MIN_SLOTS	16
#define FNV_OFFSET	14695981039346656037ULL
#define FNV_PRIME	1099511628211ULL

/*
 * One origin's messages, by seq: byseq[seq - 1].  The first nrel of them
 * may be served (store_release()); the rest wait for their sync.  parked[]
 * holds, by seq, messages beyond a gap.
 */
struct store_origin {
	char		  name[NT_ORIGIN_MAX + 1];
	struct nt_msg	**byseq;	/* borrowed from msgs[] */
	size_t		  n;
	size_t		  nrel;
	size_t		  cap;
	int		  local;	/* origin_is_local_only() */
	struct nt_msg	**parked;	/* owned */
	size_t		  nparked;
};

struct store {
	struct journal		 *journal;
	int			  replaying;

	struct nt_msg		**msgs;		/* owned, cluster order */
	size_t			  nmsgs;
	size_t			  msgcap;

	struct store_origin	 *origins;
	size_t			  norigins;
	struct nt_have		  have;
	uint64_t		  lamport;

	struct nt_msg		**cidtab;	/* borrowed; NULL = empty */
	size_t			  cidcap;	/* 0 or a power of two */
	size_t			  ncid;
};

static void	 store_replay_one(struct nt_msg *, off_t, void *);
static void	 store_sort(struct store *);
static int	 store_check(const struct store *, const struct nt_msg *);
static void	 store_take(struct store *, struct nt_msg *);
static void	 store_index(struct store *, struct nt_msg *);
static void	 store_insert_ordered(struct store *, struct nt_msg *);
static void	 store_push(struct store *, struct nt_msg *);
static void	 store_park(struct store *, struct nt_msg *);
static void	 store_unpark(struct store *, const char *);
static struct store_origin *store_origin_get(const struct store *,
		    const char *);
static struct store_origin *store_origin_add(struct store *, const char *);
static uint64_t	 fnv1a(uint64_t, const char *);
static uint64_t	 cid_hash(const char *, const char *);
static struct nt_msg **cid_slot(struct nt_msg **, size_t, const char *,
		    const char *);
static void	 cid_grow(struct store *);
static void	 cid_add(struct store *, struct nt_msg *);
static int	 cmp_msgp(const void *, const void *);

/*
 * Open the store and read the log into memory.  Replay appends in log
 * order and sorts once at the end: a node that caught up after downtime
 * has long runs of old messages after new ones, and inserting each would
 * be quadratic.  The fsync policy is only kept for the caller: the master
 * decides when store_sync() runs, so the store never syncs on its own.
 */
struct store *
store_open(const char *data_dir, enum fsync_policy fsync, char **cause)
{
	struct store	*s;
	size_t		 i;

	*cause = NULL;
	s = xcalloc(1, sizeof(*s));
	if ((s->journal = journal_open(data_dir, fsync, cause)) == NULL) {
		free(s);
		return (NULL);
	}
	s->replaying = 1;
	if (journal_replay(s->journal, store_replay_one, s, cause) == -1) {
		store_close(s);
		return (NULL);
	}
	s->replaying = 0;
	store_sort(s);
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

/* One record from the log: stored, parked after a gap, or a duplicate. */
static void
store_replay_one(struct nt_msg *m, off_t off, void *arg)
{
	struct store	*s = arg;

	switch (store_check(s, m)) {
	case 1:
		store_take(s, m);
		break;
	case -2:
		store_park(s, m);
		break;
	default:
		msg_free(m);	/* a duplicate: the first copy stands */
		break;
	}
}

void
store_close(struct store *s)
{
	size_t	 i, j;

	if (s == NULL)
		return;
	for (i = 0; i < s->nmsgs; i++)
		msg_free(s->msgs[i]);
	free(s->msgs);
	for (i = 0; i < s->norigins; i++) {
		free(s->origins[i].byseq);
		for (j = 0; j < s->origins[i].nparked; j++)
			msg_free(s->origins[i].parked[j]);
		free(s->origins[i].parked);
	}
	free(s->origins);
	have_clear(&s->have);
	free(s->cidtab);
	journal_close(s->journal);
	free(s);
}

/*
 * The record joins the journal's batch (store_write() writes it) and the
 * message is taken into memory; nothing unwritten is ever served, as only
 * the caller's store_release(), after the write and its sync, lets readers
 * see it.  Parked messages that follow it take their places too (they are
 * in the log already).
 */
int
store_append(struct store *s, const struct nt_msg *m)
{
	int	 rv;

	if ((rv = store_check(s, m)) != 1)
		return (rv);
	if (journal_append(s->journal, m) == -1)
		return (-1);
	store_take(s, msg_dup(m));
	return (1);
}

/*
 * 1 when m is the next seq of its origin, 0 when already stored, -2 when
 * it would leave a gap, -1 (EINVAL) when it has no identity.
 */
static int
store_check(const struct store *s, const struct nt_msg *m)
{
	uint64_t	 have;

	if (memchr(m->origin, '\0', sizeof(m->origin)) == NULL ||
	    m->origin[0] == '\0' || m->seq == 0) {
		errno = EINVAL;
		return (-1);
	}
	have = have_get(&s->have, m->origin);
	if (m->seq <= have)
		return (0);
	if (m->seq > have + 1)
		return (-2);
	return (1);
}

/* Hand m (owned) to the store at its place in the cluster order. */
static void
store_insert_ordered(struct store *s, struct nt_msg *m)
{
	size_t	 lo, hi, mid;

	store_index(s, m);
	/* Nearly every message is the newest: no search needed. */
	if (s->nmsgs == 0 || msg_cmp_order(s->msgs[s->nmsgs - 1], m) < 0) {
		store_push(s, m);
		return;
	}
	lo = 0;
	hi = s->nmsgs;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (msg_cmp_order(s->msgs[mid], m) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	store_push(s, m);	/* grows the array; m goes to lo below */
	memmove(&s->msgs[lo + 1], &s->msgs[lo],
	    (s->nmsgs - 1 - lo) * sizeof(*s->msgs));
	s->msgs[lo] = m;
}

/* Append m (owned) to msgs[] without regard to order. */
static void
store_push(struct store *s, struct nt_msg *m)
{
	if (s->nmsgs == s->msgcap) {
		s->msgcap = s->msgcap == 0 ? 64 : s->msgcap * 2;
		s->msgs = xreallocarray(s->msgs, s->msgcap, sizeof(*s->msgs));
	}
	s->msgs[s->nmsgs++] = m;
}

static int
cmp_msgp(const void *a, const void *b)
{
	return (msg_cmp_order(*(struct nt_msg *const *)a,
	    *(struct nt_msg *const *)b));
}

/* msg_cmp_order() ends with seq, so the order is total and qsort is safe. */
static void
store_sort(struct store *s)
{
	if (s->nmsgs > 1)
		qsort(s->msgs, s->nmsgs, sizeof(*s->msgs), cmp_msgp);
}

/* Record m, which store_check() accepted, in the per-origin views. */
static void
store_index(struct store *s, struct nt_msg *m)
{
	struct store_origin	*o;

	if ((o = store_origin_get(s, m->origin)) == NULL)
		o = store_origin_add(s, m->origin);
	if (o->n == o->cap) {
		o->cap = o->cap == 0 ? 16 : o->cap * 2;
		o->byseq = xreallocarray(o->byseq, o->cap, sizeof(*o->byseq));
	}
	o->byseq[o->n++] = m;
	have_set(&s->have, m->origin, m->seq);
	if (m->lamport > s->lamport)
		s->lamport = m->lamport;
	if (m->client_id != NULL && m->client_id[0] != '\0')
		cid_add(s, m);
}

/* A cluster has a handful of origins: a linear scan is the fast path. */
static struct store_origin *
store_origin_get(const struct store *s, const char *origin)
{
	size_t	 i;

	for (i = 0; i < s->norigins; i++)
		if (strcmp(s->origins[i].name, origin) == 0)
			return (&s->origins[i]);
	return (NULL);
}

static struct store_origin *
store_origin_add(struct store *s, const char *origin)
{
	struct store_origin	*o;

	s->origins = xreallocarray(s->origins, s->norigins + 1,
	    sizeof(*s->origins));
	o = &s->origins[s->norigins++];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", origin);
	o->local = origin_is_local_only(origin);
	return (o);
}

static uint64_t
fnv1a(uint64_t h, const char *p)
{
	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * FNV_PRIME;
	return (h);
}

/* FNV-1a over origin, a NUL, then client_id: "A"+"Bc" is not "AB"+"c". */
static uint64_t
cid_hash(const char *origin, const char *cid)
{
	uint64_t	 h;

	h = fnv1a(FNV_OFFSET, origin);
	h *= FNV_PRIME;		/* the NUL: h ^ 0 == h */
	return (fnv1a(h, cid));
}

/*
 * The slot holding (origin, cid), or the empty slot where it would go.
 * The table is never full (see cid_add), so the probe ends.
 */
static struct nt_msg **
cid_slot(struct nt_msg **tab, size_t cap, const char *origin, const char *cid)
{
	size_t	 i, mask = cap - 1;

	i = cid_hash(origin, cid) & mask;
	while (tab[i] != NULL) {
		if (strcmp(tab[i]->origin, origin) == 0 &&
		    strcmp(tab[i]->client_id, cid) == 0)
			return (&tab[i]);
		i = (i + 1) & mask;
	}
	return (&tab[i]);
}

static void
cid_grow(struct store *s)
{
	struct nt_msg	**tab, **slot;
	size_t		  cap, i;

	cap = s->cidcap == 0 ? CID_MIN_SLOTS : s->cidcap * 2;
	tab = xcalloc(cap, sizeof(*tab));
	for (i = 0; i < s->cidcap; i++) {
		if (s->cidtab[i] == NULL)
			continue;
		slot = cid_slot(tab, cap, s->cidtab[i]->origin,
		    s->cidtab[i]->client_id);
		*slot = s->cidtab[i];
	}
	free(s->cidtab);
	s->cidtab = tab;
	s->cidcap = cap;
}

/* Keep the load under 70%.  A repeated key keeps the first message. */
static void
cid_add(struct store *s, struct nt_msg *m)
{
	struct nt_msg	**slot;

	if ((s->ncid + 1) * 10 > s->cidcap * 7)
		cid_grow(s);
	slot = cid_slot(s->cidtab, s->cidcap, m->origin, m->client_id);
	if (*slot != NULL)
		return;
	*slot = m;
	s->ncid++;
}

/* m (owned), which store_check() accepted, and what it unparks. */
static void
store_take(struct store *s, struct nt_msg *m)
{
	char	 origin[NT_ORIGIN_MAX + 1];

	memcpy(origin, m->origin, sizeof(origin));
	if (s->replaying) {
		store_index(s, m);
		store_push(s, m);
	} else
		store_insert_ordered(s, m);
	store_unpark(s, origin);
}

/* Keep m (owned), which lies beyond a gap, by seq; the first copy stands. */
static void
store_park(struct store *s, struct nt_msg *m)
{
	struct store_origin	*o;
	size_t			 lo = 0, hi, mid;

	if ((o = store_origin_get(s, m->origin)) == NULL)
		o = store_origin_add(s, m->origin);
	hi = o->nparked;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (o->parked[mid]->seq < m->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < o->nparked && o->parked[lo]->seq == m->seq) {
		msg_free(m);
		return;
	}
	o->parked = xreallocarray(o->parked, o->nparked + 1,
	    sizeof(*o->parked));
	memmove(&o->parked[lo + 1], &o->parked[lo],
	    (o->nparked - lo) * sizeof(*o->parked));
	o->parked[lo] = m;
	o->nparked++;
}

/* The gap before an origin's parked messages may be filled now. */
static void
store_unpark(struct store *s, const char *origin)
{
	struct store_origin	*o;
	struct nt_msg		*m;
	size_t			 i = 0;

	if ((o = store_origin_get(s, origin)) == NULL || o->nparked == 0)
		return;
	while (i < o->nparked && o->parked[i]->seq <= o->n + 1) {
		m = o->parked[i++];
		if (m->seq <= o->n)
			msg_free(m);		/* it came again meanwhile */
		else if (s->replaying) {
			store_index(s, m);
			store_push(s, m);
		} else
			store_insert_ordered(s, m);
		/* store_index() may have moved the origins array */
		o = store_origin_get(s, origin);
	}
	memmove(o->parked, o->parked + i, (o->nparked - i) * sizeof(*o->parked));
	o->nparked -= i;
}

/* How many messages of origin wait beyond a gap. */
size_t
store_parked(const struct store *s, const char *origin)
{
	const struct store_origin	*o;

	if ((o = store_origin_get(s, origin)) == NULL)
		return (0);
	return (o->nparked);
}

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
	if (s->nmsgs == 0)
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

size_t
store_count(const struct store *s)
{
	return (s->nmsgs);
}

const struct nt_msg *
store_at(const struct store *s, size_t i)
{
	if (i >= s->nmsgs)
		return (NULL);
	return (s->msgs[i]);
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

const struct nt_msg *
store_lookup(const struct store *s, const char *origin, uint64_t seq)
{
	const struct store_origin	*o;

	if ((o = store_origin_get(s, origin)) == NULL || seq == 0 ||
	    seq > o->n)
		return (NULL);
	return (o->byseq[seq - 1]);
}

const struct nt_msg *
store_lookup_client_id(const struct store *s, const char *origin,
    const char *client_id)
{
	if (s->cidcap == 0 || client_id == NULL)
		return (NULL);
	return (*cid_slot(s->cidtab, s->cidcap, origin, client_id));
}

/*
 * Cursors: a position per origin (how many of its messages lie behind the
 * cursor).  Each origin's messages sort by seq in the cluster order too
 * (an origin gives each message a clock above its last one), so the next
 * message in the cluster order is the least of the origins' next ones: a
 * merge of a handful of arrays.  A message stored later behind the cursor
 * (a late one with a small clock) is simply the next one then.
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
	for (i = c->npos; i < s->norigins; i++)
		c->pos[i] = have_get(&c->from, s->origins[i].name);
	c->npos = s->norigins;
}

static int
cursor_skips(const struct store_cursor *c, const struct store_origin *o)
{
	return ((c->flags & CURSOR_NO_LOCAL) && o->local);
}

const struct nt_msg *
store_cursor_next(struct store *s, struct store_cursor *c)
{
	const struct store_origin	*o;
	const struct nt_msg		*m, *best = NULL;
	size_t				 i, bi = 0;

	cursor_extend(s, c);
	for (i = 0; i < s->norigins; i++) {
		o = &s->origins[i];
		if (c->pos[i] >= o->nrel || cursor_skips(c, o))
			continue;
		m = o->byseq[c->pos[i]];
		if (best == NULL || msg_cmp_order(m, best) < 0) {
			best = m;
			bi = i;
		}
	}
	if (best != NULL)
		c->pos[bi]++;
	return (best);
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
	uint64_t	 n = 0;
	size_t		 i;

	cursor_extend(s, c);
	for (i = 0; i < s->norigins; i++)
		if (s->origins[i].nrel > c->pos[i] &&
		    !cursor_skips(c, &s->origins[i]))
			n += s->origins[i].nrel - c->pos[i];
	return (n);
}

void
store_release(struct store *s, const char *origin, uint64_t seq)
{
	struct store_origin	*o;

	if ((o = store_origin_get(s, origin)) == NULL)
		return;
	if (seq > o->n)
		seq = o->n;
	if (seq > o->nrel)
		o->nrel = seq;
}
