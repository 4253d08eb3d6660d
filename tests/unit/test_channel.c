/*
 * test_channel.c: frames survive the trip through a real socketpair, the
 * version handshake is enforced and an oversized frame ends the link.
 * Every frame type is built with its declared fields and read back; a
 * frame with a key twice, a required key missing or of the wrong type,
 * or a type nobody declared, ends the link.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "nodetalk.h"
#include "channel.h"
#include "log.h"

struct rx {
	int		 frames;
	int		 last_type;
	struct nt_msg	 msg;
	struct nt_have	 have;
	char		*str;
	uint64_t	 u;
	int64_t		 i;
	int		 b;
	int		 lost;
	uint64_t	 reqs[8];	/* CH_STATUS frames' req, in order */
	int		 nreqs;
	struct event_base *base;
};

static void
rx_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	struct rx	*rx = arg;

	rx->frames++;
	rx->last_type = type;
	if (type == CH_STATUS && rx->nreqs < 8)
		frame_get_u64(o, "req", &rx->reqs[rx->nreqs++]);
	if (type == CH_ACK) {
		assert_int_equal(frame_get_msg(o, "msg", &rx->msg), 0);
		assert_int_equal(frame_get_have(o, "have", &rx->have), 0);
		rx->str = frame_get_str(o, "s");
		assert_int_equal(frame_get_u64(o, "u", &rx->u), 0);
		assert_int_equal(frame_get_i64(o, "i", &rx->i), 0);
		assert_int_equal(frame_get_bool(o, "b", &rx->b), 0);
		assert_int_equal(frame_get_u64(o, "missing", &rx->u), -1);
		event_base_loopbreak(rx->base);
	}
}

static void
rx_lost(struct chan *ch, const char *why, void *arg)
{
	struct rx	*rx = arg;

	rx->lost = 1;
	event_base_loopbreak(rx->base);
}

static void
run_for(struct event_base *base, int ms)
{
	struct timeval	 tv = { 0, ms * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Two channels on a socketpair, each frame counted in a or b by fn. */
static void
chan_pair(struct event_base *base, chan_frame_cb fn, struct rx *a,
    struct rx *b, struct chan **ca, struct chan **cb)
{
	int	 sv[2];

	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	a->base = b->base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*ca = chan_new(base, sv[0], "a", fn, rx_lost, a);
	*cb = chan_new(base, sv[1], "b", fn, rx_lost, b);
}

static void
test_roundtrip(void **state)
{
	struct event_base	*base = event_base_new();
	struct rx		 a, b;
	struct chan		*ca, *cb;
	struct chan_frame	 f;
	struct nt_msg		 m;
	struct nt_have		 h = { NULL, 0 };

	chan_pair(base, rx_frame, &a, &b, &ca, &cb);

	memset(&m, 0, sizeof(m));
	strcpy(m.origin, "A");
	m.seq = 17;
	m.lamport = 42;
	m.ts = 1764000000123LL;
	m.from = "kamlesh";
	m.text = "h\xc3\xa9llo";
	m.client_id = "cid-1";
	have_set(&h, "A", 16);
	have_set(&h, "B", 40);

	frame_begin(&f, CH_ACK, 7);
	frame_u64(&f, "conn", 3);
	frame_msg(&f, "msg", &m);
	frame_have(&f, "have", &h);
	frame_str(&f, "s", "string");
	frame_u64(&f, "u", UINT64_MAX);
	frame_i64(&f, "i", -5);
	frame_bool(&f, "b", 1);
	assert_int_equal(chan_send(ca, &f), 0);
	event_base_dispatch(base);

	assert_int_equal(b.frames, 2);	/* hello, then ours */
	assert_int_equal(b.last_type, CH_ACK);
	assert_string_equal(b.msg.origin, "A");
	assert_int_equal(b.msg.seq, 17);
	assert_int_equal(b.msg.lamport, 42);
	assert_int_equal(b.msg.ts, 1764000000123LL);
	assert_string_equal(b.msg.from, "kamlesh");
	assert_string_equal(b.msg.text, "h\xc3\xa9llo");
	assert_string_equal(b.msg.client_id, "cid-1");
	assert_int_equal(have_get(&b.have, "A"), 16);
	assert_int_equal(have_get(&b.have, "B"), 40);
	assert_int_equal(have_get(&b.have, "C"), 0);
	assert_string_equal(b.str, "string");
	assert_true(b.u == UINT64_MAX);
	assert_int_equal(b.i, -5);
	assert_int_equal(b.b, 1);
	assert_int_equal(b.lost, 0);

	msg_clear(&b.msg);
	have_clear(&b.have);
	have_clear(&h);
	free(b.str);
	chan_free(ca);
	run_for(base, 50);
	assert_int_equal(b.lost, 1);	/* EOF is reported */
	chan_free(cb);
	event_base_free(base);
}

static size_t	feed_piece = 65536;	/* bytes a write(2) at most */

/* Raw bytes written to one end, read by a chan at the other. */
static struct rx *
feed_raw(const void *buf, size_t len, int with_hello)
{
	static struct rx	 rx;
	struct event_base	*base = event_base_new();
	struct chan		*c;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	int			 sv[2];

	memset(&rx, 0, sizeof(rx));
	rx.base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = chan_new(base, sv[1], "t", rx_frame, rx_lost, &rx);
	if (with_hello) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 2);
		msgpack_pack_str_with_body(&pk, "t", 1);
		msgpack_pack_uint64(&pk, CH_HELLO);
		msgpack_pack_str_with_body(&pk, "v", 1);
		msgpack_pack_uint64(&pk, CHAN_VERSION);
		assert_int_equal(write(sv[0], sb.data, sb.size), (ssize_t)sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	/*
	 * The reader runs in this thread: a write that would block (the
	 * socket buffer full, the loop slow on a busy machine) must wait for
	 * it, not hang the test.
	 */
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	while (len > 0) {
		ssize_t n = write(sv[0], buf, len > feed_piece ? feed_piece :
		    len);
		assert_true(n > 0 || (n == -1 && errno == EAGAIN));
		if (n > 0) {
			buf = (const char *)buf + n;
			len -= n;
		}
		run_for(base, 1);
		if (rx.lost)
			break;
	}
	run_for(base, 50);
	chan_free(c);
	close(sv[0]);
	event_base_free(base);
	return (&rx);
}

/*
 * Two frames that arrive a few bytes at a time, the walk for their end
 * resumed after each read: each is handed out once, whole, and the second
 * is found after the first.
 */
static void
test_frames_in_pieces(void **state)
{
	struct chan_frame	 f;
	struct nt_msg		 m;
	struct nt_have		 h = { NULL, 0 };
	msgpack_sbuffer		 all;
	struct rx		*rx;

	memset(&m, 0, sizeof(m));
	strcpy(m.origin, "B");
	m.seq = 9;
	m.lamport = 70000;
	m.ts = 5;
	m.from = "a sender of some length, past a fixstr";
	m.text = "a text of more than thirty-one bytes, a str8";
	have_set(&h, "A", 1);
	msgpack_sbuffer_init(&all);
	frame_begin(&f, CH_STATUS, 1);
	frame_u64(&f, "req", 1);
	msgpack_sbuffer_write(&all, f.sb.data, f.sb.size);
	frame_release(&f);
	frame_begin(&f, CH_ACK, 7);
	frame_u64(&f, "conn", 3);
	frame_msg(&f, "msg", &m);
	frame_have(&f, "have", &h);
	frame_str(&f, "s", "pieces");
	frame_u64(&f, "u", 300);
	frame_i64(&f, "i", -70000);
	frame_bool(&f, "b", 0);
	msgpack_sbuffer_write(&all, f.sb.data, f.sb.size);
	frame_release(&f);

	feed_piece = 3;
	rx = feed_raw(all.data, all.size, 1);
	feed_piece = 65536;
	assert_int_equal(rx->lost, 0);
	assert_int_equal(rx->frames, 3);	/* hello, status, ack */
	assert_int_equal(rx->last_type, CH_ACK);
	assert_int_equal(rx->msg.lamport, 70000);
	assert_string_equal(rx->msg.text, m.text);
	assert_string_equal(rx->str, "pieces");
	assert_int_equal(rx->i, -70000);
	msg_clear(&rx->msg);
	have_clear(&rx->have);
	free(rx->str);
	have_clear(&h);
	msgpack_sbuffer_destroy(&all);
}

static void
status_frame(struct chan_frame *f, uint64_t req)
{
	frame_begin(f, CH_STATUS, 1);
	frame_u64(f, "req", req);
}

/*
 * Frames queued in a turn go out together, and before anything sent
 * after them: the reader sees them one by one, in order.
 */
static void
test_queue_order(void **state)
{
	struct event_base	*base = event_base_new();
	struct rx		 a, b;
	struct chan		*ca, *cb;
	struct chan_frame	 f;
	int			 i;

	chan_pair(base, rx_frame, &a, &b, &ca, &cb);
	status_frame(&f, 1);
	assert_int_equal(chan_queue(ca, &f), 0);
	status_frame(&f, 2);
	assert_int_equal(chan_queue(ca, &f), 0);
	assert_true(chan_pending(ca) > 0);
	status_frame(&f, 3);
	assert_int_equal(chan_send(ca, &f), 0);	/* after 1 and 2 */
	status_frame(&f, 4);
	assert_int_equal(chan_queue(ca, &f), 0);
	status_frame(&f, 5);
	assert_int_equal(chan_queue(ca, &f), 0);
	run_for(base, 100);
	assert_int_equal(b.lost, 0);
	assert_int_equal(b.frames, 6);		/* hello, then five */
	assert_int_equal(b.nreqs, 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(b.reqs[i], i + 1);
	chan_free(ca);
	chan_free(cb);
	event_base_free(base);
}

/* A batch is taken apart once: one inside another ends the link. */
static void
test_batch_in_batch(void **state)
{
	/* {"t":106,"frames":[{"t":210,"req":7},{"t":106,"frames":[]}]} */
	const unsigned char	 f[] = { 0x82, 0xa1, 't', 0x6a,
	    0xa6, 'f', 'r', 'a', 'm', 'e', 's', 0x92,
	    0x82, 0xa1, 't', 0xcc, 0xd2, 0xa3, 'r', 'e', 'q', 0x07,
	    0x82, 0xa1, 't', 0x6a, 0xa6, 'f', 'r', 'a', 'm', 'e', 's', 0x90 };
	struct rx		*rx = feed_raw(f, sizeof(f), 1);

	/* {"t":106,"frames":1} */
	const unsigned char	 g[] = { 0x82, 0xa1, 't', 0x6a,
	    0xa6, 'f', 'r', 'a', 'm', 'e', 's', 0x01 };

	assert_int_equal(rx->frames, 2);	/* the hello, req 7 */
	assert_int_equal(rx->nreqs, 1);
	assert_int_equal(rx->reqs[0], 7);
	assert_int_equal(rx->lost, 1);
	rx = feed_raw(g, sizeof(g), 1);
	assert_int_equal(rx->frames, 1);
	assert_int_equal(rx->lost, 1);
}

static void
test_version_mismatch(void **state)
{
	/* {"t":100,"v":99} */
	const unsigned char	 bad[] = { 0x82, 0xa1, 't', 0x64, 0xa1, 'v',
	    0x63 };
	struct rx		*rx = feed_raw(bad, sizeof(bad), 0);

	assert_int_equal(rx->lost, 1);
	assert_int_equal(rx->frames, 0);
}

static void
test_not_hello_first(void **state)
{
	/* {"t":205} before any hello */
	const unsigned char	 f[] = { 0x81, 0xa1, 't', 0xcc, 205 };
	struct rx		*rx = feed_raw(f, sizeof(f), 0);

	assert_int_equal(rx->lost, 1);
	assert_int_equal(rx->frames, 0);
}

static void
test_not_a_map(void **state)
{
	const unsigned char	 f[] = { 0x93, 1, 2, 3 };
	struct rx		*rx = feed_raw(f, sizeof(f), 1);

	assert_int_equal(rx->frames, 1);	/* the hello */
	assert_int_equal(rx->lost, 1);
}

static void
test_oversized(void **state)
{
	/* A str32 header announcing 2 MiB, then the bytes, never finished. */
	size_t		 len = CHAN_MAX_FRAME + 4096;
	unsigned char	*buf = calloc(1, len);
	struct rx	*rx;

	buf[0] = 0x81;
	buf[1] = 0xa1;
	buf[2] = 't';
	buf[3] = 0xdb;
	buf[4] = 0x00; buf[5] = 0x20; buf[6] = 0x00; buf[7] = 0x00;
	rx = feed_raw(buf, len, 1);
	assert_int_equal(rx->lost, 1);
	assert_int_equal(rx->frames, 1);
	free(buf);
}

static void
test_send_over_cap(void **state)
{
	struct event_base	*base = event_base_new();
	struct chan_frame	 f;
	struct chan		*c;
	char			*big;
	struct rx		 rx;
	int			 sv[2];

	memset(&rx, 0, sizeof(rx));
	rx.base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = chan_new(base, sv[0], "t", rx_frame, rx_lost, &rx);
	big = calloc(1, CHAN_MAX_FRAME + 1);
	memset(big, 'x', CHAN_MAX_FRAME);
	frame_begin(&f, CH_CLUSTER, 1);
	frame_str(&f, "json", big);
	assert_int_equal(chan_send(c, &f), -1);
	free(big);
	chan_free(c);
	close(sv[1]);
	event_base_free(base);
}

/*
 * Where a frame ends is found before msgpack-c sees it: every prefix of a
 * frame needs more bytes, the whole frame is its exact size, and a
 * container's claim costs nothing until its bytes are here.
 */
static void
test_frame_len(void **state)
{
	const unsigned char	 claim[] = { 0xdf, 0x03, 0x00, 0x00, 0x00 };
	const unsigned char	 never[] = { 0x81, 0xa1, 't', 0xc1 };
	struct chan_frame	 f;
	struct nt_msg		 m;
	struct nt_have		 h = { NULL, 0 };
	size_t			 i;

	memset(&m, 0, sizeof(m));
	strcpy(m.origin, "A");
	m.seq = 17;
	m.lamport = 9007199254740991ULL;
	m.ts = -1;
	m.from = "kamlesh";
	m.text = "a text of more than thirty-one bytes, a str8";
	m.client_id = "c";
	have_set(&h, "A", 1);
	have_set(&h, "B", 70000);
	frame_begin(&f, CH_ACK, 3);
	frame_msg(&f, "msg", &m);
	frame_have(&f, "have", &h);
	frame_bool(&f, "b", 1);
	assert_int_equal(chan_frame_len(f.sb.data, f.sb.size), f.sb.size);
	for (i = 0; i < f.sb.size; i++)
		assert_int_equal(chan_frame_len(f.sb.data, i), 0);
	frame_release(&f);
	have_clear(&h);

	assert_int_equal(chan_frame_len(claim, sizeof(claim)), 0);
	assert_int_equal(chan_frame_len(never, sizeof(never)), -1);
}

/* A value of field type t, under key. */
static void
put_field(struct chan_frame *f, const char *key, char t, int wrong)
{
	static const char	*strv[] = { "B", "C" };
	struct nt_have		 h = { NULL, 0 };
	struct nt_msg		 m;

	if (wrong) {		/* a type no field accepts where t is wanted */
		if (t == 's')
			frame_u64(f, key, 1);
		else
			frame_str(f, key, "wrong");
		return;
	}
	switch (t) {
	case 'u':
		frame_u64(f, key, 7);
		break;
	case 'i':
		frame_i64(f, key, -7);
		break;
	case 's':
		frame_str(f, key, "x");
		break;
	case 'b':
		frame_bool(f, key, 1);
		break;
	case 'm':
		memset(&m, 0, sizeof(m));
		strcpy(m.origin, "A");
		m.seq = 1;
		m.lamport = 1;
		m.from = "a";
		m.text = "b";
		frame_msg(f, key, &m);
		break;
	case 'h':
		have_set(&h, "A", 3);
		frame_have(f, key, &h);
		have_clear(&h);
		break;
	case 'v':
		frame_strv(f, key, strv, 2);
		break;
	default:
		fail_msg("unknown field type %c", t);
	}
}

/*
 * A frame of type with every declared field; skip, dup and wrong are the
 * index of a field to leave out, to write twice or to give the wrong
 * type (-1: none).
 */
static void
build_typed(struct chan_frame *f, int type, int skip, int dup, int wrong)
{
	const char *const	*fields = chan_type_fields(type);
	char			 key[64];
	const char		*colon;
	size_t			 n, i;

	for (n = 0; fields[n] != NULL; n++)
		;
	frame_begin(f, type, n - (skip >= 0) + (dup >= 0));
	for (i = 0; i < n; i++) {
		colon = strchr(fields[i], ':');
		snprintf(key, sizeof(key), "%.*s", (int)(colon - fields[i]),
		    fields[i]);
		if ((int)i == skip)
			continue;
		put_field(f, key, colon[1], (int)i == wrong);
		if ((int)i == dup)
			put_field(f, key, colon[1], 0);
	}
}

static void
rx_count(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	struct rx	*rx = arg;

	rx->frames++;
	rx->last_type = type;
	if (type == CH_STATUS && rx->nreqs < 8)
		frame_get_u64(o, "req", &rx->reqs[rx->nreqs++]);
	if (rx->frames == 2)	/* the hello, then the frame */
		event_base_loopbreak(rx->base);
}

/* One frame through a fresh channel pair: 1 when it arrived as type. */
static int
send_one(struct chan_frame *f, int type)
{
	struct event_base	*base = event_base_new();
	struct chan		*ca, *cb;
	struct rx		 a, b;
	int			 ok;

	chan_pair(base, rx_count, &a, &b, &ca, &cb);
	assert_int_equal(chan_send(ca, f), 0);
	run_for(base, 5000);	/* the frame or the loss ends it */
	ok = b.frames == 2 && b.last_type == type && !b.lost;
	if (!ok)
		assert_true(b.lost);	/* refused means the link ends */
	chan_free(ca);
	chan_free(cb);
	event_base_free(base);
	return (ok);
}

static int
nfields(int type)
{
	const char *const	*fields = chan_type_fields(type);
	int			 n;

	for (n = 0; fields[n] != NULL; n++)
		;
	return (n);
}

static void
test_every_type(void **state)
{
	struct chan_frame	 f;
	const char		*f0;
	int			 type, n, i, types = 0;

	for (type = 0; type < 1000; type++) {
		/* A batch is never handed out: test_queue_order. */
		if (chan_type_fields(type) == NULL || type == CH_BATCH)
			continue;
		types++;
		assert_non_null(chan_type_name(type));
		build_typed(&f, type, -1, -1, -1);
		if (!send_one(&f, type))
			fail_msg("a %s frame with its fields was refused",
			    chan_type_name(type));
		n = nfields(type);
		for (i = 0; i < n; i++) {
			f0 = chan_type_fields(type)[i];
			build_typed(&f, type, -1, i, -1);
			if (send_one(&f, type))
				fail_msg("%s frame with %s twice was taken",
				    chan_type_name(type), f0);
			build_typed(&f, type, -1, -1, i);
			if (send_one(&f, type))
				fail_msg("%s frame with %s of the wrong type "
				    "was taken", chan_type_name(type), f0);
			build_typed(&f, type, i, -1, -1);
			if (send_one(&f, type) ==
			    (f0[strlen(f0) - 1] != '?'))
				fail_msg("%s frame without %s: wrong answer",
				    chan_type_name(type), f0);
		}
	}
	/* Every type of channel.h's enum. */
	assert_int_equal(types, 36);
}

/* The bug this guards against: a frame's type key "t" written again. */
static void
test_type_key_twice(void **state)
{
	struct chan_frame	 f;

	build_typed(&f, CH_CHAT, -1, -1, -1);
	assert_true(send_one(&f, CH_CHAT));
	frame_begin(&f, CH_CHAT, 7);
	frame_u64(&f, "conn", 1);
	frame_i64(&f, "t", 12345);
	frame_i64(&f, "t_us", 12345);
	frame_u64(&f, "after", 0);
	frame_str(&f, "from", "a");
	frame_str(&f, "text", "b");
	frame_str(&f, "cid", "c");
	assert_false(send_one(&f, CH_CHAT));
}

static void
test_unknown_type(void **state)
{
	struct chan_frame	 f;

	assert_null(chan_type_fields(999));
	frame_begin(&f, 999, 0);
	assert_false(send_one(&f, 999));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_frames_in_pieces),
		cmocka_unit_test(test_queue_order),
		cmocka_unit_test(test_batch_in_batch),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_not_hello_first),
		cmocka_unit_test(test_not_a_map),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_send_over_cap),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_type_key_twice),
		cmocka_unit_test(test_unknown_type),
	};

	log_setlevel(-1);	/* the failures under test are expected */
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
