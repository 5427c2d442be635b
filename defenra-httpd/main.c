/*
 * defenra-httpd: the HTTP reverse proxy (see httpd.h, docs/httpd.md). This file reads the
 * environment, starts the workers (worker.c: a thread and event loop each) and runs the main
 * loop, which holds the bus subscriber and the admin endpoint.
 */
#include <ctype.h>
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

void
httpd_opts_defaults(struct httpd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->o_workers = 1;
	o->o_max_header_bytes = 16 * 1024;
	o->o_max_headers = 100;
	o->o_max_body = 4096ULL << 20;
	o->o_header_timeout_ms = 10000;
	o->o_body_timeout_ms = 30000;
	o->o_idle_timeout_ms = 60000;
	o->o_send_timeout_ms = 60000;
	o->o_up_connect_ms = 5000;
	o->o_up_read_ms = 60000;
	o->o_up_keepalive = 64;
	o->o_up_idle_ms = 60000;
	o->o_up_port = 80;
	o->o_max_conns = 16000;
	o->o_waf_timeout_ms = 50;
}

int
httpd_opts_from_env(struct httpd_opts *o)
{
	static const char *const access[] = {"off", "text", "json", NULL};
	static const char *const fail[] = {"open", "closed", NULL};
	unsigned body_mb, port, failmode;
	const char *https = dfr_env_str("HTTPS_LISTEN", "");
	int rc;

	httpd_opts_defaults(o);
	/* HTTPS_LISTEN=off: no TLS listener at all. */
	if (strcmp(https, "off") != 0 &&
	    (rc = dfr_env_addr_list("HTTPS_LISTEN", "0.0.0.0:443,[::]:443", &o->o_https_listen)) !=
	            DFR_OK)
		return rc;
	https = dfr_env_str("HTTPS_DEFAULT_DOMAIN", "");
	if (strlen(https) > DFR_CFG_MAX_NAME || strchr(https, '/') != NULL)
		return dfr_env_invalid("HTTPS_DEFAULT_DOMAIN", https,
		                       "a domain name of the config");
	for (size_t i = 0; https[i] != '\0'; i++)
		o->o_https_default[i] = (char)tolower((unsigned char)https[i]);
	if ((rc = dfr_env_addr_list("HTTP_LISTEN", "0.0.0.0:80,[::]:80", &o->o_listen)) != DFR_OK ||
	    (rc = dfr_env_workers("HTTPD_WORKERS", &o->o_workers)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_HEADER_BYTES", 16384, 1024, 1048576,
	                       &o->o_max_header_bytes)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_HEADERS", 100, 8, 1000, &o->o_max_headers)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_BODY_MB", 4096, 0, 1048576, &body_mb)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_HEADER_TIMEOUT_MS", 10000, 100, 3600000,
	                       &o->o_header_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_BODY_TIMEOUT_MS", 30000, 100, 3600000,
	                       &o->o_body_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_IDLE_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_idle_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_SEND_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_send_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_CONNECT_TIMEOUT_MS", 5000, 10, 600000,
	                       &o->o_up_connect_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_READ_TIMEOUT_MS", 60000, 10, 3600000,
	                       &o->o_up_read_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_KEEPALIVE", 64, 0, 10000, &o->o_up_keepalive)) !=
	            DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_IDLE_TIMEOUT_MS", 60000, 100, 3600000,
	                       &o->o_up_idle_ms)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_UPSTREAM_PORT", 80, 1, 65535, &port)) != DFR_OK ||
	    (rc = dfr_env_uint("HTTPD_MAX_CONNECTIONS", 16000, 1, 1000000, &o->o_max_conns)) !=
	            DFR_OK ||
	    (rc = dfr_env_choice("HTTPD_ACCESS_LOG", "off", access, &o->o_access_log)) != DFR_OK ||
	    (rc = dfr_env_uint("WAF_TIMEOUT_MS", 50, 1, 60000, &o->o_waf_timeout_ms)) != DFR_OK ||
	    (rc = dfr_env_choice("WAF_FAIL_MODE", "open", fail, &failmode)) != DFR_OK)
		return rc;
	o->o_max_body = (uint64_t)body_mb << 20;
	o->o_up_port = (uint16_t)port;
	o->o_waf_fail_closed = failmode == 1;
	return DFR_OK;
}

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
	stats_init();
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
