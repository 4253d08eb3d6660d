/*
 * test_wire.c: client and peer frames are validated as a client would
 * expect: good frames parse, every kind of mistake gets its error code.
 */
#include <sys/wait.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nodetalk.h"
#include "wire.h"
#include "auth.h"

/* Limits of these tests: a text of 16 bytes, a cluster of three nodes. */
static const struct wire_limits test_limits = { 16, 2 * 3 + WIRE_ORIGIN_SLACK };

static int
parse(const char *s, struct wire_in *w, const char **code)
{
	char	*why = NULL;
	int	 rv;

	rv = wire_parse(s, strlen(s), &test_limits, w, code, &why);
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
	assert_int_equal(w.want_cluster, 0);
	wire_in_clear(&w);
	/* The page asks for "cluster" frames. */
	assert_int_equal(parse("{\"type\":\"join\",\"cluster\":true}", &w,
	    &code), 0);
	assert_int_equal(w.want_cluster, 1);
	wire_in_clear(&w);
	expect_error("{\"type\":\"join\",\"cluster\":\"yes\"}", "bad_field");
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

/* A vector of many origins is refused before it is built. */
static void
test_since_cap(void **state)
{
	struct wire_in	 w;
	const char	*code;
	char		*s, *p;
	size_t		 i, n, cap = test_limits.max_origins;

	for (n = cap; n <= cap + 1; n++) {
		s = p = malloc(64 + n * 32);
		p += sprintf(p, "{\"type\":\"join\",\"since\":{");
		for (i = 0; i < n; i++)
			p += sprintf(p, "%s\"N%zu\":%zu", i ? "," : "", i, i);
		sprintf(p, "}}");
		if (n == cap) {
			assert_int_equal(parse(s, &w, &code), 0);
			assert_int_equal(w.have.n, cap);
			wire_in_clear(&w);
		} else
			expect_error(s, "too_long");
		free(s);
	}
	/* 3,000 origins, as an attacker sent them, and a sync alike. */
	s = p = malloc(64 + 3000 * 32);
	p += sprintf(p, "{\"type\":\"sync\",\"from\":\"B\",\"have\":{");
	for (i = 0; i < 3000; i++)
		p += sprintf(p, "%s\"X%zu\":1", i ? "," : "", i);
	sprintf(p, "}}");
	expect_error(s, "too_long");
	free(s);

	/* Keys are origins: a node id, or a node's "B/seed". */
	assert_int_equal(parse("{\"type\":\"join\",\"since\":{\"B/seed\":3,"
	    "\"A\":1}}", &w, &code), 0);
	assert_int_equal(have_get(&w.have, "B/seed"), 3);
	wire_in_clear(&w);
	expect_error("{\"type\":\"join\",\"since\":{\"a b\":1}}", "bad_field");
	expect_error("{\"type\":\"join\",\"since\":{\"B/x\":1}}", "bad_field");
	expect_error("{\"type\":\"join\",\"since\":{\"/seed\":1}}",
	    "bad_field");
	expect_error("{\"type\":\"join\",\"since\":{\"\":1}}", "bad_field");
}

/* Sorted: any insertion order gives the same vector and every lookup. */
static void
test_have_sorted(void **state)
{
	struct nt_have	 a = { NULL, 0 }, b = { NULL, 0 };
	char		 k[16];
	size_t		 i;

	for (i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "N%zu", (i * 7919) % 200);
		have_set(&a, k, i + 1);
	}
	for (i = 200; i > 0; i--) {
		snprintf(k, sizeof(k), "N%zu", ((i - 1) * 7919) % 200);
		have_set(&b, k, i);
	}
	assert_int_equal(a.n, 200);
	for (i = 1; i < a.n; i++)
		assert_true(strcmp(a.v[i - 1].origin, a.v[i].origin) < 0);
	assert_true(have_equal(&a, &b));
	for (i = 0; i < 200; i++) {
		snprintf(k, sizeof(k), "N%zu", (i * 7919) % 200);
		assert_int_equal(have_get(&a, k), i + 1);
	}
	assert_int_equal(have_get(&a, "nope"), 0);
	have_set(&a, "N5", 999);
	assert_int_equal(have_get(&a, "N5"), 999);
	assert_int_equal(a.n, 200);
	assert_false(have_equal(&a, &b));
	have_clear(&a);
	have_clear(&b);
}

/* Integers leave as exact decimals and only those below 2^53 come in. */
static void
test_exact_integers(void **state)
{
	struct nt_msg	 m;
	struct nt_have	 h = { NULL, 0 };
	struct wire_in	 w;
	const char	*code;
	char		*s;

	memset(&m, 0, sizeof(m));
	strcpy(m.origin, "A");
	m.seq = 9007199254740991ULL;
	m.lamport = 9007199254740991ULL;
	m.ts = 1764000000123LL;
	m.from = "k";
	m.text = "x";
	s = wire_chat(&m, 1);
	assert_non_null(strstr(s, "\"seq\":9007199254740991,"));
	assert_non_null(strstr(s, "\"lamport\":9007199254740991,"));
	assert_non_null(strstr(s, "\"ts\":1764000000123,"));
	assert_null(strstr(s, "e+"));
	assert_int_equal(parse(s, &w, &code), 0);
	assert_int_equal(w.msg.lamport, 9007199254740991ULL);
	wire_in_clear(&w);
	free(s);
	s = wire_ack(&m);
	assert_non_null(strstr(s, "\"lamport\":9007199254740991,"));
	free(s);
	m.lamport = 1234567890123456ULL;	/* 16 digits: "%.15g" loses one */
	s = wire_chat(&m, 0);
	assert_non_null(strstr(s, "\"lamport\":1234567890123456,"));
	free(s);
	have_set(&h, "A", 9007199254740991ULL);
	s = wire_sync("B", &h);
	assert_string_equal(s, "{\"type\":\"sync\",\"from\":\"B\","
	    "\"have\":{\"A\":9007199254740991}}");
	free(s);
	have_clear(&h);

	/* 2^53 would read back as 2^53 + 1 does: refused. */
	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":\"A\","
	    "\"seq\":1,\"lamport\":9007199254740992,\"from\":\"k\","
	    "\"text\":\"hi\"}", "bad_field");
	expect_error("{\"type\":\"chat\",\"replicated\":true,\"origin\":\"A\","
	    "\"seq\":9007199254740992,\"lamport\":1,\"from\":\"k\","
	    "\"text\":\"hi\"}", "bad_field");
	expect_error("{\"type\":\"chat\",\"from\":\"k\",\"text\":\"x\","
	    "\"after\":9007199254740993}", "bad_field");
	expect_error("{\"type\":\"join\",\"since\":{\"A\":9007199254740992}}",
	    "bad_field");
}

/* One set of rules for a chat, whatever its path. */
static void
test_msg_check(void **state)
{
	struct nt_msg	 m;
	const char	*code, *field, *why;

	memset(&m, 0, sizeof(m));
	m.from = "kamlesh";
	m.text = "hello";
	assert_int_equal(msg_check(&m, 5, &code, &field, &why), 0);
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), 0);
	assert_int_equal(msg_check(&m, 4, &code, &field, &why), -1);
	assert_string_equal(code, "too_long");
	assert_string_equal(field, "text");
	m.text = "";
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), -1);
	assert_string_equal(code, "bad_field");
	m.text = NULL;
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), -1);
	assert_string_equal(code, "missing_field");
	m.text = "x";
	m.from = "a\x01";
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), -1);
	assert_string_equal(code, "bad_field");
	assert_string_equal(field, "from");
	m.from = "0123456789012345678901234567890123456789012345678901234567890"
	    "12345";
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), -1);
	assert_string_equal(code, "too_long");
	m.from = "k";
	m.client_id = "";
	assert_int_equal(msg_check(&m, 0, &code, &field, &why), -1);
	assert_string_equal(field, "client_id");

	assert_true(valid_origin("A"));
	assert_true(valid_origin("node-2/seed"));
	assert_false(valid_origin("A/seed/seed"));
	assert_false(valid_origin("A/x"));
	assert_false(valid_origin("/seed"));
	assert_false(valid_origin(""));
}

/* A refusal is logged once per interval, the next says how many were not. */
static void
test_ratelimit(void **state)
{
	struct ratelimit	 rl = { 0, 0 };
	char			 note[RATELIMIT_NOTE] = "junk";

	assert_true(ratelimit_pass(&rl, 1000, note, sizeof(note)));
	assert_string_equal(note, "");
	assert_false(ratelimit_pass(&rl, 1001, note, sizeof(note)));
	assert_false(ratelimit_pass(&rl, 1000 + RATELIMIT_MS - 1, note,
	    sizeof(note)));
	assert_true(ratelimit_pass(&rl, 1000 + RATELIMIT_MS, note,
	    sizeof(note)));
	assert_string_equal(note, " (2 more since the last such line)");
}

/* Mask bytes never repeat, not across calls, not in a forked child. */
static void
test_rng(void **state)
{
	unsigned char	 a[64], b[64], child[64], zero[64];
	int		 fd[2], status;
	pid_t		 pid;

	memset(zero, 0, sizeof(zero));
	rng_bytes(a, sizeof(a));
	rng_bytes(b, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	/* Drain well past one chunk and a rekey, in odd pieces. */
	for (int i = 0; i < 20000; i++)
		rng_bytes(b, 1 + i % 61);
	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		rng_bytes(child, sizeof(child));
		_exit(write(fd[1], child, sizeof(child)) == sizeof(child) ?
		    0 : 1);
	}
	rng_bytes(a, sizeof(a));
	assert_int_equal(read(fd[0], child, sizeof(child)), sizeof(child));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_memory_not_equal(a, child, sizeof(a));
	close(fd[0]);
	close(fd[1]);
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
	str_escape("abcdefgh", buf, 6);	/* plain text cut to fit, NUL too */
	assert_string_equal(buf, "abcde");
	str_escape("a\x7f" "b", buf, sizeof(buf));
	assert_string_equal(buf, "a\\x7fb");
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
		cmocka_unit_test(test_since_cap),
		cmocka_unit_test(test_have_sorted),
		cmocka_unit_test(test_exact_integers),
		cmocka_unit_test(test_msg_check),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_auth),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
