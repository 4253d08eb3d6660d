/*
 * engine.h: what carries messages between nodes, as the master sees it.
 *
 * engine = "mesh" (engine_mesh.c; the default): every node dials every
 * other one; the peer worker carries each node's messages to the others
 * and fills their gaps (replicate.c).  engine = "nats" (engine_nats.c):
 * every node is a gateway to one NATS JetStream stream; the nats worker
 * publishes the node's chats to the stream and reads the stream into the
 * store (nats_worker.c).  The master, the ws worker, the store, the
 * channel and the client protocol are the same for both: the master
 * calls its engine through this table and never asks which one it holds.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <msgpack.h>

#include "nodetalkd.h"
#include "config.h"
#include "status.h"

struct worker;

struct engine {
	const char	*name;		/* engine = ... in nodetalk.conf */
	const char	*worker;	/* its worker's name ("peer", "nats") */
	worker_main_fn	 worker_main;
	int		 peers;		/* the nodes link to each other (else
					   the nodes list is for operators) */

	/*
	 * The store is open, the daemon not detached yet: whether the
	 * engine can run on it.  0, or -1 with *cause (the start fails).
	 */
	int		(*check)(char **cause);
	/* Before the workers start: the engine's state and timers. */
	void		(*start)(void);
	/* A worker (either) said hello: it is new, and may need telling. */
	void		(*hello)(struct worker *);
	/* A worker (either) died: what went with it. */
	void		(*lost)(struct worker *);
	/* A client's chat (CH_CHAT): see that it is stored, then acked. */
	void		(*chat)(const msgpack_object *);
	/* Any other frame from a worker; 0 when it is not the engine's. */
	int		(*frame)(int type, const msgpack_object *);
	/* After each group commit: what was pending is durable now. */
	void		(*committed)(void);
	/*
	 * After a reload swapped M.conf (old is the previous one): apply
	 * what can be; 1 when the engine's worker must restart for it.
	 */
	int		(*reload)(const struct nt_config *old);
	/*
	 * /status and /metrics: fill the engine's part of c.  c->peers,
	 * when set, is allocated and the caller frees it.
	 */
	void		(*status)(struct status_ctx *c);
};

extern const struct engine	 engine_mesh;
#ifdef HAVE_NATS
extern const struct engine	 engine_nats;
#endif

#endif /* ENGINE_H */
