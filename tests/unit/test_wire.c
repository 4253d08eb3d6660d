/*
 * test_wire.c: client and peer frames are validated as a client would
 * expect: good frames parse, every kind of mistake gets its error code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nodetalk.h"
#include "wire.h"
#include "auth.h"

static int
parse(const char *s, struct wire_in *w, const char **code)
{
	char	*why = NULL;
	int	 rv;

	rv = wire_parse(s, strlen(s), 16, w, code, &why);
	if (rv == -1) {
		assert_non_null(why);
		assert_true(strlen(why) > 0);
	}
	free(why);
	return (rv);
}

static void
expect_error(const char *s, const char *code)
{
	struct wire_in	 w;
	const char	*got;

	assert_int_equal(parse(s, &w, &got), -1);
	assert_string_equal(got, code);
}

static void
test_client_chat(void **state)
{
	struct wire_in	 w;
	const char	*code;

	assert_int_equal(parse("{\"type\":\"chat\",\"from\":\"kamlesh\","
	    "\"text\":\"hello\"}", &w, &code), 0);
	assert_int_equal(w.type, WIRE_CHAT);
	assert_int_equal(w.replicated, 0);
	assert_string_equal(w.msg.from, "kamlesh");
	assert_string_equal(w.msg.text, "hello");
	assert_null(w.msg.client_id);
	wire_in_clear(&w);

	assert_int_equal(parse("{\"type\":\"chat\",\"from\":\"k\","
	    "\"text\":\"x\",\"id\":\"6f1c\",\"extra\":[1,2]}", &w, &code), 0);
	assert_string_equal(w.msg.client_id, "6f1c");
	wire_in_clear(&w);
}

static void
test_replicated(void **state)
{
	struct wire_in	 w;
	const char	*code;

	assert_int_equal(parse("{\"type\":\"chat\",\"replicated\":true,"
	    "\"id\":\"A-17\",\"origin\":\"A\",\"seq\":17,\"lamport\":42,"
	    "\"ts\":1764000000123,\"from\":\"k\",\"text\":\"hi\"}", &w,
	    &code), 0);
	assert_int_equal(w.replicated, 1);
	assert_int_equal(w.has_identity, 1);
	assert_string_equal(w.msg.origin, "A");
	assert_int_equal(w.msg.seq, 17);
	assert_int_equal(w.msg.lamport, 42);
	assert_int_equal(w.msg.ts, 1764000000123LL);
	assert_null(w.msg.client_id);	/* "id" is the stored id here */
	wire_in_clear(&w);

	/* The seed's replicated chat carries no identity. */
	assert_int_equal(parse("{\"type\":\"chat\",\"replicated\":true,"
	    "\"from\":\"k\",\"text\":\"hi\"}", &w, &code), 0);
	assert_int_equal(w.has_identity, 0);
	wire_in_clear(&w);

	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":\"A\","
	    "\"from\":\"k\",\"text\":\"hi\"}", "missing_field");
	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":\"A\","
	    "\"seq\":0,\"from\":\"k\",\"text\":\"hi\"}", "bad_field");
	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":\"A\","
	    "\"seq\":3,\"from\":\"k\",\"text\":\"hi\"}", "missing_field");
	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":"
	    "\"A/seed\",\"seq\":1,\"from\":\"k\",\"text\":\"hi\"}", "bad_field");
	expect_error("{\"type\":\"chat\",\"replicated\":\"yes\","
	    "\"from\":\"k\",\"text\":\"hi\"}", "bad_field");
}

static void
test_bad_frames(void **state)
{
	expect_error("{\"type\":\"chat\"", "bad_json");
	expect_error("not json", "bad_json");
	expect_error("[1,2]", "bad_json");
	expect_error("{\"from\":\"k\"}", "missing_field");
	expect_error("{\"type\":7}", "bad_field");
	expect_error("{\"type\":\"dance\"}", "bad_type");
	expect_error("{\"type\":\"chat\",\"from\":\"k\"}", "missing_field");
	expect_error("{\"type\":\"chat\",\"text\":\"x\"}", "missing_field");
	expect_error("{\"type\":\"chat\",\"from\":\"k\",\"text\":5}",
	    "bad_field");
	expect_error("{\"type\":\"chat\",\"from\":\"k\",\"text\":\"\"}",
	    "bad_field");
	expect_error("{\"type\":\"chat\",\"from\":\"\",\"text\":\"x\"}",
	    "bad_field");
	expect_error("{\"type\":\"chat\",\"from\":\"a\\nb\",\"text\":\"x\"}",
	    "bad_field");
	/* max_text is 16 in these tests */
	expect_error("{\"type\":\"chat\",\"from\":\"k\","
	    "\"text\":\"12345678901234567\"}", "too_long");
	expect_error("{\"type\":\"chat\",\"from\":\"k\",\"text\":\"x\","
	    "\"id\":\"" "0123456789012345678901234567890123456789"
	    "01234567890123456789012345\"}", "too_long");
}

static void
test_join_hello_sync(void **state)
{
	struct wire_in	 w;
	const char	*code;

	assert_int_equal(parse("{\"type\":\"join\",\"from\":\"k\","
	    "\"since\":{\"A\":12,\"B\":40}}", &w, &code), 0);
	assert_int_equal(w.type, WIRE_JOIN);
	assert_int_equal(w.has_since, 1);
	assert_int_equal(have_get(&w.have, "A"), 12);
	assert_int_equal(have_get(&w.have, "B"), 40);
	wire_in_clear(&w);
	assert_int_equal(parse("{\"type\":\"join\"}", &w, &code), 0);
	assert_int_equal(w.has_since, 0);
	wire_in_clear(&w);
	expect_error("{\"type\":\"join\",\"since\":{\"A\":-1}}", "bad_field");
	expect_error("{\"type\":\"join\",\"since\":{\"A\":1.5}}", "bad_field");
	expect_error("{\"type\":\"join\",\"since\":[1]}", "bad_field");

	assert_int_equal(parse("{\"type\":\"hello\",\"from\":\"A\","
	    "\"to\":\"B\"}", &w, &code), 0);
	assert_int_equal(w.type, WIRE_HELLO);
	assert_string_equal(w.from, "A");
	assert_string_equal(w.to, "B");
	wire_in_clear(&w);
	expect_error("{\"type\":\"hello\"}", "missing_field");
	expect_error("{\"type\":\"hello\",\"from\":\"a b\"}", "bad_field");

	assert_int_equal(parse("{\"type\":\"sync\",\"from\":\"B\","
	    "\"have\":{\"A\":16}}", &w, &code), 0);
	assert_int_equal(w.type, WIRE_SYNC);
	assert_int_equal(have_get(&w.have, "A"), 16);
	wire_in_clear(&w);
	expect_error("{\"type\":\"sync\",\"from\":\"B\"}", "missing_field");
}

static void
test_builders(void **state)
{
	struct nt_msg	 m, hm;
	struct nt_have	 h = { NULL, 0 };
	struct wire_in	 w;
	const char	*code;
	char		*s;

	memset(&m, 0, sizeof(m));
	strcpy(m.origin, "A");
	m.seq = 17;
	m.lamport = 42;
	m.ts = 1764000000123LL;
	m.from = "kamlesh";
	m.text = "<b>\"hi\"</b>";
	s = wire_chat(&m, 1);
	assert_non_null(strstr(s, "\"id\":\"A-17\""));
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.replicated, 1);
	assert_string_equal(w.msg.text, "<b>\"hi\"</b>");
	assert_int_equal(w.msg.seq, 17);
	wire_in_clear(&w);
	free(s);

	s = wire_ack(&m);
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.type, WIRE_ACK);
	assert_string_equal(w.message, "A-17");
	wire_in_clear(&w);
	free(s);

	have_set(&h, "A", 3);
	s = wire_sync("B", &h);
	assert_string_equal(s, "{\"type\":\"sync\",\"from\":\"B\","
	    "\"have\":{\"A\":3}}");
	free(s);
	have_clear(&h);

	s = wire_joined("A", 2, 0, 1);
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.type, WIRE_JOINED);
	assert_int_equal(w.count, 2);
	assert_int_equal(w.recovered, 0);
	assert_int_equal(w.older, 1);
	wire_in_clear(&w);
	free(s);

	/* A page of history, and its end. */
	memset(&hm, 0, sizeof(hm));
	snprintf(hm.origin, sizeof(hm.origin), "A-b");
	hm.seq = 17;
	hm.lamport = 42;
	s = wire_history(&hm, 50);
	assert_string_equal(s, "{\"type\":\"history\",\"before\":"
	    "{\"origin\":\"A-b\",\"seq\":17,\"lamport\":42},"
	    "\"limit\":50}");
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.type, WIRE_HISTORY);
	assert_int_equal(w.has_before, 1);
	assert_string_equal(w.msg.origin, "A-b");
	assert_int_equal(w.msg.seq, 17);
	assert_int_equal(w.msg.lamport, 42);
	assert_int_equal(w.limit, 50);
	wire_in_clear(&w);
	free(s);
	s = wire_history(NULL, 0);
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.has_before, 0);
	assert_int_equal(w.limit, 0);
	wire_in_clear(&w);
	free(s);
	assert_int_equal(parse("{\"type\":\"history\",\"before\":"
	    "{\"origin\":\"A\",\"seq\":0}}", &w, &code), -1);
	assert_string_equal(code, "bad_field");
	assert_int_equal(parse("{\"type\":\"history\",\"before\":\"A-1\"}",
	    &w, &code), -1);
	assert_string_equal(code, "bad_field");
	s = wire_history_end(3, 0);
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.type, WIRE_HISTORY_END);
	assert_int_equal(w.count, 3);
	assert_int_equal(w.older, 0);
	wire_in_clear(&w);
	free(s);
}

static void
test_utf8(void **state)
{
	assert_true(utf8_valid("h\xc3\xa9llo", 6));
	assert_true(utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(utf8_valid("\xc3", 1));		/* truncated */
	assert_false(utf8_valid("\xc0\xaf", 2));	/* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));/* > U+10FFFF */
	assert_false(utf8_valid("\xff", 1));
}

/* A chat's text in a log line cannot start a line of its own. */
static void
test_escape(void **state)
{
	char	 buf[64];

	str_escape("a\nb\tc'd\\e\x01" "f", buf, sizeof(buf));
	assert_string_equal(buf, "a\\nb\\tc\\'d\\\\e\\x01f");
	str_escape("h\xc3\xa9llo", buf, sizeof(buf));
	assert_string_equal(buf, "h\xc3\xa9llo");
	str_escape("\n\n\n\n", buf, 6);	/* cut at a whole escape */
	assert_string_equal(buf, "\\n\\n");
}

static void
test_auth(void **state)
{
	char		 mac[AUTH_HEX_LEN + 1], mac2[AUTH_HEX_LEN + 1];
	const char	*why = NULL;
	int64_t		 now = 1764000000000LL;

	auth_hello_mac("s3cret", "A", "B", now, mac);
	assert_int_equal(strlen(mac), AUTH_HEX_LEN);
	assert_int_equal(auth_hello_check("s3cret", "A", "B", now, mac, now,
	    0, &why), 0);
	/* Another secret, sender, receiver or time: another MAC. */
	auth_hello_mac("other", "A", "B", now, mac2);
	assert_string_not_equal(mac, mac2);
	assert_int_equal(auth_hello_check("s3cret", "C", "B", now, mac, now,
	    0, &why), -1);
	assert_string_equal(why, "bad signature");
	assert_int_equal(auth_hello_check("s3cret", "A", "C", now, mac, now,
	    0, &why), -1);
	assert_int_equal(auth_hello_check("s3cret", "A", "B", now + 1, mac,
	    now, 0, &why), -1);
	assert_int_equal(auth_hello_check("s3cret", "A", "B", now, NULL, now,
	    0, &why), -1);
	assert_string_equal(why, "hello is not signed");
	/* Too old, and replayed. */
	assert_int_equal(auth_hello_check("s3cret", "A", "B", now, mac,
	    now + AUTH_WINDOW_MS + 1, 0, &why), -1);
	assert_int_equal(auth_hello_check("s3cret", "A", "B", now, mac, now,
	    now, &why), -1);
	assert_string_equal(why, "hello replayed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_chat),
		cmocka_unit_test(test_replicated),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_join_hello_sync),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_auth),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
