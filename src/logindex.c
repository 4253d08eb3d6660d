/*
 * logindex.c: data_dir/messages.idx, one fixed-size entry per record of
 * the log, in the log's order, so that a restart reads 48 bytes a message
 * instead of decoding every record.  It is a cache, never synced: an
 * entry is trusted only where the log has a record at its offset with its
 * length and CRC, and whatever is missing, torn or wrong is rebuilt from
 * the log (journal.c).
 *
 * Every entry is 48 bytes, little endian, with a CRC-32 of its first 44:
 *
 *   record:  u64 offset, u32 length, u32 record CRC, u64 seq, u64 lamport,
 *            u64 client id hash, u16 origin number, u16 kind 1, u32 crc
 *   origin:  40 bytes of name (NUL padded), u16 its number, u16 kind 2,
 *            u32 crc; before the first record of that origin
 *   header:  "NTIDX001", 32 zero bytes, u16 0, u16 kind 3, u32 crc; first
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "nodetalk.h"
#include "journal.h"
#include "log.h"
#include "logindex.h"

#define ENT_LEN		48
#define ENT_CRC_AT	44
#define KIND_RECORD	1
#define KIND_ORIGIN	2
#define KIND_HEADER	3
#define MAGIC		"NTIDX001"
#define READ_ENTRIES	8192		/* read this many at a time */
#define WRITE_FLUSH	(64 * 1024)	/* write once this much waits */

struct logindex {
	char		*path;
	int		 fd;
	int		 broken;	/* a write failed: stop writing */
	int		 appending;	/* done reading: entries go at the end */
	off_t		 rpos;		/* after the last entry read */
	off_t		 lastpos;	/* where the last record entry began */
	unsigned char	*rbuf;		/* replay's reads */
	off_t		 rbase;
	size_t		 rlen;
	unsigned char	*wbuf;		/* entries waiting to be written */
	size_t		 wlen;
	size_t		 wcap;
	char		(*names)[NT_ORIGIN_MAX + 1];	/* by origin number */
	off_t		*namepos;	/* where each origin's entry is */
	size_t		 nnames;
};

static void	 put_le16(unsigned char *, uint16_t);
static void	 put_le32(unsigned char *, uint32_t);
static void	 put_le64(unsigned char *, uint64_t);
static uint16_t	 get_le16(const unsigned char *);
static uint32_t	 get_le32(const unsigned char *);
static uint64_t	 get_le64(const unsigned char *);

static void
ent_seal(unsigned char *e, uint16_t kind)
{
	put_le16(e + 42, kind);
	put_le32(e + ENT_CRC_AT, crc32(0L, e, ENT_CRC_AT));
}

static int
ent_valid(const unsigned char *e)
{
	return (crc32(0L, e, ENT_CRC_AT) == get_le32(e + ENT_CRC_AT));
}

static void
idx_truncate(struct logindex *x, off_t at)
{
	if (x->broken)
		return;
	if (ftruncate(x->fd, at) == -1) {
		log_warn("%s: truncate", x->path);
		x->broken = 1;
	}
}

/* Queue an entry for writing. */
static void
idx_queue(struct logindex *x, const unsigned char *e)
{
	if (x->broken)
		return;
	if (x->wlen + ENT_LEN > x->wcap) {
		x->wcap = x->wcap == 0 ? WRITE_FLUSH * 2 : x->wcap * 2;
		x->wbuf = xreallocarray(x->wbuf, 1, x->wcap);
	}
	memcpy(x->wbuf + x->wlen, e, ENT_LEN);
	x->wlen += ENT_LEN;
}

static void
idx_header(struct logindex *x)
{
	unsigned char	 e[ENT_LEN];

	memset(e, 0, sizeof(e));
	memcpy(e, MAGIC, 8);
	ent_seal(e, KIND_HEADER);
	idx_queue(x, e);
}

struct logindex *
logindex_open(const char *path)
{
	struct logindex	*x;
	unsigned char	 e[ENT_LEN];
	ssize_t		 n;

	x = xcalloc(1, sizeof(*x));
	x->path = xstrdup(path);
	x->rbuf = xmalloc(READ_ENTRIES * ENT_LEN);
	x->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (x->fd == -1) {
		log_warn("%s", path);
		x->broken = 1;
		return (x);
	}
	n = pread(x->fd, e, sizeof(e), 0);
	if (n == ENT_LEN && ent_valid(e) && get_le16(e + 42) == KIND_HEADER &&
	    memcmp(e, MAGIC, 8) == 0) {
		x->rpos = ENT_LEN;
		return (x);
	}
	/* Not ours (or empty): start it again. */
	idx_truncate(x, 0);
	idx_header(x);
	x->appending = 1;
	x->rpos = 0;
	return (x);
}

void
logindex_close(struct logindex *x)
{
	if (x == NULL)
		return;
	logindex_flush(x, 1);
	if (x->fd != -1)
		close(x->fd);
	free(x->rbuf);
	free(x->wbuf);
	free(x->names);
	free(x->namepos);
	free(x->path);
	free(x);
}

/* The entry at pos, read through a buffer; NULL at the end. */
static const unsigned char *
idx_read(struct logindex *x, off_t pos)
{
	ssize_t	 n;

	if (pos < x->rbase || pos + ENT_LEN > x->rbase + (off_t)x->rlen) {
		n = pread(x->fd, x->rbuf, READ_ENTRIES * ENT_LEN, pos);
		x->rbase = pos;
		x->rlen = n > 0 ? (size_t)n : 0;
		if (x->rlen < ENT_LEN)
			return (NULL);
	}
	return (x->rbuf + (pos - x->rbase));
}

static void
name_add(struct logindex *x, const char *name, off_t pos)
{
	x->names = xreallocarray(x->names, x->nnames + 1, sizeof(*x->names));
	x->namepos = xreallocarray(x->namepos, x->nnames + 1,
	    sizeof(*x->namepos));
	snprintf(x->names[x->nnames], sizeof(x->names[0]), "%s", name);
	x->namepos[x->nnames++] = pos;
}

int
logindex_next(struct logindex *x, struct journal_rec *rec, uint32_t *crc)
{
	const unsigned char	*e;
	char			 name[NT_ORIGIN_MAX + 1];
	uint16_t		 kind, o;

	while (!x->appending && !x->broken &&
	    (e = idx_read(x, x->rpos)) != NULL && ent_valid(e)) {
		kind = get_le16(e + 42);
		o = get_le16(e + 40);
		if (kind == KIND_ORIGIN && o == x->nnames) {
			memcpy(name, e, NT_ORIGIN_MAX);
			name[NT_ORIGIN_MAX] = '\0';
			name_add(x, name, x->rpos);
			x->rpos += ENT_LEN;
			continue;
		}
		if (kind != KIND_RECORD || o >= x->nnames)
			break;
		rec->off = (off_t)get_le64(e);
		rec->len = get_le32(e + 8);
		*crc = get_le32(e + 12);
		rec->seq = get_le64(e + 16);
		rec->lamport = get_le64(e + 24);
		rec->cidhash = get_le64(e + 32);
		memcpy(rec->origin, x->names[o], sizeof(rec->origin));
		x->lastpos = x->rpos;
		x->rpos += ENT_LEN;
		return (1);
	}
	return (0);
}

/* From here on entries are written, not read: drop what follows. */
static void
idx_append_from(struct logindex *x, off_t pos)
{
	if (x->appending)
		return;
	x->appending = 1;
	idx_truncate(x, pos);
	/* Origins whose entries went are written again when needed. */
	while (x->nnames > 0 && x->namepos[x->nnames - 1] >= pos)
		x->nnames--;
}

void
logindex_rewind(struct logindex *x)
{
	idx_append_from(x, x->lastpos);
}

void
logindex_end_replay(struct logindex *x)
{
	idx_append_from(x, x->rpos);
}

void
logindex_reset(struct logindex *x)
{
	x->wlen = 0;
	x->nnames = 0;
	x->appending = 1;
	x->rpos = 0;
	idx_truncate(x, 0);
	idx_header(x);
}

static uint16_t
origin_number(struct logindex *x, const char *origin)
{
	unsigned char	 e[ENT_LEN];
	size_t		 i;

	for (i = 0; i < x->nnames; i++)
		if (strcmp(x->names[i], origin) == 0)
			return ((uint16_t)i);
	memset(e, 0, sizeof(e));
	memcpy(e, origin, strnlen(origin, NT_ORIGIN_MAX));
	put_le16(e + 40, (uint16_t)x->nnames);
	ent_seal(e, KIND_ORIGIN);
	idx_queue(x, e);
	name_add(x, origin, -1);
	return ((uint16_t)(x->nnames - 1));
}

void
logindex_add(struct logindex *x, const struct journal_rec *rec, uint32_t crc)
{
	unsigned char	 e[ENT_LEN];

	if (x->broken)
		return;
	if (!x->appending)
		idx_append_from(x, x->rpos);
	/* Past 65535 origins the index gives up; the log is read instead. */
	if (x->nnames >= UINT16_MAX) {
		x->broken = 1;
		return;
	}
	memset(e, 0, sizeof(e));
	put_le64(e, (uint64_t)rec->off);
	put_le32(e + 8, rec->len);
	put_le32(e + 12, crc);
	put_le64(e + 16, rec->seq);
	put_le64(e + 24, rec->lamport);
	put_le64(e + 32, rec->cidhash);
	put_le16(e + 40, origin_number(x, rec->origin));
	ent_seal(e, KIND_RECORD);
	idx_queue(x, e);
	if (x->wlen >= WRITE_FLUSH)
		logindex_flush(x, 0);
}

/* Write what waits, at the end of the file; one write(2). */
void
logindex_flush(struct logindex *x, int force)
{
	const unsigned char	*p = x->wbuf;
	size_t			 left = x->wlen;
	ssize_t			 n;

	if (x->broken || left == 0 || (!force && left < WRITE_FLUSH))
		return;
	if (lseek(x->fd, 0, SEEK_END) == -1)
		left = 0;
	while (left > 0) {
		if ((n = write(x->fd, p, left)) == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("%s: write (the index is rebuilt at the next "
			    "start)", x->path);
			x->broken = 1;
			break;
		}
		p += n;
		left -= n;
	}
	x->wlen = 0;
}

static void
put_le16(unsigned char *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, v);
	put_le16(p + 2, v >> 16);
}

static void
put_le64(unsigned char *p, uint64_t v)
{
	put_le32(p, v);
	put_le32(p + 4, v >> 32);
}

static uint16_t
get_le16(const unsigned char *p)
{
	return ((uint16_t)(p[0] | p[1] << 8));
}

static uint32_t
get_le32(const unsigned char *p)
{
	return (get_le16(p) | (uint32_t)get_le16(p + 2) << 16);
}

static uint64_t
get_le64(const unsigned char *p)
{
	return (get_le32(p) | (uint64_t)get_le32(p + 4) << 32);
}
