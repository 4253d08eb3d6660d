/*
 * master.c: nodetalkd's master process.  It reads the config, owns the
 * store (MESSAGES and its durable log), forks the ws and peer workers and
 * relays between them, restarts a worker that dies, and handles every
 * signal inside its libevent loop.  What it does with a chat is in
 * commit.c; what it does with its peers, in replicate.c.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "master.h"

#define RESTART_MIN_MS	100
#define RESTART_MAX_MS	5000
#define STABLE_SECS	10	/* a worker up this long resets its backoff */
#define STOP_GRACE_SECS	5	/* then SIGKILL */
#define CHAN_DRAIN_LOW		(256 * 1024)	/* blocked streams go on */

struct master	 M;

static void	worker_start(struct worker *);
static void	worker_quit(struct worker *);
static void	master_frame(struct chan *, int, const msgpack_object *, void *);
static void	master_chan_lost(struct chan *, const char *, void *);
static void	relisten(void);

/* The engines this nodetalkd was built with (engine = in the config). */
static const struct engine *const engines[] = {
	&engine_mesh,
#ifdef HAVE_NATS
	&engine_nats,
#endif
};

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
	    "usage: nodetalkd [-dhtvV] [-c file] [-n node-id] [-p pidfile]\n"
	    "       nodetalkd -s reload [-p pidfile]\n"
	    "  -c, --config FILE    configuration (default %s)\n"
	    "  -n, --node-id ID     this node's entry (default: node_id)\n"
	    "  -d, --daemon         detach; log to syslog unless log_file\n"
	    "  -t, --test           check the configuration and exit\n"
	    "  -p, --pidfile FILE   write and lock a pid file\n"
	    "  -s, --signal reload  reload the running nodetalkd (-p, or "
	    "systemd's\n"
	    "                       MAINPID) and wait: exit 1 if refused\n"
	    "  -v, --verbose        debug logging; with -t print the config\n"
	    "  -V, --version        print the version\n"
	    "  -h, --help           print this help\n", NT_DEFAULT_CONF);
	exit(status);
}

/* Channel helpers. */

static void
send_peers(void)
{
	const char	**ids, **seeds, **hosts;
	size_t		  i, ni = 0, ns = 0;
	struct chan_frame f;

	if (M.ws.ch == NULL)
		return;
	ids = xcalloc(M.conf->nnodes, sizeof(*ids));
	seeds = xcalloc(M.conf->nnodes, sizeof(*seeds));
	hosts = xcalloc(M.conf->nnodes, sizeof(*hosts));
	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self || !M.engine->peers)
			continue;
		hosts[ni] = M.conf->nodes[i].host;
		ids[ni++] = M.conf->nodes[i].id;
		if (M.conf->nodes[i].seed)
			seeds[ns++] = M.conf->nodes[i].id;
	}
	frame_begin(&f, CH_PEERS, 3);
	frame_strv(&f, "ids", ids, ni);
	frame_strv(&f, "seeds", seeds, ns);
	frame_strv(&f, "hosts", hosts, ni);
	chan_send(M.ws.ch, &f);
	free(ids);
	free(seeds);
	free(hosts);
}

/*
 * What the pages show of the cluster: sent to the ws worker when it
 * starts, when a link to a peer goes up or down, and after a reload.
 */
void
send_cluster(void)
{
	struct status_ctx	 c;
	struct peer_view	*pv;
	struct chan_frame	 f;
	char			*json;
	size_t			 i;

	if (M.ws.ch == NULL || !M.ws.hello)
		return;
	pv = xcalloc(M.npeers, sizeof(*pv));
	for (i = 0; i < M.npeers; i++)
		pv[i] = M.peers[i].view;	/* shallow: read only */
	memset(&c, 0, sizeof(c));
	c.conf = M.conf;
	c.peers = pv;
	c.npeers = M.npeers;
	json = status_cluster(&c);
	frame_begin(&f, CH_CLUSTER, 1);
	frame_str(&f, "json", json);
	chan_send(M.ws.ch, &f);
	free(json);
	free(pv);
}

/*
 * The limits, timeouts, the page's directory and the secret, which the
 * workers apply (each takes what concerns it).
 */
static void
send_settings(struct worker *w)
{
	const struct nt_config	*c = M.conf;
	struct chan_frame	 f;

	if (w->ch == NULL)
		return;
	frame_begin(&f, CH_SETTINGS, 13);
	frame_u64(&f, "max_clients", (uint64_t)c->max_clients);
	frame_u64(&f, "max_message_bytes", (uint64_t)c->max_message_bytes);
	frame_u64(&f, "max_frame_bytes", (uint64_t)c->max_frame_bytes);
	frame_u64(&f, "max_clients_per_address",
	    (uint64_t)c->max_clients_per_address);
	frame_u64(&f, "max_client_backlog_bytes",
	    (uint64_t)c->max_client_backlog_bytes);
	frame_u64(&f, "max_peer_backlog_bytes",
	    (uint64_t)c->max_peer_backlog_bytes);
	frame_u64(&f, "http_timeout_ms", (uint64_t)c->http_timeout_ms);
	frame_u64(&f, "join_timeout_ms", (uint64_t)c->join_timeout_ms);
	frame_u64(&f, "ping_interval_ms", (uint64_t)c->ping_interval_ms);
	frame_u64(&f, "peer_ping_interval_ms",
	    (uint64_t)c->peer_ping_interval_ms);
	frame_u64(&f, "ping_timeout_ms", (uint64_t)c->ping_timeout_ms);
	frame_str(&f, "www_dir", c->www_dir);
	frame_str(&f, "secret", c->secret);
	chan_send(w->ch, &f);
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
	send_reopen(&M.peer);	/* the engine's worker */
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

/* /status and /metrics: built here, where the numbers are. */
static void
on_status(const msgpack_object *o)
{
	struct status_ctx	 c;
	struct worker_view	 wv[2];
	struct chan_frame	 f;
	struct nt_have		 errors;
	char			*what, *body;
	uint64_t		 req;

	what = frame_get_str(o, "what");
	if (what == NULL || frame_get_u64(o, "req", &req) == -1) {
		free(what);
		return;
	}
	/* The ws worker counts the error frames it sends; it says so here. */
	if (frame_get_have(o, "errors", &errors) == -1)
		memset(&errors, 0, sizeof(errors));
	wv[0] = (struct worker_view){ "ws", M.ws.pid, M.ws.restarts,
	    M.ws.started_ms };
	wv[1] = (struct worker_view){ M.peer.name, M.peer.pid,
	    M.peer.restarts, M.peer.started_ms };
	memset(&c, 0, sizeof(c));
	c.conf = M.conf;
	c.engine = M.engine->name;
	c.store = M.store;
	c.stats = &M.stats;
	c.workers = wv;
	c.nworkers = 2;
	c.clients = M.clients;
	c.client_errors = &errors;
	M.engine->status(&c);
	body = strcmp(what, "metrics") == 0 ? status_metrics(&c) :
	    status_json(&c);
	frame_begin(&f, CH_STATUS, 2);
	frame_u64(&f, "req", req);
	frame_str(&f, "body", body);
	chan_send(M.ws.ch, &f);
	free(body);
	free((void *)c.peers);
	free((void *)c.waiting);
	free(what);
	have_clear(&errors);
}

/* Group commit: one fsync covers every append made since the last one. */

/* Workers. */

static void
log_ready(void)
{
	char	 buf[1024];
	size_t	 i, len = 0;

	for (i = 0; i < M.conf->nnodes; i++) {
		if (&M.conf->nodes[i] == M.conf->self || !M.engine->peers)
			continue;
		len += snprintf(buf + len, sizeof(buf) - len, "%s'%s'",
		    len == 0 ? "" : ", ", M.conf->nodes[i].id);
		if (len >= sizeof(buf))
			break;
	}
	buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
	log_info("Ready. Peers: [%s]", buf);
	notify_ready("Node %s ready on %s port %d; peers: %s", M.conf->node_id,
	    M.conf->self->listen, M.conf->self->port, len > 0 ? buf : "none");
}

/*
 * A reload is over: say how it went to -s reload (the status file) and to
 * systemd, which saw RELOADING=1 when it began.
 */
static void
reload_done(int ok, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	M.reload_waits = 0;
	reload_status_write(M.reload_path, ++M.reload_gen, ok, msg);
	notify_ready("Node %s: %s", M.conf->node_id, msg);
	free(msg);
}

static void
worker_hello(struct worker *w)
{
	w->hello = 1;
	if (w == &M.ws) {
		send_peers();
		send_cluster();
	}
	M.engine->hello(w);
	if (!M.ready && M.ws.hello && M.peer.hello) {
		M.ready = 1;
		log_ready();
	}
}

static void
on_history_more(const msgpack_object *o)
{
	uint64_t	 conn;
	int		 stop = 0;

	if (frame_get_u64(o, "conn", &conn) == 0) {
		frame_get_bool(o, "stop", &stop);
		stream_more(conn, stop);
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
		M.engine->chat(o);
		return;
	case CH_JOIN:
		on_join(o);
		return;
	case CH_PAGE:
		on_page(o);
		return;
	case CH_HISTORY_MORE:
		on_history_more(o);
		return;
	case CH_CLIENTS:
		if (frame_get_u64(o, "n", &n) == 0)
			M.clients = (int)n;
		return;
	case CH_STATUS:
		on_status(o);
		return;
	}
	if (M.engine->frame(type, o))
		return;
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

	int		 stalled = chan_stalled(ch);

	if (stalled)
		log_warnx("the %s worker stopped reading its channel: %s; "
		    "killing it (it restarts and resyncs)", w->name, why);
	else if (!M.stopping && !w->planned)
		log_warnx("lost the channel to the %s worker: %s", w->name, why);
	chan_free(w->ch);
	w->ch = NULL;
	w->hello = 0;
	stream_drop_worker(w);
	/* Without its channel a worker is useless; SIGCHLD will follow. */
	if (w->pid > 0)
		kill(w->pid, stalled ? SIGKILL : SIGTERM);
}

static void
worker_start(struct worker *w)
{
	struct worker_args	 wa;
	int			 fd;

	wa.conf = M.conf;
	wa.listen_fd = (w == &M.ws) ? M.listen_fd : -1;
	wa.chan_fd = -1;
	syncer_suspend(M.syncer);	/* fork from one thread only */
	w->pid = proc_spawn(w->name, w->main, &wa, &fd);
	syncer_resume(M.syncer);
	w->started = time(NULL);
	w->started_ms = now_ms();
	w->planned = 0;
	w->hello = 0;
	w->ch = chan_new(M.base, fd, w->name, master_frame, master_chan_lost, w);
	chan_set_drain(w->ch, CHAN_DRAIN_LOW, stream_drain);
	/*
	 * A worker that lets this much pile up in its channel has stopped
	 * reading (history and catch-up wait at a megabyte; this is live
	 * traffic): it is killed and restarted, and resyncs, rather than grow
	 * the master.
	 */
	chan_set_backlog(w->ch, (size_t)M.conf->worker_backlog_bytes);
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
	stream_drop_worker(w);
	if (w == &M.ws) {	/* its connections are gone */
		for (i = 0; i < M.npend; i++)
			M.pend[i].ack = 0;
		hold_drop();
	}
	M.engine->lost(w);
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
	notify_stopping();
	/* Everything stored is made durable and acknowledged first. */
	commit_drain();
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
	if (nc->engine != M.conf->engine)
		log_warnx("engine changed to \"%s\": takes effect at the "
		    "next restart; still using \"%s\"",
		    config_engine_name(nc->engine), M.engine->name);
	else if (strcmp(nc->nats.stream, M.conf->nats.stream) != 0)
		log_warnx("the NATS stream changed to %s: takes effect at the "
		    "next restart; still using %s", nc->nats.stream,
		    M.conf->nats.stream);
	return (0);
}

/* What a reload cannot change stays as it runs (reload_check said so). */
static void
reload_keep(struct nt_config *nc, const struct nt_config *old)
{
	free(nc->self->data_dir);
	nc->self->data_dir = xstrdup(old->self->data_dir);
	nc->engine = old->engine;
	free(nc->nats.stream);
	nc->nats.stream = xstrdup(old->nats.stream);
	free(nc->nats.subject);
	nc->nats.subject = xstrdup(old->nats.subject);
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
		if (M.reload_waits)
			reload_done(0, "reload failed: %s; staying on %s port "
			    "%d", cause, M.old_listen, M.old_port);
		free(cause);
		free(self->listen);
		self->listen = xstrdup(M.old_listen);
		self->port = M.old_port;
		if ((fd = proc_listen(self->listen, self->port, &cause)) == -1)
			fatalx("%s", cause);
	} else if (M.reload_waits)
		reload_done(1, "reloaded configuration from %s; listening on "
		    "%s port %d", M.conf_path, self->listen, self->port);
	M.listen_fd = fd;
}

static void
master_reload(void)
{
	struct nt_config	*nc, *old = M.conf;
	char			*errors = NULL;
	int			 relisten_now, restart;

	notify_reloading();
	nc = config_load(M.conf_path, M.node_opt, getenv("NT_PORT"), &errors);
	if (nc == NULL) {
		reload_done(0, "reload refused: %.*s%s; keeping the running "
		    "configuration", (int)strcspn(errors, "\n"), errors,
		    strchr(errors, '\n') != NULL && strchr(errors, '\n')[1] !=
		    '\0' ? " (and more in the log)" : "");
		log_errors("reload refused", errors);
		log_warnx("keeping the running configuration");
		free(errors);
		return;
	}
	if (reload_check(nc) == -1) {
		reload_done(0, "reload refused: node_id cannot change from %s "
		    "to %s without a restart", M.conf->node_id, nc->node_id);
		config_free(nc);
		return;
	}
	/* The running store, engine and user stay until a restart. */
	reload_keep(nc, old);
	relisten_now = old->self->port != nc->self->port ||
	    strcmp(old->self->listen, nc->self->listen) != 0;
	if (relisten_now) {
		free(M.old_listen);
		M.old_listen = xstrdup(old->self->listen);
		M.old_port = old->self->port;
	}
	M.conf = nc;
	restart = M.engine->reload(old);
	send_cluster();
	if (strcmp(log_target_for(old), log_target_for(nc)) != 0)
		master_reopen_log(log_target_for(nc));
	log_setlevel(M.verbose ? LOG_LVL_DEBUG : nc->log_level);
	send_loglevel(&M.ws);
	send_loglevel(&M.peer);
	send_settings(&M.ws);
	send_settings(&M.peer);
	if (M.ws.ch != NULL)
		chan_set_backlog(M.ws.ch, (size_t)nc->worker_backlog_bytes);
	if (M.peer.ch != NULL)
		chan_set_backlog(M.peer.ch, (size_t)nc->worker_backlog_bytes);
	if (relisten_now) {
		log_info("listen address changed: restarting the ws worker");
		M.relisten = 1;
		M.ws.planned = 1;
		worker_quit(&M.ws);
	} else if (restart)
		send_peers();
	if (restart) {
		log_info("%s changed: restarting the %s worker",
		    M.engine->peers ? "peers" : "the NATS settings",
		    M.peer.name);
		M.peer.planned = 1;
		worker_quit(&M.peer);
	}
	config_free(old);
	log_info("reloaded configuration from %s", M.conf_path);
	/* A new listener is bound once the old ws worker is gone. */
	if (M.relisten)
		M.reload_waits = 1;
	else
		reload_done(1, "reloaded configuration from %s", M.conf_path);
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
		log_stderr(LOG_LVL_ERROR, "%s", errors);
		if (access(path, F_OK) == -1 && errno == ENOENT)
			log_stderr(LOG_LVL_ERROR, "nodetalkd: no configuration "
			    "file at %s: name one with -c FILE (nodetalk.conf(5); "
			    "examples in %s/examples)", path, DOCDIR);
		if (test)
			log_stderr(LOG_LVL_ERROR, "nodetalkd: configuration "
			    "file %s test failed", path);
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
	if (M.store == NULL || M.engine->check(&cause) == -1)
		fatalx("%s", cause);
	proc_drop_privileges(M.conf->user);
}

static void
master_run(void)
{
	char	*cause = NULL;

	if ((M.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	log_batch_on(M.base);
	M.sync_ev = evtimer_new(M.base, commit_cb, NULL);
	M.syncer = syncer_new(M.base, store_log_fd(M.store), commit_synced,
	    NULL);
	M.kill_ev = evtimer_new(M.base, kill_cb, NULL);
	M.hold_ev = evtimer_new(M.base, hold_expire_cb, NULL);
	master_signals();
	M.stats.started_ms = now_ms();
	M.engine->start();
	worker_init(&M.ws, "ws", ws_worker_main);
	worker_init(&M.peer, M.engine->worker, M.engine->worker_main);
	worker_start(&M.ws);
	worker_start(&M.peer);
	event_base_dispatch(M.base);
	syncer_free(M.syncer);
	release_free();
	replicate_free();
	log_batch_on(NULL);
	if (store_stop(M.store, &cause) == -1)
		fatalx("%s", cause);
	store_close(M.store);
	if (M.reload_path != NULL)
		unlink(M.reload_path);
	log_info("Stopped");
}

/* config.c refuses an engine that is not built in. */
static const struct engine *
engine_pick(enum nt_engine e)
{
	size_t	 i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (strcmp(engines[i]->name, config_engine_name(e)) == 0)
			return (engines[i]);
	fatalx("engine %s is not built in", config_engine_name(e));
}

/* The command line (DESIGN section 3). */
struct options {
	const char	*path;
	const char	*node;
	const char	*pidfile;
	const char	*signal;	/* -s reload */
	int		 test;
	int		 verbose;
	int		 daemonize;
};

static void
parse_args(int argc, char *argv[], struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "test", no_argument, NULL, 't' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "signal", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int	 ch;

	memset(o, 0, sizeof(*o));
	o->path = NT_DEFAULT_CONF;
	while ((ch = getopt_long(argc, argv, "c:n:dtp:s:vVh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->path = optarg;
			break;
		case 'n':
			o->node = optarg;
			break;
		case 'd':
			o->daemonize = 1;
			break;
		case 't':
			o->test = 1;
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 's':
			if (strcmp(optarg, "reload") != 0) {
				fprintf(stderr, "nodetalkd: -s %s: the only "
				    "signal is reload\n", optarg);
				usage(2);
			}
			o->signal = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'V':
			printf("nodetalkd %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
}

/* -t: check the file, print it normalised with -v, and say so. */
static int
config_test(const struct options *o)
{
	if (o->verbose)
		config_print(stdout, M.conf);
	log_stderr(LOG_LVL_INFO, "nodetalkd: configuration file %s test is "
	    "successful", o->path);
	return (0);
}

int
main(int argc, char *argv[])
{
	struct options	 o;
	char		*cause = NULL;
	int		 pidfd = -1, readyfd = -1;

	log_init(NULL, "nodetalkd");
	parse_args(argc, argv, &o);
	if (o.signal != NULL)
		return (reload_signal(o.pidfile));
	M.conf = load_or_die(o.path, o.node, o.test);
	M.engine = engine_pick(M.conf->engine);
	M.conf_path = o.path;
	M.node_opt = o.node;
	if (o.test)
		return (config_test(&o));
	log_setnode(M.conf->node_id);
	log_setproc("master");
	/* Copies: the title takes over argv's memory (proc.c). */
	o.path = xstrdup(o.path);
	M.conf_path = o.path;
	if (o.node != NULL)
		M.node_opt = o.node = xstrdup(o.node);
	if (o.pidfile != NULL)
		o.pidfile = xstrdup(o.pidfile);
	proc_title_init(argc, argv);
	proc_title_set("nodetalkd: master [%s]", M.conf->node_id);
	M.verbose = o.verbose;
	log_setlevel(o.verbose ? LOG_LVL_DEBUG : M.conf->log_level);
	M.detached = o.daemonize;
	/*
	 * Start-up failures go to the terminal, where the operator is: the
	 * log target is checked now but takes over only once we run.
	 */
	if (log_open(log_target_for(M.conf), &cause) == -1)
		fatalx("%s", cause);
	log_open("", &cause);
	if (o.pidfile != NULL)
		pidfd = pidfile_lock(o.pidfile);
	master_setup();
	if (o.daemonize)
		readyfd = proc_detach();
	if (pidfd != -1)
		pidfile_write(pidfd, o.pidfile);
	if (log_open(log_target_for(M.conf), &cause) == -1)
		fatalx("%s", cause);
	if (readyfd != -1)
		proc_detach_done(readyfd);
	M.reload_path = reload_status_path(o.pidfile);
	reload_status_write(M.reload_path, 0, 1, "started");
	master_run();
	return (0);
}
