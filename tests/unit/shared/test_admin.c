/* The admin endpoint (shared/admin.c) over real HTTP on loopback, and the daemon life cycle
 * (shared/daemon.c): signals, stop and reload hooks, sd_notify readiness and watchdog. The loop
 * runs in the main thread; a client thread sends plain-socket HTTP/1.0 requests and ends the
 * loop when done. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "admin.h"
#include "daemon.h"
#include "error.h"
#include "metrics.h"
#include "tests/lib/tap.h"

/* --- a tiny HTTP client ------------------------------------------------------------------ */
struct resp {
	int status;
	char head[4096]; /* status line and headers */
	char body[65536];
};

/* Sends `method path` over HTTP/1.0 to host:port and reads the whole answer. false on a socket
 * error or an answer that is not HTTP. */
static bool
http(int family, uint16_t port, const char *method, const char *path, struct resp *r)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct timeval tmo = {.tv_sec = 5};
	static char buf[sizeof(r->head) + sizeof(r->body)];
	size_t len = 0;
	ssize_t n;
	char req[512], *sep;
	int fd;

	memset(r, 0, sizeof(*r));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	}
	if ((fd = socket(family, SOCK_STREAM, 0)) == -1)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	if (connect(fd, (struct sockaddr *)&ss, sl) == -1) {
		close(fd);
		return false;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: test\r\n\r\n", method, path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return false;
	}
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1 || (sep = strstr(buf, "\r\n\r\n")) == NULL)
		return false;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(sep - buf), buf);
	snprintf(r->body, sizeof(r->body), "%s", sep + 4);
	return true;
}

static bool
has_header(const struct resp *r, const char *line)
{
	return strcasestr(r->head, line) != NULL;
}

/* --- the admin endpoint ------------------------------------------------------------------ */
struct ctx {
	struct event_base *base;
	struct dfr_admin *adm, *adm6;
	int custom_calls;
};

static void
health_hook(struct dfr_admin *adm, cJSON *obj, void *arg)
{
	cJSON_AddStringToObject(obj, "bus", "up");
}

static void
stats_hook(struct dfr_admin *adm, cJSON *obj, void *arg)
{
	cJSON_AddNumberToObject(obj, "workers", 2);
}

static int
custom_health(struct dfr_admin *adm, struct evbuffer *out, const char **ct, void *arg)
{
	struct ctx *c = arg;

	c->custom_calls++;
	evbuffer_add_printf(out, "{\"status\":\"healthy\",\"generation\":%llu}",
			    (unsigned long long)dfr_admin_generation(adm));
	return 200;
}

static int
plain_route(struct dfr_admin *adm, struct evbuffer *out, const char **ct, void *arg)
{
	*ct = "text/plain";
	evbuffer_add_printf(out, "pong");
	return 200;
}

static cJSON *
body_json(const struct resp *r)
{
	return cJSON_Parse(r->body);
}

static void *
client_phase1(void *arg)
{
	struct ctx *c = arg;
	uint16_t port = dfr_admin_port(c->adm);
	struct resp *r = malloc(sizeof(*r));
	cJSON *j, *m;

	ok(http(AF_INET, port, "GET", "/health", r), "GET /health answered");
	is_int(r->status, 503, "/health is 503 before a generation");
	ok(has_header(r, "Content-Type: application/json"), "/health is JSON");
	j = body_json(r);
	ok(j != NULL, "/health body parses: %s", r->body);
	is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "starting",
	       "status starting");
	ok(cJSON_IsNumber(cJSON_GetObjectItem(j, "generation")) &&
		   cJSON_GetObjectItem(j, "generation")->valuedouble == 0,
	   "generation 0");
	ok(cJSON_IsNumber(cJSON_GetObjectItem(j, "uptime_s")), "uptime_s is a number");
	is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "bus")), "up",
	       "the health hook added its field");
	cJSON_Delete(j);

	dfr_admin_set_generation(c->adm, 5);
	is_int(dfr_admin_generation(c->adm), 5, "generation getter");
	ok(http(AF_INET, port, "GET", "/health", r), "GET /health again");
	is_int(r->status, 200, "/health is 200 once a generation applied");
	j = body_json(r);
	is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "ok", "status ok");
	ok(cJSON_GetObjectItem(j, "generation") != NULL &&
		   cJSON_GetObjectItem(j, "generation")->valuedouble == 5,
	   "generation 5");
	cJSON_Delete(j);

	ok(http(AF_INET, port, "GET", "/health?verbose=1", r), "GET /health?query");
	is_int(r->status, 200, "the query string does not change the route");

	ok(http(AF_INET, port, "GET", "/metrics", r), "GET /metrics");
	is_int(r->status, 200, "/metrics 200");
	ok(has_header(r, "Content-Type: text/plain; version=0.0.4"), "/metrics content type");
	ok(strstr(r->body, "# TYPE testd_queries_total counter\n"
			   "testd_queries_total{type=\"A\"} 3\n") != NULL,
	   "/metrics carries the registry");
	ok(strstr(r->body, "# TYPE testd_config_generation gauge\ntestd_config_generation 5\n") !=
		   NULL,
	   "/metrics carries the generation gauge");
	ok(strstr(r->body, "\ntestd_uptime_seconds ") != NULL, "/metrics carries the uptime gauge");

	ok(http(AF_INET, port, "GET", "/stats", r), "GET /stats");
	is_int(r->status, 200, "/stats 200");
	ok(has_header(r, "Content-Type: application/json"), "/stats is JSON");
	j = body_json(r);
	ok(j != NULL, "/stats parses");
	is_str(cJSON_GetStringValue(cJSON_GetObjectItem(j, "daemon")), "testd", "/stats daemon");
	ok(cJSON_GetObjectItem(j, "generation") != NULL &&
		   cJSON_GetObjectItem(j, "generation")->valuedouble == 5,
	   "/stats generation");
	ok(cJSON_IsNumber(cJSON_GetObjectItem(j, "uptime_s")), "/stats uptime_s");
	m = cJSON_GetObjectItem(j, "metrics");
	ok(cJSON_IsObject(m) &&
		   cJSON_GetObjectItemCaseSensitive(m, "testd_queries_total{type=\"A\"}") != NULL &&
		   cJSON_GetObjectItemCaseSensitive(m, "testd_queries_total{type=\"A\"}")
				   ->valuedouble == 3,
	   "/stats metrics carries the registry");
	ok(cJSON_GetObjectItem(j, "workers") != NULL &&
		   cJSON_GetObjectItem(j, "workers")->valuedouble == 2,
	   "the stats hook added its field");
	cJSON_Delete(j);

	ok(http(AF_INET, port, "GET", "/nope", r), "GET /nope");
	is_int(r->status, 404, "unknown path 404");
	ok(has_header(r, "Content-Type: application/json"), "404 is JSON");
	j = body_json(r);
	ok(j != NULL && cJSON_GetObjectItem(j, "error") != NULL, "404 body is a JSON error");
	cJSON_Delete(j);

	ok(http(AF_INET, port, "POST", "/health", r), "POST /health");
	is_int(r->status, 405, "POST is 405");
	ok(has_header(r, "Allow: GET, HEAD"), "405 says what is allowed");
	ok(http(AF_INET, port, "DELETE", "/stats", r), "DELETE /stats");
	is_int(r->status, 405, "DELETE is 405");

	ok(http(AF_INET, port, "HEAD", "/health", r), "HEAD /health");
	is_int(r->status, 200, "HEAD /health 200");
	is_str(r->body, "", "HEAD has no body");
	ok(has_header(r, "Content-Length: ") && !has_header(r, "Content-Length: 0"),
	   "HEAD keeps the length of the GET body: %s", r->head);

	free(r);
	event_base_loopexit(c->base, NULL);
	return NULL;
}

static void *
client_phase2(void *arg)
{
	struct ctx *c = arg;
	struct resp *r = malloc(sizeof(*r));

	ok(http(AF_INET, dfr_admin_port(c->adm), "GET", "/health", r), "GET replaced /health");
	is_int(r->status, 200, "replaced /health status");
	is_str(r->body, "{\"status\":\"healthy\",\"generation\":5}", "replaced /health body");
	ok(has_header(r, "Content-Type: application/json"), "a route's default type is JSON");
	ok(http(AF_INET, dfr_admin_port(c->adm), "GET", "/ping", r), "GET added /ping");
	is_str(r->body, "pong", "added route body");
	ok(has_header(r, "Content-Type: text/plain"), "a route sets its content type");
	ok(http(AF_INET, dfr_admin_port(c->adm), "GET", "/metrics", r), "GET /metrics again");
	is_int(r->status, 200, "other routes unchanged");
	if (c->adm6 != NULL) {
		ok(http(AF_INET6, dfr_admin_port(c->adm6), "GET", "/health", r), "GET over IPv6");
		is_int(r->status, 503, "IPv6 endpoint answers (its own generation 0)");
	}
	free(r);
	event_base_loopexit(c->base, NULL);
	return NULL;
}

static void
test_admin(void)
{
	struct ctx c = {0};
	pthread_t th;
	const char *err;
	char addr[64];

	dfr_metrics_reset();
	dfr_metric_add(dfr_counter("testd_queries_total", "type=\"A\"", "Queries."), 3);
	c.base = event_base_new();
	c.adm = dfr_admin_open(c.base, "testd", "127.0.0.1:0");
	ok(c.adm != NULL, "admin opens on 127.0.0.1:0");
	if (c.adm == NULL)
		return;
	ok(dfr_admin_port(c.adm) > 0, "the bound port is known (%u)", dfr_admin_port(c.adm));
	ok(dfr_admin_uptime(c.adm) >= 0 && dfr_admin_uptime(c.adm) < 5, "uptime starts near 0");
	dfr_admin_on_health(c.adm, health_hook, &c);
	dfr_admin_on_stats(c.adm, stats_hook, &c);

	/* The port is taken now: a second endpoint there fails with one line. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", dfr_admin_port(c.adm));
	tap_capture_start();
	struct dfr_admin *dup = dfr_admin_open(c.base, "testd", addr);
	err = tap_capture_end();
	ok(dup == NULL, "a taken port gives NULL");
	char want[128];
	snprintf(want, sizeof(want), "admin, cannot listen on %s (Address already in use)\n", addr);
	ok(strstr(err, want) != NULL, "bind failure line: %s", err);
	dfr_admin_close(dup);

	tap_capture_start();
	dup = dfr_admin_open(c.base, "testd", "localhost:80");
	err = tap_capture_end();
	ok(dup == NULL, "a non-numeric address gives NULL");
	ok(strstr(err, "admin, cannot listen on localhost:80") != NULL, "and says so: %s", err);

	pthread_create(&th, NULL, client_phase1, &c);
	event_base_dispatch(c.base);
	pthread_join(th, NULL);

	dfr_admin_route(c.adm, "/health", custom_health, &c);
	dfr_admin_route(c.adm, "/ping", plain_route, NULL);
	c.adm6 = dfr_admin_open(c.base, "testd", "[::1]:0");
	if (c.adm6 == NULL)
		diag("no IPv6 loopback here: IPv6 checks skipped");
	pthread_create(&th, NULL, client_phase2, &c);
	event_base_dispatch(c.base);
	pthread_join(th, NULL);
	is_int(c.custom_calls, 1, "the replacement handler ran once");

	dfr_admin_close(c.adm6);
	dfr_admin_close(c.adm);
	dfr_admin_close(NULL);
	event_base_free(c.base);
	dfr_metrics_reset();
}

/* --- the daemon life cycle ---------------------------------------------------------------- */
struct dctx {
	struct dfr_daemon *d;
	int reloads, stops;
};

static void
on_reload(void *arg)
{
	((struct dctx *)arg)->reloads++;
}

static void
on_stop(void *arg)
{
	((struct dctx *)arg)->stops++;
}

static void
send_sig(evutil_socket_t fd, short what, void *arg)
{
	raise((int)(intptr_t)arg);
}

static void
test_daemon(void)
{
	struct dfr_daemon d;
	struct dctx dc = {.d = &d};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/dfr-admin-XXXXXX", msgs[4096] = "", one[512];
	struct event *hup = NULL, *term = NULL;
	struct timeval t_hup = {0, 100 * 1000}, t_term = {0, 400 * 1000};
	const char *err;
	int rc, nfd = -1, watchdogs = 0;
	ssize_t n;

	/* A bad admin address stops the start with one line naming it. */
	setenv("TESTD_ADMIN_LISTEN", "127.0.0.1:99999", 1);
	tap_capture_start();
	rc = dfr_daemon_init(&d, "testd", "TESTD_ADMIN_LISTEN", "127.0.0.1:0");
	err = tap_capture_end();
	is_int(rc, DFR_EINVAL, "daemon: bad admin address is an error");
	ok(strstr(err, "TESTD_ADMIN_LISTEN=127.0.0.1:99999 is not valid") != NULL,
	   "daemon: the line names it: %s", err);
	ok(d.dd_base == NULL && d.dd_admin == NULL, "daemon: nothing left allocated");

	setenv("LOG_LEVEL", "loud", 1);
	tap_capture_start();
	rc = dfr_daemon_init(&d, "testd", "TESTD_ADMIN_LISTEN", "127.0.0.1:0");
	tap_capture_end();
	is_int(rc, DFR_EINVAL, "daemon: bad LOG_LEVEL is an error");
	unsetenv("LOG_LEVEL");

	/* A systemd notify socket of our own, to see READY=1 and the watchdog pings. */
	if (mkdtemp(dir) != NULL) {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", dir);
		nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (nfd != -1 && bind(nfd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			char pid[32];
			setenv("NOTIFY_SOCKET", sun.sun_path, 1);
			snprintf(pid, sizeof(pid), "%d", (int)getpid());
			setenv("WATCHDOG_PID", pid, 1);
			setenv("WATCHDOG_USEC", "100000", 1); /* pings every 50 ms */
		}
	}

	unsetenv("TESTD_ADMIN_LISTEN");
	tap_capture_start();
	rc = dfr_daemon_init(&d, "testd", "TESTD_ADMIN_LISTEN", "127.0.0.1:0");
	is_int(rc, DFR_OK, "daemon: init");
	if (rc != DFR_OK) {
		tap_capture_end();
		goto out;
	}
	ok(d.dd_base != NULL && d.dd_admin != NULL && dfr_admin_port(d.dd_admin) > 0,
	   "daemon: loop and admin endpoint exist");
	d.dd_on_reload = on_reload;
	d.dd_on_stop = on_stop;
	d.dd_arg = &dc;
	hup = evtimer_new(d.dd_base, send_sig, (void *)(intptr_t)SIGHUP);
	term = evtimer_new(d.dd_base, send_sig, (void *)(intptr_t)SIGTERM);
	evtimer_add(hup, &t_hup);
	evtimer_add(term, &t_term);
	dfr_daemon_ready(&d);
	rc = dfr_daemon_run(&d);
	err = tap_capture_end();
	is_int(rc, DFR_OK, "daemon: run returns OK after SIGTERM");
	is_int(dc.reloads, 1, "daemon: SIGHUP called the reload hook");
	is_int(dc.stops, 1, "daemon: SIGTERM called the stop hook");
	ok(d.dd_stopping, "daemon: marked stopping");
	ok(strstr(err, "testd, reloading (SIGHUP)") != NULL, "daemon: reload logged");
	ok(strstr(err, "testd, stopping (SIGTERM)") != NULL, "daemon: stop logged: %s", err);

	if (nfd != -1) {
		while ((n = recv(nfd, one, sizeof(one) - 1, 0)) > 0) {
			one[n] = '\0';
			if (strcmp(one, "WATCHDOG=1") == 0)
				watchdogs++;
			else if (strlen(msgs) + (size_t)n + 2 < sizeof(msgs))
				strcat(strcat(msgs, one), "|");
		}
		ok(strstr(msgs, "READY=1\nSTATUS=testd running") != NULL,
		   "daemon: READY=1 sent to systemd");
		ok(strstr(msgs, "STOPPING=1") != NULL, "daemon: STOPPING=1 sent to systemd");
		ok(watchdogs >= 3 && watchdogs <= 12, "daemon: watchdog pings at half the interval "
						       "(%d in ~300 ms)",
		   watchdogs);
	}
	event_free(hup);
	event_free(term);
	dfr_daemon_fini(&d);
	ok(d.dd_base == NULL && d.dd_admin == NULL, "daemon: fini clears the struct");
out:
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	if (nfd != -1)
		close(nfd);
	unlink(sun.sun_path);
	rmdir(dir);
}

int
main(void)
{
	plan_lazy();
	/* The client threads end the loop from outside it. */
	evthread_use_pthreads();
	unsetenv("LOG_LEVEL");
	unsetenv("LOG_FORMAT");
	unsetenv("NOTIFY_SOCKET");
	test_admin();
	test_daemon();
	return done_testing();
}
