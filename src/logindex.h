/*
 * logindex.h: data_dir/messages.idx, the list of the log's records, for
 * journal.c.  A cache: it is never synced, and whatever of it is missing,
 * torn or does not match the log is rebuilt from the log.
 */
#ifndef LOGINDEX_H
#define LOGINDEX_H

#include <stdint.h>

#include "journal.h"

struct logindex;

/* Open (or create) the file; a header that is not ours empties it. */
struct logindex	*logindex_open(const char *path);
void		 logindex_close(struct logindex *);

/*
 * Replay reads the entries in order: 1 and the next record's fields (and
 * its CRC), or 0 when there are no more (the end, or a torn entry).
 */
int		 logindex_next(struct logindex *, struct journal_rec *,
		    uint32_t *crc);
/* The entry last read does not match the log: drop it and what follows. */
void		 logindex_rewind(struct logindex *);
/* Replay is over: drop entries beyond what was read (the log is shorter). */
void		 logindex_end_replay(struct logindex *);
/* Start again from nothing (the log was written anew). */
void		 logindex_reset(struct logindex *);

/* Add a record's entry (buffered); write what is buffered. */
void		 logindex_add(struct logindex *, const struct journal_rec *,
		    uint32_t crc);
void		 logindex_flush(struct logindex *, int force);

#endif /* LOGINDEX_H */
