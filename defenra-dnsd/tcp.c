/*
 * dnsd's TCP transport (RFC 7766): length-prefixed messages, several queries per connection
 * answered in order, an idle timeout, a bound on open connections, back-pressure on clients
 * that do not read their answers. It runs in the daemon's main event loop (libevent): TCP
 * carries the rare large or truncated answer, so one thread is plenty and the UDP workers stay
 * free. The main thread is an RCU reader like the workers, one read-side section per query.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "dnsd.h"
#include "listen_fds.h"
#include "error.h"
#include "log.h"

#define TCP_IDLE_S    10           /* RFC 7766 §6.2.3 suggests seconds, not minutes */
#define TCP_MAX_CONNS 1000         /* well below the open-files limit */
#define TCP_OUT_HIGH  (256 * 1024) /* stop reading a client with this much unread */

struct tcp_server {
	struct event_base *ts_base;
	struct evconnlistener *ts_ls[DFR_ENV_MAX_ADDRS];
	size_t ts_nls;
	unsigned ts_nconns;
	struct tconn *ts_conns; /* every open connection, so a stop can close them */
	struct answer_ctx ts_ac;
	struct event *ts_wait; /* until the first config: listeners off, checked every 20 ms */
	uint8_t ts_out[2 + DNS_MAX_MSG];
};

struct tconn {
	struct tcp_server *tc_ts;
	struct bufferevent *tc_bev;
	struct sockaddr_storage tc_peer;
	struct tconn *tc_next, **tc_pprev;
};

/* The one exit of a connection. bufferevent_free() is safe from the bufferevent's own callbacks
 * (libevent defers the real free), so unlike hconn we need no just-closed list here. */
static void
tconn_close(struct tconn *tc)
{
	tc->tc_ts->ts_nconns--;
	if (tc->tc_next != NULL)
		tc->tc_next->tc_pprev = tc->tc_pprev;
	*tc->tc_pprev = tc->tc_next;
	stats_tcp_conns(-1);
	bufferevent_free(tc->tc_bev);
	free(tc);
}

static void
tconn_read(struct bufferevent *bev, void *arg)
{
	struct tconn *tc = arg;
	struct tcp_server *ts = tc->tc_ts;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);

	while (evbuffer_get_length(out) < TCP_OUT_HIGH) {
		uint8_t lb[2];
		size_t qlen, alen;
		const uint8_t *q;

		if (evbuffer_copyout(in, lb, 2) != 2)
			break;
		qlen = (size_t)(lb[0] << 8 | lb[1]);
		if (qlen < DNS_HDR_LEN) { /* no DNS message is that short: the stream is garbage */
			ts->ts_ac.ac_stats.st_malformed++;
			ts->ts_ac.ac_stats.st_dirty = true;
			tconn_close(tc);
			return;
		}
		if (evbuffer_get_length(in) < 2 + qlen)
			break;
		if ((q = evbuffer_pullup(in, (ev_ssize_t)(2 + qlen))) == NULL)
			break;
		ts->ts_ac.ac_stats.st_tcp_queries++;
		rcu_read_lock();
		alen = answer_query(&ts->ts_ac, bus_current(), q + 2, qlen,
		                    (const struct sockaddr *)&tc->tc_peer, true, ts->ts_out + 2,
		                    DNS_MAX_MSG);
		rcu_read_unlock();
		evbuffer_drain(in, 2 + qlen);
		if (alen > 0) {
			ts->ts_out[0] = (uint8_t)(alen >> 8);
			ts->ts_out[1] = (uint8_t)alen;
			evbuffer_add(out, ts->ts_out, 2 + alen);
		}
	}
	if (evbuffer_get_length(out) >= TCP_OUT_HIGH)
		bufferevent_disable(bev, EV_READ); /* resumed in tconn_write once drained */
	if (ts->ts_ac.ac_stats.st_dirty)
		stats_flush(&ts->ts_ac.ac_stats);
}

static void
tconn_write(struct bufferevent *bev, void *arg)
{
	struct tconn *tc = arg;

	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		tconn_read(bev, tc); /* queries may be waiting in the input already */
	}
}

static void
tconn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what; /* EOF, error or idle timeout: all end the connection */
	tconn_close(arg);
}

static void
tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct tcp_server *ts = arg;
	struct tconn *tc;
	struct timeval idle = {TCP_IDLE_S, 0};

	(void)l;
	if (ts->ts_nconns >= TCP_MAX_CONNS || (tc = calloc(1, sizeof(*tc))) == NULL) {
		(void)close(fd);
		return;
	}
	tc->tc_ts = ts;
	if (salen > 0 && (size_t)salen <= sizeof(tc->tc_peer))
		memcpy(&tc->tc_peer, sa, (size_t)salen);
	if ((tc->tc_bev = bufferevent_socket_new(ts->ts_base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		(void)close(fd);
		free(tc);
		return;
	}
	ts->ts_nconns++;
	stats_tcp_conns(1);
	tc->tc_next = ts->ts_conns;
	if (ts->ts_conns != NULL)
		ts->ts_conns->tc_pprev = &tc->tc_next;
	ts->ts_conns = tc;
	tc->tc_pprev = &ts->ts_conns;
	bufferevent_setcb(tc->tc_bev, tconn_read, tconn_write, tconn_event, tc);
	bufferevent_set_timeouts(tc->tc_bev, &idle, &idle);
	bufferevent_setwatermark(tc->tc_bev, EV_READ, 0, 2 + DNS_MAX_MSG);
	bufferevent_enable(tc->tc_bev, EV_READ | EV_WRITE);
}

static void
tcp_wait_config(evutil_socket_t fd, short what, void *arg)
{
	struct tcp_server *ts = arg;

	if (!bus_ready())
		return;
	for (size_t i = 0; i < ts->ts_nls; i++)
		(void)evconnlistener_enable(ts->ts_ls[i]);
	event_free(ts->ts_wait);
	ts->ts_wait = NULL;
}

struct tcp_server *
tcp_start(struct event_base *base, const struct dfr_addr_list *addrs)
{
	struct tcp_server *ts = calloc(1, sizeof(*ts));

	if (ts == NULL) {
		dfr_log_err("tcp, cannot start (out of memory)");
		return NULL;
	}
	ts->ts_base = base;
	answer_ctx_init(&ts->ts_ac);
	for (size_t i = 0; i < addrs->n; i++) {
		const struct dfr_addr *a = &addrs->addrs[i];
		unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
		struct evconnlistener *l;

		if (a->sa.ss_family == AF_INET6)
			flags |= LEV_OPT_BIND_IPV6ONLY;
		int fd = dfr_listen_fd_take(a, SOCK_STREAM);

		if (fd != -1 && evutil_make_socket_nonblocking(fd) == 0)
			l = evconnlistener_new(base, tcp_accept, ts,
			                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
		else
			l = evconnlistener_new_bind(base, tcp_accept, ts, flags, 128,
			                            (const struct sockaddr *)&a->sa, (int)a->salen);
		if (l == NULL) {
			dfr_log_err("tcp, cannot listen on %s (%s)", a->text, strerror(errno));
			tcp_stop(ts);
			return NULL;
		}
		ts->ts_ls[ts->ts_nls++] = l;
	}
	/* Before the first config every answer would be REFUSED: connections wait in the backlog
	 * (a socket handed over by systemd keeps them through a restart) until the zones exist. */
	if (!bus_ready()) {
		struct timeval tv = {0, 20 * 1000};

		for (size_t i = 0; i < ts->ts_nls; i++)
			(void)evconnlistener_disable(ts->ts_ls[i]);
		ts->ts_wait = event_new(base, -1, EV_PERSIST, tcp_wait_config, ts);
		if (ts->ts_wait == NULL || event_add(ts->ts_wait, &tv) == -1) {
			tcp_stop(ts);
			return NULL;
		}
	}
	return ts;
}

void
tcp_stop(struct tcp_server *ts)
{
	if (ts == NULL)
		return;
	if (ts->ts_wait != NULL)
		event_free(ts->ts_wait);
	for (size_t i = 0; i < ts->ts_nls; i++)
		evconnlistener_free(ts->ts_ls[i]);
	while (ts->ts_conns != NULL)
		tconn_close(ts->ts_conns);
	free(ts);
}
