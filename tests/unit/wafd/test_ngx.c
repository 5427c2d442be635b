/*
 * The ngx API and the Go agent's request table, run through the real engine (judge -> state ->
 * verdict): each call, the verdict rules (ngx.exit, ngx.redirect, registers), response headers
 * on pass and on respond, and isolation of globals between requests and domains.
 */
#include "wafd_test.h"

static void
test_verdicts(void)
{
	struct tcase t;

	t_init(&t, 0);
	t_code(&t, "local x = 1");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "a script that does nothing passes");

	t_code(&t, "return ngx.exit(403)");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_RESPOND, "ngx.exit(403) responds");
	is_int(t.rep.wv_status, 403, "with 403");
	is_str(t.body, "Blocked by WAF", "default body of a block");

	t_code(&t, "ngx.exit(ngx.HTTP_TOO_MANY_REQUESTS) error('not reached')");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 429, "ngx.exit stops the script (no error after it)");

	t_code(&t, "pcall(ngx.exit, 451) ngx.exit(500)");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 451, "a pcall around ngx.exit does not undo it");

	t_code(&t, "ngx.header['Content-Type'] = 'text/plain'\n"
		   "ngx.say('key.auth')\nreturn ngx.exit(200)");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_RESPOND, "ngx.exit(200) after ngx.say responds");
	is_int(t.rep.wv_status, 200, "with 200");
	is_str(t.body, "key.auth\n", "ngx.say adds a newline");
	is_str(t_rep_header(&t, "Content-Type"), "text/plain", "Content-Type kept");

	t_code(&t, "ngx.status = 403 ngx.print('a', 1, true, nil, {'b', {'c'}}) "
		   "ngx.exit(ngx.HTTP_OK)");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 403, "ngx.status wins over ngx.exit(HTTP_OK)");
	is_str(t.body, "a1truenilbc", "ngx.print flattens its arguments");
	is_str(t_rep_header(&t, "Content-Type"), "text/plain", "a body gets a Content-Type");

	t_code(&t, "ngx.say('hello') ngx.exit(ngx.OK)");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 200,
	   "ngx.exit(ngx.OK) after output answers 200");

	t_code(&t, "ngx.exit(ngx.OK)");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "ngx.exit(ngx.OK) without output passes");

	t_code(&t, "return ngx.redirect('/new-page', 301)");
	t_req(&t, "GET", "/old", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 301, "ngx.redirect status");
	is_str(t_rep_header(&t, "Location"), "/new-page", "ngx.redirect Location");

	t_code(&t, "ngx.redirect('/x', 200)");
	t_req(&t, "GET", "/", "192.0.2.1");
	ok(t_run(&t) == DFR_WAF_ERROR && t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT,
	   "ngx.redirect with a bad status is a script error");

	t_code(&t, "ngx.exit(1000)");
	t_req(&t, "GET", "/", "192.0.2.1");
	ok(t_run(&t) == DFR_WAF_ERROR && t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT,
	   "ngx.exit(1000) is a script error");

	/* headers on pass */
	t_code(&t, "ngx.header['X-Frame-Options'] = 'SAMEORIGIN'\n"
		   "ngx.header.x_content_type_options = 'nosniff'\n"
		   "ngx.header['Set-Cookie'] = {'a=1', 'b=2'}\n"
		   "ngx.header['X-Gone'] = 'x' ngx.header['x-gone'] = nil\n"
		   "ngx.header['X-Num'] = 42\n"
		   "if ngx.header['x-frame-options'] ~= 'SAMEORIGIN' then ngx.exit(500) end");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "headers set, then pass");
	is_str(t_rep_header(&t, "X-Frame-Options"), "SAMEORIGIN", "header on pass");
	is_str(t_rep_header(&t, "X-Content-Type-Options"), "nosniff", "'_' becomes '-'");
	is_int(t.rep.wv_nheaders, 5, "two Set-Cookie, removed header gone");
	is_str(t_rep_header(&t, "X-Num"), "42", "number value");
	ok(t_rep_header(&t, "X-Gone") == NULL, "ngx.header[k] = nil removes");

	t_code(&t, "ngx.header['X-Bad'] = 'a\\r\\nInjected: 1'");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_ERROR, "CR/LF in a header value refused");

	/* the Go agent's registers */
	t_code(&t, "_blocked = true");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403 &&
		   strcmp(t.body, "Blocked by WAF") == 0,
	   "_blocked alone: 403 Blocked by WAF");
	t_code(&t, "_blocked = true _status_code = 429 _body = 'slow down'");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_status == 429 && strcmp(t.body, "slow down") == 0, "_status_code and _body");
	t_code(&t, "_blocked = 1 _status_code = 'teapot'");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 403, "a non-number _status_code gives 403");
	t_code(&t, "_blocked = false _status_code = 500");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "_blocked false passes");
	t_fini(&t);
}

static void
test_vars(void)
{
	struct tcase t;

	t_init(&t, 0);
	t_code(&t, "local v = ngx.var\n"
		   "ngx.say(v.remote_addr, '|', v.remote_port, '|', v.uri, '|', v.request_uri, '|',\n"
		   "  v.args, '|', v.query_string, '|', v.host, '|', v.request_method, '|',\n"
		   "  v.scheme, '|', v.server_port, '|', v.server_addr, '|', v.http_user_agent, '|',\n"
		   "  v.http_x_forwarded_for, '|', v.cookie_sid, '|', v.arg_q, '|', v.arg_none,\n"
		   "  '|', v.method, '|', v.https, '|', v.is_args, '|', v.server_protocol, '|',\n"
		   "  v.cookie_theme, '|', v.http_cookie, '|', v.geoip_country_code, '|',\n"
		   "  #v.binary_remote_addr, '|', v.request)\n"
		   "ngx.exit(200)");
	t_req(&t, "POST", "/a%20b/c?q=x%41y&flag&q=2", "203.0.113.9");
	t.req.wr_host = dfr_waf_str_c("WWW.Example.COM:8080");
	t.req.wr_scheme = DFR_WAF_HTTPS;
	t.req.wr_server_port = 443;
	t_hdr(&t, "User-Agent", "curl/8.0");
	t_hdr(&t, "X-Forwarded-For", "1.1.1.1");
	t_hdr(&t, "x-forwarded-for", "2.2.2.2");
	t_hdr(&t, "Cookie", "sid=abc; theme=dark");
	t_hdr(&t, "Cookie", "other=1");
	t_run(&t);
	is_str(t.body,
	       "203.0.113.9|40000|/a b/c|/a%20b/c?q=x%41y&flag&q=2|q=x%41y&flag&q=2|"
	       "q=x%41y&flag&q=2|www.example.com|POST|https|443|127.0.0.1|curl/8.0|"
	       "1.1.1.1, 2.2.2.2|abc|x%41y|nil|POST|on|?|HTTP/1.1|dark|sid=abc; theme=dark; other=1|"
	       "nil|4|POST /a%20b/c?q=x%41y&flag&q=2 HTTP/1.1\n",
	       "ngx.var values as nginx gives them");

	t_code(&t, "ngx.var.uri = '/x'");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_ERROR, "ngx.var is not writable");

	/* the Go agent's request table */
	t_code(&t, "local r = request\n"
		   "ngx.say(r.method, '|', r.uri, '|', r.host, '|', r.remote_addr, '|',\n"
		   "  r.headers['X-API-Key'], '|', r.headers['X-Api-Key'], '|', r.headers['x-api-key'],\n"
		   "  '|', r.headers['Accept'], '|', tostring(r.headers['Missing']))\n"
		   "local n = 0 for k, v in pairs(r.headers) do n = n + 1 end ngx.say(n)\n"
		   "ngx.exit(200)");
	t_req(&t, "GET", "/p?x=1", "198.51.100.7");
	t.req.wr_host = dfr_waf_str_c("Example.com");
	t_hdr(&t, "X-API-Key", "k1");
	t_hdr(&t, "Accept", "a1");
	t_hdr(&t, "accept", "a2");
	t_hdr(&t, "X-Forwarded-For", "10.0.0.1");
	t_run(&t);
	is_str(t.body, "GET|/p?x=1|Example.com|198.51.100.7|k1|k1|k1|a1|nil\n3\n",
	       "request table: raw uri, host as sent, first header value, any case");

	/* ngx.req */
	t_code(&t, "local h = ngx.req.get_headers()\n"
		   "local a = h['accept']\n"
		   "ngx.say(type(a), ' ', a[1], ' ', a[2], ' ', h.User_Agent, ' ', h['X-API-KEY'])\n"
		   "local raw = ngx.req.get_headers(100, true)\n"
		   "ngx.say(tostring(raw['x-api-key']), ' ', raw['X-API-Key'])\n"
		   "ngx.say(ngx.req.get_method(), ' ', ngx.req.http_version())\n"
		   "local args = ngx.req.get_uri_args()\n"
		   "ngx.say(args.a, ' ', type(args.b), ' ', args.c[1], ',', args.c[2], ' ',\n"
		   "  args['sp ace'], ' ', tostring(args.flag))\n"
		   "local n = 0 for _ in pairs(ngx.req.get_uri_args(2)) do n = n + 1 end ngx.say(n)\n"
		   "ngx.exit(200)");
	t_req(&t, "PUT", "/p?a=1&b=2&c=x&c=y&sp+ace=%2Fv&flag", "192.0.2.1");
	t_hdr(&t, "Accept", "a1");
	t_hdr(&t, "accept", "a2");
	t_hdr(&t, "User-Agent", "ua");
	t_hdr(&t, "X-API-Key", "k");
	t_run(&t);
	is_str(t.body, "table a1 a2 ua k\nnil k\nPUT 1.1\n1 string x,y /v true\n2\n",
	       "get_headers arrays and any case; raw; get_method; get_uri_args");
	t_fini(&t);
}

static void
test_misc(void)
{
	struct tcase t;

	t_init(&t, 0);
	is_str(t_eval(&t, "ngx.say(type(ngx.time()), ' ', ngx.time() > 1700000000, ' ',\n"
			  "  type(ngx.now()), ' ', math.abs(ngx.now() - ngx.time()) < 2) ngx.exit(200)"),
	       "number true number true\n", "ngx.time and ngx.now");
	is_str(t_eval(&t, "ngx.say(ngx.HTTP_FORBIDDEN, ngx.HTTP_OK, ngx.HTTP_NOT_FOUND,\n"
			  "  ngx.HTTP_TOO_MANY_REQUESTS, ngx.HTTP_INTERNAL_SERVER_ERROR,\n"
			  "  ngx.HTTP_MOVED_PERMANENTLY, ngx.ERR, ngx.WARN, ngx.INFO, ngx.DEBUG, ngx.OK)\n"
			  "ngx.exit(200)"),
	       "40320040442950030145780\n", "constants");
	is_str(t_eval(&t, "ngx.log(ngx.ERR, 'test log line ', 1, nil, true)\n"
			  "ngx.log(ngx.DEBUG, 'quiet') print('printed') ngx.say('ok') ngx.exit(200)"),
	       "ok\n", "ngx.log and print do not fail");
	is_str(t_eval(&t, "ngx.say(ngx.escape_uri('a b/c'), ' ', ngx.unescape_uri('a%20b+c'), ' ',\n"
			  "  ngx.encode_base64('hello'), ' ', ngx.decode_base64('aGVsbG8='), ' ',\n"
			  "  tostring(ngx.decode_base64('@@')), ' ', #ngx.today(), ' ',\n"
			  "  ngx.http_time(0)) ngx.exit(200)"),
	       "a%20b%2Fc a b c aGVsbG8= hello nil 10 Thu, 01 Jan 1970 00:00:00 GMT\n",
	       "escape/unescape, base64, dates");
	is_str(t_eval(&t, "ngx.ctx.a = 1 ngx.say(ngx.ctx.a, ' ', ngx.status, ' ',\n"
			  "  tostring(ngx.null), ' ', ngx.worker.id(), ' ', ngx.worker.count())\n"
			  "ngx.exit(200)"),
	       "1 0 userdata: (nil) 0 2\n", "ngx.ctx, ngx.status, ngx.null, ngx.worker");
	is_str(t_eval(&t, "ngx.status = 418\n"
			  "ngx.say(tostring(ngx.headers_sent), ' ', tostring(ngx.nosuch), ' ',\n"
			  "  ngx.status, ' ', tostring(getmetatable(ngx)), ' ',\n"
			  "  tostring(getmetatable(ngx.shared)), ' ', tostring(rawget(ngx, 'var')),\n"
			  "  ' ', type(ngx.shared.cache), ' ', tostring(ngx.shared[1]))\n"
			  "ngx.exit(200)"),
	       "false nil 418 false false nil userdata nil\n",
	       "ngx: per-request fields, unknown ones nil, tables behind the proxies hidden");
	is_str(t_eval(&t, "local ok = pcall(function() ngx.foo = 1 end)\n"
			  "local ok2 = pcall(function() ngx.req.x = 1 end)\n"
			  "ngx.say(tostring(ok), tostring(ok2)) ngx.exit(200)"),
	       "falsefalse\n", "ngx and ngx.req are read-only");
	is_str(t_eval(&t, "ngx.say(table.concat({unpack({1, 2})}), table.getn({1, 2, 3}), math.pow(2, 3),\n"
			  "  loadstring('return 7')()) ngx.exit(200)"),
	       "1238.07\n", "5.1 shims: unpack, table.getn, math.pow, loadstring");
	t_fini(&t);
}

/* What one request sets, the next one does not see; what one domain sets, another does not. */
static void
test_isolation(void)
{
	struct tcase t;
	const char *code = "if seen then ngx.exit(500) end seen = true\n"
			   "if _G.g2 then ngx.exit(501) end _G.g2 = 1\n"
			   "if ngx.ctx.mark then ngx.exit(502) end ngx.ctx.mark = 1\n"
			   "if pcall(function() string.evil = 1 end) then ngx.exit(503) end\n"
			   "if pcall(rawset, string, 'evil', 1) then ngx.exit(504) end\n"
			   "if getmetatable('') then ngx.exit(505) end\n"
			   "if pcall(rawset, ngx, 'x', 1) then ngx.exit(506) end\n"
			   "if request.headers.mark then ngx.exit(507) end request.headers.mark = 1\n"
			   "load('leak = 1')() if not leak then ngx.exit(508) end\n"
			   "if pcall(setmetatable, _ENV, {}) then ngx.exit(509) end\n"
			   "if pcall(function() getmetatable(_ENV).__index.x = 1 end) then\n"
			   "  ngx.exit(510) end\n"
			   "if pcall(function() math.floor = nil end) then ngx.exit(511) end";
	struct wgen *g;
	struct wstate *before;

	t_init(&t, 0);
	t_code(&t, code);
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "first request passes");
	before = t.jg.jg_states[0];
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "second request in the same state sees nothing of the first");
	ok(t.jg.jg_states[0] == before && before->ws_runs == 2, "the same state ran both");
	t_req(&t, "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "third too");

	/* two domains in one generation */
	{
		static const char *a = "shared_global = 'A' ngx.shared.cache:set('who', 'A')";
		static const char *b = "ngx.say(tostring(shared_global), ' ',\n"
				       "  tostring(ngx.shared.cache:get('who'))) ngx.exit(200)";
		struct wgen *two = calloc(1, sizeof(*two));
		struct wgen *ga = code_gen_single("aaaa", "a.example", a, strlen(a), 2);
		struct wgen *gb = code_gen_single("bbbb", "b.example", b, strlen(b), 2);

		two->wg_refs = 1;
		two->wg_generation = 2;
		two->wg_codes = calloc(2, sizeof(*two->wg_codes));
		two->wg_codes[0] = code_ref(ga->wg_codes[0]);
		two->wg_codes[1] = code_ref(gb->wg_codes[0]);
		two->wg_ncodes = 2;
		code_gen_unref(ga);
		code_gen_unref(gb);
		judge_set_gen(&t.jg, two);
		t_req_for(&t, "aaaa", "a.example", "GET", "/", "192.0.2.1");
		is_int(t_run(&t), DFR_WAF_PASS, "domain A sets a global and a dict entry");
		t_req_for(&t, "bbbb", "b.example", "GET", "/", "192.0.2.1");
		t_run(&t);
		is_str(t.body, "nil nil\n", "domain B sees neither");
		t_req_for(&t, "cccc", "c.example", "GET", "/", "192.0.2.1");
		ok(t_run(&t) == DFR_WAF_ERROR && t.rep.wv_fail == DFR_WAF_FAIL_NO_CODE,
		   "an unknown domain: error no-code");
		t_req_for(&t, "", "b.example", "GET", "/", "192.0.2.1");
		is_int(t_run(&t), DFR_WAF_RESPOND, "found by name when the id is empty");
	}

	/* a domain without code passes */
	g = code_gen_single("dddd", "d.example", NULL, 0, 3);
	judge_set_gen(&t.jg, g);
	t_req_for(&t, "dddd", "d.example", "GET", "/", "192.0.2.1");
	is_int(t_run(&t), DFR_WAF_PASS, "a known domain without code passes");
	ok((t.rep.wv_flags & DFR_WAF_REP_STALE) == 0, "not stale");
	judge_request(&t.jg, &t.req, 9, &t.rep, &t.rep_gen);
	ok((t.rep.wv_flags & DFR_WAF_REP_STALE) != 0 && t.rep_gen == 3,
	   "request of a newer generation: stale flag, verdict names generation 3");
	t_fini(&t);
	shdict_registry_clear();
}

/* A new generation recompiles only what changed, and the verdicts follow the new code. */
static void
test_generations(void)
{
	struct dfr_config *c1 = NULL, *c2 = NULL;
	struct wgen *g1, *g2;
	struct tcase t;
	struct wstate *sa, *sb;
	const char *j1 = "{\"success\":true,\"domains\":["
			 "{\"id\":\"aaaa\",\"domain\":\"a.example\",\"luaCode\":\"ngx.exit(401)\"},"
			 "{\"id\":\"bbbb\",\"domain\":\"b.example\",\"luaCode\":\"ngx.exit(402)\"}],"
			 "\"proxies\":[]}";
	const char *j2 = "{\"success\":true,\"domains\":["
			 "{\"id\":\"aaaa\",\"domain\":\"a.example\",\"luaCode\":\"ngx.exit(401)\"},"
			 "{\"id\":\"bbbb\",\"domain\":\"b.example\",\"luaCode\":\"ngx.exit(418)\"}],"
			 "\"proxies\":[]}";

	t_init(&t, 0);
	if (dfr_config_parse(j1, strlen(j1), NULL, &c1, NULL, 0) != DFR_OK ||
	    dfr_config_parse(j2, strlen(j2), c1, &c2, NULL, 0) != DFR_OK) {
		ok(false, "configs parse");
		goto out;
	}
	c1->cfg_generation = 1;
	c2->cfg_generation = 2;
	g1 = code_gen_build(c1, NULL);
	g2 = code_gen_build(c2, g1);
	ok(g1 != NULL && g2 != NULL && g1->wg_ncodes == 2 && g2->wg_ncodes == 2, "generations built");
	ok(g2->wg_codes[0] == g1->wg_codes[0], "unchanged code shared between generations");
	ok(g2->wg_codes[1] != g1->wg_codes[1], "changed code is new");
	judge_set_gen(&t.jg, code_gen_ref(g1));
	t_req_for(&t, "aaaa", "a.example", "GET", "/", "192.0.2.1");
	t_run(&t);
	t_req_for(&t, "bbbb", "b.example", "GET", "/", "192.0.2.1");
	t_run(&t);
	is_int(t.rep.wv_status, 402, "generation 1 verdict");
	sa = t.jg.jg_states[0];
	sb = t.jg.jg_states[1];
	judge_set_gen(&t.jg, code_gen_ref(g2));
	ok(t.jg.jg_states[0] == sa, "state of the unchanged domain kept (no recompile)");
	ok(t.jg.jg_states[1] == NULL, "state of the changed domain dropped");
	(void)sb;
	t_run(&t);
	is_int(t.rep.wv_status, 418, "generation 2 verdict");
	is_int((long long)t.rep_gen, 2, "verdict names generation 2");
	code_gen_unref(g1);
	code_gen_unref(g2);
out:
	dfr_config_unref(c1);
	dfr_config_unref(c2);
	t_fini(&t);
}

static void
test_message(void)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct tcase t;
	struct wbuf out = {0};
	struct dfr_waf_rep rep;
	uint8_t buf[2048];
	size_t len = 0;
	uint64_t gen = 0;

	t_init(&t, 0);
	t_code(&t, "ngx.header['X-A'] = '1' if ngx.var.uri == '/block' then ngx.exit(403) end");
	t_req(&t, "GET", "/block", "192.0.2.1");
	(void)dfr_waf_req_encode(buf, sizeof(buf), 1, &t.req, &len);
	is_int(judge_message(&t.jg, buf, len, &out), DFR_OK, "message judged");
	is_int(dfr_waf_rep_decode((uint8_t *)out.b_data, out.b_len, &gen, &rep, hdrs), DFR_OK,
	       "verdict message decodes");
	ok(rep.wv_action == DFR_WAF_RESPOND && rep.wv_status == 403 && rep.wv_nheaders >= 1 &&
		   gen == 1,
	   "respond 403 with header, generation 1");
	buf[40] ^= 0xff;
	is_int(judge_message(&t.jg, buf, len - 3, &out), DFR_OK, "broken message still answered");
	is_int(dfr_waf_rep_decode((uint8_t *)out.b_data, out.b_len, &gen, &rep, hdrs), DFR_OK,
	       "its verdict decodes");
	ok(rep.wv_action == DFR_WAF_ERROR && rep.wv_fail == DFR_WAF_FAIL_BAD_REQ,
	   "error bad-request");
	wbuf_free(&out);
	t_fini(&t);
}

int
main(void)
{
	plan_lazy();
	test_verdicts();
	test_vars();
	test_misc();
	test_isolation();
	test_generations();
	test_message();
	shdict_registry_clear();
	return done_testing();
}
