/*
 * wire.h: the JSON frames on the WebSocket (DESIGN section 5), parsed and
 * built with cJSON.  Parsing validates everything a client or peer can get
 * wrong, so the workers only ever see well-formed requests.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include "nodetalk.h"
#include "json.h"

enum wire_type {
	WIRE_CHAT = 1,		/* client chat, or replicated when .replicated */
	WIRE_JOIN,
	WIRE_HELLO,
	WIRE_SYNC,
	WIRE_ACK,
	WIRE_ERROR,
	WIRE_JOINED,
	WIRE_HISTORY,		/* a page of older history, before msg */
	WIRE_HISTORY_END
};

struct wire_in {
	enum wire_type	 type;
	int		 replicated;
	struct nt_msg	 msg;		/* chat: from, text, client_id; when
					   replicated also origin/seq/...;
					   ack: the stored identity */
	int		 has_identity;	/* origin and seq were present */
	uint64_t	 after;		/* client chat: highest lamport it saw */
	char		*from;		/* join/hello/sync: who */
	char		*to;		/* hello */
	char		*auth;		/* hello: HMAC, with a cluster secret */
	uint64_t	 hello_ts;	/* hello: ms, signed with auth */
	struct nt_have	 have;		/* sync: have; join: since */
	int		 has_since;
	int		 want_cluster;	/* join: send "cluster" frames */
	char		*code;		/* error */
	char		*message;	/* error */
	int		 recovered;	/* joined */
	uint64_t	 count;		/* joined, history_end */
	char		*node;		/* joined */
	int		 older;		/* joined, history_end */
	int		 has_before;	/* history: msg.origin, msg.seq */
	uint64_t	 limit;		/* history: 0 when not given */
};

/*
 * What a receiver accepts: max_text caps a chat's text (0: no cap; the
 * ws worker checks each path's limit itself), max_origins the keys of a
 * `since` or `have` object (0: no cap).
 */
struct wire_limits {
	size_t		 max_text;
	size_t		 max_origins;
};

#define WIRE_ORIGIN_SLACK	8
size_t	 wire_origin_cap(size_t nnodes);

/*
 * Parse one text frame; lim may be NULL (no limits).  Returns 0, or -1
 * with *code set to a static error code ("bad_json", "bad_type",
 * "missing_field", "bad_field", "too_long") and *why (caller frees) to a
 * sentence for the error frame.
 */
int	 wire_parse(const char *, size_t, const struct wire_limits *,
	    struct wire_in *, const char **code, char **why);
void	 wire_in_clear(struct wire_in *);

/* Builders: a fresh JSON string (caller frees). */
char	*wire_chat(const struct nt_msg *, int replicated);
char	*wire_client_chat(const char *from, const char *text,
	    const char *client_id, uint64_t after);
char	*wire_ack(const struct nt_msg *);
/* The same into a buffer the caller keeps (JSON_OUT_INIT at first). */
void	 wire_ack_into(struct json_out *, const struct nt_msg *);
/*
 * A stored message's chat frame in two steps: the body, shared by clients
 * and peers, then the end, for a client (0) or a peer (1).
 */
void	 wire_chat_body(struct json_out *, const struct nt_msg *);
void	 wire_chat_end(struct json_out *, int replicated);
char	*wire_error(const char *code, const char *message);
char	*wire_hello(const char *from, const char *to, int64_t ts,
	    const char *auth);
char	*wire_sync(const char *from, const struct nt_have *);
char	*wire_join(const char *from, const struct nt_have *since);
char	*wire_joined(const char *node, uint64_t count, int recovered,
	    int older);
char	*wire_history(const struct nt_msg *before, uint64_t limit);
char	*wire_history_end(uint64_t count, int older);

#endif /* WIRE_H */
