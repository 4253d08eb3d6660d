/*
 * nats_link.c: the nats worker's link to NATS.  It connects (and keeps
 * reconnecting) through libnats' libevent adapter, and runs the stream
 * thread: that makes sure the stream exists as configured, reads it with
 * an ordered consumer from the sequence the master asked for, and asks
 * for the stream's state once a second, for /status.
 *
 * Messages of the stream are parsed here, in libnats' delivery thread,
 * and queued for the loop.  With NW_INBOX_MAX of them waiting, delivery
 * blocks: the library then stops answering JetStream's flow control, and
 * the server holds back.  An ordered consumer restarts by itself where it
 * left off when heartbeats stop or a message goes missing (libnats does
 * that); the stream thread starts a new one only when the master asks.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <nats/nats.h>

/*
 * The adapter defines its functions in the header, without prototypes:
 * one file includes it, and -Wmissing-prototypes looks away.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <nats/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "nodetalk.h"
#include "config.h"
#include "log.h"
#include "nats_worker.h"

#define INFO_EVERY_MS	1000	/* the stream's state, for /status */
#define IDLE_MS		250	/* the stream thread's nap when all is done */
#define HEARTBEAT_MS	1000	/* the consumer's; two missed restart it */
#define RECONNECT_MS	250
#define PING_MS		2000	/* a silent server is dropped after 3 */
#define NS_PER_MS	1000000LL

struct nats_shared	 NS;

static pthread_t	 link_thread;
static int		 link_thread_started;
static natsSubscription	*link_sub;	/* the stream thread's */
static uint64_t		 link_sub_gen;
static natsOptions	*link_opts;

/* Lock held.  Logged once per different error, not every retry. */
static void
link_error(const char *fmt, ...)
{
	char	 buf[sizeof(NS.st.error)];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strcmp(buf, NS.st.error) != 0 && buf[0] != '\0')
		log_warnx("%s", buf);
	snprintf(NS.st.error, sizeof(NS.st.error), "%s", buf);
}

static const char *
link_why(natsStatus s)
{
	const char	*last = nats_GetLastError(NULL);

	return (last != NULL && *last != '\0' ? last : natsStatus_GetText(s));
}

static void
link_wake(void)
{
	event_active(NS.wake, EV_READ, 0);
}

/* Connection events, from libnats' threads. */

static void
link_updown(natsConnection *nc, int up, const char *how)
{
	char	 url[sizeof(NS.st.server)] = "";

	if (up)
		natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	pthread_mutex_lock(&NS.mu);
	if (up && !NS.st.up)
		log_info("%s NATS at %s", how, url);
	else if (!up && NS.st.up) {
		log_warnx("lost the connection to NATS at %s; reconnecting",
		    NS.st.server);
		NS.down_ms = now_ms();
	}
	NS.st.up = up;
	if (up)
		snprintf(NS.st.server, sizeof(NS.st.server), "%s", url);
	pthread_cond_broadcast(&NS.cond);
	pthread_mutex_unlock(&NS.mu);
	link_wake();
}

static void
on_connected(natsConnection *nc, void *arg)
{
	link_updown(nc, 1, "Connected to");
}

static void
on_reconnected(natsConnection *nc, void *arg)
{
	pthread_mutex_lock(&NS.mu);
	NS.reconnected++;
	NS.st.reconnects++;
	pthread_mutex_unlock(&NS.mu);
	link_updown(nc, 1, "Reconnected to");
}

static void
on_disconnected(natsConnection *nc, void *arg)
{
	link_updown(nc, 0, NULL);
}

/* Missed heartbeats, a slow consumer: libnats repairs; we note it. */
static void
on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
    void *arg)
{
	log_debug("NATS: %s", natsStatus_GetText(err));
}

/* JetStream's answer to a publish, from libnats' thread: for the loop. */
static void
on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
    void *arg)
{
	struct nw_ack	*k;

	k = xcalloc(1, sizeof(*k));
	k->nm = msg;
	if (pa != NULL) {
		k->ok = 1;
		k->seq = pa->Sequence;
		k->dup = pa->Duplicate;
	} else if (pae != NULL)
		snprintf(k->why, sizeof(k->why), "%s",
		    pae->ErrText != NULL && *pae->ErrText != '\0' ?
		    pae->ErrText : natsStatus_GetText(pae->Err));
	pthread_mutex_lock(&NS.mu);
	TAILQ_INSERT_TAIL(&NS.acks, k, entry);
	pthread_mutex_unlock(&NS.mu);
	link_wake();
}

/* Reading the stream. */

/* A sender's name as the wire protocol allows it (wire.c). */
static int
link_name_ok(const cJSON *j, size_t max)
{
	const char	*s;
	size_t		 len;

	if (!cJSON_IsString(j) || (s = j->valuestring) == NULL)
		return (0);
	if ((len = strlen(s)) == 0 || (max > 0 && len > max) ||
	    !utf8_valid(s, len))
		return (0);
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return (0);
	return (1);
}

/*
 * The body as nats_worker.c wrote it.  Anything else (someone published
 * to the subject by hand) still takes its place in the order, or every
 * gateway's cache would stop there: as a message that says so.
 */
static void
link_parse(const char *data, int len, struct nt_msg *m)
{
	cJSON		*o, *j;

	o = cJSON_ParseWithLength(data, (size_t)len);
	if (o != NULL && link_name_ok(cJSON_GetObjectItem(o, "from"),
	    NT_FROM_MAX) && (j = cJSON_GetObjectItem(o, "text")) != NULL &&
	    cJSON_IsString(j) && *j->valuestring != '\0' &&
	    utf8_valid(j->valuestring, strlen(j->valuestring))) {
		m->from = xstrdup(cJSON_GetObjectItem(o, "from")->valuestring);
		m->text = xstrdup(j->valuestring);
		if ((j = cJSON_GetObjectItem(o, "ts")) != NULL &&
		    cJSON_IsNumber(j) && j->valuedouble >= 0)
			m->ts = (int64_t)j->valuedouble;
		if (link_name_ok((j = cJSON_GetObjectItem(o, "id")),
		    NT_CID_MAX))
			m->client_id = xstrdup(j->valuestring);
		if ((j = cJSON_GetObjectItem(o, "gateway")) != NULL &&
		    cJSON_IsString(j) && valid_node_id(j->valuestring))
			m->gateway = xstrdup(j->valuestring);
	} else {
		log_warnx("stream %s, sequence %llu: not a nodetalk message; "
		    "kept as a placeholder", NS.conf->nats.stream,
		    (unsigned long long)m->seq);
		m->from = xstrdup("nodetalkd");
		xasprintf(&m->text, "(not a chat message: stream %s, "
		    "sequence %llu)", NS.conf->nats.stream,
		    (unsigned long long)m->seq);
	}
	cJSON_Delete(o);
}

/* The consumer's message, in libnats' delivery thread. */
static void
on_stream_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
    void *arg)
{
	uint64_t	 gen = (uint64_t)(uintptr_t)arg;
	jsMsgMetaData	*meta = NULL;
	struct nw_in	*in;

	if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
		natsMsg_Destroy(msg);
		return;
	}
	in = xcalloc(1, sizeof(*in));
	in->gen = gen;
	snprintf(in->m.origin, sizeof(in->m.origin), "%s",
	    NS.conf->nats.stream);
	in->m.seq = in->m.lamport = meta->Sequence.Stream;
	in->m.ts = meta->Timestamp / NS_PER_MS;
	link_parse(natsMsg_GetData(msg), natsMsg_GetDataLength(msg), &in->m);
	jsMsgMetaData_Destroy(meta);
	natsMsg_Destroy(msg);

	pthread_mutex_lock(&NS.mu);
	while (!NS.quitting && gen == NS.want_gen && NS.nin >= NW_INBOX_MAX)
		pthread_cond_wait(&NS.cond, &NS.mu);
	if (NS.quitting || gen != NS.want_gen) {
		pthread_mutex_unlock(&NS.mu);
		msg_clear(&in->m);
		free(in);
		return;
	}
	TAILQ_INSERT_TAIL(&NS.in, in, entry);
	NS.nin++;
	pthread_mutex_unlock(&NS.mu);
	link_wake();
}

/* The stream thread. */

static void
link_stream_config(jsStreamConfig *cfg, const char **subj)
{
	const struct nt_nats	*n = &NS.conf->nats;

	jsStreamConfig_Init(cfg);
	cfg->Name = n->stream;
	subj[0] = n->subject;
	cfg->Subjects = subj;
	cfg->SubjectsLen = 1;
	cfg->Storage = js_FileStorage;
	cfg->Retention = js_LimitsPolicy;
	cfg->Replicas = n->replicas;
	cfg->Duplicates = (int64_t)n->duplicate_window_ms * NS_PER_MS;
	/* A deleted message would be a hole in every gateway's cache. */
	cfg->DenyDelete = true;
	cfg->DenyPurge = true;
}

/* The stream as configured: replicas and the duplicate window follow. */
static natsStatus
link_stream_update(jsStreamInfo **si)
{
	const struct nt_nats	*n = &NS.conf->nats;
	jsStreamConfig		*c = (*si)->Config;
	jsStreamInfo		*nsi = NULL;
	jsErrCode		 jerr = 0;
	natsStatus		 s;
	int64_t			 dup = (int64_t)n->duplicate_window_ms *
				    NS_PER_MS;

	if (c->Replicas == n->replicas && c->Duplicates == dup)
		return (NATS_OK);
	log_info("stream %s: replicas %lld -> %d, duplicate window %lld -> "
	    "%d ms", n->stream, (long long)c->Replicas, n->replicas,
	    (long long)(c->Duplicates / NS_PER_MS), n->duplicate_window_ms);
	c->Replicas = n->replicas;
	c->Duplicates = dup;
	if ((s = js_UpdateStream(&nsi, NS.js, c, NULL, &jerr)) != NATS_OK)
		return (s);
	jsStreamInfo_Destroy(*si);
	*si = nsi;
	return (NATS_OK);
}

/* The stream exists as configured (created if need be); 0 or -1. */
static int
link_ensure_stream(void)
{
	const struct nt_nats	*n = &NS.conf->nats;
	jsStreamConfig		 cfg;
	jsStreamInfo		*si = NULL;
	jsErrCode		 jerr = 0;
	const char		*subj[1];
	natsStatus		 s;

	s = js_GetStreamInfo(&si, NS.js, n->stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		link_stream_config(&cfg, subj);
		jerr = 0;
		if ((s = js_AddStream(&si, NS.js, &cfg, NULL, &jerr)) ==
		    NATS_OK)
			log_info("created stream %s (subject %s, %d replicas)",
			    n->stream, n->subject, n->replicas);
	} else if (s == NATS_OK)
		s = link_stream_update(&si);
	pthread_mutex_lock(&NS.mu);
	if (s != NATS_OK)
		link_error("stream %s: %s", n->stream, link_why(s));
	else {
		NS.st.stream_ok = 1;
		NS.st.stream_seq = si->State.LastSeq;
		link_error("%s", "");
	}
	pthread_mutex_unlock(&NS.mu);
	jsStreamInfo_Destroy(si);
	return (s == NATS_OK ? 0 : -1);
}

/* An ordered consumer from `from` on; the old one goes.  0 or -1. */
static int
link_consume(uint64_t gen, uint64_t from)
{
	const struct nt_nats	*n = &NS.conf->nats;
	jsSubOptions		 so;
	jsErrCode		 jerr = 0;
	natsStatus		 s;

	if (link_sub != NULL) {
		natsSubscription_Unsubscribe(link_sub);
		natsSubscription_Destroy(link_sub);
		link_sub = NULL;
	}
	jsSubOptions_Init(&so);
	so.Stream = n->stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = from;
	so.Config.Heartbeat = HEARTBEAT_MS * NS_PER_MS;
	s = js_Subscribe(&link_sub, NS.js, n->subject, on_stream_msg,
	    (void *)(uintptr_t)gen, NULL, &so, &jerr);
	pthread_mutex_lock(&NS.mu);
	if (s != NATS_OK) {
		link_sub = NULL;
		link_error("reading stream %s: %s", n->stream, link_why(s));
	} else {
		link_sub_gen = gen;
		log_info("Reading stream %s from sequence %llu", n->stream,
		    (unsigned long long)from);
	}
	pthread_mutex_unlock(&NS.mu);
	return (s == NATS_OK ? 0 : -1);
}

/* The stream's state for /status; a vanished stream is made again. */
static void
link_poll(void)
{
	const struct nt_nats	*n = &NS.conf->nats;
	jsStreamInfo		*si = NULL;
	jsErrCode		 jerr = 0;
	natsStatus		 s;

	s = js_GetStreamInfo(&si, NS.js, n->stream, NULL, &jerr);
	pthread_mutex_lock(&NS.mu);
	if (s == NATS_OK) {
		NS.st.stream_seq = si->State.LastSeq;
		NS.st.replicas = (int)si->Config->Replicas;
		snprintf(NS.st.leader, sizeof(NS.st.leader), "%s",
		    si->Cluster != NULL && si->Cluster->Leader != NULL ?
		    si->Cluster->Leader : "");
		link_error("%s", "");
	} else {
		if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
			NS.st.stream_ok = 0;
		link_error("stream %s: %s", n->stream, link_why(s));
	}
	pthread_mutex_unlock(&NS.mu);
	jsStreamInfo_Destroy(si);
}

/*
 * One round of the stream thread's work, lock not held; whether it
 * should go on at once (it made progress) or nap.
 */
static int
link_round(int64_t *last_poll)
{
	uint64_t	 gen, from;
	int		 up, ok;

	pthread_mutex_lock(&NS.mu);
	up = NS.st.up;
	ok = NS.st.stream_ok;
	gen = NS.want_gen;
	from = NS.want_from;
	pthread_mutex_unlock(&NS.mu);
	if (!up)
		return (0);
	if (!ok)
		return (link_ensure_stream() == 0);
	if (gen != 0 && gen != link_sub_gen && link_consume(gen, from) == 0)
		return (1);
	if (now_ms() - *last_poll >= INFO_EVERY_MS) {
		*last_poll = now_ms();
		link_poll();
	}
	return (0);
}

static void *
link_main(void *arg)
{
	struct timespec	 ts;
	int64_t		 last_poll = 0;

	pthread_mutex_lock(&NS.mu);
	while (!NS.quitting) {
		pthread_mutex_unlock(&NS.mu);
		if (link_round(&last_poll)) {
			pthread_mutex_lock(&NS.mu);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += IDLE_MS * NS_PER_MS;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_mutex_lock(&NS.mu);
		if (!NS.quitting)
			pthread_cond_timedwait(&NS.cond, &NS.mu, &ts);
	}
	pthread_mutex_unlock(&NS.mu);
	if (link_sub != NULL) {
		natsSubscription_Unsubscribe(link_sub);
		natsSubscription_Destroy(link_sub);
		link_sub = NULL;
	}
	pthread_mutex_lock(&NS.mu);
	NS.stopped = 1;
	pthread_mutex_unlock(&NS.mu);
	link_wake();
	return (NULL);
}

/* Work for the stream thread (a new consume request). */
void
nats_link_kick(void)
{
	pthread_mutex_lock(&NS.mu);
	pthread_cond_broadcast(&NS.cond);
	pthread_mutex_unlock(&NS.mu);
}

/* Connecting. */

static natsStatus
link_auth(natsOptions *o, const struct nt_nats *n)
{
	natsStatus	 s = NATS_OK;
	size_t		 i;
	int		 tls = n->tls_ca[0] != '\0' || n->tls_cert[0] != '\0';

	for (i = 0; i < n->nservers; i++)
		tls |= strncmp(n->servers[i], "tls://", 6) == 0;
	if (n->token[0] != '\0')
		s = natsOptions_SetToken(o, n->token);
	if (s == NATS_OK && n->user[0] != '\0')
		s = natsOptions_SetUserInfo(o, n->user, n->password);
	if (s == NATS_OK && n->creds[0] != '\0')
		s = natsOptions_SetUserCredentialsFromFiles(o, n->creds, NULL);
	if (s == NATS_OK && tls)
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && n->tls_ca[0] != '\0')
		s = natsOptions_LoadCATrustedCertificates(o, n->tls_ca);
	if (s == NATS_OK && n->tls_cert[0] != '\0')
		s = natsOptions_LoadCertificatesChain(o, n->tls_cert,
		    n->tls_key);
	return (s);
}

static natsStatus
link_options(struct event_base *base, natsOptions **op)
{
	const struct nt_nats	*n = &NS.conf->nats;
	natsOptions		*o;
	char			 name[NT_ID_MAX + 16];
	natsStatus		 s;

	if ((s = natsOptions_Create(op)) != NATS_OK)
		return (s);
	o = *op;
	snprintf(name, sizeof(name), "nodetalkd %s", NS.conf->node_id);
	s = natsOptions_SetServers(o, (const char **)n->servers,
	    (int)n->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, n->connect_timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, RECONNECT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, PING_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 3);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected,
		    NULL);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_async_error, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetEventLoop(o, base, natsLibevent_Attach,
		    natsLibevent_Read, natsLibevent_Write, natsLibevent_Detach);
	if (s == NATS_OK)
		s = link_auth(o, n);
	return (s);
}

static natsStatus
link_jetstream(void)
{
	jsOptions	 jo;

	jsOptions_Init(&jo);
	jo.Wait = NS.conf->nats.timeout_ms;
	jo.PublishAsync.AckHandler = on_puback;
	return (natsConnection_JetStream(&NS.js, NS.nc, &jo));
}

/*
 * Before the loop runs: connect (or keep trying in the background) and
 * start the stream thread.  -1 with *cause when the options are unusable
 * (a certificate that does not load, say): retrying cannot help.
 */
int
nats_link_open(struct event_base *base, char **cause)
{
	natsStatus	 s;

	NS.down_ms = now_ms();
	s = link_options(base, &link_opts);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&NS.nc, link_opts);
		if (s == NATS_NOT_YET_CONNECTED)
			s = NATS_OK;
		else if (s == NATS_OK)
			on_connected(NS.nc, NULL);
	}
	if (s == NATS_OK)
		s = link_jetstream();
	if (s != NATS_OK) {
		xasprintf(cause, "NATS: %s", link_why(s));
		return (-1);
	}
	if ((errno = pthread_create(&link_thread, NULL, link_main,
	    NULL)) != 0)
		fatal("pthread_create");
	link_thread_started = 1;
	return (0);
}

/*
 * Ask the stream thread and every delivery to stop.  The loop must run
 * until the thread is done (nats_link_stopped()): a request the thread
 * makes meanwhile waits for an answer only the loop can read.
 */
void
nats_link_stop(void)
{
	pthread_mutex_lock(&NS.mu);
	NS.quitting = 1;
	if (!link_thread_started)
		NS.stopped = 1;
	pthread_cond_broadcast(&NS.cond);
	pthread_mutex_unlock(&NS.mu);
	link_wake();
}

int
nats_link_stopped(void)
{
	int	 stopped;

	pthread_mutex_lock(&NS.mu);
	stopped = NS.stopped;
	pthread_mutex_unlock(&NS.mu);
	return (stopped);
}

/* After nats_link_stopped(): close the link. */
void
nats_link_close(void)
{
	if (link_thread_started)
		pthread_join(link_thread, NULL);
	link_thread_started = 0;
	if (NS.js != NULL)
		jsCtx_Destroy(NS.js);
	NS.js = NULL;
	if (NS.nc != NULL) {
		natsConnection_Close(NS.nc);
		natsConnection_Destroy(NS.nc);
	}
	NS.nc = NULL;
	natsOptions_Destroy(link_opts);
	link_opts = NULL;
}
