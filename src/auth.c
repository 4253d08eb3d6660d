/*
 * auth.c: a peer proves it knows the cluster secret.  Its hello carries
 * ts (ms) and auth = hex HMAC-SHA256(secret, "nodetalk-hello\n" from "\n"
 * to "\n" ts).  The receiver checks the MAC, that the hello is for it, and
 * that ts is recent and newer than the last hello it took from that peer,
 * so a captured hello cannot be replayed later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "nodetalk.h"
#include "auth.h"

void
auth_hello_mac(const char *secret, const char *from, const char *to,
    int64_t ts, char out[AUTH_HEX_LEN + 1])
{
	unsigned char	 mac[EVP_MAX_MD_SIZE];
	unsigned int	 len = 0, i;
	char		*data;
	int		 n;

	n = xasprintf(&data, "nodetalk-hello\n%s\n%s\n%lld", from, to,
	    (long long)ts);
	HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)data, (size_t)n, mac, &len);
	free(data);
	for (i = 0; i < len && i < AUTH_HEX_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[2 * i] = '\0';
}

/* 0 when the hello is good; else -1 and *why. */
int
auth_hello_check(const char *secret, const char *from, const char *to,
    int64_t ts, const char *auth, int64_t now, int64_t last_ts,
    const char **why)
{
	char	 want[AUTH_HEX_LEN + 1];

	if (auth == NULL || ts == 0) {
		*why = "hello is not signed";
		return (-1);
	}
	auth_hello_mac(secret, from, to, ts, want);
	if (strlen(auth) != AUTH_HEX_LEN ||
	    CRYPTO_memcmp(want, auth, AUTH_HEX_LEN) != 0) {
		*why = "bad signature";
		return (-1);
	}
	if (ts < now - AUTH_WINDOW_MS || ts > now + AUTH_WINDOW_MS) {
		*why = "hello too old or from the future (check the clocks)";
		return (-1);
	}
	if (ts <= last_ts) {
		*why = "hello replayed";
		return (-1);
	}
	return (0);
}
