/*
 * store.h: MESSAGES, owned by the master.  Kept behind this narrow interface
 * (append, lookup by identity, range in cluster order, what-do-I-have) so
 * that another engine can replace it as a new module.
 *
 * In memory every message sits in cluster order (lamport, origin).  On disk
 * it is an append-only log in data_dir: one record per message, each
 * [u32 length][u32 crc32][msgpack map], big endian, replayed at open.
 */
#ifndef STORE_H
#define STORE_H

#include "nodetalk.h"
#include "config.h"

struct store;

/*
 * Open (creating data_dir/messages.log if needed) and replay the log.  A torn
 * or corrupt tail is truncated with a warning naming the offset.  Returns
 * NULL and sets *cause (caller frees) when the directory or file cannot be
 * used.
 */
struct store	*store_open(const char *data_dir, enum fsync_policy,
		    char **cause);
void		 store_close(struct store *);

/*
 * Append a stamped message: returns 1 when stored (copied; the caller keeps
 * m), 0 when (origin, seq) is already stored, -2 when it would leave a gap
 * (seq > have + 1; nothing stored), -1 on a write error (errno set).
 * The record is written at once; it is durable after store_sync().
 */
int		 store_append(struct store *, const struct nt_msg *);
/* fsync the log if anything was written since the last sync; 0 or -1. */
int		 store_sync(struct store *);
int		 store_dirty(const struct store *);

size_t		 store_count(const struct store *);
const struct nt_msg *store_at(const struct store *, size_t);
const struct nt_have *store_have(const struct store *);
uint64_t	 store_lamport(const struct store *);
const struct nt_msg *store_lookup(const struct store *, const char *origin,
		    uint64_t seq);
const struct nt_msg *store_lookup_client_id(const struct store *,
		    const char *origin, const char *client_id);
/*
 * Index of the first message at or after start (in cluster order) that a
 * node holding `have` lacks; store_count() when there is none.  Messages of
 * local-only origins ("A/seed") are never offered.
 */
size_t		 store_next_missing(const struct store *, const struct nt_have *,
		    size_t start);
const char	*store_path(const struct store *);
int		 store_was_cut(const struct store *);
off_t		 store_log_size(const struct store *);

#endif /* STORE_H */
