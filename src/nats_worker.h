/*
 * nats_worker.h: the two halves of the nats worker (engine = "nats"),
 * private to them.
 *
 * The worker is one process with threads.  Its libevent loop
 * (nats_worker.c) owns the channel to the master, the NATS connection's
 * socket (through libnats' libevent adapter) and every publish.  The
 * stream thread (nats_link.c) makes the blocking JetStream requests:
 * creating the stream, (re)starting the consumer, asking for the stream's
 * state.  It cannot be the loop, which must read their answers.  And
 * libnats calls back from threads of its own: the messages of the
 * subscription, the answers to publishes, the connection's events.
 *
 * Whatever crosses threads goes through struct nats_shared under its
 * mutex; the loop is woken with event_active(), which libevent makes
 * safe from any thread once evthread_use_pthreads() ran.
 */
#ifndef NATS_WORKER_H
#define NATS_WORKER_H

#include <sys/queue.h>

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <nats/nats.h>

#include "nodetalk.h"
#include "config.h"

/* Stream messages parsed and waiting for the loop; more block delivery. */
#define NW_INBOX_MAX	1024

/* A message read from the stream, parsed by the delivery thread. */
struct nw_in {
	TAILQ_ENTRY(nw_in)	 entry;
	uint64_t		 gen;	/* of the consumer that read it */
	struct nt_msg		 m;
};

/* JetStream's answer to one publish attempt. */
struct nw_ack {
	TAILQ_ENTRY(nw_ack)	 entry;
	natsMsg			*nm;	/* the attempt: ours again */
	int			 ok;
	uint64_t		 seq;
	int			 dup;
	char			 why[160];
};

/* The link as /status shows it. */
struct nw_state {
	int		 up;
	char		 server[128];
	int		 stream_ok;
	uint64_t	 stream_seq;	/* the stream's last sequence */
	int		 replicas;
	char		 leader[64];
	uint64_t	 reconnects;
	char		 error[256];
};

struct nats_shared {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cond;	/* room in `in`, or work for the
					   stream thread */
	struct event		*wake;	/* the loop's */
	int			 quitting;
	int			 stopped;	/* the stream thread ended */
	const struct nt_config	*conf;
	natsConnection		*nc;
	jsCtx			*js;

	TAILQ_HEAD(, nw_in)	 in;
	size_t			 nin;
	TAILQ_HEAD(, nw_ack)	 acks;

	uint64_t		 want_gen;	/* the loop's consume request */
	uint64_t		 want_from;
	uint64_t		 reconnected;	/* counts reconnections */
	int64_t			 down_ms;	/* when the link went down */
	struct nw_state		 st;
};

extern struct nats_shared	 NS;

/* nats_link.c */
int	nats_link_open(struct event_base *, char **cause);
void	nats_link_stop(void);
int	nats_link_stopped(void);
void	nats_link_close(void);
void	nats_link_kick(void);

#endif /* NATS_WORKER_H */
