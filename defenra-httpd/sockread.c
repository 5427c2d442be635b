/*
 * Reading a plain TCP socket into its bufferevent's input ourselves.
 *
 * libevent 2.1 reads a socket bufferevent only through evbuffer_read(), which asks the kernel
 * how much is readable (ioctl FIONREAD) before every read: one extra system call per read, two
 * per proxied request (client and backend side), about a tenth of httpd's CPU per request on
 * loopback (docs/performance-http.md). Here the bufferevent keeps its output, its write event and
 * its callbacks, but its EV_READ is never enabled: our own persistent read event reads into the
 * input (a small read through the worker's buffer, see sr_read_small) and calls the same read
 * and event callbacks the bufferevent would, with the same meanings:
 *   - the read timeout runs while reading is on and restarts with every read
 *     (BEV_EVENT_READING | BEV_EVENT_TIMEOUT, reading turned off, as libevent does);
 *   - EOF and errors turn reading off, then BEV_EVENT_READING | BEV_EVENT_EOF or _ERROR;
 *   - at sr_hwm bytes waiting in the input, reading pauses, and resumes by itself once the
 *     consumer drains the input below it (an evbuffer callback), like a read high watermark.
 * A TLS connection (bufferevent_openssl) switches to it once its handshake is done
 * (sockread_use_tls): SSL_read() in a loop until the socket has nothing more, with OpenSSL's
 * read-ahead on, so a burst of records (an HTTP/2 client's requests) costs one read(2), not
 * two per record (libevent 2.1 reads one record per readiness and cannot use read-ahead: what
 * OpenSSL buffers past a record would wait for the next readiness). HTTP/2 stream pairs keep
 * libevent's reading.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"
#include "httpd.h"

/* A read of at most this much is small: the next read into an empty input goes through the
 * worker's buffer (sr_read_small). */
#define SR_SMALL 2048

static void
sr_add(struct sockread *sr)
{
	event_add(sr->sr_ev, httpd_timeout(sr->sr_srv, sr->sr_timeout_ms));
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

/* How much one read may take: up to HTTPD_READ_MAX and the high watermark; 0 (reading paused until
 * sr_drained() resumes it) when the input is full. */
static size_t
sr_room(struct sockread *sr, struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in);

	if (len >= sr->sr_hwm) {
		sr_del(sr);
		return 0;
	}
	return sr->sr_hwm - len < HTTPD_READ_MAX ? sr->sr_hwm - len : HTTPD_READ_MAX;
}

/* OpenSSL holds bytes that no readiness of the socket will announce: come back by ourselves. */
static void
sr_kick(struct sockread *sr)
{
	if (sr->sr_ssl != NULL && sr->sr_on && SSL_has_pending(sr->sr_ssl))
		event_active(sr->sr_ev, EV_READ, 1);
}

/* What SSL_read() said when it gave no bytes: 0 to wait for the socket, else the BEV_EVENT_ to
 * stop with. */
static short
sr_tls_stop_reason(struct sockread *sr, int rc)
{
	switch (SSL_get_error(sr->sr_ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		/* A reply OpenSSL owes (a KeyUpdate) waits for room: reading resumes when the
		 * socket is writable, not in a busy loop meanwhile. */
		sr_del(sr);
		event_add(sr->sr_wev, NULL);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return BEV_EVENT_EOF; /* close_notify */
	case SSL_ERROR_SSL:
		/* OpenSSL 3 names a close without close_notify so; HTTP has its own framing, and
		 * libevent's reads took it as an end too (allow_dirty_shutdown) */
		return ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING
		               ? BEV_EVENT_EOF
		               : BEV_EVENT_ERROR;
	case SSL_ERROR_SYSCALL:
		/* the peer closed without close_notify: an end as good as any (as before) */
		return ERR_peek_error() == 0 && (rc == 0 || errno == 0 || errno == ECONNRESET)
		               ? BEV_EVENT_EOF
		               : BEV_EVENT_ERROR;
	default:
		return BEV_EVENT_ERROR;
	}
}

/* SSL_read() until OpenSSL wants the socket, the input is full or the connection ends. */
static void
sr_tls_readable(struct sockread *sr)
{
	struct evbuffer *in = bufferevent_get_input(sr->sr_bev);
	size_t got = 0;
	short stop = 0;

	for (;;) {
		size_t want = sr_room(sr, in);
		struct evbuffer_iovec v;
		int n;

		if (want == 0)
			break;
		if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) != 1) {
			stop = BEV_EVENT_ERROR;
			break;
		}
		ERR_clear_error();
		n = SSL_read(sr->sr_ssl, v.iov_base, (int)v.iov_len);
		if (n <= 0) {
			stop = sr_tls_stop_reason(sr, n);
			ERR_clear_error();
			break;
		}
		v.iov_len = (size_t)n;
		evbuffer_commit_space(in, &v, 1);
		got += (size_t)n;
	}
	if (stop != 0 && got > 0) {
		/* the bytes first; the end is found again on the next turn (the owner may close
		 * the connection in its callback, which frees this event with it) */
		event_active(sr->sr_ev, EV_READ, 1);
		stop = 0;
	}
	if (stop != 0) {
		sr_stop(sr, stop);
		return;
	}
	if (got > 0)
		sr->sr_readcb(sr->sr_bev, sr->sr_arg);
}

/* What a plain read that gave no bytes (n <= 0, errno set when n < 0) means: the BEV_EVENT_ to
 * stop with, or 0 to wait for the next readiness. */
static short
sr_read_result(ssize_t n)
{
	if (n == 0)
		return BEV_EVENT_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return BEV_EVENT_ERROR;
}

/* A read into an empty input goes to the worker's buffer first, then into a chain its size.
 * Requests and small responses then cost a small chain, which malloc keeps in its per-thread
 * cache, instead of a 16 KiB one taken from and given back to its large bins every time the
 * parser drains the input; copying a few hundred bytes is cheaper. Large reads (a body
 * streaming) go straight into the input's space (sr_read_in_place). */
static ssize_t
sr_read_small(struct sockread *sr, evutil_socket_t fd, struct evbuffer *in, size_t want)
{
	char *buf = sr->sr_srv->h_rbuf;
	ssize_t n = recv(fd, buf, want, 0);

	if (n > 0 && evbuffer_add(in, buf, (size_t)n) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}

static ssize_t
sr_read_in_place(evutil_socket_t fd, struct evbuffer *in, size_t want)
{
	struct evbuffer_iovec v[2];
	ssize_t n;
	int nv;

	if ((nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2)) <= 0) {
		errno = ENOMEM;
		return -1;
	}
	if (nv == 2 && v[0].iov_len >= want)
		nv = 1;
	/* recv() when the space is one piece (nearly always): it costs the kernel less than
	 * readv() of one vector (no iovec import, no file position lock) */
	n = nv == 1 ? recv(fd, v[0].iov_base, v[0].iov_len, 0) : readv(fd, (struct iovec *)v, nv);
	if (n <= 0)
		return n;
	/* What the read filled: the first vector, then the second. */
	if ((size_t)n <= v[0].iov_len) {
		v[0].iov_len = (size_t)n;
		nv = 1;
	} else {
		v[1].iov_len = (size_t)n - v[0].iov_len;
	}
	evbuffer_commit_space(in, v, nv);
	return n;
}

static void
sr_readable(evutil_socket_t fd, short what, void *arg)
{
	struct sockread *sr = arg;
	struct evbuffer *in = bufferevent_get_input(sr->sr_bev);
	size_t want;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		sr_stop(sr, BEV_EVENT_TIMEOUT);
		return;
	}
	if (!sr->sr_on)
		return; /* a kick (event_active) that came after reading went off */
	if (sr->sr_ssl != NULL) {
		sr_tls_readable(sr);
		return;
	}
	if ((want = sr_room(sr, in)) == 0)
		return;
	if (!sr->sr_bulk && evbuffer_get_length(in) == 0)
		n = sr_read_small(sr, fd, in, want);
	else
		n = sr_read_in_place(fd, in, want);
	if (n <= 0) {
		short stop = sr_read_result(n);

		if (stop != 0)
			sr_stop(sr, stop);
		return;
	}
	sr->sr_bulk = (size_t)n > SR_SMALL;
	sr->sr_readcb(sr->sr_bev, sr->sr_arg);
}

/* The input lost bytes: resume reading if the watermark paused it. */
static void
sr_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct sockread *sr = arg;

	if (info->n_deleted > 0 && sr->sr_on && !sr->sr_pending &&
	    evbuffer_get_length(in) < sr->sr_hwm) {
		sr_add(sr);
		sr_kick(sr);
	}
}

/* The socket took what OpenSSL had to write: reading goes on. */
static void
sr_writable(evutil_socket_t fd, short what, void *arg)
{
	struct sockread *sr = arg;

	(void)fd;
	(void)what;
	if (sr->sr_on && !sr->sr_pending) {
		sr_add(sr);
		event_active(sr->sr_ev, EV_READ, 1);
	}
}

int
sockread_init(struct sockread *sr, struct httpd *srv, struct bufferevent *bev, size_t hwm,
              unsigned write_ms, void (*readcb)(struct bufferevent *, void *),
              void (*eventcb)(struct bufferevent *, short, void *), void *arg)
{
	sr->sr_srv = srv;
	sr->sr_bev = bev;
	sr->sr_hwm = hwm;
	sr->sr_readcb = readcb;
	sr->sr_eventcb = eventcb;
	sr->sr_arg = arg;
	sr->sr_on = sr->sr_pending = sr->sr_bulk = false;
	sr->sr_timeout_ms = 0;
	sr->sr_ssl = NULL;
	sr->sr_wev = NULL;
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
	/* The bufferevent no longer reads; it keeps writing, with its write timeout. */
	bufferevent_disable(bev, EV_READ);
	bufferevent_set_timeouts(bev, NULL, httpd_timeout(srv, write_ms));
	return DFR_OK;
}

int
sockread_use_tls(struct sockread *sr, SSL *ssl)
{
	sr->sr_wev = event_new(bufferevent_get_base(sr->sr_bev), bufferevent_getfd(sr->sr_bev),
	                       EV_WRITE, sr_writable, sr);
	if (sr->sr_wev == NULL)
		return DFR_ENOMEM;
	sr->sr_ssl = ssl;
	SSL_set_read_ahead(ssl, 1);
	return DFR_OK;
}

void
sockread_fini(struct sockread *sr)
{
	if (sr->sr_ev == NULL)
		return;
	event_free(sr->sr_ev);
	sr->sr_ev = NULL;
	if (sr->sr_wev != NULL)
		event_free(sr->sr_wev);
	sr->sr_wev = NULL;
	sr->sr_ssl = NULL;
	evbuffer_remove_cb_entry(bufferevent_get_input(sr->sr_bev), sr->sr_cb);
	sr->sr_cb = NULL;
	sr->sr_on = sr->sr_pending = false;
}

void
sockread_set(struct sockread *sr, bool on)
{
	if (sr->sr_ev == NULL)
		return; /* no socket yet (a backend still connecting): its init decides */
	if (on == sr->sr_on)
		return;
	sr->sr_on = on;
	if (!on) {
		sr_del(sr);
	} else if (evbuffer_get_length(bufferevent_get_input(sr->sr_bev)) < sr->sr_hwm) {
		sr_add(sr);
		sr_kick(sr);
	}
}

void
sockread_timeout(struct sockread *sr, unsigned ms)
{
	if (sr->sr_ev == NULL)
		return;
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
