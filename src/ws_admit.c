/*
 * ws_admit.c: who gets a place on the node's port.  Idle sockets must not
 * be able to take every place, the node's own peers' included, so a new
 * connection is counted in one of these pools:
 *
 *   general  clients and HTTP requests: at most max_clients plus a little
 *            slack, and at most max_clients_per_address from one address;
 *   reserve  when the general pool has no room for it, a connection from
 *            a configured peer's address: one place per peer, kept only
 *            by a hello that makes it a peer link (else it is closed);
 *   peer     links that said hello as a configured node: not counted
 *            against anything.
 *
 * The rest is answered 503.  The file also keeps max_clients within the
 * descriptors the process may open, and pauses the listener when accept()
 * runs out of them instead of spinning.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "nodetalk.h"
#include "config.h"
#include "log.h"
#include "ws_worker.h"

/* Descriptors that are not connections: listener, channel, epoll, log... */
#define FD_OVERHEAD	32
#define ACCEPT_PAUSE_MS	500	/* after accept() lacked descriptors */

struct addr_slot {
	struct addr_key	 key;
	unsigned	 refs;		/* connections from it */
	unsigned	 n;		/* ... in the general pool */
};

static int
addr_key_cmp(const void *a, const void *b)
{
	const struct addr_key	*x = a, *y = b;

	if (x->len != y->len)
		return (x->len < y->len ? -1 : 1);
	return (memcmp(x->a, y->a, x->len));
}

/* An IPv4 client on an IPv6 socket counts as its IPv4 address. */
static void
addr_key_from(const struct sockaddr *sa, struct addr_key *k)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		k->len = 4;
		memcpy(k->a, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			k->len = 4;
			memcpy(k->a, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			k->len = 16;
			memcpy(k->a, &sin6->sin6_addr, 16);
		}
	}
}

const char *
addr_str(const struct addr_slot *s, char *buf, size_t len)
{
	if (s == NULL || s->key.len == 0)
		snprintf(buf, len, "?");
	else if (inet_ntop(s->key.len == 4 ? AF_INET : AF_INET6, s->key.a,
	    buf, len) == NULL)
		snprintf(buf, len, "?");
	return (buf);
}

/* That address's slot, one more connection from it. */
static struct addr_slot *
addr_get(const struct addr_key *k)
{
	struct addr_slot	*s, **p;

	s = xcalloc(1, sizeof(*s));
	s->key = *k;
	if ((p = tsearch(s, &W.addr_root, addr_key_cmp)) == NULL)
		fatalx("tsearch: out of memory");
	if (*p != s)
		free(s);
	(*p)->refs++;
	return (*p);
}

static void
addr_put(struct addr_slot *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	tdelete(s, &W.addr_root, addr_key_cmp);
	free(s);
}

static int
is_peer_addr(const struct addr_key *k)
{
	size_t	 i;

	for (i = 0; i < W.npeer_addrs; i++)
		if (addr_key_cmp(&W.peer_addrs[i], k) == 0)
			return (1);
	return (0);
}

/*
 * The pool a connection from sa goes into; POOL_NONE when it gets 503,
 * with *why.  *slot is its address's (admit_forget() lets go of it).
 */
enum conn_pool
admit(const struct sockaddr *sa, struct addr_slot **slot, const char **why)
{
	struct addr_key		 k;
	struct addr_slot	*s;
	size_t			 general;

	addr_key_from(sa, &k);
	*slot = s = addr_get(&k);
	general = (size_t)W.max_clients + CONN_SLACK;
	if (W.quitting) {
		*why = "shutting down";
		return (POOL_NONE);
	}
	if (s->n < (unsigned)W.conf->max_clients_per_address &&
	    W.npool[POOL_GENERAL] < general) {
		s->n++;
		return (POOL_GENERAL);
	}
	if (is_peer_addr(&k) && W.npool[POOL_RESERVE] < W.npeers)
		return (POOL_RESERVE);
	if (W.npool[POOL_GENERAL] >= general)
		*why = "every place is taken (max_clients)";
	else
		*why = "too many connections from one address "
		    "(max_clients_per_address)";
	return (POOL_NONE);
}

/* The connection gives its place back (it became a peer, or goes). */
void
admit_leave(struct conn *c)
{
	if (c->pool == POOL_GENERAL)
		c->addr->n--;
	W.npool[c->pool]--;
	c->pool = POOL_NONE;
	W.npool[POOL_NONE]++;
}

/* A hello made it a peer link: it no longer counts against anybody. */
void
admit_as_peer(struct conn *c)
{
	admit_leave(c);
	W.npool[POOL_NONE]--;
	c->pool = POOL_PEER;
	W.npool[POOL_PEER]++;
}

/* The connection is freed. */
void
admit_forget(struct conn *c)
{
	admit_leave(c);
	W.npool[POOL_NONE]--;
	addr_put(c->addr);
	c->addr = NULL;
}

/*
 * Where the configured peers connect from: their hosts, resolved.  A
 * lookup still running when the peers change again is ignored.
 */
struct lookup {
	unsigned	 gen;
	char		*host;
};

static void
lookup_cb(int err, struct evutil_addrinfo *res, void *arg)
{
	struct lookup		*lk = arg;
	struct evutil_addrinfo	*ai;
	struct addr_key		 k;

	if (err != 0)
		log_warnx("cannot resolve peer host %s (%s): its links get "
		    "no reserved place", lk->host, evutil_gai_strerror(err));
	for (ai = res; err == 0 && lk->gen == W.dns_gen && ai != NULL;
	    ai = ai->ai_next) {
		addr_key_from(ai->ai_addr, &k);
		if (k.len == 0 || is_peer_addr(&k))
			continue;
		W.peer_addrs = xreallocarray(W.peer_addrs, W.npeer_addrs + 1,
		    sizeof(*W.peer_addrs));
		W.peer_addrs[W.npeer_addrs++] = k;
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	free(lk->host);
	free(lk);
}

void
admit_peer_hosts(const char **hosts, size_t n)
{
	struct evutil_addrinfo	 hints, *res;
	struct lookup		*lk;
	size_t			 i;
	int			 err;

	W.dns_gen++;
	free(W.peer_addrs);
	W.peer_addrs = NULL;
	W.npeer_addrs = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	for (i = 0; i < n; i++) {
		lk = xcalloc(1, sizeof(*lk));
		lk->gen = W.dns_gen;
		lk->host = xstrdup(hosts[i]);
		/* May answer at once (a numeric host), before returning. */
		if (W.dns != NULL)
			evdns_getaddrinfo(W.dns, hosts[i], NULL, &hints,
			    lookup_cb, lk);
		else {
			res = NULL;
			err = evutil_getaddrinfo(hosts[i], NULL, &hints, &res);
			lookup_cb(err, res, lk);
		}
	}
}

/*
 * Every connection costs a descriptor.  Take all the kernel allows this
 * process, then serve no more clients than that leaves room for: past it
 * accept() would fail, and a client at the limit deserves a 503.
 */
void
admit_clamp(void)
{
	struct rlimit	 rl;
	rlim_t		 want;
	long long	 room;
	int		 was = W.max_clients;

	W.max_clients = W.conf->max_clients;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur != rl.rlim_max) {
		want = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		/* An infinite hard limit: the kernel's nr_open still holds. */
		if (rl.rlim_cur == RLIM_INFINITY)
			rl.rlim_cur = 1024 * 1024;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			rl.rlim_cur = want;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	room = (long long)rl.rlim_cur - CONN_SLACK - (long long)W.npeers -
	    FD_OVERHEAD;
	if (room >= W.max_clients)
		return;
	W.max_clients = room > 0 ? (int)room : 1;
	if (W.max_clients != was)
		log_warnx("max_clients %d needs more open files than the "
		    "limit of %llu allows: serving at most %d clients (raise "
		    "the limit, for example LimitNOFILE= in the systemd unit)",
		    W.conf->max_clients, (unsigned long long)rl.rlim_cur,
		    W.max_clients);
}

static void
resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	if (!W.quitting)
		evconnlistener_enable(W.listener);
}

/*
 * accept() failed for want of descriptors (or memory): the connection
 * stays in the backlog and the listener would fire again at once, so
 * stop listening for a moment.  One line per cause every few seconds.
 */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval	 tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int		 err = EVUTIL_SOCKET_ERROR();

	log_limit_warnx("accept", "accept: %s; not accepting "
	    "connections for %d ms", evutil_socket_error_to_string(err),
	    ACCEPT_PAUSE_MS);
	evconnlistener_disable(l);
	evtimer_add(W.resume_ev, &tv);
}

void
admit_listener(void)
{
	if ((W.resume_ev = evtimer_new(W.base, resume_cb, NULL)) == NULL)
		fatalx("evtimer_new");
	evconnlistener_set_error_cb(W.listener, accept_error_cb);
}
