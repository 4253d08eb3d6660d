/*
 * wire.c: the JSON frames clients and peers exchange (DESIGN section 5).
 * Everything a client can get wrong is caught here, with an error code the
 * client can act on, before a worker looks at the request.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nodetalk.h"
#include "wire.h"
#include "log.h"

#define JSON_INT_MAX	9007199254740992.0	/* 2^53: exact in a double */

struct wire_err {
	const char	*code;
	char		*why;
};

static int
fail(struct wire_err *e, const char *code, const char *fmt, const char *arg)
{
	e->code = code;
	xasprintf(&e->why, fmt, arg);
	return (-1);
}

/* A string field; required or not, with a byte cap. */
static int
get_str(const cJSON *o, const char *key, int required, size_t max,
    char **out, struct wire_err *e)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);
	size_t		 len;

	*out = NULL;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    key));
		return (0);
	}
	if (!cJSON_IsString(v))
		return (fail(e, "bad_field", "'%s' must be a string", key));
	len = strlen(v->valuestring);
	if (max != 0 && len > max)
		return (fail(e, "too_long", "'%s' is too long", key));
	*out = xstrdup(v->valuestring);
	return (0);
}

static int
get_uint(const cJSON *o, const char *key, int required, uint64_t *out,
    int *present, struct wire_err *e)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (present != NULL)
		*present = 0;
	if (v == NULL) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    key));
		return (0);
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
	    v->valuedouble > JSON_INT_MAX ||
	    floor(v->valuedouble) != v->valuedouble)
		return (fail(e, "bad_field",
		    "'%s' must be a non-negative integer", key));
	*out = (uint64_t)v->valuedouble;
	if (present != NULL)
		*present = 1;
	return (0);
}

static int
get_bool(const cJSON *o, const char *key, int *out, struct wire_err *e)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);

	*out = 0;
	if (v == NULL || cJSON_IsNull(v))
		return (0);
	if (!cJSON_IsBool(v))
		return (fail(e, "bad_field", "'%s' must be true or false",
		    key));
	*out = cJSON_IsTrue(v);
	return (0);
}

/* {"A":12,"B":40}: the highest seq per origin. */
static int
get_have(const cJSON *o, const char *key, int required, struct nt_have *h,
    int *present, struct wire_err *e)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);
	const cJSON	*it;

	*present = 0;
	if (v == NULL || cJSON_IsNull(v)) {
		if (required)
			return (fail(e, "missing_field", "'%s' is missing",
			    key));
		return (0);
	}
	if (!cJSON_IsObject(v))
		return (fail(e, "bad_field", "'%s' must be an object", key));
	cJSON_ArrayForEach(it, v) {
		if (strlen(it->string) == 0 ||
		    strlen(it->string) > NT_ORIGIN_MAX ||
		    !cJSON_IsNumber(it) || it->valuedouble < 0 ||
		    it->valuedouble > JSON_INT_MAX ||
		    floor(it->valuedouble) != it->valuedouble)
			return (fail(e, "bad_field",
			    "'%s' must map origins to sequence numbers", key));
		have_set(h, it->string, (uint64_t)it->valuedouble);
	}
	*present = 1;
	return (0);
}

static int
check_name(const char *key, const char *s, struct wire_err *e)
{
	size_t	 i;

	if (s[0] == '\0')
		return (fail(e, "bad_field", "'%s' is empty", key));
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (fail(e, "bad_field",
			    "'%s' holds a control character", key));
	return (0);
}

/* The stored identity a replicated chat or an ack carries. */
static int
parse_identity(const cJSON *o, struct wire_in *w, struct wire_err *e)
{
	char		*origin = NULL;
	uint64_t	 ts = 0;
	int		 has_origin, has_seq, has_ts, has_lamport;

	if (get_str(o, "origin", 0, NT_ORIGIN_MAX, &origin, e) == -1)
		return (-1);
	has_origin = origin != NULL;
	if (origin != NULL) {
		snprintf(w->msg.origin, sizeof(w->msg.origin), "%s", origin);
		free(origin);
		if (!valid_node_id(w->msg.origin))
			return (fail(e, "bad_field", "'%s' is not a node id",
			    "origin"));
	}
	if (get_uint(o, "seq", 0, &w->msg.seq, &has_seq, e) == -1 ||
	    get_uint(o, "lamport", 0, &w->msg.lamport, &has_lamport, e) == -1 ||
	    get_uint(o, "ts", 0, &ts, &has_ts, e) == -1)
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
parse_chat(const cJSON *o, size_t max_text, struct wire_in *w,
    struct wire_err *e)
{
	const char	*cidkey;

	if (get_bool(o, "replicated", &w->replicated, e) == -1 ||
	    get_str(o, "from", 1, NT_FROM_MAX, &w->msg.from, e) == -1 ||
	    check_name("from", w->msg.from, e) == -1 ||
	    get_str(o, "text", 1, max_text, &w->msg.text, e) == -1)
		return (-1);
	if (w->msg.text[0] == '\0')
		return (fail(e, "bad_field", "'%s' is empty", "text"));
	/* A client names its own message "id"; a stored one is "A-17". */
	cidkey = w->replicated ? "client_id" : "id";
	if (get_str(o, cidkey, 0, NT_CID_MAX, &w->msg.client_id, e) == -1)
		return (-1);
	if (w->msg.client_id != NULL &&
	    check_name(cidkey, w->msg.client_id, e) == -1)
		return (-1);
	if (w->replicated)
		return (parse_identity(o, w, e));
	/* What the client saw, so that its answer sorts after it. */
	return (get_uint(o, "after", 0, &w->after, NULL, e));
}

static int
parse_peer_id(const cJSON *o, const char *key, int required, char **out,
    struct wire_err *e)
{
	if (get_str(o, key, required, NT_ID_MAX, out, e) == -1)
		return (-1);
	if (*out != NULL && !valid_node_id(*out))
		return (fail(e, "bad_field", "'%s' is not a node id", key));
	return (0);
}

/*
 * {"type":"history","before":{"origin":"A","seq":17,"lamport":42},
 * "limit":100}; lamport is optional.
 */
static int
parse_history(const cJSON *o, struct wire_in *w, struct wire_err *e)
{
	const cJSON	*b = cJSON_GetObjectItemCaseSensitive(o, "before");
	char		*origin = NULL;
	int		 has_seq;

	if (get_uint(o, "limit", 0, &w->limit, NULL, e) == -1)
		return (-1);
	if (b == NULL || cJSON_IsNull(b))
		return (0);
	if (!cJSON_IsObject(b))
		return (fail(e, "bad_field", "'%s' must be an object",
		    "before"));
	if (get_str(b, "origin", 1, NT_ORIGIN_MAX, &origin, e) == -1 ||
	    get_uint(b, "seq", 1, &w->msg.seq, &has_seq, e) == -1 ||
	    get_uint(b, "lamport", 0, &w->msg.lamport, NULL, e) == -1) {
		free(origin);
		return (-1);
	}
	snprintf(w->msg.origin, sizeof(w->msg.origin), "%s", origin);
	free(origin);
	if (w->msg.origin[0] == '\0' || w->msg.seq == 0)
		return (fail(e, "bad_field", "'%s' must name a message",
		    "before"));
	w->has_before = 1;
	return (0);
}

static int
parse_body(const cJSON *o, const char *type, size_t max_text,
    struct wire_in *w, struct wire_err *e)
{
	if (strcmp(type, "chat") == 0) {
		w->type = WIRE_CHAT;
		return (parse_chat(o, max_text, w, e));
	}
	if (strcmp(type, "join") == 0) {
		w->type = WIRE_JOIN;
		if (get_str(o, "from", 0, NT_FROM_MAX, &w->from, e) == -1)
			return (-1);
		return (get_have(o, "since", 0, &w->have, &w->has_since, e));
	}
	if (strcmp(type, "hello") == 0) {
		w->type = WIRE_HELLO;
		if (parse_peer_id(o, "from", 1, &w->from, e) == -1 ||
		    get_str(o, "auth", 0, 128, &w->auth, e) == -1 ||
		    get_uint(o, "ts", 0, &w->hello_ts, NULL, e) == -1)
			return (-1);
		return (get_str(o, "to", 0, NT_ID_MAX, &w->to, e));
	}
	if (strcmp(type, "sync") == 0) {
		w->type = WIRE_SYNC;
		if (parse_peer_id(o, "from", 1, &w->from, e) == -1)
			return (-1);
		return (get_have(o, "have", 1, &w->have, &w->has_since, e));
	}
	if (strcmp(type, "ack") == 0) {
		w->type = WIRE_ACK;
		if (get_str(o, "id", 1, 0, &w->message, e) == -1)
			return (-1);
		return (parse_identity(o, w, e));
	}
	if (strcmp(type, "error") == 0) {
		w->type = WIRE_ERROR;
		if (get_str(o, "code", 1, 0, &w->code, e) == -1)
			return (-1);
		return (get_str(o, "message", 0, 0, &w->message, e));
	}
	if (strcmp(type, "joined") == 0) {
		w->type = WIRE_JOINED;
		if (get_str(o, "node", 0, 0, &w->node, e) == -1 ||
		    get_uint(o, "count", 0, &w->count, NULL, e) == -1 ||
		    get_bool(o, "older", &w->older, e) == -1)
			return (-1);
		return (get_bool(o, "recovered", &w->recovered, e));
	}
	if (strcmp(type, "history") == 0) {
		w->type = WIRE_HISTORY;
		return (parse_history(o, w, e));
	}
	if (strcmp(type, "history_end") == 0) {
		w->type = WIRE_HISTORY_END;
		if (get_uint(o, "count", 0, &w->count, NULL, e) == -1)
			return (-1);
		return (get_bool(o, "older", &w->older, e));
	}
	return (fail(e, "bad_type", "unknown type '%s'", type));
}

int
wire_parse(const char *buf, size_t len, size_t max_text, struct wire_in *w,
    const char **code, char **why)
{
	struct wire_err	 e = { NULL, NULL };
	cJSON		*o;
	const cJSON	*t;
	int		 rv = -1;

	memset(w, 0, sizeof(*w));
	*code = NULL;
	*why = NULL;
	if ((o = cJSON_ParseWithLength(buf, len)) == NULL)
		fail(&e, "bad_json", "%s", "the frame is not valid JSON");
	else if (!cJSON_IsObject(o))
		fail(&e, "bad_json", "%s", "the frame is not a JSON object");
	else if ((t = cJSON_GetObjectItemCaseSensitive(o, "type")) == NULL)
		fail(&e, "missing_field", "'%s' is missing", "type");
	else if (!cJSON_IsString(t))
		fail(&e, "bad_field", "'%s' must be a string", "type");
	else
		rv = parse_body(o, t->valuestring, max_text, w, &e);
	cJSON_Delete(o);
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

/* Builders. */

static char *
print_free(cJSON *o)
{
	char	*s;

	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		fatalx("cJSON_PrintUnformatted");
	cJSON_Delete(o);
	return (s);
}

static cJSON *
new_frame(const char *type)
{
	cJSON	*o;

	if ((o = cJSON_CreateObject()) == NULL)
		fatalx("cJSON_CreateObject");
	cJSON_AddStringToObject(o, "type", type);
	return (o);
}

static void
add_identity(cJSON *o, const struct nt_msg *m)
{
	char	 id[NT_ORIGIN_MAX + 32];

	msg_idstr(m, id, sizeof(id));
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "origin", m->origin);
	cJSON_AddNumberToObject(o, "seq", (double)m->seq);
	cJSON_AddNumberToObject(o, "lamport", (double)m->lamport);
	cJSON_AddNumberToObject(o, "ts", (double)m->ts);
}

static cJSON *
have_object(const struct nt_have *h)
{
	cJSON	*o;
	size_t	 i;

	if ((o = cJSON_CreateObject()) == NULL)
		fatalx("cJSON_CreateObject");
	for (i = 0; h != NULL && i < h->n; i++)
		cJSON_AddNumberToObject(o, h->v[i].origin,
		    (double)h->v[i].seq);
	return (o);
}

char *
wire_chat(const struct nt_msg *m, int replicated)
{
	cJSON	*o = new_frame("chat");

	add_identity(o, m);
	cJSON_AddStringToObject(o, "from", m->from);
	cJSON_AddStringToObject(o, "text", m->text);
	if (m->client_id != NULL)
		cJSON_AddStringToObject(o, "client_id", m->client_id);
	if (replicated)
		cJSON_AddTrueToObject(o, "replicated");
	return (print_free(o));
}

char *
wire_client_chat(const char *from, const char *text, const char *client_id,
    uint64_t after)
{
	cJSON	*o = new_frame("chat");

	cJSON_AddStringToObject(o, "from", from);
	cJSON_AddStringToObject(o, "text", text);
	if (client_id != NULL)
		cJSON_AddStringToObject(o, "id", client_id);
	if (after > 0)
		cJSON_AddNumberToObject(o, "after", (double)after);
	return (print_free(o));
}

char *
wire_ack(const struct nt_msg *m)
{
	cJSON	*o = new_frame("ack");

	add_identity(o, m);
	if (m->client_id != NULL)
		cJSON_AddStringToObject(o, "client_id", m->client_id);
	return (print_free(o));
}

char *
wire_error(const char *code, const char *message)
{
	cJSON	*o = new_frame("error");

	cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "message", message);
	return (print_free(o));
}

char *
wire_hello(const char *from, const char *to, int64_t ts, const char *auth)
{
	cJSON	*o = new_frame("hello");

	cJSON_AddStringToObject(o, "from", from);
	cJSON_AddStringToObject(o, "to", to);
	cJSON_AddNumberToObject(o, "version", 1);
	if (auth != NULL) {
		cJSON_AddNumberToObject(o, "ts", (double)ts);
		cJSON_AddStringToObject(o, "auth", auth);
	}
	return (print_free(o));
}

char *
wire_sync(const char *from, const struct nt_have *have)
{
	cJSON	*o = new_frame("sync");

	cJSON_AddStringToObject(o, "from", from);
	cJSON_AddItemToObject(o, "have", have_object(have));
	return (print_free(o));
}

char *
wire_join(const char *from, const struct nt_have *since)
{
	cJSON	*o = new_frame("join");

	cJSON_AddStringToObject(o, "from", from);
	if (since != NULL)
		cJSON_AddItemToObject(o, "since", have_object(since));
	return (print_free(o));
}

char *
wire_joined(const char *node, uint64_t count, int recovered, int older)
{
	cJSON	*o = new_frame("joined");

	cJSON_AddStringToObject(o, "node", node);
	cJSON_AddNumberToObject(o, "count", (double)count);
	cJSON_AddBoolToObject(o, "recovered", recovered);
	cJSON_AddBoolToObject(o, "older", older);
	return (print_free(o));
}

/*
 * A page request: limit messages before m (NULL: the newest); m's lamport
 * places it where the node does not hold it.
 */
char *
wire_history(const struct nt_msg *m, uint64_t limit)
{
	cJSON	*o = new_frame("history"), *b;

	if (m != NULL) {
		b = cJSON_AddObjectToObject(o, "before");
		cJSON_AddStringToObject(b, "origin", m->origin);
		cJSON_AddNumberToObject(b, "seq", (double)m->seq);
		if (m->lamport > 0)
			cJSON_AddNumberToObject(b, "lamport",
			    (double)m->lamport);
	}
	if (limit > 0)
		cJSON_AddNumberToObject(o, "limit", (double)limit);
	return (print_free(o));
}

char *
wire_history_end(uint64_t count, int older)
{
	cJSON	*o = new_frame("history_end");

	cJSON_AddNumberToObject(o, "count", (double)count);
	cJSON_AddBoolToObject(o, "older", older);
	return (print_free(o));
}
