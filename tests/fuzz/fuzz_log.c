/*
 * fuzz_log.c: libFuzzer target for the log record reader.  The input is
 * written as data_dir/messages.log and opened through the store's public
 * store_open(), as a node does at start-up after a crash or a damaged
 * disk.  Nothing may crash, leak or read out of bounds, and what the store
 * then holds must be what its contract says: every message readable,
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

/*
 * Every message the store holds, walked in the cluster order (a merge of
 * the origins, each in seq order): readable, gap-free per origin, found
 * again by its identity, as many as the have vector says.  (Within an
 * origin the clocks of a fuzzed log may go back, which no node writes;
 * the merge takes them as they are, so the order itself is not checked.)
 */
static void
check(struct store *s)
{
	struct store_cursor	 c;
	const struct nt_msg	*m;
	struct nt_msg		*dup;
	struct nt_have		 seen = { NULL, 0 };
	const struct nt_have	*have = store_have(s);
	uint64_t		 n = 0, total = 0;
	size_t			 i;

	store_cursor_init(&c, NULL, 0);
	while ((m = store_cursor_next(s, &c)) != NULL) {
		if (m->from == NULL || m->text == NULL ||
		    m->seq != have_get(&seen, m->origin) + 1 ||
		    m->seq > have_get(have, m->origin) ||
		    m->lamport > store_lamport(s))
			abort();
		have_set(&seen, m->origin, m->seq);
		dup = msg_dup(m);
		if ((m = store_lookup(s, dup->origin, dup->seq)) == NULL ||
		    strcmp(m->text, dup->text) != 0 ||
		    m->lamport != dup->lamport)
			abort();
		msg_free(dup);
		n++;
	}
	store_cursor_clear(&c);
	have_clear(&seen);
	for (i = 0; i < have->n; i++)
		total += have->v[i].seq;
	if (total != n || n != store_count(s))
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
