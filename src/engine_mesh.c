/*
 * engine_mesh.c: engine = "mesh", the default.  Every node dials every
 * other one (peer_worker.c); a client's chat is numbered here, made
 * durable and acknowledged (commit.c), then sent to every peer, and the
 * peers fill each other's gaps by catch-up (replicate.c).  This file only
 * plugs those into the master's engine table (engine.h).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "nodetalk.h"
#include "nodetalkd.h"
#include "channel.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "status.h"
#include "store.h"
#include "master.h"

/* Any log will do: a node reads every origin. */
static int
mesh_check(char **cause)
{
	/* A retry is looked up among our own messages only (chat_take). */
	store_cid_origin(M.store, M.conf->node_id);
	return (0);
}

/*
 * A node that may have lost messages of its own (a damaged or empty log)
 * waits for its peers before it numbers a chat (replicate.c,
 * recovery_start()); every link hears our have.
 */
static void
mesh_start(void)
{
	M.antientropy_ev = evtimer_new(M.base, antientropy_cb, NULL);
	antientropy_cb(-1, 0, NULL);
	peers_rebuild();
	recovery_start();
}

static void
mesh_hello(struct worker *w)
{
}

static void
mesh_lost(struct worker *w)
{
	size_t	 i;

	for (i = 0; i < M.npeers; i++) {
		if (w == &M.ws)		/* its inbound links are gone */
			M.peers[i].in_known = 0;
		else {			/* what our links carried may be lost */
			have_clear(&M.peers[i].sent);
			M.peers[i].view.up = 0;
		}
	}
	if (w == &M.peer)
		send_cluster();		/* the pages show the links down */
}

static int
mesh_frame(int type, const msgpack_object *o)
{
	switch (type) {
	case CH_PEER_HELLO:
		on_peer_hello(o);
		return (1);
	case CH_PEER_CHAT:
		on_peer_chat(o);
		return (1);
	case CH_SEED_CHAT:
		on_seed_chat(o);
		return (1);
	case CH_SYNC_REQ:
		on_sync_request(o);
		return (1);
	case CH_LINK:
		on_link(o);
		return (1);
	case CH_CATCHUP_MORE:
		on_catchup_more(o);
		return (1);
	}
	return (0);
}

static void
mesh_committed(void)
{
}

/* Peers added or removed; a new secret: links are made again. */
static int
mesh_reload(const struct nt_config *old)
{
	peers_rebuild();
	recovery_check();
	return (!config_nodes_equal(old, M.conf) ||
	    strcmp(old->secret, M.conf->secret) != 0);
}

static void
mesh_status(struct status_ctx *c)
{
	struct peer_view	*pv;
	const char		**waiting;
	size_t			 i;

	pv = xcalloc(M.npeers, sizeof(*pv));
	for (i = 0; i < M.npeers; i++)
		pv[i] = M.peers[i].view;	/* shallow: read only */
	c->peers = pv;
	c->npeers = M.npeers;
	c->recovering = M.recovering;
	c->recovery_why = M.recovery_why;
	waiting = xcalloc(M.npeers + 1, sizeof(*waiting));
	c->nwaiting = recovery_waiting(waiting, M.npeers);
	c->waiting = waiting;
}

const struct engine engine_mesh = {
	.name = "mesh",
	.worker = "peer",
	.worker_main = peer_worker_main,
	.peers = 1,
	.check = mesh_check,
	.start = mesh_start,
	.hello = mesh_hello,
	.lost = mesh_lost,
	.chat = on_client_chat,
	.frame = mesh_frame,
	.committed = mesh_committed,
	.reload = mesh_reload,
	.status = mesh_status,
};
