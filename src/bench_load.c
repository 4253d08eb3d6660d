/*
 * bench_load.c: N chats into one node as fast as it takes them, over K
 * connections that each keep W chats unacknowledged (pipelining, as
 * redis-benchmark -P and h2load -m do).  Used by throughput (with clients
 * watching every node) and by history (to fill a store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "bench.h"

struct load_conn {
	struct bench_load	*l;
	struct bench_conn	*c;
	uint64_t		*ring;		/* tokens awaiting their ack */
	size_t			 head, inflight;
};

static void
load_lost(struct bench_load *l, const char *why)
{
	if (!l->broken)
		bench_fail(l->b, "a sending connection: %s", why);
	l->broken = 1;
}

/*
 * Keep the window full.  The frames wait in the connection's buffer: its
 * read callback writes them out once per read, all at once.
 */
static void
load_fill(struct load_conn *lc)
{
	struct bench_load	*l = lc->l;
	int64_t			 now = bench_now_us();
	size_t			 len;

	while (lc->inflight < (size_t)l->window && l->next < l->n) {
		len = bench_json_chat(l->frame, l->framecap, l->b->tag,
		    l->next, l->size, l->ids);
		l->sent_us[l->next] = now;
		lc->ring[(lc->head + lc->inflight) % l->window] = l->next;
		lc->inflight++;
		l->next++;
		bench_conn_send(lc->c, l->frame, len);
	}
}

static void
load_ack(struct load_conn *lc, const char *p, size_t len)
{
	struct bench_load	*l = lc->l;
	uint64_t		 tok, want;

	if (lc->inflight == 0) {
		l->bad++;
		return;
	}
	want = lc->ring[lc->head];
	/* Acks on a connection come in the order of the chats. */
	if (l->ids && (bench_json_token(p, len, "client_id", l->b->tag,
	    &tok) == -1 || tok != want))
		l->bad++;
	lc->head = (lc->head + 1) % l->window;
	lc->inflight--;
	l->acklat[l->acked++] = (bench_now_us() - l->sent_us[want]) / 1e6;
	if (l->acked == l->n)
		l->t_acked = bench_now_us();
	load_fill(lc);
}

static void
load_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct load_conn	*lc = arg;

	switch (bench_json_type(p, len)) {
	case BENCH_F_ACK:
		load_ack(lc, p, len);
		break;
	case BENCH_F_ERROR:
		bench_error_frame(lc->l->b, p, len);
		break;
	default:
		break;
	}
}

static void
load_open(struct bench_conn *c, void *arg)
{
	((struct load_conn *)arg)->l->nopen++;
}

static void
load_close(struct bench_conn *c, const char *why, void *arg)
{
	load_lost(((struct load_conn *)arg)->l, why);
}

static const struct bench_conn_cbs load_cbs = {
	load_open, load_text, load_close, NULL
};

/* Connect K connections to node; the first uses source src_first. */
struct bench_load *
bench_load_new(struct bench *b, const struct bench_node *node, size_t conns,
    int window, int size, uint64_t n, size_t src_first)
{
	struct bench_load	*l = xcalloc(1, sizeof(*l));
	size_t			 i;

	l->b = b;
	l->n = n;
	l->window = window;
	l->size = size;
	l->ids = !b->o.no_ids;
	l->sent_us = xcalloc(n, sizeof(*l->sent_us));
	l->acklat = xcalloc(n, sizeof(*l->acklat));
	l->framecap = size + 256;
	l->frame = xmalloc(l->framecap);
	l->nconns = conns;
	l->conns = xcalloc(conns, sizeof(*l->conns));
	for (i = 0; i < conns; i++) {
		l->conns[i].l = l;
		l->conns[i].ring = xcalloc(window, sizeof(uint64_t));
		l->conns[i].c = bench_conn_new(b->base, node,
		    bench_src(b, src_first + i), &load_cbs, &l->conns[i]);
	}
	return (l);
}

void
bench_load_start(struct bench_load *l)
{
	size_t	i;

	l->t0 = bench_now_us();
	for (i = 0; i < l->nconns; i++) {
		load_fill(&l->conns[i]);
		bench_conn_flush(l->conns[i].c);
	}
}

int
bench_load_ready(void *arg)
{
	struct bench_load	*l = arg;

	return (l->broken || l->nopen == l->nconns);
}

int
bench_load_done(void *arg)
{
	struct bench_load	*l = arg;

	return (l->broken || l->acked == l->n);
}

/* The acks: their rate and latency, and what was wrong with them. */
void
bench_load_report(struct bench_load *l)
{
	struct bench_report	*r = l->b->report;

	if (l->acked == l->n)
		bench_report_num(r, "acks_per_s", "chats/s acknowledged", "",
		    0, l->n / ((l->t_acked - l->t0) / 1e6));
	else
		bench_report_none(r, "acks_per_s", "chats/s acknowledged",
		    "did not finish");
	bench_report_pcts(r, "ack", "ack latency", l->acklat, l->acked);
}

void
bench_load_free(struct bench_load *l)
{
	size_t	i;

	if (l == NULL)
		return;
	for (i = 0; i < l->nconns; i++) {
		bench_conn_free(l->conns[i].c);
		free(l->conns[i].ring);
	}
	free(l->conns);
	free(l->sent_us);
	free(l->acklat);
	free(l->frame);
	free(l);
}
