/*
 * store.c: MESSAGES, the master's durable store.
 *
 * Memory: every message once, in cluster order (msgs[]), plus three views
 * over the same pointers: per origin an array indexed by seq - 1 (the store
 * is gap-free per origin, so that array is dense), the have vector, and a
 * hash of (origin, client_id) for retried sends.  The store owns every
 * message; the views only borrow.
 *
 * Disk: data_dir/messages.log, append-only, one record per message:
 * [u32 length][u32 crc32 of payload][payload: msg_pack() map], big endian.
 * Records are written in arrival order and sorted again at open.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <zlib.h>

#include "nodetalk.h"
#include "channel.h"
#include "log.h"
#include "store.h"

#define STORE_LOG_NAME	"messages.log"
#define STORE_HDR_LEN	8
/* Far above any legal message; a larger length can only be corruption. */
#define STORE_MAX_RECORD	(16 * 1024 * 1024)
#define CID_MIN_SLOTS	16
#define FNV_OFFSET	14695981039346656037ULL
#define FNV_PRIME	1099511628211ULL

/* One origin's messages, by seq: byseq[seq - 1]. */
struct store_origin {
	char		  name[NT_ORIGIN_MAX + 1];
	struct nt_msg	**byseq;	/* borrowed from msgs[] */
	size_t		  n;
	size_t		  cap;
};

/* Replay's read buffer, reused from record to record. */
struct recbuf {
	char		*buf;
	size_t		 cap;
	uint32_t	 len;
};

struct store {
	char			 *path;
	int			  fd;
	enum fsync_policy	  fsync;	/* for the caller; see store_open */
	int			  dirty;
	int			  broken;	/* log has junk we could not cut */
	int			  cut;		/* open cut a damaged tail off */
	off_t			  size;

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

static int	 store_mkdir(const char *, char **);
static int	 sync_dir(const char *, char **);
static int	 sync_parent(const char *, char **);
static int	 store_openlog(struct store *, char **);
static int	 store_replay(struct store *, char **);
static int	 record_read(int, off_t, struct recbuf *, const char **);
static int	 store_replay_one(struct store *, const char *, uint32_t,
		    off_t);
static int	 store_cut(struct store *, off_t, off_t, const char *,
		    char **);
static void	 store_sort(struct store *);
static int	 store_check(const struct store *, const struct nt_msg *);
static void	 store_index(struct store *, struct nt_msg *);
static void	 store_insert_ordered(struct store *, struct nt_msg *);
static void	 store_push(struct store *, struct nt_msg *);
static struct store_origin *store_origin_get(const struct store *,
		    const char *);
static struct store_origin *store_origin_add(struct store *, const char *);
static uint64_t	 fnv1a(uint64_t, const char *);
static uint64_t	 cid_hash(const char *, const char *);
static struct nt_msg **cid_slot(struct nt_msg **, size_t, const char *,
		    const char *);
static void	 cid_grow(struct store *);
static void	 cid_add(struct store *, struct nt_msg *);
static int	 record_pack(const struct nt_msg *, msgpack_sbuffer *);
static int	 write_all(int, const char *, size_t);
static ssize_t	 pread_all(int, void *, size_t, off_t);
static void	 put_be32(unsigned char *, uint32_t);
static uint32_t	 get_be32(const unsigned char *);
static int	 cmp_msgp(const void *, const void *);

/*
 * Open the store.  The fsync policy is only kept for the caller: the master
 * decides when store_sync() runs, so the store never syncs on its own.
 */
struct store *
store_open(const char *data_dir, enum fsync_policy fsync, char **cause)
{
	struct store	*s;
	size_t		 len;

	*cause = NULL;
	if (store_mkdir(data_dir, cause) == -1)
		return (NULL);
	s = xcalloc(1, sizeof(*s));
	s->fd = -1;
	s->fsync = fsync;
	len = strlen(data_dir);
	xasprintf(&s->path, "%s%s%s", data_dir,
	    len > 0 && data_dir[len - 1] == '/' ? "" : "/", STORE_LOG_NAME);
	if (store_openlog(s, cause) == -1 || sync_dir(data_dir, cause) == -1 ||
	    store_replay(s, cause) == -1) {
		store_close(s);
		return (NULL);
	}
	return (s);
}

/*
 * Create the parents of dir that are missing ("./data/A" on a fresh
 * checkout), as mkdir -p would; the last level is store_mkdir()'s.
 */
static int
store_mkparents(const char *dir)
{
	char	*p, *s;
	int	 rv = 0;

	s = xstrdup(dir);
	for (p = s + 1; *p != '\0' && rv == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0755) == -1 && errno != EEXIST)
			rv = -1;
		*p = '/';
	}
	free(s);
	return (rv);
}

/* Create data_dir (and its parents) or check that it is usable. */
static int
store_mkdir(const char *dir, char **cause)
{
	struct stat	 st;

	if (store_mkparents(dir) == -1)
		goto fail;
	if (mkdir(dir, 0750) == 0) {
		if (sync_parent(dir, cause) == -1)
			return (-1);
	} else if (errno != EEXIST)
		goto fail;
	if (stat(dir, &st) == -1)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	if (access(dir, W_OK | X_OK) == -1)
		goto fail;
	return (0);
fail:
	xasprintf(cause, "data_dir %s: %s", dir, strerror(errno));
	return (-1);
}

/*
 * fsync(2) on a file does not make its directory entry durable.  Sync the
 * directory once at open, so that the first records of a new log (and a
 * new data_dir) survive a crash like every later one.
 */
static int
sync_dir(const char *dir, char **cause)
{
	int	 fd, rv;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "data_dir %s: %s", dir, strerror(errno));
		return (-1);
	}
	rv = fsync(fd);
	/* Some file systems cannot sync a directory; nothing to be done. */
	if (rv == -1 && errno == EINVAL)
		rv = 0;
	if (rv == -1)
		xasprintf(cause, "data_dir %s: fsync: %s", dir,
		    strerror(errno));
	close(fd);
	return (rv);
}

static int
sync_parent(const char *dir, char **cause)
{
	char	*parent, *slash;
	size_t	 len;
	int	 rv;

	parent = xstrdup(dir);
	len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = '\0';		/* "d/" names d, not its child */
	if ((slash = strrchr(parent, '/')) == NULL)
		rv = sync_dir(".", cause);
	else {
		slash[slash == parent ? 1 : 0] = '\0';
		rv = sync_dir(parent, cause);
	}
	free(parent);
	return (rv);
}

/*
 * Open and lock the log.  The lock is on the open file description, so a
 * second store_open() on the same directory fails even within one process.
 */
static int
store_openlog(struct store *s, char **cause)
{
	s->fd = open(s->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (s->fd == -1) {
		xasprintf(cause, "%s: %s", s->path, strerror(errno));
		return (-1);
	}
	if (flock(s->fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			xasprintf(cause, "%s is in use by another nodetalkd",
			    s->path);
		else
			xasprintf(cause, "%s: flock: %s", s->path,
			    strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * Read every record into memory.  Replay appends in log order and sorts
 * once at the end: a node that caught up after downtime has long runs of
 * old messages after new ones, and inserting each would be quadratic.
 */
static int
store_replay(struct store *s, char **cause)
{
	struct stat	 st;
	struct recbuf	 rb;
	off_t		 off = 0;
	const char	*why = NULL;
	int		 rv;

	if (fstat(s->fd, &st) == -1) {
		xasprintf(cause, "%s: %s", s->path, strerror(errno));
		return (-1);
	}
	memset(&rb, 0, sizeof(rb));
	while (off < st.st_size) {
		if ((rv = record_read(s->fd, off, &rb, &why)) == -1) {
			/* Not a torn tail: cutting here could lose data. */
			xasprintf(cause, "%s: read at offset %lld: %s",
			    s->path, (long long)off, strerror(errno));
			free(rb.buf);
			return (-1);
		}
		if (rv == 0)
			break;
		if (store_replay_one(s, rb.buf, rb.len, off) == -1) {
			why = "not a message";
			break;
		}
		off += STORE_HDR_LEN + rb.len;
	}
	free(rb.buf);
	s->size = off;
	store_sort(s);
	if (why != NULL)
		return (store_cut(s, off, st.st_size, why, cause));
	return (0);
}

/*
 * Read the record at off into rb.  1 when it is whole and its crc matches,
 * 0 when it is torn or corrupt (*why says how), -1 on a read error.
 */
static int
record_read(int fd, off_t off, struct recbuf *rb, const char **why)
{
	unsigned char	 hdr[STORE_HDR_LEN];
	ssize_t		 n;

	if ((n = pread_all(fd, hdr, sizeof(hdr), off)) == -1)
		return (-1);
	if ((size_t)n < sizeof(hdr)) {
		*why = "short header";
		return (0);
	}
	rb->len = get_be32(hdr);
	if (rb->len == 0 || rb->len > STORE_MAX_RECORD) {
		*why = "bad length";
		return (0);
	}
	if (rb->len > rb->cap) {
		rb->buf = xreallocarray(rb->buf, 1, rb->len);
		rb->cap = rb->len;
	}
	if ((n = pread_all(fd, rb->buf, rb->len, off + sizeof(hdr))) == -1)
		return (-1);
	if ((size_t)n < rb->len) {
		*why = "short payload";
		return (0);
	}
	if (crc32(0L, (const Bytef *)rb->buf, rb->len) != get_be32(hdr + 4)) {
		*why = "bad crc";
		return (0);
	}
	return (1);
}

/*
 * Take in one record's payload.  -1 only when it is not a message; a
 * duplicate or a gap is a valid record this store will not keep.
 */
static int
store_replay_one(struct store *s, const char *buf, uint32_t len, off_t off)
{
	msgpack_zone	 zone;
	msgpack_object	 obj;
	struct nt_msg	*m;
	size_t		 used = 0;
	int		 rv = -1;

	msgpack_zone_init(&zone, 1024);
	m = msg_new();
	if (msgpack_unpack(buf, len, &used, &zone, &obj) !=
	    MSGPACK_UNPACK_SUCCESS || used != len || msg_unpack(&obj, m) == -1)
		goto out;
	rv = 0;
	switch (store_check(s, m)) {
	case 1:
		store_index(s, m);
		store_push(s, m);
		m = NULL;
		break;
	case -2:
		log_warnx("%s: record at offset %lld: %s seq %llu leaves a gap"
		    " after %llu; skipped", s->path, (long long)off, m->origin,
		    (unsigned long long)m->seq,
		    (unsigned long long)have_get(&s->have, m->origin));
		break;
	default:
		break;		/* a duplicate: the first copy stands */
	}
out:
	msg_free(m);
	msgpack_zone_destroy(&zone);
	return (rv);
}

/*
 * A torn or corrupt tail: drop it so the node can start, and so that new
 * records do not land behind junk that the next replay would stop at.
 */
static int
store_cut(struct store *s, off_t off, off_t size, const char *why,
    char **cause)
{
	log_warnx("%s: corrupt or torn record at offset %lld (%s); "
	    "truncating %lld bytes", s->path, (long long)off, why,
	    (long long)(size - off));
	s->cut = 1;
	if (ftruncate(s->fd, off) == -1 || fsync(s->fd) == -1) {
		xasprintf(cause, "%s: truncate to %lld: %s", s->path,
		    (long long)off, strerror(errno));
		return (-1);
	}
	return (0);
}

/* Whether open lost records: what they held must come back from peers. */
int
store_was_cut(const struct store *s)
{
	return (s->cut);
}

void
store_close(struct store *s)
{
	size_t	 i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nmsgs; i++)
		msg_free(s->msgs[i]);
	free(s->msgs);
	for (i = 0; i < s->norigins; i++)
		free(s->origins[i].byseq);
	free(s->origins);
	have_clear(&s->have);
	free(s->cidtab);
	if (s->fd != -1)
		close(s->fd);	/* releases the flock */
	free(s->path);
	free(s);
}

/*
 * Write first, then take the message into memory, so that a failed write
 * leaves memory as it was and nothing unwritten is ever served.
 */
int
store_append(struct store *s, const struct nt_msg *m)
{
	msgpack_sbuffer	 sb;
	int		 rv;

	if ((rv = store_check(s, m)) != 1)
		return (rv);
	if (s->broken) {
		errno = EIO;
		return (-1);
	}
	msgpack_sbuffer_init(&sb);
	if (record_pack(m, &sb) == -1 ||
	    write_all(s->fd, sb.data, sb.size) == -1) {
		rv = errno;
		/* Never leave half a record for the next replay to stop at. */
		if (ftruncate(s->fd, s->size) == -1)
			s->broken = 1;
		msgpack_sbuffer_destroy(&sb);
		errno = rv;
		return (-1);
	}
	s->size += sb.size;
	s->dirty = 1;
	msgpack_sbuffer_destroy(&sb);
	store_insert_ordered(s, msg_dup(m));
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

/* The whole record in one buffer, so it goes out in one write(2). */
static int
record_pack(const struct nt_msg *m, msgpack_sbuffer *sb)
{
	msgpack_packer	 pk;
	unsigned char	 hdr[STORE_HDR_LEN];
	size_t		 len;

	memset(hdr, 0, sizeof(hdr));
	if (msgpack_sbuffer_write(sb, (const char *)hdr, sizeof(hdr)) != 0) {
		errno = ENOMEM;
		return (-1);
	}
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msg_pack(&pk, m);
	len = sb->size - sizeof(hdr);
	if (len > STORE_MAX_RECORD) {
		/* Replay would take it for corruption. */
		errno = EMSGSIZE;
		return (-1);
	}
	put_be32((unsigned char *)sb->data, len);
	put_be32((unsigned char *)sb->data + 4,
	    crc32(0L, (const Bytef *)sb->data + sizeof(hdr), len));
	return (0);
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

int
store_sync(struct store *s)
{
	if (!s->dirty)
		return (0);
	/* Stay dirty on failure so that the caller can try again. */
	if (fdatasync(s->fd) == -1)
		return (-1);
	s->dirty = 0;
	return (0);
}

int
store_dirty(const struct store *s)
{
	return (s->dirty);
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

size_t
store_next_missing(const struct store *s, const struct nt_have *have,
    size_t start)
{
	const struct nt_msg	*m;
	size_t			 i;

	for (i = start; i < s->nmsgs; i++) {
		m = s->msgs[i];
		if (origin_is_local_only(m->origin))
			continue;
		if (have == NULL || m->seq > have_get(have, m->origin))
			return (i);
	}
	return (s->nmsgs);
}

const char *
store_path(const struct store *s)
{
	return (s->path);
}

off_t
store_log_size(const struct store *s)
{
	return (s->size);
}

/* Regular files only; loops over EINTR and short writes. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0) {
			errno = EIO;
			return (-1);
		}
		buf += n;
		len -= n;
	}
	return (0);
}

/* Bytes read: fewer than len only at end of file.  -1 on error. */
static ssize_t
pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t	 done = 0;
	ssize_t	 n;

	while (done < len) {
		n = pread(fd, (char *)buf + done, len - done, off + done);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0)
			break;
		done += n;
	}
	return (done);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
}
