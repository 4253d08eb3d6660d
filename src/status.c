/*
 * status.c: /status (JSON, DESIGN section 5) and /metrics (Prometheus text
 * format) from the master's numbers.  Built in the master, which owns the
 * store and the counters; the ws worker only serves the text.  What the
 * processes cost (memory, CPU, descriptors) is read from /proc.
 */
#include <sys/types.h>
#include <sys/resource.h>

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "nodetalk.h"
#include "log.h"
#include "status.h"
#include "store.h"

static const double hist_bounds[HIST_BUCKETS] = {
	0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0
};

void
hist_add(struct hist *h, double s)
{
	size_t	 i;

	h->count++;
	h->sum += s;
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (s <= hist_bounds[i]) {
			h->counts[i]++;
			break;
		}
	}
}

/*
 * /proc/PID/stat and statm, and the entries of /proc/PID/fd.  A worker
 * that changed its user from root is not ours to look into (its fd
 * directory is root's): open_fds is then -1.
 */
int
proc_view_read(pid_t pid, struct proc_view *v)
{
	char		 path[64], buf[1024], *p;
	unsigned long	 utime, stime, vsize;
	long		 rss, tck = sysconf(_SC_CLK_TCK), page = getpagesize();
	struct dirent	*de;
	FILE		*f;
	DIR		*d;
	int		 ok;

	v->cpu_seconds = -1;
	v->rss_bytes = v->vsize_bytes = -1;
	v->open_fds = -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	/* The command name may hold spaces: the fields follow its ')'. */
	if (!ok || (p = strrchr(buf, ')')) == NULL || sscanf(p + 2,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
	    "%*d %*d %*d %*d %*u %lu %ld", &utime, &stime, &vsize, &rss) != 4)
		return (-1);
	v->cpu_seconds = (double)(utime + stime) / (tck > 0 ? tck : 100);
	v->vsize_bytes = (int64_t)vsize;
	v->rss_bytes = (int64_t)rss * page;
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) != NULL) {
		/* Our own listing holds the directory open: not counted. */
		v->open_fds = pid == getpid() ? -1 : 0;
		while ((de = readdir(d)) != NULL)
			v->open_fds += de->d_name[0] != '.';
		closedir(d);
	}
	return (0);
}

/* How many messages we hold that the peer, by its last sync, does not. */
uint64_t
peer_lag(const struct nt_have *mine, const struct nt_have *theirs)
{
	uint64_t	 lag = 0, t;
	size_t		 i;

	for (i = 0; i < mine->n; i++) {
		if (origin_is_local_only(mine->v[i].origin))
			continue;
		t = have_get(theirs, mine->v[i].origin);
		if (mine->v[i].seq > t)
			lag += mine->v[i].seq - t;
	}
	return (lag);
}

static cJSON *
have_json(const struct nt_have *h)
{
	cJSON	*o = cJSON_CreateObject();
	size_t	 i;

	for (i = 0; i < h->n; i++)
		cJSON_AddNumberToObject(o, h->v[i].origin, (double)h->v[i].seq);
	return (o);
}

static cJSON *
peers_json(const struct status_ctx *c)
{
	const struct peer_view	*p;
	const struct nt_node	*n;
	cJSON			*o = cJSON_CreateObject(), *po;
	size_t			 i;

	for (i = 0; i < c->npeers; i++) {
		p = &c->peers[i];
		po = cJSON_AddObjectToObject(o, p->id);
		cJSON_AddBoolToObject(po, "connected", p->up);
		cJSON_AddNumberToObject(po, "replicated_in",
		    (double)p->replicated_in);
		cJSON_AddNumberToObject(po, "replicated_out",
		    (double)p->replicated_out);
		if ((n = config_node(c->conf, p->id)) != NULL) {
			cJSON_AddStringToObject(po, "host", n->host);
			cJSON_AddNumberToObject(po, "port", n->port);
			cJSON_AddBoolToObject(po, "seed", n->seed);
		}
		if (p->have_known) {
			cJSON_AddItemToObject(po, "have", have_json(&p->have));
			cJSON_AddNumberToObject(po, "lag", (double)peer_lag(
			    store_have(c->store), &p->have));
		} else {
			cJSON_AddNullToObject(po, "have");
			cJSON_AddNullToObject(po, "lag");
		}
	}
	return (o);
}

/* Why the node waits, for whom, and how an operator ends the wait. */
static cJSON *
recovery_json(const struct status_ctx *c)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "reason", c->recovery_why);
	cJSON_AddItemToObject(o, "waiting_for",
	    cJSON_CreateStringArray(c->waiting, (int)c->nwaiting));
	cJSON_AddStringToObject(o, "ends", "when every peer it waits for has "
	    "said what it holds; for a peer that is gone for good, remove it "
	    "from nodes and reload (SIGHUP)");
	return (o);
}

/* How far the store is behind the stream, as last heard. */
static uint64_t
nats_lag(const struct status_ctx *c)
{
	uint64_t	 have;

	have = have_get(store_have(c->store), c->conf->nats.stream);
	return (c->nats->stream_seq > have ? c->nats->stream_seq - have : 0);
}

static cJSON *
nats_json(const struct status_ctx *c)
{
	const struct nats_view	*n = c->nats;
	const struct nt_nats	*cf = &c->conf->nats;
	cJSON			*o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "connected", n->up);
	cJSON_AddStringToObject(o, "server", n->server);
	cJSON_AddStringToObject(o, "stream", cf->stream);
	cJSON_AddStringToObject(o, "subject", cf->subject);
	cJSON_AddBoolToObject(o, "stream_ok", n->stream_ok);
	cJSON_AddNumberToObject(o, "stream_seq", (double)n->stream_seq);
	cJSON_AddNumberToObject(o, "stored", (double)have_get(
	    store_have(c->store), cf->stream));
	cJSON_AddNumberToObject(o, "lag", (double)nats_lag(c));
	cJSON_AddNumberToObject(o, "replicas", n->replicas);
	cJSON_AddStringToObject(o, "leader", n->leader);
	cJSON_AddNumberToObject(o, "reconnects", (double)n->reconnects);
	cJSON_AddNumberToObject(o, "since_ms", (double)n->since_ms);
	if (n->error[0] != '\0')
		cJSON_AddStringToObject(o, "error", n->error);
	else
		cJSON_AddNullToObject(o, "error");
	return (o);
}

/* The other gateways, for operators' tools: the nodes list says where. */
static cJSON *
gateways_json(const struct status_ctx *c)
{
	const struct nt_node	*n;
	cJSON			*o = cJSON_CreateObject(), *go;
	size_t			 i;

	for (i = 0; i < c->conf->nnodes; i++) {
		n = &c->conf->nodes[i];
		if (n == c->conf->self)
			continue;
		go = cJSON_AddObjectToObject(o, n->id);
		cJSON_AddStringToObject(go, "host", n->host);
		cJSON_AddNumberToObject(go, "port", n->port);
	}
	return (o);
}

static cJSON *
workers_json(const struct status_ctx *c)
{
	cJSON	*o = cJSON_CreateObject(), *wo;
	size_t	 i;

	for (i = 0; i < c->nworkers; i++) {
		wo = cJSON_AddObjectToObject(o, c->workers[i].name);
		cJSON_AddNumberToObject(wo, "pid", c->workers[i].pid);
		cJSON_AddNumberToObject(wo, "restarts", c->workers[i].restarts);
	}
	return (o);
}

char *
status_json(const struct status_ctx *c)
{
	cJSON	*o = cJSON_CreateObject();
	char	*s;

	cJSON_AddStringToObject(o, "node", c->conf->node_id);
	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddNumberToObject(o, "messages", (double)store_count(c->store));
	cJSON_AddNumberToObject(o, "lamport", (double)store_lamport(c->store));
	cJSON_AddNumberToObject(o, "clients", c->clients);
	cJSON_AddBoolToObject(o, "recovering", c->recovering);
	if (c->recovering)
		cJSON_AddItemToObject(o, "recovery", recovery_json(c));
	cJSON_AddItemToObject(o, "have", have_json(store_have(c->store)));
	cJSON_AddStringToObject(o, "engine", c->engine);
	if (c->nats != NULL) {
		cJSON_AddItemToObject(o, "nats", nats_json(c));
		cJSON_AddItemToObject(o, "gateways", gateways_json(c));
	}
	cJSON_AddItemToObject(o, "peers", peers_json(c));
	cJSON_AddItemToObject(o, "workers", workers_json(c));
	cJSON_AddStringToObject(o, "fsync", fsync_policy_name(c->conf->fsync));
	if (c->client_errors != NULL)
		cJSON_AddItemToObject(o, "client_errors",
		    have_json(c->client_errors));
	cJSON_AddNumberToObject(o, "uptime_ms",
	    (double)(now_ms() - c->stats->started_ms));
	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		fatalx("cJSON_PrintUnformatted");
	cJSON_Delete(o);
	return (s);
}

/*
 * The "cluster" frame a page asks for (protocol.md): every configured
 * node with the address the others reach it at, and whether this node's
 * link to it is up (this node itself: always).
 */
char *
status_cluster(const struct status_ctx *c)
{
	const struct nt_node	*n;
	cJSON			*o, *nodes, *no;
	char			*s;
	size_t			 i, j;
	int			 up;

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "cluster");
	cJSON_AddStringToObject(o, "node", c->conf->node_id);
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (i = 0; i < c->conf->nnodes; i++) {
		n = &c->conf->nodes[i];
		up = n == c->conf->self;
		for (j = 0; j < c->npeers && !up; j++)
			if (strcmp(c->peers[j].id, n->id) == 0)
				up = c->peers[j].up;
		no = cJSON_CreateObject();
		cJSON_AddStringToObject(no, "id", n->id);
		cJSON_AddStringToObject(no, "host", n->host);
		cJSON_AddNumberToObject(no, "port", n->port);
		cJSON_AddBoolToObject(no, "up", up);
		if (n == c->conf->self)
			cJSON_AddBoolToObject(no, "self", 1);
		cJSON_AddItemToArray(nodes, no);
	}
	if ((s = cJSON_PrintUnformatted(o)) == NULL)
		fatalx("cJSON_PrintUnformatted");
	cJSON_Delete(o);
	return (s);
}

static void
metric_head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
metric_u64(struct evbuffer *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metric_head(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
metric_hist(struct evbuffer *b, const char *name, const char *help,
    const struct hist *h)
{
	uint64_t	 cum = 0;
	size_t		 i;

	metric_head(b, name, "histogram", help);
	for (i = 0; i < HIST_BUCKETS; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    hist_bounds[i], (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n"
	    "%s_count %llu\n", name, (unsigned long long)h->count, name,
	    h->sum, name, (unsigned long long)h->count);
}

static void
metrics_counters(struct evbuffer *b, const struct status_ctx *c)
{
	const struct stats	*s = c->stats;

	metric_u64(b, "nodetalk_messages_stored", "gauge",
	    "Messages held by this node.", store_count(c->store));
	metric_u64(b, "nodetalk_messages_accepted_total", "counter",
	    "Chats from this node's clients, stored.", s->accepted);
	metric_u64(b, "nodetalk_messages_seed_total", "counter",
	    "Chats stored from seed-protocol nodes.", s->seed_in);
	metric_u64(b, "nodetalk_client_retries_total", "counter",
	    "Chats retried with a known id, answered from the store.",
	    s->retries);
	metric_u64(b, "nodetalk_lamport", "gauge",
	    "The node's Lamport clock.", store_lamport(c->store));
	metric_u64(b, "nodetalk_log_bytes", "gauge",
	    "Size of the durable log.", (uint64_t)store_log_size(c->store));
	metric_u64(b, "nodetalk_clients", "gauge",
	    "WebSocket clients connected.", (uint64_t)c->clients);
}

/* One family with a sample per peer: the field at offset off of peer_view. */
static void
metric_by_peer(struct evbuffer *b, const struct status_ctx *c,
    const char *name, const char *help, size_t off)
{
	size_t	 i;

	metric_head(b, name, "counter", help);
	for (i = 0; i < c->npeers; i++)
		evbuffer_add_printf(b, "%s{peer=\"%s\"} %llu\n", name,
		    c->peers[i].id, (unsigned long long)*(const uint64_t *)
		    ((const char *)&c->peers[i] + off));
}

static void
metrics_peers(struct evbuffer *b, const struct status_ctx *c)
{
	size_t	 i;

	metric_head(b, "nodetalk_peer_up", "gauge",
	    "1 while the outgoing link to the peer is up.");
	for (i = 0; i < c->npeers; i++)
		evbuffer_add_printf(b, "nodetalk_peer_up{peer=\"%s\"} %d\n",
		    c->peers[i].id, c->peers[i].up);
	metric_head(b, "nodetalk_peer_lag_messages", "gauge",
	    "Messages we hold that the peer lacked at its last sync (at most 1 s old while it changes).");
	for (i = 0; i < c->npeers; i++)
		if (c->peers[i].have_known)
			evbuffer_add_printf(b, "nodetalk_peer_lag_messages"
			    "{peer=\"%s\"} %llu\n", c->peers[i].id,
			    (unsigned long long)peer_lag(store_have(c->store),
			    &c->peers[i].have));
	metric_by_peer(b, c, "nodetalk_messages_replicated_in_total",
	    "Messages stored from the peer's link.",
	    offsetof(struct peer_view, replicated_in));
	metric_by_peer(b, c, "nodetalk_messages_replicated_out_total",
	    "Messages for the peer: catch-up, and new ones handed to the peer worker while the link was up.",
	    offsetof(struct peer_view, replicated_out));
	metric_by_peer(b, c, "nodetalk_replicated_duplicates_total",
	    "Replicated messages from the peer already held.",
	    offsetof(struct peer_view, duplicates));
	metric_by_peer(b, c, "nodetalk_replicated_gaps_total",
	    "Replicated messages from the peer refused for a gap (catch-up asked).",
	    offsetof(struct peer_view, gaps));
}

static void
metrics_errors(struct evbuffer *b, const struct status_ctx *c)
{
	size_t	 i;

	metric_head(b, "nodetalk_client_errors_total", "counter",
	    "Error frames sent to WebSocket clients and peers, by code, since the ws worker started.");
	for (i = 0; c->client_errors != NULL && i < c->client_errors->n; i++)
		evbuffer_add_printf(b, "nodetalk_client_errors_total"
		    "{code=\"%s\"} %llu\n", c->client_errors->v[i].origin,
		    (unsigned long long)c->client_errors->v[i].seq);
}

/* The conventional process_* metrics, of the master. */
static void
metrics_process(struct evbuffer *b, const struct status_ctx *c)
{
	struct proc_view	 v;
	struct rlimit		 rl;

	metric_head(b, "nodetalk_build_info", "gauge",
	    "The nodetalkd version, as a label; always 1.");
	evbuffer_add_printf(b, "nodetalk_build_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	metric_head(b, "process_start_time_seconds", "gauge",
	    "When the master started, in seconds since the epoch.");
	evbuffer_add_printf(b, "process_start_time_seconds %.3f\n",
	    c->stats->started_ms / 1000.0);
	if (proc_view_read(getpid(), &v) == 0) {
		metric_head(b, "process_cpu_seconds_total", "counter",
		    "CPU time of the master, user and system.");
		evbuffer_add_printf(b, "process_cpu_seconds_total %.2f\n",
		    v.cpu_seconds);
		metric_u64(b, "process_resident_memory_bytes", "gauge",
		    "Resident memory of the master.", (uint64_t)v.rss_bytes);
		metric_u64(b, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory of the master.", (uint64_t)v.vsize_bytes);
		if (v.open_fds >= 0)
			metric_u64(b, "process_open_fds", "gauge",
			    "Open file descriptors of the master.",
			    (uint64_t)v.open_fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		metric_u64(b, "process_max_fds", "gauge",
		    "The master's limit on open file descriptors.",
		    (uint64_t)rl.rlim_cur);
}

/* The same for each worker, with a worker label; what /proc lets us see. */
static void
metrics_workers(struct evbuffer *b, const struct status_ctx *c)
{
	struct proc_view	 v[4];
	size_t			 i, n = c->nworkers < 4 ? c->nworkers : 4;
	int			 ok[4];

	metric_head(b, "nodetalk_worker_restarts_total", "counter",
	    "Times a worker was restarted after dying.");
	for (i = 0; i < c->nworkers; i++)
		evbuffer_add_printf(b, "nodetalk_worker_restarts_total"
		    "{worker=\"%s\"} %d\n", c->workers[i].name,
		    c->workers[i].restarts);
	for (i = 0; i < n; i++)
		ok[i] = c->workers[i].pid > 0 &&
		    proc_view_read(c->workers[i].pid, &v[i]) == 0;
	metric_head(b, "nodetalk_worker_start_time_seconds", "gauge",
	    "When the running worker was started, in seconds since the epoch.");
	for (i = 0; i < n; i++)
		if (c->workers[i].pid > 0)
			evbuffer_add_printf(b, "nodetalk_worker_start_time_seconds"
			    "{worker=\"%s\"} %.3f\n", c->workers[i].name,
			    c->workers[i].started_ms / 1000.0);
	metric_head(b, "nodetalk_worker_cpu_seconds_total", "counter",
	    "CPU time of the running worker, user and system.");
	for (i = 0; i < n; i++)
		if (ok[i])
			evbuffer_add_printf(b, "nodetalk_worker_cpu_seconds_total"
			    "{worker=\"%s\"} %.2f\n", c->workers[i].name,
			    v[i].cpu_seconds);
	metric_head(b, "nodetalk_worker_resident_memory_bytes", "gauge",
	    "Resident memory of the running worker.");
	for (i = 0; i < n; i++)
		if (ok[i])
			evbuffer_add_printf(b, "nodetalk_worker_resident_memory_bytes"
			    "{worker=\"%s\"} %lld\n", c->workers[i].name,
			    (long long)v[i].rss_bytes);
	metric_head(b, "nodetalk_worker_open_fds", "gauge",
	    "Open file descriptors of the running worker (absent when it changed its user from root).");
	for (i = 0; i < n; i++)
		if (ok[i] && v[i].open_fds >= 0)
			evbuffer_add_printf(b, "nodetalk_worker_open_fds"
			    "{worker=\"%s\"} %d\n", c->workers[i].name,
			    v[i].open_fds);
}

static void
metrics_nats(struct evbuffer *b, const struct status_ctx *c)
{
	const struct nats_view	*n = c->nats;

	metric_u64(b, "nodetalk_nats_connected", "gauge",
	    "1 while connected to a NATS server.", (uint64_t)n->up);
	metric_u64(b, "nodetalk_nats_stream_ok", "gauge",
	    "1 while the stream is there as configured.",
	    (uint64_t)n->stream_ok);
	metric_u64(b, "nodetalk_nats_stream_sequence", "gauge",
	    "The stream's last sequence, as last heard.", n->stream_seq);
	metric_u64(b, "nodetalk_nats_lag_messages", "gauge",
	    "Messages of the stream not yet in this gateway's store.",
	    nats_lag(c));
	metric_u64(b, "nodetalk_nats_reconnects_total", "counter",
	    "Reconnections to NATS.", n->reconnects);
	metric_u64(b, "nodetalk_nats_published_total", "counter",
	    "Chats JetStream acknowledged.", n->published);
	metric_u64(b, "nodetalk_nats_deduplicated_total", "counter",
	    "Of those, retries JetStream already held.", n->deduplicated);
	metric_u64(b, "nodetalk_nats_unavailable_total", "counter",
	    "Chats answered unavailable.", n->failed);
	metric_hist(b, "nodetalk_nats_publish_seconds",
	    "From a chat to JetStream's acknowledgement.", &n->publish_lat);
}

char *
status_metrics(const struct status_ctx *c)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 len;
	char		*s;

	if (b == NULL)
		fatalx("evbuffer_new");
	metrics_process(b, c);
	metrics_counters(b, c);
	metrics_peers(b, c);
	metrics_errors(b, c);
	metrics_workers(b, c);
	metric_hist(b, "nodetalk_log_fsync_seconds",
	    "Time one fsync of the log took.", &c->stats->fsync_lat);
	metric_hist(b, "nodetalk_commit_seconds",
	    "From a message's append to its release (ack, push, replicate).",
	    &c->stats->commit_lat);
	metric_hist(b, "nodetalk_channel_seconds",
	    "From the ws worker to the master, per chat.",
	    &c->stats->chan_lat);
	if (c->nats != NULL)
		metrics_nats(b, c);
	len = evbuffer_get_length(b);
	s = xmalloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return (s);
}
