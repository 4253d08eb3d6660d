/*
 * bench_status.c: a node's /status (DESIGN section 5), fetched with a
 * plain blocking HTTP/1.0 request.  The benchmark reads it before and
 * after a measurement, never while load runs, so simplicity wins here.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nodetalk.h"
#include "bench.h"

#define STATUS_WAIT_MS	5000
#define STATUS_MAX	(4 * 1024 * 1024)

static int
status_wait(int fd, short events)
{
	struct pollfd	pfd = { fd, events, 0 };
	int		r;

	while ((r = poll(&pfd, 1, STATUS_WAIT_MS)) == -1 && errno == EINTR)
		;
	return (r == 1 ? 0 : -1);
}

static int
status_connect(const struct bench_node *n, char **cause)
{
	socklen_t	sl = sizeof(int);
	int		fd, err = 0;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return (-1);
	}
	if (connect(fd, (const struct sockaddr *)&n->sin, sizeof(n->sin)) ==
	    -1 && errno != EINPROGRESS)
		err = errno;
	else if (status_wait(fd, POLLOUT) == -1)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		err = errno;
	if (err != 0) {
		xasprintf(cause, "%s: %s", n->name, strerror(err));
		close(fd);
		return (-1);
	}
	return (fd);
}

/* The whole response (the node closes after an HTTP/1.0 answer). */
static char *
status_fetch(const struct bench_node *n, char **cause)
{
	char	 req[256], *buf = NULL;
	size_t	 len = 0, cap = 0;
	ssize_t	 r;
	int	 fd;

	if ((fd = status_connect(n, cause)) == -1)
		return (NULL);
	snprintf(req, sizeof(req), "GET /status HTTP/1.0\r\nHost: %s\r\n\r\n",
	    n->name);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto fail;
	for (;;) {
		if (len + 4096 + 1 > cap)
			buf = xreallocarray(buf, 1, (cap = cap * 2 + 8192));
		if (status_wait(fd, POLLIN) == -1)
			goto fail;
		if ((r = read(fd, buf + len, cap - len - 1)) == 0)
			break;
		if (r == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r == -1 || len + r > STATUS_MAX)
			goto fail;
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	return (buf);
fail:
	xasprintf(cause, "%s: no answer to GET /status", n->name);
	close(fd);
	free(buf);
	return (NULL);
}

static int
status_have(const cJSON *h, struct nt_have *have)
{
	const cJSON	*it;

	if (!cJSON_IsObject(h))
		return (-1);
	cJSON_ArrayForEach(it, h) {
		if (!cJSON_IsNumber(it) || it->valuedouble < 0)
			return (-1);
		have_set(have, it->string, (uint64_t)it->valuedouble);
	}
	return (0);
}

static int
status_parse(const char *body, struct bench_status *st)
{
	cJSON		*o;
	const cJSON	*v, *w;
	int		 rv = -1;

	if ((o = cJSON_Parse(body)) == NULL)
		return (-1);
	v = cJSON_GetObjectItemCaseSensitive(o, "messages");
	if (cJSON_IsNumber(v) &&
	    status_have(cJSON_GetObjectItemCaseSensitive(o, "have"),
	    &st->have) == 0) {
		st->messages = (uint64_t)v->valuedouble;
		rv = 0;
	}
	v = cJSON_GetObjectItemCaseSensitive(o, "clients");
	if (cJSON_IsNumber(v))
		st->clients = v->valueint;
	w = cJSON_GetObjectItemCaseSensitive(o, "workers");
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    w, "ws"), "pid");
	if (cJSON_IsNumber(v))
		st->ws_pid = (pid_t)v->valueint;
	cJSON_Delete(o);
	return (rv);
}

/* messages, have, clients and the ws worker's pid of node n. */
int
bench_status_get(const struct bench_node *n, struct bench_status *st,
    char **cause)
{
	char	*res, *body;
	int	 rv = -1;

	memset(st, 0, sizeof(*st));
	if ((res = status_fetch(n, cause)) == NULL)
		return (-1);
	if (strncmp(res, "HTTP/1.", 7) != 0 || strncmp(res + 8, " 200", 4) !=
	    0 || (body = strstr(res, "\r\n\r\n")) == NULL)
		xasprintf(cause, "%s: GET /status did not answer 200",
		    n->name);
	else if (status_parse(body + 4, st) == -1)
		xasprintf(cause, "%s: /status has no messages and have",
		    n->name);
	else
		rv = 0;
	free(res);
	if (rv == -1)
		bench_status_clear(st);
	return (rv);
}

void
bench_status_clear(struct bench_status *st)
{
	have_clear(&st->have);
	memset(st, 0, sizeof(*st));
}
