/*
 * The client of wafd on RUN_DIR/waf.rep, one per worker, in the worker's event loop: NNG's REQ
 * protocol over a Unix stream socket (SP over IPC, shared/sp_ipc.h) spoken directly, without
 * NNG's I/O threads (each message used to cross two of them, with futex wake-ups; docs/waf.md).
 * We number the requests ourselves (the 32-bit id with the high bit set that REQ/REP carries),
 * so many requests are judged at once over one connection and each verdict finds its
 * connection by id in a slot table.
 *
 * Requests are encoded straight into the output buffer (reused) and written once per loop
 * iteration (a batch of requests is one write); verdicts are read into the input buffer
 * (reused, grown only for a big frame) and taken off it frame by frame.
 *
 * WAF_CONNS connections per worker: wafd judges each connection's requests in order on one of
 * its workers, so one connection would use one wafd worker and queue everything behind a slow
 * script. A request goes to the connection with the fewest requests in flight (the first on a
 * tie, so light load still batches on one).
 *
 * Time limit: the connection arms WAF_TIMEOUT_MS when it submits and applies WAF_FAIL_MODE when
 * it fires (hconn.c), freeing its slot; a late verdict finds no slot and is dropped. While no
 * connection to wafd is up a request gets the fail mode at once; when the connection drops, the
 * requests in flight get it at once too. We reconnect with a back-off from WAF_RETRY_MIN_MS to
 * WAF_RETRY_MAX_MS. The request body is not sent to wafd (an empty body field): scripts see the
 * head only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "httpd.h"
#include "log.h"
#include "sp_ipc.h"
#include "waf_msg.h"

#define WAF_SLOTS        4096 /* requests in flight per worker; more get the fail mode */
#define WAF_RETRY_MIN_MS 50
#define WAF_RETRY_MAX_MS 1000
#define WAF_BUF_INITIAL  (64u * 1024)
#define WAF_BUF_KEEP     (256u * 1024)      /* buffers above this shrink back once empty */
#define WAF_OUT_MAX      (8u * 1024 * 1024) /* unsent requests above this: fail mode */
#define WAF_CONNS        2 /* connections to wafd per worker */

/* A request in flight: the client connection waiting, the id its verdict will carry and the
 * connection to wafd it went on. */
struct slot {
	uint32_t s_id; /* 0: free */
	struct hconn *s_hc;
	struct wafc *s_conn;
};

/* One connection to wafd. */
struct wafc {
	struct waf *c_waf;
	int c_fd;     /* -1: not connected */
	bool c_hello; /* wafd's hello arrived */
	struct event *c_rev, *c_wev, *c_retry;
	unsigned c_retry_ms;
	uint8_t *c_in;
	size_t c_in_len, c_in_cap;
	uint8_t *c_out;
	size_t c_out_off, c_out_len, c_out_cap;
	unsigned c_inflight;
};

struct waf {
	struct httpd *w_srv;
	struct sockaddr_un w_sa;
	struct wafc w_conns[WAF_CONNS];
	bool w_logged_down; /* "not reachable" logged once per outage */
	uint32_t w_seq;
	unsigned w_inflight;
	struct slot w_slots[WAF_SLOTS];
};

static void waf_connect(struct wafc *c);

static int
buf_reserve(uint8_t **buf, size_t *cap, size_t want)
{
	uint8_t *p;
	size_t n = *cap > 0 ? *cap : WAF_BUF_INITIAL;

	if (want <= *cap)
		return DFR_OK;
	while (n < want)
		n *= 2;
	if ((p = realloc(*buf, n)) == NULL)
		return DFR_ENOMEM;
	*buf = p;
	*cap = n;
	return DFR_OK;
}

static void
buf_shrink(uint8_t **buf, size_t *cap)
{
	uint8_t *p;

	if (*cap > WAF_BUF_KEEP && (p = realloc(*buf, WAF_BUF_INITIAL)) != NULL) {
		*buf = p;
		*cap = WAF_BUF_INITIAL;
	}
}

/* Fails the request of slot sl (the fail mode applies). */
static void
slot_fail(struct waf *w, struct slot *sl)
{
	struct waf_verdict v = {.wv_kind = WAF_V_FAIL};
	struct hconn *hc = sl->s_hc;

	sl->s_id = 0;
	sl->s_hc = NULL;
	sl->s_conn->c_inflight--;
	w->w_inflight--;
	hc->hc_waf_id = 0;
	hconn_waf_done(hc, &v); /* stops the connection's timer, then WAF_FAIL_MODE */
}

/* The connection is gone: its requests in flight get the fail mode now, and we dial again. */
static void
conn_lost(struct wafc *c, const char *why)
{
	struct waf *w = c->c_waf;
	unsigned failed = c->c_inflight;

	if (c->c_fd < 0)
		return;
	event_del(c->c_rev);
	event_del(c->c_wev);
	close(c->c_fd);
	c->c_fd = -1;
	c->c_hello = false;
	c->c_in_len = c->c_out_len = c->c_out_off = 0;
	buf_shrink(&c->c_in, &c->c_in_cap);
	buf_shrink(&c->c_out, &c->c_out_cap);
	dfr_log_warn("waf, connection to wafd lost (%s), %u requests in flight get the fail mode",
	             why, failed);
	for (size_t i = 0; i < WAF_SLOTS && c->c_inflight > 0; i++)
		if (w->w_slots[i].s_id != 0 && w->w_slots[i].s_conn == c)
			slot_fail(w, &w->w_slots[i]);
	c->c_retry_ms = WAF_RETRY_MIN_MS;
	{
		struct timeval tv = {0, WAF_RETRY_MIN_MS * 1000};
		event_add(c->c_retry, &tv);
	}
}

/* Turns a decoded verdict into header lines and hands it to the connection. */
static void
deliver(struct hconn *hc, const struct dfr_waf_rep *rep)
{
	struct waf_verdict v = {0};
	char hdrs[8192], ctype[256];
	size_t hlen = 0;

	if (rep->wv_action == DFR_WAF_ERROR) {
		v.wv_kind = WAF_V_FAIL;
		hconn_waf_done(hc, &v);
		return;
	}
	for (uint32_t i = 0; i < rep->wv_nheaders; i++) {
		const struct dfr_waf_hdr *h = &rep->wv_headers[i];
		bool bad = false;

		/* A header a script set must not split the response. */
		for (uint32_t k = 0; k < h->wh_value.ws_len && !bad; k++)
			bad = h->wh_value.ws_ptr[k] == '\r' || h->wh_value.ws_ptr[k] == '\n';
		for (uint32_t k = 0; k < h->wh_name.ws_len && !bad; k++)
			bad = h->wh_name.ws_ptr[k] <= ' ' || h->wh_name.ws_ptr[k] == ':';
		if (bad || h->wh_name.ws_len == 0)
			continue;
		if (h->wh_name.ws_len == 12 &&
		    strncasecmp(h->wh_name.ws_ptr, "content-type", 12) == 0 &&
		    rep->wv_action == DFR_WAF_RESPOND) {
			snprintf(ctype, sizeof(ctype), "%.*s", (int)h->wh_value.ws_len,
			         h->wh_value.ws_ptr);
			v.wv_ctype = ctype;
			continue;
		}
		if ((h->wh_name.ws_len == 14 &&
		     strncasecmp(h->wh_name.ws_ptr, "content-length", 14) == 0) ||
		    (h->wh_name.ws_len == 10 &&
		     strncasecmp(h->wh_name.ws_ptr, "connection", 10) == 0) ||
		    (h->wh_name.ws_len == 17 &&
		     strncasecmp(h->wh_name.ws_ptr, "transfer-encoding", 17) == 0))
			continue;
		if (hlen + h->wh_name.ws_len + h->wh_value.ws_len + 4 > sizeof(hdrs))
			break;
		memcpy(hdrs + hlen, h->wh_name.ws_ptr, h->wh_name.ws_len);
		hlen += h->wh_name.ws_len;
		memcpy(hdrs + hlen, ": ", 2);
		hlen += 2;
		memcpy(hdrs + hlen, h->wh_value.ws_ptr, h->wh_value.ws_len);
		hlen += h->wh_value.ws_len;
		memcpy(hdrs + hlen, "\r\n", 2);
		hlen += 2;
	}
	v.wv_hdrs = hdrs;
	v.wv_hdrs_len = hlen;
	if (rep->wv_action == DFR_WAF_RESPOND) {
		v.wv_kind = WAF_V_RESPOND;
		v.wv_status = rep->wv_status >= 100 && rep->wv_status <= 999 ? rep->wv_status : 403;
		v.wv_body = rep->wv_body.ws_ptr;
		v.wv_body_len = rep->wv_body.ws_len;
	} else {
		v.wv_kind = WAF_V_PASS;
	}
	hconn_waf_done(hc, &v);
}

/* Takes wafd's hello and every whole verdict frame off the input buffer. NULL, or why the
 * connection must close. */
static const char *
take_frames(struct wafc *c)
{
	struct waf *w = c->c_waf;
	size_t off = 0, plen, need = 0, hlen;
	const uint8_t *p;
	const char *why = NULL;
	uint32_t id;
	int rv;

	if (!c->c_hello) {
		if (c->c_in_len < DFR_SP_HELLO_LEN)
			return NULL;
		if (dfr_sp_hello_check(c->c_in, DFR_SP_PROTO_REP0) != DFR_OK)
			return "not the hello of a REP socket";
		c->c_hello = true;
		c->c_retry_ms = WAF_RETRY_MIN_MS;
		if (w->w_logged_down)
			dfr_log_info("waf, connected to wafd again");
		w->w_logged_down = false;
		off = DFR_SP_HELLO_LEN;
	}
	for (;;) {
		struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
		struct dfr_waf_rep rep;
		struct slot *sl;
		struct hconn *hc;
		uint64_t gen;

		rv = dfr_sp_frame_next(c->c_in + off, c->c_in_len - off, 4 + DFR_WAF_MAX_MSG, &p,
		                       &plen, &need);
		if (rv == DFR_EAGAIN)
			break;
		if (rv != DFR_OK) {
			why = rv == DFR_ELIMIT ? "verdict above the size limit"
			                       : "not a message frame";
			break;
		}
		off += need;
		if (dfr_sp_backtrace(p, plen, &hlen, &id) != DFR_OK || hlen != 4)
			continue; /* not an answer to us: NNG's REQ drops these too */
		sl = &w->w_slots[id % WAF_SLOTS];
		if (sl->s_id != id || sl->s_conn != c || (hc = sl->s_hc) == NULL)
			continue; /* late: the connection gave up on it */
		sl->s_id = 0;
		sl->s_hc = NULL;
		c->c_inflight--;
		w->w_inflight--;
		hc->hc_waf_id = 0;
		if (dfr_waf_rep_decode(p + hlen, plen - hlen, &gen, &rep, hdrs) == DFR_OK) {
			deliver(hc, &rep);
		} else {
			struct waf_verdict v = {.wv_kind = WAF_V_FAIL};

			dfr_log_warn("waf, verdict does not decode, client %s, host %s",
			             hc->hc_peer_ip, hc->hc_host);
			hconn_waf_done(hc, &v);
		}
	}
	if (off > 0) {
		memmove(c->c_in, c->c_in + off, c->c_in_len - off);
		c->c_in_len -= off;
	}
	if (why == NULL && buf_reserve(&c->c_in, &c->c_in_cap, need) != DFR_OK)
		why = "out of memory";
	return why;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct wafc *c = arg;
	const char *why;
	ssize_t n;

	(void)what;
	for (int i = 0; i < 8; i++) {
		size_t room = c->c_in_cap - c->c_in_len;

		n = recv(fd, c->c_in + c->c_in_len, room, MSG_DONTWAIT);
		if (n == 0) {
			conn_lost(c, "wafd closed it");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_lost(c, strerror(errno));
			return;
		}
		c->c_in_len += (size_t)n;
		if ((why = take_frames(c)) != NULL) {
			conn_lost(c, why);
			return;
		}
		if (c->c_fd < 0 || (size_t)n < room)
			return;
	}
}

/* Writes what is queued; the rest waits for EV_WRITE. */
static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct wafc *c = arg;

	(void)what;
	if (c->c_fd < 0)
		return;
	while (c->c_out_off < c->c_out_len) {
		ssize_t n = send(c->c_fd, c->c_out + c->c_out_off, c->c_out_len - c->c_out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->c_wev, NULL);
				return;
			}
			conn_lost(c, strerror(errno));
			return;
		}
		c->c_out_off += (size_t)n;
	}
	c->c_out_off = c->c_out_len = 0;
	buf_shrink(&c->c_out, &c->c_out_cap);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	waf_connect(arg);
}

/* One attempt to connect; on failure the next is scheduled with a longer back-off. */
static void
waf_connect(struct wafc *c)
{
	struct waf *w = c->c_waf;
	uint8_t hello[DFR_SP_HELLO_LEN];
	int fd, err;

	if (c->c_fd >= 0)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&w->w_sa, sizeof(w->w_sa)) == 0) {
		c->c_fd = fd;
		c->c_hello = false;
		c->c_in_len = c->c_out_off = c->c_out_len = 0;
		event_assign(c->c_rev, w->w_srv->h_base, fd, EV_READ | EV_PERSIST, on_readable, c);
		event_assign(c->c_wev, w->w_srv->h_base, fd, EV_WRITE, on_writable, c);
		dfr_sp_hello(hello, DFR_SP_PROTO_REQ0);
		memcpy(c->c_out, hello, sizeof(hello));
		c->c_out_len = sizeof(hello);
		event_add(c->c_rev, NULL);
		on_writable(fd, EV_WRITE, c);
		dfr_log_debug("waf, connected to %s", w->w_sa.sun_path);
		return;
	}
	err = errno;
	if (fd >= 0)
		close(fd);
	if (!w->w_logged_down) {
		dfr_log_warn("waf, wafd not reachable on %s (%s), retrying; requests get the fail "
		             "mode meanwhile",
		             w->w_sa.sun_path, strerror(err));
		w->w_logged_down = true;
	}
	{
		struct timeval tv = {c->c_retry_ms / 1000, (c->c_retry_ms % 1000) * 1000};

		event_add(c->c_retry, &tv);
	}
	c->c_retry_ms = c->c_retry_ms * 2 > WAF_RETRY_MAX_MS ? WAF_RETRY_MAX_MS : c->c_retry_ms * 2;
}

struct waf *
waf_open(struct httpd *srv, const char *run_dir)
{
	struct waf *w;
	int n;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_srv = srv;
	for (size_t i = 0; i < WAF_CONNS; i++) {
		w->w_conns[i].c_waf = w;
		w->w_conns[i].c_fd = -1;
	}
	w->w_sa.sun_family = AF_UNIX;
	n = snprintf(w->w_sa.sun_path, sizeof(w->w_sa.sun_path), "%s/waf.rep", run_dir);
	if (n < 0 || (size_t)n >= sizeof(w->w_sa.sun_path)) {
		dfr_log_err("waf, %s/waf.rep does not fit a Unix socket address", run_dir);
		free(w);
		return NULL;
	}
	for (size_t i = 0; i < WAF_CONNS; i++) {
		struct wafc *c = &w->w_conns[i];

		c->c_rev = event_new(srv->h_base, -1, 0, on_readable, c);
		c->c_wev = event_new(srv->h_base, -1, 0, on_writable, c);
		c->c_retry = evtimer_new(srv->h_base, on_retry, c);
		c->c_retry_ms = WAF_RETRY_MIN_MS;
		if (c->c_rev == NULL || c->c_wev == NULL || c->c_retry == NULL ||
		    buf_reserve(&c->c_in, &c->c_in_cap, WAF_BUF_INITIAL) != DFR_OK ||
		    buf_reserve(&c->c_out, &c->c_out_cap, WAF_BUF_INITIAL) != DFR_OK) {
			waf_close(w);
			return NULL;
		}
	}
	w->w_seq = (uint32_t)srv->h_index << 20;
	dfr_log_info("waf, client of ipc://%s (%d connections)", w->w_sa.sun_path, WAF_CONNS);
	for (size_t i = 0; i < WAF_CONNS; i++)
		waf_connect(&w->w_conns[i]);
	return w;
}

void
waf_close(struct waf *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < WAF_CONNS; i++) {
		struct wafc *c = &w->w_conns[i];

		if (c->c_fd >= 0)
			close(c->c_fd);
		if (c->c_rev != NULL)
			event_free(c->c_rev);
		if (c->c_wev != NULL)
			event_free(c->c_wev);
		if (c->c_retry != NULL)
			event_free(c->c_retry);
		free(c->c_in);
		free(c->c_out);
	}
	free(w);
}

/* The connection's local address for ngx.var.server_addr/server_port: asked once per client
 * connection (a getsockname per judged request was 1.8% of httpd's profile). An h2 stream asks
 * its connection's socket. */
static void
local_addr(struct hconn *hc)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	if (hc->hc_local_known)
		return;
	hc->hc_local_known = true;
	if (getsockname(hconn_sockfd(hc), (struct sockaddr *)&ss, &sslen) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, hc->hc_local_ip, sizeof(hc->hc_local_ip));
		hc->hc_local_port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, hc->hc_local_ip, sizeof(hc->hc_local_ip));
		hc->hc_local_port = ntohs(sin6->sin6_port);
	}
}

int
waf_submit(struct waf *w, struct hconn *hc)
{
	const struct h1_msg *m = &hc->hc_req.hp_msg;
	struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_req req = {0};
	const struct h1_hdr *host;
	struct slot *sl;
	struct wafc *c = NULL;
	size_t size, len;
	uint32_t id;
	int rv;

	local_addr(hc);
	req.wr_scheme = hc->hc_tls ? DFR_WAF_HTTPS : DFR_WAF_HTTP;
	req.wr_http_major = m->m_major;
	req.wr_http_minor = m->m_minor;
	req.wr_peer_port = hc->hc_peer_port;
	req.wr_server_port = hc->hc_local_port;
	req.wr_domain_id = dfr_waf_str_c(hc->hc_zone->rz_id);
	req.wr_domain_name = dfr_waf_str_c(hc->hc_zone->rz_name);
	host = &m->m_hdrs[m->m_host];
	req.wr_host = (struct dfr_waf_str){m->m_buf + host->h_val, host->h_val_len};
	req.wr_method = dfr_waf_str_c(http_method_str((enum http_method)m->m_method));
	req.wr_target = (struct dfr_waf_str){m->m_buf + m->m_url, m->m_url_len};
	req.wr_peer_addr = dfr_waf_str_c(hc->hc_peer_ip);
	req.wr_server_addr = dfr_waf_str_c(hc->hc_local_ip);
	for (unsigned i = 0; i < m->m_nhdrs && i < DFR_WAF_MAX_HEADERS; i++) {
		hdrs[i].wh_name = (struct dfr_waf_str){m->m_buf + m->m_hdrs[i].h_name,
		                                       m->m_hdrs[i].h_name_len};
		hdrs[i].wh_value =
		        (struct dfr_waf_str){m->m_buf + m->m_hdrs[i].h_val, m->m_hdrs[i].h_val_len};
		req.wr_nheaders++;
	}
	req.wr_headers = hdrs;
	req.wr_body = dfr_waf_str_c("");
	if ((size = dfr_waf_req_size(&req)) == 0)
		return DFR_ELIMIT;
	/* the connection with the fewest requests in flight (the first on a tie) */
	for (size_t i = 0; i < WAF_CONNS; i++) {
		struct wafc *k = &w->w_conns[i];

		if (k->c_fd >= 0 && k->c_out_len <= WAF_OUT_MAX &&
		    (c == NULL || k->c_inflight < c->c_inflight))
			c = k;
	}
	if (c == NULL)
		return DFR_EAGAIN; /* wafd is not there, or not reading: no point waiting */
	if (w->w_inflight >= WAF_SLOTS / 2)
		return DFR_EAGAIN;
	if (buf_reserve(&c->c_out, &c->c_out_cap, c->c_out_len + DFR_SP_HDR_LEN + 4 + size) !=
	    DFR_OK)
		return DFR_ENOMEM;
	/* The high bit marks the last word of a REQ backtrace. */
	do {
		id = ++w->w_seq | DFR_SP_ID_FLAG;
		sl = &w->w_slots[id % WAF_SLOTS];
	} while (sl->s_id != 0);
	/* frame header, request id, message: straight into the output buffer */
	rv = dfr_waf_req_encode(c->c_out + c->c_out_len + DFR_SP_HDR_LEN + 4, size,
	                        hc->hc_rtab ? hc->hc_rtab->rtab_generation : 0, &req, &len);
	if (rv != DFR_OK)
		return rv;
	dfr_sp_frame_header(c->c_out + c->c_out_len, 4 + len);
	dfr_sp_put32(c->c_out + c->c_out_len + DFR_SP_HDR_LEN, id);
	/* the first request of this loop iteration schedules one write for all of them */
	if (c->c_out_len == c->c_out_off)
		event_active(c->c_wev, EV_WRITE, 0);
	c->c_out_len += DFR_SP_HDR_LEN + 4 + len;
	sl->s_id = id;
	sl->s_hc = hc;
	sl->s_conn = c;
	c->c_inflight++;
	w->w_inflight++;
	hc->hc_waf_id = id;
	return DFR_OK;
}

void
waf_cancel(struct waf *w, struct hconn *hc)
{
	struct slot *sl;
	uint32_t id = (uint32_t)hc->hc_waf_id;

	if (w == NULL || id == 0)
		return;
	hc->hc_waf_id = 0;
	sl = &w->w_slots[id % WAF_SLOTS];
	if (sl->s_id == id && sl->s_hc == hc) {
		sl->s_id = 0;
		sl->s_hc = NULL;
		sl->s_conn->c_inflight--;
		w->w_inflight--;
	}
}
