/*
 * journal.c: the message log on disk (data_dir/messages.log) and the state
 * files beside it.  store.c keeps the messages in memory and calls this
 * file for everything that touches the disk.
 *
 * Records are written in arrival order: those of one turn of the master's
 * event loop gather in a batch, written in one write(2).  At open the
 * log is read back, and damage is never cut away: the bytes of a bad
 * record (a torn write at the end, a bad block in the middle) are copied
 * into a file of their own that an operator can inspect, named in the log
 * line, and only then taken out of the log; reading resumes at the next
 * offset where a whole record begins (its length is plausible, its CRC
 * matches and its payload is a message), so that every valid record after
 * the damage is kept.
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

/* State files beside the log; see journal_doubt() in store.c. */
#define STATE_RUNNING		"running"
#define STATE_RECOVERING	"recovering"
#define RESYNC_WINDOW		(64 * 1024)
#define COPY_CHUNK		(64 * 1024)
#define BATCH_KEEP		(1024 * 1024)

struct journal {
	char			*dir;
	char			*path;
	int			 fd;
	enum fsync_policy	 fsync;
	int			 dirty;
	int			 broken;	/* junk we could not cut off */
	off_t			 size;
	const char		*damage;	/* what replay found */
	int			 unclean_none;	/* last run died under "none" */
	int			 recovering;	/* the state file exists */
	msgpack_sbuffer		 batch;		/* records not written yet */
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
static int	 record_pack(const struct nt_msg *, msgpack_sbuffer *);
static int	 write_all(int, const char *, size_t);
static ssize_t	 pread_all(int, void *, size_t, off_t);
static void	 put_be32(unsigned char *, uint32_t);
static uint32_t	 get_be32(const unsigned char *);

struct journal *
journal_open(const char *data_dir, enum fsync_policy fsync, char **cause)
{
	struct journal	*j;
	size_t		 len = strlen(data_dir);

	*cause = NULL;
	if (mkdir_p(data_dir, cause) == -1)
		return (NULL);
	j = xcalloc(1, sizeof(*j));
	j->fd = -1;
	j->fsync = fsync;
	msgpack_sbuffer_init(&j->batch);
	j->dir = xstrndup(data_dir, len > 1 && data_dir[len - 1] == '/' ?
	    len - 1 : len);
	xasprintf(&j->path, "%s/%s", j->dir, JOURNAL_NAME);
	if (journal_lock(j, cause) == -1 || sync_dir(j->dir, cause) == -1 ||
	    journal_mark_running(j, cause) == -1) {
		journal_close(j);
		return (NULL);
	}
	return (j);
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	/* What was appended is not lost to a close without a sync. */
	if (j->fd != -1 && journal_write(j) == -1)
		log_warn("%s: write", j->path);
	msgpack_sbuffer_destroy(&j->batch);
	if (j->fd != -1)
		close(j->fd);	/* releases the flock */
	free(j->path);
	free(j->dir);
	free(j);
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

/* Reading. */

int
journal_replay(struct journal *j, void (*cb)(struct nt_msg *, off_t, void *),
    void *arg, char **cause)
{
	struct stat	 st;
	struct recbuf	 rb;
	struct damage	*dmg = NULL;
	struct nt_msg	*m;
	size_t		 ndmg = 0;
	off_t		 off = 0, next;
	const char	*why = NULL;
	int		 rv = -1, r;

	if (fstat(j->fd, &st) == -1) {
		xasprintf(cause, "%s: %s", j->path, strerror(errno));
		return (-1);
	}
	memset(&rb, 0, sizeof(rb));
	while (off < st.st_size) {
		if ((r = record_at(j->fd, off, st.st_size, &rb, &m, &why)) ==
		    1) {
			cb(m, off, arg);
			off += JOURNAL_HDR_LEN + rb.len;
			continue;
		}
		if (r == 0 &&
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
	j->size = st.st_size;
	rv = ndmg > 0 ? journal_set_aside(j, dmg, ndmg, st.st_size, cause) : 0;
out:
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
 * Add m's record to the batch that journal_write() writes.  -1 with errno
 * when it cannot be packed; nothing is added then.
 */
int
journal_append(struct journal *j, const struct nt_msg *m)
{
	size_t	 before = j->batch.size;

	if (j->broken) {
		errno = EIO;
		return (-1);
	}
	if (record_pack(m, &j->batch) == -1) {
		j->batch.size = before;
		return (-1);
	}
	return (0);
}

/*
 * The batch in one write(2).  On failure the log is cut back to where it
 * was, so that no half record waits for the next replay, and the batch is
 * kept for another try.
 */
int
journal_write(struct journal *j)
{
	int	 saved;

	if (j->batch.size == 0)
		return (0);
	if (j->broken) {
		errno = EIO;
		return (-1);
	}
	if (write_all(j->fd, j->batch.data, j->batch.size) == -1) {
		saved = errno;
		if (ftruncate(j->fd, j->size) == -1)
			j->broken = 1;
		errno = saved;
		return (-1);
	}
	j->size += j->batch.size;
	j->dirty = 1;
	j->batch.size = 0;
	/* One burst must not keep its buffer for good. */
	if (j->batch.alloc > BATCH_KEEP) {
		msgpack_sbuffer_destroy(&j->batch);
		msgpack_sbuffer_init(&j->batch);
	}
	return (0);
}

/* The record appended to sb, whole, behind what sb holds. */
static int
record_pack(const struct nt_msg *m, msgpack_sbuffer *sb)
{
	msgpack_packer	 pk;
	unsigned char	 hdr[JOURNAL_HDR_LEN];
	size_t		 start = sb->size, len;

	memset(hdr, 0, sizeof(hdr));
	if (msgpack_sbuffer_write(sb, (const char *)hdr, sizeof(hdr)) != 0) {
		errno = ENOMEM;
		return (-1);
	}
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msg_pack(&pk, m);
	len = sb->size - start - sizeof(hdr);
	if (len > JOURNAL_MAX_RECORD) {
		/* Replay would take it for corruption. */
		errno = EMSGSIZE;
		return (-1);
	}
	put_be32((unsigned char *)sb->data + start, len);
	put_be32((unsigned char *)sb->data + start + 4,
	    crc32(0L, (const Bytef *)sb->data + start + sizeof(hdr), len));
	return (0);
}

/* Write what waits, and sync. */
int
journal_sync(struct journal *j)
{
	if (journal_write(j) == -1)
		return (-1);
	if (!j->dirty)
		return (0);
	/* Stay dirty on failure so that the caller can try again. */
	if (fdatasync(j->fd) == -1)
		return (-1);
	j->dirty = 0;
	return (0);
}

int
journal_dirty(const struct journal *j)
{
	return (j->dirty || j->batch.size > 0);
}

/* For the master's sync thread, which syncs it on its own (syncer.c). */
int
journal_fd(const struct journal *j)
{
	return (j->fd);
}

/* Where the next record goes: the batch counts as written. */
off_t
journal_size(const struct journal *j)
{
	return (j->size + (off_t)j->batch.size);
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

/* A clean stop: everything synced, and the "running" file gone. */
int
journal_stop(struct journal *j, char **cause)
{
	if (journal_sync(j) == -1) {
		xasprintf(cause, "%s: fsync: %s", j->path, strerror(errno));
		return (-1);
	}
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
