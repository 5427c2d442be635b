/*
 * HTTP/2 over TLS (ALPN h2) with nghttp2.
 *
 * The connection (an hconn whose handshake chose h2) carries one nghttp2 server session fed
 * from its TLS bufferevent; nothing of HTTP/2 is parsed here but by nghttp2. Each stream is an
 * exchange of its own: an hconn (hconn_stream_new) whose client side is one end of a
 * bufferevent pair (the stream object keeps the pair, its parser and buffers for the next stream
 * of the worker). h2.c writes the stream's request into the other end as an HTTP/1.1 request
 * (pseudo-headers to request line and Host, the body as it comes, chunked when no length was
 * given) and reads the HTTP/1.1 response the exchange writes back, parsed by h1.c, into HEADERS
 * and DATA frames. So every stream gets exactly what an HTTP/1.1 request gets: routing, the
 * WAF, a backend connection from the pool, timeouts, limits, metrics, the access log.
 *
 * Flow control: nghttp2 keeps the client's windows for what we send; the response body of a
 * stream waits in st_body and the pair is not read while that holds more than H2_BODY_HWM, so a
 * client that does not open its window stops the backend (as a slow HTTP/1 client does). The
 * client's uploads are acknowledged as they reach the stream's exchange, and the connection stops
 * reading while a stream's pair holds more than H2_BODY_HWM. Limits:
 * SETTINGS_MAX_CONCURRENT_STREAMS H2_MAX_STREAMS, header list over HTTPD_MAX_HEADER_BYTES refused
 * with RST_STREAM.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define H2_MAX_STREAMS 128
#define H2_BODY_HWM    (256 * 1024)
#define H2_OUT_HWM     (256 * 1024)

bool h2_enabled = true;

struct h2conn {
	struct hconn *h2_hc;
	nghttp2_session *h2_sess;
	unsigned h2_nstreams;
	bool h2_freeing;
	struct h2stream *h2_streams; /* open streams */
};

struct h2stream {
	struct h2conn *st_conn;
	int32_t st_id;
	struct hconn *st_hc;        /* the exchange; NULL once it closed */
	struct bufferevent *st_bev;  /* our end of the pair */
	struct bufferevent *st_xbev; /* the exchange's end; both kept with a spare stream */
	struct evbuffer *st_hdrs;   /* request header lines being gathered */
	struct evbuffer *st_body;   /* response body for DATA frames */
	struct h1_parser st_resp;
	char *st_method, *st_path, *st_authority;
	size_t st_hdr_bytes;
	bool st_has_length, st_chunked, st_head_sent, st_resp_submitted, st_eof, st_head_req;
	bool st_too_big;
	bool st_closing;  /* being freed: the exchange's close must not call back */
	bool st_detached; /* the exchange closed: what it wrote is all there is */
	struct h2stream *st_next, **st_prevp;
};

static void h2_flush(struct h2conn *h);

/* A connection without streams is closed after HTTPD_IDLE_TIMEOUT_MS (the hconn's timer, in its
 * IDLE state). */
static void
idle_arm(struct h2conn *h)
{
	struct httpd *srv = h->h2_hc->hc_srv;

	event_add(h->h2_hc->hc_timer, httpd_timeout(srv, srv->h_opts.o_idle_timeout_ms));
}

/* One end of a stream's pair made ready for the next stream: nothing in it, nobody called.
 * A deferred callback still pending reaches the next owner with nothing to read, which every
 * callback of both sides takes as nothing to do. A pair keeps the start of its output frozen
 * between its own transfers (so a drain there fails): what the last exchange left unsent would
 * go to the next stream's reader. */
static void
pair_reset(struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);

	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	evbuffer_drain(in, evbuffer_get_length(in));
	evbuffer_unfreeze(out, 1);
	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_freeze(out, 1);
}

static void
pair_free(struct h2stream *st)
{
	if (st->st_bev != NULL)
		bufferevent_free(st->st_bev);
	if (st->st_xbev != NULL)
		bufferevent_free(st->st_xbev);
	st->st_bev = st->st_xbev = NULL;
}

static void
stream_free(struct h2stream *st)
{
	st->st_closing = true;
	if (st->st_prevp != NULL) {
		*st->st_prevp = st->st_next;
		if (st->st_next != NULL)
			st->st_next->st_prevp = st->st_prevp;
		if (--st->st_conn->h2_nstreams == 0 && !st->st_conn->h2_freeing)
			idle_arm(st->st_conn);
	}
	if (st->st_hc != NULL)
		hconn_close(st->st_hc, "h2 stream ended"); /* detaches, leaves st_xbev to us */
	free(st->st_method);
	free(st->st_path);
	free(st->st_authority);
	st->st_method = st->st_path = st->st_authority = NULL;
	if (st->st_hdrs != NULL && st->st_body != NULL && st->st_resp.hp_msg.m_buf != NULL) {
		struct httpd *srv = st->st_conn->h2_hc->hc_srv;

		if (srv->h_h2_nspare < 256 && st->st_bev != NULL) {
			/* Kept for the next stream: its parser, buffers and pair. */
			evbuffer_drain(st->st_hdrs, evbuffer_get_length(st->st_hdrs));
			evbuffer_drain(st->st_body, evbuffer_get_length(st->st_body));
			pair_reset(st->st_bev);
			pair_reset(st->st_xbev);
			st->st_next = srv->h_h2_spare;
			srv->h_h2_spare = st;
			srv->h_h2_nspare++;
			return;
		}
	}
	pair_free(st);
	if (st->st_hdrs != NULL)
		evbuffer_free(st->st_hdrs);
	if (st->st_body != NULL)
		evbuffer_free(st->st_body);
	h1_parser_fini(&st->st_resp);
	free(st);
}

void
h2_spare_free(struct httpd *srv)
{
	struct h2stream *st;

	while ((st = srv->h_h2_spare) != NULL) {
		srv->h_h2_spare = st->st_next;
		pair_free(st);
		evbuffer_free(st->st_hdrs);
		evbuffer_free(st->st_body);
		h1_parser_fini(&st->st_resp);
		free(st);
	}
	srv->h_h2_nspare = 0;
}

/* A stream object: a kept one (parser reset, buffers empty) or a new one. NULL on ENOMEM. */
static struct h2stream *
stream_new(struct httpd *srv)
{
	struct h2stream *st = srv->h_h2_spare;

	if (st != NULL) {
		struct h1_parser resp = st->st_resp;
		struct evbuffer *hdrs = st->st_hdrs, *body = st->st_body;
		struct bufferevent *bev = st->st_bev, *xbev = st->st_xbev;

		srv->h_h2_spare = st->st_next;
		srv->h_h2_nspare--;
		memset(st, 0, sizeof(*st));
		st->st_resp = resp;
		st->st_resp.hp_p.data = &st->st_resp;
		h1_parser_reset(&st->st_resp);
		st->st_hdrs = hdrs;
		st->st_body = body;
		st->st_bev = bev;
		st->st_xbev = xbev;
		return st;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	if (h1_parser_init(&st->st_resp, HTTP_RESPONSE, 64 * 1024, 256, 0) != DFR_OK ||
	    (st->st_hdrs = evbuffer_new()) == NULL || (st->st_body = evbuffer_new()) == NULL) {
		if (st->st_hdrs != NULL)
			evbuffer_free(st->st_hdrs);
		h1_parser_fini(&st->st_resp);
		free(st);
		return NULL;
	}
	return st;
}

void
h2_stream_detach(struct h2stream *st)
{
	st->st_hc = NULL;
	if (st->st_closing)
		return;
	/* Read what the exchange wrote before it closed, then end the stream (pair_read). */
	st->st_detached = true;
	bufferevent_trigger(st->st_bev, EV_READ,
	                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

int
h2_stream_sockfd(const struct h2stream *st)
{
	const struct hconn *hc = st->st_conn->h2_hc;

	return hc->hc_bev != NULL ? bufferevent_getfd(hc->hc_bev) : -1;
}

static ssize_t
body_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
          nghttp2_data_source *src, void *arg)
{
	struct h2stream *st = src->ptr;
	int n = evbuffer_remove(st->st_body, buf, len);

	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (evbuffer_get_length(st->st_body) < H2_BODY_HWM && st->st_bev != NULL)
		bufferevent_enable(st->st_bev, EV_READ);
	if (evbuffer_get_length(st->st_body) == 0 && st->st_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return n;
	}
	if (n == 0)
		return NGHTTP2_ERR_DEFERRED;
	return n;
}

static int
resp_body(void *arg, const char *at, size_t len)
{
	struct h2stream *st = arg;

	return evbuffer_add(st->st_body, at, len) == 0 ? 0 : -1;
}

static bool
hop_header(const char *n, size_t len)
{
	static const char *const hop[] = {"connection",        "keep-alive", "proxy-connection",
	                                  "transfer-encoding", "upgrade",    "te",
	                                  "trailer",           NULL};

	for (int i = 0; hop[i] != NULL; i++)
		if (strlen(hop[i]) == len && strncasecmp(hop[i], n, len) == 0)
			return true;
	return false;
}

/* The response head is in st_resp: HEADERS with a data provider on st_body. */
static int
submit_head(struct h2stream *st)
{
	const struct h1_msg *m = &st->st_resp.hp_msg;
	/* a usual head fits on the stack; nghttp2 copies what we submit */
	nghttp2_nv nva_stack[64], *nva = nva_stack;
	char names_stack[2048], *names = names_stack, status[4];
	nghttp2_data_provider prd;
	size_t n = 0, off = 0;
	int rc;

	if (m->m_nhdrs + 1 > sizeof(nva_stack) / sizeof(nva_stack[0]))
		nva = calloc(m->m_nhdrs + 1, sizeof(*nva));
	if (m->m_len + 1 > sizeof(names_stack))
		names = malloc(m->m_len + 1);
	if (nva == NULL || names == NULL) {
		if (nva != nva_stack)
			free(nva);
		if (names != names_stack)
			free(names);
		return -1;
	}
	snprintf(status, sizeof(status), "%03u", m->m_status % 1000);
	nva[n++] =
	        (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
	for (unsigned i = 0; i < m->m_nhdrs; i++) {
		const struct h1_hdr *h = &m->m_hdrs[i];
		const char *nm = m->m_buf + h->h_name;

		if (hop_header(nm, h->h_name_len) || h->h_name_len == 0)
			continue;
		for (uint32_t k = 0; k < h->h_name_len; k++)
			names[off + k] =
			        (char)((nm[k] >= 'A' && nm[k] <= 'Z') ? nm[k] + 32 : nm[k]);
		nva[n++] = (nghttp2_nv){(uint8_t *)names + off, (uint8_t *)m->m_buf + h->h_val,
		                        h->h_name_len, h->h_val_len, NGHTTP2_NV_FLAG_NONE};
		off += h->h_name_len;
	}
	prd.source.ptr = st;
	prd.read_callback = body_read;
	rc = nghttp2_submit_response(st->st_conn->h2_sess, st->st_id, nva, n, &prd);
	if (nva != nva_stack)
		free(nva);
	if (names != names_stack)
		free(names);
	st->st_resp_submitted = rc == 0;
	return rc;
}

/* The exchange wrote response bytes into the pair. */
static void
pair_read(struct bufferevent *bev, void *arg)
{
	struct h2stream *st = arg;
	struct h2conn *h = st->st_conn;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0 && !st->st_eof) {
		enum h1_ev ev = h1_parser_feed_buffer(&st->st_resp, in, NULL);

		if (ev == H1_EV_NONE)
			break; /* all of it taken */
		if (ev == H1_EV_ERROR) {
			nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
			                          NGHTTP2_INTERNAL_ERROR);
			st->st_eof = true;
			break;
		}
		if (ev == H1_EV_HEAD) {
			h1_parser_resume(&st->st_resp);
			if (st->st_resp.hp_msg.m_status / 100 == 1)
				continue; /* our own 100 Continue: HTTP/2 clients do not need it */
			if (submit_head(st) != 0) {
				nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
				                          NGHTTP2_INTERNAL_ERROR);
				st->st_eof = true;
				break;
			}
		} else if (ev == H1_EV_DONE) {
			if (st->st_resp.hp_msg.m_status / 100 == 1) {
				h1_parser_reset(&st->st_resp);
				st->st_resp.hp_body_fn = resp_body;
				st->st_resp.hp_body_arg = st;
				continue;
			}
			st->st_eof = true;
		}
	}
	if (st->st_detached && !st->st_eof) {
		if (!(st->st_resp.hp_head_done && h1_parser_eof_delimited(&st->st_resp)))
			nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
			                          NGHTTP2_INTERNAL_ERROR);
		st->st_eof = true;
	}
	if (evbuffer_get_length(st->st_body) >= H2_BODY_HWM)
		bufferevent_disable(bev, EV_READ); /* body_read() resumes */
	if (st->st_resp_submitted)
		nghttp2_session_resume_data(h->h2_sess, st->st_id);
	h2_flush(h);
}

static void
pair_event(struct bufferevent *bev, short what, void *arg)
{
	struct h2stream *st = arg;
	struct h2conn *h = st->st_conn;

	/* The exchange closed its end. */
	if (!st->st_eof) {
		if (st->st_resp.hp_head_done && h1_parser_eof_delimited(&st->st_resp)) {
			st->st_eof = true;
		} else {
			nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
			                          NGHTTP2_INTERNAL_ERROR);
			st->st_eof = true;
		}
	}
	if (st->st_resp_submitted)
		nghttp2_session_resume_data(h->h2_sess, st->st_id);
	h2_flush(h);
}

/* The exchange took request bytes off the pair: reading the connection may go on. */
static void
pair_write(struct bufferevent *bev, void *arg)
{
	struct h2stream *st = arg;

	if (st->st_conn->h2_hc->hc_bev != NULL)
		hconn_reading(st->st_conn->h2_hc, true);
}

/* ---- nghttp2 callbacks -------------------------------------------------------------------- */

static int
on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *arg)
{
	struct h2conn *h = arg;
	struct h2stream *st;
	struct bufferevent *pair[2] = {NULL, NULL};

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((st = stream_new(h->h2_hc->hc_srv)) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->st_conn = h;
	st->st_id = f->hd.stream_id;
	if (st->st_bev == NULL) {
		if (bufferevent_pair_new(h->h2_hc->hc_srv->h_base, BEV_OPT_DEFER_CALLBACKS, pair) !=
		    0) {
			st->st_closing = true;
			stream_free(st);
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		}
		st->st_bev = pair[1];
		st->st_xbev = pair[0];
	}
	st->st_resp.hp_body_fn = resp_body;
	st->st_resp.hp_body_arg = st;
	bufferevent_setcb(st->st_bev, pair_read, pair_write, pair_event, st);
	bufferevent_setwatermark(st->st_bev, EV_WRITE, H2_BODY_HWM / 2, 0);
	bufferevent_enable(st->st_bev, EV_READ | EV_WRITE);
	if ((st->st_hc = hconn_stream_new(h->h2_hc, st->st_xbev, st)) == NULL) {
		st->st_closing = true;
		stream_free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	nghttp2_session_set_stream_user_data(sess, st->st_id, st);
	st->st_next = h->h2_streams;
	if (st->st_next != NULL)
		st->st_next->st_prevp = &st->st_next;
	st->st_prevp = &h->h2_streams;
	h->h2_streams = st;
	h->h2_nstreams++;
	event_del(h->h2_hc->hc_timer);
	stats_h2("stream");
	return 0;
}

static char *
dup_n(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static int
on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
          const uint8_t *val, size_t vlen, uint8_t flags, void *arg)
{
	struct h2conn *h = arg;
	struct h2stream *st;

	if (f->hd.type != NGHTTP2_HEADERS ||
	    (st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id)) == NULL)
		return 0;
	st->st_hdr_bytes += nlen + vlen + 4;
	if (st->st_hdr_bytes > h->h2_hc->hc_srv->h_opts.o_max_header_bytes) {
		st->st_too_big = true;
		return 0;
	}
	if (nlen > 0 && name[0] == ':') {
		char **slot = NULL;

		if (nlen == 7 && memcmp(name, ":method", 7) == 0)
			slot = &st->st_method;
		else if (nlen == 5 && memcmp(name, ":path", 5) == 0)
			slot = &st->st_path;
		else if (nlen == 10 && memcmp(name, ":authority", 10) == 0)
			slot = &st->st_authority;
		if (slot != NULL && *slot == NULL && (*slot = dup_n(val, vlen)) == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		return 0;
	}
	if (hop_header((const char *)name, nlen))
		return 0;
	if (nlen == 4 && memcmp(name, "host", 4) == 0 && st->st_authority != NULL)
		return 0;
	if (nlen == 14 && memcmp(name, "content-length", 14) == 0)
		st->st_has_length = true;
	evbuffer_add(st->st_hdrs, name, nlen);
	evbuffer_add(st->st_hdrs, ": ", 2);
	evbuffer_add(st->st_hdrs, val, vlen);
	evbuffer_add(st->st_hdrs, "\r\n", 2);
	return 0;
}

/* The request head is complete: write it into the pair as HTTP/1.1. */
static void
send_head(struct h2conn *h, struct h2stream *st, bool end_stream)
{
	struct evbuffer *out = bufferevent_get_output(st->st_bev);

	if (st->st_too_big) {
		nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
		                          NGHTTP2_REFUSED_STREAM);
		stats_h2("refused");
		return;
	}
	if (st->st_method == NULL || st->st_path == NULL || strpbrk(st->st_path, " \r\n") != NULL ||
	    strpbrk(st->st_method, " \r\n") != NULL ||
	    (st->st_authority != NULL && strpbrk(st->st_authority, " \r\n") != NULL)) {
		nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
		                          NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->st_head_req = strcmp(st->st_method, "HEAD") == 0;
	st->st_resp.hp_skip_body = st->st_head_req;
	/* the head in one piece (one evbuffer chain, no printf) */
	{
		size_t lm = strlen(st->st_method), lp = strlen(st->st_path);
		size_t la = st->st_authority != NULL ? strlen(st->st_authority) : 0;
		/* "M P HTTP/1.1\r\n", "Host: A\r\n", the headers, the chunked line, "\r\n" */
		size_t need = lm + 1 + lp + 11 + (st->st_authority != NULL ? 8 + la : 0) +
		              evbuffer_get_length(st->st_hdrs) + 28 + 2;
		struct evbuffer_iovec v;
		char *p;

		if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) != 1) {
			nghttp2_submit_rst_stream(h->h2_sess, NGHTTP2_FLAG_NONE, st->st_id,
			                          NGHTTP2_INTERNAL_ERROR);
			return;
		}
		p = v.iov_base;
		memcpy(p, st->st_method, lm);
		p += lm;
		*p++ = ' ';
		memcpy(p, st->st_path, lp);
		p += lp;
		memcpy(p, " HTTP/1.1\r\n", 11);
		p += 11;
		if (st->st_authority != NULL) {
			memcpy(p, "Host: ", 6);
			memcpy(p + 6, st->st_authority, la);
			memcpy(p + 6 + la, "\r\n", 2);
			p += 8 + la;
		}
		p += evbuffer_remove(st->st_hdrs, p, evbuffer_get_length(st->st_hdrs));
		if (!end_stream && !st->st_has_length) {
			memcpy(p, "Transfer-Encoding: chunked\r\n", 28);
			p += 28;
			st->st_chunked = true;
		}
		memcpy(p, "\r\n", 2);
		p += 2;
		v.iov_len = (size_t)(p - (char *)v.iov_base);
		evbuffer_commit_space(out, &v, 1);
	}
	st->st_head_sent = true;
}

static int
on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *arg)
{
	struct h2conn *h = arg;
	struct h2stream *st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);

	if (st == NULL)
		return 0;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		send_head(h, st, f->hd.flags & NGHTTP2_FLAG_END_STREAM);
	else if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	         (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && st->st_head_sent && st->st_chunked)
		evbuffer_add(bufferevent_get_output(st->st_bev), "0\r\n\r\n", 5);
	return 0;
}

static int
on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
        void *arg)
{
	struct h2conn *h = arg;
	struct h2stream *st = nghttp2_session_get_stream_user_data(sess, id);
	struct evbuffer *out;

	if (st == NULL || !st->st_head_sent)
		return 0;
	out = bufferevent_get_output(st->st_bev);
	if (st->st_chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (st->st_chunked)
		evbuffer_add(out, "\r\n", 2);
	if (evbuffer_get_length(out) > H2_BODY_HWM)
		hconn_reading(h->h2_hc, false); /* pair_write() resumes */
	return 0;
}

static int
on_stream_close(nghttp2_session *sess, int32_t id, uint32_t err, void *arg)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(sess, id);

	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(sess, id, NULL);
	stream_free(st);
	return 0;
}

/* ---- the connection ----------------------------------------------------------------------- */

static void
h2_end(struct h2conn *h, const char *why)
{
	if (!h->h2_freeing)
		hconn_close(h->h2_hc, why);
}

/* Frames nghttp2 has for the client, while the output is not too full. */
static void
h2_flush(struct h2conn *h)
{
	struct hconn *hc = h->h2_hc;
	struct evbuffer *out;

	if (h->h2_freeing || hc->hc_bev == NULL)
		return;
	out = bufferevent_get_output(hc->hc_bev);
	for (;;) {
		size_t added = 0;

		while (evbuffer_get_length(out) < H2_OUT_HWM) {
			const uint8_t *data;
			ssize_t n = nghttp2_session_mem_send(h->h2_sess, &data);

			if (n < 0) {
				h2_end(h, "http/2 send error");
				return;
			}
			if (n == 0)
				break;
			evbuffer_add(out, data, (size_t)n);
			added += (size_t)n;
		}
		/* As the HTTP/1 paths do: write now; what the socket refuses libevent writes,
		 * and its write callback (h2_write) brings us back. All written and more
		 * frames waiting (the output limit stopped us): once more. */
		if (!hconn_out(hc) || added == 0 || !nghttp2_session_want_write(h->h2_sess))
			break;
	}
	if (!nghttp2_session_want_read(h->h2_sess) && !nghttp2_session_want_write(h->h2_sess) &&
	    evbuffer_get_length(out) == 0)
		h2_end(h, "http/2 session done");
}

int
h2_start(struct hconn *hc)
{
	nghttp2_session_callbacks *cbs = NULL;
	struct h2conn *h = calloc(1, sizeof(*h));
	nghttp2_settings_entry iv[] = {
	        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
	        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, hc->hc_srv->h_opts.o_max_header_bytes},
	};
	int rc = DFR_ENOMEM;

	if (h == NULL || nghttp2_session_callbacks_new(&cbs) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	h->h2_hc = hc;
	if (nghttp2_session_server_new(&h->h2_sess, cbs, h) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cbs);
	cbs = NULL;
	if (nghttp2_submit_settings(h->h2_sess, NGHTTP2_FLAG_NONE, iv, 2) != 0)
		goto fail;
	hc->hc_h2 = h;
	stats_h2("conn");
	idle_arm(h);
	h2_flush(h);
	if (hc->hc_h2 != NULL && evbuffer_get_length(bufferevent_get_input(hc->hc_bev)) > 0)
		h2_read(hc);
	return DFR_OK;
fail:
	nghttp2_session_callbacks_del(cbs);
	if (h != NULL && h->h2_sess != NULL)
		nghttp2_session_del(h->h2_sess);
	free(h);
	return rc;
}

void
h2_read(struct hconn *hc)
{
	struct h2conn *h = hc->hc_h2;
	struct evbuffer *in = bufferevent_get_input(hc->hc_bev);

	while (hc->hc_h2 != NULL && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = nghttp2_session_mem_recv(h->h2_sess, v.iov_base, v.iov_len);
		if (n < 0) {
			dfr_log_debug("h2, bad input from %s:%u (%s)", hc->hc_peer_ip,
			              hc->hc_peer_port, nghttp2_strerror((int)n));
			h2_end(h, "http/2 protocol error");
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
	if (hc->hc_h2 != NULL)
		h2_flush(h);
}

void
h2_write(struct hconn *hc)
{
	h2_flush(hc->hc_h2);
}

void
h2_free(struct h2conn *h)
{
	h->h2_freeing = true;
	/* Deleting the session calls on_stream_close for no stream: free them here. */
	while (h->h2_streams != NULL) {
		struct h2stream *st = h->h2_streams;

		nghttp2_session_set_stream_user_data(h->h2_sess, st->st_id, NULL);
		stream_free(st);
	}
	nghttp2_session_del(h->h2_sess);
	free(h);
}
