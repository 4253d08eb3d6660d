/*
 * bench_proc.c: what the node processes on this machine cost, from /proc.
 * A node is found by the socket it listens on (/proc/net/tcp gives the
 * socket's inode, /proc/PID/fd who holds it), never by a process name:
 * another user's or another test's nodetalkd must not be measured.  A
 * node's cost is its master's and every live descendant's (the workers,
 * and whatever threads or helpers they grow).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodetalk.h"
#include "bench.h"

#define PROC_MAX_INODES	16

struct proc_ent {
	pid_t		 pid;
	pid_t		 ppid;
	uint64_t	 start;
	uint64_t	 ticks;
};

struct proc_list {
	struct proc_ent	*v;
	size_t		 n;
};

/* pid, ppid, start time and utime + stime from /proc/PID/stat. */
static int
proc_stat(pid_t pid, struct proc_ent *e)
{
	char			 path[64], buf[1024], *p;
	FILE			*f;
	unsigned long long	 ut, st, start;
	int			 ppid;
	size_t			 n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold blanks and parentheses. */
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu %*d %*d %*d %*d %*d %*d %llu", &ppid, &ut, &st, &start) != 4)
		return (-1);
	e->pid = pid;
	e->ppid = ppid;
	e->ticks = ut + st;
	e->start = start;
	return (0);
}

static void
proc_list_all(struct proc_list *l)
{
	struct dirent	*d;
	DIR		*dir;
	char		*end;
	long		 pid;

	l->v = NULL;
	l->n = 0;
	if ((dir = opendir("/proc")) == NULL)
		return;
	while ((d = readdir(dir)) != NULL) {
		pid = strtol(d->d_name, &end, 10);
		if (*end != '\0' || pid <= 0)
			continue;
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		if (proc_stat((pid_t)pid, &l->v[l->n]) == 0)
			l->n++;
	}
	closedir(dir);
}

static int
proc_in(const pid_t *set, size_t n, pid_t pid)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (set[i] == pid)
			return (1);
	return (0);
}

/* The roots and all their descendants (caller frees *out). */
static size_t
proc_tree(const struct proc_list *l, const pid_t *roots, size_t nroots,
    pid_t **out)
{
	pid_t	*set = xreallocarray(NULL, nroots + 1, sizeof(pid_t));
	size_t	 n = 0, i, grew = 1;

	for (i = 0; i < nroots; i++)
		if (roots[i] > 0 && !proc_in(set, n, roots[i]))
			set[n++] = roots[i];
	while (grew) {
		grew = 0;
		for (i = 0; i < l->n; i++) {
			if (proc_in(set, n, l->v[i].pid) ||
			    !proc_in(set, n, l->v[i].ppid))
				continue;
			set = xreallocarray(set, n + 1, sizeof(pid_t));
			set[n++] = l->v[i].pid;
			grew = 1;
		}
	}
	*out = set;
	return (n);
}

/* CPU of the masters and their descendants, now. */
int
bench_proc_cpu(const pid_t *masters, size_t nmasters, struct bench_cpu *c)
{
	struct proc_list	 l;
	pid_t			*set;
	size_t			 n, i, j;

	proc_list_all(&l);
	n = proc_tree(&l, masters, nmasters, &set);
	c->v = xcalloc(n + 1, sizeof(*c->v));
	c->n = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < l.n; j++)
			if (l.v[j].pid == set[i]) {
				c->v[c->n].pid = l.v[j].pid;
				c->v[c->n].start = l.v[j].start;
				c->v[c->n].ticks = l.v[j].ticks;
				c->n++;
			}
	free(set);
	free(l.v);
	return (c->n > 0 ? 0 : -1);
}

void
bench_cpu_clear(struct bench_cpu *c)
{
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

/*
 * Seconds of CPU between two snapshots.  A process that is new in the
 * second (a restarted worker) counts from its start; one that is gone is
 * lost, which only happens when something crashed.
 */
double
bench_proc_cpu_secs(const struct bench_cpu *a, const struct bench_cpu *b)
{
	uint64_t	ticks = 0, base;
	size_t		i, j;

	for (i = 0; i < b->n; i++) {
		base = 0;
		for (j = 0; j < a->n; j++)
			if (a->v[j].pid == b->v[i].pid &&
			    a->v[j].start == b->v[i].start)
				base = a->v[j].ticks;
		if (b->v[i].ticks >= base)
			ticks += b->v[i].ticks - base;
	}
	return ((double)ticks / (double)sysconf(_SC_CLK_TCK));
}

/* Inodes of listening TCP sockets on addr:port (or the wildcard). */
static size_t
proc_listeners(const char *file, const struct sockaddr_in *sin, int port,
    unsigned long *inodes, size_t max)
{
	char		 line[512], local[64];
	unsigned int	 lport, state;
	unsigned long	 inode;
	size_t		 n = 0;
	FILE		*f;
	char		*colon;
	int		 v6 = strstr(file, "tcp6") != NULL;
	char		 want[40];

	if ((f = fopen(file, "r")) == NULL)
		return (0);
	/* The kernel prints the address as the 32-bit words it holds. */
	if (v6)
		snprintf(want, sizeof(want), "0000000000000000FFFF0000%08X",
		    (unsigned int)sin->sin_addr.s_addr);
	else
		snprintf(want, sizeof(want), "%08X",
		    (unsigned int)sin->sin_addr.s_addr);
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, " %*d: %63s %*s %x %*s %*s %*s %*d %*d %lu",
		    local, &state, &inode) != 3 || state != 0x0A ||
		    (colon = strchr(local, ':')) == NULL)
			continue;
		*colon = '\0';
		lport = (unsigned int)strtoul(colon + 1, NULL, 16);
		if ((int)lport != port)
			continue;
		if (strcmp(local, want) == 0 || strspn(local, "0") ==
		    strlen(local))
			inodes[n++] = inode;
	}
	fclose(f);
	return (n);
}

/* Does pid hold a socket with one of these inodes? */
static int
proc_holds(pid_t pid, const unsigned long *inodes, size_t n)
{
	char		 path[300], link[PATH_MAX], want[64];
	struct dirent	*d;
	DIR		*dir;
	ssize_t		 len;
	size_t		 i;
	int		 found = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return (0);
	while (!found && (d = readdir(dir)) != NULL) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid,
		    d->d_name);
		if ((len = readlink(path, link, sizeof(link) - 1)) <= 0)
			continue;
		link[len] = '\0';
		for (i = 0; i < n && !found; i++) {
			snprintf(want, sizeof(want), "socket:[%lu]", inodes[i]);
			found = strcmp(link, want) == 0;
		}
	}
	closedir(dir);
	return (found);
}

static int
proc_exe(pid_t pid, char *buf, size_t len)
{
	char	path[64];
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if ((n = readlink(path, buf, len - 1)) <= 0)
		return (-1);
	buf[n] = '\0';
	return (0);
}

/* Up from pid while the parent runs the same program: the master. */
static pid_t
proc_top(pid_t pid)
{
	char	exe[PATH_MAX], pexe[PATH_MAX];
	pid_t	pp;

	if (proc_exe(pid, exe, sizeof(exe)) == -1)
		return (pid);
	while ((pp = bench_proc_ppid(pid)) > 1 &&
	    proc_exe(pp, pexe, sizeof(pexe)) == 0 && strcmp(exe, pexe) == 0)
		pid = pp;
	return (pid);
}

/* The master of the node listening on sin:port here; 0 if none is seen. */
pid_t
bench_proc_master(const struct sockaddr_in *sin, int port)
{
	unsigned long	 inodes[PROC_MAX_INODES];
	struct proc_list l;
	size_t		 n, i;
	pid_t		 found = 0;

	n = proc_listeners("/proc/net/tcp", sin, port, inodes,
	    PROC_MAX_INODES);
	n += proc_listeners("/proc/net/tcp6", sin, port, inodes + n,
	    PROC_MAX_INODES - n);
	if (n == 0)
		return (0);
	proc_list_all(&l);
	for (i = 0; i < l.n && found == 0; i++)
		if (proc_holds(l.v[i].pid, inodes, n))
			found = proc_top(l.v[i].pid);
	free(l.v);
	return (found);
}

pid_t
bench_proc_ppid(pid_t pid)
{
	struct proc_ent	e;

	if (proc_stat(pid, &e) == -1)
		return (0);
	return (e.ppid);
}

/* VmRSS and RssAnon of one process. */
int
bench_proc_mem(pid_t pid, struct bench_mem *m)
{
	char			 path[64], line[256];
	unsigned long long	 kb;
	FILE			*f;
	int			 got = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	m->rss = m->anon = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
			m->rss = kb * 1024;
			got++;
		} else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			m->anon = kb * 1024;
	}
	fclose(f);
	return (got ? 0 : -1);
}

/* The same, summed over a master and its descendants. */
int
bench_proc_tree_mem(pid_t master, struct bench_mem *m)
{
	struct proc_list	 l;
	struct bench_mem	 one;
	pid_t			*set;
	size_t			 n, i;

	proc_list_all(&l);
	n = proc_tree(&l, &master, 1, &set);
	m->rss = m->anon = 0;
	for (i = 0; i < n; i++)
		if (bench_proc_mem(set[i], &one) == 0) {
			m->rss += one.rss;
			m->anon += one.anon;
		}
	free(set);
	free(l.v);
	return (n > 0 ? 0 : -1);
}

double
bench_proc_self_cpu(void)
{
	struct rusage	ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return (0);
	return ((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* What the numbers were measured on: cores, CPU model, kernel. */
void
bench_proc_machine(int *nproc, char *cpu, size_t cpulen, char *kernel,
    size_t klen)
{
	struct utsname	 u;
	char		 line[512], *p;
	FILE		*f;

	*nproc = (int)sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(cpu, cpulen, "unknown");
	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "model name", 10) != 0 ||
			    (p = strchr(line, ':')) == NULL)
				continue;
			for (p++; *p == ' ' || *p == '\t'; p++)
				;
			p[strcspn(p, "\n")] = '\0';
			snprintf(cpu, cpulen, "%s", p);
			break;
		}
		fclose(f);
	}
	if (uname(&u) == 0)
		snprintf(kernel, klen, "%s %s %s", u.sysname, u.release,
		    u.machine);
	else
		snprintf(kernel, klen, "unknown");
}
