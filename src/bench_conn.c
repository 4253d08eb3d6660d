/*
 * bench_conn.c: the benchmark's WebSocket client.  A measurement is only
 * as good as the load generator is cheap, so this is a lean path: raw
 * non-blocking sockets on the libevent loop, frames built and parsed in
 * place, one shared read buffer, and per-connection memory only while a
 * partial frame or unsent bytes are waiting.  The opening handshake is the
 * project's own (ws_client_request, ws_client_response in ws_proto.c);
 * frames are built here because wslay's event API copies and allocates per
 * message and OpenSSL's RAND_bytes per mask costs more than the server
 * spends on a chat.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "ws.h"
#include "bench.h"

#define CONN_READ_SIZE	(256 * 1024)	/* one read(2), shared by all */
#define CONN_MAX_FRAME	(64 * 1024 * 1024)
#define CONN_KEEP_OUT	(64 * 1024)	/* larger idle buffers are freed */
#define CONN_HDR_MAX	14		/* 2 + 8 length + 4 mask */

enum conn_state {
	CONN_CONNECTING,
	CONN_HANDSHAKE,
	CONN_OPEN,
	CONN_DONE
};

struct bench_conn {
	int			 fd;
	enum conn_state		 state;
	struct event		*ev_read;
	struct event		*ev_write;	/* pending output, connect,
						   deferred failure */
	struct evbuffer		*head;		/* the response head */
	char			 key[25];
	char			*in;		/* a partial frame */
	size_t			 inlen;
	char			*out;		/* bytes not yet written */
	size_t			 outoff, outlen, outcap;
	char			*frag;		/* a fragmented message */
	size_t			 fraglen;
	int			 broken;	/* fail from the loop: why */
	char			 why[128];
	int			 busy;		/* inside our callbacks */
	int			 freed;
	struct bench_conn_cbs	 cbs;
	void			*arg;
	const struct bench_node	*node;
};

static char	 conn_rbuf[CONN_READ_SIZE];
static uint64_t	 conn_mask_state = 0x9e3779b97f4a7c15ULL;

static void	 conn_finish(struct bench_conn *, const char *);

/*
 * Masks only keep a proxy's cache from being poisoned through a browser
 * (RFC 6455 section 10.3); for a load generator on our own links a fast
 * generator seeded at random is enough.
 */
void
bench_conn_mask_seed(uint64_t seed)
{
	if (seed != 0)
		conn_mask_state = seed;
}

static uint32_t
conn_mask(void)
{
	uint64_t	x = conn_mask_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	conn_mask_state = x;
	return ((uint32_t)(x >> 16));
}

static void
conn_out_reserve(struct bench_conn *c, size_t more)
{
	size_t	want = c->outlen + more;

	if (want <= c->outcap)
		return;
	if (c->outoff > 0) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
		if ((want = c->outlen + more) <= c->outcap)
			return;
	}
	c->outcap = want < 4096 ? 4096 : want * 2;
	c->out = xreallocarray(c->out, 1, c->outcap);
}

/* Append one masked frame of opcode op. */
static void
conn_frame(struct bench_conn *c, int op, const char *p, size_t len)
{
	unsigned char	*h;
	uint32_t	 m = conn_mask();
	unsigned char	 mk[4];
	size_t		 i, n = 0;

	conn_out_reserve(c, CONN_HDR_MAX + len);
	h = (unsigned char *)c->out + c->outlen;
	h[n++] = 0x80 | op;
	if (len < 126)
		h[n++] = 0x80 | len;
	else if (len <= 0xffff) {
		h[n++] = 0x80 | 126;
		h[n++] = len >> 8;
		h[n++] = len & 0xff;
	} else {
		h[n++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			h[n++] = ((uint64_t)len >> (56 - 8 * i)) & 0xff;
	}
	memcpy(mk, &m, 4);
	memcpy(h + n, mk, 4);
	n += 4;
	for (i = 0; i < len; i++)
		h[n + i] = p[i] ^ mk[i & 3];
	c->outlen += n + len;
}

void
bench_conn_send(struct bench_conn *c, const char *p, size_t len)
{
	if (c->state == CONN_OPEN)
		conn_frame(c, 0x1, p, len);
}

void
bench_conn_ping(struct bench_conn *c)
{
	if (c->state == CONN_OPEN)
		conn_frame(c, 0x9, "nt", 2);
}

/* Fail later, from the loop: callers of send and flush never see on_close. */
static void
conn_defer_fail(struct bench_conn *c, const char *why)
{
	if (c->broken || c->state == CONN_DONE)
		return;
	c->broken = 1;
	snprintf(c->why, sizeof(c->why), "%s", why);
	event_active(c->ev_write, EV_WRITE, 1);
}

void
bench_conn_flush(struct bench_conn *c)
{
	ssize_t	n;

	if (c->state == CONN_CONNECTING || c->state == CONN_DONE || c->broken)
		return;
	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			event_add(c->ev_write, NULL);
			return;
		}
		if (n == -1) {
			conn_defer_fail(c, strerror(errno));
			return;
		}
		c->outoff += n;
	}
	c->outoff = c->outlen = 0;
	if (c->outcap > CONN_KEEP_OUT || c->state != CONN_OPEN) {
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	event_del(c->ev_write);
}

static void
conn_deliver(struct bench_conn *c, const char *p, size_t len)
{
	if (c->cbs.on_text != NULL && !c->freed)
		c->cbs.on_text(c, p, len, c->arg);
}

/* A text message, whole or in fragments; 0, or -1 when it makes no sense. */
static int
conn_data(struct bench_conn *c, int fin, int op, const char *p, size_t len)
{
	if (op == 0x1 && fin && c->frag == NULL) {
		conn_deliver(c, p, len);
		return (0);
	}
	if ((op == 0x1) == (c->frag != NULL))
		return (-1);
	if (c->fraglen + len > CONN_MAX_FRAME)
		return (-1);
	c->frag = xreallocarray(c->frag, 1, c->fraglen + len + 1);
	memcpy(c->frag + c->fraglen, p, len);
	c->fraglen += len;
	if (fin) {
		conn_deliver(c, c->frag, c->fraglen);
		free(c->frag);
		c->frag = NULL;
		c->fraglen = 0;
	}
	return (0);
}

static void
conn_control(struct bench_conn *c, int op, const char *p, size_t len)
{
	char	why[64];
	int	code = len >= 2 ? ((unsigned char)p[0] << 8 |
		    (unsigned char)p[1]) : 1005;

	switch (op) {
	case 0x8:
		/* Answer with the node's code, then the connection is over. */
		conn_frame(c, 0x8, p, len >= 2 ? 2 : 0);
		bench_conn_flush(c);
		snprintf(why, sizeof(why), "closed by the node (%d)", code);
		conn_finish(c, why);
		break;
	case 0x9:
		conn_frame(c, 0xa, p, len);
		break;
	case 0xa:
		if (c->cbs.on_pong != NULL && !c->freed)
			c->cbs.on_pong(c, c->arg);
		break;
	default:
		break;
	}
}

/* Frame header: 0 incomplete, -1 bad, else its size; *plen the payload. */
static ssize_t
conn_header(const unsigned char *b, size_t len, uint64_t *plen)
{
	size_t		h = 2, i;
	uint64_t	n;

	if (len < 2)
		return (0);
	n = b[1] & 0x7f;
	if (n == 126)
		h += 2;
	else if (n == 127)
		h += 8;
	if (b[1] & 0x80)
		h += 4;
	if (len < h)
		return (0);
	if (n == 126)
		n = (uint64_t)b[2] << 8 | b[3];
	else if (n == 127)
		for (n = 0, i = 2; i < 10; i++)
			n = n << 8 | b[i];
	if (n > CONN_MAX_FRAME)
		return (-1);
	*plen = n;
	return ((ssize_t)h);
}

/* Handle the whole frames in buf; returns the bytes used, -1 on error. */
static ssize_t
conn_parse(struct bench_conn *c, char *buf, size_t len)
{
	unsigned char	*b;
	uint64_t	 plen, i;
	ssize_t		 h;
	size_t		 off = 0;
	char		*p;
	int		 op;

	while (c->state == CONN_OPEN && !c->freed) {
		b = (unsigned char *)buf + off;
		if ((h = conn_header(b, len - off, &plen)) <= 0)
			return (h == 0 ? (ssize_t)off : -1);
		if (len - off - h < plen)
			break;
		p = buf + off + h;
		if (b[1] & 0x80)	/* nodes do not mask; undo it */
			for (i = 0; i < plen; i++)
				p[i] ^= b[h - 4 + (i & 3)];
		op = b[0] & 0x0f;
		off += h + plen;
		if (op & 0x8)
			conn_control(c, op, p, plen);
		else if (conn_data(c, b[0] & 0x80, op, p, plen) == -1)
			return (-1);
	}
	return ((ssize_t)off);
}

/* New bytes: frames straight from the shared buffer, the rest kept. */
static void
conn_feed(struct bench_conn *c, const char *data, size_t len)
{
	char	*buf = (char *)data;
	size_t	 total = len;
	ssize_t	 used;

	if (c->inlen > 0) {
		c->in = xreallocarray(c->in, 1, c->inlen + len);
		memcpy(c->in + c->inlen, data, len);
		buf = c->in;
		total = c->inlen + len;
	}
	if ((used = conn_parse(c, buf, total)) == -1) {
		conn_finish(c, "bad frame from the node");
		return;
	}
	if ((size_t)used == total || c->state != CONN_OPEN) {
		free(c->in);
		c->in = NULL;
		c->inlen = 0;
		return;
	}
	if (buf != c->in)
		c->in = xmalloc(total - used);
	memmove(c->in, buf + used, total - used);
	c->inlen = total - used;
}

static void
conn_handshake(struct bench_conn *c, const char *data, size_t len)
{
	char	*cause = NULL, *rest;
	size_t	 n;

	evbuffer_add(c->head, data, len);
	switch (ws_client_response(c->head, c->key, &cause)) {
	case 0:
		return;
	case -1:
		snprintf(c->why, sizeof(c->why), "handshake: %s", cause);
		free(cause);
		conn_finish(c, c->why);
		return;
	}
	c->state = CONN_OPEN;
	if (c->cbs.on_open != NULL)
		c->cbs.on_open(c, c->arg);
	if ((n = evbuffer_get_length(c->head)) > 0 && !c->freed &&
	    c->state == CONN_OPEN) {
		rest = xmalloc(n);
		evbuffer_remove(c->head, rest, n);
		conn_feed(c, rest, n);
		free(rest);
	}
	evbuffer_free(c->head);
	c->head = NULL;
}

static void
conn_destroy(struct bench_conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	event_free(c->ev_read);
	event_free(c->ev_write);
	if (c->head != NULL)
		evbuffer_free(c->head);
	free(c->in);
	free(c->out);
	free(c->frag);
	free(c);
}

static void
conn_leave(struct bench_conn *c)
{
	if (--c->busy == 0 && c->freed)
		conn_destroy(c);
}

/*
 * Over: close the socket now (a storm of reconnects needs the ports
 * back), tell the owner once.
 */
static void
conn_finish(struct bench_conn *c, const char *why)
{
	if (c->state == CONN_DONE)
		return;
	c->state = CONN_DONE;
	event_del(c->ev_read);
	event_del(c->ev_write);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (!c->freed && c->cbs.on_close != NULL) {
		c->busy++;
		c->cbs.on_close(c, why, c->arg);
		conn_leave(c);
	}
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_conn	*c = arg;
	ssize_t			 n;

	c->busy++;
	n = read(fd, conn_rbuf, sizeof(conn_rbuf));
	if (n == 0)
		conn_finish(c, "connection closed by the node");
	else if (n == -1 && errno != EAGAIN && errno != EINTR)
		conn_finish(c, strerror(errno));
	else if (n > 0 && c->state == CONN_HANDSHAKE)
		conn_handshake(c, conn_rbuf, n);
	else if (n > 0 && c->state == CONN_OPEN)
		conn_feed(c, conn_rbuf, n);
	if (!c->freed)
		bench_conn_flush(c);
	conn_leave(c);
}

/* Connected (or not): send the upgrade request. */
static void
conn_connected(struct bench_conn *c)
{
	struct evbuffer	*req;
	socklen_t	 sl = sizeof(int);
	int		 err = 0;
	size_t		 n;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		err = errno;
	if (err != 0) {
		snprintf(c->why, sizeof(c->why), "connect: %s", strerror(err));
		conn_finish(c, c->why);
		return;
	}
	c->state = CONN_HANDSHAKE;
	if ((req = evbuffer_new()) == NULL || (c->head = evbuffer_new()) ==
	    NULL)
		fatalx("evbuffer_new failed");
	ws_client_key(c->key);
	ws_client_request(req, c->node->host, c->node->port, "/", c->key);
	n = evbuffer_get_length(req);
	conn_out_reserve(c, n);
	evbuffer_remove(req, c->out + c->outlen, n);
	c->outlen += n;
	evbuffer_free(req);
	event_add(c->ev_read, NULL);
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bench_conn	*c = arg;

	c->busy++;
	if (c->broken)
		conn_finish(c, c->why);
	else if (c->state == CONN_CONNECTING)
		conn_connected(c);
	bench_conn_flush(c);
	conn_leave(c);
}

static int
conn_socket(const struct bench_node *n, const struct sockaddr_in *src,
    const char **why)
{
	int	fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		*why = strerror(errno);
		return (-1);
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src != NULL) {
#ifdef IP_BIND_ADDRESS_NO_PORT
		/* the port is picked at connect(), per destination */
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
#endif
		if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) == -1)
			goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&n->sin, sizeof(n->sin)) ==
	    -1 && errno != EINPROGRESS)
		goto fail;
	return (fd);
fail:
	*why = strerror(errno);
	close(fd);
	return (-1);
}

/*
 * Start connecting to node n (from src when not NULL).  Every outcome,
 * even a socket that could not be made, arrives through the callbacks.
 */
struct bench_conn *
bench_conn_new(struct event_base *base, const struct bench_node *n,
    const struct sockaddr_in *src, const struct bench_conn_cbs *cbs,
    void *arg)
{
	struct bench_conn	*c;
	const char		*why = NULL;

	c = xcalloc(1, sizeof(*c));
	c->cbs = *cbs;
	c->arg = arg;
	c->node = n;
	c->fd = conn_socket(n, src, &why);
	if ((c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST,
	    conn_read_cb, c)) == NULL ||
	    (c->ev_write = event_new(base, c->fd, EV_WRITE | EV_PERSIST,
	    conn_write_cb, c)) == NULL)
		fatalx("bench_conn_new: event_new failed");
	if (c->fd == -1) {
		snprintf(c->why, sizeof(c->why), "connect: %s", why);
		c->broken = 1;
		event_active(c->ev_write, EV_WRITE, 1);
	} else
		event_add(c->ev_write, NULL);
	return (c);
}

void
bench_conn_free(struct bench_conn *c)
{
	if (c == NULL)
		return;
	c->freed = 1;
	if (c->busy == 0)
		conn_destroy(c);
	else {
		event_del(c->ev_read);
		event_del(c->ev_write);
	}
}

int
bench_conn_open(const struct bench_conn *c)
{
	return (c->state == CONN_OPEN && !c->broken);
}

void
bench_conn_set_arg(struct bench_conn *c, void *arg)
{
	c->arg = arg;
}
