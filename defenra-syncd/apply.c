/*
 * Judging a fetched answer and making it the config in force: parse and validate against the
 * config in force (so a bad renewal keeps the old certificate), diff, and only when something
 * changed: a new generation, a delta on the bus, the state file. A failed answer changes
 * nothing but the counters (DESIGN.md §3).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "syncd.h"

static void
apply_failed(struct syncd *sd, const char *why)
{
	struct syncd_stats *ss = &sd->sd_stats;

	ss->ss_failed_polls++;
	ss->ss_consecutive_failures++;
	/* The same failure every few seconds during an outage is one line, then counters. */
	if (strcmp(ss->ss_last_error, why) != 0) {
		dfr_log_warn("poll, failed, config unchanged at generation %llu (%s)",
			     (unsigned long long)sd->sd_generation, why);
		snprintf(ss->ss_last_error, sizeof(ss->ss_last_error), "%s", why);
	} else {
		dfr_log_debug("poll, failed again (%s), %llu in a row", why,
			      (unsigned long long)ss->ss_consecutive_failures);
	}
}

int
apply_config(struct syncd *sd, struct dfr_config *cfg, bool save)
{
	struct dfr_config_diff diff;
	int rc;

	if ((rc = dfr_config_diff(sd->sd_config, cfg, &diff)) != DFR_OK) {
		dfr_config_unref(cfg);
		return rc;
	}
	if (sd->sd_config != NULL && dfr_config_diff_is_empty(&diff)) {
		/* Same config: no new generation, no churn for the subscribers. */
		dfr_config_diff_free(&diff);
		dfr_config_unref(cfg);
		return DFR_OK;
	}
	cfg->cfg_generation = sd->sd_generation + 1;
	dfr_log_info("config, generation %llu -> %llu: domains +%zu ~%zu -%zu, proxies +%zu ~%zu "
		     "-%zu (%zu domains, %zu proxies, %zu records, %zu items dropped)",
		     (unsigned long long)sd->sd_generation,
		     (unsigned long long)cfg->cfg_generation, diff.dd_nadded, diff.dd_nchanged,
		     diff.dd_nremoved, diff.dd_npx_added, diff.dd_npx_changed, diff.dd_npx_removed,
		     cfg->cfg_ndomains, cfg->cfg_nproxies, cfg->cfg_nrecords, cfg->cfg_dropped);
	rc = dfr_bus_pub_publish(sd->sd_pub, cfg, &diff);
	dfr_config_diff_free(&diff);
	if (rc != DFR_OK)
		dfr_log_warn("bus, delta for generation %llu not sent (%s); heartbeats will "
			     "bring subscribers to it",
			     (unsigned long long)cfg->cfg_generation, dfr_strerror(rc));
	dfr_config_unref(sd->sd_config);
	sd->sd_config = cfg;
	sd->sd_generation = cfg->cfg_generation;
	dfr_admin_set_generation(sd->sd_daemon.dd_admin, sd->sd_generation);
	if (save)
		(void)state_save(&sd->sd_set, cfg);
	return DFR_OK;
}

void
apply_answer(struct syncd *sd, struct syncd_answer *an)
{
	struct syncd_stats *ss = &sd->sd_stats;
	struct dfr_config *cfg = NULL;
	char why[256] = "";
	bool ok = false;
	int rc;

	ss->ss_total_polls++;
	ss->ss_last_poll = time(NULL);
	if (an->an_rc != DFR_OK) {
		apply_failed(sd, an->an_error);
		goto out;
	}
	ss->ss_last_bytes = an->an_len;
	rc = dfr_config_parse(an->an_body, an->an_len, sd->sd_config, &cfg, why, sizeof(why));
	if (rc != DFR_OK) {
		char msg[300];
		snprintf(msg, sizeof(msg), "answer rejected: %s", why[0] ? why : dfr_strerror(rc));
		apply_failed(sd, msg);
		goto out;
	}
	sd->sd_next_interval_s = cfg->cfg_next_poll_interval;
	if ((rc = apply_config(sd, cfg, true)) != DFR_OK) {
		apply_failed(sd, dfr_strerror(rc));
		goto out;
	}
	if (ss->ss_consecutive_failures > 0)
		dfr_log_notice("poll, ok again after %llu failures",
			       (unsigned long long)ss->ss_consecutive_failures);
	ss->ss_consecutive_failures = 0;
	ss->ss_last_error[0] = '\0';
	ss->ss_last_success = ss->ss_last_poll;
	ok = true;
out:
	agent_api_update_metrics(sd);
	schedule_next(sd, ok);
}
