/*
 * journal.c: the message log on disk (data_dir/messages.log), its index
 * (logindex.c) and the state files beside it.  store.c keeps an index of
 * the messages in memory and calls this file for everything that touches
 * the disk.
 *
 * Records are appended to the turn's output and written with one write(2)
 * per turn (journal_write), then synced when the master says.  At open
 * the log is read back, every record's CRC checked, and damage is never
 * cut away: the bytes of a bad record (a torn write at the end, a bad
 * block in the middle) are copied into a file of their own that an
 * operator can inspect, named in the log line, and only then taken out of
 * the log; reading resumes at the next offset where a whole record begins
 * (its length is plausible, its CRC matches and its payload is a
 * message), so that every valid record after the damage is kept.
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
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zlib.h>

#include "nodetalk.h"
#include "channel.h"
#include "config.h"
#include "journal.h"
#include "log.h"
#include "logindex.h"

/* State files beside the log; see store_doubt() in store.c. */
#define STATE_RUNNING		"running"
#define STATE_RECOVERING	"recovering"
#define RESYNC_WINDOW		(64 * 1024)
#define COPY_CHUNK		(64 * 1024)
#define READ_CHUNK		(1024 * 1024)	/* replay reads this much */

struct journal {
	char			*dir;
	char			*path;
	int			 fd;
	enum fsync_policy	 fsync;
	off_t			 size;		/* written and appended */
	off_t			 written;	/* in the file */
	off_t			 synced;	/* durable */
	const char		*damage;	/* what replay found */
	int			 unclean_none;	/* last run died under "none" */
	int			 recovering;	/* the state file exists */
	msgpack_sbuffer		 out;		/* this turn's records */
	struct journal_rec	 last;		/* the last one appended, */
	size_t			 last_at;	/* its payload in out */
	int			 last_ok;	/* (until out is written) */
	char			*rbuf;		/* journal_read()'s */
	size_t			 rcap;
	struct logindex		*index;
};

/* Replay's read buffer, reused from record to record. */
struct recbuf {
	char		*buf;
	size_t		 cap;
	uint32_t	 len;
};

/* Bytes that are not a record: [off, end), and why. */
struct damage {
	off_t		 off;
	off_t		 end;
	const char	*why;
};

/* Replay's sequential reads of the log, a megabyte at a time. */
struct reader {
	int		 fd;
	char		*buf;
	size_t		 cap;
	off_t		 base;
	size_t		 len;
};

static int	 mkdir_p(const char *, char **);
static int	 sync_dir(const char *, char **);
static int	 sync_parent(const char *, char **);
static int	 journal_lock(struct journal *, char **);
static int	 journal_mark_running(struct journal *, char **);
static int	 record_at(int, off_t, off_t, struct recbuf *,
		    struct nt_msg **, const char **);
static off_t	 journal_resync(struct journal *, off_t, off_t,
		    struct recbuf *);
static int	 journal_set_aside(struct journal *, struct damage *, size_t,
		    off_t, char **);
static int	 record_pack(const struct nt_msg *, msgpack_sbuffer *, size_t *,
		    uint32_t *);
static int	 write_all(int, const char *, size_t);
static ssize_t	 pread_all(int, void *, size_t, off_t);
static void	 put_be32(unsigned char *, uint32_t);
static uint32_t	 get_be32(const unsigned char *);

struct journal *
journal_open(const char *data_dir, enum fsync_policy fsync, char **cause)
{
	struct journal	*j;
	char		*ipath;
	size_t		 len = strlen(data_dir);

	*cause = NULL;
	if (mkdir_p(data_dir, cause) == -1)
		return (NULL);
	j = xcalloc(1, sizeof(*j));
	j->fd = -1;
	j->fsync = fsync;
	msgpack_sbuffer_init(&j->out);
	j->dir = xstrndup(data_dir, len > 1 && data_dir[len - 1] == '/' ?
	    len - 1 : len);
	xasprintf(&j->path, "%s/%s", j->dir, JOURNAL_NAME);
	if (journal_lock(j, cause) == -1 || sync_dir(j->dir, cause) == -1 ||
	    journal_mark_running(j, cause) == -1) {
		journal_close(j);
		return (NULL);
	}
	xasprintf(&ipath, "%s/%s", j->dir, JOURNAL_INDEX_NAME);
	j->index = logindex_open(ipath);
	free(ipath);
	return (j);
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	logindex_close(j->index);
	if (j->fd != -1)
		close(j->fd);	/* releases the flock */
	msgpack_sbuffer_destroy(&j->out);
	free(j->rbuf);
	free(j->path);
	free(j->dir);
	free(j);
}

/* Reading. */

/* n bytes at off through the reader's buffer; NULL at the end of file. */
static const char *
reader_at(struct reader *r, off_t off, size_t n)
{
	ssize_t	 got;
	size_t	 want;

	if (off >= r->base && off + (off_t)n <= r->base + (off_t)r->len)
		return (r->buf + (off - r->base));
	want = n > READ_CHUNK ? n : READ_CHUNK;
	if (want > r->cap) {
		r->buf = xreallocarray(r->buf, 1, want);
		r->cap = want;
	}
	if ((got = pread_all(r->fd, r->buf, want, off)) == -1)
		return (NULL);
	r->base = off;
	r->len = got;
	errno = 0;
	if ((size_t)got < n)
		return (NULL);
	return (r->buf);
}

/*
 * The record at off, as far as its header and CRC go: 1 (its payload
 * length and CRC in *len and *crc), 0 when it is torn or corrupt (*why),
 * -1 on a read error.
 */
static int
record_check(struct reader *r, off_t off, off_t size, uint32_t *len,
    uint32_t *crc, const char **payload, const char **why)
{
	const unsigned char	*hdr;

	if ((hdr = (const unsigned char *)reader_at(r, off,
	    JOURNAL_HDR_LEN)) == NULL) {
		*why = "short header";
		return (errno != 0 ? -1 : 0);
	}
	*len = get_be32(hdr);
	*crc = get_be32(hdr + 4);
	if (*len == 0 || *len > JOURNAL_MAX_RECORD) {
		*why = "bad length";
		return (0);
	}
	if (off + JOURNAL_HDR_LEN + (off_t)*len > size) {
		*why = "short payload";
		return (0);
	}
	if ((*payload = reader_at(r, off + JOURNAL_HDR_LEN, *len)) == NULL) {
		*why = "short payload";
		return (errno != 0 ? -1 : 0);
	}
	if (crc32(0L, (const Bytef *)*payload, *len) != *crc) {
		*why = "bad crc";
		return (0);
	}
	return (1);
}

/* A record's fields from its payload; -1 when it is not a message. */
static int
record_fields(const char *payload, uint32_t len, struct journal_rec *rec)
{
	msgpack_zone	 zone;
	msgpack_object	 obj;
	struct nt_msg	 m;
	size_t		 used = 0;
	int		 rv = -1;

	msgpack_zone_init(&zone, 1024);
	if (msgpack_unpack(payload, len, &used, &zone, &obj) ==
	    MSGPACK_UNPACK_SUCCESS && used == len && msg_unpack(&obj, &m) == 0) {
		memcpy(rec->origin, m.origin, sizeof(rec->origin));
		rec->seq = m.seq;
		rec->lamport = m.lamport;
		rec->cidhash = msg_cid_hash(m.origin, m.client_id);
		msg_clear(&m);
		rv = 0;
	}
	msgpack_zone_destroy(&zone);
	return (rv);
}

/*
 * One pass over the log.  Each valid record goes to cb, its fields from
 * the index when the index agrees (offset, length and CRC), else decoded;
 * after the first damage nothing more goes to cb (the offsets will move),
 * but the pass goes on to find every damaged range.
 */
int
journal_replay(struct journal *j, void (*cb)(const struct journal_rec *,
    void *), void *arg, char **cause)
{
	struct stat		 st;
	struct reader		 r;
	struct recbuf		 rb;
	struct damage		*dmg = NULL;
	struct journal_rec	 rec, ie;
	const char		*why = NULL, *payload;
	uint32_t		 len, crc, icrc;
	size_t			 ndmg = 0;
	off_t			 off = 0, next;
	int			 rv = -1, c, have_ie = 0;

	if (fstat(j->fd, &st) == -1) {
		xasprintf(cause, "%s: %s", j->path, strerror(errno));
		return (-1);
	}
	memset(&r, 0, sizeof(r));
	memset(&rb, 0, sizeof(rb));
	r.fd = j->fd;
	while (off < st.st_size) {
		c = record_check(&r, off, st.st_size, &len, &crc, &payload,
		    &why);
		if (c == 1 && ndmg == 0) {
			memset(&rec, 0, sizeof(rec));
			if (!have_ie)
				have_ie = logindex_next(j->index, &ie, &icrc);
			if (have_ie && ie.off == off && ie.len == len &&
			    icrc == crc) {
				rec = ie;
				have_ie = 0;
			} else if (record_fields(payload, len, &rec) == 0) {
				if (have_ie)
					logindex_rewind(j->index);
				have_ie = 0;
				rec.off = off;
				rec.len = len;
				logindex_add(j->index, &rec, crc);
			} else {
				c = 0;
				why = "not a message";
			}
			if (c == 1)
				cb(&rec, arg);
		}
		if (c == 1) {
			off += JOURNAL_HDR_LEN + len;
			continue;
		}
		if (c == 0 &&
		    (next = journal_resync(j, off + 1, st.st_size, &rb)) != -1) {
			dmg = xreallocarray(dmg, ndmg + 1, sizeof(*dmg));
			dmg[ndmg++] = (struct damage){ off, next, why };
			off = next;
			continue;
		}
		/* Not bad content but a failed read: moving it could lose data. */
		xasprintf(cause, "%s: read at offset %lld: %s", j->path,
		    (long long)off, strerror(errno));
		goto out;
	}
	j->size = j->written = j->synced = st.st_size;
	rv = 0;
	if (ndmg > 0) {
		rv = journal_set_aside(j, dmg, ndmg, st.st_size, cause);
		j->written = j->synced = j->size;
		/* Moved in the middle: the offsets changed; read again. */
		if (rv == 0 && j->size != dmg[0].off) {
			logindex_reset(j->index);
			rv = 1;
		}
	}
	/* An entry read but not matched names no record: it goes too. */
	if (rv == 0 && have_ie)
		logindex_rewind(j->index);
	else if (rv == 0)
		logindex_end_replay(j->index);
out:
	free(r.buf);
	free(rb.buf);
	free(dmg);
	return (rv);
}

const char *
journal_damage(const struct journal *j)
{
	return (j->damage);
}

/*
 * Create the parents of dir that are missing ("./data/A" on a fresh
 * checkout), as mkdir -p would, then dir itself, or check that it is
 * usable.
 */
static int
mkdir_p(const char *dir, char **cause)
{
	struct stat	 st;
	char		*p, *s;
	int		 rv = 0;

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
	if (rv == -1)
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
 * new data_dir) survive a crash like every later one, and after every
 * change of the files in it.
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
 * second open on the same directory fails even within one process.
 */
static int
journal_lock(struct journal *j, char **cause)
{
	j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->fd == -1) {
		xasprintf(cause, "%s: %s", j->path, strerror(errno));
		return (-1);
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			xasprintf(cause, "%s is in use by another nodetalkd",
			    j->path);
		else
			xasprintf(cause, "%s: flock: %s", j->path,
			    strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * Whether the record at off is whole and valid: 1 (with its message in
 * *mp, which the caller frees), 0 when it is torn or corrupt (*why says
 * how), -1 on a read error.
 */
static int
record_at(int fd, off_t off, off_t size, struct recbuf *rb,
    struct nt_msg **mp, const char **why)
{
	unsigned char	 hdr[JOURNAL_HDR_LEN];
	msgpack_zone	 zone;
	msgpack_object	 obj;
	struct nt_msg	*m;
	size_t		 used = 0;
	ssize_t		 n;

	if ((n = pread_all(fd, hdr, sizeof(hdr), off)) == -1)
		return (-1);
	if ((size_t)n < sizeof(hdr)) {
		*why = "short header";
		return (0);
	}
	rb->len = get_be32(hdr);
	if (rb->len == 0 || rb->len > JOURNAL_MAX_RECORD) {
		*why = "bad length";
		return (0);
	}
	if (off + (off_t)sizeof(hdr) + rb->len > size) {
		*why = "short payload";
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
	msgpack_zone_init(&zone, 1024);
	m = msg_new();
	if (msgpack_unpack(rb->buf, rb->len, &used, &zone, &obj) !=
	    MSGPACK_UNPACK_SUCCESS || used != rb->len ||
	    msg_unpack(&obj, m) == -1) {
		msgpack_zone_destroy(&zone);
		msg_free(m);
		*why = "not a message";
		return (0);
	}
	msgpack_zone_destroy(&zone);
	*mp = m;
	return (1);
}

/* A payload is a msgpack map: the first byte says so. */
static int
map_marker(unsigned char b)
{
	return ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf);
}

/*
 * The first offset at or after from where a valid record begins, or size
 * when none does; -1 on a read error.  Most offsets fail on the length or
 * the first payload byte, seen in a window of the file; only a plausible
 * one is read whole and checked.
 */
static off_t
journal_resync(struct journal *j, off_t from, off_t size, struct recbuf *rb)
{
	unsigned char	*win;
	struct nt_msg	*m;
	const char	*why;
	off_t		 base, o, found = size;
	ssize_t		 n, i;
	uint32_t	 len;

	win = xmalloc(RESYNC_WINDOW);
	for (base = from; base + JOURNAL_HDR_LEN < size && found == size;
	    base += n - JOURNAL_HDR_LEN) {
		if ((n = pread_all(j->fd, win, RESYNC_WINDOW, base)) == -1) {
			found = -1;
			break;
		}
		if (n <= JOURNAL_HDR_LEN)
			break;
		for (i = 0; i + JOURNAL_HDR_LEN < n; i++) {
			o = base + i;
			len = get_be32(win + i);
			if (len == 0 || len > JOURNAL_MAX_RECORD ||
			    o + JOURNAL_HDR_LEN + (off_t)len > size ||
			    !map_marker(win[i + JOURNAL_HDR_LEN]))
				continue;
			switch (record_at(j->fd, o, size, rb, &m, &why)) {
			case 1:
				msg_free(m);
				found = o;
				break;
			case -1:
				found = -1;
				break;
			default:
				continue;
			}
			break;
		}
	}
	free(win);
	return (found);
}

/* Copy [off, end) of the log into a new file; its name in *name. */
static int
save_range(struct journal *j, const struct damage *d, char **name,
    char **cause)
{
	char	*buf;
	off_t	 o;
	ssize_t	 n;
	size_t	 want;
	int	 fd, rv = -1, k;

	for (k = 0; k < 100; k++) {
		free(*name);
		if (k == 0)
			xasprintf(name, "%s.damaged-%lld-at-%lld", j->path,
			    (long long)time(NULL), (long long)d->off);
		else
			xasprintf(name, "%s.damaged-%lld-at-%lld.%d", j->path,
			    (long long)time(NULL), (long long)d->off, k);
		fd = open(*name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		xasprintf(cause, "%s: %s", *name, strerror(errno));
		return (-1);
	}
	buf = xmalloc(COPY_CHUNK);
	for (o = d->off; o < d->end; o += n) {
		want = d->end - o < COPY_CHUNK ? d->end - o : COPY_CHUNK;
		if ((n = pread_all(j->fd, buf, want, o)) <= 0 ||
		    write_all(fd, buf, n) == -1)
			goto out;
	}
	if (fsync(fd) == 0)
		rv = 0;
out:
	if (rv == -1)
		xasprintf(cause, "%s: saving the damaged bytes: %s", *name,
		    errno != 0 ? strerror(errno) : "short read");
	free(buf);
	close(fd);
	return (rv);
}

/* Copy the log without the damaged ranges, then put it in place. */
static int
journal_rewrite(struct journal *j, const struct damage *dmg, size_t ndmg,
    off_t size, char **cause)
{
	char	*tmp, *buf;
	off_t	 o, end, keep = 0;
	ssize_t	 n;
	size_t	 i, want;
	int	 fd, rv = -1;

	xasprintf(&tmp, "%s.new", j->path);
	buf = xmalloc(COPY_CHUNK);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
	if (fd == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1)
		goto out;
	for (i = 0; i <= ndmg; i++) {
		o = i == 0 ? 0 : dmg[i - 1].end;
		end = i < ndmg ? dmg[i].off : size;
		for (; o < end; o += n) {
			want = end - o < COPY_CHUNK ? end - o : COPY_CHUNK;
			if ((n = pread_all(j->fd, buf, want, o)) <= 0 ||
			    write_all(fd, buf, n) == -1)
				goto out;
			keep += n;
		}
	}
	if (fsync(fd) == -1 || rename(tmp, j->path) == -1)
		goto out;
	if (sync_dir(j->dir, cause) == -1) {
		close(fd);
		fd = -1;
		goto done;
	}
	close(j->fd);
	j->fd = fd;
	fd = -1;
	j->size = keep;
	rv = 0;
out:
	if (rv == -1)
		xasprintf(cause, "%s: rewriting without the damaged bytes: %s",
		    tmp, strerror(errno));
done:
	if (fd != -1) {
		close(fd);
		unlink(tmp);
	}
	free(buf);
	free(tmp);
	return (rv);
}

/*
 * Damage found: save every damaged range, then take it out of the log.
 * At the end only, truncating does (a crash in the middle of a write
 * leaves that); elsewhere the log is written anew without it.  Nothing
 * leaves the log before its copy is on disk.
 */
static int
journal_set_aside(struct journal *j, struct damage *dmg, size_t ndmg,
    off_t size, char **cause)
{
	char	*name = NULL;
	size_t	 i;
	int	 tail_only = ndmg == 1 && dmg[0].end == size;

	for (i = 0; i < ndmg; i++) {
		if (save_range(j, &dmg[i], &name, cause) == -1 ||
		    sync_dir(j->dir, cause) == -1) {
			free(name);
			return (-1);
		}
		if (tail_only)
			log_warnx("%s: corrupt or torn record at offset %lld "
			    "(%s); truncating %lld bytes (saved in %s)",
			    j->path, (long long)dmg[i].off, dmg[i].why,
			    (long long)(dmg[i].end - dmg[i].off), name);
		else
			log_warnx("%s: corrupt record at offset %lld (%s): "
			    "%lld damaged bytes moved to %s; the records after "
			    "them are kept", j->path, (long long)dmg[i].off,
			    dmg[i].why, (long long)(dmg[i].end - dmg[i].off),
			    name);
	}
	free(name);
	if (tail_only) {
		j->damage = "the end of the log was lost";
		if (ftruncate(j->fd, dmg[0].off) == -1 || fsync(j->fd) == -1) {
			xasprintf(cause, "%s: truncate to %lld: %s", j->path,
			    (long long)dmg[0].off, strerror(errno));
			return (-1);
		}
		j->size = dmg[0].off;
		return (0);
	}
	j->damage = "the log was damaged";
	return (journal_rewrite(j, dmg, ndmg, size, cause));
}

/* Writing. */

/*
 * The record, built whole (header and payload) at the end of this turn's
 * output; the index entry with it.
 */
int
journal_append(struct journal *j, const struct nt_msg *m,
    struct journal_rec *rec)
{
	size_t		 start = j->out.size, len;
	uint32_t	 crc;

	/* Packed in place, at the end of the turn's output. */
	if (record_pack(m, &j->out, &len, &crc) == -1) {
		j->out.size = start;
		return (-1);
	}
	memset(rec, 0, sizeof(*rec));
	rec->off = j->size;
	rec->len = len;
	memcpy(rec->origin, m->origin, sizeof(rec->origin));
	rec->seq = m->seq;
	rec->lamport = m->lamport;
	rec->cidhash = msg_cid_hash(m->origin, m->client_id);
	logindex_add(j->index, rec, crc);
	j->size += j->out.size - start;
	j->last = *rec;
	j->last_at = start + JOURNAL_HDR_LEN;
	j->last_ok = 1;
	return (0);
}

int
journal_last(const struct journal *j, const char *origin, uint64_t seq,
    const char **payload, size_t *len)
{
	if (!j->last_ok || j->last.seq != seq ||
	    strcmp(j->last.origin, origin) != 0)
		return (-1);
	*payload = j->out.data + j->last_at;
	*len = j->last.len;
	return (0);
}

/*
 * This turn's records in one write(2).  On failure the log is cut back to
 * where it was, so that no half record waits for the next replay, and the
 * turn is dropped: the caller cannot go on as if it were stored.
 */
int
journal_write(struct journal *j)
{
	int	 saved;

	if (j->out.size == 0)
		return (0);
	if (write_all(j->fd, j->out.data, j->out.size) == -1) {
		saved = errno;
		(void)ftruncate(j->fd, j->written);
		j->size = j->written;
		j->out.size = 0;
		j->last_ok = 0;
		errno = saved;
		return (-1);
	}
	j->written += j->out.size;
	j->out.size = 0;
	j->last_ok = 0;
	logindex_flush(j->index, 0);
	return (0);
}

/* The payload of a record, from the file or from this turn's output. */
int
journal_read(struct journal *j, off_t off, uint32_t len, const char **payload)
{
	const unsigned char	*hdr;
	size_t			 need = JOURNAL_HDR_LEN + len;
	ssize_t			 n;

	if (off >= j->written) {
		if (off + (off_t)need > j->size) {
			errno = EINVAL;
			return (-1);
		}
		hdr = (const unsigned char *)j->out.data + (off - j->written);
	} else {
		if (need > j->rcap) {
			j->rbuf = xreallocarray(j->rbuf, 1, need);
			j->rcap = need;
		}
		if ((n = pread_all(j->fd, j->rbuf, need, off)) == -1)
			return (-1);
		hdr = (const unsigned char *)j->rbuf;
		if ((size_t)n < need) {
			errno = EIO;
			return (-1);
		}
	}
	if (get_be32(hdr) != len || crc32(0L, hdr + JOURNAL_HDR_LEN, len) !=
	    get_be32(hdr + 4)) {
		errno = EIO;
		return (-1);
	}
	*payload = (const char *)hdr + JOURNAL_HDR_LEN;
	return (0);
}

/*
 * The record (header, then m) appended to sb, whose earlier contents stay:
 * a turn's records go out in one write(2).  *len and *crc are the
 * payload's.
 */
static int
record_pack(const struct nt_msg *m, msgpack_sbuffer *sb, size_t *len,
    uint32_t *crc)
{
	msgpack_packer	 pk;
	unsigned char	 hdr[JOURNAL_HDR_LEN], *h;
	size_t		 start = sb->size;

	memset(hdr, 0, sizeof(hdr));
	if (msgpack_sbuffer_write(sb, (const char *)hdr, sizeof(hdr)) != 0)
		fatalx("record_pack: out of memory");
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msg_pack(&pk, m);
	*len = sb->size - start - sizeof(hdr);
	if (*len > JOURNAL_MAX_RECORD) {
		/* Replay would take it for corruption. */
		errno = EMSGSIZE;
		return (-1);
	}
	h = (unsigned char *)sb->data + start;
	*crc = crc32(0L, h + sizeof(hdr), *len);
	put_be32(h, *len);
	put_be32(h + 4, *crc);
	return (0);
}

/* Syncing. */

/* Write what was appended, then make the log durable.  0 or -1. */
int
journal_sync(struct journal *j)
{
	if (journal_write(j) == -1)
		return (-1);
	if (j->written == j->synced)
		return (0);
	/* Stay dirty on failure so that the caller can try again. */
	if (fdatasync(j->fd) == -1)
		return (-1);
	j->synced = j->written;
	return (0);
}

int
journal_dirty(const struct journal *j)
{
	return (j->size > j->synced);
}

int
journal_fd(const struct journal *j)
{
	return (j->fd);
}

off_t
journal_size(const struct journal *j)
{
	return (j->size);
}

const char *
journal_path(const struct journal *j)
{
	return (j->path);
}

/*
 * State files beside the log, each durable (file and directory entry) once
 * the call that writes or removes it returns:
 *
 * running	exists while a nodetalkd uses this data_dir and holds its fsync
 *		policy; journal_stop() removes it.  Found at open, it says that
 *		the last run died, and under "none" that run may have
 *		acknowledged messages the disk did not keep.
 * recovering	exists while the node must not number chats of its own
 *		(journal_set_recovering()), so that a crash in the middle of a
 *		recovery does not end it.
 */
static char *
state_path(const struct journal *j, const char *name)
{
	char	*path;

	xasprintf(&path, "%s/%s", j->dir, name);
	return (path);
}

/* 1 when the file exists (its first len - 1 bytes in buf), 0 when not. */
static int
state_exists(const struct journal *j, const char *name, char *buf,
    size_t len)
{
	char	*path = state_path(j, name);
	ssize_t	 n = 0;
	int	 fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd == -1)
		return (errno == ENOENT ? 0 : -1);
	if (buf != NULL && len > 0) {
		if ((n = read(fd, buf, len - 1)) == -1)
			n = 0;
		buf[n] = '\0';
	}
	close(fd);
	return (1);
}

static int
state_write(const struct journal *j, const char *name, const char *content,
    char **cause)
{
	char	*path = state_path(j, name);
	int	 fd, rv = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd != -1 && write_all(fd, content, strlen(content)) == 0 &&
	    fsync(fd) == 0)
		rv = 0;
	if (rv == -1)
		xasprintf(cause, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	free(path);
	if (rv == 0)
		rv = sync_dir(j->dir, cause);
	return (rv);
}

static int
state_remove(const struct journal *j, const char *name, char **cause)
{
	char	*path = state_path(j, name);
	int	 rv = 0;

	if (unlink(path) == -1 && errno != ENOENT) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		rv = -1;
	}
	free(path);
	if (rv == 0)
		rv = sync_dir(j->dir, cause);
	return (rv);
}

/* What the last run left behind, then our own "running" file. */
static int
journal_mark_running(struct journal *j, char **cause)
{
	char	 buf[32], want[32];
	int	 rv;

	if ((rv = state_exists(j, STATE_RUNNING, buf, sizeof(buf))) == -1 ||
	    (j->recovering = state_exists(j, STATE_RECOVERING, NULL, 0)) ==
	    -1) {
		xasprintf(cause, "%s: %s", j->dir, strerror(errno));
		return (-1);
	}
	snprintf(want, sizeof(want), "%s\n", fsync_policy_name(FSYNC_NONE));
	j->unclean_none = rv == 1 && strcmp(buf, want) == 0;
	snprintf(buf, sizeof(buf), "%s\n", fsync_policy_name(j->fsync));
	return (state_write(j, STATE_RUNNING, buf, cause));
}

int
journal_unclean_none(const struct journal *j)
{
	return (j->unclean_none);
}

int
journal_recovering(const struct journal *j)
{
	return (j->recovering);
}

int
journal_set_recovering(struct journal *j, int on, char **cause)
{
	int	 rv;

	if (on == j->recovering)
		return (0);
	if (on)
		rv = state_write(j, STATE_RECOVERING, "", cause);
	else
		rv = state_remove(j, STATE_RECOVERING, cause);
	if (rv == 0)
		j->recovering = on;
	return (rv);
}

/* A clean stop: everything written and synced, and "running" gone. */
int
journal_stop(struct journal *j, char **cause)
{
	if (journal_sync(j) == -1) {
		xasprintf(cause, "%s: %s", j->path, strerror(errno));
		return (-1);
	}
	logindex_flush(j->index, 1);
	return (state_remove(j, STATE_RUNNING, cause));
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

