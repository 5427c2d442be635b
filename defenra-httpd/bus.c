/*
 * Subscriber glue (main thread): each complete config from the bus (shared/bus.h) becomes one
 * route table, built aside, then handed to every worker, which swaps it in at its next loop
 * turn (worker.c). Connections hold their own reference for the request they serve, so the old
 * table is freed when its last request ends (STYLE.md §8). A table that cannot be built changes
 * nothing.
 */
#include "admin.h"
#include "httpd.h"
#include "log.h"

void
bus_apply(struct dfr_config *cfg, void *arg)
{
	struct httpd_set *set = arg;
	struct route_table *t;

	t = route_table_build(cfg, set->hs_port);
	if (t == NULL) {
		dfr_log_err(
		        "bus, generation %llu not applied (route table), keeping the one in force",
		        (unsigned long long)cfg->cfg_generation);
		dfr_config_unref(cfg);
		return;
	}
	for (unsigned i = 0; i < set->hs_n; i++)
		worker_give_routes(&set->hs_srv[i], t);
	dfr_log_info("bus, generation %llu applied, %zu zones, %zu names, %u workers",
	             (unsigned long long)cfg->cfg_generation, t->rtab_nzones, t->rtab_nroutes,
	             set->hs_n);
	if (set->hs_admin != NULL)
		dfr_admin_set_generation(set->hs_admin, cfg->cfg_generation);
	route_table_unref(t);
	dfr_config_unref(cfg);
}
