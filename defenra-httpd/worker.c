/*
 * Worker threads. Each worker is a struct httpd with its own event_base, its own listeners on
 * every HTTP_LISTEN address (SO_REUSEPORT: the kernel spreads connections), connections,
 * backend pool and WAF client, so the hot path shares nothing but atomic metrics and the
 * reference count of the route table. main.c starts every worker on a thread and base of its
 * own (a base without locks, since one thread uses it); the main thread keeps the bus subscriber
 * and the admin endpoint. A worker given the caller's base (base != NULL in worker_init) runs in
 * the caller's thread instead.
 *
 * The main thread talks to a worker only through h_pending/h_stop under h_lock plus an eventfd
 * the worker's loop watches: a new route table is taken at the worker's next loop turn, between
 * requests (each request keeps the table it started with).
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "httpd.h"
#include "log.h"

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	hconn_reap(arg);
}

static void
wake(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *srv = arg;
	struct route_table *t, *old;
	uint64_t n;
	bool stop;

	if (read(srv->h_efd, &n, sizeof(n)) == -1) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&srv->h_lock);
	t = srv->h_pending;
	srv->h_pending = NULL;
	stop = srv->h_stop;
	pthread_mutex_unlock(&srv->h_lock);
	if (t != NULL) {
		old = srv->h_routes;
		srv->h_routes = t;
		if (old == NULL)
			listener_enable_all(srv); /* the first config: start accepting */
		route_table_unref(old);
	}
	if (stop && srv->h_own_base) {
		listener_close_all(srv);
		hconn_close_all(srv);
		event_base_loopbreak(srv->h_base);
	}
}

int
worker_init(struct httpd *srv, unsigned index, struct event_base *base,
            const struct httpd_opts *opts)
{
	int rc;

	memset(srv, 0, sizeof(*srv));
	srv->h_index = index;
	srv->h_opts = *opts;
	srv->h_efd = -1;
	TAILQ_INIT(&srv->h_conns);
	TAILQ_INIT(&srv->h_closed);
	TAILQ_INIT(&srv->h_spare);
	pthread_mutex_init(&srv->h_lock, NULL);
	if (base == NULL) {
		struct event_config *ec = event_config_new();

		/* Only this worker's thread ever touches its base (the main thread talks through
		 * the eventfd): no lock on every event_add. */
		if (ec != NULL)
			event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK |
			                                  EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		base = ec != NULL ? event_base_new_with_config(ec) : NULL;
		if (ec != NULL)
			event_config_free(ec);
		if (base == NULL) {
			dfr_log_err("worker %u, cannot create an event base", index);
			return DFR_ENOMEM;
		}
		srv->h_own_base = true;
	}
	srv->h_base = base;
	srv->h_scratch_len = opts->o_max_header_bytes + 64 * 1024;
	srv->h_scratch = malloc(srv->h_scratch_len);
	srv->h_rbuf = malloc(HTTPD_READ_MAX);
	srv->h_reaper = event_new(base, -1, 0, reap, srv);
	srv->h_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->h_efd != -1)
		srv->h_wake = event_new(base, srv->h_efd, EV_READ | EV_PERSIST, wake, srv);
	if (srv->h_scratch == NULL || srv->h_rbuf == NULL || srv->h_reaper == NULL ||
	    srv->h_wake == NULL || event_add(srv->h_wake, NULL) != 0 ||
	    upstream_pool_init(&srv->h_pool) != DFR_OK) {
		dfr_log_err("worker %u, cannot set up (out of memory or descriptors)", index);
		return DFR_ENOMEM;
	}
	if ((rc = listener_open_all(srv)) != DFR_OK)
		return rc;
	srv->h_waf = waf_open(srv, dfr_env_run_dir());
	return DFR_OK;
}

static void *
worker_main(void *arg)
{
	struct httpd *srv = arg;

	event_base_loop(srv->h_base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
worker_start(struct httpd *srv)
{
	int err;

	if (!srv->h_own_base)
		return DFR_OK;
	if ((err = pthread_create(&srv->h_thread, NULL, worker_main, srv)) != 0) {
		dfr_log_err("worker %u, cannot start its thread (%s)", srv->h_index, strerror(err));
		return -err;
	}
	srv->h_started = true;
	return DFR_OK;
}

static void
poke(struct httpd *srv)
{
	uint64_t one = 1;

	if (srv->h_efd != -1 && write(srv->h_efd, &one, sizeof(one)) == -1) {
		/* EAGAIN: the counter is already set, the worker will look */
	}
}

void
worker_give_routes(struct httpd *srv, struct route_table *t)
{
	struct route_table *old;

	route_table_ref(t);
	pthread_mutex_lock(&srv->h_lock);
	old = srv->h_pending;
	srv->h_pending = t;
	pthread_mutex_unlock(&srv->h_lock);
	route_table_unref(old); /* a table the worker never took */
	poke(srv);
}

void
worker_stop(struct httpd *srv)
{
	pthread_mutex_lock(&srv->h_lock);
	srv->h_stop = true;
	pthread_mutex_unlock(&srv->h_lock);
	if (srv->h_own_base) {
		poke(srv);
		return;
	}
	/* Worker 0 runs in the caller's thread. */
	listener_close_all(srv);
	hconn_close_all(srv);
}

void
worker_fini(struct httpd *srv)
{
	if (srv->h_started) {
		(void)pthread_join(srv->h_thread, NULL);
		srv->h_started = false;
	}
	listener_close_all(srv);
	hconn_close_all(srv);
	h2_spare_free(srv);
	waf_close(srv->h_waf);
	srv->h_waf = NULL;
	upstream_pool_fini(&srv->h_pool);
	route_table_unref(srv->h_routes);
	route_table_unref(srv->h_pending);
	srv->h_routes = srv->h_pending = NULL;
	if (srv->h_reaper != NULL)
		event_free(srv->h_reaper);
	if (srv->h_wake != NULL)
		event_free(srv->h_wake);
	srv->h_reaper = srv->h_wake = NULL;
	if (srv->h_efd != -1)
		(void)close(srv->h_efd);
	srv->h_efd = -1;
	free(srv->h_scratch);
	srv->h_scratch = NULL;
	free(srv->h_rbuf);
	srv->h_rbuf = NULL;
	if (srv->h_own_base && srv->h_base != NULL)
		event_base_free(srv->h_base);
	srv->h_base = NULL;
	pthread_mutex_destroy(&srv->h_lock);
}
