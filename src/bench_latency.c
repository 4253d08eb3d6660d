/*
 * bench_latency.c: how long a chat takes at a steady rate.  Chats go into
 * the first node at R per second for D seconds, evenly spaced (open loop:
 * a slow answer does not slow the sender down), round robin over K
 * connections.  A client joined on every node (bench_watch.c) notes when
 * each chat is pushed to it; the delay from the moment the chat was
 * written to the first node's socket to that push is the latency from
 * send at one node to receipt at another.  The first --warmup seconds
 * are sent but not counted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "bench.h"

#define LAT_RATE	5000
#define LAT_DURATION	10
#define LAT_WARMUP	1
#define LAT_SIZE	32
#define LAT_TICK_US	100	/* shortest pause between sends */
#define LAT_DRAIN	10	/* seconds to wait for the last chats */

struct lat;

struct lat_sender {
	struct lat		*l;
	struct bench_conn	*c;
	size_t			 index;
	uint64_t		 acked;
};

struct lat {
	struct bench		*b;
	uint64_t		 n, first, sent, acked, bad;
	double			 interval_us;
	int			 size, ids;
	int64_t			*sent_us;
	double			*acklat;
	size_t			 nacklat;
	double			**push;		/* per node: seconds */
	size_t			*npush;
	struct lat_sender	*snd;
	size_t			 nsnd, nopen;
	struct bench_watch	*watch;
	int64_t			 t0, max_behind_us;
	struct event		*tick;
	int			 broken;
	char			*frame;
	size_t			 framecap;
};

/* Acks on a connection come in order; its chats are index, index + K... */
static void
lat_ack(struct lat_sender *s, const char *p, size_t len)
{
	struct lat	*l = s->l;
	uint64_t	 want = s->acked * l->nsnd + s->index, tok;

	if (want >= l->sent || (l->ids && (bench_json_token(p, len,
	    "client_id", l->b->tag, &tok) == -1 || tok != want))) {
		l->bad++;
		return;
	}
	s->acked++;
	l->acked++;
	if (want >= l->first)
		l->acklat[l->nacklat++] = (bench_now_us() -
		    l->sent_us[want]) / 1e6;
}

static void
lat_send_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct lat_sender	*s = arg;

	switch (bench_json_type(p, len)) {
	case BENCH_F_ACK:
		lat_ack(s, p, len);
		break;
	case BENCH_F_ERROR:
		bench_error_frame(s->l->b, p, len);
		break;
	default:
		break;
	}
}

static void
lat_send_open(struct bench_conn *c, void *arg)
{
	((struct lat_sender *)arg)->l->nopen++;
}

static void
lat_send_close(struct bench_conn *c, const char *why, void *arg)
{
	struct lat	*l = ((struct lat_sender *)arg)->l;

	if (!l->broken)
		bench_fail(l->b, "a sending connection: %s", why);
	l->broken = 1;
}

static const struct bench_conn_cbs lat_send_cbs = {
	lat_send_open, lat_send_text, lat_send_close, NULL
};

/* A node pushed chat tok for the first time. */
static void
lat_push(size_t node, uint64_t tok, void *arg)
{
	struct lat	*l = arg;

	if (tok >= l->sent) {
		l->bad++;
		return;
	}
	if (tok >= l->first)
		l->push[node][l->npush[node]++] = (bench_now_us() -
		    l->sent_us[tok]) / 1e6;
}

/* Send every chat that is due by now, then sleep until the next one. */
static void
lat_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lat	*l = arg;
	struct timeval	 tv;
	int64_t		 now = bench_now_us(), due, wait;
	size_t		 len, i;

	while (l->sent < l->n && (due = l->t0 + (int64_t)(l->sent *
	    l->interval_us)) <= now) {
		if (now - due > l->max_behind_us)
			l->max_behind_us = now - due;
		len = bench_json_chat(l->frame, l->framecap, l->b->tag,
		    l->sent, l->size, l->ids);
		l->sent_us[l->sent] = now;
		bench_conn_send(l->snd[l->sent % l->nsnd].c, l->frame, len);
		l->sent++;
	}
	for (i = 0; i < l->nsnd; i++)
		bench_conn_flush(l->snd[i].c);
	if (l->sent == l->n)
		return;
	due = l->t0 + (int64_t)(l->sent * l->interval_us);
	wait = due - bench_now_us();
	if (wait < LAT_TICK_US)
		wait = LAT_TICK_US;
	tv.tv_sec = wait / 1000000;
	tv.tv_usec = wait % 1000000;
	evtimer_add(l->tick, &tv);
}

static void
lat_connect(struct lat *l)
{
	struct bench	*b = l->b;
	size_t		 i;

	l->watch = bench_watch_new(b, 1, l->n, 0, lat_push, l);
	l->snd = xcalloc(l->nsnd, sizeof(*l->snd));
	for (i = 0; i < l->nsnd; i++) {
		l->snd[i].l = l;
		l->snd[i].index = i;
		l->snd[i].c = bench_conn_new(b->base, &b->o.nodes[0],
		    bench_src(b, l->watch->nclients + i), &lat_send_cbs,
		    &l->snd[i]);
	}
}

static int
lat_ready(void *arg)
{
	struct lat	*l = arg;

	return (l->broken || (l->nopen == l->nsnd &&
	    bench_watch_ready(l->watch)));
}

static int
lat_finished(void *arg)
{
	struct lat	*l = arg;

	return (l->broken || l->watch->broken ||
	    (bench_watch_complete(l->watch) && l->acked == l->n));
}

static void
lat_free(struct lat *l)
{
	size_t	i;

	bench_watch_free(l->watch);
	for (i = 0; i < l->nsnd; i++)
		bench_conn_free(l->snd[i].c);
	for (i = 0; i < l->b->o.nnodes; i++)
		free(l->push[i]);
	if (l->tick != NULL)
		event_free(l->tick);
	free(l->push);
	free(l->npush);
	free(l->snd);
	free(l->sent_us);
	free(l->acklat);
	free(l->frame);
}

static void
lat_results(struct lat *l, double secs, double self)
{
	struct bench_report	*r = l->b->report;
	char			 key[64], label[160];
	size_t			 i;

	bench_report_num(r, "rate_per_s", "chats/s sent", "", 1,
	    secs > 0 ? l->sent / secs : NAN);
	bench_report_num(r, "sender_behind_max_ms",
	    "sender behind its schedule, at most", "ms", 3,
	    l->max_behind_us / 1e3);
	bench_report_pcts(r, "ack", "ack latency", l->acklat, l->nacklat);
	for (i = 0; i < l->b->o.nnodes; i++) {
		snprintf(key, sizeof(key), "push_node%zu", i + 1);
		snprintf(label, sizeof(label), "pushed at %s",
		    l->b->o.nodes[i].name);
		bench_report_pcts(r, key, label, l->push[i], l->npush[i]);
	}
	bench_report_num(r, "client_cpu_us_per_chat",
	    "CPU per chat, nodetalk-bench itself", "us", 2,
	    l->sent > 0 ? self / l->sent * 1e6 : NAN);
	bench_watch_report(l->watch, l->bad);
}

static void
lat_init(struct lat *l, struct bench *b, double rate, double dur,
    double warmup)
{
	size_t	i;

	memset(l, 0, sizeof(*l));
	l->b = b;
	l->n = (uint64_t)ceil(rate * (dur + warmup));
	l->first = (uint64_t)ceil(rate * warmup);
	l->interval_us = 1e6 / rate;
	l->nsnd = b->o.conns ? b->o.conns : 1;
	l->size = b->o.size ? b->o.size : LAT_SIZE;
	l->ids = !b->o.no_ids;
	l->sent_us = xcalloc(l->n, sizeof(*l->sent_us));
	l->acklat = xcalloc(l->n, sizeof(*l->acklat));
	l->push = xcalloc(b->o.nnodes, sizeof(*l->push));
	l->npush = xcalloc(b->o.nnodes, sizeof(*l->npush));
	for (i = 0; i < b->o.nnodes; i++)
		l->push[i] = xcalloc(l->n, sizeof(double));
	l->framecap = l->size + 256;
	l->frame = xmalloc(l->framecap);
	if ((l->tick = evtimer_new(b->base, lat_tick_cb, l)) == NULL)
		fatalx("evtimer_new failed");
	bench_report_param(b->report, "rate", rate);
	bench_report_param(b->report, "duration", dur);
	bench_report_param(b->report, "warmup", warmup);
	bench_report_param(b->report, "connections", (double)l->nsnd);
	bench_report_param(b->report, "size", l->size);
	bench_report_param(b->report, "ids", l->ids);
}

static void
lat_run(struct lat *l, int64_t start)
{
	struct bench	*b = l->b;
	double		 self, secs;

	if (bench_wait(b, lat_ready, l, bench_left(b, start)) == -1)
		bench_fail(b, "connecting: timed out");
	if (l->broken || l->watch->broken || !lat_ready(l))
		return;
	self = bench_proc_self_cpu();
	l->t0 = bench_now_us();
	lat_tick_cb(-1, 0, l);
	if (bench_wait(b, lat_finished, l, bench_left(b, start)) == -1)
		bench_fail(b, "not every node held every chat %d s after the "
		    "last was sent", LAT_DRAIN);
	secs = l->sent > 0 ? (l->sent_us[l->sent - 1] - l->t0) / 1e6 +
	    l->interval_us / 1e6 : 0;
	self = bench_proc_self_cpu() - self;
	lat_results(l, secs, self);
}

int
bench_latency(struct bench *b)
{
	struct lat	 l;
	double		 rate = b->o.rate ? b->o.rate : LAT_RATE;
	double		 dur = b->o.duration ? b->o.duration : LAT_DURATION;
	double		 warmup = b->o.warmup;
	int64_t		 start = bench_now_us();
	char		*cause = NULL;

	if (warmup < 0)
		warmup = dur > 2 * LAT_WARMUP ? LAT_WARMUP : 0;
	/* -t bounds the set-up; sending takes what it takes, then a drain */
	b->o.timeout += dur + warmup + LAT_DRAIN;
	lat_init(&l, b, rate, dur, warmup);
	if (bench_nofile(l.nsnd + b->o.nnodes + 64, &cause) == -1) {
		bench_fail(b, "%s", cause);
		free(cause);
	} else {
		lat_connect(&l);
		lat_run(&l, start);
	}
	lat_free(&l);
	return (b->failed ? BENCH_EXIT_FAIL : BENCH_EXIT_OK);
}
