/*
 * auth.h: signed hellos between nodes that share a cluster secret.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdint.h>

#define AUTH_HEX_LEN	64		/* hex of an HMAC-SHA256 */
#define AUTH_WINDOW_MS	(5 * 60 * 1000)	/* clock skew tolerated */

void	auth_hello_mac(const char *secret, const char *from, const char *to,
	    int64_t ts, char out[AUTH_HEX_LEN + 1]);
int	auth_hello_check(const char *secret, const char *from, const char *to,
	    int64_t ts, const char *auth, int64_t now, int64_t last_ts,
	    const char **why);

#endif /* AUTH_H */
