/*
 * The req/rep client of wafd (ipc://RUN_DIR/waf.rep), one per worker: a raw NNG REQ socket
 * whose requests we number ourselves (the 32-bit id with the high bit set that REQ/REP carries
 * as the backtrace), so many requests are judged at once over one connection and each verdict
 * finds its connection by id in a slot table.
 *
 * Everything happens in the worker's loop thread: requests go out with a non-blocking
 * nng_sendmsg, verdicts are read with non-blocking nng_recvmsg when NNG's receive-poll fd
 * (NNG_OPT_RECVFD) turns readable. So the loop never waits on the bus, no connection state is
 * touched from an NNG thread (STYLE.md §7), and no NNG callback thread sits on the request
 * path (an earlier version with contexts and aio callbacks cost about twice the CPU per
 * request, mostly thread switches).
 *
 * Time limit: the connection arms WAF_TIMEOUT_MS when it submits and applies WAF_FAIL_MODE when
 * it fires (hconn.c), freeing its slot; a late verdict finds no slot and is dropped. While no
 * connection to wafd is up (counted through NNG's pipe events; the dialer retries in the
 * background) a request gets the fail mode at once. The request body is not sent to wafd (an
 * empty body field): scripts see the head only.
 */
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "httpd.h"
#include "log.h"
#include "waf_msg.h"

#define WAF_SLOTS 4096 /* requests in flight per worker; more get the fail mode */

/* A request in flight: the connection waiting and the id its verdict will carry. */
struct slot {
	uint32_t s_id; /* 0: free */
	struct hconn *s_hc;
};

struct waf {
	struct httpd *w_srv;
	nng_socket w_sock;
	struct event *w_ev; /* NNG_OPT_RECVFD readable: verdicts to read */
	uint32_t w_seq;
	unsigned w_inflight;
	int w_npipes; /* connections to wafd (atomic, NNG's pipe callbacks) */
	struct slot w_slots[WAF_SLOTS];
};

/* Runs on an NNG thread: counts connections, so that while wafd is away the fail mode applies
 * at once instead of after WAF_TIMEOUT_MS for every request. */
static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct waf *w = arg;

	__atomic_add_fetch(&w->w_npipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1, __ATOMIC_RELAXED);
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

/* The loop's side: read every verdict that arrived (NNG's receive-poll fd is readable). */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct waf *w = arg;
	nng_msg *msg;

	while (nng_recvmsg(w->w_sock, &msg, NNG_FLAG_NONBLOCK) == 0) {
		struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
		struct dfr_waf_rep rep;
		struct slot *sl;
		struct hconn *hc;
		uint64_t gen;
		uint32_t id;

		if (nng_msg_header_len(msg) < 4 || nng_msg_header_trim_u32(msg, &id) != 0) {
			nng_msg_free(msg);
			continue;
		}
		sl = &w->w_slots[id % WAF_SLOTS];
		if (sl->s_id != id || (hc = sl->s_hc) == NULL) {
			nng_msg_free(msg); /* late: the connection gave up on it */
			continue;
		}
		sl->s_id = 0;
		sl->s_hc = NULL;
		w->w_inflight--;
		hc->hc_waf_id = 0;
		if (dfr_waf_rep_decode(nng_msg_body(msg), nng_msg_len(msg), &gen, &rep, hdrs) ==
		    DFR_OK) {
			deliver(hc, &rep);
		} else {
			dfr_log_warn("waf, verdict does not decode, client %s, host %s",
			             hc->hc_peer_ip, hc->hc_host);
			hconn_waf_failed(hc);
		}
		nng_msg_free(msg);
	}
}

struct waf *
waf_open(struct httpd *srv, const char *run_dir)
{
	struct waf *w;
	char url[4096];
	int rv, fd;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_srv = srv;
	snprintf(url, sizeof(url), "ipc://%s/waf.rep", run_dir);
	/* Raw REQ: we number the requests ourselves and read verdicts in the loop's thread
	 * through the receive-poll fd, so no NNG callback thread sits on the path. */
	if ((rv = nng_req0_open_raw(&w->w_sock)) != 0) {
		dfr_log_err("waf, cannot open the req socket (%s)", nng_strerror(rv));
		free(w);
		return NULL;
	}
	nng_pipe_notify(w->w_sock, NNG_PIPE_EV_ADD_POST, pipe_event, w);
	nng_pipe_notify(w->w_sock, NNG_PIPE_EV_REM_POST, pipe_event, w);
	nng_socket_set_ms(w->w_sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(w->w_sock, NNG_OPT_RECONNMAXT, 1000);
	nng_socket_set_int(w->w_sock, NNG_OPT_RECVBUF, 1024);
	nng_socket_set_int(w->w_sock, NNG_OPT_SENDBUF, 1024);
	if ((rv = nng_socket_get_int(w->w_sock, NNG_OPT_RECVFD, &fd)) != 0) {
		dfr_log_err("waf, no receive-poll fd (%s)", nng_strerror(rv));
		goto fail;
	}
	w->w_ev = event_new(srv->h_base, fd, EV_READ | EV_PERSIST, on_readable, w);
	if (w->w_ev == NULL || event_add(w->w_ev, NULL) != 0)
		goto fail;
	if ((rv = nng_dial(w->w_sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		dfr_log_err("waf, cannot dial %s (%s)", url, nng_strerror(rv));
		goto fail;
	}
	w->w_seq = (uint32_t)srv->h_index << 20;
	dfr_log_info("waf, client of %s", url);
	return w;
fail:
	waf_close(w);
	return NULL;
}

void
waf_close(struct waf *w)
{
	if (w == NULL)
		return;
	if (w->w_ev != NULL)
		event_free(w->w_ev);
	nng_close(w->w_sock);
	free(w);
}

int
waf_submit(struct waf *w, struct hconn *hc)
{
	const struct h1_msg *m = &hc->hc_req.hp_msg;
	struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_req req = {0};
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char server_ip[INET6_ADDRSTRLEN] = "";
	uint16_t server_port = 0;
	const struct h1_hdr *host;
	struct slot *sl;
	nng_msg *msg;
	size_t size, len;
	uint32_t id;
	int rv;

	if (getsockname(bufferevent_getfd(hc->hc_bev), (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &sin->sin_addr, server_ip, sizeof(server_ip));
			server_port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &sin6->sin6_addr, server_ip, sizeof(server_ip));
			server_port = ntohs(sin6->sin6_port);
		}
	}
	req.wr_scheme = DFR_WAF_HTTP;
	req.wr_http_major = m->m_major;
	req.wr_http_minor = m->m_minor;
	req.wr_peer_port = hc->hc_peer_port;
	req.wr_server_port = server_port;
	req.wr_domain_id = dfr_waf_str_c(hc->hc_zone->rz_id);
	req.wr_domain_name = dfr_waf_str_c(hc->hc_zone->rz_name);
	host = &m->m_hdrs[m->m_host];
	req.wr_host = (struct dfr_waf_str){m->m_buf + host->h_val, host->h_val_len};
	req.wr_method = dfr_waf_str_c(http_method_str((enum http_method)m->m_method));
	req.wr_target = (struct dfr_waf_str){m->m_buf + m->m_url, m->m_url_len};
	req.wr_peer_addr = dfr_waf_str_c(hc->hc_peer_ip);
	req.wr_server_addr = dfr_waf_str_c(server_ip);
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
	if (__atomic_load_n(&w->w_npipes, __ATOMIC_RELAXED) <= 0)
		return DFR_EAGAIN; /* wafd is not there: no point waiting */
	if (w->w_inflight >= WAF_SLOTS / 2)
		return DFR_EAGAIN;
	/* The high bit marks the last word of a REQ backtrace. */
	do {
		id = ++w->w_seq | 0x80000000u;
		sl = &w->w_slots[id % WAF_SLOTS];
	} while (sl->s_id != 0);
	if (nng_msg_alloc(&msg, size) != 0)
		return DFR_ENOMEM;
	rv = dfr_waf_req_encode(nng_msg_body(msg), size,
	                        hc->hc_rtab ? hc->hc_rtab->rtab_generation : 0, &req, &len);
	if (rv != DFR_OK) {
		nng_msg_free(msg);
		return rv;
	}
	nng_msg_chop(msg, size - len);
	if (nng_msg_header_append_u32(msg, id) != 0 ||
	    nng_sendmsg(w->w_sock, msg, NNG_FLAG_NONBLOCK) != 0) {
		nng_msg_free(msg);
		return DFR_EAGAIN;
	}
	sl->s_id = id;
	sl->s_hc = hc;
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
		w->w_inflight--;
	}
}
