/*
 * Encoder and decoder of the WAF request and verdict messages (waf_msg.h, docs/waf.md).
 *
 * Both httpd (encodes requests, decodes verdicts) and wafd (the other way round) use this file,
 * which is why it lives in shared/. The encoder writes into the caller's buffer and never
 * allocates; the decoder is a bounds-checked cursor over the received bytes that hands out
 * pointers into them. The decoder is fed by a peer process, so it trusts nothing: every length
 * is checked against what is left before it is used, and every count against the limits, before
 * the arithmetic that depends on it. It does not know what the strings mean (a method, a
 * header name): wafd and httpd judge contents.
 */
#include <string.h>

#include "bus_msg.h"
#include "error.h"
#include "waf_msg.h"

/* ---- encoding -------------------------------------------------------------------------------- */

struct wenc {
	uint8_t *we_p; /* the size was checked before the first byte is written */
};

static void
put_u8(struct wenc *e, uint8_t v)
{
	*e->we_p++ = v;
}

static void
put_u16(struct wenc *e, uint16_t v)
{
	e->we_p[0] = (uint8_t)(v >> 8);
	e->we_p[1] = (uint8_t)v;
	e->we_p += 2;
}

static void
put_u32(struct wenc *e, uint32_t v)
{
	e->we_p[0] = (uint8_t)(v >> 24);
	e->we_p[1] = (uint8_t)(v >> 16);
	e->we_p[2] = (uint8_t)(v >> 8);
	e->we_p[3] = (uint8_t)v;
	e->we_p += 4;
}

static void
put_str(struct wenc *e, struct dfr_waf_str s)
{
	put_u32(e, s.ws_len);
	if (s.ws_len > 0)
		memcpy(e->we_p, s.ws_ptr, s.ws_len);
	e->we_p += s.ws_len;
}

/* Size of a string field, or 0 when over `max` (a field is never 0 bytes: 4 for the length). */
static size_t
str_size(struct dfr_waf_str s, uint32_t max)
{
	if (s.ws_len > max || (s.ws_len > 0 && s.ws_ptr == NULL))
		return 0;
	return 4 + (size_t)s.ws_len;
}

/* Size of a header list, 0 when a limit is broken. */
static size_t
hdrs_size(const struct dfr_waf_hdr *h, uint32_t n)
{
	size_t total = 2, a, b;

	if (n > DFR_WAF_MAX_HEADERS || (n > 0 && h == NULL))
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		if (h[i].wh_name.ws_len == 0)
			return 0;
		if ((a = str_size(h[i].wh_name, DFR_WAF_MAX_NAME)) == 0 ||
		    (b = str_size(h[i].wh_value, DFR_WAF_MAX_VALUE)) == 0)
			return 0;
		total += a + b;
	}
	return total;
}

size_t
dfr_waf_req_size(const struct dfr_waf_req *req)
{
	const struct {
		struct dfr_waf_str s;
		uint32_t max;
	} f[] = {
	        {req->wr_domain_id, DFR_WAF_MAX_SHORT},   {req->wr_domain_name, DFR_WAF_MAX_SHORT},
	        {req->wr_host, DFR_WAF_MAX_SHORT},        {req->wr_method, DFR_WAF_MAX_SHORT},
	        {req->wr_target, DFR_WAF_MAX_VALUE},      {req->wr_peer_addr, DFR_WAF_MAX_SHORT},
	        {req->wr_server_addr, DFR_WAF_MAX_SHORT}, {req->wr_body, DFR_WAF_MAX_BODY},
	};
	size_t total = DFR_BUS_HDR_LEN + 8, n;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if ((n = str_size(f[i].s, f[i].max)) == 0)
			return 0;
		total += n;
	}
	if ((n = hdrs_size(req->wr_headers, req->wr_nheaders)) == 0)
		return 0;
	total += n;
	return total <= DFR_WAF_MAX_MSG ? total : 0;
}

size_t
dfr_waf_rep_size(const struct dfr_waf_rep *rep)
{
	size_t total = DFR_BUS_HDR_LEN + 8, n;

	if (rep->wv_action > DFR_WAF_ERROR || rep->wv_fail > DFR_WAF_FAIL_MAX)
		return 0;
	if (rep->wv_action == DFR_WAF_RESPOND && (rep->wv_status < 100 || rep->wv_status > 999))
		return 0;
	if ((n = hdrs_size(rep->wv_headers, rep->wv_nheaders)) == 0)
		return 0;
	total += n;
	if ((n = str_size(rep->wv_body, DFR_WAF_MAX_BODY)) == 0)
		return 0;
	total += n;
	return total <= DFR_WAF_MAX_MSG ? total : 0;
}

static void
put_hdrs(struct wenc *e, const struct dfr_waf_hdr *h, uint32_t n)
{
	put_u16(e, (uint16_t)n);
	for (uint32_t i = 0; i < n; i++) {
		put_str(e, h[i].wh_name);
		put_str(e, h[i].wh_value);
	}
}

static void
put_bus_hdr(uint8_t *buf, uint16_t type, uint64_t generation, size_t total)
{
	struct dfr_msg_hdr h = {
	        .mh_version = DFR_BUS_VERSION,
	        .mh_type = type,
	        .mh_generation = generation,
	        .mh_base_generation = 0,
	        .mh_payload_len = (uint32_t)(total - DFR_BUS_HDR_LEN),
	        .mh_flags = 0,
	};

	dfr_msg_hdr_encode(buf, &h);
}

int
dfr_waf_req_encode(uint8_t *buf, size_t cap, uint64_t generation, const struct dfr_waf_req *req,
                   size_t *len)
{
	size_t total = dfr_waf_req_size(req);
	struct wenc e = {buf + DFR_BUS_HDR_LEN};

	if (total == 0 || total > cap || req->wr_scheme > DFR_WAF_HTTPS)
		return DFR_ELIMIT;
	put_bus_hdr(buf, DFR_MSG_WAF_EVAL_REQ, generation, total);
	put_u8(&e, req->wr_scheme);
	put_u8(&e, req->wr_http_major);
	put_u8(&e, req->wr_http_minor);
	put_u8(&e, req->wr_flags);
	put_u16(&e, req->wr_peer_port);
	put_u16(&e, req->wr_server_port);
	put_str(&e, req->wr_domain_id);
	put_str(&e, req->wr_domain_name);
	put_str(&e, req->wr_host);
	put_str(&e, req->wr_method);
	put_str(&e, req->wr_target);
	put_str(&e, req->wr_peer_addr);
	put_str(&e, req->wr_server_addr);
	put_hdrs(&e, req->wr_headers, req->wr_nheaders);
	put_str(&e, req->wr_body);
	*len = (size_t)(e.we_p - buf);
	return DFR_OK;
}

int
dfr_waf_rep_encode(uint8_t *buf, size_t cap, uint64_t generation, const struct dfr_waf_rep *rep,
                   size_t *len)
{
	size_t total = dfr_waf_rep_size(rep);
	struct wenc e = {buf + DFR_BUS_HDR_LEN};

	if (total == 0 || total > cap)
		return DFR_ELIMIT;
	put_bus_hdr(buf, DFR_MSG_WAF_EVAL_REP, generation, total);
	put_u8(&e, rep->wv_action);
	put_u8(&e, rep->wv_fail);
	put_u16(&e, rep->wv_action == DFR_WAF_RESPOND ? rep->wv_status : 0);
	put_u32(&e, rep->wv_flags);
	put_hdrs(&e, rep->wv_headers, rep->wv_nheaders);
	put_str(&e, rep->wv_body);
	*len = (size_t)(e.we_p - buf);
	return DFR_OK;
}

/* ---- decoding -------------------------------------------------------------------------------- */

struct wdec {
	const uint8_t *wd_p;
	size_t wd_left;
	int wd_rc; /* first error; every get after an error is a no-op */
};

static uint8_t
get_u8(struct wdec *d)
{
	if (d->wd_rc != DFR_OK || d->wd_left < 1) {
		d->wd_rc = d->wd_rc != DFR_OK ? d->wd_rc : DFR_EPARSE;
		return 0;
	}
	d->wd_left--;
	return *d->wd_p++;
}

static uint16_t
get_u16(struct wdec *d)
{
	uint16_t v;

	if (d->wd_rc != DFR_OK || d->wd_left < 2) {
		d->wd_rc = d->wd_rc != DFR_OK ? d->wd_rc : DFR_EPARSE;
		return 0;
	}
	v = (uint16_t)((uint16_t)d->wd_p[0] << 8 | d->wd_p[1]);
	d->wd_p += 2;
	d->wd_left -= 2;
	return v;
}

static uint32_t
get_u32(struct wdec *d)
{
	uint32_t v;

	if (d->wd_rc != DFR_OK || d->wd_left < 4) {
		d->wd_rc = d->wd_rc != DFR_OK ? d->wd_rc : DFR_EPARSE;
		return 0;
	}
	v = (uint32_t)d->wd_p[0] << 24 | (uint32_t)d->wd_p[1] << 16 | (uint32_t)d->wd_p[2] << 8 |
	    d->wd_p[3];
	d->wd_p += 4;
	d->wd_left -= 4;
	return v;
}

/* A string of at most `max` bytes. The length is checked against the limit first (ELIMIT) and
 * then against what is left of the message (EPARSE). */
static struct dfr_waf_str
get_str(struct wdec *d, uint32_t max)
{
	struct dfr_waf_str s = {"", 0};
	uint32_t n = get_u32(d);

	if (d->wd_rc != DFR_OK)
		return s;
	if (n > max) {
		d->wd_rc = DFR_ELIMIT;
		return s;
	}
	if (n > d->wd_left) {
		d->wd_rc = DFR_EPARSE;
		return s;
	}
	s.ws_ptr = (const char *)d->wd_p;
	s.ws_len = n;
	d->wd_p += n;
	d->wd_left -= n;
	return s;
}

static uint32_t
get_hdrs(struct wdec *d, struct dfr_waf_hdr *hdrs)
{
	uint16_t n = get_u16(d);

	if (d->wd_rc != DFR_OK)
		return 0;
	if (n > DFR_WAF_MAX_HEADERS) {
		d->wd_rc = DFR_ELIMIT;
		return 0;
	}
	for (uint32_t i = 0; i < n && d->wd_rc == DFR_OK; i++) {
		hdrs[i].wh_name = get_str(d, DFR_WAF_MAX_NAME);
		hdrs[i].wh_value = get_str(d, DFR_WAF_MAX_VALUE);
		if (d->wd_rc == DFR_OK && hdrs[i].wh_name.ws_len == 0)
			d->wd_rc = DFR_EPARSE;
	}
	return n;
}

/* Checks the bus header and type; on DFR_OK the cursor covers the payload. */
static int
open_msg(const uint8_t *buf, size_t len, uint16_t type, uint64_t *generation, struct wdec *d)
{
	struct dfr_msg_hdr h;
	const uint8_t *payload;
	int rc;

	if (len > DFR_WAF_MAX_MSG)
		return DFR_ELIMIT;
	if ((rc = dfr_msg_decode(buf, len, &h, &payload)) != DFR_OK)
		return rc;
	if (h.mh_type != type)
		return DFR_EPARSE;
	*generation = h.mh_generation;
	d->wd_p = payload;
	d->wd_left = h.mh_payload_len;
	d->wd_rc = DFR_OK;
	return DFR_OK;
}

int
dfr_waf_req_decode(const uint8_t *buf, size_t len, uint64_t *generation, struct dfr_waf_req *req,
                   struct dfr_waf_hdr *hdrs)
{
	struct dfr_waf_req r;
	struct wdec d;
	uint64_t gen = 0;
	int rc;

	if ((rc = open_msg(buf, len, DFR_MSG_WAF_EVAL_REQ, &gen, &d)) != DFR_OK)
		return rc;
	memset(&r, 0, sizeof(r));
	r.wr_scheme = get_u8(&d);
	r.wr_http_major = get_u8(&d);
	r.wr_http_minor = get_u8(&d);
	r.wr_flags = get_u8(&d);
	r.wr_peer_port = get_u16(&d);
	r.wr_server_port = get_u16(&d);
	r.wr_domain_id = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_domain_name = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_host = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_method = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_target = get_str(&d, DFR_WAF_MAX_VALUE);
	r.wr_peer_addr = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_server_addr = get_str(&d, DFR_WAF_MAX_SHORT);
	r.wr_nheaders = get_hdrs(&d, hdrs);
	r.wr_headers = hdrs;
	r.wr_body = get_str(&d, DFR_WAF_MAX_BODY);
	if (d.wd_rc != DFR_OK)
		return d.wd_rc;
	if (d.wd_left != 0 || r.wr_scheme > DFR_WAF_HTTPS)
		return DFR_EPARSE;
	*generation = gen;
	*req = r;
	return DFR_OK;
}

int
dfr_waf_rep_decode(const uint8_t *buf, size_t len, uint64_t *generation, struct dfr_waf_rep *rep,
                   struct dfr_waf_hdr *hdrs)
{
	struct dfr_waf_rep r;
	struct wdec d;
	uint64_t gen = 0;
	int rc;

	if ((rc = open_msg(buf, len, DFR_MSG_WAF_EVAL_REP, &gen, &d)) != DFR_OK)
		return rc;
	memset(&r, 0, sizeof(r));
	r.wv_action = get_u8(&d);
	r.wv_fail = get_u8(&d);
	r.wv_status = get_u16(&d);
	r.wv_flags = get_u32(&d);
	r.wv_nheaders = get_hdrs(&d, hdrs);
	r.wv_headers = hdrs;
	r.wv_body = get_str(&d, DFR_WAF_MAX_BODY);
	if (d.wd_rc != DFR_OK)
		return d.wd_rc;
	if (d.wd_left != 0 || r.wv_action > DFR_WAF_ERROR || r.wv_fail > DFR_WAF_FAIL_MAX)
		return DFR_EPARSE;
	if (r.wv_action == DFR_WAF_RESPOND && (r.wv_status < 100 || r.wv_status > 999))
		return DFR_EPARSE;
	*generation = gen;
	*rep = r;
	return DFR_OK;
}

const char *
dfr_waf_action_name(unsigned action)
{
	static const char *const names[] = {"pass", "respond", "error"};

	return action < sizeof(names) / sizeof(names[0]) ? names[action] : "unknown";
}

const char *
dfr_waf_fail_name(unsigned fail)
{
	static const char *const names[] = {"none",    "script",      "budget",  "memory",
	                                    "no-code", "bad-request", "internal"};

	return fail < sizeof(names) / sizeof(names[0]) ? names[fail] : "unknown";
}
