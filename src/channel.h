/*
 * channel.h: the master <-> worker channel.  One socketpair(AF_UNIX,
 * SOCK_STREAM) per worker; every frame is one msgpack map whose key "t"
 * holds a chan_type.  Both ends send CH_HELLO with CHAN_VERSION first and
 * drop the link on a mismatch.  A frame larger than CHAN_MAX_FRAME is a
 * protocol error.
 *
 * Frame types are defined here and nowhere else.  Retired numbers stay as
 * comments; bump CHAN_VERSION when a frame changes meaning.
 */
#ifndef CHANNEL_H
#define CHANNEL_H

#include <sys/types.h>

#include <stdint.h>
#include <msgpack.h>
#include <event2/event.h>

#include "nodetalk.h"

#define CHAN_VERSION	3
#define CHAN_MAX_FRAME	(1024 * 1024)
#define CHAN_MAX_FIELDS	14	/* keys a frame type declares, "t" aside */

enum chan_type {
	/* 1xx: both directions, link control */
	CH_HELLO = 100,		/* v, pid: first frame each way */
	CH_QUIT = 101,		/* m->w: finish and exit 0 */
	CH_LOGLEVEL = 102,	/* m->w: level */
	CH_PEERS = 103,		/* m->ws: ids[], seeds[] allowed to replicate,
				   hosts[] (parallel to ids) */
	CH_REOPEN = 105,	/* m->w: target: reopen the log (SIGUSR1) */
	CH_BATCH = 106,		/* both ways: frames[]: frames queued in one
				   turn (chan_queue), each handled as if it
				   came alone; never a batch in a batch */
	CH_SETTINGS = 104,	/* m->w: after a reload: max_clients,
				   max_message_bytes, max_frame_bytes,
				   max_clients_per_address,
				   max_client_backlog_bytes,
				   max_peer_backlog_bytes, http_timeout_ms,
				   join_timeout_ms, ping_interval_ms,
				   peer_ping_interval_ms, ping_timeout_ms,
				   www_dir, secret; each worker takes what
				   concerns it */

	/* 2xx: ws worker <-> master */
	CH_CHAT = 200,		/* ws->m: conn, from, text, cid?, t_us (mono),
				   after (highest lamport the client saw) */
	CH_ACK = 201,		/* m->ws: conn, msg (the stored one); the
				   NATS engine's acks, one at a time */
	CH_JOIN = 202,		/* ws->m: conn, since{} */
	CH_HISTORY = 203,	/* m->ws: conn, msgs[]: a chunk of history */
	CH_JOINED = 204,	/* m->ws: conn, count, recovered, older: the
				   last chunk went out; the conn gets pushes */
	/* 205: push (one message), retired for CH_RELEASE */
	CH_PEER_HELLO = 206,	/* ws->m: conn, peer */
	CH_PEER_CHAT = 207,	/* ws->m: conn, peer, msg */
	CH_SEED_CHAT = 208,	/* ws->m: from, text: hello-less seed chat */
	CH_SYNC = 209,		/* m->ws: conn, have{}: send sync on that link */
	CH_STATUS = 210,	/* ws->m: req, what ("status"|"metrics"),
				   errors? {code: error frames sent};
				   m->ws: req, body */
	CH_CHAT_FAIL = 211,	/* m->ws: conn, code, message */
	CH_CLIENTS = 212,	/* ws->m: n (joined clients, for status) */
	CH_HISTORY_MORE = 213,	/* ws->m: conn, stop: the conn drained its
				   output: the next chunk (stop: it is gone) */
	CH_CLUSTER = 214,	/* m->ws: json, the "cluster" frame for
				   clients: every node, its address, whether
				   our link to it is up */
	CH_PAGE = 215,		/* ws->m: conn, limit, origin?, seq?,
				   lamport?: a page of history before that
				   message */
	CH_PAGE_END = 216,	/* m->ws: conn, count, older: its last chunk
				   went out */
	CH_RELEASE = 217,	/* m->ws: msgs[], acks[], push[]: messages
				   just made durable, in order; acks[i] is
				   the conn that gets an ack for msgs[i] (0:
				   none), push[i] whether joined clients get
				   it.  One frame for all a sync released */

	/* 3xx: peer worker <-> master */
	CH_REPLICATE = 300,	/* m->peer: peer ("" = every peer but those
				   in except[]), msgs[]: new messages of
				   ours, in order */
	CH_SYNC_REQ = 301,	/* peer->m: peer, link, have{} */
	CH_LINK = 302,		/* peer->m: peer, up, link (a number per
				   connection made) */
	CH_DIAL = 303,		/* m->peer: peer: it just dialled us, so dial
				   it now rather than after the backoff */
	CH_CATCHUP = 304,	/* m->peer: peer, link, msgs[]: a chunk of
				   what the peer lacks, for that link only */
	CH_CATCHUP_MORE = 305,	/* peer->m: peer, link: the link drained its
				   output: the next chunk */

	/* 4xx: nats worker <-> master (engine = "nats") */
	CH_PUBLISH = 400,	/* m->nats: id, from, text, ts, cid?: a
				   client's chat, for the stream */
	CH_PUBLISHED = 401,	/* nats->m: id, seq, dup: JetStream stored
				   it (dup: as an earlier message, seq) */
	CH_PUBLISH_FAIL = 402,	/* nats->m: id, code, message */
	CH_CONSUME = 403,	/* m->nats: gen, from: read the stream from
				   seq `from` on; frames of older gens are
				   stale */
	CH_STREAM_MSG = 404,	/* nats->m: gen, msg: the next message of
				   the stream */
	CH_STORED = 405,	/* m->nats: seq: durable here up to seq */
	CH_NATS_STATE = 406	/* nats->m: up, server, stream_ok,
				   stream_seq, replicas, leader,
				   reconnects, error: for /status */
};

struct chan;

/* Called for every frame after the version check; frame is a map. */
typedef void	(*chan_frame_cb)(struct chan *, int type,
		    const msgpack_object *frame, void *arg);
/* Called once when the link is lost (EOF, error, bad frame); why says so. */
typedef void	(*chan_lost_cb)(struct chan *, const char *why, void *arg);

/*
 * The length of the frame at the front of buf, found without allocating:
 * 0 when more bytes are needed, -1 when the bytes are not msgpack.
 */
ssize_t		 chan_frame_len(const void *, size_t);

/* Frame builder: frame_begin(), then exactly nfields frame_* calls. */
struct chan_frame {
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;
};

/*
 * A batch of messages for one frame (history and catch-up chunks,
 * releases, replication).  Releases and replication send a batch once it
 * passes CHAN_BATCH_BYTES and start another.  Small, because a frame
 * arrives in reads of 4 KiB (libevent's) and its end is looked for after
 * each: a 16 KiB frame amortises the frame's cost over a hundred short
 * messages, a larger one costs more to receive than it saves.
 */
#define CHAN_BATCH_BYTES	(16 * 1024)
struct chan_batch {
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;
	size_t		 n;
};

struct chan	*chan_new(struct event_base *, int fd, const char *name,
		    chan_frame_cb, chan_lost_cb, void *arg);
void		 chan_free(struct chan *);
/* Send and release f.  Never blocks; output is buffered.  0 or -1. */
int		 chan_send(struct chan *, struct chan_frame *f);
/*
 * Queue and release f: it goes out with the others queued this turn, in
 * one CH_BATCH frame, before anything chan_send() sends later.  0 or -1.
 */
int		 chan_queue(struct chan *, struct chan_frame *f);
/* Bytes waiting to be sent. */
size_t		 chan_pending(const struct chan *);
/*
 * Once the output that waits falls to `low` bytes or fewer, call cb (again
 * each time it does).  NULL stops it.
 */
void		 chan_set_drain(struct chan *, size_t low,
		    void (*cb)(struct chan *, void *));
/*
 * A peer that lets more than max bytes pile up has stopped reading: the
 * frame that would cross max is dropped and lost_cb runs (from the loop,
 * not from chan_send) with a reason that chan_stalled() recognises.
 */
void		 chan_set_backlog(struct chan *, size_t max);
int		 chan_stalled(const struct chan *);

void		 frame_begin(struct chan_frame *, enum chan_type, size_t nfields);
void		 frame_release(struct chan_frame *);
void		 frame_str(struct chan_frame *, const char *key, const char *);
void		 frame_u64(struct chan_frame *, const char *key, uint64_t);
void		 frame_i64(struct chan_frame *, const char *key, int64_t);
void		 frame_bool(struct chan_frame *, const char *key, int);
void		 frame_msg(struct chan_frame *, const char *key,
		    const struct nt_msg *);
void		 frame_have(struct chan_frame *, const char *key,
		    const struct nt_have *);
void		 frame_strv(struct chan_frame *, const char *key,
		    const char **, size_t);
void		 frame_batch(struct chan_frame *, const char *key,
		    const struct chan_batch *);
void		 frame_u64v(struct chan_frame *, const char *key,
		    const uint64_t *, size_t);
void		 frame_boolv(struct chan_frame *, const char *key,
		    const unsigned char *, size_t);

void		 batch_init(struct chan_batch *);
void		 batch_add(struct chan_batch *, const struct nt_msg *);
void		 batch_add_raw(struct chan_batch *, const char *, size_t);
void		 batch_reset(struct chan_batch *);
void		 batch_clear(struct chan_batch *);

/*
 * Every frame is checked against its type's fields (channel.c) before it
 * reaches a callback: 0, or -1 with *cause (caller frees).  The tables
 * are there for the tests too: a type's name and its "key:T" fields,
 * NULL for a type that does not exist.
 */
int		 chan_frame_check(const msgpack_object *, char **cause);
const char	*chan_type_name(int);
const char *const *chan_type_fields(int);

/* Decoding helpers: NULL / -1 when the key is missing or of another type. */
const msgpack_object *frame_get(const msgpack_object *, const char *key);
int		 frame_get_u64(const msgpack_object *, const char *, uint64_t *);
int		 frame_get_i64(const msgpack_object *, const char *, int64_t *);
int		 frame_get_bool(const msgpack_object *, const char *, int *);
/* Copies into a fresh string (caller frees). */
char		*frame_get_str(const msgpack_object *, const char *);
int		 frame_get_msg(const msgpack_object *, const char *,
		    struct nt_msg *);
int		 frame_get_have(const msgpack_object *, const char *,
		    struct nt_have *);
/* The array under key (msgs[] of a chunk), or NULL. */
const msgpack_object *frame_get_array(const msgpack_object *, const char *);

/* msgpack form of a message, shared with the store's log records. */
void		 msg_pack(msgpack_packer *, const struct nt_msg *);
int		 msg_unpack(const msgpack_object *, struct nt_msg *);

#endif /* CHANNEL_H */
