/*
 * config.h: nodetalk.conf, parsed with libconfig into a fresh struct
 * nt_config.  A reload parses into a new struct and swaps only when it is
 * clean, so a broken file never half-applies.
 */
#ifndef CONFIG_NT_H
#define CONFIG_NT_H

#include <stdio.h>
#include <stddef.h>

enum fsync_policy {
	FSYNC_NONE = 0,
	FSYNC_BATCH,
	FSYNC_ALWAYS
};

/* What carries messages between nodes (engine.h). */
enum nt_engine {
	ENGINE_MESH = 0,	/* every node dials every other node */
	ENGINE_NATS		/* nodes are gateways to a JetStream stream */
};

/*
 * engine = "nats": the NATS JetStream cluster every gateway shares.  The
 * stream's name is also the origin of every message in it.
 */
struct nt_nats {
	char		**servers;	/* nats://host[:port] or tls://... */
	size_t		  nservers;
	char		 *stream;
	char		 *subject;	/* derived: "nodetalk." stream */
	int		  replicas;
	int		  duplicate_window_ms;
	int		  timeout_ms;	/* a chat's wait for JetStream's ack */
	int		  connect_timeout_ms;
	char		 *token;	/* "" = none, as the next five */
	char		 *user;
	char		 *password;
	char		 *creds;	/* a .creds file: JWT and nkey seed */
	char		 *tls_ca;
	char		 *tls_cert;
	char		 *tls_key;
};

struct nt_node {
	char	*id;
	char	*host;		/* where peers dial it */
	int	 port;		/* resolved: the entry's, else the global one */
	char	*listen;	/* resolved bind address */
	char	*data_dir;	/* resolved */
	int	 seed;		/* runs the Python prototype */
};

struct nt_config {
	char		*path;		/* the file it came from */
	char		*node_id;	/* this node (after -n) */
	struct nt_node	*nodes;
	size_t		 nnodes;
	struct nt_node	*self;		/* points into nodes[] */

	int		 log_level;	/* enum log_level */
	enum fsync_policy fsync;
	int		 fsync_interval_ms;
	int		 max_clients;
	int		 max_message_bytes;	/* cap on a chat text */
	int		 max_frame_bytes;	/* cap on a WebSocket message */
	int		 max_clients_per_address;
	int		 max_client_backlog_bytes;	/* then closed, 1008 */
	int		 max_peer_backlog_bytes;	/* then the link drops */
	int		 http_timeout_ms;	/* to upgrade or finish a request */
	int		 join_timeout_ms;	/* to join, hello or chat */
	int		 ping_interval_ms;	/* silent clients; 0: never */
	int		 peer_ping_interval_ms;	/* silent peer links; 0: never */
	int		 ping_timeout_ms;	/* for an answer to a ping */
	int		 worker_backlog_bytes;	/* master's output to a worker */
	int		 join_history;	/* a join without since: newest N */
	char		*www_dir;	/* "" = PKGDATADIR "/www" */
	char		*log_file;	/* "" = stderr, "syslog", or a path */
	char		*user;		/* "" = do not drop privileges */
	char		*secret;	/* "" = peers are not authenticated */
	enum nt_engine	 engine;
	struct nt_nats	 nats;		/* engine = "nats" only */
};

/*
 * Parse path.  node_id, when not NULL, overrides node_id in the file (-n);
 * port_env, when not NULL, is $NT_PORT and overrides every node's port.
 * On failure returns NULL and sets *errors to one "file:line: message" per
 * line (the caller frees it).
 */
struct nt_config *config_load(const char *path, const char *node_id,
		    const char *port_env, char **errors);
void		 config_free(struct nt_config *);
void		 config_print(FILE *, const struct nt_config *);
struct nt_node	*config_node(const struct nt_config *, const char *id);
const char	*fsync_policy_name(enum fsync_policy);
int		 config_nodes_equal(const struct nt_config *,
		    const struct nt_config *);
const char	*config_engine_name(enum nt_engine);
int		 config_nats_equal(const struct nt_nats *,
		    const struct nt_nats *);
/* Whether a peer (not this node) runs the Python prototype. */
int		 config_has_seed(const struct nt_config *);

#endif /* CONFIG_NT_H */
