/*
 * test_json.c: the wire frames' JSON reader and writer (json.c): RFC 8259
 * as clients write it, integers exact to 2^53 - 1, and nothing accepted
 * that is not JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nodetalk.h"
#include "json.h"

/* Whether s is one JSON object, read as wire.c reads a frame. */
static int
is_object(const char *s)
{
	struct json_iter	 it;
	struct json_val		 k, v;
	int			 rv;

	if (json_object(s, strlen(s), &it) == -1)
		return (0);
	while ((rv = json_member(&it, &k, &v)) == 1)
		;
	return (rv == 0 && json_object_rest(&it) == 0);
}

/* The value of member key of the object s. */
static struct json_val
member(const char *s, const char *key)
{
	struct json_iter	 it;
	struct json_val		 k, v, none;

	memset(&none, 0, sizeof(none));
	assert_int_equal(json_object(s, strlen(s), &it), 0);
	while (json_member(&it, &k, &v) == 1)
		if (json_key_is(&k, key))
			return (v);
	return (none);
}

static void
test_syntax(void **state)
{
	assert_true(is_object("{}"));
	assert_true(is_object(" \t\r\n{ \"a\" : [1, {\"b\": null}, \"x\"] ,"
	    "\"c\":-1.5e+3,\"d\":true,\"e\":false}\n"));
	assert_false(is_object(""));
	assert_false(is_object("[1]"));
	assert_false(is_object("{\"a\":1} x"));		/* trailing bytes */
	assert_false(is_object("{\"a\":1,}"));
	assert_false(is_object("{,}"));
	assert_false(is_object("{\"a\" 1}"));
	assert_false(is_object("{\"a\":01}"));
	assert_false(is_object("{\"a\":1.}"));
	assert_false(is_object("{\"a\":.5}"));
	assert_false(is_object("{\"a\":+1}"));
	assert_false(is_object("{\"a\":tru}"));
	assert_false(is_object("{\"a\":[1,]}"));
	assert_false(is_object("{\"a\":\"x}"));
	assert_false(is_object("{\"a\":\"\x01\"}"));	/* raw control */
	assert_false(is_object("{\"a\":\"\\x\"}"));	/* bad escape */
	assert_false(is_object("{\"a\":\"\\u12\"}"));
	assert_false(is_object("{\"a\":\"\\ud800\"}"));	/* lone surrogates */
	assert_false(is_object("{\"a\":\"\\udc00\"}"));
	assert_false(is_object("{\"a\":\"\\ud800\\u0041\"}"));
	assert_false(is_object("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"));	/* 35 deep */
	assert_true(is_object("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]"
	    "]]]]]]]]]]]]]]]]]]]]]]]}"));		/* 30 deep */
}

static void
test_strings(void **state)
{
	const char	*s = "{\"t\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9"
	    "\\ud83d\\ude00\",\"n\":\"x\\u0000y\",\"\\u0074ype\":\"chat\"}";
	struct json_val	 v;
	char		 buf[64];

	v = member(s, "t");
	assert_int_equal(v.type, JSON_STRING);
	assert_int_equal(json_str(&v, buf), 18);
	assert_string_equal(buf, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
	v = member(s, "n");
	assert_int_equal(json_str(&v, buf), -1);	/* a NUL inside */
	v = member(s, "type");				/* an escaped key */
	assert_int_equal(json_str(&v, buf), 4);
	assert_string_equal(buf, "chat");
}

static void
expect_uint(const char *num, int ok, uint64_t want)
{
	char		 s[128];
	struct json_val	 v;
	uint64_t	 got = 12345;

	snprintf(s, sizeof(s), "{\"n\":%s}", num);
	v = member(s, "n");
	assert_int_equal(json_uint(&v, &got), ok ? 0 : -1);
	if (ok)
		assert_true(got == want);
}

static void
test_integers(void **state)
{
	expect_uint("0", 1, 0);
	expect_uint("17", 1, 17);
	expect_uint("17.0", 1, 17);
	expect_uint("1.7e1", 1, 17);
	expect_uint("170e-1", 1, 17);
	expect_uint("0.0", 1, 0);
	expect_uint("0e9", 1, 0);
	expect_uint("9007199254740991", 1, 9007199254740991ULL);
	expect_uint("9.007199254740991e15", 1, 9007199254740991ULL);
	expect_uint("9007199254740992", 0, 0);	/* 2^53 */
	expect_uint("9007199254740993", 0, 0);	/* read as 2^53 by a double */
	expect_uint("1e16", 0, 0);
	expect_uint("-1", 0, 0);
	expect_uint("-0", 0, 0);
	expect_uint("1.5", 0, 0);
	expect_uint("171e-1", 0, 0);
	expect_uint("1e999999999", 0, 0);
	expect_uint("\"17\"", 0, 0);
	expect_uint("true", 0, 0);
	expect_uint("null", 0, 0);
}

static void
test_writer(void **state)
{
	struct json_out	 o = JSON_OUT_INIT;
	char		*s;
	size_t		 len;

	json_begin(&o);
	json_add_str(&o, "s", "q\"b\\n\nt\t\x01\x7f\xc3\xa9");
	json_add_uint(&o, "u", 9007199254740991ULL);
	json_add_int(&o, "i", -1764000000123LL);
	json_add_bool(&o, "b", 0);
	json_key(&o, "o");
	json_begin(&o);
	json_add_uint(&o, "A", 1);
	json_add_uint(&o, "B", 2);
	json_end(&o);
	json_end(&o);
	s = json_out_take(&o, &len);
	assert_string_equal(s, "{\"s\":\"q\\\"b\\\\n\\nt\\t\\u0001\x7f\xc3\xa9\","
	    "\"u\":9007199254740991,\"i\":-1764000000123,\"b\":false,"
	    "\"o\":{\"A\":1,\"B\":2}}");
	assert_int_equal(len, strlen(s));
	assert_true(is_object(s));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_writer),
	};

	return (cmocka_run_group_tests(tests, NULL, NULL));
}
