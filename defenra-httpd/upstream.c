/*
 * Backend connections: connect with a timeout, and a pool of idle keep-alive connections per
 * backend address (HTTPD_UPSTREAM_KEEPALIVE each, most recently used first, closed after
 * HTTPD_UPSTREAM_IDLE_TIMEOUT_MS or when the backend closes them). Above that many, up to
 * UP_SURPLUS times as many more stay for UP_SURPLUS_IDLE_MS only: under a load that needs more
 * connections at once than the limit (an HTTP/2 client's bursts of streams), a connection freed
 * now is wanted again within milliseconds, and closing it meant a new connect (and a TCP
 * handshake on both sides) for one request in six (h2load -c64 -m10); once the load is gone the
 * pool is back at the limit within that second, as the origin expects. The protocol on a busy
 * connection is hconn.c's: this file only hands the events over. What to do when a reused
 * connection turns out closed (one retry on a fresh one) is hconn.c's decision too.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define UP_BUCKETS         256
#define UP_READ_HWM        (64 * 1024)
#define UP_SURPLUS         4    /* idle connections above the limit: up to 4 x the limit more */
#define UP_SURPLUS_IDLE_MS 1000 /* ... each kept this long */

int
upstream_pool_init(struct upstream_pool *pool)
{
	pool->up_nbuckets = UP_BUCKETS;
	pool->up_nidle = 0;
	pool->up_buckets = calloc(pool->up_nbuckets, sizeof(*pool->up_buckets));
	pool->up_counts = calloc(pool->up_nbuckets, sizeof(*pool->up_counts));
	if (pool->up_buckets == NULL || pool->up_counts == NULL) {
		free(pool->up_buckets);
		free(pool->up_counts);
		pool->up_buckets = NULL;
		pool->up_counts = NULL;
		return DFR_ENOMEM;
	}
	for (size_t i = 0; i < pool->up_nbuckets; i++)
		LIST_INIT(&pool->up_buckets[i]);
	return DFR_OK;
}

static size_t addr_hash(const struct sockaddr *sa);

static void
uc_free(struct upconn *uc)
{
	if (uc->uc_state == UC_ST_IDLE) {
		struct upstream_pool *pool = &uc->uc_srv->h_pool;

		LIST_REMOVE(uc, uc_link);
		pool->up_nidle--;
		pool->up_counts[addr_hash((struct sockaddr *)&uc->uc_addr) % pool->up_nbuckets]--;
	}
	sockread_fini(&uc->uc_rd);
	if (uc->uc_bev != NULL)
		bufferevent_free(uc->uc_bev);
	free(uc);
}

void
upstream_pool_fini(struct upstream_pool *pool)
{
	if (pool->up_buckets == NULL)
		return;
	for (size_t i = 0; i < pool->up_nbuckets; i++)
		while (!LIST_EMPTY(&pool->up_buckets[i]))
			uc_free(LIST_FIRST(&pool->up_buckets[i]));
	free(pool->up_buckets);
	free(pool->up_counts);
	pool->up_buckets = NULL;
	pool->up_counts = NULL;
}

static size_t
addr_hash(const struct sockaddr *sa)
{
	uint64_t h = 1469598103934665603ULL;
	const unsigned char *p;
	size_t n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		p = (const unsigned char *)&sin->sin_addr;
		n = sizeof(sin->sin_addr);
		h = (h ^ sin->sin_port) * 1099511628211ULL;
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		p = (const unsigned char *)&sin6->sin6_addr;
		n = sizeof(sin6->sin6_addr);
		h = (h ^ sin6->sin6_port) * 1099511628211ULL;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return (size_t)h;
}

static bool
addr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void
up_read(struct bufferevent *bev, void *arg)
{
	struct upconn *uc = arg;

	if (uc->uc_state == UC_ST_BUSY) {
		hconn_up_readable(uc->uc_hc);
		return;
	}
	/* An idle connection has nothing to say: whatever came is a protocol error. */
	uc_free(uc);
}

static void
up_write(struct bufferevent *bev, void *arg)
{
	struct upconn *uc = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to direct writes (sockwrite_flush) */
	if (uc->uc_state == UC_ST_BUSY)
		hconn_up_drained(uc->uc_hc);
}

static void
up_event(struct bufferevent *bev, short what, void *arg)
{
	struct upconn *uc = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
		                 sizeof(one));
		uc->uc_state = UC_ST_BUSY;
		/* Reads are ours from now on (sockread.c); hconn.c sets the exchange's read
		 * timeout. A backend that stops taking what we send is cut after the same time. */
		if (sockread_init(&uc->uc_rd, uc->uc_srv, bev, UP_READ_HWM,
		                  uc->uc_srv->h_opts.o_up_read_ms, up_read, up_event,
		                  uc) != DFR_OK) {
			hconn_up_failed(uc->uc_hc, BEV_EVENT_ERROR, ENOMEM);
			return;
		}
		bufferevent_disable(bev, EV_WRITE); /* writes go through sockwrite_flush */
		sockread_set(&uc->uc_rd, true);
		hconn_up_connected(uc->uc_hc);
		return;
	}
	if (uc->uc_state == UC_ST_IDLE) {
		uc_free(uc);
		return;
	}
	hconn_up_failed(uc->uc_hc, what, EVUTIL_SOCKET_ERROR());
}

struct upconn *
upstream_get(struct httpd *srv, struct hconn *hc, const struct sockaddr *addr, socklen_t addrlen,
             bool allow_reuse)
{
	struct upstream_pool *pool = &srv->h_pool;
	size_t b = addr_hash(addr) % pool->up_nbuckets;
	struct upconn_list *bucket = &pool->up_buckets[b];
	struct upconn *uc;

	if (allow_reuse && pool->up_counts[b] > 0) {
		LIST_FOREACH(uc, bucket, uc_link)
		{
			if (!addr_eq((const struct sockaddr *)&uc->uc_addr, addr))
				continue;
			LIST_REMOVE(uc, uc_link);
			pool->up_nidle--;
			pool->up_counts[b]--;
			uc->uc_state = UC_ST_BUSY;
			uc->uc_hc = hc;
			uc->uc_reused = true;
			uc->uc_resp_bytes = 0;
			sockread_timeout(&uc->uc_rd, 0); /* reading stayed on in the pool */
			stats_upstream_event("reuse");
			return uc;
		}
	}
	if ((uc = calloc(1, sizeof(*uc))) == NULL)
		return NULL;
	uc->uc_srv = srv;
	uc->uc_hc = hc;
	uc->uc_state = UC_ST_CONNECTING;
	memcpy(&uc->uc_addr, addr, addrlen);
	uc->uc_addrlen = addrlen;
	uc->uc_bev = bufferevent_socket_new(srv->h_base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (uc->uc_bev == NULL) {
		free(uc);
		return NULL;
	}
	bufferevent_setcb(uc->uc_bev, up_read, up_write, up_event, uc);
	bufferevent_setwatermark(uc->uc_bev, EV_WRITE, 64 * 1024, 0);
	/* the connect's */
	bufferevent_set_timeouts(uc->uc_bev, NULL, httpd_timeout(srv, srv->h_opts.o_up_connect_ms));
	bufferevent_enable(uc->uc_bev, EV_WRITE);
	if (bufferevent_socket_connect(uc->uc_bev, (struct sockaddr *)&uc->uc_addr, (int)addrlen) !=
	    0) {
		/* Refused at once (no route, no socket): the caller answers 502. */
		bufferevent_free(uc->uc_bev);
		free(uc);
		return NULL;
	}
	return uc;
}

void
upstream_release(struct upconn *uc, bool reusable)
{
	struct httpd *srv = uc->uc_srv;
	struct upstream_pool *pool = &srv->h_pool;
	struct upconn_list *bucket;
	unsigned idle_ms;
	size_t b;

	uc->uc_hc = NULL;
	if (!reusable || uc->uc_state != UC_ST_BUSY || srv->h_opts.o_up_keepalive == 0 ||
	    evbuffer_get_length(bufferevent_get_input(uc->uc_bev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_output(uc->uc_bev)) != 0) {
		uc_free(uc);
		return;
	}
	/* The limit counts the idle connections of a hash bucket: per backend, unless two
	 * backends share a bucket (then they share the limit); no list walk on the hot path. */
	b = addr_hash((struct sockaddr *)&uc->uc_addr) % pool->up_nbuckets;
	if (pool->up_counts[b] >= (UP_SURPLUS + 1) * srv->h_opts.o_up_keepalive) {
		uc_free(uc);
		return;
	}
	idle_ms = srv->h_opts.o_up_idle_ms;
	if (pool->up_counts[b] >= srv->h_opts.o_up_keepalive && idle_ms > UP_SURPLUS_IDLE_MS)
		idle_ms = UP_SURPLUS_IDLE_MS;
	bucket = &pool->up_buckets[b];
	uc->uc_state = UC_ST_IDLE;
	LIST_INSERT_HEAD(bucket, uc, uc_link);
	pool->up_nidle++;
	pool->up_counts[b]++;
	/* Reading stays on: a backend's close (or stray bytes) ends the idle connection. */
	sockread_timeout(&uc->uc_rd, idle_ms);
	sockread_set(&uc->uc_rd, true);
}
