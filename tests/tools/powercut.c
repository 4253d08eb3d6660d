/*
 * powercut.c: an LD_PRELOAD shim for the power-loss test (t_powercut.sh).
 *
 * A crash of the machine keeps what the disk had synced and loses what
 * was only written.  This shim tells the test what that is: each time
 * fsync(2) or fdatasync(2) succeeds on a file under $NT_POWERCUT_DIR, it
 * appends "SIZE PATH" to $NT_POWERCUT_LOG, SIZE being the file's size when
 * the call began (what was written later, while it ran, may not be
 * covered).  After
 * killing every process of the node at once, the test truncates each file
 * to the last size recorded for it (0 when it was never synced): the disk
 * as a power cut would leave it.  Built with the tests (make check), never
 * installed.
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
#include <unistd.h>

int	fsync(int);
int	fdatasync(int);

static off_t
size_of(int fd)
{
	struct stat	 st;
	int		 saved = errno;
	off_t		 size = -1;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		size = st.st_size;
	errno = saved;
	return (size);
}

static void
record(int fd, off_t size)
{
	const char	*dir = getenv("NT_POWERCUT_DIR");
	const char	*logp = getenv("NT_POWERCUT_LOG");
	char		 link[64], path[PATH_MAX], line[PATH_MAX + 32];
	ssize_t		 n;
	int		 lfd, len, saved = errno;

	if (dir == NULL || logp == NULL || size < 0)
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) <= 0)
		goto out;
	path[n] = '\0';
	if (strncmp(path, dir, strlen(dir)) != 0)
		goto out;
	len = snprintf(line, sizeof(line), "%lld %s\n", (long long)size, path);
	if ((lfd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) == -1)
		goto out;
	/* One write: lines from several processes never interleave. */
	if (write(lfd, line, len) != len)
		abort();
	close(lfd);
out:
	errno = saved;
}

int
fsync(int fd)
{
	static int	(*real)(int);
	off_t		 size = size_of(fd);
	int		 rv;

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if ((rv = real(fd)) == 0)
		record(fd, size);
	return (rv);
}

int
fdatasync(int fd)
{
	static int	(*real)(int);
	off_t		 size = size_of(fd);
	int		 rv;

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if ((rv = real(fd)) == 0)
		record(fd, size);
	return (rv);
}
