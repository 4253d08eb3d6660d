/*
 * bench.c: nodetalk-bench, in the spirit of redis-benchmark and h2load:
 * the command line, what every measurement shares (the nodes, their
 * processes, source addresses, waiting on the loop), and main().
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "nodetalk.h"
#include "log.h"
#include "bench.h"

#define MAX_SOURCES	65536

/* Options that only some commands take: a bit each. */
enum {
	O_COUNT = 1 << 0, O_CONNS = 1 << 1, O_WINDOW = 1 << 2,
	O_SIZE = 1 << 3, O_RECV = 1 << 4, O_RATE = 1 << 5, O_DUR = 1 << 6,
	O_WARMUP = 1 << 7, O_REPEAT = 1 << 8, O_RETRY = 1 << 9,
	O_RESTART = 1 << 10, O_KILLWS = 1 << 11, O_EXISTING = 1 << 12,
	O_NOIDS = 1 << 13
};

enum {
	OPT_NOIDS = 256, OPT_WARMUP, OPT_REPEAT, OPT_RETRY, OPT_RESTART,
	OPT_KILLWS, OPT_EXISTING
};

static const struct bench_cmd {
	const char	*name;
	int		 (*run)(struct bench *);
	int		 allowed;
	double		 timeout;	/* default, seconds */
} cmds[] = {
	{ "throughput", bench_throughput,
	    O_COUNT | O_CONNS | O_WINDOW | O_SIZE | O_RECV | O_NOIDS, 120 },
	{ "latency", bench_latency,
	    O_RATE | O_DUR | O_WARMUP | O_SIZE | O_CONNS | O_NOIDS, 30 },
	{ "connections", bench_connections,
	    O_COUNT | O_REPEAT | O_RETRY | O_RESTART | O_KILLWS, 300 },
	{ "history", bench_history,
	    O_COUNT | O_CONNS | O_WINDOW | O_SIZE | O_EXISTING | O_REPEAT |
	    O_RESTART | O_NOIDS, 600 }
};

static const struct option longopts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "port", required_argument, NULL, 'p' },
	{ "pid", required_argument, NULL, 'P' },
	{ "bind", required_argument, NULL, 'b' },
	{ "timeout", required_argument, NULL, 't' },
	{ "count", required_argument, NULL, 'n' },
	{ "connections", required_argument, NULL, 'c' },
	{ "window", required_argument, NULL, 'w' },
	{ "size", required_argument, NULL, 's' },
	{ "receivers", required_argument, NULL, 'R' },
	{ "rate", required_argument, NULL, 'r' },
	{ "duration", required_argument, NULL, 'd' },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "retry-ms", required_argument, NULL, OPT_RETRY },
	{ "restart-cmd", required_argument, NULL, OPT_RESTART },
	{ "kill-ws", required_argument, NULL, OPT_KILLWS },
	{ "existing", no_argument, NULL, OPT_EXISTING },
	{ "no-ids", no_argument, NULL, OPT_NOIDS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

static uint64_t	 bench_rng = 0x2545f4914f6cdd1dULL;

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	fprintf(f,
	    "usage: nodetalk-bench COMMAND [options] NODE...\n"
	    "       nodetalk-bench -h | -V\n"
	    "\n"
	    "NODE is HOST[:PORT]; chats go into the first node given.\n"
	    "Commands:\n"
	    "  throughput   -n chats over -c connections, -w unacked each;"
	    " time until\n"
	    "               clients joined on every node hold all of them\n"
	    "  latency      -r chats/s for -d seconds into the first node;"
	    " delay until\n"
	    "               each node pushes them, and until the ack\n"
	    "  connections  -n clients join the first node at once; memory"
	    " per client,\n"
	    "               fan-out of a chat to all, a reconnect storm\n"
	    "  history      -n stored messages: join cost, memory per"
	    " message, restart\n"
	    "Options:\n"
	    "  -j, --json            the results as one JSON object\n"
	    "  -p, --port PORT       port of nodes given without one"
	    " (default $NT_PORT,\n"
	    "                        else %d)\n"
	    "  -P, --pid PID         master pid of each node, in order"
	    " (default: the\n"
	    "                        process listening on the node's"
	    " address)\n"
	    "  -b, --bind ADDR[+N]   source addresses of the connections"
	    " (N more after\n"
	    "                        ADDR; repeatable)\n"
	    "  -t, --timeout SECS    give up after this long\n"
	    "  -n, --count N         chats, clients or stored messages\n"
	    "  -c, --connections K   sending connections\n"
	    "  -w, --window W        unacknowledged chats per connection\n"
	    "  -s, --size BYTES      text of each chat\n"
	    "  -R, --receivers N     joined clients per node (throughput)\n"
	    "  -r, --rate R          chats per second (latency)\n"
	    "  -d, --duration SECS   how long to send (latency)\n"
	    "      --warmup SECS     first seconds not counted (latency)\n"
	    "      --repeat N        fan-outs (connections), joins"
	    " (history)\n"
	    "      --retry-ms MS     reconnect delay (connections)\n"
	    "      --restart-cmd CMD restart the first node with /bin/sh -c"
	    " CMD\n"
	    "      --kill-ws SIG     send SIG to the first node's ws worker"
	    " (connections)\n"
	    "      --existing        measure the messages already stored"
	    " (history)\n"
	    "      --no-ids          send chats without a client id\n"
	    "  -h, --help            this help\n"
	    "  -V, --version         the version\n"
	    "Exit status: 0 measured, 1 the run failed or lost messages,"
	    " 2 usage.\n", NT_DEFAULT_PORT);
	exit(status);
}

static void
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("nodetalk-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'nodetalk-bench --help' for more information.\n",
	    stderr);
	exit(BENCH_EXIT_USAGE);
}

int64_t
bench_now_us(void)
{
	return (mono_us());
}

/* xorshift64*: tags, jitter and masks need speed, not secrecy. */
uint64_t
bench_random(void)
{
	bench_rng ^= bench_rng >> 12;
	bench_rng ^= bench_rng << 25;
	bench_rng ^= bench_rng >> 27;
	return (bench_rng * 0x2545f4914f6cdd1dULL);
}

static void
bench_seed(void)
{
	uint64_t	seed = 0;

	if (getentropy(&seed, sizeof(seed)) == -1 || seed == 0)
		seed = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
	bench_rng ^= seed;
	bench_conn_mask_seed(bench_random());
}

static void
bench_vmsg(struct bench *b, const char *fmt, va_list ap)
{
	char	msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fprintf(stderr, "nodetalk-bench: %s\n", msg);
	if (b->report != NULL)
		bench_report_note(b->report, msg);
}

/* Something went wrong: say it, keep it for the report, fail the run. */
void
bench_fail(struct bench *b, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	bench_vmsg(b, fmt, ap);
	va_end(ap);
	b->failed = 1;
}

/* Worth knowing, not a failure (a figure that could not be measured). */
void
bench_note(struct bench *b, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	bench_vmsg(b, fmt, ap);
	va_end(ap);
}

/* An error frame from a node: counted; the first is told. */
void
bench_error_frame(struct bench *b, const char *p, size_t len)
{
	if (b->errors++ == 0)
		bench_fail(b, "a node answered: %.*s", (int)(len > 300 ? 300 :
		    len), p);
}

/* The source address of connection i, or NULL for the kernel's choice. */
const struct sockaddr_in *
bench_src(struct bench *b, size_t i)
{
	if (b->o.nsrc == 0)
		return (NULL);
	return (&b->o.src[i % b->o.nsrc]);
}

/* Raise the open file limit to n: 0, or -1 with *cause. */
int
bench_nofile(size_t n, char **cause)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		xasprintf(cause, "getrlimit: %s", strerror(errno));
		return (-1);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= n)
		return (0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n) {
		xasprintf(cause, "needs %zu open files, the hard limit is %llu "
		    "(ulimit -Hn)", n, (unsigned long long)rl.rlim_max);
		return (-1);
	}
	rl.rlim_cur = n;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		xasprintf(cause, "setrlimit: %s", strerror(errno));
		return (-1);
	}
	return (0);
}

static void
wait_expired_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/*
 * Run the loop until done(arg) holds or secs passed: 0, or -1 on time out.
 * A negative secs waits for done only.
 */
int
bench_wait(struct bench *b, int (*done)(void *), void *arg, double secs)
{
	struct timeval	 tv;
	struct event	*t = NULL;
	int		 expired = 0;

	if (secs >= 0) {
		tv.tv_sec = (time_t)secs;
		tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
		if ((t = evtimer_new(b->base, wait_expired_cb, &expired)) ==
		    NULL)
			fatalx("evtimer_new failed");
		evtimer_add(t, &tv);
	}
	while (!done(arg) && !expired)
		if (event_base_loop(b->base, EVLOOP_ONCE) == -1)
			break;
	if (t != NULL)
		event_free(t);
	return (done(arg) ? 0 : -1);
}

static int
never(void *arg)
{
	return (0);
}

/* Let the loop run for secs (connections settle, late duplicates show). */
void
bench_loop_for(struct bench *b, double secs)
{
	(void)bench_wait(b, never, NULL, secs);
}

/* Seconds left before the run's deadline (started at start_us). */
double
bench_left(struct bench *b, int64_t start_us)
{
	double	left = b->o.timeout - (bench_now_us() - start_us) / 1e6;

	return (left > 0 ? left : 0);
}

/* The master of every node: --pid, else found by its listening socket. */
void
bench_find_pids(struct bench *b)
{
	struct bench_node	*n;
	size_t			 i;

	for (i = 0; i < b->o.nnodes; i++) {
		n = &b->o.nodes[i];
		if (i < b->o.npids)
			n->master = b->o.pids[i];
		else
			n->master = bench_proc_master(&n->sin, n->port);
		if (n->master == 0)
			bench_note(b, "no process here listens on %s: its CPU "
			    "and memory are not measured (give --pid)",
			    n->name);
		else if (kill(n->master, 0) == -1 && errno == ESRCH) {
			bench_note(b, "no process %d for %s", (int)n->master,
			    n->name);
			n->master = 0;
		}
	}
}

/* How many nodes' masters were found. */
size_t
bench_masters_found(struct bench *b)
{
	size_t	i, n = 0;

	for (i = 0; i < b->o.nnodes; i++)
		if (b->o.nodes[i].master != 0)
			n++;
	return (n);
}

/* Run cmd with /bin/sh -c; its pid, or -1. */
pid_t
bench_spawn(const char *cmd)
{
	pid_t	pid;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return (pid);
}

/* How a restart command ended: 0 for exit 0, else -1 and why. */
int
bench_cmd_status(int status, char *why, size_t len)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return (0);
	if (WIFEXITED(status))
		snprintf(why, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(why, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, len, "ended with wait status %d", status);
	return (-1);
}

/*
 * Command-line parsing.
 */

static double
parse_num(const char *opt, const char *s, double min, double max)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(d >= min && d <= max))
		usage_error("bad %s: %s (from %g to %g)", opt, s, min, max);
	return (d);
}

static int
parse_int(const char *opt, const char *s, long min, long max)
{
	double	d = parse_num(opt, s, (double)min, (double)max);

	if (d != floor(d))
		usage_error("bad %s: %s (a whole number)", opt, s);
	return ((int)d);
}

static int
parse_signal(const char *s)
{
	static const struct {
		const char	*name;
		int		 sig;
	} sigs[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
		{ "KILL", SIGKILL }, { "TERM", SIGTERM }, { "USR1", SIGUSR1 },
		{ "USR2", SIGUSR2 }, { "ABRT", SIGABRT }, { "SEGV", SIGSEGV }
	};
	size_t	i;

	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcasecmp(s, sigs[i].name) == 0)
			return (sigs[i].sig);
	return (parse_int("--kill-ws", s, 1, 64));
}

/* ADDR or ADDR+N: N more consecutive addresses after ADDR. */
static void
parse_bind(struct bench_opts *o, const char *arg)
{
	char		 addr[64], *plus;
	struct in_addr	 a;
	uint32_t	 h;
	long		 i, more = 0;

	snprintf(addr, sizeof(addr), "%s", arg);
	if ((plus = strchr(addr, '+')) != NULL) {
		*plus++ = '\0';
		more = parse_int("--bind", plus, 0, MAX_SOURCES - 1);
	}
	if (inet_pton(AF_INET, addr, &a) != 1)
		usage_error("bad --bind: %s (an IPv4 address, or ADDR+N)", arg);
	if (o->nsrc + more + 1 > MAX_SOURCES)
		usage_error("too many --bind addresses (at most %d)",
		    MAX_SOURCES);
	o->src = xreallocarray(o->src, o->nsrc + more + 1, sizeof(*o->src));
	h = ntohl(a.s_addr);
	for (i = 0; i <= more; i++) {
		memset(&o->src[o->nsrc], 0, sizeof(o->src[0]));
		o->src[o->nsrc].sin_family = AF_INET;
		o->src[o->nsrc].sin_addr.s_addr = htonl(h + (uint32_t)i);
		o->nsrc++;
	}
}

static void
parse_pid(struct bench_opts *o, const char *arg)
{
	o->pids = xreallocarray(o->pids, o->npids + 1, sizeof(*o->pids));
	o->pids[o->npids++] = parse_int("--pid", arg, 1, 1 << 30);
}

/* HOST[:PORT], resolved to one IPv4 address now. */
static void
parse_node(struct bench_node *n, const char *arg, int port)
{
	struct addrinfo	 hints, *res;
	const char	*colon = strrchr(arg, ':');
	char		 what[300];
	int		 err;

	if (*arg == '[' || (colon != NULL && strchr(arg, ':') != colon))
		usage_error("%s: only IPv4 nodes are supported", arg);
	if (colon != NULL) {
		snprintf(what, sizeof(what), "port of %s", arg);
		port = parse_int(what, colon + 1, 1, 65535);
		n->host = xstrndup(arg, colon - arg);
	} else
		n->host = xstrdup(arg);
	if (*n->host == '\0')
		usage_error("%s: no host", arg);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if ((err = getaddrinfo(n->host, NULL, &hints, &res)) != 0)
		usage_error("%s: %s", n->host, gai_strerror(err));
	memcpy(&n->sin, res->ai_addr, sizeof(n->sin));
	freeaddrinfo(res);
	n->port = port;
	n->sin.sin_port = htons(port);
	xasprintf(&n->name, "%s:%d", n->host, port);
}

static int
default_port(void)
{
	const char	*env = getenv("NT_PORT");

	if (env == NULL || *env == '\0')
		return (NT_DEFAULT_PORT);
	return (parse_int("NT_PORT in the environment", env, 1, 65535));
}

/* One option; returns its bit in the "only some commands" mask. */
static int
parse_opt(struct bench_opts *o, int ch, int *port)
{
	switch (ch) {
	case 'j': o->json = 1; return (0);
	case 'p': *port = parse_int("--port", optarg, 1, 65535); return (0);
	case 'P': parse_pid(o, optarg); return (0);
	case 'b': parse_bind(o, optarg); return (0);
	case 't': o->timeout = parse_num("--timeout", optarg, 0.001, 86400);
		return (0);
	case 'n': o->count = (uint64_t)parse_num("--count", optarg, 1, 1e9);
		return (O_COUNT);
	case 'c': o->conns = parse_int("--connections", optarg, 1, 10000);
		return (O_CONNS);
	case 'w': o->window = parse_int("--window", optarg, 1, 100000);
		return (O_WINDOW);
	case 's': o->size = parse_int("--size", optarg, 1, 65536);
		return (O_SIZE);
	case 'R': o->receivers = parse_int("--receivers", optarg, 1, 1000);
		return (O_RECV);
	case 'r': o->rate = parse_num("--rate", optarg, 0.1, 1e7);
		return (O_RATE);
	case 'd': o->duration = parse_num("--duration", optarg, 0.01, 86400);
		return (O_DUR);
	case OPT_WARMUP: o->warmup = parse_num("--warmup", optarg, 0, 3600);
		return (O_WARMUP);
	case OPT_REPEAT: o->repeat = parse_int("--repeat", optarg, 1, 100000);
		return (O_REPEAT);
	case OPT_RETRY: o->retry_ms = parse_int("--retry-ms", optarg, 1,
		    60000);
		return (O_RETRY);
	case OPT_RESTART: o->restart_cmd = optarg; return (O_RESTART);
	case OPT_KILLWS: o->kill_ws = parse_signal(optarg); return (O_KILLWS);
	case OPT_EXISTING: o->existing = 1; return (O_EXISTING);
	case OPT_NOIDS: o->no_ids = 1; return (O_NOIDS);
	}
	return (-1);
}

static const char *
opt_name(int bit)
{
	static const char *const names[] = { "-n", "-c", "-w", "-s", "-R",
	    "-r", "-d", "--warmup", "--repeat", "--retry-ms",
	    "--restart-cmd", "--kill-ws", "--existing", "--no-ids" };
	size_t	i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (bit == 1 << i)
			return (names[i]);
	return ("?");
}

static const struct bench_cmd *
parse_cmd(const char *name, int given)
{
	size_t	i;
	int	bit;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmds[i].name, name) != 0)
			continue;
		for (bit = 1; bit <= O_NOIDS; bit <<= 1)
			if ((given & bit) && !(cmds[i].allowed & bit))
				usage_error("%s does not apply to %s",
				    opt_name(bit), name);
		return (&cmds[i]);
	}
	usage_error("unknown command: %s", name);
	return (NULL);
}

static const struct bench_cmd *
parse_args(struct bench_opts *o, int argc, char *argv[])
{
	const struct bench_cmd	*cmd;
	int			 ch, r, given = 0, port = default_port(), i;

	opterr = 0;
	o->warmup = -1;		/* not given */
	while ((ch = getopt_long(argc, argv, ":jp:P:b:t:n:c:w:s:R:r:d:hV",
	    longopts, NULL)) != -1) {
		if (ch == 'h')
			usage(0);
		if (ch == 'V') {
			printf("nodetalk-bench %s\n", PACKAGE_VERSION);
			exit(0);
		}
		if (ch == ':')
			usage_error("%s needs a value", argv[optind - 1]);
		if ((r = parse_opt(o, ch, &port)) == -1)
			usage_error("unknown option: %s", argv[optind - 1]);
		given |= r;
	}
	if (optind >= argc)
		usage_error("no command (throughput, latency, connections, "
		    "history)");
	cmd = parse_cmd(argv[optind++], given);
	if (optind >= argc)
		usage_error("no node: give HOST[:PORT] of at least one");
	o->nnodes = argc - optind;
	o->nodes = xcalloc(o->nnodes, sizeof(*o->nodes));
	for (i = 0; optind + i < argc; i++)
		parse_node(&o->nodes[i], argv[optind + i], port);
	if (o->npids > 0 && o->npids != o->nnodes)
		usage_error("give --pid for every node or for none (%zu pids, "
		    "%zu nodes)", o->npids, o->nnodes);
	if (o->restart_cmd != NULL && o->kill_ws != 0)
		usage_error("--restart-cmd or --kill-ws, not both");
	o->command = cmd->name;
	if (o->timeout == 0)
		o->timeout = cmd->timeout;
	return (cmd);
}

static void
bench_params(struct bench *b)
{
	char	*s = NULL, *t;
	size_t	 i;

	for (i = 0; i < b->o.nnodes; i++) {
		xasprintf(&t, "%s%s%s", s != NULL ? s : "", s != NULL ? " " :
		    "", b->o.nodes[i].name);
		free(s);
		s = t;
	}
	bench_report_param_str(b->report, "nodes", s);
	free(s);
	bench_report_param_str(b->report, "tag", b->tag);
}

static void
bench_free(struct bench *b)
{
	size_t	i;

	for (i = 0; i < b->o.nnodes; i++) {
		free(b->o.nodes[i].name);
		free(b->o.nodes[i].host);
	}
	free(b->o.nodes);
	free(b->o.src);
	free(b->o.pids);
	bench_report_free(b->report);
	event_base_free(b->base);
}

int
main(int argc, char *argv[])
{
	const struct bench_cmd	*cmd;
	struct event_config	*cfg;
	struct bench		 b;
	int			 rc;

	memset(&b, 0, sizeof(b));
	log_init(NULL, "nodetalk-bench");
	cmd = parse_args(&b.o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	bench_seed();
	snprintf(b.tag, sizeof(b.tag), "%08llx",
	    (unsigned long long)(bench_random() & 0xffffffffULL));
	/* Latency needs timers finer than epoll's milliseconds. */
	if ((cfg = event_config_new()) == NULL ||
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == -1 ||
	    (b.base = event_base_new_with_config(cfg)) == NULL)
		fatalx("cannot make an event base");
	event_config_free(cfg);
	b.report = bench_report_new(cmd->name);
	bench_params(&b);
	rc = cmd->run(&b);
	if (rc == BENCH_EXIT_OK && b.failed)
		rc = BENCH_EXIT_FAIL;
	bench_report_print(b.report, b.o.json, rc == BENCH_EXIT_OK);
	bench_free(&b);
	return (rc);
}
