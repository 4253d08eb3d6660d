/*
 * bench_json.c: the benchmark's view of the frames a node sends.  It needs
 * three things from each (its type, the token in a chat's text or an
 * ack's client_id, and a joined frame's count), so it finds them by key in
 * the flat object instead of parsing the whole frame: a parser would cost
 * the meter more per frame than the server spends on it.  Finding "key"
 * followed by a colon is exact in a flat object: inside a JSON string
 * every quote is escaped, so "key": cannot occur there.
 */
#include <stdio.h>
#include <string.h>

#include "nodetalk.h"
#include "bench.h"

/* Where the value of "key" begins, after the colon and blanks; or NULL. */
static const char *
json_value(const char *s, size_t len, const char *key)
{
	const char	*end = s + len, *p = s, *q;
	size_t		 klen = strlen(key);

	while ((p = memchr(p, '"', end - p)) != NULL) {
		q = p + 1;
		if ((size_t)(end - q) > klen && memcmp(q, key, klen) == 0 &&
		    q[klen] == '"') {
			for (q += klen + 1; q < end && (*q == ' ' ||
			    *q == '\t' || *q == '\n' || *q == '\r'); q++)
				;
			if (q < end && *q == ':') {
				for (q++; q < end && (*q == ' ' ||
				    *q == '\t' || *q == '\n' || *q == '\r');
				    q++)
					;
				return (q < end ? q : NULL);
			}
		}
		p++;
	}
	return (NULL);
}

/* A string value, escapes left as they are; 0 found, -1 not. */
int
bench_json_str(const char *s, size_t len, const char *key, const char **val,
    size_t *vlen)
{
	const char	*v = json_value(s, len, key), *end = s + len, *p;

	if (v == NULL || *v != '"')
		return (-1);
	for (p = v + 1; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	if (p >= end)
		return (-1);
	*val = v + 1;
	*vlen = p - (v + 1);
	return (0);
}

int
bench_json_uint(const char *s, size_t len, const char *key, uint64_t *out)
{
	const char	*v = json_value(s, len, key), *end = s + len;
	uint64_t	 n = 0;

	if (v == NULL || *v < '0' || *v > '9')
		return (-1);
	for (; v < end && *v >= '0' && *v <= '9'; v++)
		n = n * 10 + (*v - '0');
	*out = n;
	return (0);
}

enum bench_frame
bench_json_type(const char *s, size_t len)
{
	static const struct {
		const char		*name;
		enum bench_frame	 type;
	} types[] = {
		{ "chat", BENCH_F_CHAT }, { "ack", BENCH_F_ACK },
		{ "joined", BENCH_F_JOINED }, { "error", BENCH_F_ERROR }
	};
	const char	*v;
	size_t		 vlen, i;

	if (bench_json_str(s, len, "type", &v, &vlen) == -1)
		return (BENCH_F_OTHER);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i].name) == vlen &&
		    memcmp(types[i].name, v, vlen) == 0)
			return (types[i].type);
	return (BENCH_F_OTHER);
}

/*
 * The number n of a token "TAG-n" that starts the string value of key: 0,
 * or -1 when the value is no token of this run (another client's chat).
 */
int
bench_json_token(const char *s, size_t len, const char *key, const char *tag,
    uint64_t *n)
{
	const char	*v;
	size_t		 vlen, i, tlen = strlen(tag);

	if (bench_json_str(s, len, key, &v, &vlen) == -1 ||
	    vlen < tlen + 2 || memcmp(v, tag, tlen) != 0 || v[tlen] != '-' ||
	    v[tlen + 1] < '0' || v[tlen + 1] > '9')
		return (-1);
	*n = 0;
	for (i = tlen + 1; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
		*n = *n * 10 + (v[i] - '0');
	return (0);
}

/*
 * A chat whose text is the token "TAG-n", a blank and x's up to size
 * bytes; with_id also gives the token as the client's id, as the nodetalk
 * client and the page do.  Returns the length, 0 when cap is too small.
 */
size_t
bench_json_chat(char *buf, size_t cap, const char *tag, uint64_t n, int size,
    int with_id)
{
	char	tok[64];
	size_t	len, pad;
	int	tlen;

	tlen = snprintf(tok, sizeof(tok), "%s-%llu", tag,
	    (unsigned long long)n);
	pad = size > tlen + 1 ? (size_t)(size - tlen) : 0;
	if (cap < (size_t)tlen * 2 + pad + 80)
		return (0);
	len = snprintf(buf, cap, "{\"type\":\"chat\","
	    "\"from\":\"nodetalk-bench\",\"text\":\"%s", tok);
	if (pad > 0) {
		buf[len] = ' ';
		memset(buf + len + 1, 'x', pad - 1);
		len += pad;
	}
	if (with_id)
		len += snprintf(buf + len, cap - len, "\",\"id\":\"%s\"}", tok);
	else
		len += snprintf(buf + len, cap - len, "\"}");
	return (len);
}
