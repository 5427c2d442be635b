/*
 * The life cycle every daemon shares (daemon.h): logging from the environment, the one
 * event_base of the main thread, the admin endpoint, signals, and systemd's notify protocol.
 * A daemon's main.c brackets its own set-up between dfr_daemon_init() and dfr_daemon_ready()
 * and then hands the thread to dfr_daemon_run().
 *
 * Signals go through libevent signal events, never through handlers of our own, so the work they
 * ask for (a stop, a reload) runs in the loop like everything else (Knot's signals_req_*,
 * relayd). What this file does not do: fork into the background or write pid files; systemd and
 * docker supervise the process as it is (DESIGN.md §8).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <nng/nng.h>
#include <systemd/sd-daemon.h>

#include "admin.h"
#include "daemon.h"
#include "env.h"
#include "error.h"
#include "log.h"

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct dfr_daemon *d = arg;

	switch (sig) {
	case SIGHUP:
		if (d->dd_stopping)
			return;
		if (d->dd_on_reload == NULL) {
			dfr_log_info("%s, nothing to reload (SIGHUP)", d->dd_name);
			return;
		}
		dfr_log_info("%s, reloading (SIGHUP)", d->dd_name);
		d->dd_on_reload(d->dd_arg);
		return;
	case SIGTERM:
	case SIGINT:
		if (d->dd_stopping) {
			/* A second signal: the graceful stop is taking too long for someone. */
			dfr_log_notice("%s, stopping now (%s again)", d->dd_name,
				       sig == SIGTERM ? "SIGTERM" : "SIGINT");
			event_base_loopbreak(d->dd_base);
			return;
		}
		dfr_log_info("%s, stopping (%s)", d->dd_name, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		dfr_daemon_stop(d);
		return;
	}
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)sd_notify(0, "WATCHDOG=1");
}

/* A persistent signal event, added; NULL after logging. */
static struct event *
signal_event(struct dfr_daemon *d, int sig)
{
	struct event *ev = evsignal_new(d->dd_base, sig, on_signal, d);

	if (ev == NULL || evsignal_add(ev, NULL) == -1) {
		dfr_log_err("%s, cannot watch signal %d (libevent)", d->dd_name, sig);
		if (ev != NULL)
			event_free(ev);
		return NULL;
	}
	return ev;
}

int
dfr_daemon_init(struct dfr_daemon *d, const char *name, const char *admin_env,
		const char *admin_default)
{
	struct dfr_addr addr;
	int rc;

	memset(d, 0, sizeof(*d));
	d->dd_name = name;
	if ((rc = dfr_log_init(name)) != DFR_OK)
		return rc;
	dfr_log_info("%s, starting (pid %d)", name, (int)getpid());
	if ((rc = dfr_env_addr(admin_env, admin_default, &addr)) != DFR_OK)
		return rc;
	/* A peer that hangs up must give EPIPE on write, not kill the daemon. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		dfr_log_err("%s, cannot ignore SIGPIPE", name);
		return DFR_EINVAL;
	}
	/* Worker threads (dnsd, httpd) may need to wake this loop: make libevent thread-safe
	 * before the first base exists. */
	if (evthread_use_pthreads() == -1) {
		dfr_log_err("%s, cannot enable libevent threads", name);
		return DFR_ENOMEM;
	}
	if ((d->dd_base = event_base_new()) == NULL) {
		dfr_log_err("%s, cannot create the event loop (libevent)", name);
		rc = DFR_ENOMEM;
		goto fail;
	}
	if ((d->dd_sigterm = signal_event(d, SIGTERM)) == NULL ||
	    (d->dd_sigint = signal_event(d, SIGINT)) == NULL ||
	    (d->dd_sighup = signal_event(d, SIGHUP)) == NULL) {
		rc = DFR_ENOMEM;
		goto fail;
	}
	if ((d->dd_admin = dfr_admin_open(d->dd_base, name, addr.text)) == NULL) {
		rc = DFR_EIO;
		goto fail;
	}
	return DFR_OK;
fail:
	dfr_daemon_fini(d);
	return rc;
}

void
dfr_daemon_ready(struct dfr_daemon *d)
{
	uint64_t usec = 0;
	int rc;

	rc = sd_notifyf(0, "READY=1\nSTATUS=%s running", d->dd_name);
	if (rc < 0)
		dfr_log_warn("%s, cannot notify systemd (%s)", d->dd_name, strerror(-rc));
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0 && d->dd_watchdog == NULL) {
		/* Half the interval, as sd_watchdog_enabled(3) advises. */
		struct timeval tv = {.tv_sec = (time_t)(usec / 2 / 1000000),
				     .tv_usec = (suseconds_t)(usec / 2 % 1000000)};
		d->dd_watchdog = event_new(d->dd_base, -1, EV_PERSIST, on_watchdog, d);
		if (d->dd_watchdog == NULL || event_add(d->dd_watchdog, &tv) == -1)
			dfr_log_warn("%s, cannot start the systemd watchdog timer", d->dd_name);
		else
			dfr_log_info("%s, systemd watchdog every %llu ms", d->dd_name,
				     (unsigned long long)(usec / 2000));
	}
	dfr_log_info("%s, ready", d->dd_name);
}

int
dfr_daemon_run(struct dfr_daemon *d)
{
	int rc = event_base_dispatch(d->dd_base);

	if (rc == -1) {
		dfr_log_err("%s, event loop failed (libevent)", d->dd_name);
		return DFR_EIO;
	}
	if (!d->dd_stopping) {
		/* Nothing left to wait for: with persistent signal events this means a bug. */
		dfr_log_err("%s, event loop ended without a stop request", d->dd_name);
		return DFR_EIO;
	}
	dfr_log_info("%s, stopped", d->dd_name);
	return DFR_OK;
}

void
dfr_daemon_stop(struct dfr_daemon *d)
{
	if (d->dd_stopping)
		return;
	d->dd_stopping = true;
	(void)sd_notify(0, "STOPPING=1");
	if (d->dd_on_stop != NULL)
		d->dd_on_stop(d->dd_arg);
	event_base_loopexit(d->dd_base, NULL);
}

void
dfr_daemon_fini(struct dfr_daemon *d)
{
	struct event **evs[] = {&d->dd_sigterm, &d->dd_sigint, &d->dd_sighup, &d->dd_watchdog};

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL)
			event_free(*evs[i]);
		*evs[i] = NULL;
	}
	dfr_admin_close(d->dd_admin);
	d->dd_admin = NULL;
	if (d->dd_base != NULL)
		event_base_free(d->dd_base);
	d->dd_base = NULL;
	/* Every daemon talks on the bus. Closed sockets can still hold a message in a pipe until
	 * NNG's reaper runs; nng_fini() waits for it, so leak checkers see a clean exit. */
	nng_fini();
}
