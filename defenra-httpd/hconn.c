/*
 * The client connection: one struct hconn per accepted socket, its state machine (enum
 * hconn_state), its timeouts and its one exit, hconn_close().
 *
 * An exchange goes: head read and parsed (h1.c) -> routed on the current route table
 * (route.c) -> ACME answer, redirect or error status, or the WAF verdict (waf.c) -> a backend
 * connection (upstream.c) -> request head sent, body streamed up while the response streams
 * down -> keep-alive: the next pipelined request is parsed only now, so answers go out in
 * order. Each direction stops reading its source while the other side's output is above
 * HC_OUT_HWM and resumes when it drains (libevent le-proxy), so a 1 GB body takes a few
 * hundred KiB. After a 101 the connection becomes a tunnel.
 *
 * A TLS connection (HTTPS_LISTEN) is the same machine on a bufferevent_openssl: the handshake
 * runs before the first request (tls.c picks the certificate by SNI), its output goes through
 * SSL_write() (tls_flush_out(), never sockwrite_flush(), which writes to the socket), the
 * backend is told X-Forwarded-Proto: https, and the checks of the domain's type are the other way
 * round
 * (an http-only domain gets 403 over TLS, an https-only one is redirected over plain HTTP).
 * When ALPN chose h2 the connection hands its bytes to h2.c, and each HTTP/2 stream is an hconn
 * of its own on a bufferevent pair (hconn_stream_new()).
 *
 * Not here: parsing (h1.c), which backend (route.c), pooling (upstream.c), metrics and the
 * access log (stats.c).
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define HC_OUT_HWM  (256 * 1024) /* stop reading the source above this much pending output */
#define HC_READ_HWM (64 * 1024)

static void client_read(struct bufferevent *bev, void *arg);
static void client_write(struct bufferevent *bev, void *arg);
static void client_event(struct bufferevent *bev, short what, void *arg);
static void parse_requests(struct hconn *hc);
static void pump_request(struct hconn *hc);
static void pump_response(struct hconn *hc);
static void start_upstream(struct hconn *hc);
static void tunnel_pump(struct hconn *hc);

/* The client's read timeout (0: none); its write timeout is always HTTPD_SEND_TIMEOUT_MS (set
 * once, in hconn_accept(), for a plain connection). */
static void
client_timeouts(struct hconn *hc, unsigned read_ms)
{
	struct httpd *srv = hc->hc_srv;

	if (hc->hc_rd.sr_ev != NULL) {
		sockread_timeout(&hc->hc_rd, read_ms);
		return;
	}
	bufferevent_set_timeouts(hc->hc_bev, httpd_timeout(srv, read_ms),
	                         httpd_timeout(srv, srv->h_opts.o_send_timeout_ms));
}

/* Client reading on or off: our reader on a socket (plain, or TLS once the handshake is done),
 * libevent's during a handshake and on h2 streams. */
void
hconn_reading(struct hconn *hc, bool on)
{
	if (hc->hc_rd.sr_ev != NULL)
		sockread_set(&hc->hc_rd, on);
	else if (on)
		bufferevent_enable(hc->hc_bev, EV_READ);
	else
		bufferevent_disable(hc->hc_bev, EV_READ);
}

/* The backend's read timeout (0: none); a backend that stops reading what we send is cut after
 * HTTPD_UPSTREAM_READ_TIMEOUT_MS too (the write timeout upstream.c sets on connect). */
static void
up_timeouts(struct upconn *uc, unsigned read_ms)
{
	sockread_timeout(&uc->uc_rd, read_ms);
}

static void
arm_timer(struct hconn *hc, unsigned ms)
{
	event_add(hc->hc_timer, httpd_timeout(hc->hc_srv, ms));
}

static void
set_state(struct hconn *hc, enum hconn_state st)
{
	hc->hc_state = st;
}

static double
elapsed(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * sockwrite_flush() for a TLS connection: SSL_write() of the pending output at once, in
 * pieces of up to one record made contiguous first (a response head and a small body go out
 * as one record and one send()). bufferevent_openssl (libevent 2.1) would write only on the
 * next EPOLLOUT, with an epoll_ctl on each side of it. What OpenSSL does not take now (a full
 * socket: SSL_ERROR_WANT_WRITE) stays at the front of the output, and libevent retries that
 * same write with EV_WRITE enabled (it sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER); an error is
 * left for libevent to meet and report. The event bufferevent_openssl adds when its output
 * stops being empty is removed again by the disable, within the same loop turn (the worker's
 * base uses the epoll changelist, so the two cancel without a syscall).
 */
static bool
tls_flush_out(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	size_t len;

	if ((len = evbuffer_get_length(out)) == 0)
		return true;
	if (bufferevent_get_enabled(bev) & EV_WRITE)
		return false; /* libevent is on it */
	while (len > 0) {
		size_t n = len < 16384 ? len : 16384;
		unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)n);
		int r;

		if (p == NULL)
			break;
		r = SSL_write(ssl, p, (int)n);
		if (r <= 0 || evbuffer_drain(out, (size_t)r) != 0) {
			ERR_clear_error();
			break;
		}
		len -= (size_t)r;
	}
	if (len == 0) {
		bufferevent_disable(bev, EV_WRITE);
		return true;
	}
	bufferevent_enable(bev, EV_WRITE);
	return false;
}

/* The client's output now; true when nothing is left. An h2 stream's client is a bufferevent
 * pair that hands its output over as it is added (EV_WRITE stays enabled there). */
static bool
client_out(struct hconn *hc)
{
	if (hc->hc_stream != NULL)
		return evbuffer_get_length(bufferevent_get_output(hc->hc_bev)) == 0;
	if (hc->hc_tls)
		return tls_flush_out(hc->hc_bev);
	return sockwrite_flush(hc->hc_bev);
}

bool
hconn_out(struct hconn *hc)
{
	return client_out(hc);
}

int
hconn_sockfd(const struct hconn *hc)
{
	if (hc->hc_stream != NULL)
		return h2_stream_sockfd(hc->hc_stream);
	return hc->hc_bev != NULL ? bufferevent_getfd(hc->hc_bev) : -1;
}

static void
client_flush(struct hconn *hc)
{
	if (hc->hc_state == HC_ST_CLOSED || hc->hc_bev == NULL)
		return;
	if (client_out(hc) && hc->hc_state == HC_ST_RESPOND && hc->hc_close_after)
		hconn_close(hc, "done");
}

static void
up_flush(struct hconn *hc)
{
	if (hc->hc_state != HC_ST_CLOSED && hc->hc_up != NULL && hc->hc_up->uc_state == UC_ST_BUSY)
		(void)sockwrite_flush(hc->hc_up->uc_bev);
}

/* ---- local answers ------------------------------------------------------------------------ */

/* The request's body is still unread (an answer before it was forwarded). */
static bool
req_body_pending(const struct hconn *hc)
{
	const struct h1_msg *m = &hc->hc_req.hp_msg;

	if (hc->hc_req_done)
		return false;
	return m->m_chunked || (m->m_content_length != UINT64_MAX && m->m_content_length > 0);
}

/* Answers the current request locally. `extra` header lines may be NULL. The connection
 * stays only when the request was read whole and the client wants keep-alive. */
static void
respond(struct hconn *hc, unsigned status, const char *ctype, const char *body, size_t body_len,
        const char *extra, size_t extra_len)
{
	struct evbuffer *out = bufferevent_get_output(hc->hc_bev);
	bool head_only = hc->hc_req.hp_head_done && hc->hc_req.hp_msg.m_method == HTTP_HEAD;
	char line[256];
	int n;

	if (req_body_pending(hc) || hc->hc_req.hp_ev == H1_EV_ERROR || !hc->hc_req.hp_head_done ||
	    hc->hc_req.hp_msg.m_upgrade)
		hc->hc_keepalive = false;
	if (hc->hc_keepalive && !hc->hc_req_done && hc->hc_req.hp_ev == H1_EV_HEAD) {
		/* A request without body answered here: let the parser end it (it paused just
		 * before the head's last byte), so the connection can carry the next one. */
		h1_parser_resume(&hc->hc_req);
		if (h1_parser_feed_buffer(&hc->hc_req, bufferevent_get_input(hc->hc_bev), NULL) ==
		    H1_EV_DONE)
			hc->hc_req_done = true;
		else
			hc->hc_keepalive = false;
	}
	hc->hc_status = status;
	n = snprintf(line, sizeof(line),
	             "HTTP/1.1 %u %s\r\nServer: defenra\r\nContent-Type: %s\r\nContent-Length: "
	             "%zu\r\n%s",
	             status, h1_reason(status), ctype, body_len,
	             hc->hc_keepalive ? "" : "Connection: close\r\n");
	evbuffer_add(out, line, (size_t)n);
	if (extra != NULL)
		evbuffer_add(out, extra, extra_len);
	if (hc->hc_extra_hdrs != NULL)
		evbuffer_add(out, hc->hc_extra_hdrs, hc->hc_extra_len);
	evbuffer_add(out, "\r\n", 2);
	if (!head_only && body_len > 0)
		evbuffer_add(out, body, body_len);
	hc->hc_resp_started = true;
	hc->hc_resp_done = true;
	hconn_reading(hc, false);
	set_state(hc, HC_ST_RESPOND);
	/* Local answers are rare: let libevent write them and report the end (client_write),
	 * so that a run of pipelined local answers does not recurse. */
	bufferevent_enable(hc->hc_bev, EV_WRITE);
}

static void
respond_status(struct hconn *hc, unsigned status)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%u %s\n", status, h1_reason(status));

	respond(hc, status, "text/plain", body, (size_t)n, NULL, 0);
}

/* ---- exchange life cycle ------------------------------------------------------------------ */

static void
exchange_reset(struct hconn *hc)
{
	route_table_unref(hc->hc_rtab);
	hc->hc_rtab = NULL;
	hc->hc_route = NULL;
	hc->hc_zone = NULL;
	hc->hc_req_done = hc->hc_resp_started = hc->hc_resp_done = false;
	hc->hc_resp_chunked = hc->hc_req_chunked_up = hc->hc_retried = false;
	hc->hc_req_body_up = 0;
	hc->hc_status = 0;
	free(hc->hc_extra_hdrs);
	hc->hc_extra_hdrs = NULL;
	hc->hc_extra_len = 0;
}

/* The current exchange is over (response complete in the output buffer). */
static void
exchange_done(struct hconn *hc)
{
	struct evbuffer *in = bufferevent_get_input(hc->hc_bev);

	stats_request(hc);
	if (hc->hc_up != NULL) {
		/* Reusable only after a whole exchange, nothing left over. */
		bool reusable = hc->hc_req_done && hc->hc_resp_done &&
		                hc->hc_resp.hp_msg.m_keepalive &&
		                !h1_parser_eof_delimited(&hc->hc_resp);

		upstream_release(hc->hc_up, reusable);
		hc->hc_up = NULL;
	}
	if (!hc->hc_keepalive || !hc->hc_req_done) {
		hc->hc_close_after = true;
		exchange_reset(hc);
		set_state(hc, HC_ST_RESPOND);
		if (evbuffer_get_length(bufferevent_get_output(hc->hc_bev)) == 0)
			hconn_close(hc, "done");
		return;
	}
	exchange_reset(hc);
	set_state(hc, HC_ST_IDLE);
	client_timeouts(hc, 0);
	h1_parser_resume(&hc->hc_req);
	arm_timer(hc, hc->hc_srv->h_opts.o_idle_timeout_ms);
	hconn_reading(hc, true);
	if (evbuffer_get_length(in) > 0)
		parse_requests(hc);
}

/* ---- request head ------------------------------------------------------------------------- */

static void
redirect_https(struct hconn *hc)
{
	const struct h1_msg *m = &hc->hc_req.hp_msg;
	char *loc;
	size_t cap = strlen(hc->hc_host) + m->m_url_len + 32;
	int n;

	if ((loc = malloc(cap)) == NULL) {
		hconn_close(hc, "out of memory");
		return;
	}
	n = snprintf(loc, cap, "Location: https://%s%.*s\r\n", hc->hc_host, (int)m->m_url_len,
	             m->m_buf + m->m_url);
	respond(hc, m->m_method == HTTP_GET || m->m_method == HTTP_HEAD ? 301 : 308, "text/plain",
	        "", 0, loc, (size_t)n);
	free(loc);
}

/* Routing decision for a complete head; ends in a local answer, the WAF or the backend. */
static void
handle_head(struct hconn *hc)
{
	struct httpd *srv = hc->hc_srv;
	struct h1_msg *m = &hc->hc_req.hp_msg;
	enum route_result res;
	const char *keyauth;

	event_del(hc->hc_timer);
	hc->hc_keepalive = m->m_keepalive;
	if (m->m_method == HTTP_CONNECT ||
	    (m->m_url_len > 0 && m->m_buf[m->m_url] != '/' && m->m_buf[m->m_url] != '*')) {
		/* Absolute-form targets and CONNECT are for forward proxies. */
		respond_status(hc, 400);
		return;
	}
	if (h1_msg_host(m, hc->hc_host, sizeof(hc->hc_host)) != DFR_OK) {
		respond_status(hc, 400);
		return;
	}
	hc->hc_rtab = srv->h_routes != NULL ? route_table_ref(srv->h_routes) : NULL;
	res = route_lookup(hc->hc_rtab, hc->hc_host, &hc->hc_route, &hc->hc_zone);
	if (hc->hc_zone != NULL && (m->m_method == HTTP_GET || m->m_method == HTTP_HEAD) &&
	    (keyauth = acme_match(hc->hc_zone, m->m_buf + m->m_url, m->m_url_len)) != NULL) {
		respond(hc, 200, "text/plain", keyauth, strlen(keyauth), NULL, 0);
		return;
	}
	switch (res) {
	case ROUTE_NO_ZONE:
	case ROUTE_NO_NAME:
		respond_status(hc, 404);
		return;
	case ROUTE_NOT_PROXIED:
		respond_status(hc, 403);
		return;
	case ROUTE_NO_BACKEND:
	case ROUTE_OK:
		break;
	}
	if (hc->hc_zone->rz_http_type == (hc->hc_tls ? DFR_HTTP_ONLY : DFR_HTTPS_ONLY)) {
		if (hc->hc_tls)
			respond_status(hc, 403); /* plain http only: the wrong scheme */
		else
			redirect_https(hc);
		return;
	}
	if (res == ROUTE_NO_BACKEND) {
		respond_status(hc, 502);
		return;
	}
	if (hc->hc_zone->rz_waf && srv->h_waf != NULL) {
		/* Reading stays on while wafd judges: what the client sends meanwhile waits in
		 * the input (up to HC_READ_HWM), and turning it off and on again cost two
		 * epoll_ctl per judged request. */
		set_state(hc, HC_ST_WAF);
		arm_timer(hc, srv->h_opts.o_waf_timeout_ms);
		if (waf_submit(srv->h_waf, hc) == DFR_OK)
			return;
		event_del(hc->hc_timer);
		hconn_waf_failed(hc);
		return;
	}
	start_upstream(hc);
}

void
hconn_waf_done(struct hconn *hc, const struct waf_verdict *v)
{
	if (hc->hc_state != HC_ST_WAF)
		return;
	event_del(hc->hc_timer);
	hc->hc_waf_id = 0;
	if (v->wv_kind == WAF_V_RESPOND) {
		stats_waf("block");
		respond(hc, v->wv_status, v->wv_ctype != NULL ? v->wv_ctype : "text/plain",
		        v->wv_body, v->wv_body_len, v->wv_hdrs, v->wv_hdrs_len);
		return;
	}
	if (v->wv_kind == WAF_V_FAIL) {
		hconn_waf_failed(hc);
		return;
	}
	stats_waf("pass");
	if (v->wv_hdrs_len > 0 && (hc->hc_extra_hdrs = malloc(v->wv_hdrs_len)) != NULL) {
		memcpy(hc->hc_extra_hdrs, v->wv_hdrs, v->wv_hdrs_len);
		hc->hc_extra_len = v->wv_hdrs_len;
	}
	start_upstream(hc);
}

void
hconn_waf_failed(struct hconn *hc)
{
	hc->hc_waf_id = 0;
	if (hc->hc_srv->h_opts.o_waf_fail_closed) {
		stats_waf("fail_closed");
		respond_status(hc, 503);
		return;
	}
	stats_waf("fail_open");
	start_upstream(hc);
}

/* ---- towards the backend ------------------------------------------------------------------ */

static int
req_body_up(void *arg, const char *at, size_t len)
{
	struct hconn *hc = arg;
	struct evbuffer *out;
	char sz[24];
	int n;

	if (hc->hc_up == NULL)
		return 0; /* discarding */
	out = bufferevent_get_output(hc->hc_up->uc_bev);
	if (hc->hc_req_chunked_up) {
		n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		evbuffer_add(out, sz, (size_t)n);
		evbuffer_add(out, at, len);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add(out, at, len);
	}
	hc->hc_req_body_up += len;
	return 0;
}

static int
resp_body_down(void *arg, const char *at, size_t len)
{
	struct hconn *hc = arg;
	struct evbuffer *out = bufferevent_get_output(hc->hc_bev);
	char sz[24];
	int n;

	if (hc->hc_resp_chunked) {
		n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		evbuffer_add(out, sz, (size_t)n);
		evbuffer_add(out, at, len);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add(out, at, len);
	}
	return 0;
}

static void
start_upstream(struct hconn *hc)
{
	const struct route *r = hc->hc_route;
	struct upconn *uc;

	set_state(hc, HC_ST_PROXY);
	uc = upstream_get(hc->hc_srv, hc, (const struct sockaddr *)&r->rt_addr, r->rt_addrlen,
	                  !hc->hc_retried);
	if (uc == NULL) {
		stats_upstream_event("connect_fail");
		respond_status(hc, 502);
		return;
	}
	hc->hc_up = uc;
	h1_parser_reset(&hc->hc_resp);
	hc->hc_resp.hp_skip_body = hc->hc_req.hp_msg.m_method == HTTP_HEAD;
	hc->hc_resp.hp_body_fn = resp_body_down;
	hc->hc_resp.hp_body_arg = hc;
	if (uc->uc_state == UC_ST_BUSY)
		hconn_up_connected(hc);
}

/* The backend connection is ready: send the head and let the body flow. */
void
hconn_up_connected(struct hconn *hc)
{
	struct httpd *srv = hc->hc_srv;
	const struct h1_msg *m = &hc->hc_req.hp_msg;
	size_t n;

	n = h1_req_head(m, hc->hc_peer_ip, hc->hc_tls ? "https" : "http", srv->h_scratch,
	                srv->h_scratch_len);
	if (n == 0) {
		upstream_release(hc->hc_up, false);
		hc->hc_up = NULL;
		respond_status(hc, 431);
		return;
	}
	bufferevent_write(hc->hc_up->uc_bev, srv->h_scratch, n);
	clock_gettime(CLOCK_MONOTONIC, &hc->hc_tup);
	hc->hc_req_chunked_up = m->m_chunked;
	if (m->m_expect_continue && req_body_pending(hc) && !hc->hc_retried && m->m_major == 1 &&
	    m->m_minor >= 1)
		bufferevent_write(hc->hc_bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	up_timeouts(hc->hc_up, 0);
	if (!hc->hc_req_done) {
		client_timeouts(hc, srv->h_opts.o_body_timeout_ms);
		h1_parser_resume(&hc->hc_req);
		hconn_reading(hc, true); /* for the body (no-op when already on) */
		pump_request(hc);
		client_flush(hc); /* a 100 Continue */
	} else {
		/* A retry: the request (without body) was read whole already. */
		up_timeouts(hc->hc_up, srv->h_opts.o_up_read_ms);
		up_flush(hc);
	}
}

/* Moves request body bytes from the client to the backend while the backend keeps up. */
static void pump_request_inner(struct hconn *hc);

static void
pump_request(struct hconn *hc)
{
	pump_request_inner(hc);
	up_flush(hc);
}

static void
pump_request_inner(struct hconn *hc)
{
	struct evbuffer *in = bufferevent_get_input(hc->hc_bev);
	struct upconn *uc = hc->hc_up;
	enum h1_ev ev;

	if (hc->hc_req_done || uc == NULL || uc->uc_state != UC_ST_BUSY)
		return;
	if (evbuffer_get_length(bufferevent_get_output(uc->uc_bev)) > HC_OUT_HWM)
		return; /* hconn_up_drained() resumes */
	hc->hc_req.hp_body_fn = req_body_up;
	hc->hc_req.hp_body_arg = hc;
	ev = h1_parser_feed_buffer(&hc->hc_req, in, NULL);
	hc->hc_req.hp_body_fn = NULL;
	if (ev == H1_EV_ERROR) {
		unsigned st = hc->hc_req.hp_err_status;

		upstream_release(uc, false);
		hc->hc_up = NULL;
		if (!hc->hc_resp_started)
			respond_status(hc, st ? st : 400);
		else
			hconn_close(hc, "bad request body");
		return;
	}
	if (ev == H1_EV_DONE) {
		if (hc->hc_req_chunked_up)
			bufferevent_write(uc->uc_bev, "0\r\n\r\n", 5);
		hc->hc_req_done = true;
		/* Pipelined bytes wait in the input until this exchange is over (reading stays
		 * on, so a client's EOF is seen; the read watermark bounds what waits). */
		client_timeouts(hc, 0);
		up_timeouts(uc, hc->hc_srv->h_opts.o_up_read_ms);
		up_flush(hc);
		if (hc->hc_resp_done) {
			exchange_done(hc);
			client_flush(hc);
		} else if (evbuffer_get_length(bufferevent_get_input(uc->uc_bev)) > 0) {
			pump_response(hc);
		}
	}
}

void
hconn_up_drained(struct hconn *hc)
{
	if (hc->hc_state == HC_ST_TUNNEL)
		tunnel_pump(hc);
	else if (hc->hc_state == HC_ST_PROXY)
		pump_request(hc);
}

void
hconn_up_readable(struct hconn *hc)
{
	if (hc->hc_state == HC_ST_TUNNEL)
		tunnel_pump(hc);
	else if (hc->hc_state == HC_ST_PROXY)
		pump_response(hc);
}

static void
start_tunnel(struct hconn *hc)
{
	struct h1_msg *m = &hc->hc_resp.hp_msg;
	struct evbuffer *out = bufferevent_get_output(hc->hc_bev);
	int up = h1_msg_find(m, "upgrade");
	size_t n;

	hc->hc_status = 101;
	hc->hc_resp_started = true;
	n = h1_resp_head(m, false, true, NULL, 0, hc->hc_srv->h_scratch, hc->hc_srv->h_scratch_len);
	if (n == 0 || up < 0) {
		hconn_close(hc, "bad 101 from backend");
		return;
	}
	/* h1_resp_head drops the hop-by-hop pair; a 101 needs it back. */
	evbuffer_add(out, hc->hc_srv->h_scratch, n - 2);
	evbuffer_add_printf(out, "Connection: upgrade\r\nUpgrade: %.*s\r\n\r\n",
	                    (int)m->m_hdrs[up].h_val_len, m->m_buf + m->m_hdrs[up].h_val);
	set_state(hc, HC_ST_TUNNEL);
	stats_request(hc);
	client_timeouts(hc, 0); /* a tunnel may stay quiet; writes still time out */
	up_timeouts(hc->hc_up, 0);
	hconn_reading(hc, true);
	tunnel_pump(hc);
}

static void
tunnel_pump(struct hconn *hc)
{
	struct upconn *uc = hc->hc_up;
	struct evbuffer *cin = bufferevent_get_input(hc->hc_bev);
	struct evbuffer *cout = bufferevent_get_output(hc->hc_bev);
	struct evbuffer *uin = bufferevent_get_input(uc->uc_bev);
	struct evbuffer *uout = bufferevent_get_output(uc->uc_bev);
	bool client_on = evbuffer_get_length(uout) < HC_OUT_HWM;
	bool up_on = evbuffer_get_length(cout) < HC_OUT_HWM;

	if (client_on) {
		hc->hc_bytes_in += evbuffer_get_length(cin);
		evbuffer_add_buffer(uout, cin);
	}
	hconn_reading(hc, client_on);
	if (up_on) {
		hc->hc_bytes_out += evbuffer_get_length(uin);
		evbuffer_add_buffer(cout, uin);
	}
	sockread_set(&uc->uc_rd, up_on);
	(void)sockwrite_flush(uc->uc_bev);
	(void)client_out(hc);
}

static void pump_response_inner(struct hconn *hc);

/* Moves response bytes from the backend to the client while the client keeps up. */
static void
pump_response(struct hconn *hc)
{
	pump_response_inner(hc);
	client_flush(hc);
}

static void
pump_response_inner(struct hconn *hc)
{
	struct upconn *uc = hc->hc_up;
	struct evbuffer *in, *out = bufferevent_get_output(hc->hc_bev);

	if (uc == NULL || hc->hc_resp_done)
		return;
	in = bufferevent_get_input(uc->uc_bev);
	while (evbuffer_get_length(out) <= HC_OUT_HWM) {
		struct h1_msg *m = &hc->hc_resp.hp_msg;
		size_t used;
		enum h1_ev ev = h1_parser_feed_buffer(&hc->hc_resp, in, &used);

		uc->uc_resp_bytes += used;
		if (ev == H1_EV_NONE)
			return;
		if (ev == H1_EV_ERROR) {
			upstream_release(uc, false);
			hc->hc_up = NULL;
			if (!hc->hc_resp_started) {
				hc->hc_keepalive = false;
				respond_status(hc, 502);
			} else {
				hconn_close(hc, "bad response from backend");
			}
			return;
		}
		if (ev == H1_EV_HEAD) {
			size_t n;
			bool body, chunked;

			if (m->m_status == 101) {
				if (!hc->hc_req.hp_msg.m_upgrade) {
					hconn_close(hc, "unasked 101 from backend");
					return;
				}
				/* http-parser paused before the head's last LF: let it end the
				 * message so the tunnel starts on the next byte. */
				h1_parser_resume(&hc->hc_resp);
				if (h1_parser_feed_buffer(&hc->hc_resp, in, &used) != H1_EV_DONE) {
					hconn_close(hc, "bad 101 from backend");
					return;
				}
				start_tunnel(hc);
				return;
			}
			h1_parser_resume(&hc->hc_resp);
			if (m->m_status / 100 == 1)
				continue; /* interim: we sent our own 100 Continue */
			stats_upstream_latency(elapsed(&hc->hc_tup));
			body = !hc->hc_resp.hp_skip_body && m->m_status != 204 &&
			       m->m_status != 304;
			chunked = body && (m->m_chunked || h1_parser_eof_delimited(&hc->hc_resp));
			if (chunked &&
			    (hc->hc_req.hp_msg.m_major == 1 && hc->hc_req.hp_msg.m_minor == 0)) {
				chunked = false;
				hc->hc_keepalive = false; /* an HTTP/1.0 client reads to EOF */
			}
			if (!hc->hc_req_done)
				hc->hc_keepalive =
				        false; /* early answer: the rest of the body is moot */
			hc->hc_resp_chunked = chunked;
			hc->hc_status = m->m_status;
			n = h1_resp_head(m, chunked, hc->hc_keepalive, hc->hc_extra_hdrs,
			                 hc->hc_extra_len, hc->hc_srv->h_scratch,
			                 hc->hc_srv->h_scratch_len);
			if (n == 0) {
				upstream_release(uc, false);
				hc->hc_up = NULL;
				respond_status(hc, 502);
				return;
			}
			evbuffer_add(out, hc->hc_srv->h_scratch, n);
			hc->hc_resp_started = true;
			continue;
		}
		/* H1_EV_DONE */
		if (m->m_status / 100 == 1) {
			h1_parser_resume(&hc->hc_resp);
			continue;
		}
		if (hc->hc_resp_chunked)
			evbuffer_add(out, "0\r\n\r\n", 5);
		hc->hc_resp_done = true;
		if (hc->hc_req_done) {
			exchange_done(hc);
		} else {
			/* The backend answered before the whole body: the client connection
			 * cannot be reused; stop reading the body. */
			upstream_release(uc, false);
			hc->hc_up = NULL;
			hc->hc_keepalive = false;
			hc->hc_req_done = true;
			hconn_reading(hc, false);
			exchange_done(hc);
		}
		return;
	}
}

void
hconn_up_failed(struct hconn *hc, int what, int err)
{
	struct upconn *uc = hc->hc_up;

	if (hc->hc_state == HC_ST_TUNNEL) {
		tunnel_pump(hc);
		upstream_release(uc, false);
		hc->hc_up = NULL;
		hc->hc_close_after = true;
		set_state(hc, HC_ST_RESPOND);
		hconn_reading(hc, false);
		if (evbuffer_get_length(bufferevent_get_output(hc->hc_bev)) == 0)
			hconn_close(hc, "tunnel closed by backend");
		else
			client_flush(hc);
		return;
	}
	if ((what & BEV_EVENT_EOF) && hc->hc_resp.hp_head_done && !hc->hc_resp_done &&
	    h1_parser_eof_delimited(&hc->hc_resp)) {
		/* The end of a response delimited by the close: parse what is left, then EOF. */
		pump_response(hc);
		if (hc->hc_up == uc && !hc->hc_resp_done &&
		    evbuffer_get_length(bufferevent_get_input(uc->uc_bev)) == 0) {
			h1_parser_feed(&hc->hc_resp, NULL, 0);
			if (hc->hc_resp_chunked)
				evbuffer_add(bufferevent_get_output(hc->hc_bev), "0\r\n\r\n", 5);
			hc->hc_resp_done = true;
			if (!hc->hc_req_done)
				hc->hc_keepalive = false;
			hc->hc_req_done = true;
			exchange_done(hc);
			client_flush(hc);
		} else if (hc->hc_up == uc) {
			/* Held back by the client: finish when it drains (client_write). */
			sockread_set(&uc->uc_rd, false);
			uc->uc_eof = true;
		}
		return;
	}
	if (uc->uc_reused && uc->uc_resp_bytes == 0 && hc->hc_req_body_up == 0 && hc->hc_req_done &&
	    !hc->hc_retried && !(what & BEV_EVENT_TIMEOUT)) {
		/* The backend closed a kept-alive connection as we reused it: once more, fresh. */
		stats_upstream_event("retry");
		upstream_release(uc, false);
		hc->hc_up = NULL;
		hc->hc_retried = true;
		start_upstream(hc);
		return;
	}
	upstream_release(uc, false);
	hc->hc_up = NULL;
	if (!hc->hc_resp_started) {
		unsigned st = (what & BEV_EVENT_TIMEOUT) ? 504 : 502;

		stats_upstream_event(st == 504 ? "timeout" : "connect_fail");
		dfr_log_debug("upstream, %s (%s) for %s, client %s:%u, host %s",
		              st == 504 ? "timed out" : "failed", err ? strerror(err) : "closed",
		              hc->hc_route ? hc->hc_route->rt_addr_text : "-", hc->hc_peer_ip,
		              hc->hc_peer_port, hc->hc_host);
		hc->hc_keepalive = false;
		respond_status(hc, st);
		return;
	}
	hc->hc_close_after = true;
	set_state(hc, HC_ST_RESPOND);
	hconn_reading(hc, false);
	if (evbuffer_get_length(bufferevent_get_output(hc->hc_bev)) == 0)
		hconn_close(hc, "backend closed mid-response");
	else
		client_flush(hc);
}

/* ---- client side -------------------------------------------------------------------------- */

static void
parse_requests(struct hconn *hc)
{
	struct evbuffer *in = bufferevent_get_input(hc->hc_bev);
	enum h1_ev ev;

	if (hc->hc_state == HC_ST_IDLE) {
		if (evbuffer_get_length(in) == 0)
			return;
		set_state(hc, HC_ST_READ_HEAD);
		if (stats_access_on())
			clock_gettime(CLOCK_MONOTONIC, &hc->hc_t0);
		arm_timer(hc, hc->hc_srv->h_opts.o_header_timeout_ms);
	}
	ev = h1_parser_feed_buffer(&hc->hc_req, in, NULL);
	switch (ev) {
	case H1_EV_NONE:
		return;
	case H1_EV_ERROR:
		event_del(hc->hc_timer);
		hc->hc_keepalive = false;
		respond_status(hc, hc->hc_req.hp_err_status ? hc->hc_req.hp_err_status : 400);
		return;
	case H1_EV_HEAD:
		handle_head(hc);
		return;
	case H1_EV_DONE:
		/* Cannot come before a head; treat as malformed. */
		hc->hc_keepalive = false;
		respond_status(hc, 400);
		return;
	}
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct hconn *hc = arg;

	if (hc->hc_h2 != NULL) {
		h2_read(hc);
		return;
	}
	switch (hc->hc_state) {
	case HC_ST_IDLE:
	case HC_ST_READ_HEAD:
		parse_requests(hc);
		break;
	case HC_ST_PROXY:
		pump_request(hc);
		break;
	case HC_ST_TUNNEL:
		tunnel_pump(hc);
		break;
	default:
		break;
	}
}

static void
client_write(struct bufferevent *bev, void *arg)
{
	struct hconn *hc = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	if (left == 0 && hc->hc_stream == NULL)
		bufferevent_disable(bev, EV_WRITE); /* back to direct writes */
	if (hc->hc_h2 != NULL) {
		h2_write(hc);
		return;
	}
	switch (hc->hc_state) {
	case HC_ST_RESPOND:
		if (left != 0)
			break;
		if (hc->hc_close_after)
			hconn_close(hc, "done");
		else
			exchange_done(hc);
		break;
	case HC_ST_PROXY:
		if (hc->hc_up != NULL && hc->hc_up->uc_eof) {
			hconn_up_failed(hc, BEV_EVENT_EOF, 0);
			break;
		}
		if (hc->hc_up != NULL)
			sockread_set(&hc->hc_up->uc_rd, true);
		pump_response(hc);
		break;
	case HC_ST_TUNNEL:
		tunnel_pump(hc);
		break;
	default:
		break;
	}
}

/* The handshake is done: from now on our reader takes the connection's bytes (sockread.c),
 * in the state libevent's reading was in, and the bufferevent only writes. */
static int
tls_read_ourselves(struct hconn *hc, struct bufferevent *bev, SSL *ssl)
{
	bool on = (bufferevent_get_enabled(bev) & EV_READ) != 0;

	if (sockread_init(&hc->hc_rd, hc->hc_srv, bev, HC_READ_HWM,
	                  hc->hc_srv->h_opts.o_send_timeout_ms, client_read, client_event,
	                  hc) != DFR_OK)
		return DFR_ENOMEM;
	if (sockread_use_tls(&hc->hc_rd, ssl) != DFR_OK) {
		sockread_fini(&hc->hc_rd);
		return DFR_ENOMEM;
	}
	hconn_reading(hc, on);
	return DFR_OK;
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct hconn *hc = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake completed; ALPN may have chosen HTTP/2. */
		const unsigned char *alpn = NULL;
		unsigned alpn_len = 0;
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		tls_handshake_done(hc, ssl);
		if (tls_read_ourselves(hc, bev, ssl) != DFR_OK) {
			hconn_close(hc, "out of memory");
			return;
		}
		SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
		if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0 && h2_start(hc) != DFR_OK)
			hconn_close(hc, "cannot start http/2");
		return;
	}
	if (hc->hc_tls && !hc->hc_tls_done && hc->hc_tls_fail == NULL) {
		hc->hc_tls_fail = (what & BEV_EVENT_TIMEOUT)
		                          ? "timeout"
		                          : tls_error_reason(bufferevent_get_openssl_error(bev));
		if (strcmp(hc->hc_tls_fail, "plain_http") == 0) {
			/* Plain HTTP on the TLS port: say so in plain HTTP (as nginx does). */
			static const char msg[] =
			        "HTTP/1.1 400 Bad Request\r\nServer: defenra\r\nContent-Type: "
			        "text/plain\r\nContent-Length: 46\r\nConnection: close\r\n\r\n"
			        "The plain HTTP request was sent to HTTPS port\n";

			if (write(bufferevent_getfd(bev), msg, sizeof(msg) - 1) < 0) {
				/* the peer is gone: nothing to tell */
			}
		}
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    hc->hc_state == HC_ST_PROXY && !hc->hc_resp_started) {
		/* Request body too slow. */
		if (hc->hc_up != NULL) {
			upstream_release(hc->hc_up, false);
			hc->hc_up = NULL;
		}
		hc->hc_keepalive = false;
		respond_status(hc, 408);
		return;
	}
	if ((what & BEV_EVENT_EOF) && hc->hc_state == HC_ST_WAF) {
		/* Half-closed while wafd judges: the verdict still gets an answer out (reading
		 * resumes with the request and sees the EOF again, then as below). */
		hc->hc_keepalive = false;
		return;
	}
	if ((what & BEV_EVENT_EOF) && hc->hc_state == HC_ST_PROXY && hc->hc_req_done) {
		/* A client that half-closes after its request still gets the answer. */
		hc->hc_keepalive = false;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		hconn_close(hc, "timeout");
	else if (what & BEV_EVENT_EOF)
		hconn_close(hc, "client closed");
	else
		hconn_close(hc, "client error");
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *hc = arg;

	switch (hc->hc_state) {
	case HC_ST_IDLE:
		hconn_close(hc, "idle");
		break;
	case HC_ST_READ_HEAD:
		hc->hc_keepalive = false;
		hc->hc_status = 408;
		hconn_close(hc, "request head timeout");
		break;
	case HC_ST_WAF:
		dfr_log_debug("waf, no verdict in time, client %s:%u, host %s", hc->hc_peer_ip,
		              hc->hc_peer_port, hc->hc_host);
		waf_cancel(hc->hc_srv->h_waf, hc);
		hconn_waf_failed(hc);
		break;
	default:
		break;
	}
}

void
hconn_accept(struct httpd *srv, int fd, const struct sockaddr *sa, socklen_t salen, bool tls)
{
	struct hconn *hc;
	SSL *ssl = NULL;
	int one = 1;

	if (srv->h_nconns >= srv->h_opts.o_max_conns) {
		(void)close(fd);
		return;
	}
	if ((hc = calloc(1, sizeof(*hc))) == NULL) {
		(void)close(fd);
		return;
	}
	hc->hc_srv = srv;
	memcpy(&hc->hc_peer, sa, salen);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, hc->hc_peer_ip, sizeof(hc->hc_peer_ip));
		hc->hc_peer_port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, hc->hc_peer_ip, sizeof(hc->hc_peer_ip));
		hc->hc_peer_port = ntohs(sin6->sin6_port);
	}
	if (h1_parser_init(&hc->hc_req, HTTP_REQUEST, srv->h_opts.o_max_header_bytes,
	                   srv->h_opts.o_max_headers, srv->h_opts.o_max_body) != DFR_OK ||
	    h1_parser_init(&hc->hc_resp, HTTP_RESPONSE, 64 * 1024, 256, 0) != DFR_OK)
		goto fail;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tls) {
		if ((ssl = tls_new_ssl()) == NULL)
			goto fail;
		SSL_set_app_data(ssl, hc);
		hc->hc_tls = true;
		/* On failure libevent frees the SSL but leaves the socket to us. */
		hc->hc_bev = bufferevent_openssl_socket_new(srv->h_base, fd, ssl,
		                                            BUFFEREVENT_SSL_ACCEPTING,
		                                            BEV_OPT_CLOSE_ON_FREE);
		if (hc->hc_bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(hc->hc_bev, 1);
	} else {
		hc->hc_bev = bufferevent_socket_new(srv->h_base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	hc->hc_timer = evtimer_new(srv->h_base, timer_fired, hc);
	if (hc->hc_bev == NULL || hc->hc_timer == NULL)
		goto fail;
	fd = -1;
	bufferevent_setcb(hc->hc_bev, client_read, client_write, client_event, hc);
	bufferevent_setwatermark(hc->hc_bev, EV_WRITE, HC_OUT_HWM / 2, 0);
	if (tls)
		bufferevent_setwatermark(hc->hc_bev, EV_READ, 0, HC_READ_HWM);
	else if (sockread_init(&hc->hc_rd, srv, hc->hc_bev, HC_READ_HWM,
	                       srv->h_opts.o_send_timeout_ms, client_read, client_event,
	                       hc) != DFR_OK)
		goto fail;
	client_timeouts(hc, 0);
	set_state(hc, HC_ST_IDLE);
	arm_timer(hc, srv->h_opts.o_header_timeout_ms);
	/* libevent enables EV_WRITE on a new bufferevent; we want it only while output waits
	 * (sockwrite_flush, tls_flush_out). The TLS handshake writes whatever this says. A plain
	 * connection's reads are ours (sockread.c): its bufferevent never reads. */
	bufferevent_disable(hc->hc_bev, EV_WRITE);
	hconn_reading(hc, true);
	TAILQ_INSERT_TAIL(&srv->h_conns, hc, hc_link);
	srv->h_nconns++;
	stats_conn(1);
	return;
fail:
	if (fd >= 0)
		(void)close(fd);
	sockread_fini(&hc->hc_rd);
	if (hc->hc_bev != NULL)
		bufferevent_free(hc->hc_bev);
	if (hc->hc_timer != NULL)
		event_free(hc->hc_timer);
	h1_parser_fini(&hc->hc_req);
	h1_parser_fini(&hc->hc_resp);
	free(hc);
}

struct hconn *
hconn_stream_new(struct hconn *parent, struct bufferevent *bev, struct h2stream *st)
{
	struct httpd *srv = parent->hc_srv;
	struct hconn *hc;

	if ((hc = TAILQ_FIRST(&srv->h_spare)) != NULL) {
		/* A kept one: its parsers and timer stay, the rest starts from zero. */
		struct h1_parser req = hc->hc_req, resp = hc->hc_resp;
		struct event *timer = hc->hc_timer;

		TAILQ_REMOVE(&srv->h_spare, hc, hc_link);
		srv->h_nspare--;
		memset(hc, 0, sizeof(*hc));
		hc->hc_req = req;
		hc->hc_resp = resp;
		hc->hc_req.hp_p.data = &hc->hc_req;
		hc->hc_resp.hp_p.data = &hc->hc_resp;
		h1_parser_reset(&hc->hc_req);
		h1_parser_reset(&hc->hc_resp);
		hc->hc_timer = timer;
		goto init;
	}
	if ((hc = calloc(1, sizeof(*hc))) == NULL)
		return NULL;
init:
	hc->hc_srv = srv;
	memcpy(&hc->hc_peer, &parent->hc_peer, sizeof(hc->hc_peer));
	memcpy(hc->hc_peer_ip, parent->hc_peer_ip, sizeof(hc->hc_peer_ip));
	hc->hc_peer_port = parent->hc_peer_port;
	hc->hc_tls = hc->hc_tls_done = true;
	hc->hc_stream = st;
	hc->hc_was_stream = true;
	hc->hc_bev = bev;
	if (hc->hc_timer == NULL && (h1_parser_init(&hc->hc_req, HTTP_REQUEST, srv->h_opts.o_max_header_bytes + 1024,
	                   srv->h_opts.o_max_headers + 2, srv->h_opts.o_max_body) != DFR_OK ||
	    h1_parser_init(&hc->hc_resp, HTTP_RESPONSE, 64 * 1024, 256, 0) != DFR_OK ||
	    (hc->hc_timer = evtimer_new(srv->h_base, timer_fired, hc)) == NULL)) {
		h1_parser_fini(&hc->hc_req);
		h1_parser_fini(&hc->hc_resp);
		free(hc);
		return NULL;
	}
	bufferevent_setcb(bev, client_read, client_write, client_event, hc);
	bufferevent_setwatermark(bev, EV_READ, 0, HC_READ_HWM);
	bufferevent_setwatermark(bev, EV_WRITE, HC_OUT_HWM / 2, 0);
	set_state(hc, HC_ST_IDLE);
	arm_timer(hc, srv->h_opts.o_header_timeout_ms);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&srv->h_conns, hc, hc_link);
	srv->h_nconns++;
	return hc;
}

/* Every path that ends a client connection comes here (cf. relayd relay_close()). */
void
hconn_close(struct hconn *hc, const char *why)
{
	struct httpd *srv = hc->hc_srv;
	bool stream = hc->hc_stream != NULL;

	if (hc->hc_state == HC_ST_CLOSED)
		return;
	dfr_log_debug("hconn, closed (%s), client %s:%u, host %s", why, hc->hc_peer_ip,
	              hc->hc_peer_port, hc->hc_host[0] ? hc->hc_host : "-");
	if (hc->hc_state != HC_ST_IDLE && hc->hc_state != HC_ST_RESPOND &&
	    hc->hc_state != HC_ST_TUNNEL && hc->hc_status != 0)
		stats_request(hc);
	if (hc->hc_state == HC_ST_WAF)
		waf_cancel(srv->h_waf, hc);
	if (hc->hc_up != NULL) {
		upstream_release(hc->hc_up, false);
		hc->hc_up = NULL;
	}
	if (hc->hc_h2 != NULL) {
		h2_free(hc->hc_h2);
		hc->hc_h2 = NULL;
	}
	if (hc->hc_stream != NULL) {
		h2_stream_detach(hc->hc_stream);
		hc->hc_stream = NULL;
	} else if (hc->hc_tls) {
		if (!hc->hc_tls_done) {
			stats_tls_failed(hc->hc_tls_fail != NULL         ? hc->hc_tls_fail
			                 : hc->hc_state == HC_ST_IDLE ? "timeout"
			                                                : "other");
		} else {
			/* close_notify, once, without waiting for the peer's. */
			SSL *ssl = bufferevent_openssl_get_ssl(hc->hc_bev);

			if (ssl != NULL) {
				(void)SSL_shutdown(ssl);
				ERR_clear_error();
			}
		}
	}
	sockread_fini(&hc->hc_rd);
	if (stream) {
		/* the pair end stays with the h2 stream object, for its next stream */
		bufferevent_disable(hc->hc_bev, EV_READ | EV_WRITE);
		bufferevent_setcb(hc->hc_bev, NULL, NULL, NULL, NULL);
	} else {
		bufferevent_free(hc->hc_bev);
	}
	hc->hc_bev = NULL;
	event_del(hc->hc_timer);
	set_state(hc, HC_ST_CLOSED);
	TAILQ_REMOVE(&srv->h_conns, hc, hc_link);
	TAILQ_INSERT_TAIL(&srv->h_closed, hc, hc_link);
	srv->h_nconns--;
	if (!stream)
		stats_conn(-1);
	event_active(srv->h_reaper, EV_TIMEOUT, 0);
}

void
hconn_reap(struct httpd *srv)
{
	struct hconn *hc;

	while ((hc = TAILQ_FIRST(&srv->h_closed)) != NULL) {
		TAILQ_REMOVE(&srv->h_closed, hc, hc_link);
		exchange_reset(hc);
		if (hc->hc_was_stream && srv->h_nspare < 256 && srv->h_nlisteners > 0) {
			/* HTTP/2 streams come and go by the thousand: keep it for the next. */
			TAILQ_INSERT_HEAD(&srv->h_spare, hc, hc_link);
			srv->h_nspare++;
			continue;
		}
		event_free(hc->hc_timer);
		h1_parser_fini(&hc->hc_req);
		h1_parser_fini(&hc->hc_resp);
		free(hc);
	}
}

void
hconn_close_all(struct httpd *srv)
{
	struct hconn *hc;

	while ((hc = TAILQ_FIRST(&srv->h_conns)) != NULL)
		hconn_close(hc, "shutdown");
	hconn_reap(srv);
	while ((hc = TAILQ_FIRST(&srv->h_spare)) != NULL) {
		TAILQ_REMOVE(&srv->h_spare, hc, hc_link);
		srv->h_nspare--;
		event_free(hc->hc_timer);
		h1_parser_fini(&hc->hc_req);
		h1_parser_fini(&hc->hc_resp);
		free(hc);
	}
}
