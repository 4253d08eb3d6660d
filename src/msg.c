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
	return (d);
}

/* Free what the message owns, leaving an empty message. */
void
msg_clear(struct nt_msg *m)
{
	free(m->from);
	free(m->text);
	free(m->client_id);
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

uint64_t
have_get(const struct nt_have *h, const char *origin)
{
	size_t	 i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].origin, origin) == 0)
			return (h->v[i].seq);
	return (0);
}

void
have_set(struct nt_have *h, const char *origin, uint64_t seq)
{
	size_t	 i;

	for (i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].origin, origin) == 0) {
			h->v[i].seq = seq;
			return;
		}
	}
	h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
	snprintf(h->v[h->n].origin, sizeof(h->v[h->n].origin), "%s", origin);
	h->v[h->n].seq = seq;
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
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 o = 0;
	char			 e[8];

	for (; *s != '\0'; s++) {
		if (*s == '\n')
			snprintf(e, sizeof(e), "\\n");
		else if (*s == '\r')
			snprintf(e, sizeof(e), "\\r");
		else if (*s == '\t')
			snprintf(e, sizeof(e), "\\t");
		else if (*s == '\\' || *s == '\'')
			snprintf(e, sizeof(e), "\\%c", *s);
		else if (*s < 0x20 || *s == 0x7f)
			snprintf(e, sizeof(e), "\\x%02x", *s);
		else {
			e[0] = (char)*s;
			e[1] = '\0';
		}
		if (o + strlen(e) + 1 > len)
			break;
		memcpy(out + o, e, strlen(e));
		o += strlen(e);
	}
	if (len > 0)
		out[o] = '\0';
}
