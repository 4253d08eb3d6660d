/*
 * master.c: nodetalkd's master process.  It reads the config, owns the
 * store (MESSAGES and its durable log), forks the ws and peer workers and
 * relays between them, restarts a worker that dies, and handles every
 * signal inside its libevent loop.
 *
 * A message is acknowledged, pushed and replicated only once it is durable
 * under the fsync policy: appends collect in a pending list that a sync
 * (group commit) releases.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "status.h"
#include "store.h"

#define RESTART_MIN_MS	100
#define RESTART_MAX_MS	5000
#define STABLE_SECS	10	/* a worker up this long resets its backoff */
#define STOP_GRACE_SECS	5	/* then SIGKILL */
#define GAP_SYNC_MS	500	/* at most one gap-triggered sync per link */
#define SYNC_TICK_MS	1000	/* a changed have is told this often */
#define SYNC_EVERY_MS	5000	/* an unchanged one this often */
#define AFTER_MAX_JUMP	1000000	/* how far a client may push our clock */

struct worker {
	const char	*name;		/* "ws", "peer" */
	worker_main_fn	 main;
	pid_t		 pid;
	struct chan	*ch;
	int		 restarts;
	int		 backoff_ms;
	time_t		 started;
	int		 hello;		/* channel handshake done */
	int		 planned;	/* quit on purpose: respawn at once */
	struct event	*respawn_ev;
};

/* A stored message waiting for its sync before anyone hears of it. */
struct pending {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	uint64_t	 conn;		/* the ws connection to ack */
	int		 ack;
	int		 fresh;		/* newly stored: push it */
	int		 replicate;	/* ours: send it to every peer */
	int64_t		 t_us;		/* when it was appended */
};

/* What the master knows of a peer: the public part and gap bookkeeping. */
struct peer_state {
	struct peer_view view;
	uint64_t	 gap_conn;
	int64_t		 gap_ms;
	uint64_t	 in_conn;	/* its link to us, in the ws worker */
	int		 in_known;
	struct nt_have	 sent;		/* what our link to it carried */
	struct nt_have	 told;		/* our have in our last sync to it */
	int64_t		 told_ms;
};

struct master {
	struct event_base	*base;
	struct nt_config	*conf;
	const char		*conf_path;
	const char		*node_opt;
	struct store		*store;
	int			 listen_fd;
	struct worker		 ws;
	struct worker		 peer;
	struct pending		*pend;
	size_t			 npend;
	struct event		*sync_ev;
	int			 sync_armed;
	int64_t			 last_sync_us;	/* end of the last fsync */
	int			 stopping;
	int			 ready;
	struct event		*kill_ev;
	struct event		*antientropy_ev;
	int			 detached;
	int			 verbose;	/* -v: debug, whatever the file says */
	int			 relisten;	/* bind anew before the next ws */
	int			 recovering;	/* lost its log's tail: see below */
	char			*old_listen;
	int			 old_port;
	struct event		*sigs[5];
	int			 clients;
	struct peer_state	*peers;
	size_t			 npeers;
	struct stats		 stats;
};

static struct master	 M;

static void	worker_start(struct worker *);
static void	worker_quit(struct worker *);
static void	master_frame(struct chan *, int, const msgpack_object *, void *);
static void	master_chan_lost(struct chan *, const char *, void *);
static void	commit_schedule(void);
static void	commit_release(void);
static void	relisten(void);
static void	recovery_check(void);

static const char	*pidfile_path;
static pid_t		 pidfile_owner;

/* At any exit of the master, fatal ones too; never in a worker. */
static void
pidfile_remove(void)
{
	if (pidfile_path != NULL && getpid() == pidfile_owner &&
	    unlink(pidfile_path) == -1 && errno != ENOENT)
		log_warn("cannot remove pid file %s", pidfile_path);
}

/*
 * The pid file is locked for as long as the master runs, so a second
 * nodetalkd on the same file is refused even when a stale file remains.
 */
static int
pidfile_lock(const char *path)
{
	char	 buf[32];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		fatal("pid file %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatalx("pid file %s is locked: nodetalkd already runs (pid %s)",
		    path, buf[0] != '\0' ? buf : "unknown");
	}
	pidfile_path = path;
	pidfile_owner = getpid();
	atexit(pidfile_remove);
	return (fd);
}

static void
pidfile_write(int fd, const char *path)
{
	char	 buf[32];
	int	 len;

	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, len, 0) != len)
		fatal("pid file %s", path);
	pidfile_owner = getpid();	/* the daemon's, after -d */
}

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: nodetalkd [-dtvV] [-c file] [-n node-id] [-p pidfile]\n"
	    "  -c, --config FILE    configuration (default %s)\n"
	    "  -n, --node-id ID     this node's entry (default: node_id)\n"
	    "  -d, --daemon         detach; log to syslog unless log_file\n"
	    "  -t, --test           check the configuration and exit\n"
	    "  -p, --pidfile FILE   write and lock a pid file\n"
	    "  -v, --verbose        debug logging; with -t print the config\n"
	    "  -V, --version        print the version\n", NT_DEFAULT_CONF);
	exit(status);
}

/* Channel helpers. */

static void
send_msg_frame(struct worker *w, enum chan_type type, int with_conn,
    uint64_t conn, const char *peer, const struct nt_msg *m)
{
	struct chan_frame	 f;

	if (w->ch == NULL || !w->hello)
		return;
	frame_begin(&f, type, 1 + (with_conn ? 1 : 0) + (peer ? 1 : 0));
	if (with_conn)
		frame_u64(&f, "conn", conn);
	if (peer != NULL)
		frame_str(&f, "peer", peer);
	frame_msg(&f, "msg", m);
	chan_send(w->ch, &f);
}

static void
send_sync(uint64_t conn)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL || !M.ws.hello)
		return;
	frame_begin(&f, CH_SYNC, 2);
	frame_u64(&f, "conn", conn);
	frame_have(&f, "have", store_have(M.store));
	chan_send(M.ws.ch, &f);
}

/* A sync on the peer's link to us, and what it said. */
static void
sync_peer(struct peer_state *ps)
{
	send_sync(ps->in_conn);
	have_copy(&ps->told, store_have(M.store));
	ps->told_ms = now_ms();
}

static void
send_fail(uint64_t conn, const char *code, const char *message)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL)
		return;
	frame_begin(&f, CH_CHAT_FAIL, 3);
	frame_u64(&f, "conn", conn);
	frame_str(&f, "code", code);
	frame_str(&f, "message", message);
	chan_send(M.ws.ch, &f);
}

static void
send_peers(void)
{
	const char	**ids, **seeds;
	size_t		  i, ni = 0, ns = 0;
	struct chan_frame f;

	if (M.ws.ch == NULL)
		return;
	ids = xcalloc(M.conf->nnodes, sizeof(*ids));
	seeds = xcalloc(M.conf->nnodes, sizeof(*seeds));
	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self)
			continue;
		ids[ni++] = M.conf->nodes[i].id;
		if (M.conf->nodes[i].seed)
			seeds[ns++] = M.conf->nodes[i].id;
	}
	frame_begin(&f, CH_PEERS, 2);
	frame_strv(&f, "ids", ids, ni);
	frame_strv(&f, "seeds", seeds, ns);
	chan_send(M.ws.ch, &f);
	free(ids);
	free(seeds);
}

/* The limits and the page's directory, which the ws worker applies. */
static void
send_settings(void)
{
	struct chan_frame	 f;

	if (M.ws.ch == NULL)
		return;
	frame_begin(&f, CH_SETTINGS, 5);
	frame_u64(&f, "max_clients", (uint64_t)M.conf->max_clients);
	frame_u64(&f, "max_message_bytes",
	    (uint64_t)M.conf->max_message_bytes);
	frame_u64(&f, "max_frame_bytes", (uint64_t)M.conf->max_frame_bytes);
	frame_str(&f, "www_dir", M.conf->www_dir);
	frame_str(&f, "secret", M.conf->secret);
	chan_send(M.ws.ch, &f);
}

static void
send_reopen(struct worker *w)
{
	struct chan_frame	 f;

	if (w->ch == NULL)
		return;
	frame_begin(&f, CH_REOPEN, 1);
	frame_str(&f, "target", log_current());
	chan_send(w->ch, &f);
}

/* SIGUSR1 (logrotate) or a new log_file: every process reopens. */
static int
master_reopen_log(const char *target)
{
	char	*cause = NULL;

	if (log_open(target, &cause) == -1) {
		log_warnx("%s; logging stays where it was", cause);
		free(cause);
		return (-1);
	}
	send_reopen(&M.ws);
	send_reopen(&M.peer);
	return (0);
}

/* -d with no log_file: stderr is gone, so syslog. */
static const char *
log_target_for(const struct nt_config *c)
{
	if (c->log_file[0] == '\0' && M.detached)
		return ("syslog");
	return (c->log_file);
}

static void
send_loglevel(struct worker *w)
{
	struct chan_frame	 f;

	if (w->ch == NULL)
		return;
	frame_begin(&f, CH_LOGLEVEL, 1);
	frame_u64(&f, "level", (uint64_t)log_getlevel());
	chan_send(w->ch, &f);
}

/* Storing. */

static void
pending_add(const struct nt_msg *m, int ack, uint64_t conn, int fresh,
    int replicate)
{
	struct pending	*p;

	M.pend = xreallocarray(M.pend, M.npend + 1, sizeof(*M.pend));
	p = &M.pend[M.npend++];
	memset(p, 0, sizeof(*p));
	memcpy(p->origin, m->origin, sizeof(p->origin));
	p->seq = m->seq;
	p->conn = conn;
	p->ack = ack;
	p->fresh = fresh;
	p->replicate = replicate;
	p->t_us = mono_us();
	commit_schedule();
}

static int
pending_has(const struct nt_msg *m)
{
	size_t	 i;

	for (i = 0; i < M.npend; i++)
		if (M.pend[i].fresh && M.pend[i].seq == m->seq &&
		    strcmp(M.pend[i].origin, m->origin) == 0)
			return (1);
	return (0);
}

static void
log_chat(const struct nt_msg *m)
{
	char	 from[NT_FROM_MAX * 4 + 1], text[1024];

	str_escape(m->from, from, sizeof(from));
	str_escape(m->text, text, sizeof(text));
	log_info("CHAT from %s: '%s' (total messages here: %zu)", from, text,
	    store_count(M.store));
}

/* 1 stored, 0 already there, -2 gap, -1 write error (logged). */
static int
store_message(const struct nt_msg *m)
{
	int	 rv;

	if ((rv = store_append(M.store, m)) == -1)
		log_warn("%s: append", store_path(M.store));
	else if (rv == 1)
		log_chat(m);
	return (rv);
}

/*
 * A client's chat comes after everything this node stored and after the
 * newest message the client says it saw ("after"), which may not have
 * reached this node yet: an answer then sorts after its question on every
 * node.  A client may not push the clock arbitrarily far.
 */
static uint64_t
client_lamport(const msgpack_object *o)
{
	uint64_t	 after = 0, clock = store_lamport(M.store);

	frame_get_u64(o, "after", &after);
	if (after > clock + AFTER_MAX_JUMP)
		after = clock + AFTER_MAX_JUMP;
	return ((after > clock ? after : clock) + 1);
}

static void
on_client_chat(const msgpack_object *o)
{
	const struct nt_msg	*old;
	struct nt_msg		 m;
	uint64_t		 conn;
	int64_t			 t;

	memset(&m, 0, sizeof(m));
	if (frame_get_i64(o, "t", &t) == 0)
		hist_add(&M.stats.chan_lat, (mono_us() - t) / 1e6);
	if (frame_get_u64(o, "conn", &conn) == -1 ||
	    (m.from = frame_get_str(o, "from")) == NULL ||
	    (m.text = frame_get_str(o, "text")) == NULL)
		goto out;
	m.client_id = frame_get_str(o, "cid");
	/* A retry after a lost ack: answer with what was stored. */
	if (m.client_id != NULL && (old = store_lookup_client_id(M.store,
	    M.conf->node_id, m.client_id)) != NULL) {
		M.stats.retries++;
		pending_add(old, 1, conn, 0, 0);
		goto out;
	}
	if (M.recovering) {
		send_fail(conn, "recovering", "this node lost the end of its "
		    "log and waits to hear from every peer; retry shortly");
		goto out;
	}
	snprintf(m.origin, sizeof(m.origin), "%s", M.conf->node_id);
	m.seq = have_get(store_have(M.store), m.origin) + 1;
	m.lamport = client_lamport(o);
	m.ts = now_ms();
	if (store_message(&m) == 1) {
		M.stats.accepted++;
		pending_add(&m, 1, conn, 1, 1);
	} else
		send_fail(conn, "store_failed", "the message could not be stored");
out:
	msg_clear(&m);
}

static struct peer_state *
peer_state(const char *id)
{
	size_t	 i;

	for (i = 0; i < M.npeers; i++)
		if (strcmp(M.peers[i].view.id, id) == 0)
			return (&M.peers[i]);
	return (NULL);
}

/* One entry per configured peer; what is known of a kept peer stays. */
static void
peers_rebuild(void)
{
	struct peer_state	*old = M.peers, *o, *p;
	size_t			 nold = M.npeers, i, j;

	M.peers = xcalloc(M.conf->nnodes, sizeof(*M.peers));
	M.npeers = 0;
	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self)
			continue;
		p = &M.peers[M.npeers++];
		snprintf(p->view.id, sizeof(p->view.id), "%s",
		    M.conf->nodes[i].id);
		for (j = 0; j < nold; j++) {
			o = &old[j];
			if (strcmp(o->view.id, p->view.id) != 0)
				continue;
			*p = *o;
			memset(o, 0, sizeof(*o));
		}
	}
	for (j = 0; j < nold; j++) {
		have_clear(&old[j].view.have);
		have_clear(&old[j].sent);
		have_clear(&old[j].told);
	}
	free(old);
}

/*
 * A replicated message.  A gap (its seq jumps past what we hold) is not
 * stored: we ask that link for everything we lack instead, so the store
 * stays gap-free per origin.
 */
static void
on_peer_chat(const msgpack_object *o)
{
	struct peer_state	*ps;
	struct nt_msg		 m;
	char			*peer;
	uint64_t		 conn;
	int			 rv;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "conn", &conn) == -1 ||
	    frame_get_msg(o, "msg", &m) == -1) {
		log_warnx("bad CH_PEER_CHAT frame from ws worker");
		free(peer);
		return;
	}
	rv = store_message(&m);
	if (rv == 1) {
		M.stats.replicated_in++;
		pending_add(&m, 0, 0, 1, 0);
		recovery_check();
	} else if (rv == 0)
		M.stats.duplicates++;
	else if (rv == -2 && (ps = peer_state(peer)) != NULL) {
		M.stats.gaps++;
		if (ps->gap_conn != conn || now_ms() - ps->gap_ms > GAP_SYNC_MS) {
			log_info("Gap from %s at %s-%llu; asking for catch-up",
			    peer, m.origin, (unsigned long long)m.seq);
			ps->gap_conn = conn;
			ps->gap_ms = now_ms();
			send_sync(conn);
		}
	}
	msg_clear(&m);
	free(peer);
}

/*
 * A node that cut a damaged tail off its log may have lost messages of its
 * own that it acknowledged and that other nodes hold.  Numbering new ones
 * before it knows would give two messages one identity, and no catch-up
 * could tell them apart.  So it takes no chats until every peer (but seed
 * nodes, which keep no identities) has said what it holds and it holds as
 * much of its own origin as any of them.  A peer that never comes back
 * must be removed from the configuration (a reload) to end the wait.
 */
static void
recovery_check(void)
{
	const char	*self = M.conf->node_id;
	uint64_t	 mine = have_get(store_have(M.store), self);
	struct nt_node	*n;
	size_t		 i;

	if (!M.recovering)
		return;
	for (i = 0; i < M.npeers; i++) {
		n = config_node(M.conf, M.peers[i].view.id);
		if (n != NULL && n->seed)
			continue;
		if (!M.peers[i].view.have_known ||
		    have_get(&M.peers[i].view.have, self) > mine)
			return;
	}
	M.recovering = 0;
	log_info("every peer has been heard from and %s-%llu is the last of "
	    "our messages; taking chats again", self,
	    (unsigned long long)mine);
}

/* A seed node's chat: no identity, so it gets a local-only one. */
static void
on_seed_chat(const msgpack_object *o)
{
	struct nt_msg	 m;

	memset(&m, 0, sizeof(m));
	if ((m.from = frame_get_str(o, "from")) == NULL ||
	    (m.text = frame_get_str(o, "text")) == NULL) {
		msg_clear(&m);
		return;
	}
	snprintf(m.origin, sizeof(m.origin), "%s/seed", M.conf->node_id);
	m.seq = have_get(store_have(M.store), m.origin) + 1;
	m.lamport = store_lamport(M.store) + 1;
	m.ts = now_ms();
	if (store_message(&m) == 1) {
		M.stats.seed_in++;
		pending_add(&m, 0, 0, 1, 0);
	}
	msg_clear(&m);
}

/* Recovered: we hold at least what the client says it saw, everywhere. */
static int
join_recovered(const struct nt_have *since)
{
	size_t	 i;

	for (i = 0; i < since->n; i++)
		if (since->v[i].seq > have_get(store_have(M.store),
		    since->v[i].origin))
			return (0);
	return (1);
}

static void
on_join(const msgpack_object *o)
{
	const struct nt_msg	*m;
	struct nt_have		 since;
	struct chan_frame	 f;
	uint64_t		 conn, count = 0;
	size_t			 i;

	if (frame_get_u64(o, "conn", &conn) == -1)
		return;
	if (frame_get_have(o, "since", &since) == -1)
		memset(&since, 0, sizeof(since));
	for (i = 0; i < store_count(M.store); i++) {
		m = store_at(M.store, i);
		if (m->seq <= have_get(&since, m->origin) || pending_has(m))
			continue;
		send_msg_frame(&M.ws, CH_HISTORY, 1, conn, NULL, m);
		count++;
	}
	frame_begin(&f, CH_JOINED, 3);
	frame_u64(&f, "conn", conn);
	frame_u64(&f, "count", count);
	frame_bool(&f, "recovered", join_recovered(&since));
	chan_send(M.ws.ch, &f);
	have_clear(&since);
}

static void
on_peer_hello(const msgpack_object *o)
{
	struct peer_state *ps;
	struct nt_node	*node;
	char		*peer;
	uint64_t	 conn;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_u64(o, "conn", &conn) == -1) {
		free(peer);
		return;
	}
	log_info("Received hello from %s", peer);
	/* A seed node would not understand a sync. */
	if ((node = config_node(M.conf, peer)) != NULL && !node->seed &&
	    (ps = peer_state(peer)) != NULL) {
		ps->in_conn = conn;
		ps->in_known = 1;
		sync_peer(ps);
	}
	free(peer);
}

/*
 * What to send a peer that holds `have`: what it lacks, less what this
 * link already carried to it (a long catch-up is not sent again by the
 * next periodic sync).  A peer whose have did not move since its last
 * sync may have dropped something: it gets everything it lacks again.
 */
static void
catchup_base(struct peer_state *ps, const struct nt_have *have,
    struct nt_have *want)
{
	size_t	 i;

	if (ps != NULL && ps->view.have_known &&
	    have_equal(have, &ps->view.have))
		have_clear(&ps->sent);
	have_copy(want, have);
	for (i = 0; ps != NULL && i < ps->sent.n; i++)
		if (ps->sent.v[i].seq > have_get(want, ps->sent.v[i].origin))
			have_set(want, ps->sent.v[i].origin, ps->sent.v[i].seq);
}

/*
 * Send, in cluster order, every message a peer lacks.  An origin stops at
 * a message still waiting for its sync (it goes out live, or next time),
 * so the peer never sees a gap.  *sent gets how far each origin went.
 */
static size_t
catchup_send(const char *peer, const struct nt_have *want,
    struct nt_have *sent)
{
	const struct nt_msg	*m;
	struct nt_have		 stopped = { NULL, 0 };
	size_t			 i, n = 0;

	have_copy(sent, want);
	for (i = store_next_missing(M.store, want, 0);
	    i < store_count(M.store);
	    i = store_next_missing(M.store, want, i + 1)) {
		m = store_at(M.store, i);
		if (have_get(&stopped, m->origin) ||
		    m->seq != have_get(sent, m->origin) + 1 || pending_has(m)) {
			have_set(&stopped, m->origin, 1);
			continue;
		}
		send_msg_frame(&M.peer, CH_REPLICATE, 0, 0, peer, m);
		have_set(sent, m->origin, m->seq);
		n++;
	}
	have_clear(&stopped);
	return (n);
}

/* A peer told our peer worker what it holds: send it what it lacks. */
static void
on_sync_request(const msgpack_object *o)
{
	struct peer_state	*ps;
	struct nt_have		 have, want = { NULL, 0 }, sent = { NULL, 0 };
	char			*peer;
	size_t			 n;

	peer = frame_get_str(o, "peer");
	if (peer == NULL || frame_get_have(o, "have", &have) == -1) {
		free(peer);
		return;
	}
	ps = peer_state(peer);
	catchup_base(ps, &have, &want);
	n = catchup_send(peer, &want, &sent);
	if (ps != NULL) {
		have_copy(&ps->view.have, &have);
		ps->view.have_known = 1;
		ps->view.last_sync_ms = now_ms();
		have_copy(&ps->sent, &sent);
	}
	M.stats.replicated_out += n;
	if (n > 0)
		log_info("Catch-up: sending %zu messages to %s", n, peer);
	have_clear(&have);
	have_clear(&want);
	have_clear(&sent);
	free(peer);
	recovery_check();
}

static void
on_link(const msgpack_object *o)
{
	struct peer_state	*ps;
	char			*peer;
	int			 up;

	if ((peer = frame_get_str(o, "peer")) == NULL)
		return;
	if (frame_get_bool(o, "up", &up) == 0 && (ps = peer_state(peer)) !=
	    NULL) {
		ps->view.up = up;
		/* What a broken link carried may not have arrived. */
		if (!up)
			have_clear(&ps->sent);
	}
	free(peer);
}

/*
 * Each peer hears what we hold: within a second of a change, and every
 * few seconds regardless.  A message lost as a link broke is found this
 * way even when no later message reveals the gap, and the peers' /status
 * shows a lag that is at most a second old.
 */
static void
antientropy_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval	 tv = { 0, SYNC_TICK_MS * 1000 };
	struct peer_state *ps;
	size_t		 i;

	for (i = 0; i < M.npeers; i++) {
		ps = &M.peers[i];
		if (ps->in_known && (now_ms() - ps->told_ms >= SYNC_EVERY_MS ||
		    !have_equal(&ps->told, store_have(M.store))))
			sync_peer(ps);
	}
	evtimer_add(M.antientropy_ev, &tv);
}

/* /status and /metrics: built here, where the numbers are. */
static void
on_status(const msgpack_object *o)
{
	struct status_ctx	 c;
	struct worker_view	 wv[2];
	struct peer_view	*pv;
	struct chan_frame	 f;
	char			*what, *body;
	uint64_t		 req;
	size_t			 i;

	what = frame_get_str(o, "what");
	if (what == NULL || frame_get_u64(o, "req", &req) == -1) {
		free(what);
		return;
	}
	pv = xcalloc(M.npeers, sizeof(*pv));
	for (i = 0; i < M.npeers; i++)
		pv[i] = M.peers[i].view;	/* shallow: read only */
	wv[0] = (struct worker_view){ "ws", M.ws.pid, M.ws.restarts };
	wv[1] = (struct worker_view){ "peer", M.peer.pid, M.peer.restarts };
	c = (struct status_ctx){ M.conf, M.store, &M.stats, pv, M.npeers,
	    wv, 2, M.clients, M.recovering };
	body = strcmp(what, "metrics") == 0 ? status_metrics(&c) :
	    status_json(&c);
	frame_begin(&f, CH_STATUS, 2);
	frame_u64(&f, "req", req);
	frame_str(&f, "body", body);
	chan_send(M.ws.ch, &f);
	free(body);
	free(pv);
	free(what);
}

/* Group commit: one fsync covers every append made since the last one. */

static void
commit_cb(evutil_socket_t fd, short ev, void *arg)
{
	M.sync_armed = 0;
	commit_release();
}

static void
commit_schedule(void)
{
	struct timeval	 tv = { 0, 0 };
	int64_t		 wait_us;

	if (M.sync_armed)
		return;
	M.sync_armed = 1;
	/*
	 * The commit runs once the frames at hand are handled, so one sync
	 * covers all of them.  "batch" also spaces syncs at least
	 * fsync_interval_ms apart: a sync right away when the last one is
	 * that old, else when it will be.  A quiet node acks at once; a busy
	 * one makes at most one sync per interval.
	 */
	if (M.conf->fsync == FSYNC_BATCH && store_dirty(M.store)) {
		wait_us = M.last_sync_us + M.conf->fsync_interval_ms * 1000LL -
		    mono_us();
		if (wait_us > 0) {
			tv.tv_sec = wait_us / 1000000;
			tv.tv_usec = wait_us % 1000000;
		}
	}
	evtimer_add(M.sync_ev, &tv);
}

static void
commit_release(void)
{
	const struct nt_msg	*m;
	struct pending		*p;
	size_t			 i, n;
	int64_t			 t, now;

	/*
	 * After a failed fsync the kernel may have dropped the dirty pages,
	 * so a retry could "succeed" over lost data: nothing unacknowledged
	 * may be acknowledged now, and the safe answer is to stop.
	 */
	if (M.conf->fsync != FSYNC_NONE && store_dirty(M.store)) {
		t = mono_us();
		if (store_sync(M.store) == -1)
			fatal("%s: fsync", store_path(M.store));
		M.stats.syncs++;
		M.last_sync_us = mono_us();
		hist_add(&M.stats.fsync_lat, (M.last_sync_us - t) / 1e6);
	}
	now = mono_us();
	n = M.npend;
	for (i = 0; i < n; i++) {
		p = &M.pend[i];
		if ((m = store_lookup(M.store, p->origin, p->seq)) == NULL)
			continue;
		if (p->ack)
			send_msg_frame(&M.ws, CH_ACK, 1, p->conn, NULL, m);
		if (p->fresh) {
			hist_add(&M.stats.commit_lat, (now - p->t_us) / 1e6);
			send_msg_frame(&M.ws, CH_PUSH, 0, 0, NULL, m);
		}
		if (p->replicate) {
			M.stats.replicated_out++;
			send_msg_frame(&M.peer, CH_REPLICATE, 0, 0, "", m);
		}
	}
	free(M.pend);
	M.pend = NULL;
	M.npend = 0;
}

/* Workers. */

static void
log_ready(void)
{
	char	 buf[1024];
	size_t	 i, len = 0;

	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self)
			continue;
		len += snprintf(buf + len, sizeof(buf) - len, "%s'%s'",
		    len == 0 ? "" : ", ", M.conf->nodes[i].id);
		if (len >= sizeof(buf))
			break;
	}
	buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
	log_info("Ready. Peers: [%s]", buf);
}

static void
worker_hello(struct worker *w)
{
	w->hello = 1;
	if (w == &M.ws)
		send_peers();
	if (!M.ready && M.ws.hello && M.peer.hello) {
		M.ready = 1;
		log_ready();
	}
}

static void
master_frame(struct chan *ch, int type, const msgpack_object *o, void *arg)
{
	struct worker	*w = arg;
	uint64_t	 n;

	switch (type) {
	case CH_HELLO:
		worker_hello(w);
		return;
	case CH_CHAT:
		on_client_chat(o);
		return;
	case CH_JOIN:
		on_join(o);
		return;
	case CH_PEER_HELLO:
		on_peer_hello(o);
		return;
	case CH_PEER_CHAT:
		on_peer_chat(o);
		return;
	case CH_SEED_CHAT:
		on_seed_chat(o);
		return;
	case CH_CLIENTS:
		if (frame_get_u64(o, "n", &n) == 0)
			M.clients = (int)n;
		return;
	case CH_SYNC_REQ:
		on_sync_request(o);
		return;
	case CH_LINK:
		on_link(o);
		return;
	case CH_STATUS:
		on_status(o);
		return;
	}
	/* A worker speaking out of turn is broken: restart it. */
	log_warnx("unexpected frame %d from %s worker; restarting it", type,
	    w->name);
	if (w->pid > 0)
		kill(w->pid, SIGKILL);
}

static void
master_chan_lost(struct chan *ch, const char *why, void *arg)
{
	struct worker	*w = arg;

	if (!M.stopping && !w->planned)
		log_warnx("lost the channel to the %s worker: %s", w->name, why);
	chan_free(w->ch);
	w->ch = NULL;
	w->hello = 0;
	/* Without its channel a worker is useless; SIGCHLD will follow. */
	if (w->pid > 0)
		kill(w->pid, SIGTERM);
}

static void
worker_start(struct worker *w)
{
	struct worker_args	 wa;
	int			 fd;

	wa.conf = M.conf;
	wa.listen_fd = (w == &M.ws) ? M.listen_fd : -1;
	wa.chan_fd = -1;
	w->pid = proc_spawn(w->name, w->main, &wa, &fd);
	w->started = time(NULL);
	w->planned = 0;
	w->hello = 0;
	w->ch = chan_new(M.base, fd, w->name, master_frame, master_chan_lost, w);
	log_info("%s worker started (pid %ld)", w->name, (long)w->pid);
	send_loglevel(w);
}

static void
worker_quit(struct worker *w)
{
	struct chan_frame	 f;

	if (w->ch == NULL)
		return;
	frame_begin(&f, CH_QUIT, 0);
	chan_send(w->ch, &f);
}

static void
respawn_cb(evutil_socket_t fd, short ev, void *arg)
{
	if (arg == &M.ws && M.relisten)
		relisten();
	worker_start(arg);
}

static void
worker_schedule_respawn(struct worker *w)
{
	struct timeval	 tv;
	int		 ms;

	if (w->planned)
		ms = 0;
	else {
		if (time(NULL) - w->started >= STABLE_SECS)
			w->backoff_ms = RESTART_MIN_MS;
		ms = w->backoff_ms;
		w->backoff_ms *= 2;
		if (w->backoff_ms > RESTART_MAX_MS)
			w->backoff_ms = RESTART_MAX_MS;
		w->restarts++;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (!w->planned)
		log_info("restarting %s worker in %d ms", w->name, ms);
	evtimer_add(w->respawn_ev, &tv);
}

static void
worker_died(struct worker *w, int status)
{
	char	 how[64];
	size_t	 i;

	proc_describe_status(status, how, sizeof(how));
	if (!M.stopping && !w->planned)
		log_warnx("%s worker (pid %ld) %s", w->name, (long)w->pid, how);
	w->pid = -1;
	if (w->ch != NULL) {
		chan_free(w->ch);
		w->ch = NULL;
	}
	w->hello = 0;
	if (w == &M.ws) {	/* its connections are gone */
		for (i = 0; i < M.npend; i++)
			M.pend[i].ack = 0;
		for (i = 0; i < M.npeers; i++)
			M.peers[i].in_known = 0;
	}
	if (w == &M.peer)	/* its links are gone */
		for (i = 0; i < M.npeers; i++)
			have_clear(&M.peers[i].sent);
	if (M.stopping) {
		if (M.ws.pid == -1 && M.peer.pid == -1)
			event_base_loopbreak(M.base);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == NT_EXIT_FATAL)
		fatalx("%s worker cannot run; stopping", w->name);
	worker_schedule_respawn(w);
}

static void
reap_children(void)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == M.ws.pid)
			worker_died(&M.ws, status);
		else if (pid == M.peer.pid)
			worker_died(&M.peer, status);
	}
}

/* Signals. */

static void
kill_cb(evutil_socket_t fd, short ev, void *arg)
{
	log_warnx("workers did not stop in %d s; killing them",
	    STOP_GRACE_SECS);
	if (M.ws.pid > 0)
		kill(M.ws.pid, SIGKILL);
	if (M.peer.pid > 0)
		kill(M.peer.pid, SIGKILL);
}

static void
master_stop(int sig)
{
	struct timeval	 tv = { STOP_GRACE_SECS, 0 };

	if (M.stopping) {
		kill_cb(-1, 0, NULL);
		return;
	}
	log_info("Shutting down (%s)", strsignal(sig));
	M.stopping = 1;
	/* Everything stored is made durable and acknowledged first. */
	commit_release();
	worker_quit(&M.ws);
	worker_quit(&M.peer);
	evtimer_add(M.kill_ev, &tv);
	if (M.ws.pid == -1 && M.peer.pid == -1)
		event_base_loopbreak(M.base);
}

static void
log_errors(const char *what, char *errors)
{
	char	*line, *save = NULL;

	for (line = strtok_r(errors, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_warnx("%s: %s", what, line);
}

/* Restart-only settings are reported, never silently dropped. */
static int
reload_check(struct nt_config *nc)
{
	struct nt_node	*o = M.conf->self, *n = nc->self;

	if (strcmp(nc->node_id, M.conf->node_id) != 0) {
		log_warnx("reload refused: node_id cannot change from %s to %s "
		    "without a restart", M.conf->node_id, nc->node_id);
		return (-1);
	}
	if (strcmp(o->data_dir, n->data_dir) != 0)
		log_warnx("data_dir changed to %s: takes effect at the next "
		    "restart; still using %s", n->data_dir, o->data_dir);
	if (strcmp(nc->user, M.conf->user) != 0)
		log_warnx("user changed to \"%s\": takes effect at the next "
		    "restart", nc->user);
	return (0);
}

/*
 * A new port or listen address, bound once the old ws worker has gone
 * (it held the old socket, so the same port can move between addresses).
 * When the new one cannot be bound, the old one is bound again.
 */
static void
relisten(void)
{
	struct nt_node	*self = M.conf->self;
	char		*cause = NULL;
	int		 fd;

	M.relisten = 0;
	close(M.listen_fd);
	fd = proc_listen(self->listen, self->port, &cause);
	if (fd == -1) {
		log_warnx("%s; staying on %s port %d", cause, M.old_listen,
		    M.old_port);
		free(cause);
		free(self->listen);
		self->listen = xstrdup(M.old_listen);
		self->port = M.old_port;
		if ((fd = proc_listen(self->listen, self->port, &cause)) == -1)
			fatalx("%s", cause);
	}
	M.listen_fd = fd;
}

static void
master_reload(void)
{
	struct nt_config	*nc, *old = M.conf;
	char			*errors = NULL;
	int			 relisten_now, peers_changed;

	nc = config_load(M.conf_path, M.node_opt, getenv("NT_PORT"), &errors);
	if (nc == NULL) {
		log_errors("reload refused", errors);
		log_warnx("keeping the running configuration");
		free(errors);
		return;
	}
	if (reload_check(nc) == -1) {
		config_free(nc);
		return;
	}
	/* The running store and user stay until a restart. */
	free(nc->self->data_dir);
	nc->self->data_dir = xstrdup(old->self->data_dir);
	relisten_now = old->self->port != nc->self->port ||
	    strcmp(old->self->listen, nc->self->listen) != 0;
	if (relisten_now) {
		free(M.old_listen);
		M.old_listen = xstrdup(old->self->listen);
		M.old_port = old->self->port;
	}
	/* A new secret: links are made again, signed with it. */
	peers_changed = !config_nodes_equal(old, nc) ||
	    strcmp(old->secret, nc->secret) != 0;
	M.conf = nc;
	peers_rebuild();
	recovery_check();
	if (strcmp(log_target_for(old), log_target_for(nc)) != 0)
		master_reopen_log(log_target_for(nc));
	log_setlevel(M.verbose ? LOG_LVL_DEBUG : nc->log_level);
	send_loglevel(&M.ws);
	send_loglevel(&M.peer);
	send_settings();
	if (relisten_now) {
		log_info("listen address changed: restarting the ws worker");
		M.relisten = 1;
		M.ws.planned = 1;
		worker_quit(&M.ws);
	} else if (peers_changed)
		send_peers();
	if (peers_changed) {
		log_info("peers changed: restarting the peer worker");
		M.peer.planned = 1;
		worker_quit(&M.peer);
	}
	config_free(old);
	log_info("reloaded configuration from %s", M.conf_path);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		master_stop(sig);
		break;
	case SIGHUP:
		if (!M.stopping)
			master_reload();
		break;
	case SIGCHLD:
		reap_children();
		break;
	case SIGUSR1:
		if (master_reopen_log(log_current()) == 0)
			log_info("reopened the log");
		break;
	}
}

static void
master_signals(void)
{
	const int	 sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };
	size_t		 i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		M.sigs[i] = evsignal_new(M.base, sigs[i], signal_cb, NULL);
		if (M.sigs[i] == NULL || evsignal_add(M.sigs[i], NULL) == -1)
			fatalx("evsignal_add");
	}
}

static struct nt_config *
load_or_die(const char *path, const char *node, int test)
{
	struct nt_config	*conf;
	char			*errors = NULL;

	conf = config_load(path, node, getenv("NT_PORT"), &errors);
	if (conf == NULL) {
		fprintf(stderr, "%s\n", errors);
		if (test)
			fprintf(stderr, "nodetalkd: configuration file %s "
			    "test failed\n", path);
		free(errors);
		exit(1);
	}
	return (conf);
}

static void
worker_init(struct worker *w, const char *name, worker_main_fn fn)
{
	w->name = name;
	w->main = fn;
	w->pid = -1;
	w->backoff_ms = RESTART_MIN_MS;
	w->respawn_ev = evtimer_new(M.base, respawn_cb, w);
}

/* Everything that can fail at start-up fails here, before detaching. */
static void
master_setup(void)
{
	char	*cause = NULL;

	M.listen_fd = proc_listen(M.conf->self->listen, M.conf->self->port,
	    &cause);
	if (M.listen_fd == -1)
		fatalx("%s", cause);
	M.store = store_open(M.conf->self->data_dir, M.conf->fsync, &cause);
	if (M.store == NULL)
		fatalx("%s", cause);
	proc_drop_privileges(M.conf->user);
	if ((M.recovering = store_was_cut(M.store)))
		log_warnx("the end of the log was lost: chats wait until every "
		    "peer has said what it holds of %s's messages",
		    M.conf->node_id);
}

static void
master_run(void)
{
	if ((M.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	M.sync_ev = evtimer_new(M.base, commit_cb, NULL);
	M.kill_ev = evtimer_new(M.base, kill_cb, NULL);
	M.antientropy_ev = evtimer_new(M.base, antientropy_cb, NULL);
	antientropy_cb(-1, 0, NULL);
	master_signals();
	M.stats.started_ms = now_ms();
	peers_rebuild();
	recovery_check();
	worker_init(&M.ws, "ws", ws_worker_main);
	worker_init(&M.peer, "peer", peer_worker_main);
	worker_start(&M.ws);
	worker_start(&M.peer);
	event_base_dispatch(M.base);
	store_sync(M.store);
	store_close(M.store);
	log_info("Stopped");
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char	*path = NT_DEFAULT_CONF, *node = NULL;
	const char	*pidfile = NULL;
	char		*cause = NULL;
	int		 ch, test = 0, verbose = 0, daemonize = 0, pidfd = -1;
	int		 readyfd = -1;

	log_init(NULL, "nodetalkd");
	while ((ch = getopt_long(argc, argv, "c:n:dtp:vVh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'd':
			daemonize = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("nodetalkd %s\n", PACKAGE_VERSION);
			return (0);
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	M.conf = load_or_die(path, node, test);
	M.conf_path = path;
	M.node_opt = node;
	if (test) {
		if (verbose)
			config_print(stdout, M.conf);
		fprintf(stderr, "nodetalkd: configuration file %s test is "
		    "successful\n", path);
		return (0);
	}
	log_setnode(M.conf->node_id);
	log_setproc("master");
	M.verbose = verbose;
	log_setlevel(verbose ? LOG_LVL_DEBUG : M.conf->log_level);
	M.detached = daemonize;
	/*
	 * Start-up failures go to the terminal, where the operator is: the
	 * log target is checked now but takes over only once we run.
	 */
	if (log_open(log_target_for(M.conf), &cause) == -1)
		fatalx("%s", cause);
	log_open("", &cause);
	if (pidfile != NULL)
		pidfd = pidfile_lock(pidfile);
	master_setup();
	if (daemonize)
		readyfd = proc_detach();
	if (pidfd != -1)
		pidfile_write(pidfd, pidfile);
	if (log_open(log_target_for(M.conf), &cause) == -1)
		fatalx("%s", cause);
	if (readyfd != -1)
		proc_detach_done(readyfd);
	master_run();
	return (0);
}
