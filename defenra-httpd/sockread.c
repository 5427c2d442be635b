/*
 * Reading a plain TCP socket into its bufferevent's input ourselves.
 *
 * libevent 2.1 reads a socket bufferevent only through evbuffer_read(), which asks the kernel
 * how much is readable (ioctl FIONREAD) before every read: one extra system call per read, two
 * per proxied request (client and backend side), about a tenth of httpd's CPU per request on
 * loopback (docs/performance-http.md). Here the bufferevent keeps its output, its write event and
 * its callbacks, but its EV_READ is never enabled: our own persistent read event reads straight
 * into the input's reserved space and calls the same read and event callbacks the bufferevent
 * would, with the same meanings:
 *   - the read timeout runs while reading is on and restarts with every read
 *     (BEV_EVENT_READING | BEV_EVENT_TIMEOUT, reading turned off, as libevent does);
 *   - EOF and errors turn reading off, then BEV_EVENT_READING | BEV_EVENT_EOF or _ERROR;
 *   - at sr_hwm bytes waiting in the input, reading pauses, and resumes by itself once the
 *     consumer drains the input below it (an evbuffer callback), like a read high watermark.
 * TLS connections (bufferevent_openssl) and HTTP/2 stream pairs keep libevent's reading.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/uio.h>

#include "error.h"
#include "httpd.h"

#define SR_READ_MAX (16 * 1024) /* one read at most; a request head is far less */

static void
sr_add(struct sockread *sr)
{
	struct timeval tv;

	tv.tv_sec = sr->sr_timeout_ms / 1000;
	tv.tv_usec = (sr->sr_timeout_ms % 1000) * 1000;
	event_add(sr->sr_ev, sr->sr_timeout_ms ? &tv : NULL);
	sr->sr_pending = true;
}

static void
sr_del(struct sockread *sr)
{
	if (sr->sr_pending) {
		event_del(sr->sr_ev);
		sr->sr_pending = false;
	}
}

/* Reading stops by itself (timeout, EOF, error) before the owner is told. */
static void
sr_stop(struct sockread *sr, short what)
{
	sr->sr_on = false;
	sr_del(sr);
	sr->sr_eventcb(sr->sr_bev, (short)(BEV_EVENT_READING | what), sr->sr_arg);
}

static void
sr_readable(evutil_socket_t fd, short what, void *arg)
{
	struct sockread *sr = arg;
	struct evbuffer *in = bufferevent_get_input(sr->sr_bev);
	struct evbuffer_iovec v[2];
	size_t len = evbuffer_get_length(in), want;
	ssize_t n;
	int nv;

	if (what & EV_TIMEOUT) {
		sr_stop(sr, BEV_EVENT_TIMEOUT);
		return;
	}
	if (len >= sr->sr_hwm) {
		sr_del(sr); /* full: sr_drained() resumes */
		return;
	}
	want = sr->sr_hwm - len < SR_READ_MAX ? sr->sr_hwm - len : SR_READ_MAX;
	if ((nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2)) <= 0) {
		sr_stop(sr, BEV_EVENT_ERROR);
		return;
	}
	if (nv == 2 && v[0].iov_len >= want)
		nv = 1;
	n = readv(fd, (struct iovec *)v, nv);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		sr_stop(sr, BEV_EVENT_ERROR);
		return;
	}
	if (n == 0) {
		sr_stop(sr, BEV_EVENT_EOF);
		return;
	}
	/* What readv filled: the first vector, then the second. */
	if ((size_t)n <= v[0].iov_len) {
		v[0].iov_len = (size_t)n;
		nv = 1;
	} else {
		v[1].iov_len = (size_t)n - v[0].iov_len;
	}
	evbuffer_commit_space(in, v, nv);
	sr->sr_readcb(sr->sr_bev, sr->sr_arg);
}

/* The input lost bytes: resume reading if the watermark paused it. */
static void
sr_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct sockread *sr = arg;

	if (info->n_deleted > 0 && sr->sr_on && !sr->sr_pending &&
	    evbuffer_get_length(in) < sr->sr_hwm)
		sr_add(sr);
}

int
sockread_init(struct sockread *sr, struct bufferevent *bev, size_t hwm,
              void (*readcb)(struct bufferevent *, void *),
              void (*eventcb)(struct bufferevent *, short, void *), void *arg)
{
	sr->sr_bev = bev;
	sr->sr_hwm = hwm;
	sr->sr_readcb = readcb;
	sr->sr_eventcb = eventcb;
	sr->sr_arg = arg;
	sr->sr_on = sr->sr_pending = false;
	sr->sr_timeout_ms = 0;
	sr->sr_ev = event_new(bufferevent_get_base(bev), bufferevent_getfd(bev),
	                      EV_READ | EV_PERSIST, sr_readable, sr);
	if (sr->sr_ev == NULL)
		return DFR_ENOMEM;
	/* A socket bufferevent keeps the end of its input frozen but around its own reads;
	 * ours are the only ones here. */
	evbuffer_unfreeze(bufferevent_get_input(bev), 0);
	sr->sr_cb = evbuffer_add_cb(bufferevent_get_input(bev), sr_drained, sr);
	if (sr->sr_cb == NULL) {
		event_free(sr->sr_ev);
		sr->sr_ev = NULL;
		return DFR_ENOMEM;
	}
	return DFR_OK;
}

void
sockread_fini(struct sockread *sr)
{
	if (sr->sr_ev == NULL)
		return;
	event_free(sr->sr_ev);
	sr->sr_ev = NULL;
	evbuffer_remove_cb_entry(bufferevent_get_input(sr->sr_bev), sr->sr_cb);
	sr->sr_cb = NULL;
	sr->sr_on = sr->sr_pending = false;
}

void
sockread_set(struct sockread *sr, bool on)
{
	if (on == sr->sr_on)
		return;
	sr->sr_on = on;
	if (!on)
		sr_del(sr);
	else if (evbuffer_get_length(bufferevent_get_input(sr->sr_bev)) < sr->sr_hwm)
		sr_add(sr);
}

void
sockread_timeout(struct sockread *sr, unsigned ms)
{
	if (ms == sr->sr_timeout_ms)
		return;
	sr->sr_timeout_ms = ms;
	if (!sr->sr_pending)
		return;
	if (ms > 0)
		sr_add(sr); /* the new timeout counts from now, as bufferevent_set_timeouts() */
	else
		event_remove_timer(sr->sr_ev); /* event_add(NULL) would keep the old one */
}
