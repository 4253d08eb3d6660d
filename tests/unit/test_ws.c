/*
 * test_ws.c: ws_proto.c on its own: HTTP request heads, the RFC 6455
 * handshake, WebSocket connections over socketpairs (one side may be a
 * hand-made peer that writes raw frames) and ws_dial() over loopback.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "nodetalk.h"
#include "ws.h"

#define UNUSED		__attribute__((__unused__))

#define RFC_KEY		"dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT	"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define UPGRADE_REQ \
	"GET /chat HTTP/1.1\r\n" \
	"Host: server.example.com\r\n" \
	"upgrade:   websocket  \r\n" \
	"CONNECTION: keep-alive, Upgrade\r\n" \
	"Sec-WebSocket-Key: " RFC_KEY "\r\n" \
	"Sec-WebSocket-Version: 13\r\n" \
	"\r\n"

/*
 * Helpers.
 */

static int
parse_str(const char *s, struct http_req *req, int *status)
{
	struct evbuffer	*b = evbuffer_new();
	int		 r;

	evbuffer_add(b, s, strlen(s));
	r = http_parse_request(b, req, status);
	evbuffer_free(b);
	return (r);
}

/* The status a refused request gets; -2 if it parsed. */
static int
parse_status(const char *s)
{
	struct http_req	req;
	int		status = 0;

	if (parse_str(s, &req, &status) == 1) {
		http_req_clear(&req);
		return (-2);
	}
	return (status);
}

static char *
buf_str(struct evbuffer *b)
{
	size_t	 len = evbuffer_get_length(b);
	char	*s = xmalloc(len + 1);

	evbuffer_remove(b, s, len);
	s[len] = '\0';
	return (s);
}

/*
 * An upgrade request; NULL leaves a header out.
 */
static char *
upgrade_req(const char *method, const char *version, const char *upgrade,
    const char *connection, const char *wsversion, const char *key)
{
	char	*s, *t;

	xasprintf(&s, "%s / %s\r\nHost: x:1\r\n", method, version);
	if (upgrade != NULL) {
		xasprintf(&t, "%sUpgrade: %s\r\n", s, upgrade);
		free(s);
		s = t;
	}
	if (connection != NULL) {
		xasprintf(&t, "%sConnection: %s\r\n", s, connection);
		free(s);
		s = t;
	}
	if (wsversion != NULL) {
		xasprintf(&t, "%sSec-WebSocket-Version: %s\r\n", s, wsversion);
		free(s);
		s = t;
	}
	if (key != NULL) {
		xasprintf(&t, "%sSec-WebSocket-Key: %s\r\n", s, key);
		free(s);
		s = t;
	}
	xasprintf(&t, "%s\r\n", s);
	free(s);
	return (t);
}

static int
check_req(const char *method, const char *version, const char *upgrade,
    const char *connection, const char *wsversion, const char *key)
{
	struct http_req	 req;
	char		*s;
	int		 status, r;

	s = upgrade_req(method, version, upgrade, connection, wsversion, key);
	assert_int_equal(parse_str(s, &req, &status), 1);
	free(s);
	r = ws_check_upgrade(&req);
	http_req_clear(&req);
	return (r);
}

/*
 * Run the loop until cond(arg) holds or ms milliseconds passed.
 */
struct waiter {
	struct event_base	*base;
	int			(*cond)(void *);
	void			*arg;
	int			 ticks;
};

static void
wait_tick(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct waiter	*w = arg;

	if (w->cond(w->arg) || --w->ticks <= 0)
		event_base_loopbreak(w->base);
}

static int
run_until(struct event_base *base, int (*cond)(void *), void *arg, int ms)
{
	struct waiter	 w = { base, cond, arg, ms / 10 };
	struct timeval	 tv = { 0, 10000 };
	struct event	*ev;

	ev = event_new(base, -1, EV_PERSIST, wait_tick, &w);
	event_add(ev, &tv);
	event_base_dispatch(base);
	event_free(ev);
	return (cond(arg));
}

static int
never(void *arg UNUSED)
{
	return (0);
}

static void
sock_pair(struct event_base *base, struct bufferevent **a,
    struct bufferevent **b)
{
	int	sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	*a = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	*b = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
}

/*
 * One ws_conn's owner, recording what its callbacks saw.
 */
struct side {
	struct ws_conn	*c;
	char		 text[512];	/* the last text */
	int		 ntext;
	int		 nclose;
	int		 code;
	int		 reply;		/* answer each text with "re: text" */
	int		 close_after;	/* close (1000) after a text */
	int		 free_in_text;	/* ws_conn_free() inside on_text */
};

static void
side_text(struct ws_conn *c, const char *s, size_t len, void *arg)
{
	struct side	*sd = arg;
	char		 buf[600];
	int		 n;

	assert_ptr_equal(c, sd->c);
	assert_int_equal(s[len], '\0');
	assert_true(len < sizeof(sd->text));
	memcpy(sd->text, s, len);
	sd->text[len] = '\0';
	sd->ntext++;
	if (sd->reply) {
		n = snprintf(buf, sizeof(buf), "re: %s", sd->text);
		assert_int_equal(ws_conn_send_text(c, buf, n), 0);
	}
	if (sd->close_after)
		ws_conn_close(c, 1000, "bye");
	if (sd->free_in_text) {
		ws_conn_free(c);
		sd->c = NULL;
	}
}

static void
side_close(struct ws_conn *c, int code, void *arg)
{
	struct side	*sd = arg;

	assert_ptr_equal(c, sd->c);
	sd->nclose++;
	sd->code = code;
	ws_conn_free(c);
	sd->c = NULL;
}

static const struct ws_conn_cbs side_cbs = { side_text, side_close, NULL };

static int
both_closed(void *arg)
{
	struct side	*s = arg;

	return (s[0].nclose > 0 && s[1].nclose > 0);
}

/*
 * A hand-made client: writes raw frames, parses what the server sends.
 */
struct raw {
	struct bufferevent	*bev;
	int			 ops[16];	/* opcodes received, in order */
	int			 nops;
	int			 close_code;
	char			 reason[128];
	char			 pong[128];
	int			 eof;
	int			 echo;		/* answer a close */
	int			 answer;	/* answer pings */
	int			 discard;	/* read without parsing */
};

/* One client frame, masked as RFC 6455 section 5.3 requires. */
static void
raw_frame(struct evbuffer *out, int fin, int opcode, const void *data,
    size_t len)
{
	static const uint8_t	 mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	const uint8_t		*p = data;
	uint8_t			 hdr[8], c;
	size_t			 i, n = 0;

	hdr[n++] = (fin ? 0x80 : 0) | opcode;
	if (len < 126)
		hdr[n++] = 0x80 | len;
	else {
		hdr[n++] = 0x80 | 126;
		hdr[n++] = len >> 8;
		hdr[n++] = len & 0xff;
	}
	memcpy(hdr + n, mask, 4);
	evbuffer_add(out, hdr, n + 4);
	for (i = 0; i < len; i++) {
		c = p[i] ^ mask[i % 4];
		evbuffer_add(out, &c, 1);
	}
}

static void
raw_got(struct raw *r, int opcode, const uint8_t *p, size_t len)
{
	assert_true(r->nops < 16);
	r->ops[r->nops++] = opcode;
	if (opcode == 0xa) {
		memcpy(r->pong, p, len);
		r->pong[len] = '\0';
	}
	if (opcode == 0x9 && r->answer)
		raw_frame(bufferevent_get_output(r->bev), 1, 0xa, p, len);
	if (opcode != 0x8)
		return;
	r->close_code = len >= 2 ? (p[0] << 8 | p[1]) : 1005;
	if (len >= 2) {
		memcpy(r->reason, p + 2, len - 2);
		r->reason[len - 2] = '\0';
	}
	if (r->echo)
		raw_frame(bufferevent_get_output(r->bev), 1, 0x8, p,
		    len >= 2 ? 2 : 0);
}

static void
raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	const uint8_t	*p;
	size_t		 len, plen;
	struct raw	*r = arg;

	if (r->discard) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while ((len = evbuffer_get_length(in)) >= 2) {
		p = evbuffer_pullup(in, -1);
		assert_int_equal(p[1] & 0x80, 0);	/* never masked */
		plen = p[1] & 0x7f;
		assert_true(plen < 126);	/* all short here */
		if (len < 2 + plen)
			return;
		raw_got(arg, p[0] & 0x0f, p + 2, plen);
		evbuffer_drain(in, 2 + plen);
	}
}

static void
raw_event_cb(struct bufferevent *bev UNUSED, short what UNUSED, void *arg)
{
	struct raw	*r = arg;

	r->eof = 1;
}

struct rawtest {
	struct event_base	*base;
	struct side		 srv;
	struct raw		 raw;
};

static struct evbuffer *
rawtest_start(struct rawtest *t, size_t max_msg, int echo)
{
	struct bufferevent	*a;

	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	sock_pair(t->base, &a, &t->raw.bev);
	t->raw.echo = echo;
	t->raw.close_code = -1;
	bufferevent_setcb(t->raw.bev, raw_read_cb, NULL, raw_event_cb, &t->raw);
	bufferevent_enable(t->raw.bev, EV_READ | EV_WRITE);
	t->srv.c = ws_conn_new(a, 1, max_msg, &side_cbs, &t->srv);
	return (bufferevent_get_output(t->raw.bev));
}

static void
rawtest_end(struct rawtest *t)
{
	if (t->raw.bev != NULL)
		bufferevent_free(t->raw.bev);
	ws_conn_free(t->srv.c);
	event_base_free(t->base);
}

/* The server said goodbye and its socket went away. */
static int
raw_done(void *arg)
{
	struct rawtest	*t = arg;

	return (t->srv.nclose > 0 && t->raw.eof);
}

static int
raw_eof(void *arg)
{
	struct rawtest	*t = arg;

	return (t->raw.eof);
}

static int
srv_closed(void *arg)
{
	struct rawtest	*t = arg;

	return (t->srv.nclose > 0);
}

/* One client frame that the server must answer with close code. */
static void
expect_close(size_t max_msg, int opcode, const char *data, size_t len,
    int code, const char *reason)
{
	struct rawtest	t;

	raw_frame(rawtest_start(&t, max_msg, 1), 1, opcode, data, len);
	assert_true(run_until(t.base, raw_done, &t, 5000));
	assert_int_equal(t.raw.close_code, code);
	if (reason != NULL)
		assert_string_equal(t.raw.reason, reason);
	assert_int_equal(t.srv.ntext, 0);
	assert_int_equal(t.srv.nclose, 1);
	assert_int_equal(t.srv.code, code);
	rawtest_end(&t);
}

/*
 * HTTP heads.
 */

static void
test_accept_key(void **state UNUSED)
{
	char	out[29];

	assert_int_equal(ws_accept_key(RFC_KEY, out), 0);
	assert_string_equal(out, RFC_ACCEPT);
	assert_int_equal(ws_accept_key(NULL, out), -1);
}

static void
test_parse_complete(void **state UNUSED)
{
	struct evbuffer	*b = evbuffer_new();
	struct http_req	 req;
	int		 status = 0;

	evbuffer_add_printf(b, "%s", UPGRADE_REQ "\x81\x85" "after");
	assert_int_equal(http_parse_request(b, &req, &status), 1);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/chat");
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nhdr, 5);
	/* names are case-insensitive, values trimmed */
	assert_string_equal(http_header(&req, "Upgrade"), "websocket");
	assert_string_equal(http_header(&req, "connection"),
	    "keep-alive, Upgrade");
	assert_true(http_header_has_token(&req, "Connection", "upgrade"));
	assert_true(http_header_has_token(&req, "connection", "KEEP-ALIVE"));
	assert_false(http_header_has_token(&req, "Connection", "upgr"));
	assert_null(http_header(&req, "Origin"));
	assert_true(http_keepalive(&req));
	assert_true(ws_is_upgrade(&req));
	/* only the head is consumed: the frame bytes after it stay */
	assert_int_equal(evbuffer_get_length(b), 7);
	http_req_clear(&req);
	assert_int_equal(req.nhdr, 0);
	evbuffer_free(b);
}

static void
test_parse_lf_and_http10(void **state UNUSED)
{
	struct http_req	req;
	int		status;

	/* a stray empty line first, bare LFs, HTTP/1.0 */
	assert_int_equal(parse_str("\r\nGET /status HTTP/1.0\nHost: a\n"
	    "X-Empty:\n\n", &req, &status), 1);
	assert_string_equal(req.path, "/status");
	assert_int_equal(req.minor, 0);
	assert_string_equal(http_header(&req, "x-empty"), "");
	assert_false(http_keepalive(&req));
	assert_false(ws_is_upgrade(&req));
	http_req_clear(&req);

	assert_int_equal(parse_str("HEAD / HTTP/1.0\r\n"
	    "Connection: Keep-Alive\r\n\r\n", &req, &status), 1);
	assert_true(http_keepalive(&req));
	http_req_clear(&req);

	assert_int_equal(parse_str("GET / HTTP/1.1\r\nConnection: close\r\n"
	    "\r\n", &req, &status), 1);
	assert_false(http_keepalive(&req));
	http_req_clear(&req);
}

static void
test_parse_partial(void **state UNUSED)
{
	const char	*s = UPGRADE_REQ;
	struct evbuffer	*b = evbuffer_new();
	struct http_req	 req;
	size_t		 i, n = strlen(s);
	int		 status;

	/* one byte at a time: nothing until the blank line is complete */
	for (i = 0; i < n - 1; i++) {
		evbuffer_add(b, s + i, 1);
		assert_int_equal(http_parse_request(b, &req, &status), 0);
	}
	assert_int_equal(evbuffer_get_length(b), n - 1);
	evbuffer_add(b, s + n - 1, 1);
	assert_int_equal(http_parse_request(b, &req, &status), 1);
	assert_int_equal(evbuffer_get_length(b), 0);
	assert_int_equal(ws_check_upgrade(&req), 0);
	http_req_clear(&req);
	assert_int_equal(http_parse_request(b, &req, &status), 0);
	evbuffer_free(b);
}

/* A request whose head is exactly len bytes, padded with one header. */
static char *
padded_req(size_t len, int complete)
{
	static const char	 start[] = "GET / HTTP/1.1\r\nX-Pad: ";
	size_t			 pad = len - (sizeof(start) - 1) - 4;
	char			*s = xmalloc(len + 1);

	memcpy(s, start, sizeof(start) - 1);
	memset(s + sizeof(start) - 1, 'a', pad);
	memcpy(s + len - 4, complete ? "\r\n\r\n" : "\r\nX:", 4);
	s[len] = '\0';
	return (s);
}

static void
test_parse_too_large(void **state UNUSED)
{
	char	*s, *path;

	s = padded_req(HTTP_MAX_HEAD, 1);
	assert_int_equal(parse_status(s), -2);
	free(s);
	s = padded_req(HTTP_MAX_HEAD + 1, 1);
	assert_int_equal(parse_status(s), 431);
	free(s);
	/* incomplete but already too long */
	s = padded_req(HTTP_MAX_HEAD + 100, 0);
	assert_int_equal(parse_status(s), 431);
	free(s);

	/* a request line that never ends: the target is what is long */
	path = xmalloc(HTTP_MAX_HEAD + 1);
	memset(path, 'a', HTTP_MAX_HEAD);
	path[HTTP_MAX_HEAD] = '\0';
	xasprintf(&s, "GET /%s", path);
	assert_int_equal(parse_status(s), 414);
	free(s);
	/* a complete head with a path over 1023 bytes */
	path[1024] = '\0';
	xasprintf(&s, "GET /%s HTTP/1.1\r\n\r\n", path);
	assert_int_equal(parse_status(s), 414);
	free(s);
	path[1022] = '\0';
	xasprintf(&s, "GET /%s HTTP/1.1\r\n\r\n", path);
	assert_int_equal(parse_status(s), -2);
	free(s);
	free(path);
}

static void
test_parse_too_many_headers(void **state UNUSED)
{
	char	*s, *t;
	int	 i;

	s = xstrdup("GET / HTTP/1.1\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++) {
		xasprintf(&t, "%sH%d: v\r\n", s, i);
		free(s);
		s = t;
	}
	xasprintf(&t, "%s\r\n", s);
	assert_int_equal(parse_status(t), -2);
	free(t);
	xasprintf(&t, "%sOne-Too-Many: v\r\n\r\n", s);
	assert_int_equal(parse_status(t), 431);
	free(t);
	free(s);
}

static void
test_parse_bad(void **state UNUSED)
{
	assert_int_equal(parse_status("GET / HTTP/2.0\r\n\r\n"), 505);
	assert_int_equal(parse_status("GET / HTTP/1.2\r\n\r\n"), 505);
	assert_int_equal(parse_status("GET / HTTP/0.9\r\n\r\n"), 505);
	assert_int_equal(parse_status("GET / HTTP/1.10\r\n\r\n"), 400);
	assert_int_equal(parse_status("GET / http/1.1\r\n\r\n"), 400);
	assert_int_equal(parse_status("GET /\r\n\r\n"), 400);
	assert_int_equal(parse_status("GET  / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(parse_status("hello\r\n\r\n"), 400);
	assert_int_equal(parse_status("ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n"),
	    400);
	assert_int_equal(parse_status("G@T / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(parse_status("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
	    400);
	assert_int_equal(parse_status("GET / HTTP/1.1\r\nName : v\r\n\r\n"),
	    400);
	assert_int_equal(parse_status("GET / HTTP/1.1\r\nA: b\r\n folded\r\n"
	    "\r\n"), 400);
	assert_int_equal(parse_status("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"),
	    400);
	assert_int_equal(parse_status("GET / HTTP/1.1\r\n: v\r\n\r\n"), 400);
}

static void
test_respond(void **state UNUSED)
{
	struct evbuffer	*b = evbuffer_new();
	char		*s;

	http_respond(b, 426, "text/plain", "Sec-WebSocket-Version: 13\r\n",
	    "x", 1, 0, 0);
	s = buf_str(b);
	assert_string_equal(s, "HTTP/1.1 426 Upgrade Required\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 1\r\n"
	    "Connection: close\r\nSec-WebSocket-Version: 13\r\n\r\nx");
	free(s);
	http_respond(b, 200, NULL, NULL, "body", 4, 1, 1);
	s = buf_str(b);
	assert_string_equal(s, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
	    "Connection: keep-alive\r\n\r\n");
	free(s);
	assert_string_equal(http_reason(431),
	    "Request Header Fields Too Large");
	assert_string_equal(http_reason(414), "URI Too Long");
	evbuffer_free(b);
}

/*
 * The handshake.
 */

static void
test_check_upgrade(void **state UNUSED)
{
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", RFC_KEY), 0);
	assert_int_equal(check_req("GET", "HTTP/1.1", "WebSocket",
	    "keep-alive,  UPGRADE", "13", RFC_KEY), 0);
	assert_int_equal(check_req("POST", "HTTP/1.1", "websocket", "Upgrade",
	    "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.0", "websocket", "Upgrade",
	    "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", NULL, "Upgrade",
	    "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "h2c", "Upgrade",
	    "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket",
	    "keep-alive", "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket",
	    "upgrades", "13", RFC_KEY), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "8", RFC_KEY), 426);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    NULL, RFC_KEY), 426);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", NULL), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", "abc"), 400);
	/* 24 digits, but 18 bytes; padding in the wrong place; not base64 */
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", "dGhlIHNhbXBsZSBub25jZQAA"), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", "dGhlIHNhbXBsZSBub25j=Q=="), 400);
	assert_int_equal(check_req("GET", "HTTP/1.1", "websocket", "Upgrade",
	    "13", "dGhlIHNhbXBsZSBub25j*Q=="), 400);
}

static void
test_handshake_roundtrip(void **state UNUSED)
{
	struct evbuffer	*c2s = evbuffer_new(), *s2c = evbuffer_new();
	struct http_req	 req;
	char		 key[25], key2[25], *cause = NULL, *s;
	int		 status;
	size_t		 n;

	ws_client_key(key);
	ws_client_key(key2);
	assert_int_equal(strlen(key), 24);
	assert_string_not_equal(key, key2);
	ws_client_request(c2s, "node-b.example", 9000, "/", key);
	assert_int_equal(http_parse_request(c2s, &req, &status), 1);
	assert_string_equal(http_header(&req, "Host"), "node-b.example:9000");
	assert_string_equal(http_header(&req, "Sec-WebSocket-Key"), key);
	assert_int_equal(ws_check_upgrade(&req), 0);

	ws_server_accept(s2c, &req);
	evbuffer_add(s2c, "\x81\x00", 2);	/* a frame right behind it */
	/* all but the last byte of the head: not yet */
	n = evbuffer_get_length(s2c) - 3;
	s = xmalloc(n);
	evbuffer_copyout(s2c, s, n);
	evbuffer_add(c2s, s, n);
	free(s);
	assert_int_equal(ws_client_response(c2s, key, &cause), 0);
	assert_int_equal(ws_client_response(s2c, key, &cause), 1);
	assert_null(cause);
	assert_int_equal(evbuffer_get_length(s2c), 2);
	evbuffer_drain(s2c, 2);
	evbuffer_drain(c2s, evbuffer_get_length(c2s));

	/* an answer to someone else's key */
	ws_server_accept(s2c, &req);
	assert_int_equal(ws_client_response(s2c, key2, &cause), -1);
	assert_string_equal(cause, "bad Sec-WebSocket-Accept");
	free(cause);
	evbuffer_drain(s2c, evbuffer_get_length(s2c));
	http_req_clear(&req);

	http_respond(s2c, 404, "text/plain", NULL, "no", 2, 0, 0);
	assert_int_equal(ws_client_response(s2c, key, &cause), -1);
	assert_string_equal(cause, "HTTP 404 Not Found");
	free(cause);
	evbuffer_drain(s2c, evbuffer_get_length(s2c));

	evbuffer_add_printf(s2c, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	assert_int_equal(ws_client_response(s2c, key, &cause), -1);
	assert_string_equal(cause, "bad Sec-WebSocket-Accept");
	free(cause);
	evbuffer_drain(s2c, evbuffer_get_length(s2c));

	evbuffer_add_printf(s2c, "HTTP/1.1 503\r\n\r\n");
	assert_int_equal(ws_client_response(s2c, key, &cause), -1);
	assert_string_equal(cause, "HTTP 503");
	free(cause);
	evbuffer_drain(s2c, evbuffer_get_length(s2c));

	evbuffer_add_printf(s2c, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
	assert_int_equal(ws_client_response(s2c, key, &cause), -1);
	assert_string_equal(cause, "not an HTTP response");
	free(cause);
	evbuffer_free(s2c);
	evbuffer_free(c2s);
}

static void
test_client_request_ipv6(void **state UNUSED)
{
	struct evbuffer	*b = evbuffer_new();
	struct http_req	 req;
	int		 status;

	ws_client_request(b, "::1", 9000, NULL, RFC_KEY);
	assert_int_equal(http_parse_request(b, &req, &status), 1);
	assert_string_equal(req.path, "/");
	assert_string_equal(http_header(&req, "Host"), "[::1]:9000");
	http_req_clear(&req);
	evbuffer_free(b);
}

/*
 * Connections: two ws_conns on a socketpair.
 */

static void
test_conn_exchange(void **state UNUSED)
{
	struct event_base	*base = event_base_new();
	struct bufferevent	*a, *b;
	struct side		 s[2];

	memset(s, 0, sizeof(s));
	s[0].reply = 1;		/* server: answers from inside on_text */
	s[1].close_after = 1;	/* client: closes from inside on_text */
	sock_pair(base, &a, &b);
	s[0].c = ws_conn_new(a, 1, 1024, &side_cbs, &s[0]);
	s[1].c = ws_conn_new(b, 0, 1024, &side_cbs, &s[1]);
	assert_int_equal(ws_conn_send_text(s[1].c, "hello", 5), 0);
	assert_true(ws_conn_pending(s[1].c) > 5);
	assert_true(run_until(base, both_closed, s, 5000));
	assert_int_equal(s[0].ntext, 1);
	assert_string_equal(s[0].text, "hello");
	assert_int_equal(s[1].ntext, 1);
	assert_string_equal(s[1].text, "re: hello");
	assert_int_equal(s[0].nclose, 1);
	assert_int_equal(s[0].code, 1000);
	assert_int_equal(s[1].nclose, 1);
	assert_int_equal(s[1].code, 1000);
	event_base_free(base);
}

/* Data ws_conn_new() finds already in the input is not lost. */
static void
test_conn_early_input(void **state UNUSED)
{
	struct rawtest		 t;
	struct bufferevent	*a, *b;

	memset(&t, 0, sizeof(t));
	t.base = event_base_new();
	sock_pair(t.base, &a, &b);
	/* as after a handshake: the frame was read along with the head */
	raw_frame(bufferevent_get_output(b), 1, 0x1, "early", 5);
	bufferevent_enable(b, EV_WRITE);
	bufferevent_enable(a, EV_READ);
	assert_false(run_until(t.base, never, NULL, 50));
	assert_true(evbuffer_get_length(bufferevent_get_input(a)) > 0);
	t.srv.c = ws_conn_new(a, 1, 1024, &side_cbs, &t.srv);
	assert_int_equal(t.srv.ntext, 0);	/* not on our stack */
	t.raw.bev = b;
	assert_false(run_until(t.base, never, NULL, 100));
	assert_int_equal(t.srv.ntext, 1);
	assert_string_equal(t.srv.text, "early");
	rawtest_end(&t);
}

static void
test_conn_binary(void **state UNUSED)
{
	expect_close(1024, 0x2, "\x01\x02", 2, 1003,
	    "binary frames are not accepted");
}

static void
test_conn_oversized(void **state UNUSED)
{
	char	big[100];

	memset(big, 'a', sizeof(big));
	expect_close(16, 0x1, big, sizeof(big), 1009, NULL);
}

static void
test_conn_bad_utf8(void **state UNUSED)
{
	expect_close(1024, 0x1, "ok \xc3\x28", 5, 1007, NULL);
	expect_close(1024, 0x1, "\xed\xa0\x80", 3, 1007, NULL);
}

static int
raw_got_frame(void *arg)
{
	struct rawtest	*t = arg;

	return (t->raw.nops > 0);
}

/*
 * Pings are answered, fragments joined; the peer's close is echoed.  (The
 * close goes separately: wslay rightly drops a pong still queued when a
 * close is.)
 */
static void
test_conn_ping_fragments(void **state UNUSED)
{
	struct rawtest	 t;
	struct evbuffer	*out;

	out = rawtest_start(&t, 1024, 0);
	raw_frame(out, 0, 0x1, "hel", 3);
	raw_frame(out, 1, 0x9, "abc", 3);
	raw_frame(out, 1, 0x0, "lo", 2);
	assert_true(run_until(t.base, raw_got_frame, &t, 5000));
	raw_frame(out, 1, 0x8, "\x03\xe8" "done", 6);
	assert_true(run_until(t.base, raw_done, &t, 5000));
	assert_int_equal(t.srv.ntext, 1);
	assert_string_equal(t.srv.text, "hello");
	assert_int_equal(t.raw.nops, 2);
	assert_int_equal(t.raw.ops[0], 0xa);
	assert_string_equal(t.raw.pong, "abc");
	assert_int_equal(t.raw.ops[1], 0x8);
	assert_int_equal(t.raw.close_code, 1000);
	assert_int_equal(t.srv.code, 1000);
	rawtest_end(&t);
}

/* Freeing inside on_text with more frames buffered: no more callbacks. */
static void
test_conn_free_in_text(void **state UNUSED)
{
	struct rawtest	 t;
	struct evbuffer	*out;

	out = rawtest_start(&t, 1024, 0);
	t.srv.free_in_text = 1;
	raw_frame(out, 1, 0x1, "one", 3);
	raw_frame(out, 1, 0x1, "two", 3);
	raw_frame(out, 1, 0x8, "\x03\xe8", 2);
	assert_true(run_until(t.base, raw_eof, &t, 5000));
	assert_int_equal(t.srv.ntext, 1);
	assert_string_equal(t.srv.text, "one");
	assert_int_equal(t.srv.nclose, 0);
	assert_int_equal(t.raw.nops, 0);
	rawtest_end(&t);
}

static void
test_conn_tcp_drop(void **state UNUSED)
{
	struct rawtest	t;

	rawtest_start(&t, 1024, 0);
	bufferevent_free(t.raw.bev);
	t.raw.bev = NULL;
	assert_true(run_until(t.base, srv_closed, &t, 5000));
	assert_int_equal(t.srv.nclose, 1);
	assert_int_equal(t.srv.code, 1006);
	rawtest_end(&t);
}

/* Our close: data first, then the close; a silent peer gets 2 seconds. */
static void
test_conn_close_timeout(void **state UNUSED)
{
	struct rawtest	t;
	struct timespec	t0, t1;
	double		secs;

	rawtest_start(&t, 1024, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ws_conn_send_text(t.srv.c, "last", 4), 0);
	ws_conn_close(t.srv.c, 1001, "going away");
	assert_int_equal(ws_conn_send_text(t.srv.c, "late", 4), -1);
	assert_true(run_until(t.base, raw_done, &t, 5000));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs > 1.5 && secs < 3.5);
	assert_int_equal(t.raw.nops, 2);
	assert_int_equal(t.raw.ops[0], 0x1);
	assert_int_equal(t.raw.ops[1], 0x8);
	assert_int_equal(t.raw.close_code, 1001);
	assert_string_equal(t.raw.reason, "going away");
	assert_int_equal(t.srv.nclose, 1);
	assert_int_equal(t.srv.code, 1001);
	rawtest_end(&t);
}

static int	srv_got_text(void *);

/*
 * A server connection between messages keeps no wslay context: a frame
 * split inside its header still arrives whole, and a close begun there
 * reads nothing more but the peer's close, which ends it at once.
 */
static void
test_conn_close_idle(void **state UNUSED)
{
	struct rawtest	 t;
	struct evbuffer	*out, *tmp;
	uint8_t		 b;

	out = rawtest_start(&t, 1024, 0);
	tmp = evbuffer_new();
	raw_frame(tmp, 1, 0x1, "split", 5);
	evbuffer_remove(tmp, &b, 1);
	evbuffer_add(out, &b, 1);
	assert_false(run_until(t.base, never, NULL, 50));
	assert_int_equal(t.srv.ntext, 0);
	evbuffer_add_buffer(out, tmp);
	assert_true(run_until(t.base, srv_got_text, &t, 5000));
	assert_string_equal(t.srv.text, "split");

	ws_conn_close(t.srv.c, 1001, "going away");
	assert_int_equal(ws_conn_send_text(t.srv.c, "late", 4), -1);
	assert_true(run_until(t.base, raw_got_frame, &t, 5000));
	assert_int_equal(t.raw.ops[0], 0x8);
	assert_int_equal(t.raw.close_code, 1001);
	assert_string_equal(t.raw.reason, "going away");
	/* after our close: a text, half a frame, then the answer */
	raw_frame(out, 1, 0x1, "ignored", 7);
	raw_frame(tmp, 1, 0x1, "half", 4);
	evbuffer_remove_buffer(tmp, out, 4);
	assert_false(run_until(t.base, never, NULL, 50));
	assert_int_equal(t.srv.nclose, 0);
	evbuffer_add_buffer(out, tmp);
	raw_frame(out, 1, 0x8, "\x03\xe9", 2);
	assert_true(run_until(t.base, srv_closed, &t, 1000));
	assert_int_equal(t.srv.ntext, 1);
	assert_int_equal(t.srv.code, 1001);
	assert_int_equal(t.raw.nops, 1);
	evbuffer_free(tmp);
	rawtest_end(&t);
}

/* A message in 128 frames is fine; one in 129 closes with 1009. */
static void
send_fragments(struct evbuffer *out, int n)
{
	int	 i;

	raw_frame(out, 0, 0x1, "x", 1);
	for (i = 1; i < n - 1; i++)
		raw_frame(out, 0, 0x0, "x", 1);
	raw_frame(out, 1, 0x0, "x", 1);
}

static int
srv_got_text(void *arg)
{
	struct rawtest	*t = arg;

	return (t->srv.ntext > 0);
}

static void
test_conn_fragments(void **state UNUSED)
{
	struct rawtest	 t;

	send_fragments(rawtest_start(&t, 1024, 1), 128);
	assert_true(run_until(t.base, srv_got_text, &t, 5000));
	assert_int_equal(strlen(t.srv.text), 128);
	assert_int_equal(t.srv.nclose, 0);
	rawtest_end(&t);

	send_fragments(rawtest_start(&t, 1024, 1), 129);
	assert_true(run_until(t.base, raw_done, &t, 5000));
	assert_int_equal(t.raw.close_code, 1009);
	assert_string_equal(t.raw.reason, "too many fragments");
	assert_int_equal(t.srv.ntext, 0);
	assert_int_equal(t.srv.code, 1009);
	rawtest_end(&t);
}

/* Run the loop for ms milliseconds. */
static void
spin(struct event_base *base, int ms)
{
	assert_false(run_until(base, never, NULL, ms));
}

static int64_t
ms_now(void)
{
	return (mono_us() / 1000);
}

/*
 * Heartbeats: a silent connection gets a ping after the interval; an
 * answer keeps it; silence after the ping for the timeout ends it.
 */
static void
test_conn_heartbeat(void **state UNUSED)
{
	struct rawtest	 t;
	int64_t		 sent;

	rawtest_start(&t, 1024, 0);
	t.raw.answer = 1;
	assert_int_equal(ws_conn_heartbeat(t.srv.c, ms_now(), 100, 300), 0);
	spin(t.base, 50);
	assert_int_equal(t.raw.nops, 0);		/* not silent long enough */
	spin(t.base, 100);
	assert_int_equal(ws_conn_heartbeat(t.srv.c, ms_now(), 100, 300), 0);
	spin(t.base, 50);
	assert_int_equal(t.raw.nops, 1);
	assert_int_equal(t.raw.ops[0], 0x9);		/* a ping, answered */
	assert_int_equal(ws_conn_heartbeat(t.srv.c, ms_now(), 10000, 300), 0);
	assert_int_equal(ws_conn_heartbeat(t.srv.c, ms_now() + 5000, 10000,
	    300), 0);
	rawtest_end(&t);

	rawtest_start(&t, 1024, 0);
	spin(t.base, 150);
	sent = ms_now();
	assert_int_equal(ws_conn_heartbeat(t.srv.c, sent, 100, 300), 0);
	spin(t.base, 50);
	assert_int_equal(t.raw.nops, 1);		/* not answered */
	assert_int_equal(ws_conn_heartbeat(t.srv.c, ms_now(), 100, 300), 0);
	assert_int_equal(ws_conn_heartbeat(t.srv.c, sent + 1000, 100, 300),
	    -1);
	ws_conn_abort(t.srv.c, 1011, "ping timeout");
	assert_true(run_until(t.base, srv_closed, &t, 5000));
	assert_int_equal(t.srv.code, 1011);
	rawtest_end(&t);
}

/*
 * A client that does not read: past 128 KiB of output the server reads
 * nothing more from it; once it reads, what it sent meanwhile is handled.
 */
static void
test_conn_pause(void **state UNUSED)
{
	struct rawtest	 t;
	char		*big;
	size_t		 len = 1024 * 1024;

	rawtest_start(&t, 1024, 0);
	bufferevent_disable(t.raw.bev, EV_READ);
	big = xmalloc(len);
	memset(big, 'b', len);
	assert_int_equal(ws_conn_send_text(t.srv.c, big, len), 0);
	free(big);
	raw_frame(bufferevent_get_output(t.raw.bev), 1, 0x1, "later", 5);
	spin(t.base, 200);
	assert_int_equal(t.srv.ntext, 0);
	t.raw.discard = 1;
	bufferevent_enable(t.raw.bev, EV_READ);
	assert_true(run_until(t.base, srv_got_text, &t, 5000));
	assert_string_equal(t.srv.text, "later");
	rawtest_end(&t);
}

/*
 * ws_dial() against a listener in this process.
 */
struct dialtest {
	struct event_base	*base;
	struct evconnlistener	*lis;
	struct bufferevent	*hs;		/* server side, in handshake */
	int			 port;
	int			 status;	/* answer this instead of 101 */
	int			 silent;	/* do not answer at all */
	struct side		 srv;
	struct side		 cli;
	int			 nopen;
	int			 nfail;
	char			 why[256];
};

static void
hs_read_cb(struct bufferevent *bev, void *arg)
{
	struct dialtest	*t = arg;
	struct evbuffer	*out = bufferevent_get_output(bev);
	struct http_req	 req;
	int		 status, r;

	r = http_parse_request(bufferevent_get_input(bev), &req, &status);
	if (r == 0)
		return;
	assert_int_equal(r, 1);
	assert_int_equal(ws_check_upgrade(&req), 0);
	if (t->status != 0)
		http_respond(out, t->status, "text/plain", NULL, "no\n", 3, 0,
		    0);
	else {
		ws_server_accept(out, &req);
		t->hs = NULL;
		t->srv.c = ws_conn_new(bev, 1, 1024, &side_cbs, &t->srv);
	}
	http_req_clear(&req);
}

static void
hs_event_cb(struct bufferevent *bev, short what UNUSED, void *arg)
{
	struct dialtest	*t = arg;

	bufferevent_free(bev);
	t->hs = NULL;
}

static void
accept_cb(struct evconnlistener *lis UNUSED, evutil_socket_t fd,
    struct sockaddr *sa UNUSED, int salen UNUSED, void *arg)
{
	struct dialtest	*t = arg;

	assert_null(t->hs);
	t->hs = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(t->hs, t->silent ? NULL : hs_read_cb, NULL,
	    hs_event_cb, t);
	bufferevent_enable(t->hs, EV_READ | EV_WRITE);
}

static int
loopback_port(evutil_socket_t fd)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return (ntohs(sin.sin_port));
}

static void
dialtest_start(struct dialtest *t)
{
	struct sockaddr_in	sin;

	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->lis = evconnlistener_new_bind(t->base, accept_cb, t,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(t->lis);
	t->port = loopback_port(evconnlistener_get_fd(t->lis));
}

static void
dialtest_end(struct dialtest *t)
{
	if (t->hs != NULL)
		bufferevent_free(t->hs);
	ws_conn_free(t->srv.c);
	ws_conn_free(t->cli.c);
	if (t->lis != NULL)
		evconnlistener_free(t->lis);
	event_base_free(t->base);
}

static void
dial_open(struct ws_conn *c, void *arg)
{
	struct dialtest	*t = arg;

	t->nopen++;
	t->cli.c = c;
	t->cli.close_after = 1;
	ws_conn_set_arg(c, &t->cli);
	assert_int_equal(ws_conn_send_text(c, "hi", 2), 0);
}

static void
dial_fail(const char *why, void *arg)
{
	struct dialtest	*t = arg;

	t->nfail++;
	snprintf(t->why, sizeof(t->why), "%s", why);
}

static int
dial_closed(void *arg)
{
	struct dialtest	*t = arg;

	return (t->srv.nclose > 0 && t->cli.nclose > 0);
}

static int
dial_failed(void *arg)
{
	struct dialtest	*t = arg;

	return (t->nfail > 0);
}

static struct ws_dial *
dial(struct dialtest *t, const char *host, int port)
{
	return (ws_dial(t->base, NULL, host, port, 1024, &side_cbs,
	    dial_open, dial_fail, t));
}

static void
test_dial_ok(void **state UNUSED)
{
	struct dialtest	t;

	dialtest_start(&t);
	t.srv.reply = 1;
	assert_non_null(dial(&t, "127.0.0.1", t.port));
	assert_true(run_until(t.base, dial_closed, &t, 5000));
	assert_int_equal(t.nopen, 1);
	assert_int_equal(t.nfail, 0);
	assert_string_equal(t.srv.text, "hi");
	assert_string_equal(t.cli.text, "re: hi");
	assert_int_equal(t.cli.code, 1000);
	assert_int_equal(t.srv.code, 1000);
	dialtest_end(&t);
}

static void
test_dial_refused(void **state UNUSED)
{
	struct dialtest	t;
	int		port;

	dialtest_start(&t);
	port = t.port;
	evconnlistener_free(t.lis);	/* nobody listens there now */
	t.lis = NULL;
	assert_non_null(dial(&t, "127.0.0.1", port));
	assert_true(run_until(t.base, dial_failed, &t, 5000));
	assert_int_equal(t.nopen, 0);
	assert_int_equal(t.nfail, 1);
	assert_non_null(strstr(t.why, "refused"));
	dialtest_end(&t);
}

static void
test_dial_http_error(void **state UNUSED)
{
	struct dialtest	t;

	dialtest_start(&t);
	t.status = 404;
	assert_non_null(dial(&t, "127.0.0.1", t.port));
	assert_true(run_until(t.base, dial_failed, &t, 5000));
	assert_int_equal(t.nopen, 0);
	assert_int_equal(t.nfail, 1);
	assert_string_equal(t.why, "HTTP 404 Not Found");
	dialtest_end(&t);
}

/* A failure inside ws_dial() itself is reported from the loop. */
static void
test_dial_bad_port(void **state UNUSED)
{
	struct dialtest	t;

	dialtest_start(&t);
	assert_non_null(dial(&t, "127.0.0.1", 0));
	assert_int_equal(t.nfail, 0);
	assert_true(run_until(t.base, dial_failed, &t, 1000));
	assert_int_equal(t.nfail, 1);
	dialtest_end(&t);
}

static void
test_dial_cancel(void **state UNUSED)
{
	struct dialtest	t;

	dialtest_start(&t);
	ws_dial_cancel(dial(&t, "127.0.0.1", t.port));
	assert_false(run_until(t.base, never, NULL, 200));
	assert_int_equal(t.nopen, 0);
	assert_int_equal(t.nfail, 0);
	dialtest_end(&t);
}

static void
test_dial_timeout(void **state UNUSED)
{
	struct dialtest	t;

	dialtest_start(&t);
	t.silent = 1;
	assert_non_null(dial(&t, "127.0.0.1", t.port));
	assert_true(run_until(t.base, dial_failed, &t, 8000));
	assert_string_equal(t.why, "timed out");
	dialtest_end(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_parse_complete),
		cmocka_unit_test(test_parse_lf_and_http10),
		cmocka_unit_test(test_parse_partial),
		cmocka_unit_test(test_parse_too_large),
		cmocka_unit_test(test_parse_too_many_headers),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_respond),
		cmocka_unit_test(test_check_upgrade),
		cmocka_unit_test(test_handshake_roundtrip),
		cmocka_unit_test(test_client_request_ipv6),
		cmocka_unit_test(test_conn_exchange),
		cmocka_unit_test(test_conn_early_input),
		cmocka_unit_test(test_conn_binary),
		cmocka_unit_test(test_conn_oversized),
		cmocka_unit_test(test_conn_bad_utf8),
		cmocka_unit_test(test_conn_ping_fragments),
		cmocka_unit_test(test_conn_free_in_text),
		cmocka_unit_test(test_conn_tcp_drop),
		cmocka_unit_test(test_conn_close_timeout),
		cmocka_unit_test(test_conn_close_idle),
		cmocka_unit_test(test_conn_fragments),
		cmocka_unit_test(test_conn_heartbeat),
		cmocka_unit_test(test_conn_pause),
		cmocka_unit_test(test_dial_ok),
		cmocka_unit_test(test_dial_refused),
		cmocka_unit_test(test_dial_http_error),
		cmocka_unit_test(test_dial_bad_port),
		cmocka_unit_test(test_dial_cancel),
		cmocka_unit_test(test_dial_timeout),
	};

	/* A peer that went away must be an error, not a fatal signal. */
	signal(SIGPIPE, SIG_IGN);
	return (cmocka_run_group_tests(tests, NULL, NULL));
}
