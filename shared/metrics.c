/*
 * The process-wide metrics registry behind /metrics and /stats (metrics.h). Metrics are grouped
 * in families (one name, one kind, one help text) holding series (one label set each), both kept
 * in registration order so that the output is stable from one scrape to the next and every
 * family's samples come together, as the Prometheus text format requires.
 *
 * The value is the only thing the hot path touches: metrics.h inlines the update to one relaxed
 * atomic on it. Each series is allocated on its own cache line so that two counters bumped by
 * different worker threads do not share one. The mutex guards the lists only: registration and
 * rendering take it, updates never do. Nothing is ever freed before dfr_metrics_reset(), so a
 * pointer from dfr_metric_get() stays valid for the life of the process.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "error.h"
#include "log.h"
#include "metrics.h"

#define CACHE_LINE 64

struct metric_family;

struct metric_series {
	struct dfr_metric ms_m; /* first: the pointer handed out is the series' own */
	char *ms_labels;        /* NULL for none */
	struct metric_series *ms_next;
	/* A histogram bucket's next bucket down, else NULL: an observation counts in its own
	 * bucket only, and the cumulative value Prometheus wants is summed when shown. */
	struct metric_series *ms_below;
};

/* A series' value as shown: with the buckets below it for a histogram's. */
static int64_t
series_value(const struct metric_series *s)
{
	int64_t v = 0;

	for (; s != NULL; s = s->ms_below)
		v += dfr_metric_value(&s->ms_m);
	return v;
}

struct metric_family {
	char *mf_name;
	char *mf_help; /* NULL for none */
	enum dfr_metric_kind mf_kind;
	struct metric_series *mf_first, **mf_tail;
	struct metric_family *mf_next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family *reg_first, **reg_tail = &reg_first;

static bool
same_labels(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The family `name`, created when absent; NULL on ENOMEM. Caller holds reg_lock. */
static struct metric_family *
family_get(enum dfr_metric_kind kind, const char *name, const char *help)
{
	struct metric_family *f;

	for (f = reg_first; f != NULL; f = f->mf_next) {
		if (strcmp(f->mf_name, name) == 0) {
			if (f->mf_kind != kind)
				dfr_log_warn("metrics, %s registered as both counter and gauge "
					     "(keeping the first)",
					     name);
			if (f->mf_help == NULL && help != NULL)
				f->mf_help = strdup(help); /* NULL on ENOMEM: no HELP line */
			return f;
		}
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->mf_name = strdup(name)) == NULL)
		goto fail;
	if (help != NULL && (f->mf_help = strdup(help)) == NULL)
		goto fail;
	f->mf_kind = kind;
	f->mf_tail = &f->mf_first;
	*reg_tail = f;
	reg_tail = &f->mf_next;
	return f;
fail:
	if (f != NULL)
		free(f->mf_name);
	free(f);
	return NULL;
}

struct dfr_metric *
dfr_metric_get(enum dfr_metric_kind kind, const char *name, const char *labels, const char *help)
{
	struct metric_family *f;
	struct metric_series *s = NULL;
	size_t sz = (sizeof(*s) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;

	if (labels != NULL && *labels == '\0')
		labels = NULL;
	pthread_mutex_lock(&reg_lock);
	if ((f = family_get(kind, name, help)) == NULL)
		goto out;
	for (s = f->mf_first; s != NULL; s = s->ms_next)
		if (same_labels(s->ms_labels, labels))
			goto out;
	if ((s = aligned_alloc(CACHE_LINE, sz)) == NULL)
		goto out;
	memset(s, 0, sz);
	if (labels != NULL && (s->ms_labels = strdup(labels)) == NULL) {
		free(s);
		s = NULL;
		goto out;
	}
	*f->mf_tail = s;
	f->mf_tail = &s->ms_next;
out:
	pthread_mutex_unlock(&reg_lock);
	if (s == NULL)
		dfr_log_err("metrics, cannot register %s (out of memory)", name);
	return s != NULL ? &s->ms_m : NULL;
}

/* A growing string for the text rendering. */
struct sbuf {
	char *sb_p;
	size_t sb_len, sb_cap;
	bool sb_oom;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->sb_oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->sb_p + b->sb_len, b->sb_cap - b->sb_len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->sb_oom = true;
			return;
		}
		if ((size_t)n < b->sb_cap - b->sb_len) {
			b->sb_len += (size_t)n;
			return;
		}
		size_t cap = b->sb_cap * 2 + (size_t)n;
		char *p = realloc(b->sb_p, cap);
		if (p == NULL) {
			b->sb_oom = true;
			return;
		}
		b->sb_p = p;
		b->sb_cap = cap;
	}
}

/* HELP text escapes only backslash and newline (Prometheus text format 0.0.4). */
static void
sb_help(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			sb_printf(b, "\\\\");
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

char *
dfr_metrics_prometheus(size_t *len)
{
	struct sbuf b = {.sb_cap = 4096};

	if ((b.sb_p = malloc(b.sb_cap)) == NULL)
		return NULL;
	b.sb_p[0] = '\0';
	pthread_mutex_lock(&reg_lock);
	for (struct metric_family *f = reg_first; f != NULL; f = f->mf_next) {
		if (f->mf_first == NULL)
			continue;
		if (f->mf_help != NULL) {
			sb_printf(&b, "# HELP %s ", f->mf_name);
			sb_help(&b, f->mf_help);
			sb_printf(&b, "\n");
		}
		sb_printf(&b, "# TYPE %s %s\n", f->mf_name,
			  f->mf_kind == DFR_METRIC_COUNTER ? "counter" : "gauge");
		for (struct metric_series *s = f->mf_first; s != NULL; s = s->ms_next) {
			int64_t v = series_value(s);
			if (s->ms_labels != NULL)
				sb_printf(&b, "%s{%s} %" PRId64 "\n", f->mf_name, s->ms_labels, v);
			else
				sb_printf(&b, "%s %" PRId64 "\n", f->mf_name, v);
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (b.sb_oom) {
		free(b.sb_p);
		return NULL;
	}
	if (len != NULL)
		*len = b.sb_len;
	return b.sb_p;
}

struct cJSON *
dfr_metrics_json(void)
{
	cJSON *obj = cJSON_CreateObject();
	char key[512];

	if (obj == NULL)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	for (struct metric_family *f = reg_first; f != NULL; f = f->mf_next) {
		for (struct metric_series *s = f->mf_first; s != NULL; s = s->ms_next) {
			const char *k = f->mf_name;
			if (s->ms_labels != NULL) {
				snprintf(key, sizeof(key), "%s{%s}", f->mf_name, s->ms_labels);
				k = key;
			}
			if (cJSON_AddNumberToObject(obj, k, (double)series_value(s)) == NULL) {
				pthread_mutex_unlock(&reg_lock);
				cJSON_Delete(obj);
				return NULL;
			}
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return obj;
}

void
dfr_metrics_reset(void)
{
	struct metric_family *f, *fn;
	struct metric_series *s, *sn;

	pthread_mutex_lock(&reg_lock);
	for (f = reg_first; f != NULL; f = fn) {
		fn = f->mf_next;
		for (s = f->mf_first; s != NULL; s = sn) {
			sn = s->ms_next;
			free(s->ms_labels);
			free(s);
		}
		free(f->mf_name);
		free(f->mf_help);
		free(f);
	}
	reg_first = NULL;
	reg_tail = &reg_first;
	pthread_mutex_unlock(&reg_lock);
}

int
dfr_histogram_init(struct dfr_histogram *h, const char *base, const char *help,
		   const uint64_t *bounds_us, size_t n)
{
	char name[128], sum[128], count[128], labels[48];

	if (n > DFR_HISTOGRAM_MAX)
		return DFR_EINVAL;
	memset(h, 0, sizeof(*h));
	h->hi_n = n;
	h->hi_bounds_us = bounds_us;
	snprintf(name, sizeof(name), "%s_seconds_bucket", base);
	snprintf(sum, sizeof(sum), "%s_microseconds_sum", base);
	snprintf(count, sizeof(count), "%s_seconds_count", base);
	for (size_t i = 0; i <= n; i++) {
		if (i < n)
			snprintf(labels, sizeof(labels), "le=\"%g\"", (double)bounds_us[i] / 1e6);
		else
			snprintf(labels, sizeof(labels), "le=\"+Inf\"");
		if ((h->hi_bucket[i] = dfr_counter(name, labels, help)) == NULL)
			return DFR_ENOMEM;
	}
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 1; i <= n; i++)
		((struct metric_series *)h->hi_bucket[i])->ms_below =
		        (struct metric_series *)h->hi_bucket[i - 1];
	pthread_mutex_unlock(&reg_lock);
	h->hi_sum_us = dfr_counter(sum, NULL, help);
	h->hi_count = dfr_counter(count, NULL, help);
	return h->hi_sum_us != NULL && h->hi_count != NULL ? DFR_OK : DFR_ENOMEM;
}

void
dfr_histogram_observe(struct dfr_histogram *h, uint64_t us)
{
	size_t i = 0;

	/* Only the first bucket whose bound is at or above `us` counts it (one atomic add, not
	 * one per bucket above); the rendering sums them into Prometheus' cumulative form. */
	while (i < h->hi_n && us > h->hi_bounds_us[i])
		i++;
	dfr_metric_inc(h->hi_bucket[i]);
	dfr_metric_add(h->hi_sum_us, (int64_t)us);
	dfr_metric_inc(h->hi_count);
}

int64_t
dfr_histogram_le(const struct dfr_histogram *h, size_t i)
{
	return i <= h->hi_n && h->hi_bucket[i] != NULL
	               ? series_value((const struct metric_series *)h->hi_bucket[i])
	               : 0;
}
