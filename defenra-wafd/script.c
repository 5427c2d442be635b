/*
 * One domain's code in one Lua state: compiled once, run once per request, turned into a
 * verdict.
 *
 * Isolation between requests: each run gets a fresh _ENV table whose reads fall through to the
 * sandbox's globals, set as the compiled chunk's _ENV upvalue; whatever the script assigns to
 * globals lands in that table and is gone with it. Everything else a script can reach is
 * read-only (sandbox.c) or per run (ngx.c), so the next request starts clean; only ngx.shared
 * carries state, on purpose. Isolation between domains: one state per domain per worker, so
 * domains never share a Lua object, and a memory bomb meets its own state's cap.
 *
 * The verdict, in order: the memory cap was hit -> error "memory"; the budget or the deadline
 * -> error "budget"; ngx.exit/ngx.redirect -> their status; a runtime error -> error "script";
 * the Go agent's registers (_blocked, _status_code, _body) -> respond; else pass. The run's
 * ngx.header values go with every verdict but an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

#define BLOCKED_BODY "Blocked by WAF"

/* ---- buffers ------------------------------------------------------------------------------ */

int
wbuf_reserve(struct wbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->b_len + more <= b->b_cap)
		return DFR_OK;
	cap = b->b_cap > 0 ? b->b_cap : 256;
	while (cap < b->b_len + more)
		cap *= 2;
	if ((p = realloc(b->b_data, cap)) == NULL)
		return DFR_ENOMEM;
	b->b_data = p;
	b->b_cap = cap;
	return DFR_OK;
}

int
wbuf_append(struct wbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return DFR_OK;
	if (wbuf_reserve(b, n) != DFR_OK)
		return DFR_ENOMEM;
	memcpy(b->b_data + b->b_len, p, n);
	b->b_len += n;
	return DFR_OK;
}

void
wbuf_free(struct wbuf *b)
{
	free(b->b_data);
	memset(b, 0, sizeof(*b));
}

void
wrun_init(struct wrun *run)
{
	memset(run, 0, sizeof(*run));
	run->wn_nworkers = 1;
}

void
wrun_reset(struct wrun *run)
{
	run->wn_req = NULL;
	run->wn_status = 0;
	run->wn_exited = false;
	run->wn_exit_status = 0;
	run->wn_body.b_len = 0;
	run->wn_hstore.b_len = 0;
	run->wn_nhdrs = 0;
	run->wn_err[0] = '\0';
}

void
wrun_free(struct wrun *run)
{
	wbuf_free(&run->wn_body);
	wbuf_free(&run->wn_hstore);
	wbuf_free(&run->wn_scratch);
}

/* ---- states ------------------------------------------------------------------------------- */

static void
errcpy(char *dst, const char *src)
{
	snprintf(dst, WAFD_ERRLEN, "%s", src != NULL ? src : "(no message)");
}

static int
compile(lua_State *L)
{
	struct wstate *ws = lua_touserdata(L, 1);
	char name[80];

	snprintf(name, sizeof(name), "=%s", ws->ws_code->wc_dom_name);
	if (luaL_loadbufferx(L, ws->ws_code->wc_code, ws->ws_code->wc_len, name, "t") != LUA_OK)
		return lua_error(L);
	/* the chunk's _ENV: reads fall through to the globals, writes stay in it and are cleared
	 * before the next request (run_protected) */
	lua_createtable(L, 0, 4);
	lua_createtable(L, 0, 2);
	lua_pushglobaltable(L);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setupvalue(L, -3, 1);
	ws->ws_env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ws->ws_fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

struct wstate *
script_state_new(struct wcode *code, const struct wafd_limits *lim, unsigned worker_id)
{
	struct wstate *ws = calloc(1, sizeof(*ws));

	if (ws == NULL)
		return NULL;
	ws->ws_code = code_ref(code);
	ws->ws_lim = lim;
	ws->ws_worker_id = worker_id;
	ws->ws_fn_ref = ws->ws_env_ref = LUA_NOREF;
	if (code->wc_code == NULL)
		return ws; /* nothing to run: every request passes, no state needed */
	if ((ws->ws_L = sandbox_new(ws)) == NULL) {
		script_state_free(ws);
		return NULL;
	}
	stats_states(1);
	ws->ws_mem_unlimited = true; /* compiling is not the script's memory */
	lua_pushcfunction(ws->ws_L, compile);
	lua_pushlightuserdata(ws->ws_L, ws);
	if (lua_pcall(ws->ws_L, 1, 0, 0) != LUA_OK) {
		ws->ws_broken = true;
		errcpy(ws->ws_err, lua_tostring(ws->ws_L, -1));
		lua_settop(ws->ws_L, 0);
		stats_compile_error();
		dfr_log_debug("waf, %s: code does not compile, worker %u (%s)", code->wc_dom_name,
		              worker_id, ws->ws_err);
	}
	ws->ws_mem_unlimited = false;
	return ws;
}

void
script_state_free(struct wstate *ws)
{
	if (ws == NULL)
		return;
	if (ws->ws_L != NULL) {
		lua_close(ws->ws_L);
		stats_states(-1);
	}
	code_unref(ws->ws_code);
	free(ws);
}

int
script_check_compiles(const char *code, size_t len, const char *name, char *err, size_t errlen)
{
	lua_State *L = luaL_newstate();
	char chunk[80];
	int rc = DFR_OK;

	if (L == NULL)
		return DFR_ENOMEM;
	snprintf(chunk, sizeof(chunk), "=%s", name);
	if (luaL_loadbufferx(L, code, len, chunk, "t") != LUA_OK) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		rc = DFR_EPARSE;
	}
	lua_close(L);
	return rc;
}

/* ---- one run ------------------------------------------------------------------------------ */

/* Copies the register _body (string or number) into the run's body. */
static void
take_body_register(lua_State *L, struct wrun *run, int env)
{
	size_t len;
	const char *s;

	lua_getfield(L, env, "_body");
	if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
		s = lua_tolstring(L, -1, &len);
		run->wn_body.b_len = 0;
		if (len > DFR_WAF_MAX_BODY)
			len = DFR_WAF_MAX_BODY;
		if (wbuf_append(&run->wn_body, s, len) != DFR_OK)
			luaL_error(L, "not enough memory");
	}
	lua_pop(L, 1);
}

/* Runs in protected mode: sets up the request's _ENV, calls the chunk, and reads the registers
 * when it returns. Leaves on the stack: blocked (boolean), status (integer or nil). */
static int
run_protected(lua_State *L)
{
	struct wstate *ws = lua_touserdata(L, 1);
	struct wrun *run = ws->ws_run;
	int env;

	lua_settop(L, 0);
	ngx_reset(L);
	request_reset(L);
	/* one _ENV table per state, emptied of what the last request left (its globals and
	 * registers) rather than made anew: a table less to allocate and collect per request */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->ws_env_ref);
	env = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, env) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, env); /* clearing a field while traversing is allowed */
	}
	lua_pushvalue(L, env);
	lua_setfield(L, env, "_G");
	lua_pushvalue(L, env);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_env_key);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ws->ws_fn_ref);
	sandbox_arm(ws);
	lua_call(L, 0, 0);
	sandbox_disarm(ws);

	lua_getfield(L, env, "_blocked");
	if (!lua_toboolean(L, -1)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	take_body_register(L, run, env);
	lua_pushboolean(L, 1);
	lua_getfield(L, env, "_status_code");
	if (lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TSTRING) {
		int isnum = 0;
		lua_Integer st = lua_tointegerx(L, -1, &isnum);
		lua_pop(L, 1);
		lua_pushinteger(L, isnum && st >= 100 && st <= 999 ? st : 403);
	} else {
		lua_pop(L, 1);
		lua_pushinteger(L, 403);
	}
	return 2;
}

static void
error_verdict(struct dfr_waf_rep *rep, enum dfr_waf_fail kind)
{
	memset(rep, 0, sizeof(*rep));
	rep->wv_action = DFR_WAF_ERROR;
	rep->wv_fail = (uint8_t)kind;
}

static bool
has_header(const struct wrun *run, const char *name)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < run->wn_nhdrs; i++)
		if (run->wn_hdrs[i].oh_name_len == n &&
		    strncasecmp(run->wn_hstore.b_data + run->wn_hdrs[i].oh_name_off, name, n) == 0)
			return true;
	return false;
}

/* Fills the verdict's headers and body from the run. */
static void
finish_verdict(struct wrun *run, struct dfr_waf_rep *rep, uint8_t action, int status)
{
	uint32_t n = 0;

	memset(rep, 0, sizeof(*rep));
	rep->wv_action = action;
	if (action == DFR_WAF_RESPOND) {
		rep->wv_status = (uint16_t)status;
		if (run->wn_body.b_len == 0 && status >= 400)
			(void)wbuf_append(&run->wn_body, BLOCKED_BODY, sizeof(BLOCKED_BODY) - 1);
		if (run->wn_body.b_len > 0 && !has_header(run, "Content-Type"))
			(void)ngx_out_header_add(run, "Content-Type", 12, "text/plain", 10);
		rep->wv_body.ws_ptr = run->wn_body.b_data;
		rep->wv_body.ws_len = (uint32_t)run->wn_body.b_len;
	}
	for (uint32_t i = 0; i < run->wn_nhdrs; i++) {
		const struct wout_hdr *h = &run->wn_hdrs[i];
		if (h->oh_name_len == 0)
			continue;
		run->wn_vhdrs[n].wh_name.ws_ptr = run->wn_hstore.b_data + h->oh_name_off;
		run->wn_vhdrs[n].wh_name.ws_len = h->oh_name_len;
		run->wn_vhdrs[n].wh_value.ws_ptr = run->wn_hstore.b_data + h->oh_val_off;
		run->wn_vhdrs[n].wh_value.ws_len = h->oh_val_len;
		n++;
	}
	rep->wv_headers = run->wn_vhdrs;
	rep->wv_nheaders = n;
}

/* The verdict of ngx.exit(st) / ngx.redirect. */
static void
exit_verdict(struct wrun *run, struct dfr_waf_rep *rep)
{
	int st = run->wn_exit_status;

	if (st == 0 || st == -5) {
		/* ngx.OK / ngx.DECLINED: the phase ends; output already made is the answer */
		if (run->wn_body.b_len > 0)
			finish_verdict(run, rep, DFR_WAF_RESPOND,
			               run->wn_status >= 100 ? run->wn_status : 200);
		else
			finish_verdict(run, rep, DFR_WAF_PASS, 0);
		return;
	}
	if (st < 0) { /* ngx.ERROR and friends end the request with an error */
		finish_verdict(run, rep, DFR_WAF_RESPOND, 500);
		return;
	}
	/* ngx.status = 403; ngx.say(...); ngx.exit(ngx.HTTP_OK): the status set wins */
	if (st == 200 && run->wn_status >= 100)
		st = run->wn_status;
	finish_verdict(run, rep, DFR_WAF_RESPOND, st);
}

static void
describe_error(lua_State *L, struct wrun *run)
{
	switch (lua_type(L, -1)) {
	case LUA_TSTRING:
	case LUA_TNUMBER:
		errcpy(run->wn_err, lua_tostring(L, -1));
		break;
	default:
		snprintf(run->wn_err, WAFD_ERRLEN, "(error object is a %s value)",
		         luaL_typename(L, -1));
	}
}

void
script_run(struct wstate *ws, struct wrun *run, struct dfr_waf_rep *rep)
{
	lua_State *L = ws->ws_L;
	int rc;

	if (ws->ws_code->wc_code == NULL) {
		finish_verdict(run, rep, DFR_WAF_PASS, 0);
		return;
	}
	if (ws->ws_broken) {
		errcpy(run->wn_err, ws->ws_err);
		error_verdict(rep, DFR_WAF_FAIL_SCRIPT);
		return;
	}
	ws->ws_run = run;
	ws->ws_runs++;
	lua_settop(L, 0);
	lua_pushcfunction(L, run_protected);
	lua_pushlightuserdata(L, ws);
	rc = lua_pcall(L, 1, 2, 0);
	sandbox_disarm(ws);

	if (ws->ws_mem_hit) {
		snprintf(run->wn_err, WAFD_ERRLEN, "memory cap of %zu bytes hit",
		         ws->ws_lim->wl_mem_cap);
		error_verdict(rep, DFR_WAF_FAIL_MEMORY);
	} else if (ws->ws_budget_hit) {
		error_verdict(rep, DFR_WAF_FAIL_BUDGET); /* wn_err set by the hook */
	} else if (run->wn_exited) {
		exit_verdict(run, rep);
	} else if (rc != LUA_OK) {
		describe_error(L, run);
		error_verdict(rep, rc == LUA_ERRMEM ? DFR_WAF_FAIL_MEMORY : DFR_WAF_FAIL_SCRIPT);
	} else if (lua_toboolean(L, 1)) {
		finish_verdict(run, rep, DFR_WAF_RESPOND, (int)lua_tointeger(L, 2));
	} else {
		finish_verdict(run, rep, DFR_WAF_PASS, 0);
	}
	lua_settop(L, 0);
	ws->ws_run = NULL;
	if (rep->wv_action == DFR_WAF_ERROR) {
		/* a failed run may have left garbage up to the cap: collect it now, and start a
		 * new state when that is not enough */
		ws->ws_mem_unlimited = true;
		lua_gc(L, LUA_GCCOLLECT);
		ws->ws_mem_unlimited = false;
		if (ws->ws_mem > ws->ws_lim->wl_mem_cap / 2)
			ws->ws_recycle = true;
	}
}
