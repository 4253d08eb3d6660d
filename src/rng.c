/*
 * rng.c: unpredictable bytes in small pieces, fast: every frame a peer
 * link sends carries a four-byte mask that must be unpredictable (RFC 6455
 * section 10.3), and RAND_bytes() costs a lock, a fork check and a DRBG
 * round per call (and a getpid() system call).  This is ChaCha20's
 * keystream under a key drawn from RAND_bytes(), made 4 KiB at a time,
 * keyed afresh every RNG_REKEY bytes and in a child after fork(), which
 * must not repeat its parent's stream.
 */
#include <sys/types.h>

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "nodetalk.h"
#include "log.h"

#define RNG_CHUNK	4096
#define RNG_REKEY	(1024 * 1024)

static struct {
	EVP_CIPHER_CTX	*ctx;
	unsigned char	 buf[RNG_CHUNK];
	size_t		 left;		/* unused bytes at the end of buf */
	size_t		 made;		/* since the last key */
	int		 keyed;		/* in this process */
	int		 atfork;	/* rng_forked() registered */
} R;

/* In a child: forget the parent's key and what is left of its stream. */
static void
rng_forked(void)
{
	R.keyed = 0;
	R.left = 0;
}

static void
rng_key(void)
{
	unsigned char	 key[32], iv[16];

	if (RAND_bytes(key, sizeof(key)) != 1 ||
	    RAND_bytes(iv, sizeof(iv)) != 1)
		fatalx("RAND_bytes failed");
	if (!R.atfork && pthread_atfork(NULL, NULL, rng_forked) != 0)
		fatalx("pthread_atfork failed");
	R.atfork = 1;
	if (R.ctx == NULL && (R.ctx = EVP_CIPHER_CTX_new()) == NULL)
		fatalx("EVP_CIPHER_CTX_new failed");
	if (EVP_EncryptInit_ex(R.ctx, EVP_chacha20(), NULL, key, iv) != 1)
		fatalx("EVP_EncryptInit_ex(chacha20) failed");
	OPENSSL_cleanse(key, sizeof(key));
	R.made = 0;
	R.keyed = 1;
}

static void
rng_fill(void)
{
	static const unsigned char	 zero[RNG_CHUNK];
	int				 n;

	if (!R.keyed || R.made >= RNG_REKEY)
		rng_key();
	if (EVP_EncryptUpdate(R.ctx, R.buf, &n, zero, sizeof(zero)) != 1 ||
	    n != RNG_CHUNK)
		fatalx("EVP_EncryptUpdate(chacha20) failed");
	R.made += RNG_CHUNK;
	R.left = RNG_CHUNK;
}

void
rng_bytes(void *out, size_t len)
{
	unsigned char	*p = out;
	size_t		 n;

	while (len > 0) {
		if (R.left == 0)
			rng_fill();
		n = len < R.left ? len : R.left;
		memcpy(p, R.buf + RNG_CHUNK - R.left, n);
		R.left -= n;
		p += n;
		len -= n;
	}
}
