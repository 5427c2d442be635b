/*
 * Subscriber glue: each complete config from syncd (shared/bus_sub.c) is applied to the set of
 * proxies (proxy.c) and its generation shown on /health. Nothing of the config is kept: proxy.c
 * copies what it needs, so the reference is dropped at once.
 */
#include "admin.h"
#include "bus.h"
#include "env.h"
#include "l4d.h"

static void
on_config(struct dfr_config *cfg, void *arg)
{
	struct l4d *l4 = arg;

	proxy_apply(l4, cfg);
	if (l4->l_admin != NULL)
		dfr_admin_set_generation(l4->l_admin, cfg->cfg_generation);
	dfr_config_unref(cfg);
}

struct dfr_bus_sub *
bus_open(struct l4d *l4)
{
	return dfr_bus_sub_open(l4->l_base, dfr_env_run_dir(), on_config, l4);
}
