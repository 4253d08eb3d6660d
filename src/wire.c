/*
 * wire.c: the JSON frames clients and peers exchange (DESIGN section 5),
 * read and written with json.c.  Everything a client can get wrong is
 * caught here, with an error code the client can act on, before a worker
 * looks at the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "json.h"
#include "wire.h"
#include "log.h"

struct wire_err {
	const char	*code;
	char		*why;
};

/* The members a frame may have that we read; the first of a name counts. */
enum wire_key {
	K_TYPE, K_FROM, K_TO, K_TEXT, K_ID, K_CLIENT_ID, K_REPLICATED,
	K_ORIGIN, K_SEQ, K_LAMPORT, K_TS, K_AFTER, K_SINCE, K_HAVE, K_AUTH,
	K_CODE, K_MESSAGE, K_NODE, K_COUNT, K_RECOVERED, K_CLUSTER, K_OLDER,
	K_BEFORE, K_LIMIT, K_NKEYS
};

static const char *const wire_keys[K_NKEYS] = {
	"type", "from", "to", "text", "id", "client_id", "replicated",
	"origin", "seq", "lamport", "ts", "after", "since", "have", "auth",
	"code", "message", "node", "count", "recovered", "cluster", "older",
	"before", "limit"
};

static const size_t wire_keylen[K_NKEYS] = {
	4, 4, 2, 4, 2, 9, 10, 6, 3, 7, 2, 5, 5, 4, 4, 4, 7, 4, 5, 9, 7, 5, 6, 5
};

struct frame {
	struct json_val	 v[K_NKEYS];	/* type JSON_NONE: absent */
};

static int
fail(struct wire_err *e, const char *code, const char *fmt, const char *arg)
{
	e->code = code;
	xasprintf(&e->why, fmt, arg);
	return (-1);
}

/* Sort the members of the frame into f; -1 when it is not JSON. */
static int
frame_read(const char *buf, size_t len, struct frame *f)
{
	struct json_iter	 it;
	struct json_val		 k, v;
	int			 i, rv;

	memset(f, 0, sizeof(*f));
	if (json_object(buf, len, &it) == -1)
		return (-1);
	while ((rv = json_member(&it, &k, &v)) == 1) {
		for (i = 0; i < K_NKEYS; i++) {
			if (k.escaped ? json_key_is(&k, wire_keys[i]) :
			    (k.len == wire_keylen[i] &&
			    memcmp(k.p, wire_keys[i], k.len) == 0)) {
				if (f->v[i].type == JSON_NONE)
					f->v[i] = v;
				break;
			}
		}
	}
	return (rv == 0 ? json_object_rest(&it) : -1);
}

/* A string field; required or not, with a byte cap. */
static int
get_str(const struct frame *f, enum wire_key k, int required, size_t max,
    char **out, struct wire_err *e)
{
	const struct json_val	*v = &f->v[k];
	const char		*key = wire_keys[k];
	ssize_t			 len;

	*out = NULL;
	if (v->type == JSON_NONE || v->type == JSON_NULL) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    key));
		return (0);
	}
	if (v->type != JSON_STRING)
		return (fail(e, "bad_field", "'%s' must be a string", key));
	*out = xmalloc(v->len + 1);
	if ((len = json_str(v, *out)) == -1)
		return (fail(e, "bad_field", "'%s' holds a NUL character",
		    key));
	if (max != 0 && (size_t)len > max) {
		e->code = "too_long";
		xasprintf(&e->why, "'%s' is %zd bytes; the limit is %zu", key,
		    len, max);
		return (-1);
	}
	return (0);
}

static int
get_uint(const struct frame *f, enum wire_key k, int required,
    uint64_t *out, int *present, struct wire_err *e)
{
	const struct json_val	*v = &f->v[k];

	if (present != NULL)
		*present = 0;
	if (v->type == JSON_NONE) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    wire_keys[k]));
		return (0);
	}
	if (json_uint(v, out) == -1)
		return (fail(e, "bad_field",
		    "'%s' must be a non-negative integer", wire_keys[k]));
	if (present != NULL)
		*present = 1;
	return (0);
}

static int
get_bool(const struct frame *f, enum wire_key k, int *out,
    struct wire_err *e)
{
	const struct json_val	*v = &f->v[k];

	*out = 0;
	if (v->type == JSON_NONE || v->type == JSON_NULL)
		return (0);
	if (v->type != JSON_TRUE && v->type != JSON_FALSE)
		return (fail(e, "bad_field", "'%s' must be true or false",
		    wire_keys[k]));
	*out = v->type == JSON_TRUE;
	return (0);
}

/* An origin as a key of `since` or `have`: 0, or -1 when it is none. */
static int
origin_key(const struct json_val *k, char *out)
{
	char	 buf[NT_ORIGIN_MAX * 6 + 1];

	/* An escape takes at most six bytes for each byte it stands for. */
	if (k->len > sizeof(buf) - 1 || json_str(k, buf) == -1 ||
	    strlen(buf) > NT_ORIGIN_MAX)
		return (-1);
	memcpy(out, buf, strlen(buf) + 1);
	return (valid_origin(out) ? 0 : -1);
}

/*
 * {"A":12,"B":40}: the highest seq per origin.  The keys are counted before
 * anything is built, against the cap the caller gives (a cluster has a few
 * origins, so a vector of thousands can only be an attack on our CPU), and
 * each must be an origin: a node id, or a node's local-only "A/seed".
 */
static int
get_have(const struct frame *f, enum wire_key k, int required,
    size_t max_keys, struct nt_have *h, int *present, struct wire_err *e)
{
	const struct json_val	*v = &f->v[k];
	const char		*key = wire_keys[k];
	struct json_iter	 it;
	struct json_val		 ok, ov;
	char			 origin[NT_ORIGIN_MAX + 1];
	uint64_t		 seq;
	size_t			 n = 0;

	*present = 0;
	if (v->type == JSON_NONE || v->type == JSON_NULL) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    key));
		return (0);
	}
	if (v->type != JSON_OBJECT)
		return (fail(e, "bad_field", "'%s' must be an object", key));
	json_object_val(v, &it);
	while (json_member(&it, &ok, &ov) == 1)
		if (max_keys != 0 && ++n > max_keys)
			return (fail(e, "too_long", "'%s' names more origins "
			    "than this cluster has", key));
	json_object_val(v, &it);
	while (json_member(&it, &ok, &ov) == 1) {
		if (origin_key(&ok, origin) == -1 || json_uint(&ov, &seq) == -1)
			return (fail(e, "bad_field",
			    "'%s' must map origins to sequence numbers", key));
		if (have_get(h, origin) == 0)	/* the first of a name */
			have_set(h, origin, seq);
	}
	*present = 1;
	return (0);
}

/* The stored identity a replicated chat or an ack carries. */
static int
parse_identity(const struct frame *o, struct wire_in *w, struct wire_err *e)
{
	const struct json_val	*ov = &o->v[K_ORIGIN];
	char			 origin[NT_ORIGIN_MAX * 6 + 1];
	uint64_t		 ts = 0;
	int			 has_origin, has_seq, has_ts, has_lamport;

	has_origin = ov->type != JSON_NONE && ov->type != JSON_NULL;
	if (has_origin) {
		if (ov->type != JSON_STRING)
			return (fail(e, "bad_field", "'%s' must be a string",
			    "origin"));
		/* Each byte of it takes at most six in the text (\u0041). */
		if (ov->len >= sizeof(origin) || json_str(ov, origin) == -1 ||
		    strlen(origin) > NT_ORIGIN_MAX)
			return (fail(e, "too_long", "'%s' is too long",
			    "origin"));
		memcpy(w->msg.origin, origin, strlen(origin) + 1);
		if (!valid_node_id(w->msg.origin))
			return (fail(e, "bad_field", "'%s' is not a node id",
			    "origin"));
	}
	if (get_uint(o, K_SEQ, 0, &w->msg.seq, &has_seq, e) == -1 ||
	    get_uint(o, K_LAMPORT, 0, &w->msg.lamport, &has_lamport, e) == -1 ||
	    get_uint(o, K_TS, 0, &ts, &has_ts, e) == -1)
		return (-1);
	w->msg.ts = has_ts ? (int64_t)ts : 0;
	if (has_origin != has_seq)
		return (fail(e, "missing_field", "'%s' needs both origin and seq",
		    "identity"));
	if (has_seq && w->msg.seq == 0)
		return (fail(e, "bad_field", "'%s' must be at least 1", "seq"));
	w->has_identity = has_origin && has_seq;
	/* Without its clock a message would sort before everything. */
	if (w->has_identity && w->type == WIRE_CHAT && !has_lamport)
		return (fail(e, "missing_field", "'%s' is missing",
		    "lamport"));
	return (0);
}

static int
parse_chat(const struct frame *o, size_t max_text, struct wire_in *w,
    struct wire_err *e)
{
	const char	*cidkey, *code, *field, *what;

	/* A client names its own message "id"; a stored one is "A-17". */
	if (get_bool(o, K_REPLICATED, &w->replicated, e) == -1)
		return (-1);
	cidkey = w->replicated ? "client_id" : "id";
	if (get_str(o, K_FROM, 1, 0, &w->msg.from, e) == -1 ||
	    get_str(o, K_TEXT, 1, 0, &w->msg.text, e) == -1 ||
	    get_str(o, w->replicated ? K_CLIENT_ID : K_ID, 0, 0,
	    &w->msg.client_id, e) == -1)
		return (-1);
	if (msg_check(&w->msg, max_text, &code, &field, &what) == -1) {
		e->code = code;
		xasprintf(&e->why, "'%s' %s", strcmp(field, "client_id") == 0 ?
		    cidkey : field, what);
		return (-1);
	}
	if (w->replicated)
		return (parse_identity(o, w, e));
	/* What the client saw, so that its answer sorts after it. */
	return (get_uint(o, K_AFTER, 0, &w->after, NULL, e));
}

static int
parse_peer_id(const struct frame *o, enum wire_key k, int required,
    char **out, struct wire_err *e)
{
	if (get_str(o, k, required, NT_ID_MAX, out, e) == -1)
		return (-1);
	if (*out != NULL && !valid_node_id(*out))
		return (fail(e, "bad_field", "'%s' is not a node id",
		    wire_keys[k]));
	return (0);
}

/*
 * How many keys a `since` or `have` may name in a cluster of nnodes: each
 * node's id and its local-only origin ("A/seed": a client that moved from
 * that node may carry it), and a few for nodes removed from the
 * configuration that a client still remembers.
 */
size_t
wire_origin_cap(size_t nnodes)
{
	return (2 * nnodes + WIRE_ORIGIN_SLACK);
}

/* The members of an object value, sorted as frame_read() does. */
static void
frame_read_val(const struct json_val *v, struct frame *f)
{
	struct json_iter	 it;
	struct json_val		 k, kv;
	int			 i;

	memset(f, 0, sizeof(*f));
	json_object_val(v, &it);
	while (json_member(&it, &k, &kv) == 1) {
		for (i = 0; i < K_NKEYS; i++) {
			if (json_key_is(&k, wire_keys[i])) {
				if (f->v[i].type == JSON_NONE)
					f->v[i] = kv;
				break;
			}
		}
	}
}

/*
 * {"type":"history","before":{"origin":"A","seq":17,"lamport":42},
 * "limit":100}; lamport is optional.
 */
static int
parse_history(const struct frame *o, struct wire_in *w, struct wire_err *e)
{
	const struct json_val	*b = &o->v[K_BEFORE];
	struct frame		 bf;
	char			*origin = NULL;

	if (get_uint(o, K_LIMIT, 0, &w->limit, NULL, e) == -1)
		return (-1);
	if (b->type == JSON_NONE || b->type == JSON_NULL)
		return (0);
	if (b->type != JSON_OBJECT)
		return (fail(e, "bad_field", "'%s' must be an object",
		    "before"));
	frame_read_val(b, &bf);
	if (get_str(&bf, K_ORIGIN, 1, NT_ORIGIN_MAX, &origin, e) == -1 ||
	    get_uint(&bf, K_SEQ, 1, &w->msg.seq, NULL, e) == -1 ||
	    get_uint(&bf, K_LAMPORT, 0, &w->msg.lamport, NULL, e) == -1) {
		free(origin);
		return (-1);
	}
	snprintf(w->msg.origin, sizeof(w->msg.origin), "%s", origin);
	free(origin);
	if (!valid_origin(w->msg.origin) || w->msg.seq == 0)
		return (fail(e, "bad_field", "'%s' must name a message",
		    "before"));
	w->has_before = 1;
	return (0);
}

static int
parse_body(const struct frame *o, const char *type,
    const struct wire_limits *lim, struct wire_in *w, struct wire_err *e)
{
	size_t	 max_text = lim != NULL ? lim->max_text : 0;
	size_t	 max_origins = lim != NULL ? lim->max_origins : 0;

	if (strcmp(type, "chat") == 0) {
		w->type = WIRE_CHAT;
		return (parse_chat(o, max_text, w, e));
	}
	if (strcmp(type, "join") == 0) {
		w->type = WIRE_JOIN;
		if (get_str(o, K_FROM, 0, NT_FROM_MAX, &w->from, e) == -1 ||
		    get_bool(o, K_CLUSTER, &w->want_cluster, e) == -1)
			return (-1);
		return (get_have(o, K_SINCE, 0, max_origins, &w->have,
		    &w->has_since, e));
	}
	if (strcmp(type, "hello") == 0) {
		w->type = WIRE_HELLO;
		if (parse_peer_id(o, K_FROM, 1, &w->from, e) == -1 ||
		    get_str(o, K_AUTH, 0, 128, &w->auth, e) == -1 ||
		    get_uint(o, K_TS, 0, &w->hello_ts, NULL, e) == -1)
			return (-1);
		return (get_str(o, K_TO, 0, NT_ID_MAX, &w->to, e));
	}
	if (strcmp(type, "sync") == 0) {
		w->type = WIRE_SYNC;
		if (parse_peer_id(o, K_FROM, 1, &w->from, e) == -1)
			return (-1);
		return (get_have(o, K_HAVE, 1, max_origins, &w->have,
		    &w->has_since, e));
	}
	if (strcmp(type, "ack") == 0) {
		w->type = WIRE_ACK;
		if (get_str(o, K_ID, 1, 0, &w->message, e) == -1)
			return (-1);
		return (parse_identity(o, w, e));
	}
	if (strcmp(type, "error") == 0) {
		w->type = WIRE_ERROR;
		if (get_str(o, K_CODE, 1, 0, &w->code, e) == -1)
			return (-1);
		return (get_str(o, K_MESSAGE, 0, 0, &w->message, e));
	}
	if (strcmp(type, "joined") == 0) {
		w->type = WIRE_JOINED;
		if (get_str(o, K_NODE, 0, 0, &w->node, e) == -1 ||
		    get_uint(o, K_COUNT, 0, &w->count, NULL, e) == -1 ||
		    get_bool(o, K_OLDER, &w->older, e) == -1)
			return (-1);
		return (get_bool(o, K_RECOVERED, &w->recovered, e));
	}
	if (strcmp(type, "history") == 0) {
		w->type = WIRE_HISTORY;
		return (parse_history(o, w, e));
	}
	if (strcmp(type, "history_end") == 0) {
		w->type = WIRE_HISTORY_END;
		if (get_uint(o, K_COUNT, 0, &w->count, NULL, e) == -1)
			return (-1);
		return (get_bool(o, K_OLDER, &w->older, e));
	}
	return (fail(e, "bad_type", "unknown type '%s'", type));
}

/* The frame's type, or the error; a NULL return has set e. */
static char *
frame_type(const char *buf, size_t len, const struct frame *f,
    struct wire_err *e)
{
	const char	*p = buf, *end = buf + len;
	char		*type;

	if (f == NULL) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
		    *p == '\r'))
			p++;
		fail(e, "bad_json", "%s", p < end && *p == '{' ?
		    "the frame is not valid JSON" :
		    "the frame is not a JSON object");
		return (NULL);
	}
	if (get_str(f, K_TYPE, 1, 0, &type, e) == -1) {
		free(type);
		return (NULL);
	}
	return (type);
}

int
wire_parse(const char *buf, size_t len, const struct wire_limits *lim,
    struct wire_in *w, const char **code, char **why)
{
	struct wire_err	 e = { NULL, NULL };
	struct frame	 f;
	char		*type;
	int		 rv = -1;

	memset(w, 0, sizeof(*w));
	*code = NULL;
	*why = NULL;
	type = frame_type(buf, len, frame_read(buf, len, &f) == 0 ? &f : NULL,
	    &e);
	if (type != NULL)
		rv = parse_body(&f, type, lim, w, &e);
	free(type);
	if (rv == -1) {
		wire_in_clear(w);
		*code = e.code;
		*why = e.why;
	}
	return (rv);
}

void
wire_in_clear(struct wire_in *w)
{
	msg_clear(&w->msg);
	free(w->from);
	free(w->to);
	free(w->auth);
	free(w->code);
	free(w->message);
	free(w->node);
	have_clear(&w->have);
	memset(w, 0, sizeof(*w));
}

/* Builders: flat objects written straight into one buffer (json.c). */

/* A new frame in o, whose buffer is kept: o must be zeroed or reused. */
static void
frame_new(struct json_out *o, const char *type)
{
	json_out_reset(o);
	json_begin(o);
	json_add_str(o, "type", type);
}

static char *
frame_done(struct json_out *o)
{
	json_end(o);
	return (json_out_take(o, NULL));
}

static void
add_identity(struct json_out *o, const struct nt_msg *m)
{
	char	 id[NT_ORIGIN_MAX + 32];

	msg_idstr(m, id, sizeof(id));
	json_add_str(o, "id", id);
	json_add_str(o, "origin", m->origin);
	json_add_uint(o, "seq", m->seq);
	json_add_uint(o, "lamport", m->lamport);
	json_add_int(o, "ts", m->ts);
}

static void
add_have(struct json_out *o, const char *key, const struct nt_have *h)
{
	size_t	 i;

	json_key(o, key);
	json_begin(o);
	for (i = 0; h != NULL && i < h->n; i++)
		json_add_uint(o, h->v[i].origin, h->v[i].seq);
	json_end(o);
}

/*
 * A stored message as clients see it, without the closing brace: a peer
 * gets the same text and ,"replicated":true (wire_chat_end), so one
 * encoding serves both.
 */
void
wire_chat_body(struct json_out *o, const struct nt_msg *m)
{
	frame_new(o, "chat");
	add_identity(o, m);
	json_add_str(o, "from", m->from);
	json_add_str(o, "text", m->text);
	if (m->client_id != NULL)
		json_add_str(o, "client_id", m->client_id);
	if (m->gateway != NULL)
		json_add_str(o, "gateway", m->gateway);
}

void
wire_chat_end(struct json_out *o, int replicated)
{
	if (replicated)
		json_add_bool(o, "replicated", 1);
	json_end(o);
}

char *
wire_chat(const struct nt_msg *m, int replicated)
{
	struct json_out	 o = JSON_OUT_INIT;

	wire_chat_body(&o, m);
	wire_chat_end(&o, replicated);
	return (json_out_take(&o, NULL));
}

char *
wire_client_chat(const char *from, const char *text, const char *client_id,
    uint64_t after)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "chat");
	json_add_str(&o, "from", from);
	json_add_str(&o, "text", text);
	if (client_id != NULL)
		json_add_str(&o, "id", client_id);
	if (after > 0)
		json_add_uint(&o, "after", after);
	return (frame_done(&o));
}

void
wire_ack_into(struct json_out *o, const struct nt_msg *m)
{
	frame_new(o, "ack");
	add_identity(o, m);
	if (m->client_id != NULL)
		json_add_str(o, "client_id", m->client_id);
	json_end(o);
}

char *
wire_ack(const struct nt_msg *m)
{
	struct json_out	 o = JSON_OUT_INIT;

	wire_ack_into(&o, m);
	return (json_out_take(&o, NULL));
}

char *
wire_error(const char *code, const char *message)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "error");
	json_add_str(&o, "code", code);
	json_add_str(&o, "message", message);
	return (frame_done(&o));
}

char *
wire_hello(const char *from, const char *to, int64_t ts, const char *auth)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "hello");
	json_add_str(&o, "from", from);
	json_add_str(&o, "to", to);
	json_add_uint(&o, "version", 1);
	if (auth != NULL) {
		json_add_int(&o, "ts", ts);
		json_add_str(&o, "auth", auth);
	}
	return (frame_done(&o));
}

char *
wire_sync(const char *from, const struct nt_have *have)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "sync");
	json_add_str(&o, "from", from);
	add_have(&o, "have", have);
	return (frame_done(&o));
}

char *
wire_join(const char *from, const struct nt_have *since)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "join");
	json_add_str(&o, "from", from);
	if (since != NULL)
		add_have(&o, "since", since);
	return (frame_done(&o));
}

char *
wire_joined(const char *node, uint64_t count, int recovered, int older)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "joined");
	json_add_str(&o, "node", node);
	json_add_uint(&o, "count", count);
	json_add_bool(&o, "recovered", recovered);
	json_add_bool(&o, "older", older);
	return (frame_done(&o));
}

/*
 * A page request: limit messages before m (NULL: the newest); m's lamport
 * places it where the node does not hold it.
 */
char *
wire_history(const struct nt_msg *m, uint64_t limit)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "history");
	if (m != NULL) {
		json_key(&o, "before");
		json_begin(&o);
		json_add_str(&o, "origin", m->origin);
		json_add_uint(&o, "seq", m->seq);
		if (m->lamport > 0)
			json_add_uint(&o, "lamport", m->lamport);
		json_end(&o);
	}
	if (limit > 0)
		json_add_uint(&o, "limit", limit);
	return (frame_done(&o));
}

char *
wire_history_end(uint64_t count, int older)
{
	struct json_out	 o = JSON_OUT_INIT;

	frame_new(&o, "history_end");
	json_add_uint(&o, "count", count);
	json_add_bool(&o, "older", older);
	return (frame_done(&o));
}
