/*
 * holdsync.c: an LD_PRELOAD shim for t_groupcommit.sh: a disk whose sync
 * lasts as long as the test wants.  While the file $NT_HOLDSYNC_GATE
 * exists, an fdatasync(2) of a file under $NT_HOLDSYNC_DIR does not
 * begin: it creates $NT_HOLDSYNC_GATE.held, which the test waits for, and
 * waits (30 s at most) for the gate to go.  Other calls and files are left
 * alone.  Built with the tests (make check), never installed.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/types.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HOLD_MAX_MS	30000
#define HOLD_POLL_MS	5

int	fdatasync(int);

/* Whether fd is a file under $NT_HOLDSYNC_DIR. */
static int
under_dir(int fd)
{
	const char	*dir = getenv("NT_HOLDSYNC_DIR");
	char		 link[64], path[PATH_MAX];
	ssize_t		 n;

	if (dir == NULL)
		return (0);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		return (0);
	path[n] = '\0';
	return (strncmp(path, dir, strlen(dir)) == 0);
}

static void
hold(int fd)
{
	const char	*gate = getenv("NT_HOLDSYNC_GATE");
	struct timespec	 ts = { 0, HOLD_POLL_MS * 1000000L };
	char		 held[PATH_MAX];
	int		 hfd, waited, saved = errno;

	if (gate == NULL || access(gate, F_OK) == -1 || !under_dir(fd))
		goto out;
	snprintf(held, sizeof(held), "%s.held", gate);
	if ((hfd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) != -1)
		close(hfd);
	for (waited = 0; waited < HOLD_MAX_MS && access(gate, F_OK) == 0;
	    waited += HOLD_POLL_MS)
		nanosleep(&ts, NULL);
out:
	errno = saved;
}

int
fdatasync(int fd)
{
	static int	(*real)(int);

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	hold(fd);
	return (real(fd));
}
