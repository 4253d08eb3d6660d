/*
 * client.c: nodetalk, the command-line client (DESIGN section 3).  One
 * WebSocket connection to one node and four modes: send one message and
 * wait for its ack, print the stored history, follow history and new
 * messages across reconnects, or chat interactively from stdin, also
 * across reconnects.
 */
#include <sys/types.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "nodetalk.h"
#include "log.h"
#include "wire.h"
#include "client.h"
#include "ws.h"

#define CLIENT_MAX_MSG		(1024 * 1024)	/* largest frame we accept */
#define BACKOFF_MIN_MS		200
#define BACKOFF_MAX_MS		5000
#define CLOSE_GRACE_SEC		1	/* wait this long for the close echo */
#define LINE_MAX_BYTES		(64 * 1024)	/* longer stdin lines: refused */
#define UUID_LEN		36

enum mode {
	MODE_SEND,		/* --text: one message, wait for its ack */
	MODE_HISTORY,		/* --history: stored messages, then exit */
	MODE_FOLLOW,		/* --follow: history and new ones, forever */
	MODE_CHAT		/* interactive: stdin lines out, chats in */
};

struct client {
	/* what the command line asked for */
	enum mode		 mode;
	const char		*host;
	int			 port;
	const char		*sender;
	const char		*text;
	char			 id[NT_CID_MAX + 1];
	int			 json;
	int			 status;	/* --status */
	uint64_t		 max_lamport;	/* newest message seen */
	struct timeval		 timeout;	/* zero: wait forever */

	struct event_base	*base;
	struct evdns_base	*dns;
	struct ws_dial		*dial;		/* a connect in progress */
	int			 dialing;
	struct ws_conn		*conn;		/* the open connection */
	struct event		*timer;		/* deadlines, close grace */
	struct event		*retry;		/* --follow reconnect backoff */
	struct event		*sigint;
	struct event		*sigterm;
	struct event		*ev_stdin;
	struct evbuffer		*inbuf;		/* stdin bytes, not yet a line */
	int			 skipping;	/* dropping an overlong line */

	struct nt_have		 seen;		/* highest seq printed, per origin */
	int			 joined;
	int			 connected_once;
	int			 reconnecting;
	unsigned int		 backoff_ms;
	struct outline		*outq;		/* interactive lines awaiting ack */
	size_t			 unacked;	/* how many */
	int			 quitting;	/* stdin ended, acks pending */
	int			 closing;
	int			 exitcode;

	/* Interactive: paging back through older messages (/more). */
	struct nt_msg		 oldest;	/* origin, seq, lamport of ours */
	int			 older;		/* the node has older ones */
	int			 ever_joined;
	int			 paging;	/* a history request is out */
	int			 page_first;	/* the next page chat is oldest */
	struct nt_msg		 page_before;	/* what the page is before */
	unsigned int		 more_wanted;	/* pages asked for, not sent */
	uint64_t		 more_limit;	/* /more N: N (0: the node's) */
};

/* A line sent in interactive mode, kept until the node acknowledges it. */
struct outline {
	char		 id[UUID_LEN + 1];
	char		*text;
};

/* What wire_parse does not keep of a chat pushed to a client. */
struct chat_meta {
	char		 origin[NT_ORIGIN_MAX + 1];
	uint64_t	 seq;
	int64_t		 ts;		/* ms; 0 when the node sent none */
	uint64_t	 lamport;	/* 0 when the node sent none */
	int		 has_identity;
};

static int	 stdin_flags = -1;	/* fd 0's flags before we touched them */

static void	 usage(int) __attribute__((noreturn));
static void	 usage_error(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static void	 fail(struct client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 finish(struct client *, int);
static void	 dial_start(struct client *);
static void	 input_quit(struct client *);

static void
usage(int status)
{
	FILE	*f = status == 0 ? stdout : stderr;

	fprintf(f,
	    "usage: nodetalk [options] --sender NAME --text TEXT\n"
	    "       nodetalk [options] [--sender NAME] --history | --follow\n"
	    "       nodetalk [options] --sender NAME\n"
	    "       nodetalk [options] --status\n"
	    "       nodetalk -h | -V\n"
	    "\n"
	    "  --server-host HOST  node to connect to (default localhost)\n"
	    "  --port PORT         its port (default $NT_PORT, else %d)\n"
	    "  --sender NAME       your name; needed to send\n"
	    "  --text TEXT         send one message, wait for the ack, "
	    "print \"sent ID\"\n"
	    "  --id ID             client message id for --text "
	    "(default: a random UUID),\n"
	    "                      so that a retry is not stored twice\n"
	    "  --history           print the stored messages and exit\n"
	    "  --follow            print the stored and then new messages "
	    "until killed,\n"
	    "                      reconnecting as needed\n"
	    "  --status            print every node of the cluster: "
	    "messages, clients,\n"
	    "                      peer links and lag\n"
	    "  --json              print each chat frame as received, "
	    "one per line\n"
	    "  --timeout SECONDS   give up on connect + ack or history "
	    "after this long\n"
	    "                      (default 10; 0: never)\n"
	    "  -h, --help          show this help\n"
	    "  -V, --version       show the version\n"
	    "\n"
	    "Without --text, --history or --follow: an interactive chat; "
	    "each line typed\n"
	    "is sent, /more [N] shows older messages, /quit or end of input "
	    "leaves.\n", NT_DEFAULT_PORT);
	exit(status);
}

static void
usage_error(const char *fmt, ...)
{
	va_list	 ap;

	fputs("nodetalk: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'nodetalk --help' for more information.\n", stderr);
	exit(2);
}

static int
parse_port(const char *s)
{
	char	*end;
	long	 n;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > 65535)
		return (-1);
	return ((int)n);
}

static int
parse_timeout(const char *s, struct timeval *tv)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	/* The range test also turns away "nan" and "inf". */
	if (end == s || *end != '\0' || errno != 0 ||
	    !(d >= 0 && d <= 86400.0 * 365))
		return (-1);
	tv->tv_sec = (time_t)d;
	tv->tv_usec = (suseconds_t)((d - (double)tv->tv_sec) * 1e6);
	return (0);
}

/*
 * A random (version 4) UUID names each message we send, so that the node
 * can tell a retry of a message from a new one.
 */
static void
make_uuid(char out[UUID_LEN + 1])
{
	unsigned char	 b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		fatalx("RAND_bytes failed");
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	snprintf(out, UUID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	    b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A uniform-enough number below max, to spread reconnects apart. */
static unsigned int
jitter_ms(unsigned int max)
{
	uint32_t	 r;

	if (max == 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return (0);
	return (r % max);
}

/* Arguments given as text must survive the trip as a JSON string. */
static void
check_text_arg(const char *flag, const char *s)
{
	if (*s == '\0')
		usage_error("%s must not be empty", flag);
	if (!utf8_valid(s, strlen(s)))
		usage_error("%s is not valid UTF-8", flag);
}

enum {
	OPT_HOST = 256, OPT_PORT, OPT_SENDER, OPT_TEXT, OPT_ID, OPT_HISTORY,
	OPT_FOLLOW, OPT_JSON, OPT_TIMEOUT, OPT_STATUS
};

static const struct option longopts[] = {
	{ "server-host",	required_argument,	NULL,	OPT_HOST },
	{ "port",		required_argument,	NULL,	OPT_PORT },
	{ "sender",		required_argument,	NULL,	OPT_SENDER },
	{ "text",		required_argument,	NULL,	OPT_TEXT },
	{ "id",			required_argument,	NULL,	OPT_ID },
	{ "history",		no_argument,		NULL,	OPT_HISTORY },
	{ "follow",		no_argument,		NULL,	OPT_FOLLOW },
	{ "json",		no_argument,		NULL,	OPT_JSON },
	{ "timeout",		required_argument,	NULL,	OPT_TIMEOUT },
	{ "status",		no_argument,		NULL,	OPT_STATUS },
	{ "help",		no_argument,		NULL,	'h' },
	{ "version",		no_argument,		NULL,	'V' },
	{ NULL,			0,			NULL,	0 }
};

static void
bad_option(int ch, int optch, const char *arg)
{
	const char	*what = ch == ':' ? "option needs an argument" :
			    "unknown option";

	/* optopt is a long option's value, or the bad short option. */
	if (optch > 0 && optch < 256)
		usage_error("%s: -%c", what, optch);
	usage_error("%s: %s", what, arg);
}

/* The mode follows from the flags; then check what that mode needs. */
static void
check_args(struct client *c, int history, int follow, const char *id,
    const char *port)
{
	const char	*env;

	if (c->text != NULL && (history || follow))
		usage_error("--text cannot be combined with --history or "
		    "--follow");
	if (id != NULL && c->text == NULL)
		usage_error("--id only applies with --text");
	/* --follow prints the history first anyway. */
	c->mode = c->text != NULL ? MODE_SEND : follow ? MODE_FOLLOW :
	    history ? MODE_HISTORY : MODE_CHAT;
	if (c->sender == NULL && (c->mode == MODE_SEND ||
	    c->mode == MODE_CHAT))
		usage_error("--sender is required to send messages");
	if (c->sender == NULL)
		c->sender = "nodetalk";
	check_text_arg("--sender", c->sender);
	if (c->text != NULL)
		check_text_arg("--text", c->text);
	if (id != NULL) {
		check_text_arg("--id", id);
		if (strlen(id) > NT_CID_MAX)
			usage_error("--id is longer than %d bytes", NT_CID_MAX);
		snprintf(c->id, sizeof(c->id), "%s", id);
	} else
		make_uuid(c->id);
	if (*c->host == '\0')
		usage_error("--server-host must not be empty");
	if (port != NULL) {
		if ((c->port = parse_port(port)) == -1)
			usage_error("bad --port: %s", port);
	} else if ((env = getenv("NT_PORT")) != NULL && *env != '\0') {
		if ((c->port = parse_port(env)) == -1)
			usage_error("bad NT_PORT in the environment: %s", env);
	}
}

static void
parse_args(struct client *c, int argc, char *argv[])
{
	const char	*id = NULL, *port = NULL;
	int		 ch, history = 0, follow = 0;

	c->host = "localhost";
	c->port = NT_DEFAULT_PORT;
	c->timeout.tv_sec = 10;
	opterr = 0;	/* we word the complaints ourselves */
	while ((ch = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_HOST:
			c->host = optarg;
			break;
		case OPT_PORT:
			port = optarg;
			break;
		case OPT_SENDER:
			c->sender = optarg;
			break;
		case OPT_TEXT:
			c->text = optarg;
			break;
		case OPT_ID:
			id = optarg;
			break;
		case OPT_HISTORY:
			history = 1;
			break;
		case OPT_FOLLOW:
			follow = 1;
			break;
		case OPT_JSON:
			c->json = 1;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout(optarg, &c->timeout) == -1)
				usage_error("bad --timeout: %s", optarg);
			break;
		case OPT_STATUS:
			c->status = 1;
			break;
		case 'h':
			usage(0);
		case 'V':
			printf("nodetalk %s\n", PACKAGE_VERSION);
			exit(0);
		default:
			bad_option(ch, optopt, argv[optind - 1]);
		}
	}
	if (optind != argc)
		usage_error("unexpected argument: %s", argv[optind]);
	if (c->status) {
		if (c->text != NULL || history || follow || id != NULL)
			usage_error("--status cannot be combined with "
			    "--text, --history or --follow");
		c->sender = "nodetalk";
	}
	check_args(c, history, follow, id, port);
}

/* Output. */

static void
out_flush(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return;
	/* The reader went away (nodetalk --follow | head): just stop. */
	if (errno == EPIPE)
		exit(1);
	fatal("writing stdout");
}

/*
 * Text from the network must not drive the terminal: C0 controls, DEL and
 * the C1 controls (U+0080..U+009F, which some terminals obey like ESC
 * sequences) each become one '?'.  With lines, a message's newlines and
 * tabs stay (a CR before a newline goes).  In place; the string only
 * shrinks.
 */
static void
sanitize_text(char *s, int lines)
{
	unsigned char	*r = (unsigned char *)s, *w = r;

	while (*r != '\0') {
		if (lines && (*r == '\n' || *r == '\t'))
			*w++ = *r++;
		else if (lines && r[0] == '\r' && r[1] == '\n')
			r++;
		else if (*r < 0x20 || *r == 0x7f) {
			*w++ = '?';
			r++;
		} else if (r[0] == 0xc2 && r[1] >= 0x80 && r[1] <= 0x9f) {
			*w++ = '?';
			r += 2;
		} else
			*w++ = *r++;
	}
	*w = '\0';
}

static void
sanitize(char *s)
{
	sanitize_text(s, 0);
}

/* Columns a UTF-8 string takes, near enough: one per code point. */
static int
utf8_width(const char *s)
{
	int	 n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return (n);
}

/*
 * wire_parse keeps origin/seq/ts only for replicated chats, so read the
 * stored fields of a pushed chat here.  Frames from a seed node may lack
 * them; such a message is printed without dedup and without a time.
 */
static void
chat_meta(const char *raw, size_t len, struct chat_meta *m)
{
	cJSON		*o;
	const cJSON	*origin, *seq, *ts, *lamport;

	memset(m, 0, sizeof(*m));
	if ((o = cJSON_ParseWithLength(raw, len)) == NULL)
		return;
	origin = cJSON_GetObjectItemCaseSensitive(o, "origin");
	seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
	ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
	if (cJSON_IsString(origin) && *origin->valuestring != '\0' &&
	    strlen(origin->valuestring) <= NT_ORIGIN_MAX &&
	    cJSON_IsNumber(seq) && seq->valuedouble >= 1 &&
	    seq->valuedouble <= 9007199254740992.0) {
		snprintf(m->origin, sizeof(m->origin), "%s",
		    origin->valuestring);
		m->seq = (uint64_t)seq->valuedouble;
		m->has_identity = 1;
	}
	if (cJSON_IsNumber(ts) && ts->valuedouble > 0 &&
	    ts->valuedouble <= 9007199254740992.0)
		m->ts = (int64_t)ts->valuedouble;
	lamport = cJSON_GetObjectItemCaseSensitive(o, "lamport");
	if (cJSON_IsNumber(lamport) && lamport->valuedouble > 0 &&
	    lamport->valuedouble <= 9007199254740992.0)
		m->lamport = (uint64_t)lamport->valuedouble;
	cJSON_Delete(o);
}

/*
 * The frame as received, one per line.  A raw CR or LF can only be
 * whitespace between JSON tokens (inside strings they are escaped), so a
 * space keeps the JSON the same and the output line-oriented.
 */
static void
print_json(const char *raw, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		putchar(raw[i] == '\n' || raw[i] == '\r' ? ' ' : raw[i]);
	putchar('\n');
}

/*
 * Each line of a multi-line text on a line of its own, indented to where
 * the text began: a continuation line cannot pass for another message.
 */
static void
print_lines(const char *text, int indent)
{
	const char	*nl;

	while ((nl = strchr(text, '\n')) != NULL) {
		printf("%.*s\n%*s", (int)(nl - text), text, indent, "");
		text = nl + 1;
	}
	printf("%s\n", text);
}

static void
print_plain(int64_t ts, char *from, char *text)
{
	char		 stamp[16] = "--:--:--";
	struct tm	 tm;
	time_t		 t;

	if (ts > 0) {
		t = (time_t)(ts / 1000);
		if (localtime_r(&t, &tm) != NULL)
			strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	}
	sanitize(from);
	sanitize_text(text, 1);
	printf("[%s] %s: ", stamp, from);
	print_lines(text, (int)strlen(stamp) + 3 + utf8_width(from) + 2);
}

/* Whether m sorts before b in the cluster order (lamport, origin, seq). */
static int
meta_before(const struct chat_meta *m, const struct nt_msg *b)
{
	int	 r;

	if (m->lamport != b->lamport)
		return (m->lamport < b->lamport);
	if ((r = strcmp(m->origin, b->origin)) != 0)
		return (r < 0);
	return (m->seq < b->seq);
}

static void
note_oldest(struct client *c, const struct chat_meta *m)
{
	snprintf(c->oldest.origin, sizeof(c->oldest.origin), "%s", m->origin);
	c->oldest.seq = m->seq;
	c->oldest.lamport = m->lamport;
}

static void
print_chat(struct client *c, struct wire_in *in, const char *raw, size_t len)
{
	struct chat_meta	 m;

	chat_meta(raw, len, &m);
	/* What we answer must sort after what we have seen. */
	if (m.lamport > c->max_lamport)
		c->max_lamport = m.lamport;
	/*
	 * A page of older messages: they sort before what we printed, so
	 * the dedup by seq below would drop them.  Its first is our oldest.
	 */
	if (c->paging && m.has_identity && m.lamport > 0 &&
	    meta_before(&m, &c->page_before)) {
		if (c->page_first)
			note_oldest(c, &m);
		c->page_first = 0;
		goto print;
	}
	/* The first message of the first history is the oldest we hold. */
	if (m.has_identity && m.lamport > 0 && c->oldest.seq == 0)
		note_oldest(c, &m);
	if (m.has_identity) {
		/* After a reconnect a node may resend what we printed. */
		if (m.seq <= have_get(&c->seen, m.origin))
			return;
		have_set(&c->seen, m.origin, m.seq);
	}
print:
	if (c->json)
		print_json(raw, len);
	else
		print_plain(m.ts, in->msg.from, in->msg.text);
	out_flush();
}

/* Connection. */

static void
arm_deadline(struct client *c)
{
	if (timerisset(&c->timeout))
		evtimer_add(c->timer, &c->timeout);
}

/* Send a frame built by wire.c and free it. */
static int
send_frame(struct client *c, char *frame)
{
	int	 rv;

	rv = ws_conn_send_text(c->conn, frame, strlen(frame));
	free(frame);
	return (rv);
}

/*
 * A rejoin asks only for what we have not printed.  Identities a node made
 * up for seed messages ("A/seed") mean nothing to it as a since key, so
 * those are left out and deduplicated here instead.
 */
static int
send_join(struct client *c)
{
	struct nt_have	 since = { NULL, 0 };
	size_t		 i;
	int		 rv;

	for (i = 0; i < c->seen.n; i++)
		if (valid_node_id(c->seen.v[i].origin))
			have_set(&since, c->seen.v[i].origin,
			    c->seen.v[i].seq);
	/*
	 * A join without since gets the node's newest join_history messages
	 * (the interactive chat pages back with /more); --history and
	 * --follow print them all: since {} (nothing seen) says so.
	 */
	rv = send_frame(c, wire_join(c->sender, since.n > 0 ||
	    c->mode != MODE_CHAT ? &since : NULL));
	have_clear(&since);
	return (rv);
}

static void
schedule_retry(struct client *c)
{
	struct timeval	 tv;
	unsigned int	 ms;

	/*
	 * Capped exponential backoff with jitter: a restarting node is not
	 * hammered, and many followers do not come back in lockstep.
	 */
	if (c->backoff_ms == 0)
		c->backoff_ms = BACKOFF_MIN_MS;
	else if ((c->backoff_ms *= 2) > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	ms = c->backoff_ms + jitter_ms(c->backoff_ms / 2);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_del(c->timer);
	evtimer_add(c->retry, &tv);
}

static void
stdin_stop(struct client *c)
{
	if (c->ev_stdin != NULL)
		event_del(c->ev_stdin);
}

static void
stdin_start(struct client *c)
{
	if (event_add(c->ev_stdin, NULL) == -1)
		fail(c, "cannot watch stdin");
}

/* Stop, with exit status code; close the connection politely first. */
static void
finish(struct client *c, int code)
{
	struct timeval	 grace = { CLOSE_GRACE_SEC, 0 };

	if (c->closing)
		return;
	c->closing = 1;
	c->exitcode = code;
	stdin_stop(c);
	event_del(c->retry);
	if (c->dial != NULL)
		ws_dial_cancel(c->dial);
	c->dial = NULL;
	c->dialing = 0;
	if (c->conn == NULL) {
		event_base_loopexit(c->base, NULL);
		return;
	}
	/* A clean close keeps the node's log tidy; on_close ends the loop. */
	evtimer_add(c->timer, &grace);
	ws_conn_close(c->conn, 1000, "");
}

/* One line on stderr, "nodetalk: ...", then exit status 1. */
static void
fail(struct client *c, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_warnx("%s", buf);
	finish(c, 1);
}

/* Interactive lines in flight. */

static void
outq_add(struct client *c, const char *id, const char *text)
{
	struct outline	*o;

	c->outq = xreallocarray(c->outq, c->unacked + 1, sizeof(*c->outq));
	o = &c->outq[c->unacked++];
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->text = xstrdup(text);
}

static void
outq_remove(struct client *c, size_t i)
{
	free(c->outq[i].text);
	memmove(&c->outq[i], &c->outq[i + 1],
	    (c->unacked - i - 1) * sizeof(*c->outq));
	c->unacked--;
}

/*
 * The line an ack or an error answers: the ack names our id; an error
 * names nothing, but the node answers in order, so it is the oldest.
 */
static void
outq_answered(struct client *c, const char *raw, size_t len)
{
	cJSON		*o;
	const cJSON	*cid;
	size_t		 i = 0;

	if (c->unacked == 0)
		return;
	if (raw != NULL && (o = cJSON_ParseWithLength(raw, len)) != NULL) {
		cid = cJSON_GetObjectItemCaseSensitive(o, "client_id");
		if (cJSON_IsString(cid))
			for (i = 0; i < c->unacked; i++)
				if (strcmp(c->outq[i].id, cid->valuestring) == 0)
					break;
		cJSON_Delete(o);
		if (i == c->unacked)
			i = 0;
	}
	outq_remove(c, i);
}

/*
 * After a reconnect, what was not acknowledged goes again under the same
 * id: a line the node stored before the link broke is answered from its
 * store, not stored twice.
 */
static int
outq_resend(struct client *c)
{
	size_t	 i;

	for (i = 0; i < c->unacked; i++)
		if (send_frame(c, wire_client_chat(c->sender, c->outq[i].text,
		    c->outq[i].id, c->max_lamport)) == -1)
			return (-1);
	if (c->unacked > 0)
		log_warnx("sending %zu unacknowledged line(s) again",
		    c->unacked);
	return (0);
}

static void
outq_clear(struct client *c)
{
	while (c->unacked > 0)
		outq_remove(c, c->unacked - 1);
	free(c->outq);
	c->outq = NULL;
}

/* Interactive or --follow: a lost link is waited out, not the end. */
static int
keeps_going(struct client *c)
{
	return ((c->mode == MODE_FOLLOW || c->mode == MODE_CHAT) &&
	    c->connected_once);
}

static void
got_chat(struct client *c, struct wire_in *in, const char *raw, size_t len)
{
	/* A one-shot sender that is also a joined client ignores pushes. */
	if (c->mode != MODE_SEND)
		print_chat(c, in, raw, len);
}

static void
got_ack(struct client *c, struct wire_in *in, const char *raw, size_t len)
{
	if (c->mode == MODE_SEND) {
		sanitize(in->message);
		printf("sent %s\n", in->message);
		out_flush();
		finish(c, 0);
		return;
	}
	if (c->mode != MODE_CHAT)
		return;
	outq_answered(c, raw, len);
	if (c->quitting && c->unacked == 0 && !c->paging &&
	    c->more_wanted == 0)
		finish(c, 0);
}

static void
got_error(struct client *c, struct wire_in *in)
{
	char	 msg[1024];

	sanitize(in->code);
	if (in->message != NULL)
		sanitize(in->message);
	snprintf(msg, sizeof(msg), "server error %s%s%s", in->code,
	    in->message != NULL ? ": " : "",
	    in->message != NULL ? in->message : "");
	switch (c->mode) {
	case MODE_FOLLOW:
		/* A refused join would only be refused again: give up. */
		if (!c->joined) {
			fail(c, "%s", msg);
			break;
		}
		log_warnx("%s", msg);
		break;
	case MODE_CHAT:
		/* Most likely the answer to a line we sent (too long...). */
		log_warnx("%s", msg);
		outq_answered(c, NULL, 0);
		if (c->quitting && c->unacked == 0 && !c->paging &&
		    c->more_wanted == 0)
			finish(c, 0);
		break;
	default:
		fail(c, "%s", msg);
		break;
	}
}

/* A line of our own between the chats (plain output only). */
static void
print_note(struct client *c, const char *note)
{
	if (c->json)
		return;
	printf("-- %s --\n", note);
	out_flush();
}

/* Ask for the page before the oldest message we hold. */
static void
more_send(struct client *c)
{
	c->more_wanted--;
	c->paging = 1;
	c->page_first = 1;
	c->page_before = c->oldest;
	if (send_frame(c, wire_history(c->oldest.seq > 0 ? &c->oldest : NULL,
	    c->more_limit)) == -1)
		fail(c, "cannot send to %s:%d", c->host, c->port);
}

/* The pages asked for, one at a time; then a pending /quit may end. */
static void
more_next(struct client *c)
{
	if (c->paging || !c->joined)
		return;
	if (c->more_wanted > 0 && !c->older) {
		c->more_wanted = 0;
		print_note(c, "no older messages");
	}
	if (c->more_wanted > 0)
		more_send(c);
	else if (c->quitting && c->unacked == 0)
		finish(c, 0);
}

static void
got_joined(struct client *c, struct wire_in *in)
{
	int	 first = !c->ever_joined;

	c->joined = c->ever_joined = 1;
	c->backoff_ms = 0;	/* a healthy link: start over at 0.2s */
	if (c->mode == MODE_HISTORY)
		finish(c, 0);
	if (c->mode != MODE_CHAT)
		return;
	/* A rejoin (with since) says nothing about older messages. */
	if (in->older || first)
		c->older = in->older;
	if (first && in->older)
		print_note(c, "older messages: /more");
	more_next(c);
}

static void
got_history_end(struct client *c, struct wire_in *in)
{
	char	 note[64];

	if (!c->paging)
		return;
	c->paging = 0;
	c->older = in->older;
	snprintf(note, sizeof(note), "%llu older messages above%s",
	    (unsigned long long)in->count, in->older ? "; /more for more" :
	    ", the first stored");
	print_note(c, note);
	more_next(c);
}

static void
on_text(struct ws_conn *wc, const char *buf, size_t len, void *arg)
{
	struct client	*c = arg;
	struct wire_in	 in;
	const char	*code;
	char		*why;

	if (c->closing)
		return;
	/* No limits: the node enforced its own when it stored. */
	if (wire_parse(buf, len, NULL, &in, &code, &why) == -1) {
		/* A newer node may send frames this client does not know. */
		log_debug("ignoring a frame (%s: %s)", code, why);
		free(why);
		return;
	}
	/* A long history is fine as long as it keeps coming. */
	if (c->mode == MODE_HISTORY)
		arm_deadline(c);
	switch (in.type) {
	case WIRE_CHAT:
		got_chat(c, &in, buf, len);
		break;
	case WIRE_ACK:
		got_ack(c, &in, buf, len);
		break;
	case WIRE_ERROR:
		got_error(c, &in);
		break;
	case WIRE_JOINED:
		got_joined(c, &in);
		break;
	case WIRE_HISTORY_END:
		got_history_end(c, &in);
		break;
	default:
		break;
	}
	wire_in_clear(&in);
}

static void
on_close(struct ws_conn *wc, int code, void *arg)
{
	struct client	*c = arg;

	ws_conn_free(wc);
	c->conn = NULL;
	stdin_stop(c);
	if (c->closing) {
		event_base_loopexit(c->base, NULL);
		return;
	}
	switch (c->mode) {
	case MODE_SEND:
		fail(c, "connection to %s:%d closed before the ack (code %d)",
		    c->host, c->port, code);
		break;
	case MODE_HISTORY:
		fail(c, "connection to %s:%d closed before the end of the "
		    "history (code %d)", c->host, c->port, code);
		break;
	case MODE_CHAT:
	case MODE_FOLLOW:
		log_warnx("disconnected from %s:%d (code %d), reconnecting",
		    c->host, c->port, code);
		c->reconnecting = 1;
		c->joined = 0;
		/* A page under way is lost with the link: ask again. */
		if (c->paging)
			c->more_wanted++;
		c->paging = 0;
		schedule_retry(c);
		break;
	}
}

static void
on_open(struct ws_conn *wc, void *arg)
{
	struct client	*c = arg;
	int		 rv;

	c->dial = NULL;
	c->dialing = 0;
	c->conn = wc;
	c->joined = 0;
	c->connected_once = 1;
	if (c->reconnecting)
		log_warnx("reconnected to %s:%d", c->host, c->port);
	c->reconnecting = 0;
	/*
	 * Only one-shot modes keep the deadline once connected, and an
	 * interactive chat that is leaving (waiting for its last acks).
	 */
	if (c->mode == MODE_FOLLOW || (c->mode == MODE_CHAT && !c->quitting))
		event_del(c->timer);
	if (c->mode == MODE_SEND)
		rv = send_frame(c, wire_client_chat(c->sender, c->text, c->id, 0));
	else
		rv = send_join(c);
	if (rv == 0 && c->mode == MODE_CHAT)
		rv = outq_resend(c);
	if (rv == -1) {
		if (!keeps_going(c))
			fail(c, "cannot send to %s:%d", c->host, c->port);
		else if (c->conn != NULL)
			ws_conn_close(c->conn, 1011, "");	/* retry */
		return;
	}
	if (c->mode == MODE_CHAT && !c->quitting)
		stdin_start(c);
}

static void
on_fail(const char *reason, void *arg)
{
	struct client	*c = arg;

	c->dial = NULL;
	c->dialing = 0;
	if (c->closing)
		return;
	/* Once we were connected, we wait for the node to return. */
	if (keeps_going(c)) {
		log_debug("cannot connect to %s:%d: %s", c->host, c->port,
		    reason);
		schedule_retry(c);
		return;
	}
	fail(c, "cannot connect to %s:%d: %s", c->host, c->port, reason);
}

static const struct ws_conn_cbs conn_cbs = { on_text, on_close, NULL };

static void
dial_start(struct client *c)
{
	struct ws_dial	*d;

	/* Leaving a chat, the deadline for the last acks stands. */
	if (!(c->mode == MODE_CHAT && c->quitting))
		arm_deadline(c);
	c->dialing = 1;
	d = ws_dial(c->base, c->dns, c->host, c->port, CLIENT_MAX_MSG,
	    &conn_cbs, on_open, on_fail, c);
	/*
	 * If a callback already ran inside ws_dial, the handle is spent and
	 * must not be kept for a later ws_dial_cancel().
	 */
	if (c->dialing && d != NULL)
		c->dial = d;
	else if (c->dialing) {
		c->dialing = 0;
		on_fail("cannot start connecting", c);
	}
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	dial_start(arg);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client	*c = arg;

	if (c->closing) {
		/* The node never answered our close. */
		event_base_loopexit(c->base, NULL);
		return;
	}
	if (c->mode == MODE_CHAT && c->quitting) {
		fail(c, "no ack for %zu message(s) from %s:%d", c->unacked,
		    c->host, c->port);
		return;
	}
	if (c->dial != NULL) {
		ws_dial_cancel(c->dial);
		c->dial = NULL;
		c->dialing = 0;
		if (keeps_going(c))
			schedule_retry(c);
		else
			fail(c, "timed out connecting to %s:%d", c->host,
			    c->port);
		return;
	}
	if (c->mode == MODE_SEND)
		fail(c, "timed out waiting for the ack from %s:%d", c->host,
		    c->port);
	else if (c->mode == MODE_HISTORY)
		fail(c, "timed out waiting for the history from %s:%d",
		    c->host, c->port);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct client	*c = arg;

	/* A second signal does not wait for the close handshake. */
	if (c->closing)
		event_base_loopexit(c->base, NULL);
	finish(c, 0);
}

/* Interactive input. */

static void
input_quit(struct client *c)
{
	stdin_stop(c);
	c->quitting = 1;
	if (c->unacked == 0 && !c->paging && c->more_wanted == 0) {
		finish(c, 0);
		return;
	}
	/* Lines piped in just before EOF still deserve their ack. */
	arm_deadline(c);
}

/* "/more [N]": the N (or the node's default) messages before our oldest. */
static void
input_more(struct client *c, const char *arg)
{
	char		*end;
	long		 n = 0;

	arg += strspn(arg, " ");
	if (*arg != '\0') {
		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno != 0 || *end != '\0' || n < 1 || n > 1000) {
			log_warnx("/more N: N must be a number from 1 to 1000");
			return;
		}
	}
	c->more_limit = (uint64_t)n;
	c->more_wanted++;
	more_next(c);
}

static void
input_line(struct client *c, const char *line, size_t len)
{
	char	 id[UUID_LEN + 1];

	if (len == 0)
		return;
	if (strcmp(line, "/quit") == 0) {
		input_quit(c);
		return;
	}
	if (strcmp(line, "/more") == 0 || strncmp(line, "/more ", 6) == 0) {
		input_more(c, line + 5);
		return;
	}
	if (strlen(line) != len || !utf8_valid(line, len)) {
		log_warnx("line is not valid UTF-8 text, not sent");
		return;
	}
	make_uuid(id);
	/* Kept first: should the link break now, it goes again. */
	outq_add(c, id, line);
	if (send_frame(c, wire_client_chat(c->sender, line, id,
	    c->max_lamport)) == -1 && c->conn != NULL)
		ws_conn_close(c->conn, 1011, "");	/* reconnect */
}

static void
stdin_lines(struct client *c)
{
	char	*line;
	size_t	 len;

	while (!c->quitting && !c->closing && (line =
	    evbuffer_readln(c->inbuf, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		if (c->skipping)
			c->skipping = 0;	/* the tail of an overlong line */
		else
			input_line(c, line, len);
		free(line);
	}
	if (evbuffer_get_length(c->inbuf) <= LINE_MAX_BYTES)
		return;
	if (!c->skipping)
		log_warnx("line longer than %d bytes, not sent",
		    LINE_MAX_BYTES);
	c->skipping = 1;
	evbuffer_drain(c->inbuf, evbuffer_get_length(c->inbuf));
}

static void
stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client	*c = arg;
	char		*line;
	size_t		 len;
	int		 n;

	n = evbuffer_read(c->inbuf, fd, 4096);
	if (n == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			fail(c, "reading stdin: %s", strerror(errno));
		return;
	}
	stdin_lines(c);
	if (n != 0 || c->quitting || c->closing)
		return;
	/* End of input; a last line may lack its newline. */
	len = evbuffer_get_length(c->inbuf);
	if (len > 0 && !c->skipping) {
		line = xmalloc(len + 1);
		evbuffer_remove(c->inbuf, line, len);
		line[len] = '\0';
		input_line(c, line, len);
		free(line);
	}
	if (!c->quitting && !c->closing)
		input_quit(c);
}

static void
restore_stdin(void)
{
	/* fd 0 is often the shell's terminal: leave it as we found it. */
	if (stdin_flags != -1)
		(void)fcntl(STDIN_FILENO, F_SETFL, stdin_flags);
}

static void
stdin_setup(struct client *c)
{
	if ((stdin_flags = fcntl(STDIN_FILENO, F_GETFL)) == -1)
		fatal("stdin");
	atexit(restore_stdin);
	if (fcntl(STDIN_FILENO, F_SETFL, stdin_flags | O_NONBLOCK) == -1)
		fatal("stdin: O_NONBLOCK");
	if ((c->inbuf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	c->ev_stdin = event_new(c->base, STDIN_FILENO, EV_READ | EV_PERSIST,
	    stdin_cb, c);
	if (c->ev_stdin == NULL)
		fatalx("event_new");
}

/* Setup and teardown. */

static struct event_base *
make_base(enum mode mode)
{
	struct event_config	*cfg;
	struct event_base	*base;

	if ((cfg = event_config_new()) == NULL)
		fatalx("event_config_new");
	/*
	 * Interactive input may come from a file or /dev/null, which epoll
	 * refuses to watch; poll takes any descriptor.
	 */
	if (mode == MODE_CHAT)
		event_config_require_features(cfg, EV_FEATURE_FDS);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base == NULL && (base = event_base_new()) == NULL)
		fatalx("event_base_new");
	return (base);
}

static void
client_setup(struct client *c)
{
	c->base = make_base(c->mode);
	/* Without a resolver object ws_dial falls back to getaddrinfo. */
	c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	c->timer = evtimer_new(c->base, timer_cb, c);
	c->retry = evtimer_new(c->base, retry_cb, c);
	if (c->timer == NULL || c->retry == NULL)
		fatalx("evtimer_new");
	/* One-shot modes keep the default: a ^C simply ends them. */
	if (c->mode == MODE_FOLLOW || c->mode == MODE_CHAT) {
		c->sigint = evsignal_new(c->base, SIGINT, signal_cb, c);
		c->sigterm = evsignal_new(c->base, SIGTERM, signal_cb, c);
		if (c->sigint == NULL || c->sigterm == NULL ||
		    evsignal_add(c->sigint, NULL) == -1 ||
		    evsignal_add(c->sigterm, NULL) == -1)
			fatalx("cannot handle signals");
	}
	if (c->mode == MODE_CHAT)
		stdin_setup(c);
}

static void
client_teardown(struct client *c)
{
	if (c->dial != NULL)
		ws_dial_cancel(c->dial);
	if (c->conn != NULL)
		ws_conn_free(c->conn);
	if (c->ev_stdin != NULL)
		event_free(c->ev_stdin);
	if (c->inbuf != NULL)
		evbuffer_free(c->inbuf);
	if (c->sigint != NULL)
		event_free(c->sigint);
	if (c->sigterm != NULL)
		event_free(c->sigterm);
	event_free(c->timer);
	event_free(c->retry);
	if (c->dns != NULL)
		evdns_base_free(c->dns, 0);
	event_base_free(c->base);
	have_clear(&c->seen);
	outq_clear(c);
}

int
main(int argc, char *argv[])
{
	struct client	 c;

	memset(&c, 0, sizeof(c));
	log_init(NULL, "nodetalk");
	parse_args(&c, argc, argv);
	/* A node that hangs up mid-write must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (c.status)
		return (client_status(c.host, c.port, &c.timeout));
	client_setup(&c);
	dial_start(&c);
	if (!c.closing)
		event_base_dispatch(c.base);
	if (!c.closing) {
		/* The loop ran dry without a verdict: a bug, not success. */
		log_warnx("internal error: nothing left to wait for");
		c.exitcode = 1;
	}
	client_teardown(&c);
	return (c.exitcode);
}
