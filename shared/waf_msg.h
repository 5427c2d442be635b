/*
 * The WAF request and verdict messages on waf.rep (httpd -> wafd -> httpd), docs/waf.md says the
 * same for humans.
 *
 * Each message is the common bus header (bus_msg.h) with type DFR_MSG_WAF_EVAL_REQ or
 * DFR_MSG_WAF_EVAL_REP, followed by a binary payload. In a request, mh_generation is the config
 * generation httpd routed the request with; in a verdict, the generation of the code wafd ran.
 * Integers are big-endian; a "string" is a u32 length followed by that many bytes, no NUL.
 *
 * Request payload:
 *   u8  scheme (enum dfr_waf_scheme)     u8  HTTP major     u8  HTTP minor     u8  flags
 *   u16 peer port                        u16 server port
 *   str domain id   str domain name   str host   str method   str target (path and query, raw)
 *   str peer address (text)   str server address (text)
 *   u16 header count, then per header: str name, str value (in arrival order, repeats allowed)
 *   str body (the first bytes of the request body; empty when httpd sends none)
 *
 * Verdict payload:
 *   u8  action (enum dfr_waf_action)     u8  fail kind (enum dfr_waf_fail)
 *   u16 status (100..999 for RESPOND, 0 otherwise)   u32 flags (DFR_WAF_REP_*)
 *   u16 header count, then per header: str name, str value (in the order the script set them)
 *   str body
 *
 * Encoding never allocates: the caller sizes its buffer with *_size() (or keeps a large reusable
 * one) and encodes into it, e.g. straight into an nng_msg body. Decoding never copies: every
 * string points into the message, which must outlive the decoded struct. The decoder checks
 * every length against the bytes that arrived and every count and size against the limits
 * below before it hands anything out.
 */
#ifndef DFR_WAF_MSG_H
#define DFR_WAF_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Limits, enforced by both encoder and decoder. */
#define DFR_WAF_MAX_HEADERS 256
#define DFR_WAF_MAX_NAME    256                /* a header name */
#define DFR_WAF_MAX_VALUE   (64u * 1024)       /* a header value, a target */
#define DFR_WAF_MAX_BODY    (1024u * 1024)     /* request body prefix, verdict body */
#define DFR_WAF_MAX_SHORT   256                /* domain id and name, host, method, addresses */
#define DFR_WAF_MAX_MSG     (4u * 1024 * 1024) /* generous upper bound on one encoded message */

enum dfr_waf_scheme {
	DFR_WAF_HTTP = 0,  /* plain HTTP */
	DFR_WAF_HTTPS = 1, /* TLS */
};

/* Request flags. */
#define DFR_WAF_REQ_BODY_TRUNCATED 0x01u /* the body field is a prefix of a longer body */

enum dfr_waf_action {
	DFR_WAF_PASS = 0,    /* let the request through; headers go on the response to the client */
	DFR_WAF_RESPOND = 1, /* answer the client with status, headers and body */
	DFR_WAF_ERROR = 2,   /* the script could not decide: httpd applies WAF_FAIL_MODE */
};

enum dfr_waf_fail {
	DFR_WAF_FAIL_NONE = 0,     /* no failure (PASS or RESPOND) */
	DFR_WAF_FAIL_SCRIPT = 1,   /* compile or runtime error in the script */
	DFR_WAF_FAIL_BUDGET = 2,   /* instruction budget exhausted */
	DFR_WAF_FAIL_MEMORY = 3,   /* the state's memory cap was hit */
	DFR_WAF_FAIL_NO_CODE = 4,  /* wafd knows no code for this domain (yet) */
	DFR_WAF_FAIL_BAD_REQ = 5,  /* the request message did not decode */
	DFR_WAF_FAIL_INTERNAL = 6, /* wafd itself failed (out of memory outside a script, ...) */
};
#define DFR_WAF_FAIL_MAX DFR_WAF_FAIL_INTERNAL

/* Verdict flags. */
#define DFR_WAF_REP_STALE 0x01u /* wafd ran code of an older generation than the request's */

/* A string inside a message: not NUL-terminated. */
struct dfr_waf_str {
	const char *ws_ptr;
	uint32_t ws_len;
};

struct dfr_waf_hdr {
	struct dfr_waf_str wh_name;
	struct dfr_waf_str wh_value;
};

struct dfr_waf_req {
	uint8_t wr_scheme; /* enum dfr_waf_scheme */
	uint8_t wr_http_major, wr_http_minor;
	uint8_t wr_flags; /* DFR_WAF_REQ_* */
	uint16_t wr_peer_port, wr_server_port;
	struct dfr_waf_str wr_domain_id;   /* the config's dom_id */
	struct dfr_waf_str wr_domain_name; /* the zone apex the request routed to */
	struct dfr_waf_str wr_host;        /* Host header (or :authority) as the client sent it */
	struct dfr_waf_str wr_method;
	struct dfr_waf_str wr_target; /* raw request target: path and query, undecoded */
	struct dfr_waf_str
	        wr_peer_addr; /* "203.0.113.9", "2001:db8::1": the TCP peer, never a header */
	struct dfr_waf_str wr_server_addr; /* the local address the request arrived on */
	const struct dfr_waf_hdr *wr_headers;
	uint32_t wr_nheaders;
	struct dfr_waf_str wr_body;
};

struct dfr_waf_rep {
	uint8_t wv_action; /* enum dfr_waf_action */
	uint8_t wv_fail;   /* enum dfr_waf_fail */
	uint16_t wv_status;
	uint32_t wv_flags; /* DFR_WAF_REP_* */
	const struct dfr_waf_hdr *wv_headers;
	uint32_t wv_nheaders;
	struct dfr_waf_str wv_body;
};

/* Bytes the whole message (bus header included) takes; 0 when a field breaks a limit. */
size_t dfr_waf_req_size(const struct dfr_waf_req *req);
size_t dfr_waf_rep_size(const struct dfr_waf_rep *rep);

/* Encodes header and payload into buf[cap]. On DFR_OK *len is the message size. DFR_ELIMIT when a
 * field breaks a limit or cap is too small; buf is then unspecified. Never allocates. */
int dfr_waf_req_encode(uint8_t *buf, size_t cap, uint64_t generation, const struct dfr_waf_req *req,
                       size_t *len);
int dfr_waf_rep_encode(uint8_t *buf, size_t cap, uint64_t generation, const struct dfr_waf_rep *rep,
                       size_t *len);

/* Decodes a whole message. `hdrs` is the caller's array of DFR_WAF_MAX_HEADERS entries that
 * req->wr_headers (rep->wv_headers) will point to; every string points into `buf`. On DFR_OK
 * fills *generation and *req (*rep). DFR_EPARSE (short, bad header, wrong type, trailing bytes,
 * bad enum), DFR_ELIMIT (a count or size over the limits), DFR_EVERSION. */
int dfr_waf_req_decode(const uint8_t *buf, size_t len, uint64_t *generation,
                       struct dfr_waf_req *req, struct dfr_waf_hdr *hdrs);
int dfr_waf_rep_decode(const uint8_t *buf, size_t len, uint64_t *generation,
                       struct dfr_waf_rep *rep, struct dfr_waf_hdr *hdrs);

/* Names for logs and metric labels: "pass", "respond", "error"; "none", "script", "budget",
 * "memory", "no-code", "bad-request", "internal". "unknown" otherwise. */
const char *dfr_waf_action_name(unsigned action);
const char *dfr_waf_fail_name(unsigned fail);

/* A C string as a dfr_waf_str (NULL gives the empty string). */
static inline struct dfr_waf_str
dfr_waf_str_c(const char *s)
{
	struct dfr_waf_str w = {s != NULL ? s : "", s != NULL ? (uint32_t)strlen(s) : 0};

	return w;
}

#endif
