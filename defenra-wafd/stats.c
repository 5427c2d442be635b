/*
 * wafd's metrics (shared/metrics.h): verdicts by result, failures by kind, evaluation latency
 * as a cumulative histogram, the generation and the Lua states alive. Every update is one
 * relaxed atomic add on a pointer fetched at start-up, so the hot path takes no lock.
 *
 * Also the rate limit of per-request log lines (script failures, ngx.log, print): the counters
 * are the truth, the log is a sample of at most LOG_BURST lines per second.
 */
#include <stdio.h>
#include <time.h>

#include "metrics.h"
#include "wafd.h"

#define LOG_BURST 20

static const uint64_t bucket_us[] = {10, 25, 50, 100, 250, 500, 1000, 5000, 25000, 100000};


static struct dfr_metric *m_action[3];
static struct dfr_metric *m_fail[DFR_WAF_FAIL_MAX + 1];
static struct dfr_histogram m_eval;
static struct dfr_metric *m_generation, *m_domains, *m_states, *m_compile_errors;
static struct dfr_metric *m_log_dropped;
static struct dfr_metric *m_conns, *m_peer_errors;

static int64_t log_window; /* second of the current window */
static int log_count;

void
stats_init(void)
{
	char labels[64];

	for (unsigned i = 0; i < 3; i++) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", dfr_waf_action_name(i));
		m_action[i] = dfr_counter("wafd_verdicts_total", labels, "Verdicts by result");
	}
	for (unsigned i = 1; i <= DFR_WAF_FAIL_MAX; i++) {
		snprintf(labels, sizeof(labels), "kind=\"%s\"", dfr_waf_fail_name(i));
		m_fail[i] =
		        dfr_counter("wafd_failures_total", labels,
		                    "Error verdicts by kind (script error, budget, memory, ...)");
	}
	(void)dfr_histogram_init(&m_eval, "wafd_eval", "Time to judge one request", bucket_us,
	                         sizeof(bucket_us) / sizeof(bucket_us[0]));
	m_generation = dfr_gauge("wafd_generation", NULL, "Config generation of the code in force");
	m_domains = dfr_gauge("wafd_domains_with_code", NULL, "Domains that have Lua code");
	m_states = dfr_gauge("wafd_lua_states", NULL, "Lua states alive over all workers");
	m_compile_errors = dfr_counter("wafd_compile_errors_total", NULL,
	                               "Domain code that did not compile (per worker state)");
	m_log_dropped = dfr_counter("wafd_log_lines_dropped_total", NULL,
	                            "Per-request log lines over the rate limit");
	m_conns = dfr_gauge("wafd_connections", NULL, "Connections open on waf.rep");
	m_peer_errors = dfr_counter("wafd_peer_errors_total", NULL,
	                            "waf.rep connections closed for a protocol error");
}

void
stats_verdict(const struct dfr_waf_rep *rep, uint64_t elapsed_ns)
{
	uint64_t us = elapsed_ns / 1000;

	if (rep->wv_action < 3)
		dfr_metric_inc(m_action[rep->wv_action]);
	if (rep->wv_action == DFR_WAF_ERROR && rep->wv_fail >= 1 &&
	    rep->wv_fail <= DFR_WAF_FAIL_MAX)
		dfr_metric_inc(m_fail[rep->wv_fail]);
	dfr_histogram_observe(&m_eval, us);
}

void
stats_generation(uint64_t generation, size_t ndomains_with_code)
{
	dfr_metric_set(m_generation, (int64_t)generation);
	dfr_metric_set(m_domains, (int64_t)ndomains_with_code);
}

void
stats_states(long delta)
{
	dfr_metric_add(m_states, delta);
}

void
stats_compile_error(void)
{
	dfr_metric_inc(m_compile_errors);
}

void
stats_conns(int delta)
{
	dfr_metric_add(m_conns, delta);
}

void
stats_peer_error(void)
{
	dfr_metric_inc(m_peer_errors);
}

bool
stats_log_allowed(void)
{
	int64_t now = (int64_t)time(NULL), w = __atomic_load_n(&log_window, __ATOMIC_RELAXED);

	if (now != w && __atomic_compare_exchange_n(&log_window, &w, now, false, __ATOMIC_RELAXED,
	                                            __ATOMIC_RELAXED))
		__atomic_store_n(&log_count, 0, __ATOMIC_RELAXED);
	if (__atomic_add_fetch(&log_count, 1, __ATOMIC_RELAXED) <= LOG_BURST)
		return true;
	dfr_metric_inc(m_log_dropped);
	return false;
}
