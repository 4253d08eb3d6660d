/*
 * client_status.c: "nodetalk --status", the cluster at a glance.  It asks
 * the given node for /status, then every peer that node knows of, and
 * prints one line per node: its messages, clients, and how each of its
 * peers' links and lag look from there.  With engine = "nats" the nodes
 * are gateways: their link to NATS and their lag behind the stream.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netdb.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nodetalk.h"
#include "client.h"

#define STATUS_MAX	(1024 * 1024)

static int
connect_to(const char *host, int port, const struct timeval *tv,
    char **cause)
{
	struct addrinfo	 hints, *res, *ai;
	char		 service[16];
	int		 fd = -1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%d", port);
	if ((e = getaddrinfo(host, service, &hints, &res)) != 0) {
		xasprintf(cause, "%s", gai_strerror(e));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype, 0)) == -1)
			continue;
		/* A blocking socket with timeouts: this is a one-shot tool. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, sizeof(*tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, sizeof(*tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd == -1)
		xasprintf(cause, "%s", strerror(errno));
	freeaddrinfo(res);
	return (fd);
}

/* GET /status; the body as a fresh string, or NULL and *cause. */
static char *
fetch_status(const char *host, int port, const struct timeval *tv,
    char **cause)
{
	char	*req, *buf, *body;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd;

	if ((fd = connect_to(host, port, tv, cause)) == -1)
		return (NULL);
	xasprintf(&req, "GET /status HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Connection: close\r\n\r\n", host, port);
	n = write(fd, req, strlen(req));
	free(req);
	buf = xmalloc(STATUS_MAX + 1);
	while (n > 0 && len < STATUS_MAX &&
	    (n = read(fd, buf + len, STATUS_MAX - len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (n < 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0 || body == NULL) {
		xasprintf(cause, "%s", n < 0 ? strerror(errno) :
		    "no status answer");
		free(buf);
		return (NULL);
	}
	body = xstrdup(body + 4);
	free(buf);
	return (body);
}

static double
num(const cJSON *o, const char *key)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, key);

	return (cJSON_IsNumber(v) ? v->valuedouble : -1);
}

/* "nats up (lag 0, N2 leads)" */
static void
print_nats(const cJSON *n)
{
	const char	*leader;

	leader = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n,
	    "leader"));
	printf("nats %s (lag %.0f", cJSON_IsTrue(
	    cJSON_GetObjectItemCaseSensitive(n, "connected")) ? "up" : "DOWN",
	    num(n, "lag"));
	if (leader != NULL && *leader != '\0')
		printf(", %s leads", leader);
	printf(")\n");
}

static void
print_peers(const cJSON *st)
{
	const cJSON	*peers, *p, *lag;
	int		 first = 1;

	if ((p = cJSON_GetObjectItemCaseSensitive(st, "nats")) != NULL) {
		print_nats(p);
		return;
	}
	peers = cJSON_GetObjectItemCaseSensitive(st, "peers");
	cJSON_ArrayForEach(p, peers) {
		lag = cJSON_GetObjectItemCaseSensitive(p, "lag");
		printf("%s%s %s", first ? "" : ", ", p->string,
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p,
		    "connected")) ? "up" : "DOWN");
		if (cJSON_IsNumber(lag))
			printf(" (lag %.0f)", lag->valuedouble);
		first = 0;
	}
	printf("\n");
}

static int
print_node(const char *id, const char *host, int port, const char *body,
    const char *cause)
{
	cJSON	*st;
	char	 addr[300];

	snprintf(addr, sizeof(addr), "%s:%d", host, port);
	printf("%-6s %-22s ", id, addr);
	if (body == NULL || (st = cJSON_Parse(body)) == NULL) {
		printf("unreachable: %s\n", cause != NULL ? cause :
		    "bad answer");
		return (-1);
	}
	printf("%8.0f %8.0f %7.0f  ", num(st, "messages"), num(st, "lamport"),
	    num(st, "clients"));
	print_peers(st);
	cJSON_Delete(st);
	return (0);
}

int
client_status(const char *host, int port, const struct timeval *tv)
{
	const cJSON	*peers, *p, *h, *pp;
	cJSON		*st;
	char		*body, *pbody, *cause = NULL;
	const char	*node;

	if ((body = fetch_status(host, port, tv, &cause)) == NULL ||
	    (st = cJSON_Parse(body)) == NULL) {
		fprintf(stderr, "nodetalk: %s:%d: %s\n", host, port,
		    cause != NULL ? cause : "bad status answer");
		free(cause);
		free(body);
		return (1);
	}
	node = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st,
	    "node"));
	printf("%-6s %-22s %8s %8s %7s  %s\n", "node", "address", "messages",
	    "lamport", "clients",
	    cJSON_GetObjectItemCaseSensitive(st, "nats") != NULL ?
	    "link to NATS (as seen from that node)" :
	    "peers (as seen from that node)");
	print_node(node != NULL ? node : "?", host, port, body, NULL);
	/* Gateways to NATS have no peers, and list each other instead. */
	if ((peers = cJSON_GetObjectItemCaseSensitive(st, "gateways")) == NULL)
		peers = cJSON_GetObjectItemCaseSensitive(st, "peers");
	cJSON_ArrayForEach(p, peers) {
		h = cJSON_GetObjectItemCaseSensitive(p, "host");
		pp = cJSON_GetObjectItemCaseSensitive(p, "port");
		if (!cJSON_IsString(h) || !cJSON_IsNumber(pp))
			continue;
		free(cause);
		cause = NULL;
		pbody = fetch_status(h->valuestring, (int)pp->valuedouble, tv,
		    &cause);
		print_node(p->string, h->valuestring, (int)pp->valuedouble,
		    pbody, cause);
		free(pbody);
	}
	free(cause);
	cJSON_Delete(st);
	free(body);
	return (0);
}
