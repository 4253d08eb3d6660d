/*
 * msg.c: chat messages, their identity and order, have vectors, and the
 * small validity checks every process shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nodetalk.h"

struct nt_msg *
msg_new(void)
{
	return (xcalloc(1, sizeof(struct nt_msg)));
}

struct nt_msg *
msg_dup(const struct nt_msg *m)
{
	struct nt_msg	*d;

	d = msg_new();
	memcpy(d->origin, m->origin, sizeof(d->origin));
	d->seq = m->seq;
	d->lamport = m->lamport;
	d->ts = m->ts;
	d->from = xstrdup(m->from != NULL ? m->from : "");
	d->text = xstrdup(m->text != NULL ? m->text : "");
	d->client_id = m->client_id != NULL ? xstrdup(m->client_id) : NULL;
	d->gateway = m->gateway != NULL ? xstrdup(m->gateway) : NULL;
	return (d);
}

/* Free what the message owns, leaving an empty message. */
void
msg_clear(struct nt_msg *m)
{
	free(m->from);
	free(m->text);
	free(m->client_id);
	free(m->gateway);
	memset(m, 0, sizeof(*m));
}

void
msg_free(struct nt_msg *m)
{
	if (m == NULL)
		return;
	msg_clear(m);
	free(m);
}

/*
 * A hash of (origin, client id) that is never 0 (0: no client id): FNV-1a
 * over origin, a NUL, then the id, so "A"+"Bc" is not "AB"+"c", mixed.
 */
uint64_t
msg_cid_hash(const char *origin, const char *cid)
{
	uint64_t	 h = 14695981039346656037ULL;
	const char	*p;

	if (cid == NULL || *cid == '\0')
		return (0);
	for (p = origin; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h *= 1099511628211ULL;		/* the NUL: h ^ 0 == h */
	for (p = cid; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	/*
	 * FNV's low bits depend only on the low bits of the bytes, and the
	 * store's table is indexed by the low bits: ids that differ in a few
	 * digits would pile up.  A final mix (MurmurHash3's) spreads them.
	 */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (h != 0 ? h : 1);
}

/* "A-17": the id clients see in ack and chat frames. */
void
msg_idstr(const struct nt_msg *m, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%llu", m->origin, (unsigned long long)m->seq);
}

/* The cluster order: (lamport, origin); seq breaks no ties it need not. */
int
msg_cmp_order(const struct nt_msg *a, const struct nt_msg *b)
{
	int	 c;

	if (a->lamport != b->lamport)
		return (a->lamport < b->lamport ? -1 : 1);
	if ((c = strcmp(a->origin, b->origin)) != 0)
		return (c);
	if (a->seq != b->seq)
		return (a->seq < b->seq ? -1 : 1);
	return (0);
}

/*
 * Messages a seed node handed us without an identity get origin "A/seed":
 * a '/' never appears in a node id, so these never collide with cluster
 * identities, and they are never offered to other nodes.
 */
int
origin_is_local_only(const char *origin)
{
	return (strchr(origin, '/') != NULL);
}

/*
 * A have vector is kept sorted by origin, so that every lookup is a binary
 * search: a join's `since` is consulted once per stored message, and a
 * vector read from the network arrives (from us) already sorted, which
 * makes building it linear.
 */
static size_t
have_find(const struct nt_have *h, const char *origin, int *found)
{
	size_t	 lo = 0, hi = h->n, mid;
	int	 c;

	*found = 0;
	/* The common cases: appending in order, or the last key again. */
	if (h->n > 0 && (c = strcmp(h->v[h->n - 1].origin, origin)) <= 0) {
		*found = (c == 0);
		return (c == 0 ? h->n - 1 : h->n);
	}
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(h->v[mid].origin, origin)) == 0) {
			*found = 1;
			return (mid);
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo);
}

uint64_t
have_get(const struct nt_have *h, const char *origin)
{
	size_t	 i;
	int	 found;

	i = have_find(h, origin, &found);
	return (found ? h->v[i].seq : 0);
}

void
have_set(struct nt_have *h, const char *origin, uint64_t seq)
{
	size_t	 i;
	int	 found;

	i = have_find(h, origin, &found);
	if (found) {
		h->v[i].seq = seq;
		return;
	}
	h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
	memmove(&h->v[i + 1], &h->v[i], (h->n - i) * sizeof(*h->v));
	snprintf(h->v[i].origin, sizeof(h->v[i].origin), "%s", origin);
	h->v[i].seq = seq;
	h->n++;
}

void
have_clear(struct nt_have *h)
{
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

void
have_copy(struct nt_have *dst, const struct nt_have *src)
{
	have_clear(dst);
	if (src->n == 0)
		return;
	dst->v = xreallocarray(NULL, src->n, sizeof(*dst->v));
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	dst->n = src->n;
}

/* Same seq for every origin either names (a missing origin counts 0). */
int
have_equal(const struct nt_have *a, const struct nt_have *b)
{
	size_t	 i;

	for (i = 0; i < a->n; i++)
		if (have_get(b, a->v[i].origin) != a->v[i].seq)
			return (0);
	for (i = 0; i < b->n; i++)
		if (have_get(a, b->v[i].origin) != b->v[i].seq)
			return (0);
	return (1);
}

int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Monotonic microseconds: comparable across our processes on one host. */
int64_t
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/* Node ids appear in log lines, message ids and file names: keep them plain. */
int
valid_node_id(const char *id)
{
	size_t	 i, len;

	len = strlen(id);
	if (len == 0 || len > NT_ID_MAX)
		return (0);
	for (i = 0; i < len; i++) {
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= '0' && id[i] <= '9') ||
		    id[i] == '_' || id[i] == '-'))
			return (0);
	}
	return (1);
}

/* A node id, or a node's local-only origin "A/seed". */
int
valid_origin(const char *origin)
{
	char		 id[NT_ID_MAX + 1];
	const char	*slash;
	size_t		 len;

	if ((slash = strchr(origin, '/')) == NULL)
		return (valid_node_id(origin));
	len = (size_t)(slash - origin);
	if (strcmp(slash, "/seed") != 0 || len == 0 || len > NT_ID_MAX)
		return (0);
	memcpy(id, origin, len);
	id[len] = '\0';
	return (valid_node_id(id));
}

/* Sender names and client ids: printable, of bounded length. */
static int
check_name(const char *s, size_t max, const char **code, const char **why)
{
	size_t	 i;

	if (s[0] == '\0') {
		*code = "bad_field";
		*why = "is empty";
		return (-1);
	}
	for (i = 0; s[i] != '\0'; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			*code = "bad_field";
			*why = "holds a control character";
			return (-1);
		}
	}
	if (i > max) {
		*code = "too_long";
		*why = "is too long";
		return (-1);
	}
	return (0);
}

/*
 * The rules every chat follows, whatever its path: a client's, a peer's
 * or a seed node's (protocol.md, section 3).  0, or -1 with *code an
 * error code of protocol.md section 5, *field the field at fault and
 * *why what is wrong with it ("is too long").  max_text 0: no cap.
 */
int
msg_check(const struct nt_msg *m, size_t max_text, const char **code,
    const char **field, const char **why)
{
	*field = "from";
	if (m->from == NULL) {
		*code = "missing_field";
		*why = "is missing";
		return (-1);
	}
	if (check_name(m->from, NT_FROM_MAX, code, why) == -1)
		return (-1);
	*field = "text";
	*code = "bad_field";
	if (m->text == NULL) {
		*code = "missing_field";
		*why = "is missing";
		return (-1);
	}
	if (m->text[0] == '\0') {
		*why = "is empty";
		return (-1);
	}
	if (max_text != 0 && strlen(m->text) > max_text) {
		*code = "too_long";
		*why = "is too long";
		return (-1);
	}
	*field = "client_id";
	if (m->client_id != NULL &&
	    check_name(m->client_id, NT_CID_MAX, code, why) == -1)
		return (-1);
	return (0);
}

/*
 * Whether a refusal may be logged now: at most one line per interval, so
 * that a flood of bad frames cannot flood the log.  note gets what to add
 * to the line: "" or " (N more since the last such line)".
 */
int
ratelimit_pass(struct ratelimit *rl, int64_t now, char *note, size_t len)
{
	if (rl->last_ms != 0 && now - rl->last_ms < RATELIMIT_MS) {
		rl->skipped++;
		return (0);
	}
	if (rl->skipped > 0)
		snprintf(note, len, " (%llu more since the last such line)",
		    (unsigned long long)rl->skipped);
	else if (len > 0)
		note[0] = '\0';
	rl->skipped = 0;
	rl->last_ms = now;
	return (1);
}

/* Length of the sequence a lead byte starts, 0 when it cannot start one. */
static int
utf8_seqlen(unsigned char c)
{
	if (c < 0x80)
		return (1);
	if (c >= 0xc2 && c <= 0xdf)
		return (2);
	if (c >= 0xe0 && c <= 0xef)
		return (3);
	if (c >= 0xf0 && c <= 0xf4)
		return (4);
	return (0);
}

/*
 * RFC 3629 validity, as RFC 6455 requires of text frames: no overlongs, no
 * surrogates, nothing past U+10FFFF.
 */
int
utf8_valid(const char *buf, size_t len)
{
	const unsigned char	*s = (const unsigned char *)buf;
	size_t			 i = 0;
	int			 n, k;

	while (i < len) {
		if ((n = utf8_seqlen(s[i])) == 0 || i + n > len)
			return (0);
		for (k = 1; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return (0);
		if (n == 3 && s[i] == 0xe0 && s[i + 1] < 0xa0)
			return (0);	/* overlong */
		if (n == 3 && s[i] == 0xed && s[i + 1] >= 0xa0)
			return (0);	/* surrogate */
		if (n == 4 && s[i] == 0xf0 && s[i + 1] < 0x90)
			return (0);	/* overlong */
		if (n == 4 && s[i] == 0xf4 && s[i + 1] >= 0x90)
			return (0);	/* > U+10FFFF */
		i += n;
	}
	return (1);
}

/*
 * Escape a client's string for a log line, as the seed's repr() did: a
 * newline in a chat must not forge a log line of its own.  Bytes >= 0x80
 * pass (the text is valid UTF-8); the result is cut to fit out.
 */
void
str_escape(const char *in, char *out, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 o = 0, n;
	char			 e[4];

	if (len == 0)
		return;
	/* Most bytes pass as they are: copy them without a second look. */
	for (; *s != '\0'; s++) {
		if (*s >= 0x20 && *s != 0x7f && *s != '\\' && *s != '\'') {
			if (o + 2 > len)
				break;
			out[o++] = (char)*s;
			continue;
		}
		e[0] = '\\';
		n = 2;
		switch (*s) {
		case '\n': e[1] = 'n'; break;
		case '\r': e[1] = 'r'; break;
		case '\t': e[1] = 't'; break;
		case '\\':
		case '\'': e[1] = (char)*s; break;
		default:
			e[1] = 'x';
			e[2] = hex[*s >> 4];
			e[3] = hex[*s & 0xf];
			n = 4;
			break;
		}
		if (o + n + 1 > len)
			break;
		memcpy(out + o, e, n);
		o += n;
	}
	out[o] = '\0';
}
