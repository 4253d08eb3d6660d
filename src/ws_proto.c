/*
 * ws_proto.c: HTTP/1.1 request heads, the RFC 6455 opening handshake and
 * WebSocket connections.  wslay does the framing; this file glues it to
 * libevent bufferevents and keeps the promise made in ws.h that on_close
 * runs exactly once and never on a dead connection.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/util.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <wslay/wslay.h>

#include "nodetalk.h"
#include "log.h"
#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN	24	/* base64 of the 16 byte nonce */
#define WS_CLOSE_WAIT	2	/* seconds to wait for the peer's close */
#define WS_DIAL_WAIT	5	/* seconds for connect plus handshake */
#define WS_REASON_MAX	123	/* a control frame carries 125 bytes */
#define WS_MAX_FRAGMENTS 128	/* frames in one message */
/*
 * A server connection stops reading while this much output waits, so a
 * client that sends pings or bad frames and never reads what we answer
 * cannot make us buffer without end.
 */
#define WS_OUT_PAUSE	(128 * 1024)

/* Callbacks have fixed signatures; say which arguments they ignore. */
#ifndef __unused
#define __unused	__attribute__((__unused__))
#endif

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * HTTP heads.
 */

/* isdigit() is undefined for the negative chars a peer may send. */
static int
is_digit(char c)
{
	return (c >= '0' && c <= '9');
}

static int
is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
		return (1);
	return (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_token(const char *s, size_t len)
{
	size_t	i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if (!is_tchar((unsigned char)s[i]))
			return (0);
	return (1);
}

/* Field values may hold any byte but controls (HTAB excepted). */
static int
is_field_value(const char *s, size_t len)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return (0);
	}
	return (1);
}

/*
 * Length of the head at the front of p (start line, headers, blank line),
 * or 0 if the blank line has not arrived yet.  *skip counts the empty
 * lines before the start line, which RFC 9112 section 2.2 says to ignore
 * (clients send a stray CRLF after a body).
 */
static size_t
head_end(const char *p, size_t n, size_t *skip)
{
	const char	*nl;
	size_t		 i = 0;

	for (;;) {
		if (i < n && p[i] == '\n')
			i++;
		else if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n')
			i += 2;
		else
			break;
	}
	*skip = i;
	while ((nl = memchr(p + i, '\n', n - i)) != NULL) {
		i = nl - p + 1;
		if (i < n && p[i] == '\n')
			return (i + 1);
		if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n')
			return (i + 2);
	}
	return (0);
}

/* The next line of a complete head, without its CRLF or bare LF. */
static int
head_line(const char **pp, const char *end, const char **line, size_t *len)
{
	const char	*p = *pp, *nl;

	if ((nl = memchr(p, '\n', end - p)) == NULL)
		return (0);
	*line = p;
	*len = nl - p;
	if (*len > 0 && p[*len - 1] == '\r')
		(*len)--;
	*pp = nl + 1;
	return (1);
}

/*
 * Make the first bytes of in contiguous and find the head in them.
 * Returns the head's length, 0 while incomplete, -1 when HTTP_MAX_HEAD
 * bytes came without a blank line.
 */
static ssize_t
head_find(struct evbuffer *in, const char **p, size_t *skip)
{
	size_t	n, hlen;

	if ((n = evbuffer_get_length(in)) == 0)
		return (0);
	if (n > HTTP_MAX_HEAD)
		n = HTTP_MAX_HEAD;
	*p = (const char *)evbuffer_pullup(in, n);
	if ((hlen = head_end(*p, n, skip)) != 0)
		return (hlen);
	return (n < HTTP_MAX_HEAD ? 0 : -1);
}

static int
header_add(struct http_req *req, const char *line, size_t len)
{
	struct http_hdr	*h;
	const char	*colon, *v, *e;

	/* A name is a token, so this also refuses obs-fold and "name :". */
	if ((colon = memchr(line, ':', len)) == NULL ||
	    !is_token(line, colon - line))
		return (-1);
	v = colon + 1;
	e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (!is_field_value(v, e - v))
		return (-1);
	h = &req->hdr[req->nhdr++];
	h->name = xstrndup(line, colon - line);
	h->value = xstrndup(v, e - v);
	return (0);
}

/* Header lines up to the blank one; 0 or the HTTP status to refuse with. */
static int
parse_headers(const char *p, const char *end, struct http_req *req)
{
	const char	*line;
	size_t		 len;

	while (head_line(&p, end, &line, &len) && len > 0) {
		if (req->nhdr == HTTP_MAX_HEADERS)
			return (431);
		if (header_add(req, line, len) == -1)
			return (400);
	}
	return (0);
}

/* "HTTP/1.1" and friends: the minor version, or -1 if malformed. */
static int
parse_version(const char *v, size_t len, int *major)
{
	if (len != 8 || strncmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) ||
	    v[6] != '.' || !is_digit(v[7]))
		return (-1);
	*major = v[5] - '0';
	return (v[7] - '0');
}

/* "METHOD SP target SP HTTP/1.x"; 0 or the HTTP status to refuse with. */
static int
parse_request_line(const char *line, size_t len, struct http_req *req)
{
	const char	*sp1, *sp2, *path, *end = line + len;
	size_t		 mlen, plen;
	int		 major, minor;

	if ((sp1 = memchr(line, ' ', len)) == NULL)
		return (400);
	mlen = sp1 - line;
	if (mlen >= sizeof(req->method) || !is_token(line, mlen))
		return (400);
	path = sp1 + 1;
	if ((sp2 = memchr(path, ' ', end - path)) == NULL)
		return (400);
	if ((plen = sp2 - path) >= sizeof(req->path))
		return (414);
	if (plen == 0 || !is_field_value(path, plen) ||
	    memchr(path, '\t', plen) != NULL)
		return (400);
	if ((minor = parse_version(sp2 + 1, end - sp2 - 1, &major)) == -1)
		return (400);
	if (major != 1 || minor > 1)
		return (505);
	memcpy(req->method, line, mlen);
	memcpy(req->path, path, plen);
	req->minor = minor;
	return (0);
}

int
http_parse_request(struct evbuffer *in, struct http_req *req, int *status)
{
	const char	*p, *cur, *line;
	size_t		 skip, len;
	ssize_t		 hlen;

	memset(req, 0, sizeof(*req));
	if ((hlen = head_find(in, &p, &skip)) == 0)
		return (0);
	if (hlen == -1) {
		/* Without even one line break it is the target that is long. */
		*status = memchr(p, '\n', HTTP_MAX_HEAD) == NULL ? 414 : 431;
		return (-1);
	}
	cur = p + skip;
	head_line(&cur, p + hlen, &line, &len);
	if ((*status = parse_request_line(line, len, req)) != 0 ||
	    (*status = parse_headers(cur, p + hlen, req)) != 0) {
		http_req_clear(req);
		return (-1);
	}
	evbuffer_drain(in, hlen);
	return (1);
}

void
http_req_clear(struct http_req *req)
{
	int	i;

	for (i = 0; i < req->nhdr; i++) {
		free(req->hdr[i].name);
		free(req->hdr[i].value);
	}
	req->nhdr = 0;
}

const char *
http_header(const struct http_req *req, const char *name)
{
	int	i;

	for (i = 0; i < req->nhdr; i++)
		if (strcasecmp(req->hdr[i].name, name) == 0)
			return (req->hdr[i].value);
	return (NULL);
}

/* Is token one of the elements of a comma-separated list? */
static int
list_has_token(const char *list, const char *token)
{
	size_t	tlen = strlen(token), n, e;

	while (*list != '\0') {
		list += strspn(list, " \t,");
		n = e = strcspn(list, ",");
		while (e > 0 && (list[e - 1] == ' ' || list[e - 1] == '\t'))
			e--;
		if (e == tlen && strncasecmp(list, token, tlen) == 0)
			return (1);
		list += n;
	}
	return (0);
}

/* Every header of that name counts: a list may be split over several. */
int
http_header_has_token(const struct http_req *req, const char *name,
    const char *token)
{
	int	i;

	for (i = 0; i < req->nhdr; i++)
		if (strcasecmp(req->hdr[i].name, name) == 0 &&
		    list_has_token(req->hdr[i].value, token))
			return (1);
	return (0);
}

int
http_keepalive(const struct http_req *req)
{
	if (http_header_has_token(req, "Connection", "close"))
		return (0);
	if (req->minor >= 1)
		return (1);
	return (http_header_has_token(req, "Connection", "keep-alive"));
}

const char *
http_reason(int status)
{
	static const struct {
		int		 status;
		const char	*reason;
	} reasons[] = {
		{ 101, "Switching Protocols" },
		{ 200, "OK" },
		{ 204, "No Content" },
		{ 301, "Moved Permanently" },
		{ 304, "Not Modified" },
		{ 400, "Bad Request" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 413, "Content Too Large" },
		{ 414, "URI Too Long" },
		{ 426, "Upgrade Required" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 503, "Service Unavailable" },
		{ 505, "HTTP Version Not Supported" },
	};
	size_t	i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return (reasons[i].reason);
	return ("Unknown");
}

void
http_respond(struct evbuffer *out, int status, const char *content_type,
    const char *extra_headers, const void *body, size_t len, int head_only,
    int keepalive)
{
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status,
	    http_reason(status));
	if (content_type != NULL)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
	evbuffer_add_printf(out, "Content-Length: %zu\r\nConnection: %s\r\n",
	    len, keepalive ? "keep-alive" : "close");
	if (extra_headers != NULL)
		evbuffer_add(out, extra_headers, strlen(extra_headers));
	evbuffer_add(out, "\r\n", 2);
	if (!head_only && len > 0)
		evbuffer_add(out, body, len);
}

/*
 * The opening handshake (RFC 6455 section 4).
 */

int
ws_accept_key(const char *client_key, char out[29])
{
	unsigned char	 md[SHA_DIGEST_LENGTH];
	char		*s;
	int		 len;

	if (client_key == NULL)
		return (-1);
	len = xasprintf(&s, "%s%s", client_key, WS_GUID);
	SHA1((unsigned char *)s, len, md);
	free(s);
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
	return (0);
}

int
ws_is_upgrade(const struct http_req *req)
{
	return (http_header_has_token(req, "Upgrade", "websocket"));
}

/* The key must be base64 for exactly 16 bytes, so 22 digits and "==". */
static int
ws_key_valid(const char *key)
{
	unsigned char	raw[WS_KEY_LEN];

	if (strlen(key) != WS_KEY_LEN || strcmp(key + 22, "==") != 0 ||
	    strspn(key, b64_alphabet) != 22)
		return (0);
	/* EVP_DecodeBlock counts the padding as two zero bytes. */
	return (EVP_DecodeBlock(raw, (const unsigned char *)key,
	    WS_KEY_LEN) == 18);
}

int
ws_check_upgrade(const struct http_req *req)
{
	const char	*why;

	return (ws_check_upgrade_why(req, &why));
}

/* The same, and *why says what is wrong in words a client author reads. */
int
ws_check_upgrade_why(const struct http_req *req, const char **why)
{
	const char	*v, *key;

	*why = NULL;
	if (strcmp(req->method, "GET") != 0 || req->minor < 1) {
		*why = "a WebSocket handshake is a GET request over HTTP/1.1";
		return (400);
	}
	if (!http_header_has_token(req, "Upgrade", "websocket") ||
	    !http_header_has_token(req, "Connection", "upgrade")) {
		*why = "a WebSocket handshake needs the headers "
		    "\"Upgrade: websocket\" and \"Connection: Upgrade\"";
		return (400);
	}
	/* A missing version also gets 426: the answer says which we speak. */
	if ((v = http_header(req, "Sec-WebSocket-Version")) == NULL ||
	    strcmp(v, "13") != 0) {
		*why = "this server speaks WebSocket version 13 only "
		    "(Sec-WebSocket-Version: 13)";
		return (426);
	}
	if ((key = http_header(req, "Sec-WebSocket-Key")) == NULL ||
	    !ws_key_valid(key)) {
		*why = "Sec-WebSocket-Key must be 16 random bytes in base64 "
		    "(24 characters)";
		return (400);
	}
	return (0);
}

void
ws_server_accept(struct evbuffer *out, const struct http_req *req)
{
	char	accept[29];

	/* Only reached without ws_check_upgrade() by a caller's mistake. */
	if (ws_accept_key(http_header(req, "Sec-WebSocket-Key"),
	    accept) == -1) {
		http_respond(out, 400, NULL, NULL, NULL, 0, 0, 0);
		return;
	}
	evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
}

void
ws_client_key(char out[25])
{
	unsigned char	raw[16];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatalx("RAND_bytes failed");
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
}

void
ws_client_request(struct evbuffer *out, const char *host, int port,
    const char *path, const char *key)
{
	/* An IPv6 literal needs brackets to keep its colons from the port. */
	const char	*fmt = strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d";

	evbuffer_add_printf(out, "GET %s HTTP/1.1\r\nHost: ",
	    path != NULL ? path : "/");
	evbuffer_add_printf(out, fmt, host, port);
	evbuffer_add_printf(out, "\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", key);
}

/*
 * "HTTP/1.1 101 Switching Protocols": 0 if the status is 101, else -1
 * with *cause naming the status (its reason phrase cut to printable bytes).
 */
static int
parse_status_line(const char *line, size_t len, char **cause)
{
	size_t	i, rlen;
	int	major, status;

	if (len < 12 || parse_version(line, 8, &major) == -1 || major != 1 ||
	    line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
	    !is_digit(line[11]) || (len > 12 && line[12] != ' ')) {
		*cause = xstrdup("not an HTTP response");
		return (-1);
	}
	status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + line[11] - '0';
	if (status == 101)
		return (0);
	for (rlen = 0, i = 13; i < len && rlen < 64; i++, rlen++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] >= 0x7f)
			break;
	if (rlen > 0)
		xasprintf(cause, "HTTP %d %.*s", status, (int)rlen, line + 13);
	else
		xasprintf(cause, "HTTP %d", status);
	return (-1);
}

/* The headers of a 101: what RFC 6455 section 4.1 tells a client to check. */
static int
check_response(const struct http_req *res, const char *key, char **cause)
{
	const char	*v;
	char		 want[29];

	if (!http_header_has_token(res, "Upgrade", "websocket"))
		*cause = xstrdup("missing Upgrade: websocket");
	else if (!http_header_has_token(res, "Connection", "upgrade"))
		*cause = xstrdup("missing Connection: Upgrade");
	else if ((v = http_header(res, "Sec-WebSocket-Accept")) == NULL ||
	    ws_accept_key(key, want) == -1 || strcmp(v, want) != 0)
		*cause = xstrdup("bad Sec-WebSocket-Accept");
	else if (http_header(res, "Sec-WebSocket-Extensions") != NULL)
		*cause = xstrdup("unexpected Sec-WebSocket-Extensions");
	else if (http_header(res, "Sec-WebSocket-Protocol") != NULL)
		*cause = xstrdup("unexpected Sec-WebSocket-Protocol");
	else
		return (0);
	return (-1);
}

int
ws_client_response(struct evbuffer *in, const char *key, char **cause)
{
	struct http_req	 res;
	const char	*p, *cur, *line;
	size_t		 skip, len;
	ssize_t		 hlen;
	int		 rv;

	if ((hlen = head_find(in, &p, &skip)) == 0)
		return (0);
	if (hlen == -1) {
		*cause = xstrdup("response head too large");
		return (-1);
	}
	cur = p + skip;
	head_line(&cur, p + hlen, &line, &len);
	if (parse_status_line(line, len, cause) == -1)
		return (-1);
	memset(&res, 0, sizeof(res));
	if (parse_headers(cur, p + hlen, &res) != 0) {
		*cause = xstrdup("bad header in response");
		rv = -1;
	} else
		rv = check_response(&res, key, cause);
	http_req_clear(&res);
	if (rv == -1)
		return (-1);
	evbuffer_drain(in, hlen);
	return (1);
}

/*
 * WebSocket connections.
 *
 * Every entry from libevent (bufferevent and timer callbacks) counts
 * itself in busy; ws_conn_free() while busy only marks the connection and
 * the outermost entry frees it on the way out.  That makes it safe for
 * on_text and on_close to free, send or close, even while wslay_event_recv
 * is on the stack.
 *
 * What a connection costs while idle, a node with many clients pays for
 * each.  A server connection holds a wslay context (some 9 KiB of
 * buffers) only while it reads: from the first byte of a frame until the
 * end of the message, and for as long as a close is under way.  It frames
 * its own output, which is never masked (RFC 6455 section 5.1), so one
 * message framed once can go to every client (ws_msg).  Output waits for
 * the end of the loop turn and then goes out in one write, straight to
 * the socket; only what the socket does not take waits for libevent's
 * write event.  A client connection masks its frames and keeps wslay's
 * context throughout.
 */
struct ws_conn {
	struct bufferevent	*bev;
	wslay_event_context_ptr	 ctx;		/* NULL: no frame under way */
	struct ws_conn_cbs	 cbs;
	void			*arg;
	struct event		*ev_wait;	/* close deadline; on demand */
	struct event		*ev_defer;	/* from the loop; on demand */
	int64_t			 heard_ms;	/* last bytes in */
	int64_t			 ping_sent;	/* our unanswered ping; 0 none */
	int64_t			 ping_clock;	/* ... its timeout runs since */
	uint64_t		 ping_end;	/* ... where it ends in out_total */
	uint64_t		 out_total;	/* bytes ever queued to send */
	uint64_t		 acked;		/* ... that the peer's TCP took */
	uint64_t		 frame_left;	/* of the frame wslay is in */
	size_t			 ready;		/* input bytes wslay may read */
	size_t			 max_msg;
	int			 frags;		/* frames of this message */
	int			 busy;		/* our callbacks on the stack */
	uint16_t		 code;		/* our close code */
	unsigned		 server:1;
	unsigned		 closing:1;	/* we queued a close frame */
	unsigned		 aborted:1;	/* ... and wait for nothing */
	unsigned		 paused:1;	/* output over WS_OUT_PAUSE */
	unsigned		 broken:1;	/* a send failed */
	unsigned		 done:1;	/* on_close ran */
	unsigned		 freed:1;	/* ws_conn_free() was called */
	unsigned		 in_msg:1;	/* a message's first frame came */
	unsigned		 own_close:1;	/* our close, framed here */
	unsigned		 peer_closed:1;	/* ... and the peer's came */
	unsigned		 want_read:1;	/* input waits for the loop */
	unsigned		 want_write:1;	/* output waits for the loop */
	unsigned		 writing:1;	/* ... for the write event */
};

/* A frame built once and sent to many. */
struct ws_msg {
	int		 refs;
	size_t		 head;		/* header bytes before the payload */
	size_t		 len;		/* header and payload */
	uint8_t		 data[];
};

static void	conn_finish(struct ws_conn *, int);
static void	conn_queued(struct ws_conn *, size_t);

/* Disable Nagle: frames are small and a chat should not wait 40ms. */
static void
set_nodelay(evutil_socket_t fd)
{
	int	one = 1;

	/* Fails harmlessly on a socketpair, which has no Nagle to disable. */
	if (fd != -1)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
}

static ssize_t
conn_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    int flags __unused, void *arg)
{
	struct ws_conn	*c = arg;
	int		 n;

	/* Paused: what is left waits in the input until the output drains. */
	if (c->paused || c->ready == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return (-1);
	}
	if (len > c->ready)
		len = c->ready;
	n = evbuffer_remove(bufferevent_get_input(c->bev), buf, len);
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return (-1);
	}
	c->ready -= (size_t)n;
	return (n);
}

/*
 * The output evbuffer takes everything, so wslay's queue empties at once
 * and frames leave in the order they were queued.  (Were wslay to hold
 * them, it would send a later close ahead of earlier data.)  Callers
 * watch ws_conn_pending() for backpressure.
 */
static ssize_t
conn_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags __unused, void *arg)
{
	struct ws_conn	*c = arg;

	if (evbuffer_add(bufferevent_get_output(c->bev), data, len) == -1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return (-1);
	}
	conn_queued(c, len);
	return (len);
}

/*
 * A message in many frames costs wslay an allocation per frame: count them
 * (control frames in between do not count) and refuse past the cap.
 */
static void
conn_frame_start_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *a, void *arg)
{
	struct ws_conn	*c = arg;

	if (a->opcode & 0x8)
		return;
	if (a->opcode != WSLAY_CONTINUATION_FRAME)
		c->frags = 0;
	if (++c->frags <= WS_MAX_FRAGMENTS)
		return;
	ws_conn_close(c, WSLAY_CODE_MESSAGE_TOO_BIG, "too many fragments");
	wslay_event_shutdown_read(ctx);
}

/* Masks must be unpredictable (RFC 6455 section 10.3): see rng.c. */
static int
conn_genmask_cb(wslay_event_context_ptr ctx __unused, uint8_t *buf,
    size_t len, void *arg __unused)
{
	rng_bytes(buf, len);
	return (0);
}

/*
 * Hand a text message to on_text NUL-terminated: wslay's copy is not,
 * and a parser that wants a C string must not read past it.
 */
static void
conn_text(struct ws_conn *c, const uint8_t *msg, size_t len)
{
	char	*s;

	/* wslay validates too; this keeps the promise if it did not */
	if (!utf8_valid((const char *)msg, len)) {
		ws_conn_close(c, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
		    "invalid UTF-8");
		return;
	}
	if (c->cbs.on_text == NULL)
		return;
	s = xmalloc(len + 1);
	if (len > 0)
		memcpy(s, msg, len);
	s[len] = '\0';
	c->cbs.on_text(c, s, len, c->arg);
	free(s);
}

static void
conn_msg_cb(wslay_event_context_ptr ctx __unused,
    const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct ws_conn	*c = arg;

	/* Once we said goodbye nobody is left to answer a message. */
	if (c->freed || c->closing)
		return;
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
		conn_text(c, m->msg, m->msg_length);
		break;
	case WSLAY_BINARY_FRAME:
		ws_conn_close(c, WSLAY_CODE_UNSUPPORTED_DATA,
		    "binary frames are not accepted");
		break;
	default:
		/* wslay answers pings and closes itself */
		break;
	}
}

static void	conn_defer_cb(evutil_socket_t, short, void *);
static void	conn_wait_cb(evutil_socket_t, short, void *);

/* Run conn_defer_cb from the loop, not on the caller's stack. */
static void
conn_defer(struct ws_conn *c)
{
	if (c->ev_defer == NULL && (c->ev_defer = event_new(
	    bufferevent_get_base(c->bev), -1, 0, conn_defer_cb, c)) == NULL)
		fatalx("ws_conn: event_new failed");
	event_active(c->ev_defer, EV_TIMEOUT, 1);
}

static void
conn_ctx_new(struct ws_conn *c)
{
	static const struct wslay_event_callbacks wcb = {
		conn_recv_cb, conn_send_cb, conn_genmask_cb,
		conn_frame_start_cb, NULL, NULL, conn_msg_cb
	};
	int	r;

	if (c->server)
		r = wslay_event_context_server_init(&c->ctx, &wcb, c);
	else
		r = wslay_event_context_client_init(&c->ctx, &wcb, c);
	if (r != 0)
		fatalx("wslay_event_context_init: %d", r);
	if (c->max_msg > 0)
		wslay_event_config_set_max_recv_msg_length(c->ctx, c->max_msg);
}

/*
 * A server connection lets its context go once wslay stands between two
 * messages with nothing to send and no close under way: a new context
 * starts in exactly that state.
 */
static void
conn_ctx_release(struct ws_conn *c)
{
	if (!c->server || c->ctx == NULL || c->done || c->freed ||
	    c->closing || c->ready > 0 || c->frame_left > 0 || c->in_msg)
		return;
	if (wslay_event_get_queued_msg_count(c->ctx) > 0 ||
	    wslay_event_get_close_sent(c->ctx) ||
	    wslay_event_get_close_received(c->ctx) ||
	    !wslay_event_get_read_enabled(c->ctx) ||
	    !wslay_event_get_write_enabled(c->ctx))
		return;
	wslay_event_context_free(c->ctx);
	c->ctx = NULL;
}

/*
 * How far wslay may read (c->ready): up to the end of the input, except
 * a frame header not yet whole, so that wslay never stops inside a header
 * and the frames' headers tell where it stands (c->frame_left, c->in_msg).
 * A frame's payload is handed on as it comes, whatever its size: wslay
 * refuses one that is too large at its header, as before.
 */
static void
conn_scan(struct ws_conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr	 p;
	uint8_t			 h[14];
	uint64_t		 plen, total;
	size_t			 n = evbuffer_get_length(in), pos = c->ready;
	size_t			 hl, need, i, take;

	take = n - pos;
	if (c->frame_left > 0) {
		if (take > c->frame_left)
			take = (size_t)c->frame_left;
		pos += take;
		c->frame_left -= take;
	}
	while (c->frame_left == 0 && pos < n) {
		hl = n - pos < sizeof(h) ? n - pos : sizeof(h);
		if (hl < 2 || evbuffer_ptr_set(in, &p, pos,
		    EVBUFFER_PTR_SET) == -1 ||
		    evbuffer_copyout_from(in, &p, h, hl) != (ssize_t)hl)
			break;
		plen = h[1] & 0x7f;
		need = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) +
		    (h[1] & 0x80 ? 4 : 0);
		if (hl < need)
			break;
		if (plen >= 126) {
			hl = plen == 126 ? 4 : 10;
			for (plen = 0, i = 2; i < hl; i++)
				plen = plen << 8 | h[i];
		}
		/* A data frame opens a message, or ends it with FIN. */
		if ((h[0] & 0x08) == 0)
			c->in_msg = (h[0] & 0x80) == 0;
		total = plen > UINT64_MAX - need ? UINT64_MAX : plen + need;
		if (total <= n - pos)
			pos += (size_t)total;
		else {
			c->frame_left = total - (n - pos);
			pos = n;
		}
	}
	c->ready = pos;
}

/*
 * After our own close frame nothing the peer sends is read but its close
 * frame: the rest is dropped as it comes, frame by frame, so that it
 * cannot pile up while we wait.
 */
static void
conn_discard(struct ws_conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);
	uint8_t		 h[14];
	uint64_t	 plen, total;
	size_t		 n, hl, need, i;

	while ((n = evbuffer_get_length(in)) > 0 && !c->peer_closed) {
		if (c->frame_left > 0) {
			hl = n < c->frame_left ? n : (size_t)c->frame_left;
			evbuffer_drain(in, hl);
			c->frame_left -= hl;
			continue;
		}
		hl = n < sizeof(h) ? n : sizeof(h);
		if (hl < 2 || evbuffer_copyout(in, h, hl) != (ssize_t)hl)
			break;
		plen = h[1] & 0x7f;
		need = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) +
		    (h[1] & 0x80 ? 4 : 0);
		if (hl < need)
			break;
		if ((h[0] & 0x0f) == WSLAY_CONNECTION_CLOSE) {
			c->peer_closed = 1;
			evbuffer_drain(in, n);
			break;
		}
		if (plen >= 126) {
			hl = plen == 126 ? 4 : 10;
			for (plen = 0, i = 2; i < hl; i++)
				plen = plen << 8 | h[i];
		}
		total = plen > UINT64_MAX - need ? UINT64_MAX : plen + need;
		c->frame_left = total;
	}
}

/* Our close frame is out: the peer gets WS_CLOSE_WAIT seconds to answer. */
static void
conn_wait_arm(struct ws_conn *c)
{
	struct timeval	tv = { WS_CLOSE_WAIT, 0 };

	if (c->ev_wait == NULL && (c->ev_wait = evtimer_new(
	    bufferevent_get_base(c->bev), conn_wait_cb, c)) == NULL)
		fatalx("ws_conn: event_new failed");
	if (!evtimer_pending(c->ev_wait, NULL))
		evtimer_add(c->ev_wait, &tv);
}

/* Hand what wslay queued to the output buffer. */
static void
conn_flush(struct ws_conn *c)
{
	if (c->ctx == NULL)
		return;
	if (wslay_event_send(c->ctx) != 0) {
		/* Not on the caller's stack: on_close must not run there. */
		c->broken = 1;
		conn_defer(c);
		return;
	}
	if (wslay_event_get_close_sent(c->ctx))
		conn_wait_arm(c);
}

/* The code on_close reports: ours if we began, else what came or went. */
static int
conn_code(struct ws_conn *c)
{
	if (c->closing)
		return (c->code != 0 ? c->code : WSLAY_CODE_NO_STATUS_RCVD);
	if (c->ctx == NULL)
		return (WSLAY_CODE_ABNORMAL_CLOSURE);
	if (wslay_event_get_close_received(c->ctx))
		return (wslay_event_get_status_code_received(c->ctx));
	if (wslay_event_get_close_sent(c->ctx))
		return (wslay_event_get_status_code_sent(c->ctx));
	return (WSLAY_CODE_ABNORMAL_CLOSURE);
}

/*
 * The close handshake is over when our close frame left the buffer and
 * the peer's arrived, or wslay stopped reading (it failed the connection
 * for a protocol error or an oversized message and expects no answer).
 */
static void
conn_check(struct ws_conn *c)
{
	if (c->done || c->freed)
		return;
	if (c->broken) {
		conn_finish(c, WSLAY_CODE_ABNORMAL_CLOSURE);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		return;
	if (c->own_close) {
		if (c->peer_closed)
			conn_finish(c, conn_code(c));
		return;
	}
	if (c->ctx == NULL || !wslay_event_get_close_sent(c->ctx))
		return;
	if (wslay_event_get_close_received(c->ctx) ||
	    !wslay_event_get_read_enabled(c->ctx))
		conn_finish(c, conn_code(c));
}

static void
conn_input(struct ws_conn *c)
{
	struct evbuffer	*in = bufferevent_get_input(c->bev);

	if (c->done || c->freed || c->paused)
		return;
	if (c->own_close) {
		conn_discard(c);
		conn_check(c);
		return;
	}
	if (c->server)
		conn_scan(c);
	else
		c->ready = evbuffer_get_length(in);
	if (c->ctx == NULL) {
		if (c->ready == 0)
			return;
		conn_ctx_new(c);
	}
	if (wslay_event_recv(c->ctx) != 0) {
		conn_finish(c, WSLAY_CODE_ABNORMAL_CLOSURE);
		return;
	}
	if (c->freed)
		return;
	/* Whatever follows a close or a fatal frame will never be read. */
	if (!wslay_event_get_read_enabled(c->ctx)) {
		evbuffer_drain(in, evbuffer_get_length(in));
		c->ready = 0;
		c->frame_left = 0;
	}
	conn_flush(c);
	conn_check(c);
	conn_ctx_release(c);
}

/*
 * Mark the connection over and tell the owner, once.  The socket stays
 * open until ws_conn_free(), so a server can still choose when to close.
 */
static void
conn_finish(struct ws_conn *c, int code)
{
	if (c->done)
		return;
	c->done = 1;
	if (c->ev_wait != NULL)
		evtimer_del(c->ev_wait);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->ctx != NULL) {
		wslay_event_shutdown_read(c->ctx);
		wslay_event_shutdown_write(c->ctx);
	}
	if (!c->freed && c->cbs.on_close != NULL)
		c->cbs.on_close(c, code, c->arg);
}

static void
conn_destroy(struct ws_conn *c)
{
	if (c->ev_wait != NULL)
		event_free(c->ev_wait);
	if (c->ev_defer != NULL)
		event_free(c->ev_defer);
	bufferevent_free(c->bev);
	if (c->ctx != NULL)
		wslay_event_context_free(c->ctx);
	free(c);
}

/* Leave one of our callbacks; the last one out frees a freed conn. */
static void
conn_leave(struct ws_conn *c)
{
	if (--c->busy == 0 && c->freed)
		conn_destroy(c);
}

/* bytes more were queued: pause reading if too much waits; write soon. */
static void
conn_queued(struct ws_conn *c, size_t len)
{
	c->out_total += len;
	if (c->server && !c->paused &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) >
	    WS_OUT_PAUSE) {
		c->paused = 1;
		bufferevent_disable(c->bev, EV_READ);
	}
	if (!c->want_write && !c->writing) {
		c->want_write = 1;
		conn_defer(c);
	}
}

/* Everything queued is out: what waited on that may go on. */
static void
conn_drained(struct ws_conn *c)
{
	if (!c->done && !c->freed)
		conn_check(c);
	if (!c->done && !c->freed && c->paused) {
		/* Read again, first what waited in the input. */
		c->paused = 0;
		bufferevent_enable(c->bev, EV_READ);
		c->want_read = 1;
		conn_defer(c);
	}
	if (!c->done && !c->freed && !c->closing && c->cbs.on_drain != NULL &&
	    ws_conn_pending(c) == 0)
		c->cbs.on_drain(c, c->arg);
}

/*
 * Write what the output holds, as the bufferevent would: it keeps the
 * front of its output frozen but while it writes itself.  -1 on an
 * error other than a full socket.
 */
static int
conn_write_now(struct ws_conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	evutil_socket_t	 fd = bufferevent_getfd(c->bev);
	int		 n;

	if (fd == -1 || evbuffer_get_length(out) == 0)
		return (0);
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, fd);
	evbuffer_freeze(out, 1);
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		return (-1);
	return (0);
}

/*
 * Once a loop turn: one write of all that was queued; what the socket
 * does not take goes with the write event.  A failed write ends the
 * connection as a failed bufferevent write would.
 */
static void
conn_write_out(struct ws_conn *c)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	c->want_write = 0;
	if (c->done || c->freed || c->writing)
		return;
	if (conn_write_now(c) == -1) {
		conn_finish(c, conn_code(c));
		return;
	}
	if (evbuffer_get_length(out) > 0) {
		c->writing = 1;
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	conn_drained(c);
}

static void
conn_read_cb(struct bufferevent *bev __unused, void *arg)
{
	struct ws_conn	*c = arg;

	c->busy++;
	c->heard_ms = mono_us() / 1000;
	conn_input(c);
	conn_leave(c);
}

/* The write event emptied the output: back to writing once a turn. */
static void
conn_write_cb(struct bufferevent *bev __unused, void *arg)
{
	struct ws_conn	*c = arg;

	c->busy++;
	c->writing = 0;
	if (!c->done && !c->freed) {
		bufferevent_disable(c->bev, EV_WRITE);
		conn_flush(c);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_drained(c);
	}
	conn_leave(c);
}

/* EOF or an error: whatever the close handshake reached, it ends here. */
static void
conn_event_cb(struct bufferevent *bev __unused, short what __unused,
    void *arg)
{
	struct ws_conn	*c = arg;

	c->busy++;
	if (!c->freed)
		conn_finish(c, conn_code(c));
	conn_leave(c);
}

/* The peer did not answer our close in time: as if TCP had ended. */
static void
conn_wait_cb(evutil_socket_t fd __unused, short what __unused, void *arg)
{
	conn_event_cb(NULL, 0, arg);
}

static void
conn_defer_cb(evutil_socket_t fd __unused, short what __unused, void *arg)
{
	struct ws_conn	*c = arg;

	c->busy++;
	if (c->aborted) {
		/* The close frame goes if the socket takes it now. */
		if (!c->done && !c->writing)
			(void)conn_write_now(c);
		conn_finish(c, conn_code(c));
	} else if (c->broken)
		conn_check(c);
	else {
		if (c->want_read) {
			c->want_read = 0;
			conn_input(c);
		}
		if (c->want_write)
			conn_write_out(c);
	}
	conn_leave(c);
}

struct ws_conn *
ws_conn_new(struct bufferevent *bev, int server, size_t max_msg,
    const struct ws_conn_cbs *cbs, void *arg)
{
	struct ws_conn	*c;

	c = xcalloc(1, sizeof(*c));
	c->bev = bev;
	c->cbs = *cbs;
	c->arg = arg;
	c->server = server != 0;
	c->max_msg = max_msg;
	c->heard_ms = mono_us() / 1000;
	/*
	 * A server's socket has it already: accepted sockets inherit
	 * TCP_NODELAY from the listener (proc_listen), a syscall saved per
	 * client.
	 */
	if (!c->server) {
		conn_ctx_new(c);
		set_nodelay(bufferevent_getfd(bev));
	}
	/* conn_write_cb must see the output drained: a close finishes then */
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(bev, EV_READ);
	bufferevent_disable(bev, EV_WRITE);
	/* A handshake's answer still queued goes out as our output does. */
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		c->want_write = 1;
		conn_defer(c);
	}
	/*
	 * Frames that came with the handshake wait for the loop, so that
	 * on_text never runs before our caller has the connection.
	 */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		c->want_read = 1;
		conn_defer(c);
	}
	return (c);
}

void
ws_conn_free(struct ws_conn *c)
{
	if (c == NULL)
		return;
	c->freed = 1;
	if (c->busy == 0) {
		conn_destroy(c);
		return;
	}
	/* Stop wslay's loop over buffered frames; conn_leave() frees. */
	if (c->ctx != NULL)
		wslay_event_shutdown_read(c->ctx);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

/* Whether data may still go out: not after a close, ours or wslay's. */
static int
conn_can_send(struct ws_conn *c)
{
	if (c->done || c->freed || c->closing)
		return (0);
	return (c->ctx == NULL || (wslay_event_get_write_enabled(c->ctx) &&
	    !wslay_event_get_close_sent(c->ctx)));
}

/* A server frame's header (RFC 6455 section 5.2): FIN, no mask. */
static size_t
frame_head(uint8_t *h, uint8_t opcode, size_t len)
{
	int	i;

	h[0] = 0x80 | opcode;
	if (len < 126) {
		h[1] = (uint8_t)len;
		return (2);
	}
	if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		return (4);
	}
	h[1] = 127;
	for (i = 0; i < 8; i++)
		h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	return (10);
}

/* A server's frame, header and payload, to the output. */
static int
conn_send_frame(struct ws_conn *c, uint8_t opcode, const void *p, size_t len)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	uint8_t		 h[10];
	size_t		 hl = frame_head(h, opcode, len);

	if (evbuffer_add(out, h, hl) == -1 ||
	    (len > 0 && evbuffer_add(out, p, len) == -1))
		return (-1);
	conn_queued(c, hl + len);
	return (0);
}

int
ws_conn_send_text(struct ws_conn *c, const char *s, size_t len)
{
	struct wslay_event_msg	m;

	if (!conn_can_send(c))
		return (-1);
	if (c->server)
		return (conn_send_frame(c, WSLAY_TEXT_FRAME, s, len));
	m.opcode = WSLAY_TEXT_FRAME;
	m.msg = (const uint8_t *)s;
	m.msg_length = len;
	if (wslay_event_queue_msg(c->ctx, &m) != 0)
		return (-1);
	conn_flush(c);
	return (0);
}

struct ws_msg *
ws_msg_text(const char *s, size_t len)
{
	struct ws_msg	*m;
	uint8_t		 h[10];
	size_t		 hl = frame_head(h, WSLAY_TEXT_FRAME, len);

	m = xmalloc(sizeof(*m) + hl + len);
	m->refs = 1;
	m->head = hl;
	m->len = hl + len;
	memcpy(m->data, h, hl);
	if (len > 0)
		memcpy(m->data + hl, s, len);
	return (m);
}

void
ws_msg_unref(struct ws_msg *m)
{
	if (m != NULL && --m->refs == 0)
		free(m);
}

static void
msg_done_cb(const void *data __unused, size_t len __unused, void *arg)
{
	ws_msg_unref(arg);
}

/*
 * The same bytes for every server connection: each output buffer refers
 * to them, and the last one to send them lets them go.
 */
int
ws_conn_send_msg(struct ws_conn *c, struct ws_msg *m)
{
	if (!c->server)
		return (ws_conn_send_text(c, (const char *)m->data + m->head,
		    m->len - m->head));
	if (!conn_can_send(c))
		return (-1);
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), m->data,
	    m->len, msg_done_cb, m) == -1)
		return (-1);
	m->refs++;
	conn_queued(c, m->len);
	return (0);
}

/* A close frame (RFC 6455 section 5.5.1): the code, then the reason. */
static void
conn_own_close(struct ws_conn *c, uint16_t code, const char *reason,
    size_t len)
{
	uint8_t	p[2 + WS_REASON_MAX];

	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	if (len > 0)
		memcpy(p + 2, reason, len);
	c->closing = 1;
	c->own_close = 1;
	c->code = code;
	if (conn_send_frame(c, WSLAY_CONNECTION_CLOSE, p, 2 + len) == -1) {
		c->broken = 1;
		conn_defer(c);
		return;
	}
	conn_wait_arm(c);
}

void
ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
	size_t	len = reason != NULL ? strlen(reason) : 0;

	if (c->done || c->freed || c->closing)
		return;
	if (len > WS_REASON_MAX) {
		/* Cut on a character boundary: the peer checks UTF-8. */
		len = WS_REASON_MAX;
		while (len > 0 && ((unsigned char)reason[len] & 0xc0) == 0x80)
			len--;
	}
	/*
	 * Between messages a server frames its close itself, and waits for
	 * the answer without a context: many close at once when a node
	 * stops.  Else the close handshake is wslay's to run.
	 */
	if (c->ctx == NULL && c->server) {
		conn_own_close(c, code, reason, len);
		return;
	}
	if (c->ctx == NULL)
		conn_ctx_new(c);
	/* Refused when a close is already on its way (peer's or wslay's). */
	if (wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason,
	    len) != 0)
		return;
	c->closing = 1;
	c->code = code;
	conn_flush(c);
}

/*
 * Give up on the connection now: queue a close frame (it leaves if the
 * socket takes it at once) and report the end without waiting for an
 * answer.  For a peer that is gone or hopelessly behind.
 */
void
ws_conn_abort(struct ws_conn *c, uint16_t code, const char *reason)
{
	if (c->done || c->freed || c->aborted)
		return;
	ws_conn_close(c, code, reason);
	if (!c->closing) {
		/* A close was already on its way; ours is the reason now. */
		c->closing = 1;
		c->code = code;
	}
	c->aborted = 1;
	conn_defer(c);
}

/*
 * Bytes the peer's TCP acknowledged, so far: all we queued less what
 * waits in our buffer and in the kernel's send queue.
 */
static uint64_t
conn_acked(struct ws_conn *c)
{
	evutil_socket_t	 fd = bufferevent_getfd(c->bev);
	uint64_t	 left;
	int		 outq = 0;

	left = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (fd != -1 && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
		left += (uint64_t)outq;
	return (c->out_total - (left < c->out_total ? left : c->out_total));
}

/*
 * Our data queued ahead of the ping delays the answer: while the peer's
 * TCP keeps taking it, the ping's clock starts again.  Once the ping
 * itself is taken, only an answer counts (a stopped process's kernel
 * still acknowledges what fits in its buffer).
 */
static int
conn_ping_late(struct ws_conn *c, int64_t now, int timeout_ms)
{
	uint64_t	 acked = conn_acked(c);

	if (acked > c->acked && c->acked < c->ping_end)
		c->ping_clock = now;
	c->acked = acked;
	return (now - c->ping_clock >= timeout_ms);
}

uint64_t
ws_conn_taken(struct ws_conn *c, size_t *waiting)
{
	uint64_t	 acked = conn_acked(c);

	*waiting = (size_t)(c->out_total - acked);
	return (acked);
}

int
ws_conn_heartbeat(struct ws_conn *c, int64_t now, int interval_ms,
    int timeout_ms)
{
	struct wslay_event_msg	 m = { WSLAY_PING, NULL, 0 };

	if (c->done || c->freed || c->closing)
		return (0);
	if (c->ping_sent != 0) {
		if (c->heard_ms < c->ping_sent)
			return (conn_ping_late(c, now, timeout_ms) ? -1 : 0);
		c->ping_sent = 0;
	}
	if (interval_ms <= 0 || now - c->heard_ms < interval_ms)
		return (0);
	c->acked = conn_acked(c);
	if (!conn_can_send(c))
		return (0);
	if (c->server) {
		if (conn_send_frame(c, WSLAY_PING, NULL, 0) == -1)
			return (0);
	} else {
		if (wslay_event_queue_msg(c->ctx, &m) != 0)
			return (0);
		conn_flush(c);
	}
	c->ping_sent = c->ping_clock = now;
	c->ping_end = c->out_total;
	return (0);
}

size_t
ws_conn_pending(const struct ws_conn *c)
{
	return (evbuffer_get_length(bufferevent_get_output(c->bev)) +
	    (c->ctx != NULL ? wslay_event_get_queued_msg_length(c->ctx) : 0));
}

void
ws_conn_set_arg(struct ws_conn *c, void *arg)
{
	c->arg = arg;
}

/* A connection that proved to be a peer may send larger messages. */
void
ws_conn_set_max(struct ws_conn *c, size_t max_msg)
{
	c->max_msg = max_msg;
	if (c->ctx != NULL)
		wslay_event_config_set_max_recv_msg_length(c->ctx, max_msg);
}

/*
 * Dialling: resolve, connect, handshake, then a client ws_conn.
 */
struct ws_dial {
	struct bufferevent	*bev;
	struct event		*ev_timer;	/* deadline; early failure */
	char			*host;
	int			 port;
	size_t			 max_msg;
	struct ws_conn_cbs	 cbs;
	void			(*on_open)(struct ws_conn *, void *);
	void			(*on_fail)(const char *, void *);
	void			*arg;
	char			 key[WS_KEY_LEN + 1];
	int			 starting;	/* inside ws_dial() */
	int			 connected;
	char			*early;		/* failed inside ws_dial() */
};

static void
dial_free(struct ws_dial *d)
{
	event_free(d->ev_timer);
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	free(d->host);
	free(d->early);
	free(d);
}

static void
dial_fail(struct ws_dial *d, const char *reason)
{
	void	 (*on_fail)(const char *, void *) = d->on_fail;
	void	 *arg = d->arg;
	char	 *why;

	/* ws_dial() has not returned the handle yet: report from the loop. */
	if (d->starting) {
		if (d->early == NULL)
			d->early = xstrdup(reason);
		return;
	}
	why = xstrdup(reason);
	dial_free(d);
	on_fail(why, arg);
	free(why);
}

static void
dial_open(struct ws_dial *d)
{
	void			 (*on_open)(struct ws_conn *, void *) =
				    d->on_open;
	struct ws_conn_cbs	  cbs = d->cbs;
	struct bufferevent	 *bev = d->bev;
	struct ws_conn		 *c;
	void			 *arg = d->arg;
	size_t			  max_msg = d->max_msg;

	d->bev = NULL;
	dial_free(d);
	c = ws_conn_new(bev, 0, max_msg, &cbs, arg);
	on_open(c, arg);
}

static void
dial_read_cb(struct bufferevent *bev, void *arg)
{
	struct ws_dial	*d = arg;
	char		*cause = NULL;

	switch (ws_client_response(bufferevent_get_input(bev), d->key,
	    &cause)) {
	case 0:
		break;
	case 1:
		dial_open(d);
		break;
	default:
		dial_fail(d, cause);
		free(cause);
		break;
	}
}

static void
dial_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_dial	*d = arg;
	char		 why[256];
	int		 err;

	if (what & BEV_EVENT_CONNECTED) {
		d->connected = 1;
		set_nodelay(bufferevent_getfd(bev));
		ws_client_request(bufferevent_get_output(bev), d->host,
		    d->port, "/", d->key);
		return;
	}
	if ((err = bufferevent_socket_get_dns_error(bev)) != 0)
		snprintf(why, sizeof(why), "resolve %s: %s", d->host,
		    evutil_gai_strerror(err));
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed in handshake");
	else
		snprintf(why, sizeof(why), "%s: %s",
		    d->connected ? "handshake" : "connect",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	dial_fail(d, why);
}

static void
dial_timer_cb(evutil_socket_t fd __unused, short what __unused, void *arg)
{
	struct ws_dial	*d = arg;

	dial_fail(d, d->early != NULL ? d->early : "timed out");
}

struct ws_dial *
ws_dial(struct event_base *base, struct evdns_base *dns, const char *host,
    int port, size_t max_msg, const struct ws_conn_cbs *cbs,
    void (*on_open)(struct ws_conn *, void *),
    void (*on_fail)(const char *reason, void *), void *arg)
{
	struct timeval	 tv = { WS_DIAL_WAIT, 0 };
	struct ws_dial	*d;

	d = xcalloc(1, sizeof(*d));
	d->host = xstrdup(host);
	d->port = port;
	d->max_msg = max_msg;
	d->cbs = *cbs;
	d->on_open = on_open;
	d->on_fail = on_fail;
	d->arg = arg;
	ws_client_key(d->key);
	if ((d->ev_timer = evtimer_new(base, dial_timer_cb, d)) == NULL ||
	    (d->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("ws_dial: out of memory");
	bufferevent_setcb(d->bev, dial_read_cb, NULL, dial_event_cb, d);
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
	evtimer_add(d->ev_timer, &tv);

	/* Without a dns base, libevent resolves and may fail right here. */
	d->starting = 1;
	if (bufferevent_socket_connect_hostname(d->bev, dns, AF_UNSPEC, host,
	    port) == -1 && d->early == NULL)
		d->early = xstrdup("cannot start connecting");
	d->starting = 0;
	if (d->early != NULL)
		event_active(d->ev_timer, EV_TIMEOUT, 1);
	return (d);
}

void
ws_dial_cancel(struct ws_dial *d)
{
	if (d != NULL)
		dial_free(d);
}
