/*
 * fuzz_log.c: libFuzzer target for the log record reader.  The input is
 * written as data_dir/messages.log and opened through the store's public
 * store_open(), as a node does at start-up after a crash or a damaged
 * disk.  Nothing may crash, leak or read out of bounds, and what the store
 * then holds must be what its contract says: messages in cluster order,
 * gap-free per origin, each found again by its identity.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodetalk.h"
#include "config.h"
#include "log.h"
#include "store.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	 dir[PATH_MAX];
static char	 path[PATH_MAX + 32];

/* What an open leaves beside the log (a damaged tail set aside) goes too. */
static void
empty_dir(void)
{
	struct dirent	*de;
	DIR		*d;
	char		 p[PATH_MAX + 256];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static void
cleanup(void)
{
	empty_dir();
	rmdir(dir);
}

/* One data_dir per process, on tmpfs when there is one: syncs are free. */
static void
setup(void)
{
	const char	*tmp = getenv("TMPDIR");

	if (access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (tmp == NULL)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/nt-fuzz-log.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		abort();
	}
	snprintf(path, sizeof(path), "%s/messages.log", dir);
	atexit(cleanup);
	/* The store warns about every bad record it cuts. */
	log_setlevel(LOG_LVL_ERROR);
}

static void
check(const struct store *s)
{
	const struct nt_msg	*m, *prev = NULL;
	const struct nt_have	*have = store_have(s);
	size_t			 i, n = store_count(s);
	uint64_t		 total = 0;

	for (i = 0; i < n; i++, prev = m) {
		if ((m = store_at(s, i)) == NULL || m->from == NULL ||
		    m->text == NULL || m->seq == 0 ||
		    m->seq > have_get(have, m->origin) ||
		    store_lookup(s, m->origin, m->seq) != m)
			abort();
		if (prev != NULL && msg_cmp_order(prev, m) >= 0)
			abort();
		if (m->lamport > store_lamport(s))
			abort();
	}
	for (i = 0; i < have->n; i++)
		total += have->v[i].seq;
	if (total != n)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct store	*s;
	char		*cause = NULL;
	int		 fd;

	if (dir[0] == '\0')
		setup();
	empty_dir();
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, data, len) != (ssize_t)len || close(fd) == -1) {
		perror(path);
		abort();
	}
	if ((s = store_open(dir, FSYNC_NONE, &cause)) == NULL) {
		/* Only the file system may refuse; the content never does. */
		fprintf(stderr, "store_open: %s\n", cause);
		abort();
	}
	check(s);
	store_close(s);
	return (0);
}
