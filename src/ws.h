/*
 * ws.h: HTTP/1.1 request heads and RFC 6455 WebSocket connections on top of
 * libevent bufferevents, with wslay doing the framing.  Used by the ws
 * worker (server side), the peer worker and the nodetalk client (client
 * side).
 */
#ifndef WS_H
#define WS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>

#define HTTP_MAX_HEADERS	64
#define HTTP_MAX_HEAD		8192	/* request line + headers, bytes */

struct http_hdr {
	char	*name;
	char	*value;
};

struct http_req {
	char		 method[16];
	char		 path[1024];
	int		 minor;		/* HTTP/1.minor */
	struct http_hdr	 hdr[HTTP_MAX_HEADERS];
	int		 nhdr;
};

/*
 * Parse one request head from the front of in.  Returns 1 and drains the
 * head when complete, 0 when more bytes are needed, -1 when the request is
 * bad; *status is then the HTTP status to answer (400, 414, 431, 505).
 */
int		 http_parse_request(struct evbuffer *in, struct http_req *,
		    int *status);
void		 http_req_clear(struct http_req *);
const char	*http_header(const struct http_req *, const char *name);
int		 http_header_has_token(const struct http_req *,
		    const char *name, const char *token);
int		 http_keepalive(const struct http_req *);
void		 http_respond(struct evbuffer *out, int status,
		    const char *content_type, const char *extra_headers,
		    const void *body, size_t len, int head_only, int keepalive);
const char	*http_reason(int status);

/* The handshake (RFC 6455 section 4). */
int		 ws_accept_key(const char *client_key, char out[29]);
int		 ws_is_upgrade(const struct http_req *);
/* Check an upgrade request; 0 if acceptable, else the HTTP status to send. */
int		 ws_check_upgrade(const struct http_req *);
/* The same; *why is a static sentence for the answer's body, or NULL. */
int		 ws_check_upgrade_why(const struct http_req *, const char **why);
void		 ws_server_accept(struct evbuffer *out, const struct http_req *);
void		 ws_client_key(char out[25]);
void		 ws_client_request(struct evbuffer *out, const char *host,
		    int port, const char *path, const char *key);
/* 1 ok (head drained), 0 need more, -1 refused (*cause set, caller frees). */
int		 ws_client_response(struct evbuffer *in, const char *key,
		    char **cause);

/* A WebSocket connection. */
struct ws_conn;

struct ws_conn_cbs {
	/* a complete, UTF-8 valid text message, NUL-terminated */
	void	(*on_text)(struct ws_conn *, const char *, size_t, void *);
	/*
	 * The connection is over: code is the close code received or sent
	 * (1006 when the TCP connection just went away).  The callee must
	 * call ws_conn_free() (now or later) and not use it for sending.
	 */
	void	(*on_close)(struct ws_conn *, int code, void *);
	/*
	 * Optional: everything queued has been handed to the kernel (the
	 * output drained), so a producer that waited may send more.
	 */
	void	(*on_drain)(struct ws_conn *, void *);
};

/*
 * Take over bev (handshake done; bytes already in its input are frames).
 * max_msg caps a received message (larger: close 1009), and so does a
 * message in more than 128 frames.  A binary message is answered with
 * close 1003, invalid UTF-8 with 1007.  A server connection stops reading
 * while more than 128 KiB of output wait, and reads again once they left.
 * Output goes out once per loop turn, in one write.
 */
struct ws_conn	*ws_conn_new(struct bufferevent *bev, int server,
		    size_t max_msg, const struct ws_conn_cbs *, void *arg);
void		 ws_conn_free(struct ws_conn *);
int		 ws_conn_send_text(struct ws_conn *, const char *, size_t);
/*
 * One text message for many connections: framed once, and the same bytes
 * queued on each (a client connection, which masks, copies them).
 * ws_msg_text() returns it with one reference, the caller's; each send
 * holds another until the bytes went out.
 */
struct ws_msg;
struct ws_msg	*ws_msg_text(const char *, size_t);
void		 ws_msg_unref(struct ws_msg *);
int		 ws_conn_send_msg(struct ws_conn *, struct ws_msg *);
/* Queue a close frame; on_close follows once it went out and/or the peer answered. */
void		 ws_conn_close(struct ws_conn *, uint16_t code, const char *reason);
/* Close now, without waiting for an answer; on_close follows from the loop. */
void		 ws_conn_abort(struct ws_conn *, uint16_t code, const char *reason);
/*
 * The owner's sweep calls this for every connection, now in monotonic
 * milliseconds.  A connection silent for interval_ms (0: never) is sent a
 * ping.  Anything received answers it.  Returns -1 when nothing did for
 * timeout_ms, not counting the time the peer's TCP was still taking our
 * data queued ahead of the ping: the caller closes it (1011).  Else 0.
 */
int		 ws_conn_heartbeat(struct ws_conn *, int64_t now, int interval_ms,
		    int timeout_ms);
size_t		 ws_conn_pending(const struct ws_conn *);	/* bytes queued */
/*
 * Bytes the peer's TCP acknowledged since the start; *waiting gets those
 * not acknowledged yet (in our buffer or the kernel's).
 */
uint64_t	 ws_conn_taken(struct ws_conn *, size_t *waiting);
void		 ws_conn_set_arg(struct ws_conn *, void *);
void		 ws_conn_set_max(struct ws_conn *, size_t);

/*
 * Client side in one call: resolve, connect, handshake (path "/"), then
 * hand a ws_conn to on_open.  On any failure on_fail gets a reason.
 * Returns a handle to cancel the attempt with ws_dial_cancel() before
 * either callback ran.
 */
struct ws_dial;
struct ws_dial	*ws_dial(struct event_base *, struct evdns_base *,
		    const char *host, int port, size_t max_msg,
		    const struct ws_conn_cbs *,
		    void (*on_open)(struct ws_conn *, void *),
		    void (*on_fail)(const char *reason, void *), void *arg);
void		 ws_dial_cancel(struct ws_dial *);

#endif /* WS_H */
