/*
 * bench_watch.c: clients joined on every node that note each chat of this
 * run as it is pushed to them, exactly once: a chat seen twice is a
 * duplicate, one never seen is missing.  They join with since = what
 * their node holds, so the history before the run is not sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "wire.h"
#include "bench.h"

struct watch_client {
	struct bench_watch	*w;
	struct bench_conn	*c;
	size_t			 node;
	uint8_t			*seen;		/* a bit per token */
	uint64_t		 got;
	int			 joined;
};

static void
watch_lost(struct bench_watch *w, const char *why)
{
	if (!w->broken)
		bench_fail(w->b, "a joined client's connection: %s", why);
	w->broken = 1;
}

static void
watch_chat(struct watch_client *wc, const char *p, size_t len)
{
	struct bench_watch	*w = wc->w;
	uint64_t		 tok;

	if (bench_json_token(p, len, "text", w->b->tag, &tok) == -1)
		return;		/* someone else's chat */
	if (tok >= w->n) {
		w->bad++;
		return;
	}
	if (wc->seen[tok / 8] & (1 << (tok % 8))) {
		w->dups++;
		return;
	}
	wc->seen[tok / 8] |= 1 << (tok % 8);
	if (w->on_chat != NULL)
		w->on_chat(wc->node, tok, w->arg);
	if (++wc->got == w->n && ++w->complete == w->nclients)
		w->t_done = bench_now_us();
}

static void
watch_text(struct bench_conn *c, const char *p, size_t len, void *arg)
{
	struct watch_client	*wc = arg;

	switch (bench_json_type(p, len)) {
	case BENCH_F_CHAT:
		watch_chat(wc, p, len);
		break;
	case BENCH_F_JOINED:
		if (!wc->joined++)
			wc->w->njoined++;
		break;
	case BENCH_F_ERROR:
		bench_error_frame(wc->w->b, p, len);
		break;
	default:
		break;
	}
}

/* Join with since = what the node holds: no history, only new chats. */
static void
watch_open(struct bench_conn *c, void *arg)
{
	struct watch_client	*wc = arg;
	struct bench_status	 st;
	char			*cause = NULL, *join;

	if (bench_status_get(&wc->w->b->o.nodes[wc->node], &st, &cause) ==
	    -1) {
		watch_lost(wc->w, cause);
		free(cause);
		return;
	}
	join = wire_join("nodetalk-bench", &st.have);
	bench_conn_send(c, join, strlen(join));
	free(join);
	bench_status_clear(&st);
}

static void
watch_close(struct bench_conn *c, const char *why, void *arg)
{
	watch_lost(((struct watch_client *)arg)->w, why);
}

static const struct bench_conn_cbs watch_cbs = {
	watch_open, watch_text, watch_close, NULL
};

/*
 * per_node clients on every node, watching for tokens 0 .. n-1; on_chat
 * (may be NULL) hears of each the first time a node pushes it.
 */
struct bench_watch *
bench_watch_new(struct bench *b, int per_node, uint64_t n, size_t src_first,
    void (*on_chat)(size_t, uint64_t, void *), void *arg)
{
	struct bench_watch	*w = xcalloc(1, sizeof(*w));
	struct watch_client	*wc;
	size_t			 i;

	w->b = b;
	w->n = n;
	w->on_chat = on_chat;
	w->arg = arg;
	w->nclients = b->o.nnodes * per_node;
	w->clients = xcalloc(w->nclients, sizeof(*w->clients));
	for (i = 0; i < w->nclients; i++) {
		wc = &w->clients[i];
		wc->w = w;
		wc->node = i % b->o.nnodes;
		wc->seen = xcalloc(n / 8 + 1, 1);
		wc->c = bench_conn_new(b->base, &b->o.nodes[wc->node],
		    bench_src(b, src_first + i), &watch_cbs, wc);
	}
	return (w);
}

int
bench_watch_ready(void *arg)
{
	struct bench_watch	*w = arg;

	return (w->broken || w->njoined == w->nclients);
}

int
bench_watch_complete(void *arg)
{
	struct bench_watch	*w = arg;

	return (w->broken || w->complete == w->nclients);
}

uint64_t
bench_watch_missing(const struct bench_watch *w)
{
	uint64_t	missing = 0;
	size_t		i;

	for (i = 0; i < w->nclients; i++)
		missing += w->n - w->clients[i].got;
	return (missing);
}

/* Duplicates, missing chats, frames out of place: each fails the run. */
void
bench_watch_report(struct bench_watch *w, uint64_t more_bad)
{
	struct bench_report	*r = w->b->report;
	uint64_t		 missing = bench_watch_missing(w);

	bench_report_num(r, "duplicates", "duplicates", "", 0, w->dups);
	bench_report_num(r, "missing", "missing (all clients)", "", 0,
	    missing);
	bench_report_num(r, "error_frames", "error frames", "", 0,
	    w->b->errors);
	bench_report_num(r, "bad_frames", "acks or chats out of place", "", 0,
	    w->bad + more_bad);
	if (w->dups > 0 || missing > 0 || w->bad + more_bad > 0)
		bench_fail(w->b, "%llu duplicates, %llu missing, %llu out of "
		    "place", (unsigned long long)w->dups,
		    (unsigned long long)missing,
		    (unsigned long long)(w->bad + more_bad));
}

void
bench_watch_free(struct bench_watch *w)
{
	size_t	i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nclients; i++) {
		bench_conn_free(w->clients[i].c);
		free(w->clients[i].seen);
	}
	free(w->clients);
	free(w);
}
