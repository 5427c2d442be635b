/*
 * Daemon life cycle shared by every binary: log set-up from the environment, one event_base,
 * SIGTERM/SIGINT for a graceful stop, SIGHUP handed to the daemon, systemd readiness and
 * watchdog (sd_notify) when run under systemd, and the admin endpoint.
 *
 *   struct dfr_daemon d;
 *   if (dfr_daemon_init(&d, "dnsd", "DNSD_ADMIN_LISTEN", "127.0.0.1:9101") != DFR_OK)
 *           return 1;
 *   … open listeners, dfr_bus_sub_open(d.dd_base, …) …
 *   dfr_daemon_ready(&d);            // READY=1 to systemd
 *   rc = dfr_daemon_run(&d);         // returns after SIGTERM/SIGINT
 *   dfr_daemon_fini(&d);
 */
#ifndef DFR_DAEMON_H
#define DFR_DAEMON_H

#include <stdbool.h>

struct event_base;
struct event;
struct dfr_admin;

typedef void dfr_daemon_fn(void *arg);

struct dfr_daemon {
	const char *dd_name;
	struct event_base *dd_base;
	struct dfr_admin *dd_admin;
	dfr_daemon_fn *dd_on_reload; /* SIGHUP; may be NULL */
	dfr_daemon_fn *dd_on_stop;   /* before the loop ends; may be NULL */
	void *dd_arg;
	struct event *dd_sigterm, *dd_sigint, *dd_sighup, *dd_watchdog;
	bool dd_stopping;
};

/* Reads LOG_LEVEL/LOG_FORMAT and the admin address (admin_env, default admin_default), creates
 * the loop and the admin endpoint, installs signal events. DFR_OK or an error already logged. */
int dfr_daemon_init(struct dfr_daemon *d, const char *name, const char *admin_env,
		    const char *admin_default);
/* Tells systemd the daemon is ready (no-op outside systemd) and starts the watchdog pings. */
void dfr_daemon_ready(struct dfr_daemon *d);
/* Runs the loop until a stop. DFR_OK on a clean stop. */
int dfr_daemon_run(struct dfr_daemon *d);
/* Asks the loop to stop (from the loop's thread). */
void dfr_daemon_stop(struct dfr_daemon *d);
void dfr_daemon_fini(struct dfr_daemon *d);

#endif
