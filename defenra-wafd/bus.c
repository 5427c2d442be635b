/*
 * Subscriber glue: each complete config syncd hands over (shared/bus.h) becomes a generation of
 * code (code.c) that the worker pool picks up; the admin endpoint then reports its generation.
 *
 * Runs in the main loop's thread. Building a generation copies only the code that changed, and
 * the changed code is compiled once here, just to log a syntax error as soon as it arrives (a
 * worker compiles again in its own state, where the error becomes each request's verdict).
 */
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "admin.h"
#include "env.h"
#include "error.h"
#include "log.h"
#include "wafd.h"

struct wafd_bus {
	struct dfr_bus_sub *b_sub;
	struct wafd_pool *b_pool;
	struct dfr_admin *b_adm;
	struct wgen *b_gen; /* the generation last published */
};

static void
apply(struct dfr_config *cfg, void *arg)
{
	struct wafd_bus *b = arg;
	struct wgen *g = code_gen_build(cfg, b->b_gen);
	size_t with_code = 0, changed = 0;
	uint64_t from = b->b_gen != NULL ? b->b_gen->wg_generation : 0;
	char err[WAFD_ERRLEN];

	if (g == NULL) {
		dfr_log_err("bus, generation %llu not applied (out of memory)",
		            (unsigned long long)cfg->cfg_generation);
		dfr_config_unref(cfg);
		return;
	}
	for (size_t i = 0; i < g->wg_ncodes; i++) {
		struct wcode *c = g->wg_codes[i];
		if (c->wc_code == NULL)
			continue;
		with_code++;
		if (b->b_gen != NULL &&
		    code_find(b->b_gen, c->wc_dom_id, strlen(c->wc_dom_id), NULL, 0) == c)
			continue;
		changed++;
		if (script_check_compiles(c->wc_code, c->wc_len, c->wc_dom_name, err,
		                          sizeof(err)) != DFR_OK)
			dfr_log_warn("waf, %s: code does not compile, its requests get the fail "
			             "mode (%s)",
			             c->wc_dom_name, err);
	}
	worker_pool_publish(b->b_pool, code_gen_ref(g));
	shdict_prune(g);
	code_gen_unref(b->b_gen);
	b->b_gen = g;
	stats_generation(g->wg_generation, with_code);
	dfr_admin_set_generation(b->b_adm, g->wg_generation);
	dfr_log_info("bus, generation %llu -> %llu applied, %zu domains, %zu with code, %zu new or "
	             "changed",
	             (unsigned long long)from, (unsigned long long)g->wg_generation, g->wg_ncodes,
	             with_code, changed);
	dfr_config_unref(cfg);
}

struct wafd_bus *
wafd_bus_open(struct event_base *base, struct wafd_pool *pool, struct dfr_admin *adm)
{
	struct wafd_bus *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->b_pool = pool;
	b->b_adm = adm;
	if ((b->b_sub = dfr_bus_sub_open(base, dfr_env_run_dir(), apply, b)) == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void
wafd_bus_close(struct wafd_bus *b)
{
	if (b == NULL)
		return;
	dfr_bus_sub_close(b->b_sub);
	code_gen_unref(b->b_gen);
	free(b);
}
