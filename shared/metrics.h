/*
 * A small metrics registry every daemon uses for /metrics (Prometheus text) and /stats (JSON).
 *
 * A metric is a name, an optional label set and a 64-bit value updated with relaxed atomics, so
 * the hot path pays one atomic add. Registration takes a mutex: do it at start-up (or once per
 * new label value) and keep the pointer.
 */
#ifndef DFR_METRICS_H
#define DFR_METRICS_H

#include <stdint.h>

struct cJSON;

enum dfr_metric_kind {
	DFR_METRIC_COUNTER = 0, /* only grows */
	DFR_METRIC_GAUGE,       /* set to a value */
};

struct dfr_metric;

/* Gets or creates the metric `name` with `labels` (Prometheus label text such as
 * `type="A",rcode="NOERROR"`, or NULL). The same name and labels give the same pointer. Returns
 * NULL only on ENOMEM; every update function accepts NULL and does nothing. */
struct dfr_metric *dfr_metric_get(enum dfr_metric_kind kind, const char *name, const char *labels,
				  const char *help);

static inline struct dfr_metric *
dfr_counter(const char *name, const char *labels, const char *help)
{
	return dfr_metric_get(DFR_METRIC_COUNTER, name, labels, help);
}

static inline struct dfr_metric *
dfr_gauge(const char *name, const char *labels, const char *help)
{
	return dfr_metric_get(DFR_METRIC_GAUGE, name, labels, help);
}

void dfr_metric_add(struct dfr_metric *m, int64_t delta);
void dfr_metric_inc(struct dfr_metric *m);
void dfr_metric_set(struct dfr_metric *m, int64_t value);
int64_t dfr_metric_value(const struct dfr_metric *m);

/* The registry as Prometheus text (one HELP/TYPE per name). Caller frees; NULL on ENOMEM. */
char *dfr_metrics_prometheus(size_t *len);

/* The registry as a JSON object {"name": value, "name{labels}": value, …}. Caller deletes. */
struct cJSON *dfr_metrics_json(void);

/* Forgets every metric (tests only: pointers held become invalid). */
void dfr_metrics_reset(void);

#endif
