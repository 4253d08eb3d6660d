/*
 * json.c: reading and writing the wire frames' JSON (RFC 8259), by hand.
 *
 * cJSON built a tree of nodes per frame (two allocations per member), read
 * every number through strtod() and printed it through "%1.15g": 2^53
 * left as 9.00719925474099e+15, and 2^53 + 1 came in as 2^53.  The frames
 * are flat, so the reader walks the text once and hands out spans of it,
 * and integers are read and written as decimal digits, exactly.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "json.h"

/* Unknown members may nest; a frame that nests deeper is not ours. */
#define JSON_MAX_DEPTH	32

static const char *scan_value(const char *, const char *, int,
		    struct json_val *);

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return (p);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* Four hex digits at p (there are at least four bytes): 0..0xffff, or -1. */
static long
hex4(const char *p)
{
	long	 v = 0;
	int	 i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hexval(p[i])) == -1)
			return (-1);
		v = v << 4 | h;
	}
	return (v);
}

/*
 * A \uXXXX escape at p: the byte after it, or NULL.  A surrogate must be
 * a high one followed by a low one, as UTF-16 has them: a lone one stands
 * for no character and could not be written as UTF-8.
 */
static const char *
scan_u(const char *p, const char *end)
{
	long	 hi, lo;

	if (end - p < 6 || (hi = hex4(p + 2)) == -1 ||
	    (hi >= 0xdc00 && hi <= 0xdfff))
		return (NULL);
	if (hi < 0xd800 || hi > 0xdbff)
		return (p + 6);
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
	    (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
		return (NULL);
	return (p + 12);
}

/* A string from just after its opening quote: the byte after its close. */
static const char *
scan_string(const char *p, const char *end, struct json_val *v)
{
	v->type = JSON_STRING;
	v->p = p;
	v->escaped = 0;
	while (p < end) {
		if (*p == '"') {
			v->len = (size_t)(p - v->p);
			return (p + 1);
		}
		if ((unsigned char)*p < 0x20)
			return (NULL);
		if (*p == '\\') {
			v->escaped = 1;
			if (++p >= end)
				return (NULL);
			if (*p == 'u') {
				if ((p = scan_u(p - 1, end)) == NULL)
					return (NULL);
				continue;
			} else if (strchr("\"\\/bfnrt", *p) == NULL ||
			    *p == '\0')
				return (NULL);
		}
		p++;
	}
	return (NULL);
}

static const char *
scan_digits(const char *p, const char *end)
{
	const char	*s = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return (p > s ? p : NULL);
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static const char *
scan_number(const char *p, const char *end, struct json_val *v)
{
	v->type = JSON_NUMBER;
	v->p = p;
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if ((p = scan_digits(p, end)) == NULL)
		return (NULL);
	if (p < end && *p == '.' && (p = scan_digits(p + 1, end)) == NULL)
		return (NULL);
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((p = scan_digits(p, end)) == NULL)
			return (NULL);
	}
	v->len = (size_t)(p - v->p);
	return (p);
}

static const char *
scan_word(const char *p, const char *end, const char *w, enum json_type t,
    struct json_val *v)
{
	size_t	 n = strlen(w);

	if ((size_t)(end - p) < n || memcmp(p, w, n) != 0)
		return (NULL);
	v->type = t;
	v->p = p;
	v->len = n;
	return (p + n);
}

/* An object or array from its opening bracket: the byte after its close. */
static const char *
scan_container(const char *p, const char *end, int depth, struct json_val *v)
{
	struct json_val	 k, x;
	char		 close = *p == '{' ? '}' : ']';
	int		 n = 0;

	v->type = close == '}' ? JSON_OBJECT : JSON_ARRAY;
	v->p = p;
	if (depth >= JSON_MAX_DEPTH)
		return (NULL);
	for (p = skip_ws(p + 1, end); p < end && *p != close; n++) {
		if (n > 0 && (*p != ',' || (p = skip_ws(p + 1, end)) >= end))
			return (NULL);
		if (close == '}') {
			if (*p != '"' || (p = scan_string(p + 1, end,
			    &k)) == NULL)
				return (NULL);
			if ((p = skip_ws(p, end)) >= end || *p != ':')
				return (NULL);
			p = skip_ws(p + 1, end);
		}
		if ((p = scan_value(p, end, depth + 1, &x)) == NULL)
			return (NULL);
		p = skip_ws(p, end);
	}
	if (p >= end)
		return (NULL);
	v->len = (size_t)(p + 1 - v->p);
	return (p + 1);
}

static const char *
scan_value(const char *p, const char *end, int depth, struct json_val *v)
{
	memset(v, 0, sizeof(*v));
	if (p >= end)
		return (NULL);
	switch (*p) {
	case '"':
		return (scan_string(p + 1, end, v));
	case '{':
	case '[':
		return (scan_container(p, end, depth, v));
	case 't':
		return (scan_word(p, end, "true", JSON_TRUE, v));
	case 'f':
		return (scan_word(p, end, "false", JSON_FALSE, v));
	case 'n':
		return (scan_word(p, end, "null", JSON_NULL, v));
	default:
		return (scan_number(p, end, v));
	}
}

/*
 * The members are checked as they are read, so a frame is walked once;
 * json_object_rest() then checks that nothing follows the object.
 */
int
json_object(const char *buf, size_t len, struct json_iter *it)
{
	const char	*end = buf + len, *p = skip_ws(buf, end);

	if (p >= end || *p != '{')
		return (-1);
	it->p = p + 1;
	it->end = end;
	it->n = 0;
	return (0);
}

int
json_object_rest(const struct json_iter *it)
{
	return (skip_ws(it->p, it->end) == it->end ? 0 : -1);
}

void
json_object_val(const struct json_val *v, struct json_iter *it)
{
	it->p = v->p + 1;
	it->end = v->p + v->len;
	it->n = 0;
}

int
json_member(struct json_iter *it, struct json_val *key, struct json_val *val)
{
	const char	*p = skip_ws(it->p, it->end), *end = it->end;

	if (p >= end)
		return (-1);
	if (*p == '}') {
		it->p = p + 1;
		return (0);
	}
	if (it->n > 0) {
		if (*p != ',')
			return (-1);
		p = skip_ws(p + 1, end);
	}
	if (p >= end || *p != '"' || (p = scan_string(p + 1, end,
	    key)) == NULL)
		return (-1);
	if ((p = skip_ws(p, end)) >= end || *p != ':')
		return (-1);
	if ((p = scan_value(skip_ws(p + 1, end), end, 1, val)) == NULL)
		return (-1);
	it->p = p;
	it->n++;
	return (1);
}

/* The UTF-8 of a code point: its length. */
static int
utf8_put(unsigned long c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return (1);
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return (2);
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | (c >> 6 & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return (3);
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3f));
	out[2] = (char)(0x80 | (c >> 6 & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return (4);
}

/* \uXXXX at p, maybe a pair (checked by scan_u): the bytes it takes. */
static int
unescape_u(const char *p, unsigned long *c)
{
	long	 hi = hex4(p + 2);

	if (hi < 0xd800 || hi > 0xdbff) {
		*c = (unsigned long)hi;
		return (6);
	}
	*c = 0x10000 + ((unsigned long)(hi - 0xd800) << 10) +
	    (unsigned long)(hex4(p + 8) - 0xdc00);
	return (12);
}

ssize_t
json_str(const struct json_val *v, char *out)
{
	static const char	 from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char		*p = v->p, *end = v->p + v->len;
	unsigned long		 c;
	size_t			 o = 0;
	int			 n;

	/* scan_string let no raw byte below 0x20 through, NUL included. */
	if (!v->escaped) {
		memcpy(out, p, v->len);
		out[v->len] = '\0';
		return ((ssize_t)v->len);
	}
	while (p < end) {
		if (*p != '\\') {
			out[o++] = *p++;
			continue;
		}
		if (p[1] != 'u') {
			out[o++] = to[strchr(from, p[1]) - from];
			p += 2;
			continue;
		}
		n = unescape_u(p, &c);
		if (c == 0)
			return (-1);
		o += (size_t)utf8_put(c, out + o);
		p += n;
	}
	out[o] = '\0';
	return ((ssize_t)o);
}

int
json_key_is(const struct json_val *k, const char *s)
{
	char	 buf[64];
	size_t	 n = strlen(s);

	if (!k->escaped)
		return (k->len == n && memcmp(k->p, s, n) == 0);
	if (k->len >= sizeof(buf) || json_str(k, buf) != (ssize_t)n)
		return (0);
	return (memcmp(buf, s, n) == 0);
}

/*
 * The exact value of a number, as digits and a power of ten: "12.50e1"
 * is 1250 x 10^-1.  Only a whole, non-negative result up to
 * JSON_UINT_MAX is taken.
 */
int
json_uint(const struct json_val *v, uint64_t *out)
{
	const char	*p = v->p, *end = v->p + v->len;
	char		 digits[32];
	size_t		 nd = 0;
	long		 exp = 0, e = 0;
	int		 esign = 1;
	uint64_t	 r = 0;
	size_t		 i;

	if (v->type != JSON_NUMBER || p >= end || *p == '-')
		return (-1);
	for (; p < end && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.') {
			exp = 1;		/* digits from here are fractional */
			continue;
		}
		if (nd == 0 && *p == '0' && !exp)
			continue;		/* leading zeros */
		if (nd == sizeof(digits))
			return (-1);
		digits[nd++] = *p;
		if (exp)
			exp++;
	}
	exp = exp > 0 ? -(exp - 1) : 0;
	if (p < end) {
		p++;
		if (*p == '+' || *p == '-')
			esign = *p++ == '-' ? -1 : 1;
		for (; p < end; p++) {
			if (e > 1000)
				return (-1);
			e = e * 10 + (*p - '0');
		}
		exp += esign * e;
	}
	/* Fractional digits must be zeros that the exponent cannot use. */
	while (exp < 0 && nd > 0 && digits[nd - 1] == '0') {
		nd--;
		exp++;
	}
	if (nd == 0) {
		*out = 0;
		return (0);
	}
	if (exp < 0 || nd + (size_t)exp > 16)
		return (-1);
	for (i = 0; i < nd; i++)
		r = r * 10 + (uint64_t)(digits[i] - '0');
	for (; exp > 0; exp--)
		r *= 10;
	if (r > JSON_UINT_MAX)
		return (-1);
	*out = r;
	return (0);
}

/* Writing. */

static void
out_grow(struct json_out *o, size_t more)
{
	size_t	 cap = o->cap > 0 ? o->cap : 256;

	if (o->len + more + 1 <= o->cap)
		return;
	while (o->len + more + 1 > cap)
		cap *= 2;
	o->buf = xreallocarray(o->buf, 1, cap);
	o->cap = cap;
}

void
json_out_reset(struct json_out *o)
{
	o->len = 0;
	o->first = 1;
}

void
json_out_free(struct json_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

char *
json_out_take(struct json_out *o, size_t *len)
{
	char	*s;

	out_grow(o, 0);
	o->buf[o->len] = '\0';
	s = o->buf;
	if (len != NULL)
		*len = o->len;
	memset(o, 0, sizeof(*o));
	return (s);
}

/* The text is NUL-terminated only when handed over (json_out_take). */
void
json_raw(struct json_out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap)
		out_grow(o, n);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Decimal digits of v, at the end of buf[24]: where they start. */
static char *
u64_digits(uint64_t v, char *buf)
{
	char	*p = buf + 24;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return (p);
}

void
json_begin(struct json_out *o)
{
	json_raw(o, "{", 1);
	o->first = 1;
}

void
json_end(struct json_out *o)
{
	json_raw(o, "}", 1);
	o->first = 0;
}

/* A string in quotes; runs that need no escape are copied whole. */
void
json_string(struct json_out *o, const char *s)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s, *run;
	char			 e[8];
	size_t			 n;

	json_raw(o, "\"", 1);
	for (;;) {
		for (run = p; *p >= 0x20 && *p != '"' && *p != '\\'; p++)
			;
		if (p > run)
			json_raw(o, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		e[0] = '\\';
		n = 2;
		switch (*p) {
		case '"': e[1] = '"'; break;
		case '\\': e[1] = '\\'; break;
		case '\b': e[1] = 'b'; break;
		case '\f': e[1] = 'f'; break;
		case '\n': e[1] = 'n'; break;
		case '\r': e[1] = 'r'; break;
		case '\t': e[1] = 't'; break;
		default:
			memcpy(e + 1, "u00", 3);
			e[4] = hex[*p >> 4];
			e[5] = hex[*p & 0xf];
			n = 6;
			break;
		}
		json_raw(o, e, n);
		p++;
	}
	json_raw(o, "\"", 1);
}

void
json_key(struct json_out *o, const char *key)
{
	if (!o->first)
		json_raw(o, ",", 1);
	o->first = 0;
	json_string(o, key);
	json_raw(o, ":", 1);
}

void
json_add_str(struct json_out *o, const char *key, const char *s)
{
	json_key(o, key);
	json_string(o, s);
}

void
json_add_uint(struct json_out *o, const char *key, uint64_t v)
{
	char	 buf[24], *p;

	json_key(o, key);
	p = u64_digits(v, buf);
	json_raw(o, p, (size_t)(buf + sizeof(buf) - p));
}

void
json_add_int(struct json_out *o, const char *key, int64_t v)
{
	char	 buf[24], *p;

	json_key(o, key);
	p = u64_digits(v < 0 ? -(uint64_t)v : (uint64_t)v, buf);
	if (v < 0)
		*--p = '-';
	json_raw(o, p, (size_t)(buf + sizeof(buf) - p));
}

void
json_add_bool(struct json_out *o, const char *key, int v)
{
	json_key(o, key);
	if (v)
		json_raw(o, "true", 4);
	else
		json_raw(o, "false", 5);
}
