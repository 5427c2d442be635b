/*
 * The WAF request/verdict codec (shared/waf_msg.c): round trips, limits on both sides, and a
 * decoder that refuses every truncation and every corrupted length of a valid message.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_msg.h"
#include "error.h"
#include "tap.h"
#include "waf_msg.h"

static bool
str_is(struct dfr_waf_str s, const char *want)
{
	return s.ws_len == strlen(want) && memcmp(s.ws_ptr, want, s.ws_len) == 0;
}

static struct dfr_waf_hdr sample_hdrs[] = {
	{{"Host", 4}, {"example.com", 11}},
	{{"User-Agent", 10}, {"curl/8.0", 8}},
	{{"Cookie", 6}, {"a=1", 3}},
	{{"Cookie", 6}, {"b=2", 3}},
	{{"X-Empty", 7}, {"", 0}},
};

static void
sample_req(struct dfr_waf_req *r)
{
	memset(r, 0, sizeof(*r));
	r->wr_scheme = DFR_WAF_HTTPS;
	r->wr_http_major = 1;
	r->wr_http_minor = 1;
	r->wr_flags = DFR_WAF_REQ_BODY_TRUNCATED;
	r->wr_peer_port = 51234;
	r->wr_server_port = 443;
	r->wr_domain_id = dfr_waf_str_c("65a1b2c3d4e5f60718293a4b");
	r->wr_domain_name = dfr_waf_str_c("example.com");
	r->wr_host = dfr_waf_str_c("Example.com:443");
	r->wr_method = dfr_waf_str_c("POST");
	r->wr_target = dfr_waf_str_c("/login?next=%2Fhome&x=1");
	r->wr_peer_addr = dfr_waf_str_c("203.0.113.9");
	r->wr_server_addr = dfr_waf_str_c("2001:db8::1");
	r->wr_headers = sample_hdrs;
	r->wr_nheaders = sizeof(sample_hdrs) / sizeof(sample_hdrs[0]);
	r->wr_body = dfr_waf_str_c("user=a&pass=b");
}

static void
test_req_round_trip(void)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_req in, out;
	uint8_t buf[4096];
	size_t len = 0;
	uint64_t gen = 0;

	sample_req(&in);
	is_int(dfr_waf_req_encode(buf, sizeof(buf), 42, &in, &len), DFR_OK, "request encodes");
	is_int((long long)len, (long long)dfr_waf_req_size(&in), "size() is the encoded size");
	is_int(dfr_waf_req_decode(buf, len, &gen, &out, hdrs), DFR_OK, "request decodes");
	is_int((long long)gen, 42, "generation kept");
	ok(out.wr_scheme == DFR_WAF_HTTPS && out.wr_http_major == 1 && out.wr_http_minor == 1,
	   "scheme and version kept");
	ok(out.wr_flags == DFR_WAF_REQ_BODY_TRUNCATED, "flags kept");
	is_int(out.wr_peer_port, 51234, "peer port");
	is_int(out.wr_server_port, 443, "server port");
	ok(str_is(out.wr_domain_id, "65a1b2c3d4e5f60718293a4b"), "domain id");
	ok(str_is(out.wr_domain_name, "example.com"), "domain name");
	ok(str_is(out.wr_host, "Example.com:443"), "host as sent");
	ok(str_is(out.wr_method, "POST"), "method");
	ok(str_is(out.wr_target, "/login?next=%2Fhome&x=1"), "raw target");
	ok(str_is(out.wr_peer_addr, "203.0.113.9"), "peer address");
	ok(str_is(out.wr_server_addr, "2001:db8::1"), "server address");
	is_int(out.wr_nheaders, 5, "header count");
	ok(out.wr_headers == hdrs, "headers in the caller's array");
	ok(str_is(out.wr_headers[2].wh_name, "Cookie") && str_is(out.wr_headers[2].wh_value, "a=1") &&
		   str_is(out.wr_headers[3].wh_name, "Cookie") &&
		   str_is(out.wr_headers[3].wh_value, "b=2"),
	   "repeated headers kept in order");
	ok(str_is(out.wr_headers[4].wh_value, ""), "empty header value");
	ok(str_is(out.wr_body, "user=a&pass=b"), "body prefix");
	ok(out.wr_target.ws_ptr >= (const char *)buf &&
		   out.wr_target.ws_ptr < (const char *)buf + len,
	   "strings point into the message");

	/* too small a buffer */
	is_int(dfr_waf_req_encode(buf, len - 1, 42, &in, &len), DFR_ELIMIT,
	       "encode refuses a short buffer");
}

static void
test_rep_round_trip(void)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_hdr rh[] = {{{"Content-Type", 12}, {"text/plain", 10}},
				   {{"X-Frame-Options", 15}, {"SAMEORIGIN", 10}}};
	struct dfr_waf_rep in = {.wv_action = DFR_WAF_RESPOND,
				 .wv_status = 429,
				 .wv_flags = DFR_WAF_REP_STALE,
				 .wv_headers = rh,
				 .wv_nheaders = 2,
				 .wv_body = dfr_waf_str_c("Too many requests\n")};
	struct dfr_waf_rep out;
	uint8_t buf[1024];
	size_t len = 0;
	uint64_t gen = 0;

	is_int(dfr_waf_rep_encode(buf, sizeof(buf), 7, &in, &len), DFR_OK, "verdict encodes");
	is_int(dfr_waf_rep_decode(buf, len, &gen, &out, hdrs), DFR_OK, "verdict decodes");
	is_int((long long)gen, 7, "verdict generation");
	ok(out.wv_action == DFR_WAF_RESPOND && out.wv_status == 429, "respond 429");
	ok(out.wv_flags == DFR_WAF_REP_STALE, "verdict flags");
	is_int(out.wv_nheaders, 2, "verdict header count");
	ok(str_is(out.wv_headers[1].wh_name, "X-Frame-Options") &&
		   str_is(out.wv_headers[1].wh_value, "SAMEORIGIN"),
	   "verdict headers in order");
	ok(str_is(out.wv_body, "Too many requests\n"), "verdict body");

	/* pass with headers; status forced to 0 */
	in.wv_action = DFR_WAF_PASS;
	in.wv_status = 200;
	in.wv_body = dfr_waf_str_c(NULL);
	is_int(dfr_waf_rep_encode(buf, sizeof(buf), 7, &in, &len), DFR_OK, "pass encodes");
	is_int(dfr_waf_rep_decode(buf, len, &gen, &out, hdrs), DFR_OK, "pass decodes");
	ok(out.wv_action == DFR_WAF_PASS && out.wv_status == 0 && out.wv_nheaders == 2,
	   "pass carries headers, status 0");

	/* error with a kind */
	memset(&in, 0, sizeof(in));
	in.wv_action = DFR_WAF_ERROR;
	in.wv_fail = DFR_WAF_FAIL_BUDGET;
	is_int(dfr_waf_rep_encode(buf, sizeof(buf), 9, &in, &len), DFR_OK, "error encodes");
	is_int(dfr_waf_rep_decode(buf, len, &gen, &out, hdrs), DFR_OK, "error decodes");
	ok(out.wv_action == DFR_WAF_ERROR && out.wv_fail == DFR_WAF_FAIL_BUDGET, "error kind kept");
	is_str(dfr_waf_fail_name(out.wv_fail), "budget", "fail name");
	is_str(dfr_waf_action_name(DFR_WAF_RESPOND), "respond", "action name");
	is_str(dfr_waf_fail_name(200), "unknown", "unknown fail name");

	/* bad values refused by the encoder */
	in.wv_action = DFR_WAF_RESPOND;
	in.wv_status = 99;
	is_int(dfr_waf_rep_encode(buf, sizeof(buf), 9, &in, &len), DFR_ELIMIT,
	       "respond with status 99 refused");
	in.wv_status = 200;
	in.wv_fail = 77;
	is_int(dfr_waf_rep_encode(buf, sizeof(buf), 9, &in, &len), DFR_ELIMIT,
	       "unknown fail kind refused");
}

static void
test_limits(void)
{
	static struct dfr_waf_hdr many[DFR_WAF_MAX_HEADERS + 1];
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	static char big[DFR_WAF_MAX_BODY + 1];
	struct dfr_waf_req r, out;
	uint8_t *buf;
	size_t len = 0, cap = DFR_WAF_MAX_MSG;
	uint64_t gen;

	buf = malloc(cap);
	memset(big, 'a', sizeof(big));
	for (size_t i = 0; i < DFR_WAF_MAX_HEADERS + 1; i++) {
		many[i].wh_name = dfr_waf_str_c("X-A");
		many[i].wh_value = dfr_waf_str_c("v");
	}
	sample_req(&r);
	r.wr_headers = many;
	r.wr_nheaders = DFR_WAF_MAX_HEADERS;
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_OK, "256 headers encode");
	is_int(dfr_waf_req_decode(buf, len, &gen, &out, hdrs), DFR_OK, "256 headers decode");
	r.wr_nheaders = DFR_WAF_MAX_HEADERS + 1;
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_ELIMIT, "257 headers refused");
	is_int((long long)dfr_waf_req_size(&r), 0, "size() of 257 headers is 0");

	sample_req(&r);
	r.wr_body = (struct dfr_waf_str){big, DFR_WAF_MAX_BODY};
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_OK, "1 MiB body encodes");
	is_int(dfr_waf_req_decode(buf, len, &gen, &out, hdrs), DFR_OK, "1 MiB body decodes");
	r.wr_body.ws_len++;
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_ELIMIT, "1 MiB + 1 body refused");

	sample_req(&r);
	many[0].wh_name = (struct dfr_waf_str){big, DFR_WAF_MAX_NAME + 1};
	r.wr_headers = many;
	r.wr_nheaders = 1;
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_ELIMIT, "257-byte name refused");
	many[0].wh_name = dfr_waf_str_c("");
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_ELIMIT, "empty name refused");
	many[0].wh_name = dfr_waf_str_c("X");
	many[0].wh_value = (struct dfr_waf_str){big, DFR_WAF_MAX_VALUE + 1};
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_ELIMIT, "64 KiB + 1 value refused");
	many[0].wh_value = (struct dfr_waf_str){big, DFR_WAF_MAX_VALUE};
	is_int(dfr_waf_req_encode(buf, cap, 1, &r, &len), DFR_OK, "64 KiB value encodes");
	free(buf);
}

/* A valid message cut short anywhere, or with any of its length fields blown up, is refused;
 * the decoder never reads past the end (ASan watches the exact-size copy). */
static void
test_decoder_refuses_damage(void)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_req r, out;
	uint8_t buf[4096], *copy;
	size_t len = 0;
	uint64_t gen;
	int bad_cut = 0, bad_flip = 0, rc;

	sample_req(&r);
	(void)dfr_waf_req_encode(buf, sizeof(buf), 3, &r, &len);
	for (size_t cut = 0; cut < len; cut++) {
		copy = malloc(cut + 1);
		memcpy(copy, buf, cut);
		if (dfr_waf_req_decode(copy, cut, &gen, &out, hdrs) == DFR_OK)
			bad_cut++;
		free(copy);
	}
	is_int(bad_cut, 0, "every truncation refused");

	/* corrupt each payload byte: with the bus length fixed, the decoder must either refuse or
	 * return strings that stay inside the message */
	for (size_t i = DFR_BUS_HDR_LEN; i < len; i++) {
		copy = malloc(len);
		memcpy(copy, buf, len);
		copy[i] ^= 0xff;
		rc = dfr_waf_req_decode(copy, len, &gen, &out, hdrs);
		if (rc == DFR_OK) {
			const char *lo = (const char *)copy, *hi = (const char *)copy + len;
			if (out.wr_target.ws_ptr < lo || out.wr_target.ws_ptr + out.wr_target.ws_len > hi ||
			    out.wr_body.ws_ptr + out.wr_body.ws_len > hi)
				bad_flip++;
		}
		free(copy);
	}
	is_int(bad_flip, 0, "corrupted bytes never lead outside the message");

	/* trailing garbage: grow payload length and append a byte */
	{
		struct dfr_msg_hdr h;
		const uint8_t *p;
		uint8_t big[4097];

		memcpy(big, buf, len);
		big[len] = 0;
		(void)dfr_msg_decode(buf, len, &h, &p);
		h.mh_payload_len++;
		dfr_msg_hdr_encode(big, &h);
		is_int(dfr_waf_req_decode(big, len + 1, &gen, &out, hdrs), DFR_EPARSE,
		       "trailing byte refused");
	}

	/* a verdict is not a request */
	{
		struct dfr_waf_rep v = {.wv_action = DFR_WAF_PASS};
		(void)dfr_waf_rep_encode(buf, sizeof(buf), 3, &v, &len);
		is_int(dfr_waf_req_decode(buf, len, &gen, &out, hdrs), DFR_EPARSE,
		       "verdict refused as a request");
	}

	/* a header count over the limit is refused before any header is read */
	{
		uint8_t m[DFR_BUS_HDR_LEN + 64];
		struct dfr_msg_hdr h = {.mh_version = DFR_BUS_VERSION, .mh_type = DFR_MSG_WAF_EVAL_REQ};
		size_t o = DFR_BUS_HDR_LEN;

		memset(m, 0, sizeof(m));
		o += 8;            /* scheme .. server port */
		o += 7 * 4;        /* seven empty strings */
		m[o] = 0x01;       /* 257 headers */
		m[o + 1] = 0x01;
		o += 2;
		h.mh_payload_len = (uint32_t)(o - DFR_BUS_HDR_LEN);
		dfr_msg_hdr_encode(m, &h);
		is_int(dfr_waf_req_decode(m, o, &gen, &out, hdrs), DFR_ELIMIT,
		       "257 headers refused by the decoder");
	}
}

int
main(void)
{
	plan_lazy();
	test_req_round_trip();
	test_rep_round_trip();
	test_limits();
	test_decoder_refuses_damage();
	return done_testing();
}
