/*
 * notify.c: telling systemd how the node is doing (sd_notify(3)) when it
 * runs as a Type=notify service: ready once both workers said hello,
 * reloading and ready again around a reload, a one-line status for
 * "systemctl status", and stopping.  Built without libsystemd
 * (./configure --without-systemd), these do nothing.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "nodetalk.h"
#include "nodetalkd.h"
#include "log.h"

#ifdef HAVE_SYSTEMD
/* One datagram; unset_environment 0: the workers may tell, too (they don't). */
static void
notify_send(const char *state)
{
	int	 rv;

	if ((rv = sd_notify(0, state)) < 0)
		log_warnx("sd_notify: %s", strerror(-rv));
}

static void
notify_status(const char *prefix, const char *fmt, va_list ap)
{
	char	 status[512], *state;

	vsnprintf(status, sizeof(status), fmt, ap);
	/* A newline would end the assignment early. */
	status[strcspn(status, "\n")] = '\0';
	xasprintf(&state, "%sSTATUS=%s", prefix, status);
	notify_send(state);
	free(state);
}

void
notify_ready(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	notify_status("READY=1\n", fmt, ap);
	va_end(ap);
}

/*
 * systemd 253 and later want the CLOCK_MONOTONIC time of the reload with
 * RELOADING=1, to tell this reload from an earlier one.
 */
void
notify_reloading(void)
{
	struct timespec	 ts;
	char		*state;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	xasprintf(&state, "RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=Reloading the configuration",
	    (unsigned long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	notify_send(state);
	free(state);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=Stopping");
}
#else
void
notify_ready(const char *fmt, ...)
{
}

void
notify_reloading(void)
{
}

void
notify_stopping(void)
{
}
#endif
