/*
 * journal.h: the message log on disk, for store.c, which keeps the
 * messages in memory.  data_dir/messages.log is append-only, one record
 * per message: [u32 length][u32 crc32 of payload][payload: msg_pack()
 * map], big endian.  Beside it live the state files (journal.c).
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <sys/types.h>

#include "nodetalk.h"
#include "config.h"

#define JOURNAL_NAME		"messages.log"
#define JOURNAL_HDR_LEN		8
/* Far above any legal message; a larger length can only be corruption. */
#define JOURNAL_MAX_RECORD	(16 * 1024 * 1024)

struct journal;

/*
 * Open (creating data_dir and the log if needed), lock, and note what the
 * last run left (state files).  NULL and *cause (caller frees) on error.
 */
struct journal	*journal_open(const char *data_dir, enum fsync_policy,
		    char **cause);
void		 journal_close(struct journal *);

/*
 * Read every valid record in file order and hand its message to cb (which
 * takes it; off is the record's offset).  Damaged bytes are moved aside
 * into a file of their own and out of the log, whether at the end (a torn
 * write) or in the middle (a bad block): every valid record after them is
 * kept and read.  0, or -1 with *cause when the log cannot be read or the
 * damaged bytes cannot be saved.
 */
int		 journal_replay(struct journal *,
		    void (*cb)(struct nt_msg *, off_t, void *), void *arg,
		    char **cause);
/* What replay found: NULL, or a sentence (the end was lost, or damage). */
const char	*journal_damage(const struct journal *);

/*
 * Add m's record to the batch (-1 with errno when it cannot be packed);
 * journal_write() writes the batch in one write(2): -1 with errno, and
 * nothing half-written, the batch kept for another try.
 */
int		 journal_append(struct journal *, const struct nt_msg *);
int		 journal_write(struct journal *);
/* Write what waits and fdatasync(2); 0 or -1. */
int		 journal_sync(struct journal *);
int		 journal_dirty(const struct journal *);
int		 journal_fd(const struct journal *);
off_t		 journal_size(const struct journal *);
const char	*journal_path(const struct journal *);

/* State files: see journal.c. */
int		 journal_unclean_none(const struct journal *);
int		 journal_recovering(const struct journal *);
int		 journal_set_recovering(struct journal *, int, char **cause);
int		 journal_stop(struct journal *, char **cause);

#endif /* JOURNAL_H */
