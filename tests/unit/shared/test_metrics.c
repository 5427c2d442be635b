/* The metrics registry (shared/metrics.c): identity of metrics, updates, Prometheus text, JSON,
 * and lock-free increments from several threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "error.h"
#include "metrics.h"
#include "tests/lib/tap.h"

#define THREADS 4
#define PER_THREAD 200000

static void
test_identity(void)
{
	struct dfr_metric *a, *b, *c, *d, *e;

	dfr_metrics_reset();
	a = dfr_counter("dnsd_queries_total", "type=\"A\"", "DNS queries.");
	b = dfr_counter("dnsd_queries_total", "type=\"A\"", NULL);
	c = dfr_counter("dnsd_queries_total", "type=\"AAAA\"", NULL);
	d = dfr_counter("dnsd_queries_total", NULL, NULL);
	e = dfr_counter("dnsd_queries_total", "", NULL);
	ok(a != NULL, "get returns a metric");
	ok(a == b, "same name and labels, same pointer");
	ok(a != c, "other labels, other pointer");
	ok(d != a && d != c, "no labels is its own series");
	ok(d == e, "empty labels are no labels");
	ok(dfr_gauge("other", NULL, NULL) != d, "other name, other pointer");
	dfr_metrics_reset();
}

static void
test_updates(void)
{
	struct dfr_metric *c, *g;

	dfr_metrics_reset();
	c = dfr_counter("c_total", NULL, NULL);
	g = dfr_gauge("g", NULL, NULL);
	is_int(dfr_metric_value(c), 0, "a new counter is 0");
	dfr_metric_inc(c);
	dfr_metric_inc(c);
	dfr_metric_add(c, 40);
	is_int(dfr_metric_value(c), 42, "inc, inc, add 40 gives 42");
	dfr_metric_set(g, 7);
	dfr_metric_add(g, -10);
	is_int(dfr_metric_value(g), -3, "gauge set 7, add -10 gives -3");
	dfr_metric_set(g, INT64_MAX);
	is_int(dfr_metric_value(g), INT64_MAX, "gauge holds 64 bits");
	/* NULL is accepted everywhere (a failed registration must not crash the hot path). */
	dfr_metric_inc(NULL);
	dfr_metric_add(NULL, 5);
	dfr_metric_set(NULL, 5);
	is_int(dfr_metric_value(NULL), 0, "NULL reads 0");
	is_int(dfr_metric_value(dfr_counter("c_total", NULL, NULL)), 42,
	       "a second get sees the same value");
	dfr_metrics_reset();
}

static void
test_prometheus(void)
{
	size_t len = 0;
	char *text;
	const char *want = "# HELP dnsd_queries_total DNS queries by type.\n"
			   "# TYPE dnsd_queries_total counter\n"
			   "dnsd_queries_total{type=\"A\"} 3\n"
			   "dnsd_queries_total{type=\"AAAA\"} 1\n"
			   "# TYPE dnsd_zones gauge\n"
			   "dnsd_zones 12\n"
			   "# HELP dnsd_odd_help A \\\\ and a\\nnewline.\n"
			   "# TYPE dnsd_odd_help counter\n"
			   "dnsd_odd_help 0\n";

	dfr_metrics_reset();
	text = dfr_metrics_prometheus(&len);
	is_str(text, "", "empty registry renders nothing");
	is_int(len, 0, "empty registry length 0");
	free(text);

	struct dfr_metric *a = dfr_counter("dnsd_queries_total", "type=\"A\"", "DNS queries by type.");
	struct dfr_metric *z = dfr_gauge("dnsd_zones", NULL, NULL);
	struct dfr_metric *aaaa = dfr_counter("dnsd_queries_total", "type=\"AAAA\"", NULL);
	dfr_counter("dnsd_odd_help", NULL, "A \\ and a\nnewline.");
	dfr_metric_add(a, 3);
	dfr_metric_inc(aaaa);
	dfr_metric_set(z, 12);
	text = dfr_metrics_prometheus(&len);
	is_str(text, want, "Prometheus text: grouped by name, registration order, escaped help");
	is_int(len, strlen(want), "length returned");
	free(text);
	text = dfr_metrics_prometheus(NULL);
	is_str(text, want, "stable from one rendering to the next; NULL len is fine");
	free(text);
	dfr_metrics_reset();
}

static void
test_json(void)
{
	cJSON *obj, *it;

	dfr_metrics_reset();
	dfr_metric_add(dfr_counter("httpd_requests_total", "status=\"200\"", NULL), 5);
	dfr_metric_set(dfr_gauge("httpd_conns", NULL, NULL), 2);
	obj = dfr_metrics_json();
	ok(obj != NULL && cJSON_IsObject(obj), "JSON is an object");
	is_int(cJSON_GetArraySize(obj), 2, "JSON has one member per series");
	it = cJSON_GetObjectItemCaseSensitive(obj, "httpd_requests_total{status=\"200\"}");
	ok(cJSON_IsNumber(it) && it->valuedouble == 5, "labelled series as name{labels}");
	it = cJSON_GetObjectItemCaseSensitive(obj, "httpd_conns");
	ok(cJSON_IsNumber(it) && it->valuedouble == 2, "plain series as name");
	char *s = cJSON_PrintUnformatted(obj);
	is_str(s, "{\"httpd_requests_total{status=\\\"200\\\"}\":5,\"httpd_conns\":2}",
	       "JSON text");
	free(s);
	cJSON_Delete(obj);
	dfr_metrics_reset();
	obj = dfr_metrics_json();
	is_int(cJSON_GetArraySize(obj), 0, "after reset the JSON is empty");
	cJSON_Delete(obj);
}

static void *
bump(void *arg)
{
	struct dfr_metric *m = arg;
	/* Each thread also registers: the lookup must return the shared series. */
	struct dfr_metric *mine = dfr_counter("hits_total", NULL, NULL);

	for (int i = 0; i < PER_THREAD; i++)
		dfr_metric_inc(i % 2 ? m : mine);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t th[THREADS];
	struct dfr_metric *m;

	dfr_metrics_reset();
	m = dfr_counter("hits_total", NULL, "Hits.");
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, bump, m);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	is_int(dfr_metric_value(m), (long long)THREADS * PER_THREAD,
	       "%d threads x %d increments add up", THREADS, PER_THREAD);
	dfr_metrics_reset();
}

static void
test_histogram(void)
{
	static const uint64_t bounds[] = {10, 100};
	struct dfr_histogram h;
	char *text;
	cJSON *json, *item;

	dfr_metrics_reset();
	is_int(dfr_histogram_init(&h, "x_latency", "Latency.", bounds, 2), DFR_OK, "histogram made");
	dfr_histogram_observe(&h, 5);
	dfr_histogram_observe(&h, 10);
	dfr_histogram_observe(&h, 50);
	dfr_histogram_observe(&h, 500);
	is_int(dfr_histogram_le(&h, 0), 2, "le=10us counts 5 and 10 (bounds inclusive)");
	is_int(dfr_histogram_le(&h, 1), 3, "le=100us is cumulative");
	is_int(dfr_histogram_le(&h, 2), 4, "+Inf counts everything");
	is_int(dfr_metric_value(h.hi_bucket[1]), 1, "an observation is added to one bucket only");
	is_int(dfr_metric_value(h.hi_sum_us), 565, "sum in microseconds");
	is_int(dfr_metric_value(h.hi_count), 4, "count");
	text = dfr_metrics_prometheus(NULL);
	ok(text != NULL && strstr(text, "x_latency_seconds_bucket{le=\"1e-05\"} 2\n") != NULL &&
	           strstr(text, "x_latency_seconds_bucket{le=\"0.0001\"} 3\n") != NULL &&
	           strstr(text, "x_latency_seconds_bucket{le=\"+Inf\"} 4\n") != NULL &&
	           strstr(text, "x_latency_microseconds_sum 565\n") != NULL,
	   "histogram in Prometheus text, buckets cumulative");
	free(text);
	json = dfr_metrics_json();
	item = cJSON_GetObjectItemCaseSensitive(json, "x_latency_seconds_bucket{le=\"0.0001\"}");
	ok(cJSON_IsNumber(item) && item->valuedouble == 3, "and in JSON");
	cJSON_Delete(json);
	uint64_t many[DFR_HISTOGRAM_MAX + 1] = {0};
	is_int(dfr_histogram_init(&h, "y", "", many, DFR_HISTOGRAM_MAX + 1), DFR_EINVAL,
	       "too many bounds refused");
	dfr_metrics_reset();
}

int
main(void)
{
	plan_lazy();
	test_identity();
	test_updates();
	test_prometheus();
	test_json();
	test_threads();
	test_histogram();
	return done_testing();
}
