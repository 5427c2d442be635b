/*
 * defenra-httpd: the HTTP reverse proxy (see httpd.h, docs/httpd.md). This file reads the
 * environment, starts the workers (worker.c: a thread and event loop each) and runs the main
 * loop, which holds the bus subscriber and the admin endpoint.
 */
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "daemon.h"
#include "env.h"
#include "error.h"
#include "httpd.h"
#include "log.h"

static struct httpd_set set;

static void
on_stop(void *arg)
{
	for (unsigned i = 0; i < set.hs_n; i++)
		worker_stop(&set.hs_srv[i]);
}

int
main(void)
{
	struct dfr_daemon d;
	struct httpd_opts opts;
	struct dfr_bus_sub *sub = NULL;
	unsigned built = 0;
	int rc;

	if (dfr_daemon_init(&d, "httpd", "HTTPD_ADMIN_LISTEN", "127.0.0.1:9102") != DFR_OK)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* Connections and HTTP/2 streams allocate and free their head buffers (16-64 KiB) all the
	 * time: keep freed memory in the arenas instead of trimming and consolidating each time. */
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
	(void)mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if ((rc = httpd_opts_from_env(&opts)) != DFR_OK)
		goto out;
	httpd_stats_init();
	stats_access_mode(opts.o_access_log);
	if ((rc = tls_init()) != DFR_OK)
		goto out;
	set.hs_n = opts.o_workers;
	set.hs_admin = d.dd_admin;
	set.hs_port = opts.o_up_port;
	if ((set.hs_srv = calloc(set.hs_n, sizeof(*set.hs_srv))) == NULL) {
		rc = DFR_ENOMEM;
		goto out;
	}
	for (; built < set.hs_n; built++)
		if ((rc = worker_init(&set.hs_srv[built], built, NULL, &opts)) != DFR_OK) {
			built++; /* fini the half-built one too */
			goto out;
		}
	if ((sub = dfr_bus_sub_open(d.dd_base, dfr_env_run_dir(), bus_apply, &set)) == NULL) {
		rc = DFR_EIO;
		goto out;
	}
	for (unsigned i = 0; i < set.hs_n; i++)
		if ((rc = worker_start(&set.hs_srv[i])) != DFR_OK)
			goto out;
	d.dd_on_stop = on_stop;
	d.dd_arg = &set;
	dfr_log_info("httpd, %u workers, waf %s, fail %s, timeout %u ms, backend port %u, "
	             "https %s",
	             set.hs_n, set.hs_srv[0].h_waf ? "on" : "off",
	             opts.o_waf_fail_closed ? "closed" : "open", opts.o_waf_timeout_ms,
	             opts.o_up_port, opts.o_https_listen.n > 0 ? "on" : "off");
	dfr_daemon_ready(&d);
	rc = dfr_daemon_run(&d);
out:
	dfr_bus_sub_close(sub);
	for (unsigned i = 0; i < built; i++)
		worker_stop(&set.hs_srv[i]);
	for (unsigned i = 0; i < built; i++)
		worker_fini(&set.hs_srv[i]);
	free(set.hs_srv);
	tls_fini();
	dfr_daemon_fini(&d);
	return rc == DFR_OK ? 0 : 1;
}
