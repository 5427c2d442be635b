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

/* Only the value is public, so that updates inline to one relaxed atomic op; the registry keeps
 * the name, labels and help beside it (metrics.c). Do not declare one yourself. */
struct dfr_metric {
	int64_t m_value;
};

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

/* Safe from any thread without a lock; relaxed ordering: a reader sees each value whole, with no
 * ordering against other memory. */
static inline void
dfr_metric_add(struct dfr_metric *m, int64_t delta)
{
	if (m != NULL)
		__atomic_fetch_add(&m->m_value, delta, __ATOMIC_RELAXED);
}

static inline void
dfr_metric_inc(struct dfr_metric *m)
{
	dfr_metric_add(m, 1);
}

static inline void
dfr_metric_set(struct dfr_metric *m, int64_t value)
{
	if (m != NULL)
		__atomic_store_n(&m->m_value, value, __ATOMIC_RELAXED);
}

static inline int64_t
dfr_metric_value(const struct dfr_metric *m)
{
	return m != NULL ? __atomic_load_n(&m->m_value, __ATOMIC_RELAXED) : 0;
}

/* The registry as Prometheus text (one HELP/TYPE per name). Caller frees; NULL on ENOMEM. */
char *dfr_metrics_prometheus(size_t *len);

/* The registry as a JSON object {"name": value, "name{labels}": value, …}. Caller deletes. */
struct cJSON *dfr_metrics_json(void);

/* A latency histogram in Prometheus form, made of registry counters: cumulative buckets
 * `<base>_seconds_bucket{le="…"}` (and `le="+Inf"`), `<base>_microseconds_sum` and
 * `<base>_seconds_count`. Bounds are in microseconds, ascending, at most DFR_HISTOGRAM_MAX. */
#define DFR_HISTOGRAM_MAX 24

struct dfr_histogram {
	size_t hi_n;
	const uint64_t *hi_bounds_us;
	struct dfr_metric *hi_bucket[DFR_HISTOGRAM_MAX + 1]; /* the last is +Inf */
	struct dfr_metric *hi_sum_us, *hi_count;
};

/* Registers the histogram's counters; `bounds_us` must outlive it. DFR_OK, DFR_EINVAL (too
 * many bounds) or DFR_ENOMEM. */
int dfr_histogram_init(struct dfr_histogram *h, const char *base, const char *help,
		       const uint64_t *bounds_us, size_t n);
/* Counts one observation of `us` microseconds (three relaxed atomic adds). */
void dfr_histogram_observe(struct dfr_histogram *h, uint64_t us);
/* Bucket i's cumulative count as /metrics shows it (i == hi_n: +Inf). hi_bucket[i] itself holds
 * only the observations above the bound below it. */
int64_t dfr_histogram_le(const struct dfr_histogram *h, size_t i);

/* Forgets every metric (tests only: pointers held become invalid). */
void dfr_metrics_reset(void);

#endif
