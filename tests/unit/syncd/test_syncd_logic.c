/* syncd's pure pieces: back-off schedule, Go-style durations and times, state save and load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "defenra-syncd/syncd.h"
#include "error.h"
#include "tap.h"

static void
test_backoff(void)
{
	uint32_t rng = 12345;
	unsigned prev_max = 0;
	bool within = true, grows = true, capped = true;

	for (unsigned f = 1; f <= 12; f++) {
		unsigned lo = ~0u, hi = 0;
		for (int i = 0; i < 200; i++) {
			unsigned d = schedule_backoff_ms(f, 60, &rng);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		unsigned full = 1000u << (f - 1 < 16 ? f - 1 : 16);
		if (full > 60000)
			full = 60000;
		within &= lo >= full / 2 && hi <= full;
		grows &= hi >= prev_max || hi == 60000 || full == 60000;
		capped &= hi <= 60000;
		prev_max = hi;
	}
	ok(within, "back-off stays within [d/2, d] of 1 s doubling");
	ok(grows, "back-off grows with consecutive failures");
	ok(capped, "back-off never passes the polling interval");
	unsigned a = schedule_backoff_ms(5, 60, &rng), b = schedule_backoff_ms(5, 60, &rng);
	uint32_t r2 = 777;
	unsigned c = schedule_backoff_ms(5, 60, &r2);
	ok(a != b || b != c, "back-off is jittered");
	ok(schedule_backoff_ms(30, 1, &rng) <= 1000, "a 1 s interval caps the back-off at 1 s");
}

static void
test_formats(void)
{
	char buf[64];

	agent_api_duration(buf, sizeof(buf), 45);
	is_str(buf, "45s", "duration of 45 s like Go");
	agent_api_duration(buf, sizeof(buf), 125);
	is_str(buf, "2m5s", "duration of 125 s like Go");
	agent_api_duration(buf, sizeof(buf), 3723);
	is_str(buf, "1h2m3s", "duration of 3723 s like Go");
	agent_api_rfc3339(buf, sizeof(buf), 1795521600);
	is_str(buf, "2026-11-24T12:00:00Z", "RFC 3339 time");
}

static void
test_state(void)
{
	char dir[] = "/tmp/dfr-state-XXXXXX", path[256], *json;
	struct syncd_settings st = {0};
	struct dfr_config *cfg = NULL, *back;
	struct stat sb;
	size_t len = 0;

	if (mkdtemp(dir) == NULL) {
		ok(false, "mkdtemp");
		return;
	}
	st.st_state_dir = dir;
	ok(state_load(&st) == NULL, "no saved state on a first start");
	snprintf(path, sizeof(path), "%s/small.json", tap_fixtures_dir());
	json = tap_read_file(path, &len);
	if (!ok(json != NULL && dfr_config_parse(json, len, NULL, &cfg, NULL, 0) == DFR_OK,
		"small.json parses")) {
		free(json);
		return;
	}
	cfg->cfg_generation = 42;
	is_int(state_save(&st, cfg), DFR_OK, "state saved");
	snprintf(path, sizeof(path), "%s/config.json", dir);
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "state file has mode 0600");
	back = state_load(&st);
	ok(back != NULL, "state loads back");
	if (back != NULL) {
		is_int((long long)back->cfg_generation, 42, "with its generation");
		is_int((long long)back->cfg_ndomains, 1, "with its domain");
		ok(back->cfg_ndomains == 1 &&
			   strcmp(back->cfg_domains[0]->dom_json, cfg->cfg_domains[0]->dom_json) == 0,
		   "the domain is the same after a round trip");
		ok(back->cfg_ndomains == 1 && back->cfg_domains[0]->dom_ssl.ssl_key_pem != NULL,
		   "the certificate key survives (HTTPS after a restart in an outage)");
	}
	dfr_config_unref(back);
	/* A torn state file is ignored, not fatal. */
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		fputs("{\"success\":true,\"domains\":[{", f);
		fclose(f);
	}
	ok(state_load(&st) == NULL, "a corrupt state file is ignored");
	unlink(path);
	rmdir(dir);
	dfr_config_unref(cfg);
	free(json);
}

int
main(void)
{
	plan_lazy();
	test_backoff();
	test_formats();
	test_state();
	return done_testing();
}
