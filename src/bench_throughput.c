/*
 * bench_throughput.c: how many chats per second the cluster replicates.
 * N chats go into the first node over K connections, each keeping W
 * unacknowledged (bench_load.c); clients joined on every node, R per node
 * (bench_watch.c), note what is pushed to them.  The clock stops when
 * every one of them holds all N, each exactly once, and every chat was
 * acknowledged.  CPU per chat is what the node processes spent in
 * between, divided by N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "bench.h"

#define TP_CHATS	100000
#define TP_CONNS	8
#define TP_WINDOW	128
#define TP_SIZE		32
#define TP_LINGER	0.2	/* seconds to watch for late duplicates */

struct tp {
	struct bench		*b;
	struct bench_load	*load;
	struct bench_watch	*watch;
	struct bench_cpu	*before, *after;
	double			 self;		/* our own CPU, seconds */
};

static int
tp_ready(void *arg)
{
	struct tp	*t = arg;

	return (bench_load_ready(t->load) && bench_watch_ready(t->watch));
}

static int
tp_finished(void *arg)
{
	struct tp	*t = arg;

	if (t->load->broken || t->watch->broken)
		return (1);
	return (bench_load_done(t->load) && bench_watch_complete(t->watch));
}

static void
tp_snapshot(struct bench *b, struct bench_cpu *cpu)
{
	size_t	i;

	for (i = 0; i < b->o.nnodes; i++)
		if (b->o.nodes[i].master != 0)
			(void)bench_proc_cpu(&b->o.nodes[i].master, 1, &cpu[i]);
}

static void
tp_cpu_rows(struct tp *t)
{
	struct bench		*b = t->b;
	struct bench_report	*r = b->report;
	char			 key[64], label[128];
	double			 s, total = 0, n = (double)t->load->n;
	size_t			 i;

	for (i = 0; i < b->o.nnodes; i++)
		total += bench_proc_cpu_secs(&t->before[i], &t->after[i]);
	if (bench_masters_found(b) == b->o.nnodes)
		bench_report_num(r, "cpu_us_per_chat",
		    "CPU per chat, all node processes", "us", 2,
		    total / n * 1e6);
	else
		bench_report_none(r, "cpu_us_per_chat",
		    "CPU per chat, all node processes", "nodes not found");
	for (i = 0; i < b->o.nnodes; i++) {
		if (b->o.nodes[i].master == 0)
			continue;
		s = bench_proc_cpu_secs(&t->before[i], &t->after[i]);
		snprintf(key, sizeof(key), "cpu_us_per_chat_node%zu", i + 1);
		snprintf(label, sizeof(label), "  of which %s",
		    b->o.nodes[i].name);
		bench_report_num(r, key, label, "us", 2, s / n * 1e6);
	}
	bench_report_num(r, "client_cpu_us_per_chat",
	    "CPU per chat, nodetalk-bench itself", "us", 2, t->self / n * 1e6);
}

static void
tp_results(struct tp *t)
{
	struct bench_report	*r = t->b->report;
	double			 secs = (t->watch->t_done - t->load->t0) / 1e6;
	int			 done;

	done = tp_finished(t) && !t->load->broken && !t->watch->broken;
	if (done) {
		bench_report_num(r, "chats_per_s",
		    "chats/s replicated to every node", "", 0,
		    t->load->n / secs);
		bench_report_num(r, "elapsed_s",
		    "time until every node held all", "s", 3, secs);
	} else {
		bench_report_none(r, "chats_per_s",
		    "chats/s replicated to every node", "did not finish");
		bench_report_none(r, "elapsed_s",
		    "time until every node held all", "did not finish");
	}
	bench_load_report(t->load);
	if (done)
		tp_cpu_rows(t);
	bench_watch_report(t->watch, t->load->bad);
}

static void
tp_params(struct bench *b, uint64_t n, size_t conns, int window, int size,
    int receivers)
{
	bench_report_param(b->report, "chats", (double)n);
	bench_report_param(b->report, "connections", (double)conns);
	bench_report_param(b->report, "window", window);
	bench_report_param(b->report, "size", size);
	bench_report_param(b->report, "receivers_per_node", receivers);
	bench_report_param(b->report, "ids", !b->o.no_ids);
}

static void
tp_run(struct tp *t, int64_t start)
{
	struct bench	*b = t->b;

	if (bench_wait(b, tp_ready, t, bench_left(b, start)) == -1) {
		bench_fail(b, "connecting: timed out");
		return;
	}
	if (t->load->broken || t->watch->broken)
		return;
	tp_snapshot(b, t->before);
	t->self = bench_proc_self_cpu();
	bench_load_start(t->load);
	if (bench_wait(b, tp_finished, t, bench_left(b, start)) == -1)
		bench_fail(b, "not every node held every chat after -t %g s",
		    b->o.timeout);
	tp_snapshot(b, t->after);
	t->self = bench_proc_self_cpu() - t->self;
	if (!t->load->broken && !t->watch->broken)
		bench_loop_for(b, TP_LINGER);
	tp_results(t);
}

int
bench_throughput(struct bench *b)
{
	struct tp	 t;
	uint64_t	 n = b->o.count ? b->o.count : TP_CHATS;
	size_t		 conns = b->o.conns ? b->o.conns : TP_CONNS, i;
	int		 window = b->o.window ? b->o.window : TP_WINDOW;
	int		 size = b->o.size ? b->o.size : TP_SIZE;
	int		 per_node = b->o.receivers ? b->o.receivers : 1;
	int64_t		 start = bench_now_us();
	char		*cause = NULL;

	tp_params(b, n, conns, window, size, per_node);
	if (bench_nofile(conns + b->o.nnodes * per_node + 64, &cause) == -1) {
		bench_fail(b, "%s", cause);
		free(cause);
		return (BENCH_EXIT_FAIL);
	}
	memset(&t, 0, sizeof(t));
	t.b = b;
	t.before = xcalloc(b->o.nnodes, sizeof(*t.before));
	t.after = xcalloc(b->o.nnodes, sizeof(*t.after));
	bench_find_pids(b);
	t.watch = bench_watch_new(b, per_node, n, 0, NULL, NULL);
	t.load = bench_load_new(b, &b->o.nodes[0], conns, window, size, n,
	    t.watch->nclients);
	tp_run(&t, start);
	for (i = 0; i < b->o.nnodes; i++) {
		bench_cpu_clear(&t.before[i]);
		bench_cpu_clear(&t.after[i]);
	}
	free(t.before);
	free(t.after);
	bench_load_free(t.load);
	bench_watch_free(t.watch);
	return (b->failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK);
}
