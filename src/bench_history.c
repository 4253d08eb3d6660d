/*
 * bench_history.c: what a long history costs.  The first node gets S
 * messages (sent here, pipelined, or --existing: what it already holds);
 * then measured are the master's memory per stored message, the time of
 * a join whose since covers everything (a client that reconnects having
 * missed nothing: ideally independent of S) and of a join without since
 * (a new client: the whole history, or whatever the node sends), with a
 * WebSocket ping's round trip beside them as the floor, and, given a
 * command to restart the node, the time until it answers a join again.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "wire.h"
#include "bench.h"

#define HI_MESSAGES	100000
#define HI_CONNS	8
#define HI_WINDOW	128
#define HI_SIZE		32
#define HI_JOINS	20
#define HI_FULL_JOINS	3
#define HI_POLL_MS	20	/* between tries while the node restarts */

struct hi {
	struct bench		*b;
	struct bench_node	*node;
	struct bench_conn	*c;		/* joins and pings */
	int			 open, closed;
	int			 waiting;	/* a join or ping in flight */
	uint64_t		 chats, count;	/* of the last join */
	int64_t			 t_sent;
	double			 took;		/* seconds, the last one */
	char			*join_all;	/* since = everything */
	uint64_t		 messages;
	struct bench_mem	 mem0;		/* master, before filling */
	int			 have_mem0;
	/* restart */
	struct bench_conn	*probe;
	struct event		*poll;
	int64_t			 t_up;
	pid_t			 cmd;
	int			 cmd_status;
	int			 cmd_failed;
	int			 broken;
};

static void
hi_lost(struct hi *h, const char *what, const char *why)
{
	if (!h->broken)
		bench_fail(h->b, "%s: %s", what, why);
	h->broken = 1;
}

static void
hi_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct hi	*h = arg;

	switch (bench_json_type(p, len)) {
	case BENCH_F_CHAT:
		h->chats++;
		break;
	case BENCH_F_JOINED:
		h->took = (bench_now_us() - h->t_sent) / 1e6;
		if (bench_json_uint(p, len, "count", &h->count) == -1)
			h->count = h->chats;
		h->waiting = 0;
		break;
	case BENCH_F_ERROR:
		bench_error_frame(h->b, p, len);
		h->waiting = 0;
		break;
	default:
		break;
	}
}

static void
hi_pong(struct bench_conn *c, void *arg)
{
	struct hi	*h = arg;

	h->took = (bench_now_us() - h->t_sent) / 1e6;
	h->waiting = 0;
}

static void
hi_open(struct bench_conn *c, void *arg)
{
	((struct hi *)arg)->open = 1;
}

static void
hi_close(struct bench_conn *c, const char *why, void *arg)
{
	struct hi	*h = arg;

	h->closed = 1;
	if (h->cmd == 0)
		hi_lost(h, "the joining connection", why);
}

static const struct bench_conn_cbs hi_cbs = {
	hi_open, hi_text, hi_close, hi_pong
};

static int
hi_ready(void *arg)
{
	struct hi	*h = arg;

	return (h->broken || h->open);
}

static int
hi_answered(void *arg)
{
	struct hi	*h = arg;

	return (h->broken || !h->waiting);
}

/* One join (frame) or ping (NULL) and its answer: seconds, or NAN. */
static double
hi_ask(struct hi *h, const char *frame, int64_t start)
{
	h->waiting = 1;
	h->chats = h->count = 0;
	h->t_sent = bench_now_us();
	if (frame != NULL)
		bench_conn_send(h->c, frame, strlen(frame));
	else
		bench_conn_ping(h->c);
	bench_conn_flush(h->c);
	if (bench_wait(h->b, hi_answered, h, bench_left(h->b, start)) == -1)
		hi_lost(h, "a join", "no answer before -t");
	return (h->broken ? NAN : h->took);
}

/* n asks: the median and the fastest. */
static void
hi_asks(struct hi *h, const char *frame, int n, int64_t start,
    const char *key, const char *label)
{
	char	k[96], l[160];
	double	*v = xcalloc(n, sizeof(double));
	int	 i;

	for (i = 0; i < n && !h->broken; i++)
		v[i] = hi_ask(h, frame, start) * 1e6;
	if (!h->broken) {
		snprintf(k, sizeof(k), "%s_median_us", key);
		snprintf(l, sizeof(l), "%s, median", label);
		bench_report_num(h->b->report, k, l, "us", 1,
		    bench_median(v, n));
		snprintf(k, sizeof(k), "%s_min_us", key);
		snprintf(l, sizeof(l), "%s, fastest", label);
		bench_report_num(h->b->report, k, l, "us", 1,
		    bench_pct(v, n, 0));
	}
	free(v);
}

static int
hi_status(struct hi *h, struct bench_status *st)
{
	char	*cause = NULL;

	if (bench_status_get(h->node, st, &cause) == -1) {
		hi_lost(h, "/status", cause);
		free(cause);
		return (-1);
	}
	return (0);
}

/* Send S messages, pipelined; the master's memory before and after. */
static void
hi_fill(struct hi *h, uint64_t s, int64_t start)
{
	struct bench		*b = h->b;
	struct bench_load	*l;

	h->have_mem0 = h->node->master != 0 &&
	    bench_proc_mem(h->node->master, &h->mem0) == 0;
	l = bench_load_new(b, h->node, b->o.conns ? b->o.conns : HI_CONNS,
	    b->o.window ? b->o.window : HI_WINDOW,
	    b->o.size ? b->o.size : HI_SIZE, s, 1);
	if (bench_wait(b, bench_load_ready, l, bench_left(b, start)) == 0 &&
	    !l->broken) {
		bench_load_start(l);
		if (bench_wait(b, bench_load_done, l, bench_left(b, start)) ==
		    -1)
			hi_lost(h, "storing the messages", "timed out (-t)");
	} else
		hi_lost(h, "connecting", "failed or timed out");
	if (l->broken)
		h->broken = 1;
	if (l->acked == l->n)
		bench_report_num(b->report, "fill_per_s",
		    "messages stored per second (filling)", "", 0,
		    l->n / ((l->t_acked - l->t0) / 1e6));
	bench_load_free(l);
}

static void
hi_memory(struct hi *h, uint64_t sent, const char *key, const char *label)
{
	struct bench_mem	m;
	char			k[96], l[160];

	if (h->node->master == 0 || bench_proc_mem(h->node->master, &m) ==
	    -1) {
		bench_report_none(h->b->report, key, label,
		    "node not found here");
		return;
	}
	snprintf(k, sizeof(k), "%s_rss_per_msg_b", key);
	snprintf(l, sizeof(l), "%s, RSS / messages", label);
	bench_report_num(h->b->report, k, l, "B", 1,
	    (double)m.rss / h->messages);
	snprintf(k, sizeof(k), "%s_anon_per_msg_b", key);
	snprintf(l, sizeof(l), "%s, anonymous RSS / messages", label);
	bench_report_num(h->b->report, k, l, "B", 1,
	    (double)m.anon / h->messages);
	if (sent > 0 && h->have_mem0) {
		snprintf(k, sizeof(k), "%s_growth_per_msg_b", key);
		snprintf(l, sizeof(l), "%s, RSS growth / message sent", label);
		bench_report_num(h->b->report, k, l, "B", 1,
		    ((double)m.rss - (double)h->mem0.rss) / sent);
	}
}

static void
hi_probe_cb(evutil_socket_t, short, void *);

static void
hi_probe_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct hi	*h = arg;

	if (bench_json_type(p, len) == BENCH_F_JOINED && h->t_up == 0)
		h->t_up = bench_now_us();
}

static void
hi_probe_open(struct bench_conn *c, void *arg)
{
	struct hi	*h = arg;

	bench_conn_send(c, h->join_all, strlen(h->join_all));
}

/* Not up yet: try again shortly. */
static void
hi_probe_close(struct bench_conn *c, const char *why, void *arg)
{
	struct hi	*h = arg;
	struct timeval	 tv = { 0, HI_POLL_MS * 1000 };

	bench_conn_free(h->probe);
	h->probe = NULL;
	if (h->t_up == 0)
		evtimer_add(h->poll, &tv);
}

static const struct bench_conn_cbs hi_probe_cbs = {
	hi_probe_open, hi_probe_text, hi_probe_close, NULL
};

/* Once the old node dropped us, knock until a join is answered. */
static void
hi_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hi	*h = arg;
	struct timeval	 tv = { 0, HI_POLL_MS * 1000 };
	char		 why[64];

	if (h->cmd > 0 && waitpid(h->cmd, &h->cmd_status, WNOHANG) ==
	    h->cmd) {
		h->cmd = -1;
		/* no restart is coming: do not wait for the timeout */
		if (bench_cmd_status(h->cmd_status, why, sizeof(why)) == -1) {
			h->cmd_failed = 1;
			hi_lost(h, "--restart-cmd", why);
			return;
		}
	}
	if (!h->closed || h->probe != NULL) {
		evtimer_add(h->poll, &tv);
		return;
	}
	h->probe = bench_conn_new(h->b->base, h->node, bench_src(h->b, 0),
	    &hi_probe_cbs, h);
}

static int
hi_is_up(void *arg)
{
	struct hi	*h = arg;

	return (h->broken || h->t_up != 0);
}

static void
hi_restart_result(struct hi *h, int64_t t0)
{
	struct bench_status	st;
	char			why[64];

	if (h->cmd > 0)
		(void)waitpid(h->cmd, &h->cmd_status, 0);
	h->cmd = -1;
	if (!h->cmd_failed && bench_cmd_status(h->cmd_status, why,
	    sizeof(why)) == -1)
		bench_fail(h->b, "--restart-cmd: %s", why);
	if (h->t_up == 0)
		return;
	bench_report_num(h->b->report, "restart_s",
	    "restart: until a join is answered again", "s", 3,
	    (h->t_up - t0) / 1e6);
	if (hi_status(h, &st) == -1)
		return;
	if (st.messages < h->messages)
		bench_fail(h->b, "the node holds %llu messages after the "
		    "restart, %llu before", (unsigned long long)st.messages,
		    (unsigned long long)h->messages);
	bench_status_clear(&st);
	h->node->master = bench_proc_master(&h->node->sin, h->node->port);
	h->have_mem0 = 0;
	hi_memory(h, 0, "restarted", "master after the restart");
}

static void
hi_restart(struct hi *h, int64_t start)
{
	int64_t	t0 = bench_now_us();

	if ((h->poll = evtimer_new(h->b->base, hi_probe_cb, h)) == NULL)
		fatalx("evtimer_new failed");
	if ((h->cmd = bench_spawn(h->b->o.restart_cmd)) == -1) {
		hi_lost(h, "--restart-cmd", strerror(errno));
		return;
	}
	hi_probe_cb(-1, 0, h);
	if (bench_wait(h->b, hi_is_up, h, bench_left(h->b, start)) == -1)
		hi_lost(h, "the restart", h->closed ? "no join answered "
		    "before -t" : "the node never closed our connection");
	hi_restart_result(h, t0);
}

static void
hi_params(struct bench *b, uint64_t s)
{
	bench_report_param(b->report, "messages", (double)s);
	bench_report_param(b->report, "existing", b->o.existing);
	bench_report_param(b->report, "joins", b->o.repeat ? b->o.repeat :
	    HI_JOINS);
}

/* What the node holds now: the count, and a join that asks for nothing. */
static int
hi_measure_store(struct hi *h)
{
	struct bench_status	st;

	if (hi_status(h, &st) == -1)
		return (-1);
	h->messages = st.messages;
	h->join_all = wire_join("nodetalk-bench", &st.have);
	bench_status_clear(&st);
	bench_report_num(h->b->report, "messages", "messages stored", "", 0,
	    h->messages);
	if (h->messages == 0) {
		hi_lost(h, "history", "the node holds no messages");
		return (-1);
	}
	return (0);
}

static void
hi_joins(struct hi *h, int64_t start)
{
	char	*plain = wire_join("nodetalk-bench", NULL);
	int	 n = h->b->o.repeat ? h->b->o.repeat : HI_JOINS;

	hi_asks(h, NULL, n, start, "ping", "ping round trip (the floor)");
	hi_asks(h, h->join_all, n, start, "join_since_all",
	    "join, since covers everything");
	if (!h->broken && h->chats > 0)
		bench_note(h->b, "a join whose since covered everything got "
		    "%llu chats", (unsigned long long)h->chats);
	hi_asks(h, plain, HI_FULL_JOINS, start, "join_full",
	    "join without since");
	if (!h->broken)
		bench_report_num(h->b->report, "join_full_chats",
		    "chats sent to a join without since", "", 0, h->chats);
	free(plain);
}

int
bench_history(struct bench *b)
{
	struct hi	 h;
	uint64_t	 s = b->o.count ? b->o.count : HI_MESSAGES;
	int64_t		 start = bench_now_us();

	memset(&h, 0, sizeof(h));
	h.b = b;
	h.node = &b->o.nodes[0];
	hi_params(b, b->o.existing ? 0 : s);
	bench_find_pids(b);
	if (!b->o.existing)
		hi_fill(&h, s, start);
	if (!h.broken && hi_measure_store(&h) == 0)
		hi_memory(&h, b->o.existing ? 0 : s, "master", "master");
	if (!h.broken) {
		h.c = bench_conn_new(b->base, h.node, bench_src(b, 0), &hi_cbs,
		    &h);
		if (bench_wait(b, hi_ready, &h, bench_left(b, start)) == -1)
			hi_lost(&h, "connecting", "timed out");
	}
	if (!h.broken)
		hi_joins(&h, start);
	if (!h.broken && b->o.restart_cmd != NULL)
		hi_restart(&h, start);
	bench_conn_free(h.c);
	bench_conn_free(h.probe);
	if (h.poll != NULL)
		event_free(h.poll);
	free(h.join_all);
	return (b->failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK);
}
