/*
 * config.c: nodetalk.conf (libconfig syntax) into a fresh struct nt_config.
 *
 * The key set is defined once, in top_keys[] and node_keys[]: type,
 * default, range and what a reload can do with a change.  Parsing,
 * defaults, range checks and config_print() all walk those tables.
 *
 * Every problem is collected as "file:line: message" instead of stopping at
 * the first, so that "nodetalkd -t" lists everything to fix in one go.
 * Nothing here logs: the caller decides whether errors are fatal (start) or
 * refused with the old config kept (SIGHUP).
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "log.h"
#include "config.h"

enum cf_type {
	CF_INT,		/* range-checked integer */
	CF_BOOL,
	CF_STR,		/* string, checked (and maybe mapped) by conv */
	CF_NODES,	/* the list of node entries */
	CF_INHERIT,	/* node entry override of a top-level key */
	CF_STRV,	/* a non-empty list of strings, each checked by conv */
	CF_GROUP	/* a group of keys of its own (nats) */
};

/* What a SIGHUP can do with a changed value; config_print() shows it. */
enum cf_reload {
	RELOAD_YES,	/* applied in place */
	RELOAD_WS,	/* applied by restarting the ws worker */
	RELOAD_ENGINE,	/* applied by restarting the engine's worker */
	RELOAD_NO	/* needs a restart of nodetalkd */
};

#define CF_REQUIRED	0x01

struct cf_key {
	const char	*name;
	enum cf_type	 type;
	int		 flags;
	enum cf_reload	 reload;
	const char	*sdef;		/* CF_STR default; NULL: none */
	long long	 idef;		/* CF_INT, CF_BOOL default */
	long long	 min, max;	/* CF_INT range */
	int		(*conv)(const char *);	/* CF_STR: -1 when bad */
	const char	*(*conv_name)(int);	/* inverse of conv, to print */
	const char	*what;		/* what conv accepts, for its error */
	int		 inherit;	/* CF_INHERIT: index in top_keys[] */
};

/* One key's value while parsing. */
struct cf_val {
	const config_setting_t	*src;	/* where the file set it; NULL: not */
	int			 ok;	/* i or s holds a usable value */
	long long		 i;	/* CF_INT, CF_BOOL, mapped CF_STR */
	const char		*s;	/* CF_STR; owned by the config_t */
};

struct cf_ctx {
	const char	*path;
	char		*errs;		/* "\n"-joined; NULL while clean */
	int		 badids;	/* node entries without a usable id */
};

static int	 conv_id(const char *);
static int	 conv_nonempty(const char *);
static int	 conv_any(const char *);
static int	 conv_fsync(const char *);
static const char *fsync_name(int);
static int	 conv_engine(const char *);
static const char *engine_name(int);
static int	 conv_url(const char *);

#define ID_WHAT		"1 to 32 characters of A-Z a-z 0-9 _ -"

enum {
	K_NODE_ID, K_PORT, K_LISTEN, K_DATA_DIR, K_LOG_LEVEL, K_FSYNC,
	K_FSYNC_INTERVAL, K_MAX_CLIENTS, K_MAX_MESSAGE, K_MAX_FRAME,
	K_MAX_PER_ADDRESS, K_MAX_CLIENT_BACKLOG, K_MAX_PEER_BACKLOG,
	K_HTTP_TIMEOUT, K_JOIN_TIMEOUT, K_PING_INTERVAL, K_PEER_PING_INTERVAL,
	K_PING_TIMEOUT, K_WORKER_BACKLOG, K_JOIN_HISTORY, K_WWW_DIR,
	K_LOG_FILE, K_USER, K_SECRET, K_ENGINE, K_NATS, K_NODES,
	K_NTOP
};

/* Printed in this order, so keep nodes last. */
static const struct cf_key top_keys[K_NTOP] = {
	[K_NODE_ID] = { "node_id", CF_STR, .reload = RELOAD_NO,
	    .conv = conv_id, .what = ID_WHAT },
	[K_PORT] = { "port", CF_INT, .reload = RELOAD_WS,
	    .idef = NT_DEFAULT_PORT, .min = 1, .max = 65535 },
	[K_LISTEN] = { "listen", CF_STR, .reload = RELOAD_WS,
	    .sdef = "0.0.0.0", .conv = conv_nonempty, .what = "non-empty" },
	[K_DATA_DIR] = { "data_dir", CF_STR, .reload = RELOAD_NO,
	    .sdef = LOCALSTATEDIR "/lib/nodetalk", .conv = conv_nonempty,
	    .what = "non-empty" },
	[K_LOG_LEVEL] = { "log_level", CF_STR, .reload = RELOAD_YES,
	    .sdef = "info", .conv = log_level_parse,
	    .conv_name = log_level_name,
	    .what = "one of \"error\", \"warn\", \"info\", \"debug\"" },
	/* The master runs the group commit, so a new policy applies at once. */
	[K_FSYNC] = { "fsync", CF_STR, .reload = RELOAD_YES,
	    .sdef = "batch", .conv = conv_fsync, .conv_name = fsync_name,
	    .what = "one of \"always\", \"batch\", \"none\"" },
	[K_FSYNC_INTERVAL] = { "fsync_interval_ms", CF_INT,
	    .reload = RELOAD_YES, .idef = 10, .min = 1, .max = 10000 },
	[K_MAX_CLIENTS] = { "max_clients", CF_INT, .reload = RELOAD_YES,
	    .idef = 1024, .min = 1, .max = 100000 },
	[K_MAX_MESSAGE] = { "max_message_bytes", CF_INT,
	    .reload = RELOAD_YES, .idef = NT_TEXT_MAX, .min = 1,
	    .max = 65536 },
	[K_MAX_FRAME] = { "max_frame_bytes", CF_INT, .reload = RELOAD_YES,
	    .idef = 65536, .min = 1024, .max = 16777216 },
	/* Loopback benchmarks raise it: all their clients share one address. */
	[K_MAX_PER_ADDRESS] = { "max_clients_per_address", CF_INT,
	    .reload = RELOAD_YES, .idef = 64, .min = 1, .max = 100000 },
	[K_MAX_CLIENT_BACKLOG] = { "max_client_backlog_bytes", CF_INT,
	    .reload = RELOAD_YES, .idef = 1048576, .min = 65536,
	    .max = 1073741824 },
	[K_MAX_PEER_BACKLOG] = { "max_peer_backlog_bytes", CF_INT,
	    .reload = RELOAD_YES, .idef = 16777216, .min = 65536,
	    .max = 1073741824 },
	[K_HTTP_TIMEOUT] = { "http_timeout_ms", CF_INT, .reload = RELOAD_YES,
	    .idef = 10000, .min = 100, .max = 3600000 },
	[K_JOIN_TIMEOUT] = { "join_timeout_ms", CF_INT, .reload = RELOAD_YES,
	    .idef = 15000, .min = 100, .max = 3600000 },
	/* 0: no pings (a dead connection then lasts as long as TCP says). */
	[K_PING_INTERVAL] = { "ping_interval_ms", CF_INT,
	    .reload = RELOAD_YES, .idef = 30000, .min = 0, .max = 3600000 },
	[K_PEER_PING_INTERVAL] = { "peer_ping_interval_ms", CF_INT,
	    .reload = RELOAD_YES, .idef = 2000, .min = 0, .max = 3600000 },
	[K_PING_TIMEOUT] = { "ping_timeout_ms", CF_INT, .reload = RELOAD_YES,
	    .idef = 4000, .min = 100, .max = 3600000 },
	/* Past this, a worker that does not read is killed and restarted. */
	[K_WORKER_BACKLOG] = { "worker_backlog_bytes", CF_INT,
	    .reload = RELOAD_YES, .idef = 64 * 1024 * 1024,
	    .min = 2 * 1024 * 1024, .max = 1024 * 1024 * 1024 },
	/* A join without since gets the newest this many; 0: all. */
	[K_JOIN_HISTORY] = { "join_history", CF_INT, .reload = RELOAD_YES,
	    .idef = 1000, .min = 0, .max = 1000000000 },
	/* "": the page installed with nodetalkd (PKGDATADIR/www). */
	[K_WWW_DIR] = { "www_dir", CF_STR, .reload = RELOAD_YES,
	    .sdef = "", .conv = conv_any, .what = "a directory" },
	/* "": stderr; "syslog": the daemon facility; else a file. */
	[K_LOG_FILE] = { "log_file", CF_STR, .reload = RELOAD_YES,
	    .sdef = "", .conv = conv_any, .what = "a path or \"syslog\"" },
	/* "": keep the starting user; else drop to it after binding. */
	[K_USER] = { "user", CF_STR, .reload = RELOAD_NO,
	    .sdef = "", .conv = conv_any, .what = "a user name" },
	/* "": peers are not authenticated; else every hello is signed. */
	[K_SECRET] = { "secret", CF_STR, .reload = RELOAD_YES,
	    .sdef = "", .conv = conv_any, .what = "a string" },
	/* The store is one engine's cache: switching needs a restart. */
	[K_ENGINE] = { "engine", CF_STR, .reload = RELOAD_NO,
	    .sdef = "mesh", .conv = conv_engine, .conv_name = engine_name,
	    .what = "\"mesh\" or \"nats\"" },
	[K_NATS] = { "nats", CF_GROUP, .reload = RELOAD_ENGINE },
	[K_NODES] = { "nodes", CF_NODES, CF_REQUIRED, RELOAD_YES, .sdef = NULL },
};

/* A frame carries one text plus its JSON envelope. */
#define FRAME_OVERHEAD	1024

enum {
	N_ID, N_HOST, N_PORT, N_LISTEN, N_DATA_DIR, N_SEED, N_NKEYS
};

static const struct cf_key node_keys[N_NKEYS] = {
	[N_ID] = { "id", CF_STR, CF_REQUIRED, RELOAD_YES,
	    .conv = conv_id, .what = ID_WHAT },
	[N_HOST] = { "host", CF_STR, CF_REQUIRED, RELOAD_YES,
	    .conv = conv_nonempty, .what = "non-empty" },
	[N_PORT] = { "port", CF_INHERIT, .reload = RELOAD_WS,
	    .inherit = K_PORT },
	[N_LISTEN] = { "listen", CF_INHERIT, .reload = RELOAD_WS,
	    .inherit = K_LISTEN },
	[N_DATA_DIR] = { "data_dir", CF_INHERIT, .reload = RELOAD_NO,
	    .inherit = K_DATA_DIR },
	[N_SEED] = { "seed", CF_BOOL, .reload = RELOAD_YES, .idef = 0 },
};

/* The nats group: read only with engine = "nats" (doc/nats.md). */
enum {
	NK_SERVERS, NK_STREAM, NK_REPLICAS, NK_DUPWIN, NK_TIMEOUT,
	NK_CONNECT_TIMEOUT, NK_TOKEN, NK_USER, NK_PASSWORD, NK_CREDS,
	NK_TLS_CA, NK_TLS_CERT, NK_TLS_KEY, NK_N
};

static const struct cf_key nats_keys[NK_N] = {
	[NK_SERVERS] = { "servers", CF_STRV, CF_REQUIRED, RELOAD_ENGINE,
	    .conv = conv_url, .what = "a URL nats://host[:port] or "
	    "tls://host[:port]" },
	/* Messages carry it as their origin: the cache holds one stream. */
	[NK_STREAM] = { "stream", CF_STR, .reload = RELOAD_NO,
	    .sdef = "nodetalk", .conv = conv_id, .what = ID_WHAT },
	[NK_REPLICAS] = { "replicas", CF_INT, .reload = RELOAD_ENGINE,
	    .idef = 3, .min = 1, .max = 5 },
	[NK_DUPWIN] = { "duplicate_window_ms", CF_INT,
	    .reload = RELOAD_ENGINE, .idef = 120000, .min = 1000,
	    .max = 86400000 },
	[NK_TIMEOUT] = { "timeout_ms", CF_INT, .reload = RELOAD_ENGINE,
	    .idef = 5000, .min = 100, .max = 60000 },
	[NK_CONNECT_TIMEOUT] = { "connect_timeout_ms", CF_INT,
	    .reload = RELOAD_ENGINE, .idef = 2000, .min = 100, .max = 60000 },
	[NK_TOKEN] = { "token", CF_STR, .reload = RELOAD_ENGINE, .sdef = "",
	    .conv = conv_any, .what = "a string" },
	[NK_USER] = { "user", CF_STR, .reload = RELOAD_ENGINE, .sdef = "",
	    .conv = conv_any, .what = "a string" },
	[NK_PASSWORD] = { "password", CF_STR, .reload = RELOAD_ENGINE,
	    .sdef = "", .conv = conv_any, .what = "a string" },
	[NK_CREDS] = { "creds", CF_STR, .reload = RELOAD_ENGINE, .sdef = "",
	    .conv = conv_any, .what = "a path" },
	[NK_TLS_CA] = { "tls_ca", CF_STR, .reload = RELOAD_ENGINE,
	    .sdef = "", .conv = conv_any, .what = "a path" },
	[NK_TLS_CERT] = { "tls_cert", CF_STR, .reload = RELOAD_ENGINE,
	    .sdef = "", .conv = conv_any, .what = "a path" },
	[NK_TLS_KEY] = { "tls_key", CF_STR, .reload = RELOAD_ENGINE,
	    .sdef = "", .conv = conv_any, .what = "a path" },
};

static const char *engine_names[] = {
	[ENGINE_MESH] = "mesh",
	[ENGINE_NATS] = "nats"
};

static const char *fsync_names[] = {
	[FSYNC_NONE] = "none",
	[FSYNC_BATCH] = "batch",
	[FSYNC_ALWAYS] = "always"
};

static void	 cf_add(struct cf_ctx *, const char *, const char *,
		    va_list) __attribute__((format(printf, 3, 0)));
static void	 cf_err(struct cf_ctx *, const config_setting_t *,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static void	 cf_errx(struct cf_ctx *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
conv_id(const char *s)
{
	return (valid_node_id(s) ? 0 : -1);
}

static int
conv_nonempty(const char *s)
{
	return (*s != '\0' ? 0 : -1);
}

static int
conv_any(const char *s)
{
	return (0);
}

static int
conv_fsync(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(fsync_names) / sizeof(fsync_names[0]); i++)
		if (strcmp(s, fsync_names[i]) == 0)
			return ((int)i);
	return (-1);
}

const char *
fsync_policy_name(enum fsync_policy p)
{
	if ((size_t)p >= sizeof(fsync_names) / sizeof(fsync_names[0]))
		return ("?");
	return (fsync_names[p]);
}

static int
conv_engine(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(engine_names) / sizeof(engine_names[0]); i++)
		if (strcmp(s, engine_names[i]) == 0)
			return ((int)i);
	return (-1);
}

const char *
config_engine_name(enum nt_engine e)
{
	if ((size_t)e >= sizeof(engine_names) / sizeof(engine_names[0]))
		return ("?");
	return (engine_names[e]);
}

static const char *
engine_name(int e)
{
	return (config_engine_name((enum nt_engine)e));
}

/*
 * What libnats takes as a server: nats:// or tls://, a host (optionally
 * with user:password@) and an optional port.  Commas would split the
 * URL in two inside libnats, blanks are always a typo.
 */
static int
conv_url(const char *s)
{
	const char	*host, *port, *p;
	char		*end;
	long		 n;

	if (strncmp(s, "nats://", 7) == 0)
		host = s + 7;
	else if (strncmp(s, "tls://", 6) == 0)
		host = s + 6;
	else
		return (-1);
	if ((p = strrchr(host, '@')) != NULL)
		host = p + 1;
	if (*host == '\0' || *host == ':' || strpbrk(host, " \t,/") != NULL)
		return (-1);
	if ((port = strrchr(host, ':')) == NULL || strchr(host, ']') > port)
		return (0);
	n = strtol(port + 1, &end, 10);
	return (port[1] >= '0' && port[1] <= '9' && *end == '\0' && n >= 1 &&
	    n <= 65535 ? 0 : -1);
}

/* conv_name wants an int; the public name takes the enum. */
static const char *
fsync_name(int p)
{
	return (fsync_policy_name((enum fsync_policy)p));
}

/*
 * s as a libconfig string literal: config_print() output must parse back,
 * and an error line must stay one line whatever the file contained.
 */
static char *
cf_quote(const char *s)
{
	char		*q, *p;
	unsigned char	 ch;

	p = q = xmalloc(strlen(s) * 4 + 3);
	*p++ = '"';
	for (; *s != '\0'; s++) {
		ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f)
			p += snprintf(p, 5, "\\x%02x", ch);
		else
			*p++ = (char)ch;
	}
	*p++ = '"';
	*p = '\0';
	return (q);
}

/* Append "where: message" as one more line of ctx->errs. */
static void
cf_add(struct cf_ctx *ctx, const char *where, const char *fmt, va_list ap)
{
	va_list	 ap2;
	char	*msg, *all;
	int	 n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	msg = xmalloc((size_t)n + 1);
	if (vsnprintf(msg, (size_t)n + 1, fmt, ap) < 0)
		msg[0] = '\0';
	if (ctx->errs == NULL)
		xasprintf(&all, "%s: %s", where, msg);
	else
		xasprintf(&all, "%s\n%s: %s", ctx->errs, where, msg);
	free(ctx->errs);
	free(msg);
	ctx->errs = all;
}

/*
 * An error at setting s.  The root has no line of its own: a missing
 * top-level key is reported at line 1, where one would add it.
 */
static void
cf_err(struct cf_ctx *ctx, const config_setting_t *s, const char *fmt, ...)
{
	va_list		 ap;
	const char	*file = NULL;
	unsigned int	 line = 0;
	char		*where;

	if (s != NULL) {
		file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	xasprintf(&where, "%s:%u", file != NULL ? file : ctx->path,
	    line > 0 ? line : 1);
	va_start(ap, fmt);
	cf_add(ctx, where, fmt, ap);
	va_end(ap);
	free(where);
}

/* An error with no line: the file itself, or the environment. */
static void
cf_errx(struct cf_ctx *ctx, const char *where, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	cf_add(ctx, where, fmt, ap);
	va_end(ap);
}

static int
parse_int(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	long long	 n;

	/*
	 * libconfig 1.5 keeps big literals without an L suffix as a
	 * truncated int; nothing here can see that, only the range check
	 * below catches what the truncation leaves out of range.
	 */
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		cf_err(ctx, s, "'%s' must be an integer", k->name);
		return (-1);
	}
	n = config_setting_get_int64(s);
	if (n < k->min || n > k->max) {
		cf_err(ctx, s, "'%s' must be between %lld and %lld, not %lld",
		    k->name, k->min, k->max, n);
		return (-1);
	}
	v->i = n;
	v->ok = 1;
	return (0);
}

static int
parse_bool(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cf_err(ctx, s, "'%s' must be true or false", k->name);
		return (-1);
	}
	v->i = config_setting_get_bool(s);
	v->ok = 1;
	return (0);
}

static int
parse_str(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	const char	*str;
	char		*q;
	int		 n = 0;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cf_err(ctx, s, "'%s' must be a string", k->name);
		return (-1);
	}
	str = config_setting_get_string(s);
	if (k->conv != NULL && (n = k->conv(str)) == -1) {
		q = cf_quote(str);
		cf_err(ctx, s, "'%s' must be %s, not %s", k->name, k->what, q);
		free(q);
		return (-1);
	}
	v->s = str;
	v->i = n;
	v->ok = 1;
	return (0);
}

/* Only the list's shape: parse_nodes() reads the entries. */
static int
parse_list(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	if (!config_setting_is_list(s)) {
		cf_err(ctx, s, "'%s' must be a list: ( { id = ...; "
		    "host = ...; }, ... )", k->name);
		return (-1);
	}
	if (config_setting_length(s) == 0) {
		cf_err(ctx, s, "'%s' must have at least one entry", k->name);
		return (-1);
	}
	v->ok = 1;
	return (0);
}

/* A list or array of strings, each checked with conv; fill_strv() copies. */
static int
parse_strv(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	const config_setting_t	*e;
	char			*q;
	int			 i, n, bad = 0;

	if (!config_setting_is_aggregate(s) || config_setting_is_group(s)) {
		cf_err(ctx, s, "'%s' must be a list of strings: [ \"...\", "
		    "... ]", k->name);
		return (-1);
	}
	if ((n = config_setting_length(s)) == 0) {
		cf_err(ctx, s, "'%s' must have at least one entry", k->name);
		return (-1);
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cf_err(ctx, e, "each entry of '%s' must be a string",
			    k->name);
			bad = 1;
		} else if (k->conv(config_setting_get_string(e)) == -1) {
			q = cf_quote(config_setting_get_string(e));
			cf_err(ctx, e, "each entry of '%s' must be %s, not %s",
			    k->name, k->what, q);
			free(q);
			bad = 1;
		}
	}
	if (bad)
		return (-1);
	v->ok = 1;
	return (0);
}

/* Only the group's shape: parse_nats() reads its keys. */
static int
parse_grp(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	if (!config_setting_is_group(s)) {
		cf_err(ctx, s, "'%s' must be a group: { key = value; ... }",
		    k->name);
		return (-1);
	}
	v->ok = 1;
	return (0);
}

/* Check setting s against key k and keep it in *v; 0 when good. */
static int
parse_value(struct cf_ctx *ctx, const struct cf_key *k,
    const config_setting_t *s, struct cf_val *v)
{
	v->src = s;
	switch (k->type) {
	case CF_INT:
		return (parse_int(ctx, k, s, v));
	case CF_BOOL:
		return (parse_bool(ctx, k, s, v));
	case CF_STR:
		return (parse_str(ctx, k, s, v));
	case CF_NODES:
		return (parse_list(ctx, k, s, v));
	case CF_STRV:
		return (parse_strv(ctx, k, s, v));
	case CF_GROUP:
		return (parse_grp(ctx, k, s, v));
	case CF_INHERIT:
		/* An override is checked like the key it overrides. */
		return (parse_value(ctx, &top_keys[k->inherit], s, v));
	}
	return (-1);
}

static size_t
key_find(const struct cf_key *keys, size_t nkeys, const char *name)
{
	size_t	 k;

	for (k = 0; k < nkeys; k++)
		if (strcmp(keys[k].name, name) == 0)
			break;
	return (k);
}

/*
 * Keys the group did not set get their default; CF_INHERIT ones stay
 * unset, node_resolve() takes the top-level value for them.
 */
static void
apply_defaults(struct cf_ctx *ctx, const config_setting_t *g,
    const struct cf_key *keys, size_t nkeys, struct cf_val *vals)
{
	const struct cf_key	*k;
	size_t			 i;

	for (i = 0; i < nkeys; i++) {
		k = &keys[i];
		if (vals[i].src != NULL || k->type == CF_INHERIT ||
		    k->type == CF_GROUP)
			continue;
		if (k->flags & CF_REQUIRED) {
			cf_err(ctx, g, "missing required key '%s'", k->name);
			continue;
		}
		if (k->type == CF_STR && k->sdef == NULL)
			continue;
		vals[i].s = k->sdef;
		vals[i].i = k->idef;
		if (k->conv != NULL)
			vals[i].i = k->conv(k->sdef);
		vals[i].ok = 1;
	}
}

/*
 * The members of group g, checked against keys[] into vals[] (indexed
 * like keys[]).  Unknown keys are errors: a misspelt key silently taking
 * its default is the classic configuration bug.  libconfig has already
 * refused duplicate names.
 */
static void
parse_group(struct cf_ctx *ctx, const config_setting_t *g,
    const struct cf_key *keys, size_t nkeys, struct cf_val *vals)
{
	const config_setting_t	*s;
	size_t			 k;
	int			 i, n;

	memset(vals, 0, nkeys * sizeof(*vals));
	n = config_setting_length(g);
	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(g, i);
		k = key_find(keys, nkeys, config_setting_name(s));
		if (k == nkeys)
			cf_err(ctx, s, "unknown key '%s'",
			    config_setting_name(s));
		else
			parse_value(ctx, &keys[k], s, &vals[k]);
	}
	apply_defaults(ctx, g, keys, nkeys, vals);
}

/* The entry's own value for key k, else the top-level one. */
static const struct cf_val *
node_resolve(const struct cf_val *v, int k, const struct cf_val *top)
{
	if (node_keys[k].type != CF_INHERIT || v[k].src != NULL)
		return (&v[k]);
	return (&top[node_keys[k].inherit]);
}

/* A bad value was reported already; the load fails, only don't crash. */
static char *
val_strdup(const struct cf_val *v)
{
	return (xstrdup(v->ok ? v->s : ""));
}

static void
node_fill(struct nt_node *n, const struct cf_val *v,
    const struct cf_val *top)
{
	n->id = val_strdup(node_resolve(v, N_ID, top));
	n->host = val_strdup(node_resolve(v, N_HOST, top));
	n->port = (int)node_resolve(v, N_PORT, top)->i;
	n->listen = val_strdup(node_resolve(v, N_LISTEN, top));
	n->data_dir = val_strdup(node_resolve(v, N_DATA_DIR, top));
	n->seed = (int)node_resolve(v, N_SEED, top)->i;
}

/* The id setting of an entry before index `before` that uses id. */
static const config_setting_t *
id_seen(const config_setting_t *list, int before, const char *id)
{
	const config_setting_t	*e, *s;
	int			 j;

	for (j = 0; j < before; j++) {
		e = config_setting_get_elem(list, j);
		if (!config_setting_is_group(e))
			continue;
		s = config_setting_get_member(e, node_keys[N_ID].name);
		if (s != NULL && config_setting_type(s) == CONFIG_TYPE_STRING &&
		    strcmp(config_setting_get_string(s), id) == 0)
			return (s);
	}
	return (NULL);
}

/*
 * Node entries with a usable id go into c->nodes even when another field
 * is bad, so that the self check below does not add a bogus "not in
 * nodes" to the real error.
 */
static void
parse_nodes(struct cf_ctx *ctx, const config_setting_t *list,
    const struct cf_val *top, struct nt_config *c)
{
	const config_setting_t	*e, *dup;
	struct cf_val		 v[N_NKEYS];
	int			 i, n;

	n = config_setting_length(list);
	c->nodes = xcalloc((size_t)n, sizeof(*c->nodes));
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(list, i);
		if (!config_setting_is_group(e)) {
			cf_err(ctx, e, "each entry of 'nodes' must be a "
			    "group: { id = ...; host = ...; }");
			ctx->badids++;
			continue;
		}
		parse_group(ctx, e, node_keys, N_NKEYS, v);
		if (!v[N_ID].ok) {
			ctx->badids++;
			continue;
		}
		if ((dup = id_seen(list, i, v[N_ID].s)) != NULL) {
			cf_err(ctx, v[N_ID].src, "duplicate node id \"%s\" "
			    "(first at line %u)", v[N_ID].s,
			    config_setting_source_line(dup));
			continue;
		}
		if (top[K_ENGINE].ok && top[K_ENGINE].i == ENGINE_NATS &&
		    v[N_SEED].src != NULL && v[N_SEED].ok && v[N_SEED].i)
			cf_err(ctx, v[N_SEED].src, "'seed' is a mesh feature: "
			    "with engine = \"nats\" no node dials another, and "
			    "a Python prototype node cannot read the stream");
		node_fill(&c->nodes[c->nnodes++], v, top);
	}
}

static char **
fill_strv(const struct cf_val *v, size_t *n)
{
	const config_setting_t	*s = v->src;
	char			**sv;
	int			 i;

	*n = 0;
	if (s == NULL || !v->ok)
		return (NULL);
	sv = xcalloc((size_t)config_setting_length(s), sizeof(*sv));
	for (i = 0; i < config_setting_length(s); i++)
		sv[(*n)++] = xstrdup(config_setting_get_string(
		    config_setting_get_elem(s, i)));
	return (sv);
}

static void
fill_nats(struct nt_nats *n, const struct cf_val *v)
{
	n->servers = fill_strv(&v[NK_SERVERS], &n->nservers);
	n->stream = val_strdup(&v[NK_STREAM]);
	xasprintf(&n->subject, "nodetalk.%s", n->stream);
	n->replicas = (int)v[NK_REPLICAS].i;
	n->duplicate_window_ms = (int)v[NK_DUPWIN].i;
	n->timeout_ms = (int)v[NK_TIMEOUT].i;
	n->connect_timeout_ms = (int)v[NK_CONNECT_TIMEOUT].i;
	n->token = val_strdup(&v[NK_TOKEN]);
	n->user = val_strdup(&v[NK_USER]);
	n->password = val_strdup(&v[NK_PASSWORD]);
	n->creds = val_strdup(&v[NK_CREDS]);
	n->tls_ca = val_strdup(&v[NK_TLS_CA]);
	n->tls_cert = val_strdup(&v[NK_TLS_CERT]);
	n->tls_key = val_strdup(&v[NK_TLS_KEY]);
}

/* Where to report a nats key: its own line, else the group's. */
static const config_setting_t *
nats_at(const struct cf_val *v, int k, const config_setting_t *g)
{
	return (v[k].src != NULL ? v[k].src : g);
}

/* One way to log in, and a certificate with its key. */
static void
check_nats_auth(struct cf_ctx *ctx, const struct cf_val *v,
    const config_setting_t *g)
{
	int	 tok, usr, pw, cr;

	tok = v[NK_TOKEN].ok && *v[NK_TOKEN].s != '\0';
	usr = v[NK_USER].ok && *v[NK_USER].s != '\0';
	pw = v[NK_PASSWORD].ok && *v[NK_PASSWORD].s != '\0';
	cr = v[NK_CREDS].ok && *v[NK_CREDS].s != '\0';
	if (usr != pw)
		cf_err(ctx, nats_at(v, usr ? NK_USER : NK_PASSWORD, g),
		    "'user' and 'password' go together");
	if (tok + usr + cr > 1)
		cf_err(ctx, nats_at(v, tok ? NK_TOKEN : NK_USER, g),
		    "give one of 'token', 'user' and 'password', or 'creds'");
	if ((v[NK_TLS_CERT].ok && *v[NK_TLS_CERT].s != '\0') !=
	    (v[NK_TLS_KEY].ok && *v[NK_TLS_KEY].s != '\0'))
		cf_err(ctx, nats_at(v, v[NK_TLS_CERT].src != NULL ?
		    NK_TLS_CERT : NK_TLS_KEY, g),
		    "'tls_cert' and 'tls_key' go together");
}

/*
 * The nats group.  Without engine = "nats" it is checked as written but
 * not required; with it, it must name the servers, and its stream (the
 * origin of every message) must not look like one of the nodes.
 */
static void
parse_nats(struct cf_ctx *ctx, const config_setting_t *root,
    const struct cf_val *top, struct nt_config *c)
{
	const config_setting_t	*g = top[K_NATS].ok ? top[K_NATS].src : NULL;
	struct cf_val		 v[NK_N];
	int			 nats, i;

	nats = top[K_ENGINE].ok && top[K_ENGINE].i == ENGINE_NATS;
	memset(v, 0, sizeof(v));
	if (g != NULL) {
		parse_group(ctx, g, nats_keys, NK_N, v);
		check_nats_auth(ctx, v, g);
	} else {
		for (i = 0; i < NK_N; i++) {
			v[i].s = nats_keys[i].sdef;
			v[i].i = nats_keys[i].idef;
			v[i].ok = !(nats_keys[i].flags & CF_REQUIRED);
		}
		if (nats && top[K_NATS].src == NULL)
			cf_err(ctx, top[K_ENGINE].src, "engine = \"nats\" "
			    "needs a 'nats' group: nats = { servers = "
			    "[ \"nats://...\" ]; };");
	}
	fill_nats(&c->nats, v);
#ifndef HAVE_NATS
	if (nats)
		cf_err(ctx, top[K_ENGINE].src, "this nodetalkd was built "
		    "without the NATS engine (configure found no libnats; "
		    "install libnats-dev and rebuild)");
#endif
	if (nats && v[NK_STREAM].ok && config_node(c, c->nats.stream) != NULL)
		cf_err(ctx, nats_at(v, NK_STREAM, g != NULL ? g : root),
		    "'stream' must not be a node id: \"%s\" is the origin "
		    "of every message in the stream", c->nats.stream);
}

static void
fill_top(struct nt_config *c, const struct cf_val *v)
{
	c->log_level = (int)v[K_LOG_LEVEL].i;
	c->fsync = (enum fsync_policy)v[K_FSYNC].i;
	c->fsync_interval_ms = (int)v[K_FSYNC_INTERVAL].i;
	c->max_clients = (int)v[K_MAX_CLIENTS].i;
	c->max_message_bytes = (int)v[K_MAX_MESSAGE].i;
	c->max_frame_bytes = (int)v[K_MAX_FRAME].i;
	c->max_clients_per_address = (int)v[K_MAX_PER_ADDRESS].i;
	c->max_client_backlog_bytes = (int)v[K_MAX_CLIENT_BACKLOG].i;
	c->max_peer_backlog_bytes = (int)v[K_MAX_PEER_BACKLOG].i;
	c->http_timeout_ms = (int)v[K_HTTP_TIMEOUT].i;
	c->join_timeout_ms = (int)v[K_JOIN_TIMEOUT].i;
	c->ping_interval_ms = (int)v[K_PING_INTERVAL].i;
	c->peer_ping_interval_ms = (int)v[K_PEER_PING_INTERVAL].i;
	c->ping_timeout_ms = (int)v[K_PING_TIMEOUT].i;
	c->worker_backlog_bytes = (int)v[K_WORKER_BACKLOG].i;
	c->join_history = (int)v[K_JOIN_HISTORY].i;
	c->www_dir = xstrdup(v[K_WWW_DIR].s);
	c->log_file = xstrdup(v[K_LOG_FILE].s);
	c->user = xstrdup(v[K_USER].s);
	c->secret = xstrdup(v[K_SECRET].s);
	c->engine = (enum nt_engine)v[K_ENGINE].i;
}

static void
check_limits(struct cf_ctx *ctx, const config_setting_t *root,
    const struct cf_val *top)
{
	const struct cf_val	*msg = &top[K_MAX_MESSAGE];
	const struct cf_val	*frame = &top[K_MAX_FRAME];
	const config_setting_t	*at;

	if (!msg->ok || !frame->ok || frame->i >= msg->i + FRAME_OVERHEAD)
		return;
	at = frame->src != NULL ? frame->src : msg->src;
	cf_err(ctx, at != NULL ? at : root, "'%s' (%lld) must be at least "
	    "'%s' + %d (%lld)", top_keys[K_MAX_FRAME].name, frame->i,
	    top_keys[K_MAX_MESSAGE].name, FRAME_OVERHEAD,
	    msg->i + FRAME_OVERHEAD);
}

/* $NT_PORT, as in the seed: one port for every node. */
static void
apply_port_env(struct cf_ctx *ctx, struct nt_config *c, const char *env)
{
	const struct cf_key	*k = &top_keys[K_PORT];
	char			*end, *q;
	long			 n;
	size_t			 i;

	errno = 0;
	n = strtol(env, &end, 10);
	if (*env < '0' || *env > '9' || *end != '\0' || errno != 0 ||
	    n < k->min || n > k->max) {
		q = cf_quote(env);
		cf_errx(ctx, "NT_PORT", "must be a port between %lld and "
		    "%lld, not %s", k->min, k->max, q);
		free(q);
		return;
	}
	for (i = 0; i < c->nnodes; i++)
		c->nodes[i].port = (int)n;
}

/* "A, B, C": the ids an operator could have meant. */
static char *
known_ids(const struct nt_config *c)
{
	char	*s, *t;
	size_t	 i;

	s = xstrdup("");
	for (i = 0; i < c->nnodes; i++) {
		xasprintf(&t, "%s%s%s", s, i > 0 ? ", " : "", c->nodes[i].id);
		free(s);
		s = t;
	}
	return (s);
}

/*
 * This node: -n wins over node_id in the file.  Not checked against the
 * entries when one of them had no usable id: that error says it all.
 */
static void
pick_self(struct cf_ctx *ctx, struct nt_config *c,
    const config_setting_t *root, const struct cf_val *top, const char *arg)
{
	const config_setting_t	*at;
	const char		*id;
	char			*q, *known;

	if (arg != NULL) {
		id = arg;
		at = top[K_NODES].src != NULL ? top[K_NODES].src : root;
	} else if (top[K_NODE_ID].ok) {
		id = top[K_NODE_ID].s;
		at = top[K_NODE_ID].src;
	} else {
		if (top[K_NODE_ID].src == NULL)
			cf_err(ctx, root, "no node id: set 'node_id' or "
			    "use -n");
		return;
	}
	c->node_id = xstrdup(id);
	if (!top[K_NODES].ok || ctx->badids > 0 ||
	    (c->self = config_node(c, id)) != NULL)
		return;
	q = cf_quote(id);
	known = known_ids(c);
	cf_err(ctx, at, "node %s%s is not in 'nodes' (known: %s)", q,
	    arg != NULL ? " (from -n)" : "", known);
	free(known);
	free(q);
}

static void
cf_parse(struct cf_ctx *ctx, const config_t *lc, struct nt_config *c,
    const char *node_id, const char *port_env)
{
	const config_setting_t	*root = config_root_setting(lc);
	struct cf_val		 top[K_NTOP];

	parse_group(ctx, root, top_keys, K_NTOP, top);
	fill_top(c, top);
	if (top[K_NODES].ok)
		parse_nodes(ctx, top[K_NODES].src, top, c);
	parse_nats(ctx, root, top, c);
	check_limits(ctx, root, top);
	if (port_env != NULL)
		apply_port_env(ctx, c, port_env);
	pick_self(ctx, c, root, top, node_id);
}

/*
 * Open the file ourselves: libconfig only says "file I/O error", and the
 * operator wants to know whether it is missing or unreadable.
 */
static int
cf_read(struct cf_ctx *ctx, config_t *lc)
{
	FILE		*fp;
	struct stat	 st;
	const char	*file;
	char		*where;
	int		 ok;

	if ((fp = fopen(ctx->path, "r")) == NULL) {
		cf_errx(ctx, ctx->path, "cannot open: %s", strerror(errno));
		return (-1);
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		cf_errx(ctx, ctx->path, "cannot open: %s", strerror(EISDIR));
		fclose(fp);
		return (-1);
	}
	ok = config_read(lc, fp);
	fclose(fp);
	if (ok)
		return (0);
	file = config_error_file(lc);
	xasprintf(&where, "%s:%d", file != NULL ? file : ctx->path,
	    config_error_line(lc));
	cf_errx(ctx, where, "%s", config_error_text(lc));
	free(where);
	return (-1);
}

struct nt_config *
config_load(const char *path, const char *node_id, const char *port_env,
    char **errors)
{
	struct cf_ctx		 ctx;
	struct nt_config	*c;
	config_t		 lc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.path = path;
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	config_init(&lc);
	if (cf_read(&ctx, &lc) == 0)
		cf_parse(&ctx, &lc, c, node_id, port_env);
	config_destroy(&lc);
	*errors = ctx.errs;
	if (ctx.errs != NULL) {
		config_free(c);
		return (NULL);
	}
	return (c);
}

static void
nats_free(struct nt_nats *n)
{
	size_t	 i;

	for (i = 0; i < n->nservers; i++)
		free(n->servers[i]);
	free(n->servers);
	free(n->stream);
	free(n->subject);
	free(n->token);
	free(n->user);
	free(n->password);
	free(n->creds);
	free(n->tls_ca);
	free(n->tls_cert);
	free(n->tls_key);
}

void
config_free(struct nt_config *c)
{
	size_t	 i;

	if (c == NULL)
		return;
	nats_free(&c->nats);
	for (i = 0; i < c->nnodes; i++) {
		free(c->nodes[i].id);
		free(c->nodes[i].host);
		free(c->nodes[i].listen);
		free(c->nodes[i].data_dir);
	}
	free(c->nodes);
	free(c->node_id);
	free(c->www_dir);
	free(c->log_file);
	free(c->user);
	free(c->secret);
	free(c->path);
	free(c);
}

struct nt_node *
config_node(const struct nt_config *c, const char *id)
{
	size_t	 i;

	for (i = 0; i < c->nnodes; i++)
		if (strcmp(c->nodes[i].id, id) == 0)
			return (&c->nodes[i]);
	return (NULL);
}

int
config_has_seed(const struct nt_config *c)
{
	size_t	 i;

	for (i = 0; i < c->nnodes; i++)
		if (c->nodes[i].seed && &c->nodes[i] != c->self)
			return (1);
	return (0);
}

static int
node_equal(const struct nt_node *a, const struct nt_node *b)
{
	return (strcmp(a->id, b->id) == 0 &&
	    strcmp(a->host, b->host) == 0 &&
	    a->port == b->port &&
	    strcmp(a->listen, b->listen) == 0 &&
	    strcmp(a->data_dir, b->data_dir) == 0 &&
	    a->seed == b->seed);
}

int
config_nodes_equal(const struct nt_config *a, const struct nt_config *b)
{
	size_t	 i;

	if (a->nnodes != b->nnodes)
		return (0);
	for (i = 0; i < a->nnodes; i++)
		if (!node_equal(&a->nodes[i], &b->nodes[i]))
			return (0);
	return (1);
}

static int
str_eq(const char *a, const char *b)
{
	return (strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0);
}

/* Whether the nats worker would run the same with b as with a. */
int
config_nats_equal(const struct nt_nats *a, const struct nt_nats *b)
{
	size_t	 i;

	if (a->nservers != b->nservers)
		return (0);
	for (i = 0; i < a->nservers; i++)
		if (strcmp(a->servers[i], b->servers[i]) != 0)
			return (0);
	return (str_eq(a->stream, b->stream) &&
	    a->replicas == b->replicas &&
	    a->duplicate_window_ms == b->duplicate_window_ms &&
	    a->timeout_ms == b->timeout_ms &&
	    a->connect_timeout_ms == b->connect_timeout_ms &&
	    str_eq(a->token, b->token) && str_eq(a->user, b->user) &&
	    str_eq(a->password, b->password) && str_eq(a->creds, b->creds) &&
	    str_eq(a->tls_ca, b->tls_ca) && str_eq(a->tls_cert, b->tls_cert) &&
	    str_eq(a->tls_key, b->tls_key));
}

/*
 * The value config_print() shows for a top-level key: the inverse of
 * fill_top().  port, listen and data_dir are per node once resolved;
 * the top level shows this node's.
 */
static struct cf_val
top_value(const struct nt_config *c, int k)
{
	struct cf_val	 v;

	memset(&v, 0, sizeof(v));
	switch (k) {
	case K_NODE_ID:
		v.s = c->node_id;
		break;
	case K_PORT:
		v.i = c->self->port;
		break;
	case K_LISTEN:
		v.s = c->self->listen;
		break;
	case K_DATA_DIR:
		v.s = c->self->data_dir;
		break;
	case K_LOG_LEVEL:
		v.i = c->log_level;
		break;
	case K_FSYNC:
		v.i = c->fsync;
		break;
	case K_FSYNC_INTERVAL:
		v.i = c->fsync_interval_ms;
		break;
	case K_MAX_CLIENTS:
		v.i = c->max_clients;
		break;
	case K_MAX_MESSAGE:
		v.i = c->max_message_bytes;
		break;
	case K_MAX_FRAME:
		v.i = c->max_frame_bytes;
		break;
	case K_MAX_PER_ADDRESS:
		v.i = c->max_clients_per_address;
		break;
	case K_MAX_CLIENT_BACKLOG:
		v.i = c->max_client_backlog_bytes;
		break;
	case K_MAX_PEER_BACKLOG:
		v.i = c->max_peer_backlog_bytes;
		break;
	case K_HTTP_TIMEOUT:
		v.i = c->http_timeout_ms;
		break;
	case K_JOIN_TIMEOUT:
		v.i = c->join_timeout_ms;
		break;
	case K_PING_INTERVAL:
		v.i = c->ping_interval_ms;
		break;
	case K_PEER_PING_INTERVAL:
		v.i = c->peer_ping_interval_ms;
		break;
	case K_PING_TIMEOUT:
		v.i = c->ping_timeout_ms;
		break;
	case K_WORKER_BACKLOG:
		v.i = c->worker_backlog_bytes;
		break;
	case K_JOIN_HISTORY:
		v.i = c->join_history;
		break;
	case K_WWW_DIR:
		v.s = c->www_dir;
		break;
	case K_LOG_FILE:
		v.s = c->log_file;
		break;
	case K_USER:
		v.s = c->user;
		break;
	case K_SECRET:
		v.s = c->secret;
		break;
	case K_ENGINE:
		v.i = c->engine;
		break;
	}
	return (v);
}

/* The inverse of fill_nats(). */
static struct cf_val
nats_value(const struct nt_nats *n, int k)
{
	struct cf_val	 v;

	memset(&v, 0, sizeof(v));
	switch (k) {
	case NK_STREAM:
		v.s = n->stream;
		break;
	case NK_REPLICAS:
		v.i = n->replicas;
		break;
	case NK_DUPWIN:
		v.i = n->duplicate_window_ms;
		break;
	case NK_TIMEOUT:
		v.i = n->timeout_ms;
		break;
	case NK_CONNECT_TIMEOUT:
		v.i = n->connect_timeout_ms;
		break;
	case NK_TOKEN:
		v.s = n->token;
		break;
	case NK_USER:
		v.s = n->user;
		break;
	case NK_PASSWORD:
		v.s = n->password;
		break;
	case NK_CREDS:
		v.s = n->creds;
		break;
	case NK_TLS_CA:
		v.s = n->tls_ca;
		break;
	case NK_TLS_CERT:
		v.s = n->tls_cert;
		break;
	case NK_TLS_KEY:
		v.s = n->tls_key;
		break;
	}
	return (v);
}

/* The inverse of node_fill(). */
static struct cf_val
node_value(const struct nt_node *n, int k)
{
	struct cf_val	 v;

	memset(&v, 0, sizeof(v));
	switch (k) {
	case N_ID:
		v.s = n->id;
		break;
	case N_HOST:
		v.s = n->host;
		break;
	case N_PORT:
		v.i = n->port;
		break;
	case N_LISTEN:
		v.s = n->listen;
		break;
	case N_DATA_DIR:
		v.s = n->data_dir;
		break;
	case N_SEED:
		v.i = n->seed;
		break;
	}
	return (v);
}

/* "name = value;"; returns the number of bytes written. */
static int
print_setting(FILE *fp, const struct cf_key *k, const struct cf_val *v)
{
	char	*q;
	int	 n = 0;

	if (k->type == CF_INHERIT)
		k = &top_keys[k->inherit];
	switch (k->type) {
	case CF_INT:
		n = fprintf(fp, "%s = %lld;", k->name, v->i);
		break;
	case CF_BOOL:
		n = fprintf(fp, "%s = %s;", k->name, v->i ? "true" : "false");
		break;
	case CF_STR:
		q = cf_quote(k->conv_name != NULL ?
		    k->conv_name((int)v->i) : v->s);
		n = fprintf(fp, "%s = %s;", k->name, q);
		free(q);
		break;
	case CF_NODES:
	case CF_INHERIT:
	case CF_STRV:
	case CF_GROUP:
		break;
	}
	return (n);
}

static const char *
reload_note(enum cf_reload r)
{
	switch (r) {
	case RELOAD_YES:
		break;
	case RELOAD_WS:
		return ("a change restarts the ws worker");
	case RELOAD_ENGINE:
		return ("a change restarts the nats worker");
	case RELOAD_NO:
		return ("a change needs a restart of nodetalkd");
	}
	return (NULL);
}

static void
print_top(FILE *fp, const struct nt_config *c, int k)
{
	struct cf_val	 v;
	const char	*note;
	int		 n;

	v = top_value(c, k);
	n = print_setting(fp, &top_keys[k], &v);
	if ((note = reload_note(top_keys[k].reload)) != NULL)
		fprintf(fp, "%*s# %s", n < 40 ? 40 - n : 1, "", note);
	fputc('\n', fp);
}

static void
print_servers(FILE *fp, const struct nt_nats *n)
{
	char	*q;
	size_t	 i;

	fprintf(fp, "  %s = [", nats_keys[NK_SERVERS].name);
	for (i = 0; i < n->nservers; i++) {
		q = cf_quote(n->servers[i]);
		fprintf(fp, "%s %s", i > 0 ? "," : "", q);
		free(q);
	}
	fputs(" ];\n", fp);
}

/* Only with engine = "nats": the mesh has no use for the group. */
static void
print_nats(FILE *fp, const struct nt_config *c)
{
	struct cf_val	 v;
	const char	*note;
	int		 k, n;

	if (c->engine != ENGINE_NATS)
		return;
	fprintf(fp, "\n# with engine = \"nats\", a reload restarts the nats "
	    "worker when these change\n%s = {\n", top_keys[K_NATS].name);
	print_servers(fp, &c->nats);
	for (k = NK_SERVERS + 1; k < NK_N; k++) {
		v = nats_value(&c->nats, k);
		n = fprintf(fp, "  ");
		n += print_setting(fp, &nats_keys[k], &v);
		if (nats_keys[k].reload == RELOAD_NO &&
		    (note = reload_note(RELOAD_NO)) != NULL)
			fprintf(fp, "%*s# %s", n < 40 ? 40 - n : 1, "", note);
		fputc('\n', fp);
	}
	fputs("};\n", fp);
}

static void
print_nodes(FILE *fp, const struct nt_config *c)
{
	struct cf_val	 v;
	const char	*note;
	size_t		 i;
	int		 k;

	fprintf(fp, "\n# %s; in this node's own entry:\n",
	    c->engine == ENGINE_MESH ? "a reload adds and removes peers" :
	    "the gateways, for operators and nt-status");
	for (k = 0; k < N_NKEYS; k++)
		if ((note = reload_note(node_keys[k].reload)) != NULL)
			fprintf(fp, "#   %s: %s\n", node_keys[k].name, note);
	fprintf(fp, "%s = (\n", top_keys[K_NODES].name);
	for (i = 0; i < c->nnodes; i++) {
		fputs("  {", fp);
		for (k = 0; k < N_NKEYS; k++) {
			v = node_value(&c->nodes[i], k);
			fputc(' ', fp);
			print_setting(fp, &node_keys[k], &v);
		}
		fprintf(fp, " }%s\n", i + 1 < c->nnodes ? "," : "");
	}
	fputs(");\n", fp);
}

/*
 * The normalised config for "nodetalkd -t -v": every key with its value,
 * every node with its resolved fields, in libconfig syntax that loads
 * back to an equal config.  c must come from config_load() (self set).
 */
void
config_print(FILE *fp, const struct nt_config *c)
{
	int	 k;

	fprintf(fp, "# nodetalkd configuration for node %s, normalised: "
	    "defaults filled in\n# and every node entry resolved (-n and "
	    "$NT_PORT applied).  port, listen\n# and data_dir at the top "
	    "are this node's.\n", c->node_id);
	for (k = 0; k < K_NODES; k++)
		if (k == K_NATS)
			print_nats(fp, c);
		else
			print_top(fp, c, k);
	print_nodes(fp, c);
}
