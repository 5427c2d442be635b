/*
 * defenra-l4d: TCP and UDP port forwarding for the config's proxies (see l4d.h, docs/l4d.md).
 * This file only reads the environment, wires the pieces to one event loop and runs it.
 */
#include <stdlib.h>
#include <sys/resource.h>

#include "bus.h"
#include "daemon.h"
#include "error.h"
#include "l4d.h"
#include "log.h"

/* Each TCP connection holds two sockets (and a pipe pair while bytes are in flight), each UDP
 * session one: take every descriptor the hard limit allows. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			dfr_log_warn("l4d, open files limit stays below the hard limit");
	}
}

int
main(void)
{
	struct dfr_daemon d;
	struct l4d_opts opts;
	struct l4d *l4 = NULL;
	struct dfr_bus_sub *sub = NULL;
	int rc;

	if (dfr_daemon_init(&d, "l4d", "L4D_ADMIN_LISTEN", "127.0.0.1:9103") != DFR_OK)
		return 1;
	if ((rc = proxy_opts_read(&opts)) != DFR_OK)
		goto out;
	raise_nofile();
	if ((l4 = proxy_l4d_new(d.dd_base, &opts)) == NULL) {
		rc = DFR_ENOMEM;
		goto out;
	}
	l4->l_admin = d.dd_admin;
	if ((sub = bus_open(l4)) == NULL) {
		rc = DFR_EIO;
		goto out;
	}
	dfr_log_info("l4d, bind %s, splice %s, connect timeout %u ms, idle %u s, udp idle %u s, "
	             "max %u connections and %u sessions per proxy, grace %u ms",
	             opts.o_bind_text, opts.o_splice ? "on" : "off", opts.o_connect_timeout_ms,
	             opts.o_idle_timeout_s, opts.o_udp_idle_s, opts.o_max_conns,
	             opts.o_max_sessions, opts.o_grace_ms);
	dfr_daemon_ready(&d);
	rc = dfr_daemon_run(&d);
out:
	dfr_bus_sub_close(sub);
	proxy_l4d_free(l4);
	dfr_daemon_fini(&d);
	return rc == DFR_OK ? 0 : 1;
}
