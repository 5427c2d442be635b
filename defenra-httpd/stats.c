/*
 * Metrics (shared/metrics.h) and the access log of httpd.
 *
 * Requests are counted by domain and status class (httpd_requests_total{domain,status}); the
 * per-zone counter pointers are cached in the route table's zones so the hot path pays one
 * atomic add. The backend latency histogram has fixed buckets. The access log (HTTPD_ACCESS_LOG
 * = off | text | json, off by default) writes one line per exchange on stdout, fully buffered
 * and flushed by line, apart from the diagnostic log on stderr. TLS: handshakes completed (full or
 * resumed, by version) and failed (by reason), contexts built, ticket key rotations.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "httpd.h"
#include "metrics.h"

static const uint64_t lat_bounds_us[] = {500,    1000,   2500,    5000,    10000,
                                         25000,  50000,  100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};

static struct dfr_histogram m_lat;
static struct dfr_metric *m_conns, *m_bytes_in, *m_bytes_out, *m_nohost[6];
static struct dfr_metric *m_waf_pass, *m_waf_block, *m_waf_open, *m_waf_closed;
static struct dfr_metric *m_up_connect_fail, *m_up_timeout, *m_up_retry, *m_up_reuse;
static struct dfr_metric *m_tls_full, *m_tls_resumed, *m_tls_v12, *m_tls_v13, *m_tls_built;
static struct dfr_metric *m_tls_rotations, *m_h2_conns, *m_h2_streams, *m_h2_refused;
static struct dfr_metric *m_tls_fail[8];
static const char *const tls_fail_reason[8] = {"closed",  "timeout",      "version",
                                               "no_shared_cipher", "no_sni", "unknown_name",
                                               "plain_http", "other"};
static unsigned access_mode;

static const char *const class_name[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

void
httpd_stats_init(void)
{
	char labels[64];

	(void)dfr_histogram_init(&m_lat, "httpd_upstream_latency",
	                         "Time from request sent to response head",
	                         lat_bounds_us, sizeof(lat_bounds_us) / sizeof(lat_bounds_us[0]));
	m_conns = dfr_gauge("httpd_connections_open", NULL, "Client connections open");
	m_bytes_in = dfr_counter("httpd_client_bytes_in_total", NULL, "Bytes read from clients");
	m_bytes_out = dfr_counter("httpd_client_bytes_out_total", NULL, "Bytes written to clients");
	for (int c = 1; c <= 5; c++) {
		snprintf(labels, sizeof(labels), "domain=\"-\",status=\"%s\"", class_name[c]);
		m_nohost[c] = dfr_counter("httpd_requests_total", labels,
		                          "Requests by domain and status class");
	}
	m_waf_pass = dfr_counter("httpd_waf_verdicts_total", "verdict=\"pass\"", "WAF verdicts");
	m_waf_block = dfr_counter("httpd_waf_verdicts_total", "verdict=\"block\"", "WAF verdicts");
	m_waf_open = dfr_counter("httpd_waf_failures_total", "mode=\"open\"",
	                         "Requests wafd did not decide (down, slow, script error)");
	m_waf_closed = dfr_counter("httpd_waf_failures_total", "mode=\"closed\"",
	                           "Requests wafd did not decide (down, slow, script error)");
	m_up_connect_fail =
	        dfr_counter("httpd_upstream_errors_total", "kind=\"connect\"", "Backend failures");
	m_up_timeout =
	        dfr_counter("httpd_upstream_errors_total", "kind=\"timeout\"", "Backend failures");
	m_up_retry = dfr_counter("httpd_upstream_retries_total", NULL,
	                         "Requests sent again after a reused connection was closed");
	m_up_reuse = dfr_counter("httpd_upstream_reused_total", NULL,
	                         "Requests sent on a pooled keep-alive connection");
	m_tls_full = dfr_counter("httpd_tls_handshakes_total", "kind=\"full\"",
	                         "Completed TLS handshakes");
	m_tls_resumed = dfr_counter("httpd_tls_handshakes_total", "kind=\"resumed\"",
	                            "Completed TLS handshakes");
	m_tls_v12 = dfr_counter("httpd_tls_versions_total", "version=\"TLSv1.2\"",
	                        "Completed TLS handshakes by protocol version");
	m_tls_v13 = dfr_counter("httpd_tls_versions_total", "version=\"TLSv1.3\"",
	                        "Completed TLS handshakes by protocol version");
	for (int i = 0; i < 8; i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", tls_fail_reason[i]);
		m_tls_fail[i] = dfr_counter("httpd_tls_handshake_failures_total", labels,
		                            "TLS handshakes that did not complete, by reason");
	}
	m_tls_built = dfr_counter("httpd_tls_contexts_built_total", NULL,
	                          "TLS contexts built from certificates of the config");
	m_h2_conns =
	        dfr_counter("httpd_h2_connections_total", NULL, "HTTP/2 connections (ALPN h2)");
	m_h2_streams = dfr_counter("httpd_h2_streams_total", NULL, "HTTP/2 streams opened");
	m_h2_refused = dfr_counter("httpd_h2_streams_refused_total", NULL,
	                           "HTTP/2 streams refused (header list over the limit)");
	m_tls_rotations = dfr_counter("httpd_tls_ticket_key_rotations_total", NULL,
	                              "Session ticket key rotations");
}

bool
stats_access_on(void)
{
	return access_mode != 0;
}

void
stats_access_mode(unsigned mode)
{
	access_mode = mode;
	if (mode != 0)
		setvbuf(stdout, NULL, _IOLBF, 0);
}

static struct dfr_metric *
req_metric(const struct hconn *hc, unsigned cls)
{
	struct route_zone *z = (struct route_zone *)hc->hc_zone;
	char labels[DFR_CFG_MAX_NAME + 64];

	if (z == NULL)
		return m_nohost[cls];
	/* The zone belongs to an immutable table, but this cache is ours to fill (one thread
	 * per table user; a race only registers the same pointer twice). */
	if (z->rz_req_metric[cls] == NULL) {
		snprintf(labels, sizeof(labels), "domain=\"%s\",status=\"%s\"", z->rz_name,
		         class_name[cls]);
		__atomic_store_n(&z->rz_req_metric[cls],
		                 dfr_counter("httpd_requests_total", labels,
		                             "Requests by domain and status class"),
		                 __ATOMIC_RELAXED);
	}
	return z->rz_req_metric[cls];
}

/* Writes s into a JSON string body (no quotes). */
static void
json_esc(FILE *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

void
stats_request(struct hconn *hc)
{
	unsigned cls = hc->hc_status / 100;
	const struct h1_msg *m = &hc->hc_req.hp_msg;

	if (cls < 1 || cls > 5)
		cls = 5;
	dfr_metric_inc(req_metric(hc, cls));
	dfr_metric_add(m_bytes_in, (int64_t)hc->hc_bytes_in);
	dfr_metric_add(m_bytes_out, (int64_t)hc->hc_bytes_out);
	if (access_mode != 0) {
		struct timespec now;
		double ms;
		const char *method = hc->hc_req.hp_head_done
		                             ? http_method_str((enum http_method)m->m_method)
		                             : "-";
		size_t ulen = hc->hc_req.hp_head_done ? m->m_url_len : 0;
		const char *url = m->m_buf + m->m_url;

		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (double)(now.tv_sec - hc->hc_t0.tv_sec) * 1e3 +
		     (double)(now.tv_nsec - hc->hc_t0.tv_nsec) / 1e6;
		if (access_mode == 2) {
			fprintf(stdout, "{\"client\":\"%s\",\"host\":\"", hc->hc_peer_ip);
			json_esc(stdout, hc->hc_host, strlen(hc->hc_host));
			fprintf(stdout, "\",\"method\":\"%s\",\"uri\":\"", method);
			json_esc(stdout, url, ulen);
			fprintf(stdout,
			        "\",\"status\":%u,\"bytes_in\":%llu,\"bytes_out\":%llu,"
			        "\"ms\":%.3f,\"upstream\":\"%s\"}\n",
			        hc->hc_status, (unsigned long long)hc->hc_bytes_in,
			        (unsigned long long)hc->hc_bytes_out, ms,
			        hc->hc_route ? hc->hc_route->rt_addr_text : "-");
		} else {
			fprintf(stdout, "%s %s %s %.*s %u %llu %llu %.3f\n", hc->hc_peer_ip,
			        hc->hc_host[0] ? hc->hc_host : "-", method, (int)ulen,
			        ulen ? url : "", hc->hc_status, (unsigned long long)hc->hc_bytes_in,
			        (unsigned long long)hc->hc_bytes_out, ms);
		}
	}
	hc->hc_bytes_in = hc->hc_bytes_out = 0;
}

void
stats_conn(int delta)
{
	dfr_metric_add(m_conns, delta);
}

void
stats_bytes(uint64_t in, uint64_t out)
{
	dfr_metric_add(m_bytes_in, (int64_t)in);
	dfr_metric_add(m_bytes_out, (int64_t)out);
}

void
stats_upstream_latency(double seconds)
{
	dfr_histogram_observe(&m_lat, seconds > 0 ? (uint64_t)(seconds * 1e6) : 0);
}

void
stats_waf(const char *verdict)
{
	if (strcmp(verdict, "pass") == 0)
		dfr_metric_inc(m_waf_pass);
	else if (strcmp(verdict, "block") == 0)
		dfr_metric_inc(m_waf_block);
	else if (strcmp(verdict, "fail_open") == 0)
		dfr_metric_inc(m_waf_open);
	else
		dfr_metric_inc(m_waf_closed);
}

void
stats_upstream_event(const char *what)
{
	if (strcmp(what, "reuse") == 0)
		dfr_metric_inc(m_up_reuse);
	else if (strcmp(what, "retry") == 0)
		dfr_metric_inc(m_up_retry);
	else if (strcmp(what, "timeout") == 0)
		dfr_metric_inc(m_up_timeout);
	else
		dfr_metric_inc(m_up_connect_fail);
}

void
stats_tls_handshake(bool resumed, int version)
{
	dfr_metric_inc(resumed ? m_tls_resumed : m_tls_full);
	if (version == 0x0304)
		dfr_metric_inc(m_tls_v13);
	else
		dfr_metric_inc(m_tls_v12);
}

void
stats_tls_failed(const char *reason)
{
	int i;

	for (i = 0; i < 7; i++)
		if (strcmp(reason, tls_fail_reason[i]) == 0)
			break;
	dfr_metric_inc(m_tls_fail[i]);
}

void
stats_tls_cert_built(void)
{
	dfr_metric_inc(m_tls_built);
}

void
stats_tls_ticket_rotation(void)
{
	dfr_metric_inc(m_tls_rotations);
}

void
stats_h2(const char *what)
{
	if (strcmp(what, "conn") == 0)
		dfr_metric_inc(m_h2_conns);
	else if (strcmp(what, "stream") == 0)
		dfr_metric_inc(m_h2_streams);
	else
		dfr_metric_inc(m_h2_refused);
}
