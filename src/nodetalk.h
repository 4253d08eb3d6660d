/*
 * nodetalk.h: types and helpers shared by every nodetalkd process and the
 * nodetalk client.  Prototypes are grouped by the file that defines them.
 */
#ifndef NODETALK_H
#define NODETALK_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* glibc's sys/queue.h lacks the _SAFE loops the BSDs have. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define NT_ID_MAX	32	/* node id, bytes */
#define NT_ORIGIN_MAX	(NT_ID_MAX + 8)	/* node id or "A/seed" */
#define NT_FROM_MAX	64	/* sender name, bytes */
#define NT_CID_MAX	64	/* client-chosen message id, bytes */
#define NT_TEXT_MAX	4096	/* default cap on a chat text, bytes */

#define NT_DEFAULT_PORT	9000
#define NT_DEFAULT_CONF	SYSCONFDIR "/nodetalk.conf"

/*
 * A chat message as stored and replicated.  (origin, seq) is its identity;
 * (lamport, origin) its place in the cluster order.  Strings are owned.
 */
struct nt_msg {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	uint64_t	 lamport;
	int64_t		 ts;		/* ms since the epoch, at the origin */
	char		*from;
	char		*text;
	char		*client_id;	/* may be NULL */
	char		*gateway;	/* engine = "nats": the node that took
					   it from its client; else NULL */
};

/*
 * What a node holds: for each origin the highest seq such that every seq
 * from 1 up to it is stored (a node's store is always gap-free).
 */
struct nt_have_ent {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
};
struct nt_have {
	struct nt_have_ent	*v;
	size_t			 n;
};

/* One rate-limited kind of log line (msg.c, ratelimit_pass). */
#define RATELIMIT_MS	10000
#define RATELIMIT_NOTE	64	/* room for ratelimit_pass()'s note */
struct ratelimit {
	int64_t		 last_ms;
	uint64_t	 skipped;
};

/*
 * The largest lamport a node mints or accepts: 2^53 - 1, the largest
 * integer every JSON reader holds exactly.
 */
#define NT_LAMPORT_MAX	9007199254740991ULL

/* xmalloc.c: allocation that never returns NULL (it dies instead). */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* rng.c */
void		 rng_bytes(void *, size_t);

/* msg.c */
struct nt_msg	*msg_new(void);
struct nt_msg	*msg_dup(const struct nt_msg *);
void		 msg_free(struct nt_msg *);
void		 msg_clear(struct nt_msg *);
void		 msg_idstr(const struct nt_msg *, char *, size_t);
uint64_t	 msg_cid_hash(const char *origin, const char *client_id);
int		 msg_cmp_order(const struct nt_msg *, const struct nt_msg *);
int		 origin_is_local_only(const char *);
uint64_t	 have_get(const struct nt_have *, const char *);
void		 have_set(struct nt_have *, const char *, uint64_t);
void		 have_clear(struct nt_have *);
void		 have_copy(struct nt_have *, const struct nt_have *);
int		 have_equal(const struct nt_have *, const struct nt_have *);
int64_t		 now_ms(void);
int64_t		 mono_us(void);
int		 valid_node_id(const char *);
int		 valid_origin(const char *);
int		 msg_check(const struct nt_msg *, size_t, const char **,
		    const char **, const char **);
int		 ratelimit_pass(struct ratelimit *, int64_t, char *, size_t);
int		 utf8_valid(const char *, size_t);
void		 str_escape(const char *, char *, size_t);

#endif /* NODETALK_H */
