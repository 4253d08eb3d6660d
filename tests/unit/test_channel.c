/*
 * test_channel.c: frames survive the trip through a real socketpair, the
 * version handshake is enforced and an oversized frame ends the link.
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
	struct event_base *base;
};

static void
rx_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	struct rx	*rx = arg;

	rx->frames++;
	rx->last_type = type;
	if (type == CH_PUSH) {
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

static void
test_roundtrip(void **state)
{
	struct event_base	*base = event_base_new();
	struct rx		 a, b;
	struct chan		*ca, *cb;
	struct chan_frame	 f;
	struct nt_msg		 m;
	struct nt_have		 h = { NULL, 0 };
	int			 sv[2];

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.base = b.base = base;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ca = chan_new(base, sv[0], "a", rx_frame, rx_lost, &a);
	cb = chan_new(base, sv[1], "b", rx_frame, rx_lost, &b);

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

	frame_begin(&f, CH_PUSH, 6);
	frame_msg(&f, "msg", &m);
	frame_have(&f, "have", &h);
	frame_str(&f, "s", "string");
	frame_u64(&f, "u", UINT64_MAX);
	frame_i64(&f, "i", -5);
	frame_bool(&f, "b", 1);
	assert_int_equal(chan_send(ca, &f), 0);
	event_base_dispatch(base);

	assert_int_equal(b.frames, 2);	/* hello, then ours */
	assert_int_equal(b.last_type, CH_PUSH);
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
		ssize_t n = write(sv[0], buf, len > 65536 ? 65536 : len);
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
	frame_begin(&f, CH_PUSH, 1);
	frame_str(&f, "s", big);
	assert_int_equal(chan_send(c, &f), -1);
	free(big);
	chan_free(c);
	close(sv[1]);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_version_mismatch),
		cmocka_unit_test(test_not_hello_first),
		cmocka_unit_test(test_not_a_map),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_send_over_cap),
	};

	log_setlevel(-1);	/* the failures under test are expected */
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
