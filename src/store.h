/*
 * store.h: MESSAGES, owned by the master.  Kept behind this narrow interface
 * (append, lookup by identity, cursors in cluster order, what-do-I-have) so
 * that another engine can replace it as a new module.
 *
 * In memory the store keeps an index (16 bytes a message: its clock and
 * where its record is); texts are read back from the append-only log in
 * data_dir (journal.h) when a message is wanted.
 *
 * Lookups and cursors return messages read into a buffer of the store's:
 * valid until the next call into the store.
 */
#ifndef STORE_H
#define STORE_H

#include <sys/types.h>
#include <stdint.h>

#include "nodetalk.h"
#include "config.h"

struct store;

/*
 * Open (creating data_dir/messages.log if needed) and read the log's
 * index, checking every record.  Damaged bytes are moved aside into a file
 * of their own, named in a warning, and every valid record after them is
 * kept (journal.c).  Returns NULL and sets *cause (caller frees) when the
 * directory or file cannot be used.
 */
struct store	*store_open(const char *data_dir, enum fsync_policy,
		    char **cause);
void		 store_close(struct store *);

/*
 * Append a stamped message: returns 1 when taken (copied; the caller keeps
 * m), 0 when (origin, seq) is already stored, -2 when it would leave a gap
 * (seq > have + 1; nothing stored), -1 (errno) when it cannot be (too
 * large, no identity).  The record goes to the file with the turn's
 * others at store_write() or store_sync(), and is durable after
 * store_sync().  Parked messages that follow it are taken in too: the
 * origin's have may grow by more than one.
 */
int		 store_append(struct store *, const struct nt_msg *);
/* The turn's records in one write(2): 0, or -1 (errno; they are lost). */
int		 store_write(struct store *);
/* The log's descriptor, for a sync thread's fdatasync(2) (syncer.c). */
int		 store_log_fd(const struct store *);
/* Write what was appended and fdatasync(2) the log: 0 or -1 (errno). */
int		 store_sync(struct store *);
/* Appended since the last sync. */
int		 store_dirty(const struct store *);

/*
 * What a reader may see: store_release(origin, seq) lets readers (cursors)
 * see that origin's messages up to seq, once they are durable.  What the
 * log held at open is released.
 */
void		 store_release(struct store *, const char *origin, uint64_t);

uint64_t	 store_count(const struct store *);
const struct nt_have *store_have(const struct store *);
uint64_t	 store_lamport(const struct store *);
const struct nt_msg *store_lookup(struct store *, const char *origin,
		    uint64_t seq);
const struct nt_msg *store_lookup_client_id(struct store *,
		    const char *origin, const char *client_id);
/*
 * The msg_pack() form of the message store_append() just took, if it is
 * origin's seq: 0 (valid until the next append or write), or -1.
 */
int		 store_last_packed(const struct store *, const char *origin,
		    uint64_t seq, const char **packed, size_t *len);
/* From now on only origin's client ids can be looked up (and cost room). */
void		 store_cid_origin(struct store *, const char *origin);
/*
 * How many messages of origin the log holds beyond a gap (a damaged
 * record before them): kept aside, and taken in once a peer fills the
 * gap (store_append() of the missing one).
 */
size_t		 store_parked(const struct store *, const char *origin);

/*
 * A cursor walks the released messages in cluster order, from a have
 * vector on (what the reader holds already: skipped).  It is a position
 * per origin, not an index, so messages stored meanwhile never shift it:
 * one that sorts behind it (a late message with a small clock) is simply
 * the next one it returns.  Each step costs the number of origins, never
 * the number of messages stored.  The caller owns the cursor.
 */
struct store_cursor {
	uint64_t	*pos;		/* per origin: messages behind */
	uint64_t	*stop;		/* a page: per origin, where it ends */
	size_t		 npos;
	struct nt_have	 from;		/* where origins not seen yet start */
	int		 flags;
};
#define CURSOR_NO_LOCAL	0x1		/* skip local-only origins ("A/seed") */

void		 store_cursor_init(struct store_cursor *,
		    const struct nt_have *from, int flags);
void		 store_cursor_clear(struct store_cursor *);
/* The next message, or NULL at the end. */
const struct nt_msg *store_cursor_next(struct store *, struct store_cursor *);
/* The same as the payload of its log record (a msg_pack() map): 1 or 0. */
int		 store_cursor_next_raw(struct store *, struct store_cursor *,
		    const char **payload, size_t *len);
/* Start n messages before the end (0: at the start); 1 when older exist. */
int		 store_cursor_newest(struct store *, struct store_cursor *,
		    uint64_t n);
/*
 * A page: the limit messages just before (origin, seq) in the cluster
 * order, oldest first; 1 when older ones exist.  A message this node does
 * not hold is placed by lamport; without it (0), or without origin (NULL),
 * the page ends with the newest message.
 */
int		 store_cursor_before(struct store *, struct store_cursor *,
		    const char *origin, uint64_t seq, uint64_t lamport,
		    uint64_t limit);
/* The reader got what `have` names elsewhere: skip it. */
void		 store_cursor_skip(const struct store *, struct store_cursor *,
		    const struct nt_have *have);
/* Where the cursor is, as a have vector (out is replaced). */
void		 store_cursor_have(const struct store *, struct store_cursor *,
		    struct nt_have *out);
/* How many released messages lie ahead. */
uint64_t	 store_cursor_left(const struct store *, struct store_cursor *);

const char	*store_path(const struct store *);
int		 store_was_cut(const struct store *);
off_t		 store_log_size(const struct store *);

/*
 * Why this node may lack messages of its own origin that other nodes hold,
 * or NULL: the log was damaged, is empty, a recovery was under way when
 * the node stopped, or the last run died while fsync = "none" acknowledged
 * messages before they reached the disk.  Such a node must hear what its
 * peers hold before it numbers a chat: a number given twice names two
 * messages, and no catch-up can tell them apart.
 */
const char	*store_doubt(const struct store *);
/*
 * Record (durably, in data_dir/recovering) that the node must not number
 * chats yet, or that it may again; the mark survives a crash.  0 or -1.
 */
int		 store_set_recovering(struct store *, int, char **cause);
/*
 * A clean stop: write and sync the log and remove data_dir/running, which
 * store_open writes to tell the next run whether this one ended cleanly.
 */
int		 store_stop(struct store *, char **cause);

#endif /* STORE_H */
