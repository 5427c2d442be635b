/*
 * syncd's environment (DESIGN.md §3-4), checked once at start. A bad value stops the daemon with
 * one line naming the variable, the value and what was expected.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "env.h"
#include "error.h"
#include "log.h"
#include "syncd.h"

#define POLL_PATH "/api/agent/poll"

static int
settings_core_url(struct syncd_settings *st, const char *url)
{
	size_t len = strlen(url);

	if (strncasecmp(url, "file://", 7) == 0) {
		st->st_source = SYNCD_SRC_FILE;
		if (url[7] != '/' || len - 7 >= sizeof(st->st_config_path)) {
			dfr_log_err("CORE_URL=%s is not valid (expected file:///absolute/path.json)",
				    url);
			return DFR_EINVAL;
		}
		snprintf(st->st_config_path, sizeof(st->st_config_path), "%s", url + 7);
		return DFR_OK;
	}
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
		dfr_log_err("CORE_URL=%s is not valid (expected http://, https:// or file://)", url);
		return DFR_EINVAL;
	}
	/* The Go agent's .env often has a trailing slash; the poll path follows either way. */
	while (len > 8 && url[len - 1] == '/')
		len--;
	if (len + sizeof(POLL_PATH) > sizeof(st->st_poll_url)) {
		dfr_log_err("CORE_URL is not valid (longer than %zu bytes)", sizeof(st->st_poll_url));
		return DFR_EINVAL;
	}
	snprintf(st->st_poll_url, sizeof(st->st_poll_url), "%.*s%s", (int)len, url, POLL_PATH);
	st->st_source = SYNCD_SRC_HTTP;
	return DFR_OK;
}

int
settings_load(struct syncd_settings *st)
{
	const char *url = dfr_env_str("CORE_URL", NULL);
	int rc;

	memset(st, 0, sizeof(*st));
	if (url != NULL) {
		if ((rc = settings_core_url(st, url)) != DFR_OK)
			return rc;
	} else {
		const char *path = dfr_env_str("DEFENRA_CONFIG", "/etc/defenra/config.json");
		st->st_source = SYNCD_SRC_FILE;
		snprintf(st->st_config_path, sizeof(st->st_config_path), "%s", path);
	}
	if (st->st_source == SYNCD_SRC_HTTP) {
		st->st_agent_id = dfr_env_str("AGENT_ID", NULL);
		st->st_agent_key = dfr_env_str("AGENT_KEY", NULL);
		if (st->st_agent_id == NULL || st->st_agent_key == NULL) {
			dfr_log_err("%s is not set (required when CORE_URL is http or https)",
				    st->st_agent_id == NULL ? "AGENT_ID" : "AGENT_KEY");
			return DFR_EINVAL;
		}
	}
	rc = dfr_env_uint("POLLING_INTERVAL", 60, 1, 86400, &st->st_interval_s);
	if (rc != DFR_OK)
		return rc;
	st->st_run_dir = dfr_env_run_dir();
	st->st_state_dir = dfr_env_state_dir();
	return DFR_OK;
}
