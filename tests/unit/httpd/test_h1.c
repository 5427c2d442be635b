/*
 * h1.c: request and response heads, pipelining, chunked bodies, limits, and the heads we
 * serialise for the backend and the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "error.h"
#include "defenra-httpd/httpd.h"
#include "tap.h"

struct sink {
	char buf[4096];
	size_t len;
};

static int
sink_body(void *arg, const char *at, size_t len)
{
	struct sink *s = arg;

	if (len > sizeof(s->buf) - s->len)
		return -1;
	memcpy(s->buf + s->len, at, len);
	s->len += len;
	return 0;
}

/* Feeds everything (byte by byte when `slow`), resuming after each event; returns the events
 * seen as a string of H(ead) D(one) E(rror). */
static void
feed_all(struct h1_parser *hp, const char *data, size_t len, bool slow, char *events, size_t cap)
{
	size_t off = 0, ne = 0;

	events[0] = '\0';
	while (off < len && ne + 1 < cap) {
		size_t chunk = slow ? 1 : len - off;
		size_t n = h1_parser_feed(hp, data + off, chunk);

		off += n;
		if (hp->hp_ev == H1_EV_HEAD || hp->hp_ev == H1_EV_DONE) {
			events[ne++] = hp->hp_ev == H1_EV_HEAD ? 'H' : 'D';
			events[ne] = '\0';
			h1_parser_resume(hp);
		} else if (hp->hp_ev == H1_EV_ERROR) {
			events[ne++] = 'E';
			events[ne] = '\0';
			return;
		} else if (n < chunk) {
			return;
		}
	}
}

static void
str_of(const struct h1_msg *m, uint32_t off, uint32_t len, char *out, size_t cap)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	memcpy(out, m->m_buf + off, n);
	out[n] = '\0';
}

static void
test_basic(bool slow)
{
	struct h1_parser hp;
	const char *req = "GET /a/b?c=d HTTP/1.1\r\nHost: WWW.Example.COM:8080\r\n"
	                  "X-A: 1\r\nx-a: 2\r\nCookie: k=v\r\n\r\n";
	char ev[16], s[128];
	const struct h1_msg *m = &hp.hp_msg;

	ok(h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0) == DFR_OK, "init");
	h1_parser_feed(&hp, req, strlen(req));
	is_int(hp.hp_ev, H1_EV_HEAD, "head event (%s)", slow ? "slow" : "fast");
	str_of(m, m->m_url, m->m_url_len, s, sizeof(s));
	is_str(s, "/a/b?c=d", "target");
	is_int(m->m_nhdrs, 4, "four headers, repeats kept");
	str_of(m, m->m_hdrs[2].h_name, m->m_hdrs[2].h_name_len, s, sizeof(s));
	is_str(s, "x-a", "order and case kept");
	str_of(m, m->m_hdrs[2].h_val, m->m_hdrs[2].h_val_len, s, sizeof(s));
	is_str(s, "2", "value of the repeat");
	ok(h1_msg_host(m, s, sizeof(s)) == DFR_OK, "host parses");
	is_str(s, "www.example.com", "host lower-case without port");
	ok(m->m_keepalive, "1.1 is keep-alive");
	h1_parser_fini(&hp);

	/* The same head fed byte by byte gives the same message. */
	h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0);
	feed_all(&hp, req, strlen(req), slow, ev, sizeof(ev));
	is_str(ev, "HD", "head then done");
	h1_parser_fini(&hp);
}

static void
test_pipeline_chunked(void)
{
	struct h1_parser hp;
	struct sink sk = {0};
	const char *in = "POST /u HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
	                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	                 "GET /two HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n";
	char ev[16], s[64];

	h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0);
	hp.hp_body_fn = sink_body;
	hp.hp_body_arg = &sk;
	feed_all(&hp, in, strlen(in), false, ev, sizeof(ev));
	is_str(ev, "HDHD", "two pipelined requests, each paused");
	is_int((long long)sk.len, 11, "chunked body decoded");
	ok(memcmp(sk.buf, "hello world", 11) == 0, "body bytes");
	str_of(&hp.hp_msg, hp.hp_msg.m_url, hp.hp_msg.m_url_len, s, sizeof(s));
	is_str(s, "/two", "second request's target");
	ok(!hp.hp_msg.m_keepalive, "Connection: close ends keep-alive");
	h1_parser_fini(&hp);

	/* Byte by byte. */
	memset(&sk, 0, sizeof(sk));
	h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0);
	hp.hp_body_fn = sink_body;
	hp.hp_body_arg = &sk;
	feed_all(&hp, in, strlen(in), true, ev, sizeof(ev));
	is_str(ev, "HDHD", "pipelined, byte by byte");
	is_int((long long)sk.len, 11, "chunked body decoded byte by byte");
	h1_parser_fini(&hp);
}

static void
expect_error(const char *in, unsigned max_head, unsigned max_hdrs, uint64_t max_body, unsigned want,
             const char *what)
{
	struct h1_parser hp;
	char ev[16];

	h1_parser_init(&hp, HTTP_REQUEST, max_head, max_hdrs, max_body);
	feed_all(&hp, in, strlen(in), false, ev, sizeof(ev));
	ok(strchr(ev, 'E') != NULL, "%s: error", what);
	is_int(hp.hp_err_status, want, "%s: status", what);
	h1_parser_fini(&hp);
}

static void
test_limits(void)
{
	char big[2048];

	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	char *req = malloc(4096);
	snprintf(req, 4096, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", big);
	expect_error(req, 1024, 16, 0, 431, "head over the byte limit");
	free(req);
	expect_error("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 4096, 3, 0, 431,
	             "too many headers");
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", 4096, 16, 10, 413,
	             "declared body over the limit");
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n",
	             4096, 16, 10, 413, "chunked body over the limit");
	expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	             4096, 16, 0, 400, "Content-Length with chunked (smuggling)");
	expect_error("GARBAGE\r\n\r\n", 4096, 16, 0, 400, "not a request line");
	expect_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 4096, 16, 0, 400,
	             "header without colon");
}

static void
test_host(void)
{
	struct h1_parser hp;
	char s[300];
	const char *two = "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n";
	const char *none = "GET / HTTP/1.0\r\n\r\n";
	const char *dot = "GET / HTTP/1.1\r\nHost: A.Example.\r\n\r\n";
	const char *bad = "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n";

	h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0);
	h1_parser_feed(&hp, two, strlen(two));
	ok(h1_msg_host(&hp.hp_msg, s, sizeof(s)) == DFR_EPARSE, "two Host headers refused");
	h1_parser_reset(&hp);
	h1_parser_feed(&hp, none, strlen(none));
	ok(h1_msg_host(&hp.hp_msg, s, sizeof(s)) == DFR_EPARSE, "no Host refused");
	h1_parser_reset(&hp);
	h1_parser_feed(&hp, dot, strlen(dot));
	ok(h1_msg_host(&hp.hp_msg, s, sizeof(s)) == DFR_OK, "trailing dot");
	is_str(s, "a.example", "trailing dot removed");
	h1_parser_reset(&hp);
	h1_parser_feed(&hp, bad, strlen(bad));
	ok(h1_msg_host(&hp.hp_msg, s, sizeof(s)) == DFR_EPARSE, "slash in Host refused");
	h1_parser_fini(&hp);
}

static void
test_req_head(void)
{
	struct h1_parser hp;
	const char *req =
	        "GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive, X-Drop\r\n"
	        "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 6.6.6.6\r\n"
	        "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nProxy-Authorization: x\r\n"
	        "Expect: 100-continue\r\nX-Keep: yes\r\nX-Forwarded-For: 7.7.7.7\r\n\r\n";
	char out[2048];
	size_t n;

	h1_parser_init(&hp, HTTP_REQUEST, 4096, 32, 0);
	h1_parser_feed(&hp, req, strlen(req));
	n = h1_req_head(&hp.hp_msg, "192.0.2.1", "http", out, sizeof(out) - 1);
	out[n] = '\0';
	is_str(out,
	       "GET /x HTTP/1.1\r\nHost: a.example\r\nX-Keep: yes\r\n"
	       "X-Forwarded-For: 6.6.6.6, 7.7.7.7, 192.0.2.1\r\nX-Real-IP: 192.0.2.1\r\n"
	       "X-Forwarded-Proto: http\r\n\r\n",
	       "hop-by-hop removed, X-Forwarded-For appended, ours replace the client's");
	ok(hp.hp_msg.m_expect_continue, "Expect: 100-continue seen");
	is_int((long long)h1_req_head(&hp.hp_msg, "192.0.2.1", "http", out, 40), 0,
	       "too small a buffer gives 0");
	h1_parser_fini(&hp);

	req = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	      "Sec-WebSocket-Key: k\r\n\r\n";
	h1_parser_init(&hp, HTTP_REQUEST, 4096, 32, 0);
	h1_parser_feed(&hp, req, strlen(req));
	ok(hp.hp_msg.m_upgrade, "upgrade request");
	n = h1_req_head(&hp.hp_msg, "192.0.2.1", "http", out, sizeof(out) - 1);
	out[n] = '\0';
	ok(strstr(out, "Connection: upgrade\r\nUpgrade: websocket\r\n") != NULL,
	   "upgrade pair forwarded");
	h1_parser_fini(&hp);

	req = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	h1_parser_init(&hp, HTTP_REQUEST, 4096, 32, 0);
	h1_parser_feed(&hp, req, strlen(req));
	n = h1_req_head(&hp.hp_msg, "::1", "http", out, sizeof(out) - 1);
	out[n] = '\0';
	ok(strstr(out, "Transfer-Encoding: chunked\r\n") != NULL, "chunked request stays chunked");
	h1_parser_fini(&hp);
}

static void
test_response(void)
{
	struct h1_parser hp;
	struct sink sk = {0};
	const char *r1 = "HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nConnection: keep-alive\r\n"
	                 "Set-Cookie: b\r\nContent-Length: 2\r\n\r\nhi";
	const char *r2 = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nuntil the end";
	char ev[16], out[1024];
	size_t n;

	h1_parser_init(&hp, HTTP_RESPONSE, 4096, 16, 0);
	hp.hp_body_fn = sink_body;
	hp.hp_body_arg = &sk;
	feed_all(&hp, r1, strlen(r1), false, ev, sizeof(ev));
	is_str(ev, "HD", "response head and end");
	is_int((long long)hp.hp_msg.m_content_length, 2, "content length");
	ok(!h1_parser_eof_delimited(&hp), "not delimited by EOF");
	n = h1_resp_head(&hp.hp_msg, false, true, "X-Waf: 1\r\n", 10, out, sizeof(out) - 1);
	out[n] = '\0';
	is_str(out,
	       "HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nContent-Length: 2\r\n"
	       "X-Waf: 1\r\n\r\n",
	       "response head: repeats in order, hop-by-hop dropped, extra added");
	n = h1_resp_head(&hp.hp_msg, true, false, NULL, 0, out, sizeof(out) - 1);
	out[n] = '\0';
	ok(strstr(out, "Content-Length") == NULL && strstr(out, "Transfer-Encoding: chunked") &&
	           strstr(out, "Connection: close"),
	   "re-chunked head drops the length");
	h1_parser_fini(&hp);

	h1_parser_init(&hp, HTTP_RESPONSE, 4096, 16, 0);
	sk.len = 0;
	hp.hp_body_fn = sink_body;
	hp.hp_body_arg = &sk;
	feed_all(&hp, r2, strlen(r2), false, ev, sizeof(ev));
	is_str(ev, "H", "EOF-delimited response has no end yet");
	ok(h1_parser_eof_delimited(&hp), "delimited by EOF");
	h1_parser_feed(&hp, NULL, 0);
	is_int(hp.hp_ev, H1_EV_DONE, "EOF ends it");
	is_int((long long)sk.len, 13, "whole body");
	h1_parser_fini(&hp);

	/* A response to HEAD has no body whatever its length says. */
	h1_parser_init(&hp, HTTP_RESPONSE, 4096, 16, 0);
	hp.hp_skip_body = true;
	feed_all(&hp, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 39, false, ev, sizeof(ev));
	is_str(ev, "HD", "HEAD response ends after the head");
	h1_parser_fini(&hp);
}

/* h1_parser_feed_buffer() over an input of many chains (an h2 stream's pair hands a body over
 * as several small chains per DATA frame): one call parses all of it. It used to stop after 16
 * chains, leaving the rest for a read callback that never came. */
static void
test_feed_buffer_chains(void)
{
	static const char head[] = "PUT /up HTTP/1.1\r\nHost: a.example\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n";
	static const char crlf[] = "\r\n", last[] = "0\r\n\r\n", size[] = "a\r\n";
	static const char data[] = "0123456789";
	struct evbuffer *in = evbuffer_new();
	struct h1_parser hp;
	struct sink sk = {0};
	size_t used = 0, used2 = 0;
	enum h1_ev ev;

	h1_parser_init(&hp, HTTP_REQUEST, 4096, 16, 0);
	evbuffer_add_reference(in, head, strlen(head), NULL, NULL);
	ev = h1_parser_feed_buffer(&hp, in, &used);
	is_int(ev, H1_EV_HEAD, "the head, then a pause");
	ok(used > 0 && used <= strlen(head), "the head's bytes consumed (up to its last LF)");
	h1_parser_resume(&hp);
	hp.hp_body_fn = sink_body;
	hp.hp_body_arg = &sk;
	/* 40 chunks of 10 bytes, three chains each (a reference is a chain of its own) */
	for (int i = 0; i < 40; i++) {
		evbuffer_add_reference(in, size, 3, NULL, NULL);
		evbuffer_add_reference(in, data, 10, NULL, NULL);
		evbuffer_add_reference(in, crlf, 2, NULL, NULL);
	}
	evbuffer_add_reference(in, last, 5, NULL, NULL);
	ev = h1_parser_feed_buffer(&hp, in, &used2);
	is_int(ev, H1_EV_DONE, "121 chains: the request ends in one call");
	is_int((long long)evbuffer_get_length(in), 0, "nothing left in the input");
	is_int((long long)(used + used2), (long long)strlen(head) + 40 * 15 + 5,
	       "every byte counted");
	is_int((long long)sk.len, 400, "every chunk's data delivered");
	h1_parser_fini(&hp);
	evbuffer_free(in);
}

int
main(void)
{
	plan_lazy();
	test_basic(false);
	test_basic(true);
	test_pipeline_chunked();
	test_feed_buffer_chains();
	test_limits();
	test_host();
	test_req_head();
	test_response();
	return done_testing();
}
