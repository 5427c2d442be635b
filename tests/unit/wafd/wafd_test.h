/*
 * Helpers of the wafd unit tests: a judge over one or more domains' code, a request built field
 * by field, and checks on the verdict. Header-only so each test_*.c stays one binary.
 */
#ifndef WAFD_TEST_H
#define WAFD_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "tap.h"
#include "defenra-wafd/wafd.h"

#define T_DOM_ID "6720a1b2c3d4e5f601234567"
#define T_DOM_NAME "example.com"

struct tcase {
	struct wafd_limits lim;
	struct judge jg;
	struct dfr_waf_req req;
	struct dfr_waf_hdr hdrs[64];
	uint32_t nhdrs;
	struct dfr_waf_rep rep;
	uint64_t rep_gen;
	char body[4096];
};

static inline void
t_limits(struct wafd_limits *lim)
{
	lim->wl_mem_cap = 8u * 1024 * 1024;
	lim->wl_budget = 200000;
	lim->wl_timeout_ns = 2000000000ull; /* generous: sanitizers are slow */
	lim->wl_shdict_size = 1024 * 1024;
}

static inline void
t_init(struct tcase *t, unsigned worker)
{
	memset(t, 0, sizeof(*t));
	t_limits(&t->lim);
	judge_init(&t->jg, worker, 2, &t->lim);
}

/* Loads one domain's code as generation `gen` (takes effect for the next request). */
static inline void
t_code_gen(struct tcase *t, const char *id, const char *name, const char *code, uint64_t gen)
{
	judge_set_gen(&t->jg, code_gen_single(id, name, code, code != NULL ? strlen(code) : 0, gen));
}

static inline void
t_code(struct tcase *t, const char *code)
{
	t_code_gen(t, T_DOM_ID, T_DOM_NAME, code, 1);
}

static inline void
t_req_for(struct tcase *t, const char *id, const char *name, const char *method,
	  const char *target, const char *peer)
{
	memset(&t->req, 0, sizeof(t->req));
	t->nhdrs = 0;
	t->req.wr_scheme = DFR_WAF_HTTP;
	t->req.wr_http_major = 1;
	t->req.wr_http_minor = 1;
	t->req.wr_peer_port = 40000;
	t->req.wr_server_port = 80;
	t->req.wr_domain_id = dfr_waf_str_c(id);
	t->req.wr_domain_name = dfr_waf_str_c(name);
	t->req.wr_host = dfr_waf_str_c(name);
	t->req.wr_method = dfr_waf_str_c(method);
	t->req.wr_target = dfr_waf_str_c(target);
	t->req.wr_peer_addr = dfr_waf_str_c(peer);
	t->req.wr_server_addr = dfr_waf_str_c("127.0.0.1");
	t->req.wr_headers = t->hdrs;
}

static inline void
t_req(struct tcase *t, const char *method, const char *target, const char *peer)
{
	t_req_for(t, T_DOM_ID, T_DOM_NAME, method, target, peer);
}

static inline void
t_hdr(struct tcase *t, const char *name, const char *value)
{
	t->hdrs[t->nhdrs].wh_name = dfr_waf_str_c(name);
	t->hdrs[t->nhdrs].wh_value = dfr_waf_str_c(value);
	t->req.wr_nheaders = ++t->nhdrs;
}

/* Judges the request; returns the verdict's action and copies the body as a C string. */
static inline int
t_run(struct tcase *t)
{
	size_t n;

	judge_request(&t->jg, &t->req, 1, &t->rep, &t->rep_gen);
	n = t->rep.wv_body.ws_len < sizeof(t->body) - 1 ? t->rep.wv_body.ws_len : sizeof(t->body) - 1;
	if (n > 0)
		memcpy(t->body, t->rep.wv_body.ws_ptr, n);
	t->body[n] = '\0';
	if (t->rep.wv_action == DFR_WAF_ERROR)
		diag("error verdict: %s (%s)", dfr_waf_fail_name(t->rep.wv_fail), t->jg.jg_run.wn_err);
	return t->rep.wv_action;
}

/* The value of the verdict's header `name` (first), as a static C string, or NULL. */
static inline const char *
t_rep_header(struct tcase *t, const char *name)
{
	static char v[1024];

	for (uint32_t i = 0; i < t->rep.wv_nheaders; i++) {
		const struct dfr_waf_hdr *h = &t->rep.wv_headers[i];
		if (h->wh_name.ws_len == strlen(name) &&
		    strncasecmp(h->wh_name.ws_ptr, name, h->wh_name.ws_len) == 0) {
			size_t n = h->wh_value.ws_len < sizeof(v) - 1 ? h->wh_value.ws_len : sizeof(v) - 1;
			memcpy(v, h->wh_value.ws_ptr, n);
			v[n] = '\0';
			return v;
		}
	}
	return NULL;
}

/* Runs `code` on a plain GET and returns the body it printed (with ngx.exit(200)). */
static inline const char *
t_eval(struct tcase *t, const char *code)
{
	t_code(t, code);
	t_req(t, "GET", "/", "192.0.2.1");
	t_run(t);
	return t->body;
}

static inline void
t_fini(struct tcase *t)
{
	judge_fini(&t->jg);
}

#endif
