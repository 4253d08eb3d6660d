/*
 * channel.c: the master <-> worker link.  Frames are msgpack maps streamed
 * over a socketpair and read back with msgpack-c's streaming unpacker; the
 * first frame each way carries CHAN_VERSION, and a frame over
 * CHAN_MAX_FRAME ends the link rather than growing a buffer without bound.
 */
#include <sys/types.h>

#include <errno.h>
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

struct chan {
	struct bufferevent	*bev;
	msgpack_unpacker	 unp;
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
};

static void	chan_read(struct bufferevent *, void *);
static void	chan_event(struct bufferevent *, short, void *);
static void	chan_lose(struct chan *, const char *);
static void	chan_destroy(struct chan *);
static int	chan_feed(struct chan *);
static int	chan_dispatch(struct chan *, const msgpack_object *);
static void	chan_send_hello(struct chan *);
static void	chan_write(struct bufferevent *, void *);
static void	chan_stall_cb(evutil_socket_t, short, void *);

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
	if (!msgpack_unpacker_init(&ch->unp, 64 * 1024))
		fatalx("msgpack_unpacker_init");
	ch->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (ch->bev == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(ch->bev, chan_read, NULL, chan_event, ch);
	bufferevent_enable(ch->bev, EV_READ | EV_WRITE);
	ch->ev_stall = event_new(base, -1, 0, chan_stall_cb, ch);
	if (ch->ev_stall == NULL)
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
	event_free(ch->ev_stall);
	bufferevent_free(ch->bev);
	msgpack_unpacker_destroy(&ch->unp);
	free(ch->name);
	free(ch);
}

int
chan_send(struct chan *ch, struct chan_frame *f)
{
	int	 rv = 0;

	if (f->sb.size > CHAN_MAX_FRAME) {
		log_warnx("%s: frame of %zu bytes over the cap; not sent",
		    ch->name, f->sb.size);
		rv = -1;
	} else if (ch->lost || ch->stalled)
		rv = -1;
	else if (ch->backlog_max > 0 &&
	    chan_pending(ch) + f->sb.size > ch->backlog_max) {
		/* Not from here: our caller may still use the channel. */
		ch->stalled = 1;
		event_active(ch->ev_stall, EV_TIMEOUT, 1);
		rv = -1;
	} else if (bufferevent_write(ch->bev, f->sb.data, f->sb.size) != 0)
		rv = -1;
	frame_release(f);
	return (rv);
}

size_t
chan_pending(const struct chan *ch)
{
	return (evbuffer_get_length(bufferevent_get_output(ch->bev)));
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

/* Move input into the unpacker and hand out every complete frame. */
static int
chan_feed(struct chan *ch)
{
	struct evbuffer		*in = bufferevent_get_input(ch->bev);
	msgpack_unpacked	 up;
	msgpack_unpack_return	 ret;
	size_t			 len;
	int			 rv = 0;

	msgpack_unpacked_init(&up);
	while ((len = evbuffer_get_length(in)) > 0 && !ch->freed && !ch->lost) {
		if (len > 64 * 1024)
			len = 64 * 1024;
		if (!msgpack_unpacker_reserve_buffer(&ch->unp, len))
			fatalx("msgpack_unpacker_reserve_buffer");
		evbuffer_remove(in, msgpack_unpacker_buffer(&ch->unp), len);
		msgpack_unpacker_buffer_consumed(&ch->unp, len);
		while (!ch->freed && !ch->lost &&
		    (ret = msgpack_unpacker_next(&ch->unp, &up)) ==
		    MSGPACK_UNPACK_SUCCESS) {
			if (chan_dispatch(ch, &up.data) == -1) {
				rv = -1;
				goto out;
			}
		}
		if (ret == MSGPACK_UNPACK_PARSE_ERROR ||
		    ret == MSGPACK_UNPACK_NOMEM_ERROR) {
			rv = -1;
			goto out;
		}
		if (msgpack_unpacker_message_size(&ch->unp) > CHAN_MAX_FRAME) {
			log_warnx("%s: incoming frame over %d bytes", ch->name,
			    CHAN_MAX_FRAME);
			rv = -1;
			goto out;
		}
	}
out:
	msgpack_unpacked_destroy(&up);
	return (rv);
}

static int
chan_dispatch(struct chan *ch, const msgpack_object *o)
{
	uint64_t	 type, v;

	if (o->type != MSGPACK_OBJECT_MAP ||
	    frame_get_u64(o, "t", &type) == -1) {
		log_warnx("%s: frame is not a typed map", ch->name);
		return (-1);
	}
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
	ch->frame_cb(ch, (int)type, o, ch->arg);
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

/* Frame building. */

void
frame_begin(struct chan_frame *f, enum chan_type type, size_t nfields)
{
	msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&f->pk, nfields + 1);
	frame_u64(f, "t", type);
}

void
frame_release(struct chan_frame *f)
{
	msgpack_sbuffer_destroy(&f->sb);
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

	pack_cstr(&f->pk, key);
	msgpack_pack_array(&f->pk, n);
	for (i = 0; i < n; i++)
		pack_cstr(&f->pk, v[i]);
}

/* A frame field holding every message of a batch, as an array. */
void
frame_batch(struct chan_frame *f, const char *key, const struct chan_batch *b)
{
	pack_cstr(&f->pk, key);
	msgpack_pack_array(&f->pk, b->n);
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

/* A message already in msg_pack() form: a log record's payload. */
void
batch_add_raw(struct chan_batch *b, const char *packed, size_t len)
{
	msgpack_sbuffer_write(&b->sb, packed, len);
	b->n++;
}

void
batch_clear(struct chan_batch *b)
{
	msgpack_sbuffer_destroy(&b->sb);
	b->n = 0;
}

/* msgpack form of a message: also the payload of a log record. */
void
msg_pack(msgpack_packer *pk, const struct nt_msg *m)
{
	msgpack_pack_map(pk, m->client_id != NULL ? 7 : 6);
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
}

/* Decoding. */

static int
obj_streq(const msgpack_object *o, const char *s)
{
	size_t	 len = strlen(s);

	return (o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
	    memcmp(o->via.str.ptr, s, len) == 0);
}

const msgpack_object *
frame_get(const msgpack_object *map, const char *key)
{
	uint32_t	 i;

	if (map->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	for (i = 0; i < map->via.map.size; i++)
		if (obj_streq(&map->via.map.ptr[i].key, key))
			return (&map->via.map.ptr[i].val);
	return (NULL);
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
	const msgpack_object	*origin, *cid;

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
