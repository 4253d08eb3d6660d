/*
 * bench_connections.c: what many clients cost.  K clients connect to the
 * first node and join at once; measured are the time until the last one
 * got its "joined", the memory each costs the ws worker (and the whole
 * node), the time one chat takes to reach all K, and, when asked to
 * restart the node or kill its ws worker, how long the reconnect storm
 * takes until every client has joined again.  Clients join with since =
 * what the node holds, so no history is sent: this measures connections,
 * bench_history.c measures history.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "wire.h"
#include "bench.h"

#define CN_CLIENTS	10000
#define CN_FANOUTS	5
#define CN_RETRY_MS	50
#define CN_SETTLE	0.3	/* seconds before reading memory */

enum cn_phase {
	CN_JOIN,		/* first connect and join */
	CN_FANOUT,
	CN_STORM		/* dropped on purpose, rejoining */
};

struct cn;

struct cn_client {
	struct cn		*k;
	struct bench_conn	*c;
	size_t			 i;
	int			 joined;
	int			 dropped;	/* in the storm */
	int			 rejoined;
	int			 last_round;
	struct event		*retry;
};

struct cn {
	struct bench		*b;
	enum cn_phase		 phase;
	size_t			 n, njoined, ndropped, nrejoined;
	struct cn_client	*cl;
	char			*join;		/* the join frame, for all */
	struct bench_conn	*sender;
	int			 sender_open, round, rounds;
	size_t			 got;
	int64_t			 t_round;
	double			*fanout;	/* seconds per round */
	uint64_t		 dups, retries, join_retries;
	int64_t			 t_trigger, t_first_drop, t_done;
	pid_t			 cmd;		/* the restart command */
	int			 cmd_status;
	int			 cmd_failed;
	int64_t			 t_cmd_done;
	struct event		*cmd_poll;
	int			 broken;
};

static void	cn_dial(struct cn_client *);

static void
cn_lost(struct cn *k, const char *what, const char *why)
{
	if (!k->broken)
		bench_fail(k->b, "%s: %s", what, why);
	k->broken = 1;
}

static void
cn_chat(struct cn_client *cl, const char *p, size_t len)
{
	struct cn	*k = cl->k;
	uint64_t	 tok;

	if (bench_json_token(p, len, "text", k->b->tag, &tok) == -1)
		return;
	if ((int)tok == cl->last_round) {
		k->dups++;
		return;
	}
	cl->last_round = (int)tok;
	if ((int)tok == k->round && ++k->got == k->n)
		k->fanout[k->round] = (bench_now_us() - k->t_round) / 1e6;
}

static void
cn_joined(struct cn_client *cl)
{
	struct cn	*k = cl->k;

	if (k->phase == CN_STORM && cl->dropped && !cl->rejoined) {
		cl->rejoined = 1;
		if (++k->nrejoined == k->n)
			k->t_done = bench_now_us();
	} else if (!cl->joined) {
		cl->joined = 1;
		if (++k->njoined == k->n)
			k->t_done = bench_now_us();
	}
}

static void
cn_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct cn_client	*cl = arg;

	switch (bench_json_type(p, len)) {
	case BENCH_F_CHAT:
		cn_chat(cl, p, len);
		break;
	case BENCH_F_JOINED:
		cn_joined(cl);
		break;
	case BENCH_F_ERROR:
		bench_error_frame(cl->k->b, p, len);
		break;
	default:
		break;
	}
}

static void
cn_open(struct bench_conn *c, void *arg)
{
	struct cn_client	*cl = arg;

	bench_conn_send(c, cl->k->join, strlen(cl->k->join));
}

static void
cn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	cn_dial(arg);
}

static void
cn_retry_later(struct cn_client *cl)
{
	struct cn	*k = cl->k;
	struct timeval	 tv;
	int		 ms = k->b->o.retry_ms ? k->b->o.retry_ms : CN_RETRY_MS;

	/* spread the retries: a herd that retries in step learns nothing */
	ms = ms / 2 + (int)(bench_random() % (uint64_t)ms);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (cl->retry == NULL &&
	    (cl->retry = evtimer_new(k->b->base, cn_retry_cb, cl)) == NULL)
		fatalx("evtimer_new failed");
	evtimer_add(cl->retry, &tv);
}

/* In the storm, a client that lost its connection tries again. */
static void
cn_storm_close(struct cn_client *cl)
{
	struct cn	*k = cl->k;

	if (!cl->dropped) {
		cl->dropped = 1;
		if (k->ndropped++ == 0)
			k->t_first_drop = bench_now_us();
	} else if (cl->rejoined) {
		/* joined a node on its way down: not back yet */
		cl->rejoined = 0;
		k->nrejoined--;
	} else
		k->retries++;
	cn_retry_later(cl);
}

/*
 * A connection that ends before its first join is tried again, as a
 * client would (a node too busy to answer in time resets some); one that
 * ends later, before the storm, fails the run.
 */
static void
cn_close(struct bench_conn *c, const char *why, void *arg)
{
	struct cn_client	*cl = arg;
	struct cn		*k = cl->k;

	bench_conn_free(cl->c);
	cl->c = NULL;
	if (k->phase == CN_STORM)
		cn_storm_close(cl);
	else if (k->phase == CN_JOIN && !cl->joined) {
		if (k->join_retries++ == 0)
			bench_note(k->b, "a client's first connection failed "
			    "(%s); it tries again", why);
		cn_retry_later(cl);
	} else
		cn_lost(k, "a joined client", why);
}

static const struct bench_conn_cbs cn_cbs = {
	cn_open, cn_text, cn_close, NULL
};

static void
cn_dial(struct cn_client *cl)
{
	struct bench	*b = cl->k->b;

	cl->c = bench_conn_new(b->base, &b->o.nodes[0], bench_src(b, cl->i),
	    &cn_cbs, cl);
}

static void
cn_sender_open(struct bench_conn *c, void *arg)
{
	((struct cn *)arg)->sender_open = 1;
}

static void
cn_sender_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	if (bench_json_type(p, len) == BENCH_F_ERROR)
		bench_error_frame(((struct cn *)arg)->b, p, len);
}

static void
cn_sender_close(struct bench_conn *c, const char *why, void *arg)
{
	struct cn	*k = arg;

	if (k->phase != CN_STORM)
		cn_lost(k, "the sending connection", why);
}

static const struct bench_conn_cbs cn_sender_cbs = {
	cn_sender_open, cn_sender_text, cn_sender_close, NULL
};

static int
cn_all_joined(void *arg)
{
	struct cn	*k = arg;

	return (k->broken || k->njoined == k->n);
}

static int
cn_round_done(void *arg)
{
	struct cn	*k = arg;

	return (k->broken || k->got == k->n);
}

static int
cn_all_rejoined(void *arg)
{
	struct cn	*k = arg;

	return (k->broken || k->nrejoined == k->n);
}

static int
cn_sender_ready(void *arg)
{
	struct cn	*k = arg;

	return (k->broken || k->sender_open);
}

/* The join frame: since = what the node holds now, so no history. */
static int
cn_make_join(struct cn *k)
{
	struct bench_status	 st;
	char			*cause = NULL;

	free(k->join);
	k->join = NULL;
	if (bench_status_get(&k->b->o.nodes[0], &st, &cause) == -1) {
		cn_lost(k, "/status", cause);
		free(cause);
		return (-1);
	}
	k->join = wire_join("nodetalk-bench", &st.have);
	bench_status_clear(&st);
	return (0);
}

/* Memory of the ws worker (from /status) and of the whole node. */
static int
cn_memory(struct cn *k, struct bench_mem *ws, struct bench_mem *node)
{
	struct bench_status	 st;
	char			*cause = NULL;
	int			 rv = -1;

	if (k->b->o.nodes[0].master == 0)
		return (-1);
	if (bench_status_get(&k->b->o.nodes[0], &st, &cause) == -1) {
		free(cause);
		return (-1);
	}
	if (st.ws_pid > 0 && bench_proc_mem(st.ws_pid, ws) == 0 &&
	    bench_proc_tree_mem(k->b->o.nodes[0].master, node) == 0)
		rv = 0;
	bench_status_clear(&st);
	return (rv);
}

static void
cn_join_phase(struct cn *k, int64_t start)
{
	struct bench_report	*r = k->b->report;
	struct bench_mem	 ws0, node0, ws1, node1;
	int			 mem;
	int64_t			 t0;
	size_t			 i;

	mem = cn_memory(k, &ws0, &node0) == 0;
	t0 = bench_now_us();
	for (i = 0; i < k->n; i++)
		cn_dial(&k->cl[i]);
	if (bench_wait(k->b, cn_all_joined, k, bench_left(k->b, start)) == -1)
		cn_lost(k, "clients joining", "timed out");
	if (k->broken) {
		bench_report_num(r, "joined", "clients joined", "", 0,
		    k->njoined);
		return;
	}
	bench_report_num(r, "connect_join_s",
	    "time until every client joined", "s", 3, (k->t_done - t0) / 1e6);
	bench_report_num(r, "join_retries", "first connections that failed",
	    "", 0, k->join_retries);
	bench_loop_for(k->b, CN_SETTLE);
	if (mem && cn_memory(k, &ws1, &node1) == 0) {
		bench_report_num(r, "mem_per_client_b",
		    "memory per client, ws worker", "B", 0,
		    ((double)ws1.rss - (double)ws0.rss) / k->n);
		bench_report_num(r, "node_mem_per_client_b",
		    "memory per client, whole node", "B", 0,
		    ((double)node1.rss - (double)node0.rss) / k->n);
	} else
		bench_report_none(r, "mem_per_client_b",
		    "memory per client, ws worker", "node not found here");
}

static void
cn_fanout_phase(struct cn *k, int64_t start)
{
	char	frame[256];
	size_t	len;

	k->phase = CN_FANOUT;
	for (k->round = 0; k->round < k->rounds && !k->broken; k->round++) {
		len = bench_json_chat(frame, sizeof(frame), k->b->tag,
		    k->round, 32, 1);
		k->got = 0;
		k->t_round = bench_now_us();
		bench_conn_send(k->sender, frame, len);
		bench_conn_flush(k->sender);
		if (bench_wait(k->b, cn_round_done, k,
		    bench_left(k->b, start)) == -1)
			cn_lost(k, "fan-out", "timed out");
	}
	if (k->broken)
		return;
	bench_report_num(k->b->report, "fanout_median_ms",
	    "one chat to every client, median", "ms", 3,
	    bench_median(k->fanout, k->rounds) * 1e3);
	bench_report_num(k->b->report, "fanout_max_ms",
	    "one chat to every client, slowest", "ms", 3,
	    bench_pct(k->fanout, k->rounds, 100) * 1e3);
}

static void
cn_cmd_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cn	*k = arg;
	struct timeval	 tv = { 0, 10000 };
	char		 why[64];

	if (k->cmd > 0 && waitpid(k->cmd, &k->cmd_status, WNOHANG) ==
	    k->cmd) {
		k->cmd = 0;
		k->t_cmd_done = bench_now_us();
		/* no restart is coming: do not wait for the timeout */
		if (bench_cmd_status(k->cmd_status, why, sizeof(why)) == -1) {
			k->cmd_failed = 1;
			cn_lost(k, "--restart-cmd", why);
		}
		return;
	}
	evtimer_add(k->cmd_poll, &tv);
}

static int
cn_trigger(struct cn *k)
{
	struct bench_status	 st;
	char			*cause = NULL;

	if (k->b->o.restart_cmd != NULL) {
		if ((k->cmd = bench_spawn(k->b->o.restart_cmd)) == -1) {
			cn_lost(k, "--restart-cmd", strerror(errno));
			return (-1);
		}
		if ((k->cmd_poll = evtimer_new(k->b->base, cn_cmd_poll_cb,
		    k)) == NULL)
			fatalx("evtimer_new failed");
		cn_cmd_poll_cb(-1, 0, k);
		return (0);
	}
	if (bench_status_get(&k->b->o.nodes[0], &st, &cause) == -1) {
		cn_lost(k, "/status", cause);
		free(cause);
		return (-1);
	}
	if (st.ws_pid <= 0 || kill(st.ws_pid, k->b->o.kill_ws) == -1)
		cn_lost(k, "--kill-ws", st.ws_pid <= 0 ? "no ws pid in /status"
		    : strerror(errno));
	bench_status_clear(&st);
	return (k->broken ? -1 : 0);
}

static void
cn_storm_phase(struct cn *k, int64_t start)
{
	struct bench_report	*r = k->b->report;

	if (cn_make_join(k) == -1)
		return;
	k->phase = CN_STORM;
	k->t_done = 0;
	k->t_trigger = bench_now_us();
	if (cn_trigger(k) == -1)
		return;
	if (bench_wait(k->b, cn_all_rejoined, k, bench_left(k->b, start)) ==
	    -1)
		cn_lost(k, "the reconnect storm", "timed out");
	bench_report_num(r, "dropped", "clients that lost the connection", "",
	    0, k->ndropped);
	bench_report_num(r, "rejoined", "clients that joined again", "", 0,
	    k->nrejoined);
	if (k->broken)
		return;
	bench_report_num(r, "rejoin_s", "time until every client rejoined",
	    "s", 3, (k->t_done - k->t_trigger) / 1e6);
	bench_report_num(r, "rejoin_after_drop_s",
	    "  of which after the first drop", "s", 3,
	    (k->t_done - k->t_first_drop) / 1e6);
	bench_report_num(r, "reconnect_retries", "connects that failed", "",
	    0, k->retries);
	if (k->t_cmd_done > 0)
		bench_report_num(r, "restart_cmd_s", "the restart command ran",
		    "s", 3, (k->t_cmd_done - k->t_trigger) / 1e6);
}

static void
cn_finish_cmd(struct cn *k)
{
	char	why[64];

	if (k->cmd > 0) {
		bench_note(k->b, "the restart command still runs (pid %d); "
		    "waiting for it", (int)k->cmd);
		(void)waitpid(k->cmd, &k->cmd_status, 0);
		k->cmd = 0;
	}
	if (k->b->o.restart_cmd != NULL && !k->cmd_failed &&
	    bench_cmd_status(k->cmd_status, why, sizeof(why)) == -1)
		bench_fail(k->b, "--restart-cmd: %s", why);
}

static void
cn_free(struct cn *k)
{
	size_t	i;

	for (i = 0; i < k->n; i++) {
		bench_conn_free(k->cl[i].c);
		if (k->cl[i].retry != NULL)
			event_free(k->cl[i].retry);
	}
	bench_conn_free(k->sender);
	if (k->cmd_poll != NULL)
		event_free(k->cmd_poll);
	free(k->cl);
	free(k->fanout);
	free(k->join);
}

static int
cn_init(struct cn *k, struct bench *b)
{
	char	*cause = NULL;
	size_t	 i;

	memset(k, 0, sizeof(*k));
	k->b = b;
	k->n = b->o.count ? b->o.count : CN_CLIENTS;
	k->rounds = b->o.repeat ? b->o.repeat : CN_FANOUTS;
	bench_report_param(b->report, "clients", (double)k->n);
	bench_report_param(b->report, "fanouts", k->rounds);
	bench_report_param(b->report, "sources", (double)b->o.nsrc);
	if (bench_nofile(k->n + 64, &cause) == -1) {
		bench_fail(b, "%s", cause);
		free(cause);
		return (-1);
	}
	k->cl = xcalloc(k->n, sizeof(*k->cl));
	for (i = 0; i < k->n; i++) {
		k->cl[i].k = k;
		k->cl[i].i = i;
		k->cl[i].last_round = -1;
	}
	k->fanout = xcalloc(k->rounds, sizeof(double));
	return (0);
}

int
bench_connections(struct bench *b)
{
	struct cn	k;
	int64_t		start = bench_now_us();

	if (cn_init(&k, b) == -1)
		return (BENCH_EXIT_FAIL);
	bench_find_pids(b);
	k.sender = bench_conn_new(b->base, &b->o.nodes[0], bench_src(b, k.n),
	    &cn_sender_cbs, &k);
	if (cn_make_join(&k) == 0 &&
	    bench_wait(b, cn_sender_ready, &k, bench_left(b, start)) == -1)
		cn_lost(&k, "connecting", "timed out");
	if (!k.broken)
		cn_join_phase(&k, start);
	if (!k.broken)
		cn_fanout_phase(&k, start);
	if (!k.broken && (b->o.restart_cmd != NULL || b->o.kill_ws != 0))
		cn_storm_phase(&k, start);
	if (k.phase == CN_STORM)
		cn_finish_cmd(&k);
	bench_report_num(b->report, "duplicates", "duplicates", "", 0, k.dups);
	bench_report_num(b->report, "error_frames", "error frames", "", 0,
	    b->errors);
	if (k.dups > 0)
		bench_fail(b, "%llu duplicates", (unsigned long long)k.dups);
	cn_free(&k);
	return (b->failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK);
}
