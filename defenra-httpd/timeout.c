/*
 * Timeouts as libevent "common timeouts".
 *
 * libevent keeps timeouts in a min-heap: an add or a delete walks O(log n) levels, and a
 * persistent read event with a timeout is re-added after every read. httpd's timeouts come in a
 * few fixed durations (the HTTPD_*_MS settings), and timeouts of one duration can go in a queue
 * of their own instead, where an add appends and a delete unlinks (event_base_init_common_timeout).
 * Each worker keeps the handle of each duration it has used; the handle is a timeval marked for
 * that worker's base, usable anywhere a timeval is (event_add, bufferevent_set_timeouts).
 */
#include <event2/event.h>

#include "httpd.h"

const struct timeval *
httpd_timeout(struct httpd *srv, unsigned ms)
{
	struct httpd_timeout *t;
	struct timeval tv;

	if (ms == 0)
		return NULL;
	for (unsigned i = 0; i < srv->h_ntimeouts; i++)
		if (srv->h_timeouts[i].t_ms == ms)
			return srv->h_timeouts[i].t_tv;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	/* more durations than the settings make: libevent finds the one it has */
	if (srv->h_ntimeouts == HTTPD_TIMEOUTS)
		return event_base_init_common_timeout(srv->h_base, &tv);
	t = &srv->h_timeouts[srv->h_ntimeouts++];
	t->t_ms = ms;
	t->t_plain = tv;
	t->t_tv = event_base_init_common_timeout(srv->h_base, &t->t_plain);
	if (t->t_tv == NULL)
		t->t_tv = &t->t_plain; /* an ordinary timeout then (no memory) */
	return t->t_tv;
}
