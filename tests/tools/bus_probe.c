/*
 * A test subscriber: opens the config bus in RUN_DIR (argv[1]) like any daemon and prints one
 * JSON line per config handed over, with how it arrived, so integration tests can watch the bus:
 *   {"generation":3,"domains":["example.com"],"proxies":2,"deltas":1,"snapshots":1,"gaps":0}
 * Stops on SIGTERM/SIGINT.
 */
#include <event2/event.h>
#include <nng/nng.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"

static int64_t
counter(const char *name)
{
	return dfr_metric_value(dfr_counter(name, NULL, ""));
}

static void
on_config(struct dfr_config *cfg, void *arg)
{
	printf("{\"generation\":%llu,\"domains\":[", (unsigned long long)cfg->cfg_generation);
	for (size_t i = 0; i < cfg->cfg_ndomains; i++)
		printf("%s\"%s\"", i ? "," : "", cfg->cfg_domains[i]->dom_name);
	printf("],\"proxies\":%zu,\"deltas\":%lld,\"snapshots\":%lld,\"gaps\":%lld}\n",
	       cfg->cfg_nproxies, (long long)counter("bus_deltas_applied_total"),
	       (long long)counter("bus_snapshots_total"), (long long)counter("bus_gaps_total"));
	fflush(stdout);
	dfr_config_unref(cfg);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct dfr_bus_sub *sub;
	struct event *term, *intr;

	if (argc != 2) {
		fprintf(stderr, "usage: %s RUN_DIR\n", argv[0]);
		return 2;
	}
	dfr_log_init("bus-probe");
	base = event_base_new();
	term = evsignal_new(base, SIGTERM, on_signal, base);
	intr = evsignal_new(base, SIGINT, on_signal, base);
	event_add(term, NULL);
	event_add(intr, NULL);
	if ((sub = dfr_bus_sub_open(base, argv[1], on_config, NULL)) == NULL)
		return 1;
	event_base_dispatch(base);
	dfr_bus_sub_close(sub);
	event_free(term);
	event_free(intr);
	event_base_free(base);
	nng_fini();
	return 0;
}
