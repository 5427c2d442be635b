/*
 * defenra-dnsd: the authoritative GeoDNS server of the Defenra edge (DESIGN.md §6). Reads its
 * environment (DNS_LISTEN, DNSD_WORKERS, GEOIP_DB, DNSD_ADMIN_LISTEN), opens the UDP workers and
 * the TCP listener, subscribes to the config bus and runs the main loop until SIGTERM. Zones
 * come only from the bus; until the first config arrives every query is REFUSED.
 */
#include <urcu.h>

#include "daemon.h"
#include "dnsd.h"
#include "env.h"
#include "error.h"
#include "log.h"

int
main(void)
{
	struct dfr_daemon d;
	struct dfr_addr_list addrs;
	struct udp_pool *udp = NULL;
	struct tcp_server *tcp = NULL;
	unsigned workers;
	int rc;

	if (dfr_daemon_init(&d, "dnsd", "DNSD_ADMIN_LISTEN", "127.0.0.1:9101") != DFR_OK)
		return 1;
	if ((rc = dfr_env_addr_list("DNS_LISTEN", "0.0.0.0:53,[::]:53", &addrs)) != DFR_OK ||
	    (rc = dfr_env_workers("DNSD_WORKERS", &workers)) != DFR_OK)
		goto out;
	stats_init();
	geo_open(dfr_env_str("GEOIP_DB", "/usr/share/defenra/GeoLite2-City.mmdb"));
	rcu_register_thread(); /* the main thread answers TCP */
	if ((udp = udp_start(&addrs, workers)) == NULL ||
	    (tcp = tcp_start(d.dd_base, &addrs)) == NULL ||
	    (rc = bus_start(d.dd_base, d.dd_admin)) != DFR_OK) {
		rc = DFR_EIO;
		goto stop;
	}
	dfr_log_info("dnsd, serving DNS on %s with %u workers",
	             dfr_env_str("DNS_LISTEN", "0.0.0.0:53,[::]:53"), workers);
	dfr_daemon_ready(&d);
	rc = dfr_daemon_run(&d);
stop:
	bus_stop();
	tcp_stop(tcp);
	udp_stop(udp);
	bus_swap(NULL);
	geo_close();
	rcu_unregister_thread();
out:
	dfr_daemon_fini(&d);
	return rc == DFR_OK ? 0 : 1;
}
