/*
 * channel.c: the master <-> worker link.  Frames are msgpack maps streamed
 * over a socketpair; the first frame each way carries CHAN_VERSION, and a
 * frame over CHAN_MAX_FRAME ends the link rather than growing a buffer
 * without bound.  A frame is handed to msgpack-c only once all its bytes
 * are here (chan_frame_len), because msgpack-c allocates what a map or
 * array header claims before reading the entries: five bytes claiming 50
 * million entries would make it allocate gigabytes.
 */
#include <sys/types.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "nodetalk.h"
#include "channel.h"
#include "log.h"

/* How far the walk of an incoming frame got (frame_scan). */
struct frame_scan {
	size_t		 off;		/* bytes walked */
	uint64_t	 left;		/* items still to walk */
};

struct chan {
	struct bufferevent	*bev;
	struct frame_scan	 scan;		/* of the frame coming in */
	msgpack_unpacked	 up;		/* reused from frame to frame */
	char			*name;
	chan_frame_cb		 frame_cb;
	chan_lost_cb		 lost_cb;
	void			*arg;
	int			 got_hello;
	int			 busy;		/* inside a callback */
	int			 freed;		/* chan_free() while busy */
	int			 lost;		/* lost_cb already called */
	void			(*drain_cb)(struct chan *, void *);
	size_t			 backlog_max;	/* 0: no cap */
	int			 stalled;	/* the cap was reached */
	struct event		*ev_stall;	/* reports it from the loop */
	struct chan_batch	 q;		/* frames queued (chan_queue) */
	struct event		*ev_flush;	/* sends them, next turn */
};

static void	chan_read(struct bufferevent *, void *);
static void	chan_event(struct bufferevent *, short, void *);
static void	chan_lose(struct chan *, const char *);
static void	chan_destroy(struct chan *);
static int	chan_feed(struct chan *);
static ssize_t	frame_scan(struct frame_scan *, const unsigned char *, size_t);
static size_t	item_head(const unsigned char *, size_t, uint64_t *,
		    uint64_t *);
static int	chan_dispatch(struct chan *, const msgpack_object *);
static int	chan_dispatch_batch(struct chan *, const msgpack_object *);
static const msgpack_object *frame_get_n(const msgpack_object *, const char *,
		    size_t);
static void	chan_send_hello(struct chan *);
static void	chan_write(struct bufferevent *, void *);
static void	chan_stall_cb(evutil_socket_t, short, void *);
static void	chan_flush_cb(evutil_socket_t, short, void *);
static int	chan_flush(struct chan *);
static void	frame_array_head(struct chan_frame *, const char *, size_t);
static int	chan_put(struct chan *, const void *, size_t, const void *,
		    size_t);

struct chan *
chan_new(struct event_base *base, int fd, const char *name,
    chan_frame_cb frame_cb, chan_lost_cb lost_cb, void *arg)
{
	struct chan	*ch;

	ch = xcalloc(1, sizeof(*ch));
	ch->name = xstrdup(name);
	ch->frame_cb = frame_cb;
	ch->lost_cb = lost_cb;
	ch->arg = arg;
	msgpack_unpacked_init(&ch->up);
	ch->scan.left = 1;
	ch->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (ch->bev == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(ch->bev, chan_read, NULL, chan_event, ch);
	bufferevent_enable(ch->bev, EV_READ | EV_WRITE);
	ch->ev_stall = event_new(base, -1, 0, chan_stall_cb, ch);
	ch->ev_flush = evtimer_new(base, chan_flush_cb, ch);
	if (ch->ev_stall == NULL || ch->ev_flush == NULL)
		fatalx("event_new");
	chan_send_hello(ch);
	return (ch);
}

/* Free now, or once the callback that asked for it has returned. */
void
chan_free(struct chan *ch)
{
	if (ch == NULL)
		return;
	if (ch->busy) {
		ch->freed = 1;
		return;
	}
	chan_destroy(ch);
}

static void
chan_destroy(struct chan *ch)
{
	chan_flush(ch);		/* into the output: it may still go out */
	event_free(ch->ev_flush);
	batch_clear(&ch->q);
	event_free(ch->ev_stall);
	bufferevent_free(ch->bev);
	msgpack_unpacked_destroy(&ch->up);
	free(ch->name);
	free(ch);
}

/*
 * Hand a frame's bytes (head, then body) to the output, unless the link
 * is gone or the reader stopped reading.
 */
static int
chan_put(struct chan *ch, const void *head, size_t hlen, const void *body,
    size_t blen)
{
	struct evbuffer	*out = bufferevent_get_output(ch->bev);

	if (hlen + blen > CHAN_MAX_FRAME) {
		log_warnx("%s: frame of %zu bytes over the cap; not sent",
		    ch->name, hlen + blen);
		return (-1);
	}
	if (ch->lost || ch->stalled)
		return (-1);
	if (ch->backlog_max > 0 &&
	    evbuffer_get_length(out) + hlen + blen > ch->backlog_max) {
		/* Not from here: our caller may still use the channel. */
		ch->stalled = 1;
		event_active(ch->ev_stall, EV_TIMEOUT, 1);
		return (-1);
	}
	if ((hlen > 0 && evbuffer_add(out, head, hlen) != 0) ||
	    evbuffer_add(out, body, blen) != 0)
		return (-1);
	return (0);
}

int
chan_send(struct chan *ch, struct chan_frame *f)
{
	int	 rv;

	/* What was queued goes first: frames keep their order. */
	if ((rv = chan_flush(ch)) == 0)
		rv = chan_put(ch, NULL, 0, f->sb.data, f->sb.size);
	frame_release(f);
	return (rv);
}

/*
 * Queue a frame, to go out with the others queued this turn as one
 * CH_BATCH frame: per-message frames (a client's chat, a peer's) cost the
 * reader an unpack and a check each otherwise.  Sent at the next turn of
 * the loop, or at once past CHAN_BATCH_BYTES, or before any chan_send().
 */
int
chan_queue(struct chan *ch, struct chan_frame *f)
{
	struct timeval	 tv = { 0, 0 };
	int		 rv = 0;

	if (ch->lost || ch->stalled)
		rv = -1;
	else if (f->sb.size > CHAN_BATCH_BYTES) {
		if ((rv = chan_flush(ch)) == 0)
			rv = chan_put(ch, NULL, 0, f->sb.data, f->sb.size);
	} else {
		if (ch->q.n == 0)
			evtimer_add(ch->ev_flush, &tv);
		batch_add_raw(&ch->q, f->sb.data, f->sb.size);
		if (ch->q.sb.size >= CHAN_BATCH_BYTES)
			rv = chan_flush(ch);
	}
	frame_release(f);
	return (rv);
}

/* The frames queued, as they are (one) or in a CH_BATCH frame. */
static int
chan_flush(struct chan *ch)
{
	struct chan_frame	 f;
	int			 rv;

	if (ch->q.n == 0)
		return (0);
	evtimer_del(ch->ev_flush);
	if (ch->q.n == 1)
		rv = chan_put(ch, NULL, 0, ch->q.sb.data, ch->q.sb.size);
	else {
		/* The head here, the frames from the queue: no copy. */
		frame_begin(&f, CH_BATCH, 1);
		frame_array_head(&f, "frames", ch->q.n);
		rv = chan_put(ch, f.sb.data, f.sb.size, ch->q.sb.data,
		    ch->q.sb.size);
		frame_release(&f);
	}
	batch_reset(&ch->q);
	return (rv);
}

static void
chan_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	chan_flush(arg);
}

size_t
chan_pending(const struct chan *ch)
{
	return (evbuffer_get_length(bufferevent_get_output(ch->bev)) +
	    ch->q.sb.size);
}

void
chan_set_drain(struct chan *ch, size_t low, void (*cb)(struct chan *, void *))
{
	ch->drain_cb = cb;
	bufferevent_setwatermark(ch->bev, EV_WRITE, cb != NULL ? low : 0, 0);
	bufferevent_setcb(ch->bev, chan_read, cb != NULL ? chan_write : NULL,
	    chan_event, ch);
}

void
chan_set_backlog(struct chan *ch, size_t max)
{
	ch->backlog_max = max;
}

int
chan_stalled(const struct chan *ch)
{
	return (ch->stalled);
}

static void
chan_write(struct bufferevent *bev, void *arg)
{
	struct chan	*ch = arg;

	int		 busy = ch->busy;

	if (ch->lost || ch->freed || ch->drain_cb == NULL)
		return;
	ch->busy = 1;
	ch->drain_cb(ch, ch->arg);
	ch->busy = busy;
	if (!busy && ch->freed)
		chan_destroy(ch);
}

static void
chan_stall_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct chan	*ch = arg;
	char		 why[128];

	snprintf(why, sizeof(why), "it stopped reading (%zu bytes waiting)",
	    chan_pending(ch));
	chan_lose(ch, why);
}

static void
chan_send_hello(struct chan *ch)
{
	struct chan_frame	 f;

	frame_begin(&f, CH_HELLO, 2);
	frame_u64(&f, "v", CHAN_VERSION);
	frame_i64(&f, "pid", getpid());
	chan_send(ch, &f);
}

static void
chan_read(struct bufferevent *bev, void *arg)
{
	struct chan	*ch = arg;

	ch->busy = 1;
	if (chan_feed(ch) == -1 && !ch->lost && !ch->freed)
		chan_lose(ch, "bad frame");
	ch->busy = 0;
	if (ch->freed)
		chan_destroy(ch);
}

/* Hand out every complete frame of the input; -1 ends the link. */
static int
chan_feed(struct chan *ch)
{
	struct evbuffer		*in = bufferevent_get_input(ch->bev);
	const unsigned char	*p;
	size_t			 len, off;
	ssize_t			 n;

	while ((len = evbuffer_get_length(in)) > 0 && !ch->freed && !ch->lost) {
		if (len > CHAN_MAX_FRAME)
			len = CHAN_MAX_FRAME;
		if ((p = evbuffer_pullup(in, len)) == NULL)
			fatalx("evbuffer_pullup");
		if ((n = frame_scan(&ch->scan, p, len)) == 0 &&
		    len < CHAN_MAX_FRAME)
			return (0);	/* the rest is still on its way */
		if (n <= 0) {
			log_warnx("%s: incoming frame %s", ch->name, n == 0 ?
			    "over the size cap" : "is not msgpack");
			return (-1);
		}
		ch->scan.off = 0;
		ch->scan.left = 1;
		off = 0;
		if (msgpack_unpack_next(&ch->up, (const char *)p, (size_t)n,
		    &off) != MSGPACK_UNPACK_SUCCESS || off != (size_t)n ||
		    chan_dispatch(ch, &ch->up.data) == -1)
			return (-1);
		evbuffer_drain(in, (size_t)n);
	}
	return (0);
}

/*
 * The size in bytes of a msgpack item's header, and what follows it: the
 * bytes of its payload (strings, binaries, extensions) or the number of
 * items it holds (arrays, maps).  0 when the header is cut short,
 * SIZE_MAX for the one byte msgpack never uses.
 */
static size_t
item_head(const unsigned char *p, size_t len, uint64_t *payload,
    uint64_t *items)
{
	static const unsigned char fixed[32] = {	/* 0xc0 .. 0xdf */
		1, 0, 1, 1, 2, 3, 5, 3, 4, 6, 5, 9, 2, 3, 5, 9,
		2, 3, 5, 9, 3, 4, 6, 10, 18, 2, 3, 5, 3, 5, 3, 5
	};
	unsigned char	 c = p[0];
	size_t		 h, w, i;
	uint64_t	 n = 0;

	*payload = *items = 0;
	if (c <= 0x7f || c >= 0xe0)
		return (1);			/* fixints */
	if (c <= 0x8f) {
		*items = 2 * (uint64_t)(c & 0x0f);	/* fixmap */
		return (1);
	}
	if (c <= 0x9f) {
		*items = c & 0x0f;		/* fixarray */
		return (1);
	}
	if (c <= 0xbf) {
		*payload = c & 0x1f;		/* fixstr */
		return (1);
	}
	if ((h = fixed[c - 0xc0]) == 0)
		return (SIZE_MAX);
	if (h > len)
		return (0);
	/* The types whose header ends in a length or a count. */
	switch (c) {
	case 0xc4: case 0xc7: case 0xd9:
		w = 1;
		break;
	case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde:
		w = 2;
		break;
	case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf:
		w = 4;
		break;
	default:
		return (h);			/* a scalar of fixed size */
	}
	for (i = 1; i <= w; i++)
		n = n << 8 | p[i];
	if (c == 0xdc || c == 0xdd)
		*items = n;
	else if (c == 0xde || c == 0xdf)
		*items = 2 * n;
	else
		*payload = n;
	return (h);
}

/*
 * The length of the msgpack object at the front of buf: 0 when more bytes
 * are needed, -1 when the bytes are not msgpack.  Walked item by item
 * without allocating: a container's claim only adds to the count of items
 * still to come, and each item takes at least a byte, so the walk never
 * goes past the bytes that are here.
 */
ssize_t
chan_frame_len(const void *buf, size_t len)
{
	struct frame_scan	 sc = { 0, 1 };

	return (frame_scan(&sc, buf, len));
}

/*
 * The walk of chan_frame_len(), resumed where it stopped: a frame arrives
 * in reads of 4 KiB, and walking it from its start after each read would
 * cost quadratic time in its size.  sc stops at the first item not wholly
 * here, so the bytes before it are never looked at again.
 */
static ssize_t
frame_scan(struct frame_scan *sc, const unsigned char *p, size_t len)
{
	uint64_t	 payload, items;
	size_t		 h;

	while (sc->left > 0) {
		if (sc->off >= len)
			return (0);
		if ((h = item_head(p + sc->off, len - sc->off, &payload,
		    &items)) == SIZE_MAX)
			return (-1);
		if (h == 0 || payload > len - sc->off - h)
			return (0);
		sc->off += h + payload;
		sc->left += items - 1;
	}
	return ((ssize_t)sc->off);
}

static int
chan_dispatch(struct chan *ch, const msgpack_object *o)
{
	uint64_t	 type = 0, v;
	char		*cause = NULL;

	if (chan_frame_check(o, &cause) == -1) {
		log_warnx("%s: %s", ch->name, cause);
		free(cause);
		return (-1);
	}
	frame_get_u64(o, "t", &type);
	if (!ch->got_hello) {
		if (type != CH_HELLO || frame_get_u64(o, "v", &v) == -1) {
			log_warnx("%s: first frame is not a hello", ch->name);
			return (-1);
		}
		if (v != CHAN_VERSION) {
			log_warnx("%s: channel version %llu, expected %d",
			    ch->name, (unsigned long long)v, CHAN_VERSION);
			return (-1);
		}
		ch->got_hello = 1;
	}
	if (type == CH_BATCH)
		return (chan_dispatch_batch(ch, o));
	ch->frame_cb(ch, (int)type, o, ch->arg);
	return (0);
}

/* Each frame of a batch, in order, as if it had come alone. */
static int
chan_dispatch_batch(struct chan *ch, const msgpack_object *o)
{
	const msgpack_object	*a = frame_get_array(o, "frames");
	const msgpack_object	*f;
	uint64_t		 type;
	uint32_t		 i;

	for (i = 0; i < a->via.array.size && !ch->freed && !ch->lost; i++) {
		f = &a->via.array.ptr[i];
		if (f->type == MSGPACK_OBJECT_MAP &&
		    frame_get_u64(f, "t", &type) == 0 && type == CH_BATCH) {
			log_warnx("%s: a batch inside a batch", ch->name);
			return (-1);
		}
		if (chan_dispatch(ch, f) == -1)
			return (-1);
	}
	return (0);
}

static void
chan_event(struct bufferevent *bev, short what, void *arg)
{
	struct chan	*ch = arg;

	if (what & BEV_EVENT_EOF)
		chan_lose(ch, "closed");
	else if (what & BEV_EVENT_ERROR)
		chan_lose(ch, strerror(EVUTIL_SOCKET_ERROR()));
}

static void
chan_lose(struct chan *ch, const char *why)
{
	int	 busy = ch->busy;

	if (ch->lost)
		return;
	ch->lost = 1;
	bufferevent_disable(ch->bev, EV_READ | EV_WRITE);
	ch->busy = 1;
	ch->lost_cb(ch, why, ch->arg);
	ch->busy = busy;
	if (!busy && ch->freed)
		chan_destroy(ch);
}

/*
 * What every frame type carries, checked before a frame reaches its
 * handler: a key twice (the reader would see only the first), a required
 * key missing or of the wrong type ends the link like any bad frame.
 * Fields are "key:T", T one of u (unsigned), i (integer), s (string),
 * b (bool), m (message map), h (have map), v (array: its items are for
 * the handler to check); a trailing '?' marks a key that may be absent.
 * Keys not listed are allowed, so a field can be added before its reader
 * knows it.
 */
static const struct chan_schema {
	int		 type;
	const char	*name;
	const char	*fields[CHAN_MAX_FIELDS + 1];
} chan_schemas[] = {
	{ CH_HELLO, "hello", { "v:u", "pid:i?" } },
	{ CH_BATCH, "batch", { "frames:v" } },
	{ CH_QUIT, "quit", { NULL } },
	{ CH_LOGLEVEL, "loglevel", { "level:u" } },
	{ CH_PEERS, "peers", { "ids:v", "seeds:v", "hosts:v" } },
	{ CH_SETTINGS, "settings", { "max_clients:u", "max_message_bytes:u",
	    "max_frame_bytes:u", "max_clients_per_address:u",
	    "max_client_backlog_bytes:u", "max_peer_backlog_bytes:u",
	    "http_timeout_ms:u", "join_timeout_ms:u", "ping_interval_ms:u",
	    "peer_ping_interval_ms:u", "ping_timeout_ms:u", "www_dir:s",
	    "secret:s" } },
	{ CH_REOPEN, "reopen", { "target:s" } },
	{ CH_CHAT, "chat", { "conn:u", "t_us:i", "after:u", "from:s", "text:s",
	    "cid:s?" } },
	{ CH_ACK, "ack", { "conn:u", "msg:m" } },
	{ CH_JOIN, "join", { "conn:u", "since:h?" } },
	{ CH_HISTORY, "history", { "conn:u", "msgs:v" } },
	{ CH_JOINED, "joined", { "conn:u", "count:u", "recovered:b",
	    "older:b" } },
	{ CH_PEER_HELLO, "peer_hello", { "conn:u", "peer:s" } },
	{ CH_PEER_CHAT, "peer_chat", { "conn:u", "peer:s", "msg:m" } },
	{ CH_SEED_CHAT, "seed_chat", { "from:s", "text:s" } },
	{ CH_SYNC, "sync", { "conn:u", "have:h" } },
	{ CH_STATUS, "status", { "req:u", "what:s?", "errors:h?",
	    "body:s?" } },
	{ CH_CHAT_FAIL, "chat_fail", { "conn:u", "code:s", "message:s" } },
	{ CH_CLIENTS, "clients", { "n:u" } },
	{ CH_HISTORY_MORE, "history_more", { "conn:u", "stop:b" } },
	{ CH_CLUSTER, "cluster", { "json:s" } },
	{ CH_PAGE, "page", { "conn:u", "limit:u", "origin:s?", "seq:u?",
	    "lamport:u?" } },
	{ CH_PAGE_END, "page_end", { "conn:u", "count:u", "older:b" } },
	{ CH_RELEASE, "release", { "msgs:v", "acks:v", "push:v" } },
	{ CH_REPLICATE, "replicate", { "peer:s", "msgs:v", "except:v?" } },
	{ CH_SYNC_REQ, "sync_req", { "peer:s", "link:u", "have:h" } },
	{ CH_LINK, "link", { "peer:s", "up:b", "link:u" } },
	{ CH_DIAL, "dial", { "peer:s" } },
	{ CH_CATCHUP, "catchup", { "peer:s", "link:u", "msgs:v" } },
	{ CH_CATCHUP_MORE, "catchup_more", { "peer:s", "link:u" } },
	{ CH_PUBLISH, "publish", { "id:u", "from:s", "text:s", "ts:i",
	    "cid:s?" } },
	{ CH_PUBLISHED, "published", { "id:u", "seq:u", "dup:b" } },
	{ CH_PUBLISH_FAIL, "publish_fail", { "id:u", "code:s", "message:s" } },
	{ CH_CONSUME, "consume", { "gen:u", "from:u" } },
	{ CH_STREAM_MSG, "stream_msg", { "gen:u", "msg:m" } },
	{ CH_STORED, "stored", { "seq:u" } },
	{ CH_NATS_STATE, "nats_state", { "up:b", "server:s", "stream_ok:b",
	    "stream_seq:u", "replicas:u", "leader:s", "reconnects:u",
	    "error:s" } },
};

static const struct chan_schema *
chan_schema(int type)
{
	size_t	 i;

	for (i = 0; i < sizeof(chan_schemas) / sizeof(chan_schemas[0]); i++)
		if (chan_schemas[i].type == type)
			return (&chan_schemas[i]);
	return (NULL);
}

const char *
chan_type_name(int type)
{
	const struct chan_schema	*cs = chan_schema(type);

	return (cs != NULL ? cs->name : NULL);
}

const char *const *
chan_type_fields(int type)
{
	const struct chan_schema	*cs = chan_schema(type);

	return (cs != NULL ? cs->fields : NULL);
}

static int
field_type_ok(const msgpack_object *o, char t)
{
	switch (t) {
	case 'u':
		return (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
	case 'i':
		return (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
		    (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    o->via.u64 <= INT64_MAX));
	case 's':
		return (o->type == MSGPACK_OBJECT_STR);
	case 'b':
		return (o->type == MSGPACK_OBJECT_BOOLEAN);
	case 'm':
	case 'h':
		return (o->type == MSGPACK_OBJECT_MAP);
	case 'v':
		return (o->type == MSGPACK_OBJECT_ARRAY);
	}
	return (0);
}

/* Every key a string, none twice. */
static int
frame_keys_check(const msgpack_object *o, char **cause)
{
	const msgpack_object_kv	*kv = o->via.map.ptr;
	uint32_t		 i, j, n = o->via.map.size;

	for (i = 0; i < n; i++) {
		if (kv[i].key.type != MSGPACK_OBJECT_STR) {
			xasprintf(cause, "frame has a key that is not a "
			    "string");
			return (-1);
		}
		for (j = 0; j < i; j++) {
			if (kv[j].key.via.str.size == kv[i].key.via.str.size &&
			    memcmp(kv[j].key.via.str.ptr, kv[i].key.via.str.ptr,
			    kv[i].key.via.str.size) == 0) {
				xasprintf(cause, "frame has key \"%.*s\" twice",
				    (int)kv[i].key.via.str.size,
				    kv[i].key.via.str.ptr);
				return (-1);
			}
		}
	}
	return (0);
}

/* The value under the key of len bytes at key in a map, or NULL. */
static const msgpack_object *
frame_get_n(const msgpack_object *map, const char *key, size_t len)
{
	const msgpack_object_kv	*kv = map->via.map.ptr;
	uint32_t		 i;

	for (i = 0; i < map->via.map.size; i++)
		if (kv[i].key.type == MSGPACK_OBJECT_STR &&
		    kv[i].key.via.str.size == len &&
		    memcmp(kv[i].key.via.str.ptr, key, len) == 0)
			return (&kv[i].val);
	return (NULL);
}

/* Runs for every frame: the schema's strings are read where they lie. */
static int
frame_fields_check(const msgpack_object *o, const struct chan_schema *cs,
    char **cause)
{
	const msgpack_object	*v;
	const char		*f, *colon;
	size_t			 i;
	int			 klen;

	for (i = 0; (f = cs->fields[i]) != NULL; i++) {
		colon = strchr(f, ':');
		klen = (int)(colon - f);
		if ((v = frame_get_n(o, f, (size_t)klen)) == NULL) {
			if (colon[2] == '?')
				continue;
			xasprintf(cause, "%s frame without \"%.*s\"", cs->name,
			    klen, f);
			return (-1);
		}
		if (!field_type_ok(v, colon[1])) {
			xasprintf(cause, "%s frame: \"%.*s\" is of the wrong "
			    "type", cs->name, klen, f);
			return (-1);
		}
	}
	return (0);
}

int
chan_frame_check(const msgpack_object *o, char **cause)
{
	const struct chan_schema	*cs;
	uint64_t			 type;

	if (o->type != MSGPACK_OBJECT_MAP) {
		xasprintf(cause, "frame is not a map");
		return (-1);
	}
	if (frame_keys_check(o, cause) == -1)
		return (-1);
	if (frame_get_u64(o, "t", &type) == -1) {
		xasprintf(cause, "frame has no type");
		return (-1);
	}
	if (type > INT_MAX || (cs = chan_schema((int)type)) == NULL) {
		xasprintf(cause, "frame of unknown type %llu (every type needs "
		    "a row in chan_schemas, src/channel.c)",
		    (unsigned long long)type);
		return (-1);
	}
	return (frame_fields_check(o, cs, cause));
}

/* Frame building. */

/*
 * The buffer of the last frame released, kept for the next one: a frame
 * is built, sent and released many times a turn, and msgpack's buffer
 * starts at 8 KiB, a malloc and a free each time otherwise.  A large one
 * (a chunk of history) goes back to the allocator.
 */
#define FRAME_KEEP_MAX	(64 * 1024)
static msgpack_sbuffer	 frame_spare;	/* the loop's thread only */

void
frame_begin(struct chan_frame *f, enum chan_type type, size_t nfields)
{
	if (frame_spare.data != NULL) {
		f->sb = frame_spare;
		f->sb.size = 0;
		memset(&frame_spare, 0, sizeof(frame_spare));
	} else
		msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&f->pk, nfields + 1);
	frame_u64(f, "t", type);
}

void
frame_release(struct chan_frame *f)
{
	if (frame_spare.data == NULL && f->sb.alloc <= FRAME_KEEP_MAX)
		frame_spare = f->sb;
	else
		msgpack_sbuffer_destroy(&f->sb);
	memset(&f->sb, 0, sizeof(f->sb));
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t	 len;

	if (s == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	len = strlen(s);
	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

void
frame_str(struct chan_frame *f, const char *key, const char *val)
{
	pack_cstr(&f->pk, key);
	pack_cstr(&f->pk, val);
}

void
frame_u64(struct chan_frame *f, const char *key, uint64_t val)
{
	pack_cstr(&f->pk, key);
	msgpack_pack_uint64(&f->pk, val);
}

void
frame_i64(struct chan_frame *f, const char *key, int64_t val)
{
	pack_cstr(&f->pk, key);
	msgpack_pack_int64(&f->pk, val);
}

void
frame_bool(struct chan_frame *f, const char *key, int val)
{
	pack_cstr(&f->pk, key);
	if (val)
		msgpack_pack_true(&f->pk);
	else
		msgpack_pack_false(&f->pk);
}

void
frame_msg(struct chan_frame *f, const char *key, const struct nt_msg *m)
{
	pack_cstr(&f->pk, key);
	msg_pack(&f->pk, m);
}

void
frame_have(struct chan_frame *f, const char *key, const struct nt_have *h)
{
	size_t	 i;

	pack_cstr(&f->pk, key);
	msgpack_pack_map(&f->pk, h->n);
	for (i = 0; i < h->n; i++) {
		pack_cstr(&f->pk, h->v[i].origin);
		msgpack_pack_uint64(&f->pk, h->v[i].seq);
	}
}

void
frame_strv(struct chan_frame *f, const char *key, const char **v, size_t n)
{
	size_t	 i;

	frame_array_head(f, key, n);
	for (i = 0; i < n; i++)
		pack_cstr(&f->pk, v[i]);
}

void
frame_u64v(struct chan_frame *f, const char *key, const uint64_t *v, size_t n)
{
	size_t	 i;

	frame_array_head(f, key, n);
	for (i = 0; i < n; i++)
		msgpack_pack_uint64(&f->pk, v[i]);
}

void
frame_boolv(struct chan_frame *f, const char *key, const unsigned char *v,
    size_t n)
{
	size_t	 i;

	frame_array_head(f, key, n);
	for (i = 0; i < n; i++) {
		if (v[i])
			msgpack_pack_true(&f->pk);
		else
			msgpack_pack_false(&f->pk);
	}
}

/* A frame field that is an array of n items, which follow. */
static void
frame_array_head(struct chan_frame *f, const char *key, size_t n)
{
	pack_cstr(&f->pk, key);
	msgpack_pack_array(&f->pk, n);
}

/* A frame field holding every message of a batch, as an array. */
void
frame_batch(struct chan_frame *f, const char *key, const struct chan_batch *b)
{
	frame_array_head(f, key, b->n);
	if (b->sb.size > 0)
		msgpack_sbuffer_write(&f->sb, b->sb.data, b->sb.size);
}

void
batch_init(struct chan_batch *b)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
	b->n = 0;
}

void
batch_add(struct chan_batch *b, const struct nt_msg *m)
{
	msg_pack(&b->pk, m);
	b->n++;
}

/*
 * A message (or a frame) already in msgpack form: a log record's payload.
 * A batch all zeros takes these without batch_init().
 */
void
batch_add_raw(struct chan_batch *b, const char *packed, size_t len)
{
	msgpack_sbuffer_write(&b->sb, packed, len);
	b->n++;
}

/* Empty, keeping the buffer for the next batch. */
void
batch_reset(struct chan_batch *b)
{
	b->sb.size = 0;
	b->n = 0;
}

/* Free the buffer: the batch is all zeros again. */
void
batch_clear(struct chan_batch *b)
{
	msgpack_sbuffer_destroy(&b->sb);
	memset(b, 0, sizeof(*b));
}

/* msgpack form of a message: also the payload of a log record. */
void
msg_pack(msgpack_packer *pk, const struct nt_msg *m)
{
	msgpack_pack_map(pk, 6 + (m->client_id != NULL) +
	    (m->gateway != NULL));
	pack_cstr(pk, "origin");
	pack_cstr(pk, m->origin);
	pack_cstr(pk, "seq");
	msgpack_pack_uint64(pk, m->seq);
	pack_cstr(pk, "lamport");
	msgpack_pack_uint64(pk, m->lamport);
	pack_cstr(pk, "ts");
	msgpack_pack_int64(pk, m->ts);
	pack_cstr(pk, "from");
	pack_cstr(pk, m->from != NULL ? m->from : "");
	pack_cstr(pk, "text");
	pack_cstr(pk, m->text != NULL ? m->text : "");
	if (m->client_id != NULL) {
		pack_cstr(pk, "cid");
		pack_cstr(pk, m->client_id);
	}
	if (m->gateway != NULL) {
		pack_cstr(pk, "gw");
		pack_cstr(pk, m->gateway);
	}
}

/* Decoding. */

const msgpack_object *
frame_get(const msgpack_object *map, const char *key)
{
	if (map->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	return (frame_get_n(map, key, strlen(key)));
}

int
frame_get_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
	const msgpack_object	*o;

	if ((o = frame_get(map, key)) == NULL ||
	    o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (-1);
	*out = o->via.u64;
	return (0);
}

int
frame_get_i64(const msgpack_object *map, const char *key, int64_t *out)
{
	const msgpack_object	*o;

	if ((o = frame_get(map, key)) == NULL)
		return (-1);
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*out = o->via.i64;
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= INT64_MAX)
		*out = (int64_t)o->via.u64;
	else
		return (-1);
	return (0);
}

int
frame_get_bool(const msgpack_object *map, const char *key, int *out)
{
	const msgpack_object	*o;

	if ((o = frame_get(map, key)) == NULL ||
	    o->type != MSGPACK_OBJECT_BOOLEAN)
		return (-1);
	*out = o->via.boolean;
	return (0);
}

static char *
obj_strdup(const msgpack_object *o)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return (NULL);
	return (xstrndup(o->via.str.ptr, o->via.str.size));
}

char *
frame_get_str(const msgpack_object *map, const char *key)
{
	return (obj_strdup(frame_get(map, key)));
}

int
msg_unpack(const msgpack_object *o, struct nt_msg *m)
{
	const msgpack_object	*origin, *cid, *gw;

	memset(m, 0, sizeof(*m));
	origin = frame_get(o, "origin");
	if (origin == NULL || origin->type != MSGPACK_OBJECT_STR ||
	    origin->via.str.size == 0 || origin->via.str.size > NT_ORIGIN_MAX)
		return (-1);
	memcpy(m->origin, origin->via.str.ptr, origin->via.str.size);
	if (frame_get_u64(o, "seq", &m->seq) == -1 || m->seq == 0 ||
	    frame_get_u64(o, "lamport", &m->lamport) == -1 ||
	    frame_get_i64(o, "ts", &m->ts) == -1)
		return (-1);
	m->from = frame_get_str(o, "from");
	m->text = frame_get_str(o, "text");
	if ((cid = frame_get(o, "cid")) != NULL &&
	    (m->client_id = obj_strdup(cid)) == NULL)
		goto bad;
	if ((gw = frame_get(o, "gw")) != NULL &&
	    (m->gateway = obj_strdup(gw)) == NULL)
		goto bad;
	if (m->from == NULL || m->text == NULL)
		goto bad;
	return (0);
bad:
	msg_clear(m);
	return (-1);
}

int
frame_get_msg(const msgpack_object *map, const char *key, struct nt_msg *m)
{
	const msgpack_object	*o;

	if ((o = frame_get(map, key)) == NULL)
		return (-1);
	return (msg_unpack(o, m));
}

const msgpack_object *
frame_get_array(const msgpack_object *map, const char *key)
{
	const msgpack_object	*o;

	if ((o = frame_get(map, key)) == NULL ||
	    o->type != MSGPACK_OBJECT_ARRAY)
		return (NULL);
	return (o);
}

int
frame_get_have(const msgpack_object *map, const char *key, struct nt_have *h)
{
	const msgpack_object	*o, *k, *v;
	char			 origin[NT_ORIGIN_MAX + 1];
	uint32_t		 i;

	memset(h, 0, sizeof(*h));
	if ((o = frame_get(map, key)) == NULL || o->type != MSGPACK_OBJECT_MAP)
		return (-1);
	for (i = 0; i < o->via.map.size; i++) {
		k = &o->via.map.ptr[i].key;
		v = &o->via.map.ptr[i].val;
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
		    k->via.str.size > NT_ORIGIN_MAX ||
		    v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			have_clear(h);
			return (-1);
		}
		memcpy(origin, k->via.str.ptr, k->via.str.size);
		origin[k->via.str.size] = '\0';
		have_set(h, origin, v->via.u64);
	}
	return (0);
}
