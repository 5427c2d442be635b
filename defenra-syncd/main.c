/*
 * defenra-syncd: the suite's only contact with the Core. Start-up order matters: the bus opens
 * first and the saved config is published before the first poll, so the other daemons serve a
 * node restarted during a Core outage (DESIGN.md §3).
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "syncd.h"

static void
syncd_reload(void *arg)
{
	struct syncd *sd = arg;

	dfr_log_info("syncd, SIGHUP: %s now",
		     sd->sd_set.st_source == SYNCD_SRC_FILE ? "rereading the file" : "polling");
	schedule_poll_now(sd);
}

int
main(int argc, char **argv)
{
	struct syncd sd;
	struct dfr_config *saved;
	int rc = DFR_EINVAL;

	if (argc > 1) {
		fprintf(stderr, "usage: %s (configured by its environment, see "
				"docs/configuration.md)\n",
			argv[0]);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	memset(&sd, 0, sizeof(sd));
	sd.sd_started = time(NULL);
	sd.sd_rng = (uint32_t)getpid() ^ (uint32_t)sd.sd_started;
	if (dfr_daemon_init(&sd.sd_daemon, "syncd", "SYNCD_ADMIN_LISTEN", "127.0.0.1:8080") !=
	    DFR_OK)
		return 1;
	sd.sd_daemon.dd_on_reload = syncd_reload;
	sd.sd_daemon.dd_arg = &sd;
	if ((rc = settings_load(&sd.sd_set)) != DFR_OK)
		goto out;
	if ((sd.sd_pub = dfr_bus_pub_open(sd.sd_daemon.dd_base, sd.sd_set.st_run_dir)) == NULL) {
		rc = DFR_EIO;
		goto out;
	}
	agent_api_install(&sd);
	if ((saved = state_load(&sd.sd_set)) != NULL) {
		/* Served as it was: same generation, no delta, subscribers take a snapshot. */
		sd.sd_generation = saved->cfg_generation;
		sd.sd_config = saved;
		dfr_bus_pub_publish(sd.sd_pub, saved, NULL);
		dfr_admin_set_generation(sd.sd_daemon.dd_admin, sd.sd_generation);
		agent_api_update_metrics(&sd);
	}
	if ((rc = fetch_start(&sd)) != DFR_OK || (rc = schedule_start(&sd)) != DFR_OK)
		goto out;
	dfr_log_info("syncd, started: config from %s every %u s, bus in %s, state in %s",
		     sd.sd_set.st_source == SYNCD_SRC_HTTP ? sd.sd_set.st_poll_url
							   : sd.sd_set.st_config_path,
		     sd.sd_set.st_interval_s, sd.sd_set.st_run_dir, sd.sd_set.st_state_dir);
	dfr_daemon_ready(&sd.sd_daemon);
	rc = dfr_daemon_run(&sd.sd_daemon);
out:
	fetch_stop(&sd);
	if (sd.sd_poll_timer != NULL)
		event_free(sd.sd_poll_timer);
	dfr_bus_pub_close(sd.sd_pub);
	dfr_config_unref(sd.sd_config);
	dfr_daemon_fini(&sd.sd_daemon);
	return rc == DFR_OK ? 0 : 1;
}
