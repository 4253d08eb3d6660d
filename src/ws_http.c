/*
 * ws_http.c: HTTP/1.1 on the node's port.  The page's files, /status and
 * /metrics (answered by the master), and the WebSocket upgrade, which
 * hands the connection to ws_worker.c.
 *
 * Every connection that is done ends the same way, whatever the reason (a
 * refusal, a bad request, Connection: close, a timeout): http_finish()
 * lets the answer go out, half-closes, reads whatever the client still
 * sends until it closes too (so that our close does not reset the
 * connection under an answer it has not read yet), and frees it; the
 * sweep frees it anyway when the client takes too long.  Pipelined
 * requests are answered while the output stays small: a client that
 * sends requests and never reads the answers is not read any further.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "nodetalk.h"
#include "config.h"
#include "log.h"
#include "ws_worker.h"

/* Answers pending before the next pipelined request waits. */
#define HTTP_OUT_PAUSE	(64 * 1024)
#define PAGE_MAX	(1024 * 1024)

/* What GET / serves: the page, from www_dir. */
static const struct {
	const char	*path;
	const char	*file;
	const char	*type;
} page_files[] = {
	{ "/", "index.html", "text/html; charset=utf-8" },
	{ "/index.html", "index.html", "text/html; charset=utf-8" },
	{ "/app.js", "app.js", "text/javascript; charset=utf-8" },
	{ "/style.css", "style.css", "text/css; charset=utf-8" },
};

static void	http_serve(struct conn *);
static void	http_finish(struct conn *);

void
www_set(const char *dir)
{
	free(W.www_dir);
	W.www_dir = xstrdup(dir[0] != '\0' ? dir : PKGDATADIR "/www");
}

/* A plain-text answer: the status line's words, and why when we know. */
static void
http_reply_why(struct conn *c, int status, const char *extra, int keep,
    const char *why)
{
	char	 body[512];
	int	 len;

	len = snprintf(body, sizeof(body), "%d %s\n%s%s", status,
	    http_reason(status), why != NULL ? why : "", why != NULL ? "\n" :
	    "");
	if (len < 0 || (size_t)len >= sizeof(body))
		len = strlen(body);
	http_respond(bufferevent_get_output(c->bev), status,
	    "text/plain; charset=utf-8", extra, body, len, 0, keep);
}

static void
http_reply(struct conn *c, int status, const char *extra, int keep)
{
	http_reply_why(c, status, extra, keep, NULL);
}

/* Read one of the page's files; NULL when it cannot be read. */
static char *
www_read(const char *file, size_t *len)
{
	struct stat	 st;
	char		*path, *buf = NULL;
	FILE		*f;

	xasprintf(&path, "%s/%s", W.www_dir, file);
	if ((f = fopen(path, "r")) == NULL) {
		log_limit_warn("www", "%s", path);
		free(path);
		return (NULL);
	}
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size <= PAGE_MAX) {
		buf = xmalloc((size_t)st.st_size + 1);
		*len = fread(buf, 1, (size_t)st.st_size, f);
		if (ferror(f)) {
			free(buf);
			buf = NULL;
		}
	}
	if (buf == NULL)
		log_limit_warnx("www", "%s: unreadable, or over %d bytes",
		    path, PAGE_MAX);
	fclose(f);
	free(path);
	return (buf);
}

static int
serve_file(struct conn *c, const char *file, const char *type, int head,
    int keep)
{
	char	*body;
	size_t	 len;

	if ((body = www_read(file, &len)) == NULL) {
		http_reply(c, 500, NULL, keep);
		return (keep);
	}
	/* Revalidate on every load: an upgrade must reach open browsers. */
	http_respond(bufferevent_get_output(c->bev), 200, type,
	    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
	    body, len, head, keep);
	free(body);
	return (keep);
}

/* Returns whether to keep the connection (-1: wait for the master). */
static int
http_route(struct conn *c, struct http_req *req)
{
	int	 keep = http_keepalive(req), head, known = 0;
	size_t	 i;
	char	*q;

	/* We never read bodies, so a request with one ends the connection. */
	if (http_header(req, "Content-Length") != NULL &&
	    strcmp(http_header(req, "Content-Length"), "0") != 0)
		keep = 0;
	if (http_header(req, "Transfer-Encoding") != NULL)
		keep = 0;
	/* A place kept for a peer's link serves nothing else. */
	if (c->pool == POOL_RESERVE) {
		http_reply_why(c, 503, NULL, 0, "this place is kept for the "
		    "links of the cluster's nodes; try again later");
		return (0);
	}
	if ((q = strchr(req->path, '?')) != NULL)
		*q = '\0';
	head = strcmp(req->method, "HEAD") == 0;
	for (i = 0; i < sizeof(page_files) / sizeof(page_files[0]); i++)
		known |= strcmp(req->path, page_files[i].path) == 0;
	known |= strcmp(req->path, "/status") == 0 ||
	    strcmp(req->path, "/metrics") == 0;
	if (!known) {
		http_reply(c, 404, NULL, keep);
		return (keep);
	}
	if (!head && strcmp(req->method, "GET") != 0) {
		http_reply(c, 405, "Allow: GET, HEAD\r\n", keep);
		return (keep);
	}
	if (strcmp(req->path, "/status") == 0 ||
	    strcmp(req->path, "/metrics") == 0) {
		/* Nothing more is read until the master answered. */
		bufferevent_disable(c->bev, EV_READ);
		ask_status(c, req->path + 1, head, keep);
		return (-1);
	}
	for (i = 0; i < sizeof(page_files) / sizeof(page_files[0]); i++)
		if (strcmp(req->path, page_files[i].path) == 0)
			break;
	return (serve_file(c, page_files[i].file, page_files[i].type, head,
	    keep));
}

static void
http_upgrade(struct conn *c, struct http_req *req)
{
	const char	*why;
	int		 status;

	if ((status = ws_check_upgrade_why(req, &why)) != 0) {
		http_reply_why(c, status, status == 426 ?
		    "Sec-WebSocket-Version: 13\r\n" : NULL, 0, why);
		http_finish(c);
		return;
	}
	ws_server_accept(bufferevent_get_output(c->bev), req);
	conn_upgraded(c);
}

/*
 * Answer the requests in the input, one after the other, until one needs
 * the master, ends the connection, or the answers pile up: then reading
 * waits for the output to drain (http_write_cb).
 */
static void
http_serve(struct conn *c)
{
	struct http_req	 req;
	int		 rv, status, keep;

	while (!c->closing && !c->waiting) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
		    HTTP_OUT_PAUSE) {
			c->paused = 1;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		rv = http_parse_request(bufferevent_get_input(c->bev), &req,
		    &status);
		if (rv == 0)
			return;
		if (rv == -1) {
			http_reply(c, status, NULL, 0);
			http_finish(c);
			return;
		}
		c->since_ms = ws_now();
		if (ws_is_upgrade(&req)) {
			http_upgrade(c, &req);
			http_req_clear(&req);
			return;
		}
		keep = http_route(c, &req);
		http_req_clear(&req);
		if (keep == 0)
			http_finish(c);
		if (keep != 1)
			return;
	}
}

static void
http_read_cb(struct bufferevent *bev, void *arg)
{
	http_serve(arg);
}

/* The output drained: requests that waited for it are answered now. */
static void
http_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	if (!c->paused)
		return;
	c->paused = 0;
	bufferevent_enable(c->bev, EV_READ);
	http_serve(c);
}

/* EOF, an error: whatever it was doing, it is over. */
static void
http_event_cb(struct bufferevent *bev, short what, void *arg)
{
	conn_free(arg);
}

/* After our answer: throw away what the client still sends. */
static void
http_discard_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
http_flushed_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	c->lingering = 1;
	c->since_ms = ws_now();
	(void)shutdown(bufferevent_getfd(bev), SHUT_WR);
	http_discard_cb(bev, c);
	bufferevent_setcb(bev, http_discard_cb, NULL, http_event_cb, c);
	bufferevent_enable(bev, EV_READ);
}

/* The one way an HTTP connection ends: see the top of the file. */
static void
http_finish(struct conn *c)
{
	c->closing = 1;
	c->since_ms = ws_now();
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, http_flushed_cb, http_event_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		http_flushed_cb(c->bev, c);
}

void
http_start(struct conn *c)
{
	bufferevent_setcb(c->bev, http_read_cb, http_write_cb, http_event_cb,
	    c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* No place for it: 503 saying why, and it goes. */
void
http_refuse(struct conn *c, int status, const char *why)
{
	char	*body;

	xasprintf(&body, "this node has no place for another connection "
	    "(%s); try again later, or another node of the cluster", why);
	http_reply_why(c, status, NULL, 0, body);
	free(body);
	http_finish(c);
}

/* The master's /status or /metrics for a request that waited for it. */
void
http_status_answer(struct conn *c, const char *body)
{
	int	 metrics = body[0] == '#';

	c->waiting = 0;
	http_respond(bufferevent_get_output(c->bev), 200, metrics ?
	    "text/plain; version=0.0.4; charset=utf-8" : "application/json",
	    "Cache-Control: no-store\r\n", body, strlen(body), c->head_only,
	    c->keep);
	if (!c->keep) {
		http_finish(c);
		return;
	}
	c->since_ms = ws_now();
	bufferevent_enable(c->bev, EV_READ);
	http_serve(c);		/* a pipelined request */
}

/*
 * The sweep: a request (or the upgrade) not done within http_timeout_ms
 * gets 408, an idle keep-alive connection is closed; a client that does
 * not take its answer, or does not close after it, is dropped.
 */
void
http_sweep(struct conn *c, int64_t now)
{
	int64_t	 age = now - c->since_ms;

	if (c->lingering) {
		if (age >= LINGER_MS)
			conn_free(c);
	} else if (c->closing || c->paused) {
		if (age >= W.conf->http_timeout_ms)
			conn_free(c);
	} else if (!c->waiting && age >= W.conf->http_timeout_ms) {
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
			http_reply(c, 408, NULL, 0);
		http_finish(c);
	}
}
