/*
 * The sandbox: every way out named in the issue is refused (io, os beyond time, require,
 * package, debug, dofile, loadfile, binary chunks, __gc), an endless loop and a memory bomb
 * each end in their own error verdict whatever the script does to catch them, a runtime error
 * is a script error, and the state serves the next request normally afterwards.
 */
#include <unistd.h>

#include "wafd_test.h"

static void
check_refused(struct tcase *t, const char *expr)
{
	char code[512];

	snprintf(code, sizeof(code),
		 "local ok, v = pcall(function() return %s end)\n"
		 "if ok and v ~= nil then ngx.say('open') else ngx.say('closed') end ngx.exit(200)",
		 expr);
	is_str(t_eval(t, code), "closed\n", "refused: %s", expr);
}

static void
test_escapes(void)
{
	static const char *const refused[] = {
		"io",
		"io.open('/etc/passwd')",
		"os.execute('id')",
		"os.getenv('HOME')",
		"os.remove('/tmp/x')",
		"os.exit",
		"require",
		"require('io')",
		"package",
		"debug",
		"debug.getregistry()",
		"dofile",
		"dofile('/etc/passwd')",
		"loadfile",
		"loadfile('/etc/passwd')",
		"string.dump",
		"load(string.dump(function() end))",
		"load('\\27Lua\\84\\0')",
		"load(function() return 'return 1' end)",
		"collectgarbage('stop') and nil",
		"setmetatable({}, {__gc = function() while true do end end})",
		"getmetatable('').__index",
		"rawget(getmetatable(_ENV) or {}, '__index')",
		"warn",
		"module",
		"setfenv",
		"getfenv",
		"newproxy",
	};
	struct tcase t;

	t_init(&t, 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check_refused(&t, refused[i]);
	is_str(t_eval(&t, "ngx.say(type(os.time()), ' ', type(os.clock()), ' ', #os.date('%Y'),\n"
			  "  ' ', os.date('!%H', 0), ' ', type(os.date('*t').hour)) ngx.exit(200)"),
	       "number number 4 00 number\n", "os.time, os.clock, os.date work");
	is_str(t_eval(&t, "local f = load('return 1 + ...') ngx.say(f(2)) ngx.exit(200)"),
	       "3\n", "load of source text works");
	is_str(t_eval(&t, "local env = {x = 5} ngx.say(load('return x', 'c', 't', env)())\n"
			  "ngx.exit(200)"),
	       "5\n", "load with an explicit env");
	is_str(t_eval(&t, "ngx.say(string.format('%5.1f', 1.25), ('x'):rep(3), #string.rep('a', 10),\n"
			  "  table.concat({1, 2}, ','), math.floor(2.5), utf8.char(72),\n"
			  "  coroutine.wrap(function() coroutine.yield(9) end)()) ngx.exit(200)"),
	       "  1.2xxx101,22H9\n", "string, table, math, utf8, coroutine work");
	is_str(t_eval(&t, "local n = 0 for k in pairs(string) do n = n + 1 end\n"
			  "ngx.say(n > 10) ngx.exit(200)"),
	       "true\n", "pairs over a read-only library table");
	is_str(t_eval(&t, "local t = setmetatable({}, {__index = function() return 1 end})\n"
			  "ngx.say(t.x) ngx.exit(200)"),
	       "1\n", "setmetatable without __gc works");
	t_fini(&t);
}

static void
expect_fail(struct tcase *t, const char *code, int kind, const char *what)
{
	t_code(t, code);
	t_req(t, "GET", "/", "192.0.2.1");
	t_run(t);
	/* kind -1: a script error or the memory cap, whichever the state meets first */
	ok(t->rep.wv_action == DFR_WAF_ERROR &&
		   (t->rep.wv_fail == kind ||
		    (kind == -1 && (t->rep.wv_fail == DFR_WAF_FAIL_SCRIPT ||
				    t->rep.wv_fail == DFR_WAF_FAIL_MEMORY))),
	   "%s: error %s", what, kind == -1 ? "script or memory" : dfr_waf_fail_name((unsigned)kind));
	/* the same state serves the next request: a block on /next */
	t->req.wr_target = dfr_waf_str_c("/next");
	t_run(t);
	(void)what;
}

static void
test_limits(void)
{
	struct tcase t;
	const char *after = "\nif ngx.var.uri == '/next' then ngx.exit(403) end ";
	char code[1024];
	static const struct {
		const char *code;
		int kind;
		const char *what;
	} cases[] = {
		{"if ngx.var.uri ~= '/next' then while true do end end", DFR_WAF_FAIL_BUDGET,
		 "endless loop"},
		{"if ngx.var.uri ~= '/next' then\n"
		 "  while true do pcall(function() while true do end end) end end",
		 DFR_WAF_FAIL_BUDGET, "endless loop under pcall"},
		{"if ngx.var.uri ~= '/next' then\n"
		 "  while true do local co = coroutine.create(function() while true do end end)\n"
		 "    coroutine.resume(co) end end",
		 DFR_WAF_FAIL_BUDGET, "endless loop in coroutines"},
		{"if ngx.var.uri ~= '/next' then\n"
		 "  while true do xpcall(function() while true do end end,\n"
		 "    function() while true do end end) end end",
		 DFR_WAF_FAIL_BUDGET, "endless loop in an error handler"},
		{"if ngx.var.uri ~= '/next' then local function f() return f() + 1 end f() end",
		 -1, "stack overflow"},
		{"if ngx.var.uri ~= '/next' then local t = {} for i = 1, 1e9 do\n"
		 "  t[i] = string.rep('x', 1000) .. i end end",
		 DFR_WAF_FAIL_MEMORY, "memory bomb"},
		{"if ngx.var.uri ~= '/next' then local s = string.rep('x', 1e9) end",
		 DFR_WAF_FAIL_MEMORY, "one huge string"},
		{"if ngx.var.uri ~= '/next' then local t = {}\n"
		 "  for i = 1, 1e9 do pcall(function() t[#t + 1] = string.rep('y', 4096) .. i end)\n"
		 "  end end",
		 DFR_WAF_FAIL_MEMORY, "memory bomb under pcall"},
		{"if ngx.var.uri ~= '/next' then error('boom') end", DFR_WAF_FAIL_SCRIPT,
		 "runtime error"},
		{"if ngx.var.uri ~= '/next' then local x = nil; x.y = 1 end", DFR_WAF_FAIL_SCRIPT,
		 "index nil"},
		{"if ngx.var.uri ~= '/next' then error({}) end", DFR_WAF_FAIL_SCRIPT,
		 "error with a table"},
		{"if ngx.var.uri ~= '/next' then error(setmetatable({}, {__tostring = function()\n"
		 "  while true do end end})) end",
		 DFR_WAF_FAIL_SCRIPT, "error object with a looping __tostring"},
		{"if ngx.var.uri ~= '/next' then while true do ngx.say(string.rep('z', 65536)) end end",
		 DFR_WAF_FAIL_SCRIPT, "body larger than 1 MiB"},
	};

	t_init(&t, 0);
	t.lim.wl_mem_cap = 4u * 1024 * 1024;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(code, sizeof(code), "%s%s", cases[i].code, after);
		expect_fail(&t, code, cases[i].kind, cases[i].what);
		ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403,
		   "%s: the next request on that domain is judged normally", cases[i].what);
	}
	ok(strstr(t.jg.jg_run.wn_err, "") != NULL, "error text kept");

	/* the deadline alone (budget large) */
	t.lim.wl_budget = 1ull << 60;
	t.lim.wl_timeout_ns = 50u * 1000 * 1000;
	expect_fail(&t, "if ngx.var.uri ~= '/next' then while true do end end", DFR_WAF_FAIL_BUDGET,
		    "deadline");
	t_fini(&t);
}

/* Budgets from WAFD_BUDGET_ASYNC_MIN: runs start without the count hook and the watchdog arms it
 * after a millisecond; every endless loop must still end as a budget failure, coroutines
 * included (they get the hook when created), and coroutine.wrap must keep its meaning. */
static void
test_watchdog(void)
{
	static const struct {
		const char *code;
		const char *what;
	} loops[] = {
		{"while true do end", "endless loop, budget armed by the watchdog"},
		{"while true do pcall(function() while true do end end) end",
		 "endless loop under pcall (watchdog)"},
		{"local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
		 "endless loop in a coroutine from create (watchdog)"},
		{"coroutine.wrap(function() while true do end end)()",
		 "endless loop in a coroutine from wrap (watchdog)"},
		{"local co = coroutine.wrap(function() while true do end end)\n"
		 "while true do pcall(co) end",
		 "endless loop resuming a wrapped coroutine under pcall (watchdog)"},
		{"xpcall(function() while true do end end, function() while true do end end)",
		 "endless loop in an error handler (watchdog)"},
	};
	struct tcase t;
	char code[512];
	uint64_t t0;

	t_init(&t, 0);
	t.lim.wl_budget = WAFD_BUDGET_ASYNC_MIN;
	for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
		snprintf(code, sizeof(code),
		         "if ngx.var.uri ~= '/next' then %s end\n"
		         "if ngx.var.uri == '/next' then ngx.exit(403) end",
		         loops[i].code);
		t0 = sandbox_now_ns();
		expect_fail(&t, code, DFR_WAF_FAIL_BUDGET, loops[i].what);
		ok(sandbox_now_ns() - t0 < t.lim.wl_timeout_ns, "%s: stopped before the deadline",
		   loops[i].what);
		ok(t.rep.wv_action == DFR_WAF_RESPOND && t.rep.wv_status == 403,
		   "%s: the next request is judged normally", loops[i].what);
	}
	/* a short run is not cut, and wrap keeps yields, results and errors */
	t_code(&t, "local f = coroutine.wrap(function(a) local b = coroutine.yield(a + 1)\n"
	           "  return b * 2 end)\n"
	           "local g = coroutine.wrap(function() error({code = 7}) end)\n"
	           "local ok, e = pcall(g)\n"
	           "local n = 0 for i = 1, 100000 do n = n + i end\n"
	           "ngx.header['X-R'] = f(1) .. ',' .. f(5) .. ',' .. tostring(ok) .. ',' ..\n"
	           "  e.code .. ',' .. n");
	t_req(&t, "GET", "/", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_PASS && t.rep.wv_nheaders == 1 &&
	           t.rep.wv_headers[0].wh_value.ws_len == 23 &&
	           memcmp(t.rep.wv_headers[0].wh_value.ws_ptr, "2,10,false,7,5000050000", 23) == 0,
	   "coroutine.wrap: yields and results pass, an error object goes through as is");
	t_fini(&t);

	/* below WAFD_BUDGET_ASYNC_MIN the count is exact from the first instruction */
	t_init(&t, 0);
	t.lim.wl_budget = 5000;
	expect_fail(&t, "if ngx.var.uri ~= '/next' then for i = 1, 100000 do end end\n"
	                "if ngx.var.uri == '/next' then ngx.exit(403) end",
	            DFR_WAF_FAIL_BUDGET, "a small budget counts a short run too");
	t_fini(&t);
}

static void
test_syntax_error(void)
{
	struct tcase t;
	char err[256];

	t_init(&t, 0);
	t_code(&t, "-- missing 'end' on purpose\nif ngx.var.uri == \"/x\" then\n"
		   "  return ngx.exit(403)\n");
	t_req(&t, "GET", "/x", "192.0.2.1");
	t_run(&t);
	ok(t.rep.wv_action == DFR_WAF_ERROR && t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT,
	   "a syntax error: error script");
	ok(strstr(t.jg.jg_run.wn_err, "'end' expected") != NULL, "the reason names the error (%s)",
	   t.jg.jg_run.wn_err);
	t_run(&t);
	ok(t.rep.wv_fail == DFR_WAF_FAIL_SCRIPT && t.jg.jg_states[0]->ws_broken,
	   "again without recompiling");
	is_int(script_check_compiles("if x then", 9, "d", err, sizeof(err)), DFR_EPARSE,
	       "script_check_compiles refuses it");
	is_int(script_check_compiles("x = 1", 5, "d", err, sizeof(err)), DFR_OK,
	       "and accepts good code");
	t_fini(&t);
}

int
main(void)
{
	plan_lazy();
	test_escapes();
	test_limits();
	test_watchdog();
	test_syntax_error();
	shdict_registry_clear();
	return done_testing();
}
