/*
 * The agent-level admin answers existing monitors query on :8080 (go-agent-compat.md): /health
 * and /stats with the Go agent's field names beside the suite's own, and syncd's metrics.
 * Unlike the Go agent, "status" is "healthy" only once a config has applied.
 */
#include <event2/buffer.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "bus.h"
#include "config.h"
#include "metrics.h"
#include "syncd.h"

void
agent_api_duration(char *buf, size_t len, double seconds)
{
	long s = (long)seconds, h = s / 3600, m = (s / 60) % 60;

	/* Go's time.Duration.String() of whole seconds: "45s", "2m5s", "1h2m3s". */
	if (h > 0)
		snprintf(buf, len, "%ldh%ldm%lds", h, m, s % 60);
	else if (m > 0)
		snprintf(buf, len, "%ldm%lds", m, s % 60);
	else
		snprintf(buf, len, "%lds", s);
}

void
agent_api_rfc3339(char *buf, size_t len, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static size_t
rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t
proxies_active(const struct dfr_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; cfg != NULL && i < cfg->cfg_nproxies; i++)
		n += cfg->cfg_proxies[i]->px_enabled;
	return n;
}

static void
add_time(cJSON *obj, const char *name, time_t t)
{
	char buf[40];

	if (t == 0) {
		cJSON_AddNullToObject(obj, name);
		return;
	}
	agent_api_rfc3339(buf, sizeof(buf), t);
	cJSON_AddStringToObject(obj, name, buf);
}

static int
send_json(struct evbuffer *out, const char **ctype, cJSON *doc, int status)
{
	char *text = cJSON_PrintUnformatted(doc);

	cJSON_Delete(doc);
	if (text == NULL)
		return 500;
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	cJSON_free(text);
	*ctype = "application/json";
	return status;
}

static int
health_cb(struct dfr_admin *adm, struct evbuffer *out, const char **ctype, void *arg)
{
	struct syncd *sd = arg;
	double up = difftime(time(NULL), sd->sd_started);
	bool ready = sd->sd_config != NULL;
	cJSON *doc = cJSON_CreateObject();
	char buf[64];

	if (doc == NULL)
		return 500;
	cJSON_AddStringToObject(doc, "status", ready ? "healthy" : "starting");
	agent_api_duration(buf, sizeof(buf), up);
	cJSON_AddStringToObject(doc, "uptime", buf);
	add_time(doc, "last_poll", sd->sd_stats.ss_last_poll);
	cJSON_AddNumberToObject(doc, "domains_loaded", ready ? (double)sd->sd_config->cfg_ndomains : 0);
	cJSON_AddNumberToObject(doc, "proxies_active", (double)proxies_active(sd->sd_config));
	snprintf(buf, sizeof(buf), "%.2f MB", (double)rss_bytes() / (1024.0 * 1024.0));
	cJSON_AddStringToObject(doc, "memory_usage", buf);
	add_time(doc, "timestamp", time(NULL));
	cJSON_AddNumberToObject(doc, "generation", (double)sd->sd_generation);
	cJSON_AddNumberToObject(doc, "uptime_s", up);
	return send_json(out, ctype, doc, ready ? 200 : 503);
}

static int
stats_cb(struct dfr_admin *adm, struct evbuffer *out, const char **ctype, void *arg)
{
	struct syncd *sd = arg;
	const struct syncd_stats *ss = &sd->sd_stats;
	double up = difftime(time(NULL), sd->sd_started);
	cJSON *doc = cJSON_CreateObject(), *cfg, *rt, *poll;
	struct mallinfo2 mi = mallinfo2();
	char buf[64];

	if (doc == NULL)
		return 500;
	cfg = cJSON_AddObjectToObject(doc, "config");
	cJSON_AddNumberToObject(cfg, "total_polls", (double)ss->ss_total_polls);
	cJSON_AddNumberToObject(cfg, "failed_polls", (double)ss->ss_failed_polls);
	add_time(cfg, "last_poll_time", ss->ss_last_poll);
	cJSON_AddNumberToObject(cfg, "domains_loaded",
				sd->sd_config ? (double)sd->sd_config->cfg_ndomains : 0);
	cJSON_AddNumberToObject(cfg, "proxies_active", (double)proxies_active(sd->sd_config));

	rt = cJSON_AddObjectToObject(doc, "runtime");
	agent_api_duration(buf, sizeof(buf), up);
	cJSON_AddStringToObject(rt, "uptime", buf);
	cJSON_AddNumberToObject(rt, "memory_alloc", (double)mi.uordblks);
	cJSON_AddNumberToObject(rt, "memory_sys", (double)rss_bytes());
	cJSON_AddNumberToObject(rt, "num_threads", sd->sd_set.st_source == SYNCD_SRC_HTTP ? 2 : 1);

	poll = cJSON_AddObjectToObject(doc, "poll");
	cJSON_AddStringToObject(poll, "source",
				sd->sd_set.st_source == SYNCD_SRC_HTTP ? "core" : "file");
	cJSON_AddNumberToObject(poll, "consecutive_failures", (double)ss->ss_consecutive_failures);
	add_time(poll, "last_success_time", ss->ss_last_success);
	cJSON_AddStringToObject(poll, "last_error", ss->ss_last_error);
	cJSON_AddNumberToObject(poll, "next_poll_in_ms", sd->sd_next_delay_ms);
	cJSON_AddNumberToObject(poll, "last_answer_bytes", (double)ss->ss_last_bytes);

	cJSON_AddNumberToObject(doc, "generation", (double)sd->sd_generation);
	cJSON_AddNumberToObject(doc, "uptime_s", up);
	return send_json(out, ctype, doc, 200);
}

static struct {
	struct dfr_metric *polls_ok, *polls_failed, *last_success, *domains, *proxies, *bytes,
		*backoff, *records, *dropped;
} m;

void
agent_api_update_metrics(struct syncd *sd)
{
	const struct syncd_stats *ss = &sd->sd_stats;
	const struct dfr_config *cfg = sd->sd_config;

	dfr_metric_set(m.polls_ok, (int64_t)(ss->ss_total_polls - ss->ss_failed_polls));
	dfr_metric_set(m.polls_failed, (int64_t)ss->ss_failed_polls);
	dfr_metric_set(m.last_success, (int64_t)ss->ss_last_success);
	dfr_metric_set(m.domains, cfg ? (int64_t)cfg->cfg_ndomains : 0);
	dfr_metric_set(m.proxies, cfg ? (int64_t)cfg->cfg_nproxies : 0);
	dfr_metric_set(m.records, cfg ? (int64_t)cfg->cfg_nrecords : 0);
	dfr_metric_set(m.dropped, cfg ? (int64_t)cfg->cfg_dropped : 0);
	dfr_metric_set(m.bytes, (int64_t)ss->ss_last_bytes);
	dfr_metric_set(m.backoff, ss->ss_consecutive_failures ? (int64_t)sd->sd_next_delay_ms : 0);
}

void
agent_api_install(struct syncd *sd)
{
	struct dfr_admin *adm = sd->sd_daemon.dd_admin;

	/* The poll counters live in syncd_stats; these mirror them for /metrics. */
	m.polls_ok = dfr_metric_get(DFR_METRIC_COUNTER, "syncd_polls_total", "result=\"ok\"",
				    "Polls of the Core (or reads of the config file) by result");
	m.polls_failed = dfr_metric_get(DFR_METRIC_COUNTER, "syncd_polls_total",
					"result=\"failed\"",
					"Polls of the Core (or reads of the config file) by result");
	m.last_success = dfr_gauge("syncd_last_success_timestamp_seconds", NULL,
				   "Unix time of the last poll that brought a valid config");
	m.domains = dfr_gauge("syncd_domains", NULL, "Domains in the config in force");
	m.proxies = dfr_gauge("syncd_proxies", NULL, "Proxies in the config in force");
	m.records = dfr_gauge("syncd_records", NULL, "DNS records in the config in force");
	m.dropped = dfr_gauge("syncd_dropped_items", NULL,
			      "Items of the last applied answer dropped by validation");
	m.bytes = dfr_gauge("syncd_last_answer_bytes", NULL, "Size of the last poll answer");
	m.backoff = dfr_gauge("syncd_poll_backoff_ms", NULL,
			      "Delay before the next poll while polls fail, 0 when they succeed");
	dfr_admin_route(adm, "/health", health_cb, sd);
	dfr_admin_route(adm, "/stats", stats_cb, sd);
	agent_api_update_metrics(sd);
}
