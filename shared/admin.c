/*
 * The admin HTTP endpoint of every daemon (DESIGN.md §5): /health, /metrics and /stats on the
 * daemon's <DAEMON>_ADMIN_LISTEN, served by libevent's evhttp inside the daemon's own loop.
 *
 * This is a tool for health checks and scrapers, not a web server: GET (and HEAD) only, small
 * header and body limits, a short timeout, one route table of exact paths. A daemon changes what
 * a path answers with dfr_admin_route() (syncd's agent-level /health and /stats) or adds fields
 * to the default objects through the on_health / on_stats hooks.
 *
 * We bind the socket ourselves instead of evhttp_bind_socket(): it takes the numeric address
 * dfr_parse_addr() already checked (IPv6 in brackets included) and gives the real errno for the
 * one log line when the port is taken.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "env.h"
#include "error.h"
#include "log.h"
#include "metrics.h"

#define ADMIN_TIMEOUT_S 10
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY 1024
#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4"

struct admin_route {
	char *ar_path;
	dfr_admin_fn *ar_fn;
	void *ar_arg;
};

struct dfr_admin {
	struct event_base *ad_base;
	struct evhttp *ad_http;
	struct evbuffer *ad_out; /* reused for every answer: evhttp_send_reply() drains it */
	char ad_daemon[32];
	char ad_prefix[32]; /* the daemon's name as a Prometheus metric name prefix */
	char ad_listen[64];
	uint16_t ad_port;
	uint64_t ad_generation; /* atomic: a daemon may publish it from another thread */
	struct timespec ad_start;
	struct admin_route *ad_routes;
	size_t ad_nroutes;
	dfr_admin_json_fn *ad_on_health, *ad_on_stats;
	void *ad_health_arg, *ad_stats_arg;
};

static const char *
reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	}
	return "Unknown";
}

/* Prints obj into out and deletes it; 500 when memory runs out on the way. */
static int
send_json(struct evbuffer *out, cJSON *obj, int status)
{
	char *s = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;

	cJSON_Delete(obj);
	if (s == NULL) {
		evbuffer_add_printf(out, "{\"error\":\"out of memory\"}");
		return 500;
	}
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
	return status;
}

/* The fields /health and /stats share. */
static void
add_common(const struct dfr_admin *adm, cJSON *obj)
{
	cJSON_AddNumberToObject(obj, "generation", (double)dfr_admin_generation(adm));
	cJSON_AddNumberToObject(obj, "uptime_s", floor(dfr_admin_uptime(adm)));
}

static int
route_health(struct dfr_admin *adm, struct evbuffer *out, const char **ct, void *arg)
{
	bool up = dfr_admin_generation(adm) > 0;
	cJSON *obj = cJSON_CreateObject();

	if (obj != NULL) {
		cJSON_AddStringToObject(obj, "status", up ? "ok" : "starting");
		add_common(adm, obj);
		if (adm->ad_on_health != NULL)
			adm->ad_on_health(adm, obj, adm->ad_health_arg);
	}
	return send_json(out, obj, up ? 200 : 503);
}

static int
route_stats(struct dfr_admin *adm, struct evbuffer *out, const char **ct, void *arg)
{
	cJSON *obj = cJSON_CreateObject(), *m;

	if (obj != NULL) {
		cJSON_AddStringToObject(obj, "daemon", adm->ad_daemon);
		add_common(adm, obj);
		if ((m = dfr_metrics_json()) != NULL)
			cJSON_AddItemToObject(obj, "metrics", m);
		if (adm->ad_on_stats != NULL)
			adm->ad_on_stats(adm, obj, adm->ad_stats_arg);
	}
	return send_json(out, obj, 200);
}

static int
route_metrics(struct dfr_admin *adm, struct evbuffer *out, const char **ct, void *arg)
{
	size_t len;
	char *text = dfr_metrics_prometheus(&len);

	*ct = CT_PROM;
	if (text == NULL) {
		evbuffer_add_printf(out, "# out of memory\n");
		return 500;
	}
	evbuffer_add(out, text, len);
	free(text);
	evbuffer_add_printf(out,
			    "# HELP %1$s_config_generation Config generation in force (0: none yet).\n"
			    "# TYPE %1$s_config_generation gauge\n"
			    "%1$s_config_generation %2$llu\n"
			    "# HELP %1$s_uptime_seconds Seconds since the daemon started.\n"
			    "# TYPE %1$s_uptime_seconds gauge\n"
			    "%1$s_uptime_seconds %3$.0f\n",
			    adm->ad_prefix, (unsigned long long)dfr_admin_generation(adm),
			    floor(dfr_admin_uptime(adm)));
	return 200;
}

static struct admin_route *
route_find(struct dfr_admin *adm, const char *path)
{
	for (size_t i = 0; i < adm->ad_nroutes; i++)
		if (strcmp(adm->ad_routes[i].ar_path, path) == 0)
			return &adm->ad_routes[i];
	return NULL;
}

static void
admin_request(struct evhttp_request *req, void *arg)
{
	struct dfr_admin *adm = arg;
	struct evbuffer *out = adm->ad_out;
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *ct = CT_JSON;
	struct admin_route *r;
	int status;

	evbuffer_drain(out, evbuffer_get_length(out));
	if (path == NULL || *path == '\0')
		path = "/";
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(hdr, "Allow", "GET, HEAD");
		evbuffer_add_printf(out, "{\"error\":\"method not allowed\"}\n");
		status = 405;
	} else if ((r = route_find(adm, path)) == NULL) {
		evbuffer_add_printf(out, "{\"error\":\"not found\"}\n");
		status = 404;
	} else {
		status = r->ar_fn(adm, out, &ct, r->ar_arg);
		if (ct == NULL)
			ct = CT_JSON;
	}
	evhttp_add_header(hdr, "Content-Type", ct);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	if (cmd == EVHTTP_REQ_HEAD) {
		/* libevent 2.1 would send the body of a HEAD answer: keep only its length. */
		char clen[24];
		snprintf(clen, sizeof(clen), "%zu", evbuffer_get_length(out));
		evhttp_add_header(hdr, "Content-Length", clen);
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	evhttp_send_reply(req, status, reason(status), out);
}

/* A listening socket on a, or -1 with errno set. */
static int
listen_on(const struct dfr_addr *a)
{
	int fd, one = 1, saved;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (const struct sockaddr *)&a->sa, a->salen) == -1 || listen(fd, 64) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static uint16_t
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct dfr_admin *
dfr_admin_open(struct event_base *base, const char *daemon, const char *listen)
{
	struct dfr_admin *adm = NULL;
	struct dfr_addr addr;
	int fd = -1;

	if (dfr_parse_addr(listen, &addr) != DFR_OK) {
		dfr_log_err("admin, cannot listen on %s (not host:port or [v6]:port)",
			    listen != NULL ? listen : "(null)");
		return NULL;
	}
	if ((adm = calloc(1, sizeof(*adm))) == NULL)
		goto oom;
	adm->ad_base = base;
	snprintf(adm->ad_daemon, sizeof(adm->ad_daemon), "%s", daemon);
	snprintf(adm->ad_listen, sizeof(adm->ad_listen), "%s", addr.text);
	for (size_t i = 0; adm->ad_daemon[i] != '\0'; i++) {
		char c = adm->ad_daemon[i];
		bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			   (i > 0 && c >= '0' && c <= '9');
		adm->ad_prefix[i] = okc ? c : '_';
	}
	clock_gettime(CLOCK_MONOTONIC, &adm->ad_start);
	if ((adm->ad_out = evbuffer_new()) == NULL || (adm->ad_http = evhttp_new(base)) == NULL)
		goto oom;
	evhttp_set_timeout(adm->ad_http, ADMIN_TIMEOUT_S);
	evhttp_set_max_headers_size(adm->ad_http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(adm->ad_http, ADMIN_MAX_BODY);
	/* Let every method reach admin_request(), which answers 405 in JSON like the rest. */
	evhttp_set_allowed_methods(adm->ad_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
							 EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
							 EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
							 EVHTTP_REQ_PATCH);
	evhttp_set_gencb(adm->ad_http, admin_request, adm);
	dfr_admin_route(adm, "/health", route_health, NULL);
	dfr_admin_route(adm, "/metrics", route_metrics, NULL);
	dfr_admin_route(adm, "/stats", route_stats, NULL);
	if (adm->ad_nroutes != 3)
		goto oom;

	if ((fd = listen_on(&addr)) == -1) {
		dfr_log_err("admin, cannot listen on %s (%s)", addr.text, strerror(errno));
		goto fail;
	}
	adm->ad_port = bound_port(fd);
	if (evhttp_accept_socket_with_handle(adm->ad_http, fd) == NULL) {
		dfr_log_err("admin, cannot listen on %s (libevent refused the socket)", addr.text);
		(void)close(fd);
		goto fail;
	}
	dfr_log_info("admin, listening on %s", addr.text);
	return adm;
oom:
	dfr_log_err("admin, cannot listen on %s (out of memory)", addr.text);
fail:
	dfr_admin_close(adm);
	return NULL;
}

void
dfr_admin_set_generation(struct dfr_admin *adm, uint64_t generation)
{
	__atomic_store_n(&adm->ad_generation, generation, __ATOMIC_RELAXED);
}

uint64_t
dfr_admin_generation(const struct dfr_admin *adm)
{
	return __atomic_load_n(&adm->ad_generation, __ATOMIC_RELAXED);
}

double
dfr_admin_uptime(const struct dfr_admin *adm)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - adm->ad_start.tv_sec) +
	       (double)(now.tv_nsec - adm->ad_start.tv_nsec) / 1e9;
}

uint16_t
dfr_admin_port(const struct dfr_admin *adm)
{
	return adm->ad_port;
}

void
dfr_admin_route(struct dfr_admin *adm, const char *path, dfr_admin_fn *fn, void *arg)
{
	struct admin_route *r = route_find(adm, path), *n;

	if (r == NULL) {
		n = realloc(adm->ad_routes, (adm->ad_nroutes + 1) * sizeof(*n));
		if (n == NULL) {
			dfr_log_err("admin, cannot add route %s (out of memory)", path);
			return;
		}
		adm->ad_routes = n;
		r = &n[adm->ad_nroutes];
		if ((r->ar_path = strdup(path)) == NULL) {
			dfr_log_err("admin, cannot add route %s (out of memory)", path);
			return;
		}
		adm->ad_nroutes++;
	}
	r->ar_fn = fn;
	r->ar_arg = arg;
}

void
dfr_admin_on_health(struct dfr_admin *adm, dfr_admin_json_fn *fn, void *arg)
{
	adm->ad_on_health = fn;
	adm->ad_health_arg = arg;
}

void
dfr_admin_on_stats(struct dfr_admin *adm, dfr_admin_json_fn *fn, void *arg)
{
	adm->ad_on_stats = fn;
	adm->ad_stats_arg = arg;
}

void
dfr_admin_close(struct dfr_admin *adm)
{
	if (adm == NULL)
		return;
	if (adm->ad_http != NULL)
		evhttp_free(adm->ad_http); /* closes the listener and any open connection */
	if (adm->ad_out != NULL)
		evbuffer_free(adm->ad_out);
	for (size_t i = 0; i < adm->ad_nroutes; i++)
		free(adm->ad_routes[i].ar_path);
	free(adm->ad_routes);
	free(adm);
}
