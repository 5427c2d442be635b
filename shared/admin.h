/*
 * The admin HTTP endpoint every daemon serves (DESIGN.md §5) on its <DAEMON>_ADMIN_LISTEN:
 *   GET /health   200 {"status":"ok","generation":N,"uptime_s":S} once a config applied,
 *                 503 {"status":"starting",…} before;
 *   GET /metrics  Prometheus text of the metrics registry;
 *   GET /stats    the registry as JSON (plus what the daemon adds).
 * Runs in the daemon's main event loop (libevent's evhttp); it is not on any hot path.
 */
#ifndef DFR_ADMIN_H
#define DFR_ADMIN_H

#include <stdint.h>

struct event_base;
struct evbuffer;
struct cJSON;

struct dfr_admin;

/* Fills `out` with a body and returns the HTTP status; `content_type` may be set. */
typedef int dfr_admin_fn(struct dfr_admin *adm, struct evbuffer *out, const char **content_type,
			 void *arg);
/* Adds the daemon's own fields to the /health or /stats JSON object before it is sent. */
typedef void dfr_admin_json_fn(struct dfr_admin *adm, struct cJSON *obj, void *arg);

/* Listens on `listen` ("host:port", "[v6]:port"). NULL after logging why. */
struct dfr_admin *dfr_admin_open(struct event_base *base, const char *daemon, const char *listen);

/* The generation /health reports; 0 means "starting" (503). */
void dfr_admin_set_generation(struct dfr_admin *adm, uint64_t generation);
uint64_t dfr_admin_generation(const struct dfr_admin *adm);
double dfr_admin_uptime(const struct dfr_admin *adm); /* seconds since open */
/* The port actually bound (useful after listening on port 0, as tests do). */
uint16_t dfr_admin_port(const struct dfr_admin *adm);

/* Replaces the handler of `path` (e.g. syncd's agent-level /health). */
void dfr_admin_route(struct dfr_admin *adm, const char *path, dfr_admin_fn *fn, void *arg);
/* Hooks that extend the default /health and /stats objects. */
void dfr_admin_on_health(struct dfr_admin *adm, dfr_admin_json_fn *fn, void *arg);
void dfr_admin_on_stats(struct dfr_admin *adm, dfr_admin_json_fn *fn, void *arg);

void dfr_admin_close(struct dfr_admin *adm); /* NULL is fine */

#endif
