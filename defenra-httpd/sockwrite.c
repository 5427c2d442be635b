/*
 * Writing a plain TCP socket's bufferevent output ourselves, at once.
 *
 * Both kinds of bufferevent here (client and backend) keep EV_WRITE disabled while their output
 * is empty, so adding data schedules nothing: sockwrite_flush() writes it now, without the
 * EPOLLOUT round trip and the two epoll_ctl around it, which on loopback are a good part of a
 * proxied request's cost. What the kernel does not take now is left to libevent (EV_WRITE
 * enabled until the output drains, then disabled again in the owners' write callbacks).
 *
 * One piece of output (the usual case: a head and a small body in one chain) goes out with
 * send(), which costs the kernel less than writev() of one vector (no iovec import, no file
 * position lock); several with writev(). The read side is sockread.c.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "httpd.h"

/* Writes from the front of out until the kernel takes less than offered or out is empty.
 * Bytes written, or -1 when the first write failed (errno says why). */
static ssize_t
send_buffer(struct evbuffer *out, evutil_socket_t fd)
{
	struct evbuffer_iovec v[16];
	ssize_t total = 0;

	for (;;) {
		int n = evbuffer_peek(out, -1, NULL, v, 16);
		size_t want = 0;
		ssize_t w;

		if (n <= 0)
			return total;
		for (int i = 0; i < n; i++)
			want += v[i].iov_len;
		if (n == 1)
			w = send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
		else
			w = writev(fd, (struct iovec *)v, n);
		if (w < 0)
			return total > 0 ? total : -1;
		evbuffer_drain(out, (size_t)w);
		total += w;
		if ((size_t)w < want || evbuffer_get_length(out) == 0)
			return total;
	}
}

bool
sockwrite_flush(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	ssize_t n;

	if (evbuffer_get_length(out) == 0)
		return true;
	if (bufferevent_get_enabled(bev) & EV_WRITE)
		return false; /* libevent is on it */
	/* A bufferevent keeps the start of its output frozen; its own write callback thaws it
	 * around the write the same way. */
	evbuffer_unfreeze(out, 1);
	n = send_buffer(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (n >= 0 && evbuffer_get_length(out) == 0)
		return true;
	/* EAGAIN, a short write or an error: libevent writes the rest or reports the error. */
	bufferevent_enable(bev, EV_WRITE);
	return false;
}
