/*
 * Every luaCode of the Core's fixtures (../shared/fixtures/core) through the real engine, from
 * the parsed config as syncd hands it over: small.json's blocklist, rate limit, user-agent check
 * and headers; edge.json's syntax error and OpenResty-style rules; geodns.json's ACME block.
 */
#include <cjson/cJSON.h>

#include "wafd_test.h"

static struct dfr_config *
load_fixture(const char *name)
{
	char path[1024];
	struct dfr_config *cfg = NULL;
	size_t len;
	char *json;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	if ((json = tap_read_file(path, &len)) == NULL) {
		diag("cannot read %s", path);
		return NULL;
	}
	if (dfr_config_parse(json, len, NULL, &cfg, NULL, 0) != DFR_OK)
		cfg = NULL;
	free(json);
	if (cfg != NULL)
		cfg->cfg_generation = 5;
	return cfg;
}

/* Sets up t with the fixture's generation; returns the domain (by id) or NULL. */
static const struct dfr_domain *
use(struct tcase *t, struct dfr_config *cfg, const char *id)
{
	struct wgen *g = code_gen_build(cfg, NULL);

	judge_set_gen(&t->jg, g);
	return dfr_config_find_domain(cfg, id);
}

static void
req(struct tcase *t, const struct dfr_domain *d, const char *target, const char *peer)
{
	t_req_for(t, d->dom_id, d->dom_name, "GET", target, peer);
}

static void
test_small(void)
{
	struct dfr_config *cfg = load_fixture("small.json");
	const struct dfr_domain *d;
	struct tcase t;
	int i;

	t_init(&t, 0);
	if (cfg == NULL || (d = use(&t, cfg, "6720a1b2c3d4e5f601234567")) == NULL) {
		ok(false, "small.json loads");
		goto out;
	}
	req(&t, d, "/", "198.51.100.66");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403, "blocked address: 403");

	req(&t, d, "/", "203.0.113.10");
	t_hdr(&t, "User-Agent", "Mozilla/5.0 sqlmap/1.7");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403, "scanner user agent: 403");

	req(&t, d, "/", "203.0.113.11");
	t_hdr(&t, "user-agent", "curl/8.0");
	is_int(t_run(&t), DFR_WAF_PASS, "ordinary client passes");
	is_str(t_rep_header(&t, "X-Frame-Options"), "SAMEORIGIN", "security header on pass");
	is_str(t_rep_header(&t, "X-Content-Type-Options"), "nosniff", "second header on pass");

	/* rate limit: 100 per minute; the counter starts at 0 and blocks once it is above 100 */
	for (i = 0; i < 200; i++) {
		req(&t, d, "/", "203.0.113.12");
		if (t_run(&t) != DFR_WAF_PASS)
			break;
	}
	is_int(i, 101, "the 102nd request of one address is limited");
	ok(t.rep.wv_status == 429 && strcmp(t.body, "Too many requests\n") == 0,
	   "429 Too many requests");
	req(&t, d, "/", "203.0.113.13");
	is_int(t_run(&t), DFR_WAF_PASS, "another address is not");
out:
	dfr_config_unref(cfg);
	t_fini(&t);
	shdict_registry_clear();
}

/* edge.json's luaCode of domain `idx`, read straight from the file (the config drops the second
 * of two domains whose names differ only in case, and it holds the OpenResty-style rules). */
static char *
edge_code(int idx)
{
	char path[1024], *json, *code = NULL;
	size_t len;
	cJSON *root, *dom, *lua;

	snprintf(path, sizeof(path), "%s/edge.json", tap_fixtures_dir());
	if ((json = tap_read_file(path, &len)) == NULL)
		return NULL;
	root = cJSON_ParseWithLength(json, len);
	dom = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "domains"), idx);
	lua = cJSON_GetObjectItem(dom, "luaCode");
	if (cJSON_IsString(lua))
		code = strdup(lua->valuestring);
	cJSON_Delete(root);
	free(json);
	return code;
}

static void
test_edge(void)
{
	struct dfr_config *cfg = load_fixture("edge.json");
	const struct dfr_domain *bad, *empty;
	char *rules = edge_code(1);
	struct wgen *two;
	struct tcase t;

	t_init(&t, 0);
	if (cfg == NULL || rules == NULL) {
		ok(false, "edge.json loads");
		goto out;
	}
	bad = use(&t, cfg, "6722e5f6a7b8c9d0e1f2a101");
	empty = dfr_config_find_domain(cfg, "6722e5f6a7b8c9d0e1f2a103");
	if (bad == NULL || empty == NULL) {
		ok(false, "edge.json domains present");
		goto out;
	}
	req(&t, bad, "/x", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_ERROR && t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT,
	   "syntax error reported as a script error");
	ok(strstr(t.jg.jg_run.wn_err, "end") != NULL, "with the compiler's reason (%s)",
	   t.jg.jg_run.wn_err);
	req(&t, empty, "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "domain without code passes");

	/* the OpenResty-style rules, beside the broken domain in one generation */
	two = calloc(1, sizeof(*two));
	{
		struct wgen *gb = code_gen_single("6722e5f6a7b8c9d0e1f2a101", "broken.example",
						  "if x then", 9, 6);
		struct wgen *gr = code_gen_single("6722e5f6a7b8c9d0e1f2a102", "rules.example", rules,
						  strlen(rules), 6);
		two->wg_refs = 1;
		two->wg_generation = 6;
		two->wg_codes = calloc(2, sizeof(*two->wg_codes));
		two->wg_codes[0] = code_ref(gb->wg_codes[0]);
		two->wg_codes[1] = code_ref(gr->wg_codes[0]);
		two->wg_ncodes = 2;
		code_gen_unref(gb);
		code_gen_unref(gr);
	}
	judge_set_gen(&t.jg, two);
#define RULES "6722e5f6a7b8c9d0e1f2a102", "rules.example", "GET"
	t_req_for(&t, RULES, "/admin/panel", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403, "admin without auth: 403");
	t_req_for(&t, RULES, "/admin/panel", "192.0.2.1");
	t_hdr(&t, "Authorization", "Basic eDp5");
	is_int(t_run(&t), DFR_WAF_PASS, "admin with auth passes");
	t_req_for(&t, RULES, "/old-page", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_status == 301 && t_rep_header(&t, "Location") != NULL &&
		   strcmp(t_rep_header(&t, "Location"), "/new-page") == 0,
	   "ngx.redirect 301 to /new-page");
	t_req_for(&t, RULES, "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "no geoip country: pass");

	/* the bad domain does not disturb the good one: interleave */
	for (int i = 0; i < 3; i++) {
		t_req_for(&t, "6722e5f6a7b8c9d0e1f2a101", "broken.example", "GET", "/x", "192.0.2.1");
		t_run(&t);
		ok(t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT, "bad domain: script error (%d)", i);
		t_req_for(&t, RULES, "/admin", "192.0.2.1");
		t_run(&t);
		ok(t.rep.wv_status == 403, "good domain keeps its verdict after the bad one (%d)", i);
	}
out:
	free(rules);
	dfr_config_unref(cfg);
	t_fini(&t);
}

static void
test_acme(void)
{
	struct dfr_config *cfg = load_fixture("geodns.json");
	const struct dfr_domain *d;
	struct tcase t;

	t_init(&t, 0);
	if (cfg == NULL || (d = use(&t, cfg, "6721c3d4e5f6a7b8c9d0e102")) == NULL) {
		ok(false, "geodns.json loads");
		goto out;
	}
	req(&t, d, "/.well-known/acme-challenge/Zx9F3kL2mQ7wR8tY1uI4oP6aS5dG0hJ3kL8zX2cV7bN",
	    "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 200, "ACME challenge: 200");
	is_str(t.body,
	       "Zx9F3kL2mQ7wR8tY1uI4oP6aS5dG0hJ3kL8zX2cV7bN."
	       "mR4tY7uI0oP3aS6dF9gH2jK5lZ8xC1vB4nM7qW0eR3t\n",
	       "body is the key authorization");
	is_str(t_rep_header(&t, "Content-Type"), "text/plain", "Content-Type text/plain");

	req(&t, d, "/.well-known/acme-challenge/other", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "another token passes");
	req(&t, d, "/wp-admin/x", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_status == 403 && strcmp(t.body, "Forbidden\n") == 0, "wp-admin: 403 Forbidden");
	req(&t, d, "/wp-admin/x", "203.0.113.200");
	is_int(t_run(&t), DFR_WAF_PASS, "wp-admin from the allowed address passes");
out:
	dfr_config_unref(cfg);
	t_fini(&t);
}

int
main(void)
{
	plan_lazy();
	test_small();
	test_edge();
	test_acme();
	shdict_registry_clear();
	return done_testing();
}
