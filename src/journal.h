/*
 * journal.h: the message log on disk, for store.c, which keeps an index of
 * the messages in memory and reads their texts back from here.
 *
 * data_dir/messages.log is append-only, one record per message:
 * [u32 length][u32 crc32 of payload][payload: msg_pack() map], big endian.
 * data_dir/messages.idx beside it lists the records (where, and the fields
 * the store indexes), so that a restart need not decode every record; it
 * is rebuilt from the log when missing or behind.  The state files live
 * there too (journal.c).
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <sys/types.h>
#include <stdint.h>

#include "nodetalk.h"
#include "config.h"

#define JOURNAL_NAME		"messages.log"
#define JOURNAL_INDEX_NAME	"messages.idx"
#define JOURNAL_HDR_LEN		8
/* Far above any legal message; a larger length can only be corruption. */
#define JOURNAL_MAX_RECORD	(16 * 1024 * 1024)

struct journal;

/* A record as the store indexes it. */
struct journal_rec {
	off_t		 off;		/* of its header in the log */
	uint32_t	 len;		/* of its payload */
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	uint64_t	 lamport;
	uint64_t	 cidhash;	/* msg_cid_hash(), 0 when no client id */
};

/*
 * Open (creating data_dir and the log if needed), lock, and note what the
 * last run left (state files).  NULL and *cause (caller frees) on error.
 */
struct journal	*journal_open(const char *data_dir, enum fsync_policy,
		    char **cause);
void		 journal_close(struct journal *);

/*
 * Hand every valid record, in file order, to cb.  Its fields come from
 * the index where it matches the log, else from the record itself; every
 * record's CRC is checked either way.  Damaged bytes are moved aside into
 * a file of their own and out of the log, whether at the end (a torn
 * write) or in the middle (a bad block), and every valid record after
 * them is kept.  Returns 0; 1 when damage was moved aside, which changed
 * the offsets: the caller forgets what it was handed and replays again;
 * -1 with *cause when the log cannot be read or the damage not saved.
 */
int		 journal_replay(struct journal *,
		    void (*cb)(const struct journal_rec *, void *), void *arg,
		    char **cause);
/* What replay found: NULL, or a sentence (the end was lost, or damage). */
const char	*journal_damage(const struct journal *);

/*
 * Append m's record to this turn's output (and its index entry); *rec gets
 * where it will be.  journal_write() writes the turn in one write(2).
 * -1 with errno (EMSGSIZE: too large), nothing appended.
 */
int		 journal_append(struct journal *, const struct nt_msg *,
		    struct journal_rec *rec);
/*
 * The payload (msg_pack() form) of the record just appended, if it is
 * origin's seq: 0, or -1.  Valid until the next append or write.
 */
int		 journal_last(const struct journal *, const char *origin,
		    uint64_t seq, const char **payload, size_t *len);
/* Write what was appended: 0, or -1 with errno (the turn is dropped). */
int		 journal_write(struct journal *);
/*
 * The payload of the record at off (len bytes), its CRC checked: 0 and
 * *payload (valid until the next call), or -1 (EIO: damaged).
 */
int		 journal_read(struct journal *, off_t off, uint32_t len,
		    const char **payload);

/* Write what was appended and fdatasync(2) it: 0, or -1 with errno. */
int		 journal_sync(struct journal *);
/* Appended and not yet synced. */
int		 journal_dirty(const struct journal *);
/* For the master's sync thread, which syncs it on its own (syncer.c). */
int		 journal_fd(const struct journal *);
off_t		 journal_size(const struct journal *);
const char	*journal_path(const struct journal *);

/* State files: see journal.c. */
int		 journal_unclean_none(const struct journal *);
int		 journal_recovering(const struct journal *);
int		 journal_set_recovering(struct journal *, int, char **cause);
int		 journal_stop(struct journal *, char **cause);

#endif /* JOURNAL_H */
