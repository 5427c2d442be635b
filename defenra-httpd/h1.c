/*
 * HTTP/1 parsing and serialising on Debian's http-parser 2.9 (docs/httpd.md says why not
 * evhttp). A struct h1_parser turns a byte stream into message heads (kept in a bounded buffer,
 * headers in their order with repeats), decoded body pieces handed to a callback, and
 * end-of-message events; it pauses after each head and each message so the connection decides
 * what happens next (pipelined bytes stay unparsed until the previous exchange is over).
 *
 * It never sees a socket: hconn.c feeds it, tests and fuzz/fuzz_http1_head.c feed it bytes.
 * Limits: head bytes and header count (431), body bytes (413), anything malformed (400),
 * including Content-Length together with chunked (http-parser refuses it: no smuggling).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "error.h"
#include "httpd.h"

static struct h1_parser *
hp_of(http_parser *p)
{
	return p->data;
}

/* Appends to the head buffer; -1 (431) when over the limit. */
static int
head_append(struct h1_parser *hp, const char *at, size_t len)
{
	struct h1_msg *m = &hp->hp_msg;

	if (len > m->m_cap - m->m_len) {
		hp->hp_err_status = 431;
		return -1;
	}
	memcpy(m->m_buf + m->m_len, at, len);
	m->m_len += (uint32_t)len;
	return 0;
}

static int
on_message_begin(http_parser *p)
{
	struct h1_parser *hp = hp_of(p);
	struct h1_msg *m = &hp->hp_msg;

	m->m_len = 0;
	m->m_nhdrs = 0;
	m->m_url = m->m_url_len = 0;
	m->m_reason = m->m_reason_len = 0;
	m->m_host = -1;
	m->m_nhost = 0;
	m->m_chunked = m->m_keepalive = m->m_upgrade = m->m_expect_continue = false;
	m->m_content_length = UINT64_MAX;
	hp->hp_in_value = false;
	hp->hp_body_seen = 0;
	hp->hp_head_done = false;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct h1_parser *hp = hp_of(p);

	if (hp->hp_msg.m_url_len == 0)
		hp->hp_msg.m_url = hp->hp_msg.m_len;
	if (head_append(hp, at, len) != 0)
		return -1;
	hp->hp_msg.m_url_len += (uint32_t)len;
	return 0;
}

static int
on_status(http_parser *p, const char *at, size_t len)
{
	struct h1_parser *hp = hp_of(p);

	if (hp->hp_msg.m_reason_len == 0)
		hp->hp_msg.m_reason = hp->hp_msg.m_len;
	if (head_append(hp, at, len) != 0)
		return -1;
	hp->hp_msg.m_reason_len += (uint32_t)len;
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1_parser *hp = hp_of(p);
	struct h1_msg *m = &hp->hp_msg;

	if (m->m_nhdrs == 0 || hp->hp_in_value) {
		if (m->m_nhdrs == m->m_max_hdrs) {
			hp->hp_err_status = 431;
			return -1;
		}
		m->m_hdrs[m->m_nhdrs] = (struct h1_hdr){.h_name = m->m_len, .h_val = m->m_len};
		m->m_nhdrs++;
		hp->hp_in_value = false;
	}
	if (head_append(hp, at, len) != 0)
		return -1;
	m->m_hdrs[m->m_nhdrs - 1].h_name_len += (uint32_t)len;
	m->m_hdrs[m->m_nhdrs - 1].h_val = m->m_len;
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1_parser *hp = hp_of(p);
	struct h1_msg *m = &hp->hp_msg;

	hp->hp_in_value = true;
	if (m->m_nhdrs == 0)
		return -1;
	if (head_append(hp, at, len) != 0)
		return -1;
	m->m_hdrs[m->m_nhdrs - 1].h_val_len += (uint32_t)len;
	return 0;
}

static bool
name_is(const struct h1_msg *m, const struct h1_hdr *h, const char *name, size_t len)
{
	return h->h_name_len == len && strncasecmp(m->m_buf + h->h_name, name, len) == 0;
}

#define KIND(lit, k)                                                                               \
	do {                                                                                       \
		if (name_is(m, h, lit, sizeof(lit) - 1))                                           \
			return k;                                                                  \
	} while (0)

static enum h1_hkind
classify(const struct h1_msg *m, const struct h1_hdr *h)
{
	switch (h->h_name_len) {
	case 2:
		KIND("te", H1_H_TE);
		break;
	case 4:
		KIND("host", H1_H_HOST);
		break;
	case 6:
		KIND("expect", H1_H_EXPECT);
		break;
	case 7:
		KIND("trailer", H1_H_TRAILER);
		KIND("upgrade", H1_H_UPGRADE);
		break;
	case 9:
		KIND("x-real-ip", H1_H_X_REAL_IP);
		break;
	case 10:
		KIND("connection", H1_H_CONNECTION);
		KIND("keep-alive", H1_H_KEEP_ALIVE);
		break;
	case 14:
		KIND("content-length", H1_H_CONTENT_LENGTH);
		break;
	case 15:
		KIND("x-forwarded-for", H1_H_XFF);
		break;
	case 16:
		KIND("proxy-connection", H1_H_PROXY_CONNECTION);
		break;
	case 17:
		KIND("transfer-encoding", H1_H_TRANSFER_ENCODING);
		KIND("x-forwarded-proto", H1_H_XFP);
		break;
	case 18:
		KIND("proxy-authenticate", H1_H_PROXY_AUTHENTICATE);
		break;
	case 19:
		KIND("proxy-authorization", H1_H_PROXY_AUTHORIZATION);
		break;
	}
	return H1_H_OTHER;
}

/* Marks the headers that a Connection header names (RFC 9110 §7.6.1) as hop-by-hop. */
static void
mark_connection_tokens(struct h1_msg *m, const struct h1_hdr *conn)
{
	const char *v = m->m_buf + conn->h_val, *end = v + conn->h_val_len;

	while (v < end) {
		const char *tok, *tend;

		while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
			v++;
		tok = v;
		while (v < end && *v != ',')
			v++;
		tend = v;
		while (tend > tok && (tend[-1] == ' ' || tend[-1] == '\t'))
			tend--;
		if (tend == tok)
			continue;
		for (unsigned i = 0; i < m->m_nhdrs; i++)
			if (name_is(m, &m->m_hdrs[i], tok, (size_t)(tend - tok)))
				m->m_hdrs[i].h_hop = true;
	}
}

static int
on_headers_complete(http_parser *p)
{
	struct h1_parser *hp = hp_of(p);
	struct h1_msg *m = &hp->hp_msg;

	m->m_method = p->method;
	m->m_status = p->status_code;
	m->m_major = (unsigned char)p->http_major;
	m->m_minor = (unsigned char)p->http_minor;
	m->m_chunked = (p->flags & F_CHUNKED) != 0;
	m->m_keepalive = http_should_keep_alive(p) != 0;
	m->m_upgrade = p->upgrade != 0;
	if ((p->flags & F_CONTENTLENGTH) && !m->m_chunked)
		m->m_content_length = p->content_length;
	for (unsigned i = 0; i < m->m_nhdrs; i++) {
		struct h1_hdr *h = &m->m_hdrs[i];

		h->h_kind = (uint8_t)classify(m, h);
		h->h_hop = false;
		if (h->h_kind == H1_H_HOST) {
			if (m->m_nhost++ == 0)
				m->m_host = (int)i;
		} else if (h->h_kind == H1_H_EXPECT && h->h_val_len == 12 &&
		           strncasecmp(m->m_buf + h->h_val, "100-continue", 12) == 0) {
			m->m_expect_continue = true;
		}
	}
	for (unsigned i = 0; i < m->m_nhdrs; i++)
		if (m->m_hdrs[i].h_kind == H1_H_CONNECTION)
			mark_connection_tokens(m, &m->m_hdrs[i]);
	if (hp->hp_max_body != 0 && m->m_content_length != UINT64_MAX &&
	    m->m_content_length > hp->hp_max_body) {
		hp->hp_err_status = 413;
		return -1;
	}
	hp->hp_head_done = true;
	hp->hp_ev = H1_EV_HEAD;
	http_parser_pause(p, 1);
	return hp->hp_skip_body ? 1 : 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct h1_parser *hp = hp_of(p);

	hp->hp_body_seen += len;
	if (hp->hp_max_body != 0 && hp->hp_body_seen > hp->hp_max_body) {
		hp->hp_err_status = 413;
		return -1;
	}
	if (hp->hp_body_fn != NULL && hp->hp_body_fn(hp->hp_body_arg, at, len) != 0) {
		if (hp->hp_err_status == 0)
			hp->hp_err_status = 400;
		return -1;
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct h1_parser *hp = hp_of(p);

	hp->hp_ev = H1_EV_DONE;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings h1_settings = {
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_status = on_status,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
};

int
h1_parser_init(struct h1_parser *hp, enum http_parser_type type, unsigned max_head,
               unsigned max_hdrs, uint64_t max_body)
{
	memset(hp, 0, sizeof(*hp));
	hp->hp_msg.m_buf = malloc(max_head);
	hp->hp_msg.m_hdrs = calloc(max_hdrs ? max_hdrs : 1, sizeof(struct h1_hdr));
	if (hp->hp_msg.m_buf == NULL || hp->hp_msg.m_hdrs == NULL) {
		h1_parser_fini(hp);
		return DFR_ENOMEM;
	}
	hp->hp_msg.m_cap = max_head;
	hp->hp_msg.m_max_hdrs = max_hdrs;
	hp->hp_max_head = max_head;
	hp->hp_max_body = max_body;
	http_parser_init(&hp->hp_p, type);
	hp->hp_p.data = hp;
	on_message_begin(&hp->hp_p);
	return DFR_OK;
}

void
h1_parser_fini(struct h1_parser *hp)
{
	free(hp->hp_msg.m_buf);
	free(hp->hp_msg.m_hdrs);
	hp->hp_msg.m_buf = NULL;
	hp->hp_msg.m_hdrs = NULL;
}

void
h1_parser_reset(struct h1_parser *hp)
{
	http_parser_init(&hp->hp_p, (enum http_parser_type)hp->hp_p.type);
	hp->hp_p.data = hp;
	hp->hp_ev = H1_EV_NONE;
	hp->hp_err_status = 0;
	hp->hp_skip_body = false;
	on_message_begin(&hp->hp_p);
}

void
h1_parser_resume(struct h1_parser *hp)
{
	hp->hp_ev = H1_EV_NONE;
	http_parser_pause(&hp->hp_p, 0);
}

bool
h1_parser_upgraded(const struct h1_parser *hp)
{
	return hp->hp_p.upgrade != 0;
}

bool
h1_parser_eof_delimited(const struct h1_parser *hp)
{
	/* A response head without Content-Length or chunked, for a status that has a body. */
	const struct h1_msg *m = &hp->hp_msg;

	if (hp->hp_p.type != HTTP_RESPONSE || !hp->hp_head_done || hp->hp_skip_body)
		return false;
	if (m->m_status / 100 == 1 || m->m_status == 204 || m->m_status == 304)
		return false;
	return !m->m_chunked && m->m_content_length == UINT64_MAX;
}

size_t
h1_parser_feed(struct h1_parser *hp, const char *data, size_t len)
{
	size_t n;
	enum http_errno e;

	hp->hp_ev = H1_EV_NONE;
	n = http_parser_execute(&hp->hp_p, &h1_settings, data, len);
	e = HTTP_PARSER_ERRNO(&hp->hp_p);
	if (e == HPE_OK || e == HPE_PAUSED) {
		if (hp->hp_ev == H1_EV_NONE && n != len) {
			/* http-parser stops short only on an error or an upgrade. */
			if (!hp->hp_p.upgrade) {
				hp->hp_err_status = 400;
				hp->hp_ev = H1_EV_ERROR;
			}
		}
		return n;
	}
	if (hp->hp_err_status == 0)
		hp->hp_err_status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
	hp->hp_ev = H1_EV_ERROR;
	return n;
}

/* One peek sees at most 16 chains (evbuffer_peek() of the whole buffer says no more than it was
 * given room for), and an h2 stream's pair hands its body over in many small ones. */
enum h1_ev
h1_parser_feed_buffer(struct h1_parser *hp, struct evbuffer *in, size_t *consumed)
{
	struct evbuffer_iovec v[16];
	size_t total = 0, round;

	hp->hp_ev = H1_EV_NONE;
	do {
		bool stopped = false;
		int n = evbuffer_peek(in, -1, NULL, v, 16);

		round = 0;
		for (int i = 0; i < n && !stopped; i++) {
			size_t c;

			/* An empty chain (space reserved for a read that found nothing) must not
			 * reach the parser: a zero length means end of input to http-parser. */
			if (v[i].iov_len == 0)
				continue;
			c = h1_parser_feed(hp, v[i].iov_base, v[i].iov_len);
			round += c;
			stopped = hp->hp_ev != H1_EV_NONE || c < v[i].iov_len;
		}
		if (round > 0)
			evbuffer_drain(in, round);
		total += round;
		if (stopped)
			break;
	} while (round > 0 && evbuffer_get_length(in) > 0);
	if (consumed != NULL)
		*consumed = total;
	return hp->hp_ev;
}

int
h1_msg_find(const struct h1_msg *m, const char *name)
{
	size_t len = strlen(name);

	for (unsigned i = 0; i < m->m_nhdrs; i++)
		if (name_is(m, &m->m_hdrs[i], name, len))
			return (int)i;
	return -1;
}

int
h1_msg_host(const struct h1_msg *m, char *out, size_t outlen)
{
	const struct h1_hdr *h;
	const char *v, *end;
	size_t n = 0;

	if (m->m_host < 0 || m->m_nhost != 1)
		return DFR_EPARSE;
	h = &m->m_hdrs[m->m_host];
	v = m->m_buf + h->h_val;
	end = v + h->h_val_len;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (v < end && *v == '[') {
		/* An IPv6 literal: no zone of ours can be named by it. Keep it for the 404. */
		const char *close = memchr(v, ']', (size_t)(end - v));

		if (close == NULL || (size_t)(close - v + 1) >= outlen)
			return DFR_EPARSE;
		end = close + 1;
	} else {
		const char *colon = memchr(v, ':', (size_t)(end - v));

		if (colon != NULL) {
			for (const char *q = colon + 1; q < end; q++)
				if (!isdigit((unsigned char)*q))
					return DFR_EPARSE;
			end = colon;
		}
		if (end > v && end[-1] == '.')
			end--;
	}
	if (end == v || (size_t)(end - v) >= outlen)
		return DFR_EPARSE;
	for (; v < end; v++) {
		unsigned char c = (unsigned char)*v;

		if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == '[' || c == ']' ||
		      c == ':'))
			return DFR_EPARSE;
		out[n++] = (char)tolower(c);
	}
	out[n] = '\0';
	return DFR_OK;
}

/* A bounded writer over a caller's buffer: once full, everything fails and the result is 0. */
struct wbuf {
	char *w_p;
	size_t w_len, w_cap;
	bool w_full;
};

static void
w_put(struct wbuf *w, const char *s, size_t len)
{
	if (w->w_full || len > w->w_cap - w->w_len) {
		w->w_full = true;
		return;
	}
	memcpy(w->w_p + w->w_len, s, len);
	w->w_len += len;
}

#define W_LIT(w, lit) w_put((w), (lit), sizeof(lit) - 1)

static void
w_str(struct wbuf *w, const char *s)
{
	w_put(w, s, strlen(s));
}

static void
w_hdr(struct wbuf *w, const struct h1_msg *m, const struct h1_hdr *h)
{
	w_put(w, m->m_buf + h->h_name, h->h_name_len);
	W_LIT(w, ": ");
	w_put(w, m->m_buf + h->h_val, h->h_val_len);
	W_LIT(w, "\r\n");
}

static bool
is_hop(const struct h1_hdr *h)
{
	switch (h->h_kind) {
	case H1_H_CONNECTION:
	case H1_H_KEEP_ALIVE:
	case H1_H_PROXY_CONNECTION:
	case H1_H_TE:
	case H1_H_TRAILER:
	case H1_H_TRANSFER_ENCODING:
	case H1_H_UPGRADE:
	case H1_H_PROXY_AUTHENTICATE:
	case H1_H_PROXY_AUTHORIZATION:
		return true;
	default:
		return h->h_hop;
	}
}

size_t
h1_req_head(const struct h1_msg *m, const char *peer_ip, const char *proto, char *out,
            size_t outlen)
{
	struct wbuf w = {.w_p = out, .w_cap = outlen};
	bool xff = false;
	int upgrade = -1;

	w_str(&w, http_method_str((enum http_method)m->m_method));
	W_LIT(&w, " ");
	w_put(&w, m->m_buf + m->m_url, m->m_url_len);
	W_LIT(&w, " HTTP/1.1\r\n");
	for (unsigned i = 0; i < m->m_nhdrs; i++) {
		const struct h1_hdr *h = &m->m_hdrs[i];

		if (h->h_kind == H1_H_UPGRADE && upgrade < 0)
			upgrade = (int)i;
		if (is_hop(h))
			continue;
		switch (h->h_kind) {
		case H1_H_XFF:
		case H1_H_X_REAL_IP:
		case H1_H_XFP:
		case H1_H_EXPECT: /* we answer 100-continue ourselves */
			continue;
		case H1_H_CONTENT_LENGTH:
			if (m->m_chunked)
				continue;
			break;
		default:
			break;
		}
		w_hdr(&w, m, h);
	}
	/* The client's X-Forwarded-For values are kept in order as a list; the address we saw is
	 * appended and is the only one a backend may trust. */
	for (unsigned i = 0; i < m->m_nhdrs; i++) {
		const struct h1_hdr *h = &m->m_hdrs[i];

		if (h->h_kind != H1_H_XFF || is_hop(h) || h->h_val_len == 0)
			continue;
		if (!xff)
			W_LIT(&w, "X-Forwarded-For: ");
		else
			W_LIT(&w, ", ");
		w_put(&w, m->m_buf + h->h_val, h->h_val_len);
		xff = true;
	}
	if (!xff)
		W_LIT(&w, "X-Forwarded-For: ");
	else
		W_LIT(&w, ", ");
	w_str(&w, peer_ip);
	W_LIT(&w, "\r\nX-Real-IP: ");
	w_str(&w, peer_ip);
	W_LIT(&w, "\r\nX-Forwarded-Proto: ");
	w_str(&w, proto);
	W_LIT(&w, "\r\n");
	if (m->m_chunked)
		W_LIT(&w, "Transfer-Encoding: chunked\r\n");
	if (m->m_upgrade && upgrade >= 0) {
		W_LIT(&w, "Connection: upgrade\r\n");
		w_hdr(&w, m, &m->m_hdrs[upgrade]);
	}
	W_LIT(&w, "\r\n");
	return w.w_full ? 0 : w.w_len;
}

size_t
h1_resp_head(const struct h1_msg *m, bool chunked, bool keepalive, const char *extra,
             size_t extra_len, char *out, size_t outlen)
{
	struct wbuf w = {.w_p = out, .w_cap = outlen};
	char line[32] = "HTTP/1.1 ";
	size_t n = 9;

	/* The status by hand (a snprintf() was a visible share of a proxied request): http-parser
	 * takes three digits at most; under 100 it is written without leading zeros, as before. */
	if (m->m_status >= 100)
		line[n++] = (char)('0' + m->m_status / 100 % 10);
	if (m->m_status >= 10)
		line[n++] = (char)('0' + m->m_status / 10 % 10);
	line[n++] = (char)('0' + m->m_status % 10);
	line[n++] = ' ';
	w_put(&w, line, n);
	if (m->m_reason_len > 0)
		w_put(&w, m->m_buf + m->m_reason, m->m_reason_len);
	else
		w_str(&w, h1_reason(m->m_status));
	W_LIT(&w, "\r\n");
	for (unsigned i = 0; i < m->m_nhdrs; i++) {
		const struct h1_hdr *h = &m->m_hdrs[i];

		if (is_hop(h))
			continue;
		if (h->h_kind == H1_H_CONTENT_LENGTH && (chunked || m->m_chunked))
			continue;
		w_hdr(&w, m, h);
	}
	if (extra != NULL)
		w_put(&w, extra, extra_len);
	if (chunked)
		W_LIT(&w, "Transfer-Encoding: chunked\r\n");
	if (!keepalive)
		W_LIT(&w, "Connection: close\r\n");
	W_LIT(&w, "\r\n");
	return w.w_full ? 0 : w.w_len;
}

const char *
h1_reason(unsigned status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}
