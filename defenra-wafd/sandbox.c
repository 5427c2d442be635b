/*
 * The Lua sandbox: a state with a capped allocator, an instruction budget and a deadline, and a
 * standard library cut down to what cannot reach files, processes, the network or other
 * tenants (cf. HAProxy hlua_alloc, lua_sethook(..., LUA_MASKCOUNT, n)).
 *
 * What a script gets: the base library without dofile, loadfile, print (it logs instead),
 * warn, with xpcall running its handler after the unwinding, load accepting source text only
 * (binary chunks are refused: bytecode can break the VM), rawset refusing the library tables,
 * setmetatable refusing __gc (finalizers run with hooks off, so an endless __gc could not be
 * stopped), collectgarbage limited to "count"; string (without dump), table, math, utf8, coroutine;
 * os.time, os.clock and os.date only; the 5.1 shims unpack, loadstring (text), table.getn,
 * table.maxn, math.pow. No io, os.execute, require, package or debug.
 *
 * Isolation between requests is script.c's job (a fresh _ENV per request); this file makes the
 * shared parts read-only so that a script cannot leave anything behind in them: every library
 * table a script can reach is a read-only proxy, and the string metatable is hidden.
 *
 * Not covered: one C call that runs long on its own (a pathological string pattern over a large
 * subject) is not interrupted; the deadline catches it at the next instruction.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

const char sandbox_env_key = 'E';
const char sandbox_exit_key = 'X';
static const char frozen_key = 'F';

uint64_t
sandbox_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct wstate *
sandbox_ws(lua_State *L)
{
	return *(struct wstate **)lua_getextraspace(L);
}

/* The allocator of every state: counts bytes and refuses growth past the cap. Frees and
 * shrinks always succeed (Lua requires it). */
static void *
capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct wstate *ws = ud;
	void *p;

	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		ws->ws_mem -= osize;
		return NULL;
	}
	if (nsize > osize && !ws->ws_mem_unlimited &&
	    (nsize - osize > ws->ws_lim->wl_mem_cap ||
	     ws->ws_mem + (nsize - osize) > ws->ws_lim->wl_mem_cap)) {
		ws->ws_mem_hit = true;
		return NULL;
	}
	if ((p = realloc(ptr, nsize)) == NULL)
		return NULL;
	ws->ws_mem = ws->ws_mem - osize + nsize;
	if (ws->ws_mem > ws->ws_mem_peak)
		ws->ws_mem_peak = ws->ws_mem;
	return p;
}

/* ---- budget ------------------------------------------------------------------------------- */

static void
budget_hook(lua_State *L, lua_Debug *ar)
{
	struct wstate *ws = sandbox_ws(L);

	(void)ar;
	if (ws->ws_stopping)
		goto stop;
	ws->ws_used += WAFD_HOOK_STEP;
	if (ws->ws_used >= ws->ws_lim->wl_budget) {
		ws->ws_budget_hit = true;
		snprintf(ws->ws_run != NULL ? ws->ws_run->wn_err : ws->ws_err, WAFD_ERRLEN,
		         "instruction budget of %llu exhausted",
		         (unsigned long long)ws->ws_lim->wl_budget);
		sandbox_stop(ws, L);
		goto stop;
	}
	if (sandbox_now_ns() > ws->ws_deadline_ns) {
		ws->ws_budget_hit = true;
		snprintf(ws->ws_run != NULL ? ws->ws_run->wn_err : ws->ws_err, WAFD_ERRLEN,
		         "time limit of %llu ms exceeded",
		         (unsigned long long)(ws->ws_lim->wl_timeout_ns / 1000000u));
		sandbox_stop(ws, L);
		goto stop;
	}
	return;
stop:
	/* The same error value as ngx.exit: a pcall in the script may catch it, but the next
	 * instruction raises it again, so it reaches the top. */
	lua_pushlightuserdata(L, (void *)&sandbox_exit_key);
	lua_error(L);
}

/* ---- the watchdog: the budget's hook only for runs that last -------------------------------
 *
 * A count hook costs on every VM instruction, not only when it fires: Lua calls its tracing on
 * each one while the hook is set. On the typical rule set that was 1.3 us of a 4.3 us verdict
 * (docs/performance-waf.md). So with a budget of WAFD_BUDGET_ASYNC_MIN or more a run starts
 * without a hook. Each thread that runs scripts has a timer on its own CPU time
 * (CLOCK_THREAD_CPUTIME_ID) that signals it every WATCH_TICK_NS of CPU it uses: never while it
 * waits, so an idle wafd is not woken and nothing else is scheduled in between. The handler
 * sets the hook when the run in progress is older than WATCH_ARM_NS (lua_sethook may be called
 * from a signal handler: lua.c does it on SIGINT). From then on the run is counted and timed as
 * before; what ran in its first one to two milliseconds is not counted. Coroutines get the hook
 * when they are created (co_create), so an endless loop in one is counted from its first
 * instruction. A smaller budget, or a thread whose timer could not be made, arms the hook at
 * once. The timer lives as long as its thread (wafd's workers: the process). */

#define WATCH_TICK_NS 1000000 /* a signal per millisecond of the thread's CPU */
#define WATCH_ARM_NS  1000000 /* arms runs older than 1 ms */

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static bool watch_handler_set;
static __thread int tl_timer; /* 0 none yet, 1 ticking, -1 could not be made */
static __thread volatile uint64_t tl_start_ns;
static __thread struct wstate *volatile tl_unhooked; /* the run going on here without a hook */

static void
watch_signalled(int sig)
{
	struct wstate *ws = tl_unhooked;
	int saved = errno;

	(void)sig;
	/* stopping: the hook already fires on every instruction */
	if (ws != NULL && !ws->ws_stopping && sandbox_now_ns() - tl_start_ns >= WATCH_ARM_NS) {
		tl_unhooked = NULL;
		lua_sethook(ws->ws_L, budget_hook, LUA_MASKCOUNT, WAFD_HOOK_STEP);
	}
	errno = saved;
}

static void
watch_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_signalled;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	watch_handler_set = sigaction(SIGRTMIN + WAFD_WATCH_SIGNAL, &sa, NULL) == 0;
}

/* This thread's CPU-time timer, made on its first run: true when it ticks. */
static bool
watch_timer(void)
{
	struct sigevent sev;
	struct itimerspec its = {{0, WATCH_TICK_NS}, {0, WATCH_TICK_NS}};
	timer_t timer;

	if (tl_timer != 0)
		return tl_timer > 0;
	pthread_once(&watch_once, watch_handler);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGRTMIN + WAFD_WATCH_SIGNAL;
	sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	tl_timer = -1;
	if (!watch_handler_set || timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &timer) != 0)
		goto failed;
	if (timer_settime(timer, 0, &its, NULL) != 0) {
		timer_delete(timer);
		goto failed;
	}
	tl_timer = 1;
	return true;
failed:
	dfr_log_warn("waf, no CPU-time timer for this thread (%s): its runs count every "
	             "instruction (slower)",
	             strerror(errno));
	return false;
}

void
sandbox_arm(struct wstate *ws)
{
	uint64_t now = sandbox_now_ns();

	ws->ws_used = 0;
	ws->ws_budget_hit = false;
	ws->ws_stopping = false;
	ws->ws_mem_hit = false;
	ws->ws_deadline_ns = now + ws->ws_lim->wl_timeout_ns;
	if (ws->ws_lim->wl_budget < WAFD_BUDGET_ASYNC_MIN || !watch_timer()) {
		lua_sethook(ws->ws_L, budget_hook, LUA_MASKCOUNT, WAFD_HOOK_STEP);
		return;
	}
	tl_start_ns = now;
	atomic_signal_fence(memory_order_seq_cst);
	tl_unhooked = ws;
}

void
sandbox_disarm(struct wstate *ws)
{
	tl_unhooked = NULL;
	/* a signal handled before this line set a hook that goes now; after it, none is set */
	atomic_signal_fence(memory_order_seq_cst);
	lua_sethook(ws->ws_L, NULL, 0, 0);
}

/* coroutine.create and coroutine.wrap with the budget's hook on the new coroutine. */
static int
co_create(lua_State *L)
{
	lua_State *co;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	lua_sethook(co, budget_hook, LUA_MASKCOUNT, WAFD_HOOK_STEP);
	return 1;
}

static int
co_wrapped(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int narg = lua_gettop(L), nres, st;

	if (!lua_checkstack(co, narg))
		return luaL_error(L, "too many arguments to resume");
	lua_xmove(L, co, narg);
	st = lua_resume(co, L, narg, &nres);
	if (st == LUA_OK || st == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1)) {
			lua_pop(co, nres);
			return luaL_error(L, "too many results to resume");
		}
		lua_xmove(co, L, nres);
		return nres;
	}
	lua_xmove(co, L, 1); /* the error, as is: the budget's stop value must go through */
	return lua_error(L);
}

static int
co_wrap(lua_State *L)
{
	co_create(L);
	lua_pushcclosure(L, co_wrapped, 1);
	return 1;
}

void
sandbox_stop(struct wstate *ws, lua_State *L)
{
	ws->ws_stopping = true;
	/* Every instruction of the main thread and of the current coroutine now stops: a
	 * coroutine.resume or pcall that swallowed the error returns into code that stops. */
	lua_sethook(ws->ws_L, budget_hook, LUA_MASKCOUNT, 1);
	if (L != ws->ws_L)
		lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
}

/* ---- read-only tables --------------------------------------------------------------------- */

static int
frozen_newindex(lua_State *L)
{
	return luaL_error(L, "attempt to modify a read-only table");
}

static int
frozen_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	if (lua_next(L, 1))
		return 2;
	lua_pushnil(L);
	return 1;
}

/* pairs() over a proxy walks the real table. */
static int
frozen_pairs(lua_State *L)
{
	lua_pushcfunction(L, frozen_next);
	if (!lua_getmetatable(L, 1))
		return luaL_error(L, "not a read-only table");
	lua_getfield(L, -1, "__index");
	lua_remove(L, -2);
	lua_pushnil(L);
	return 3;
}

void
sandbox_freeze(lua_State *L)
{
	int real = lua_gettop(L);

	lua_newtable(L); /* proxy */
	lua_createtable(L, 0, 4);
	lua_pushvalue(L, real);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, frozen_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, frozen_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	/* remember it, so rawset refuses it */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_replace(L, real);
}

void
sandbox_mark_readonly(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, idx);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

void
sandbox_proxy(lua_State *L, lua_CFunction index, lua_CFunction newindex)
{
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_pushcfunction(L, index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, newindex != NULL ? newindex : frozen_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	sandbox_mark_readonly(L, -1);
}

/* ---- replaced base functions -------------------------------------------------------------- */

static int
safe_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_pushvalue(L, 1);
	if (lua_rawget(L, -2) != LUA_TNIL)
		return luaL_error(L, "attempt to modify a read-only table");
	lua_pop(L, 2);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

static int
safe_setmetatable(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "__gc metamethods are not allowed");
		lua_pop(L, 1);
	} else if (!lua_isnil(L, 2)) {
		return luaL_typeerror(L, 2, "nil or table");
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): source text only; the default environment is the
 * current request's, never the shared globals. */
static int
safe_load(lua_State *L)
{
	size_t len;
	const char *s;
	const char *name;
	int status, env = lua_gettop(L) >= 4 ? 4 : 0;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only source text is accepted here");
	s = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, "=(load)");
	if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
		lua_pushnil(L);
		lua_pushliteral(L, "attempt to load a binary chunk");
		return 2;
	}
	/* parsing is not counted in instructions: charge it by size */
	sandbox_ws(L)->ws_used += len / 16;
	status = luaL_loadbufferx(L, s, len, name, "t");
	if (status != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env != 0)
		lua_pushvalue(L, env);
	else
		lua_rawgetp(L, LUA_REGISTRYINDEX, &sandbox_env_key);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return 1;
}

/* xpcall(f, msgh, ...): the message handler runs after the unwinding, as an ordinary call.
 * Lua runs a handler before unwinding, and when the error came from the budget hook, hooks are
 * still off there: an endless handler could not be stopped. The handler cannot inspect the
 * failed frames this way, but without the debug library it could not anyway. */
static int
safe_xpcall(lua_State *L)
{
	int n = lua_gettop(L), status;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 1);
	for (int i = 3; i <= n; i++)
		lua_pushvalue(L, i);
	status = lua_pcall(L, n - 2 < 0 ? 0 : n - 2, LUA_MULTRET, 0);
	if (status == LUA_OK) {
		lua_pushboolean(L, 1);
		lua_insert(L, n + 1);
		return lua_gettop(L) - n;
	}
	if (sandbox_ws(L)->ws_stopping)
		return lua_error(L); /* ngx.exit or the budget: no handler, keep unwinding */
	lua_pushvalue(L, 2);
	lua_insert(L, -2);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		if (sandbox_ws(L)->ws_stopping)
			return lua_error(L);
		lua_pop(L, 1);
		lua_pushliteral(L, "error in error handling");
	}
	lua_pushboolean(L, 0);
	lua_insert(L, -2);
	return 2;
}

static int
safe_loadstring(lua_State *L)
{
	lua_settop(L, 2);
	return safe_load(L);
}

static int
safe_print(lua_State *L)
{
	struct wstate *ws = sandbox_ws(L);
	luaL_Buffer b;
	int n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
		if (i < n)
			luaL_addchar(&b, '\t');
	}
	luaL_pushresult(&b);
	if (stats_log_allowed())
		dfr_log_notice("waf, %s: %s", ws->ws_code->wc_dom_name, lua_tostring(L, -1));
	return 0;
}

static int
safe_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");

	if (strcmp(opt, "count") == 0) {
		int k = lua_gc(L, LUA_GCCOUNT, 0);
		int b = lua_gc(L, LUA_GCCOUNTB, 0);
		lua_pushnumber(L, (lua_Number)k + ((lua_Number)b / 1024));
		return 1;
	}
	lua_pushinteger(L, 0);
	return 1;
}

static int
shim_getn(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushinteger(L, (lua_Integer)luaL_len(L, 1));
	return 1;
}

static int
shim_maxn(lua_State *L)
{
	lua_Number max = 0;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TNUMBER) {
			lua_Number v = lua_tonumber(L, -1);
			if (v > max)
				max = v;
		}
	}
	lua_pushnumber(L, max);
	return 1;
}

static int
shim_pow(lua_State *L)
{
	lua_Number x = luaL_checknumber(L, 1), y = luaL_checknumber(L, 2);

	lua_pushnumber(L, x == 0 && y == 0 ? 1 : pow(x, y));
	return 1;
}

/* Opens library `open` into a table left on the stack, without touching package.loaded. */
static void
open_lib(lua_State *L, lua_CFunction open)
{
	lua_pushcfunction(L, open);
	lua_call(L, 0, 1);
}

/* Copies the fields `names` of the table at -1 into a new table, replacing it. */
static void
keep_fields(lua_State *L, const char *const *names)
{
	int src = lua_gettop(L);

	lua_newtable(L);
	for (size_t i = 0; names[i] != NULL; i++) {
		lua_getfield(L, src, names[i]);
		lua_setfield(L, -2, names[i]);
	}
	lua_replace(L, src);
}

static int
build(lua_State *L)
{
	static const char *const os_keep[] = {"time", "clock", "date", NULL};
	static const char *const base_drop[] = {"dofile", "loadfile", "warn", NULL};

	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &frozen_key);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_env_key);

	/* base: into the globals table */
	luaL_requiref(L, "_G", luaopen_base, 1);
	lua_pop(L, 1);
	for (size_t i = 0; base_drop[i] != NULL; i++) {
		lua_pushnil(L);
		lua_setglobal(L, base_drop[i]);
	}
	lua_register(L, "print", safe_print);
	lua_register(L, "load", safe_load);
	lua_register(L, "loadstring", safe_loadstring);
	lua_register(L, "rawset", safe_rawset);
	lua_register(L, "xpcall", safe_xpcall);
	lua_register(L, "setmetatable", safe_setmetatable);
	lua_register(L, "collectgarbage", safe_collectgarbage);

	/* string: the string metatable keeps the real table for methods, hidden from scripts */
	open_lib(L, luaopen_string);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);
	sandbox_freeze(L);
	lua_setglobal(L, "string");

	open_lib(L, luaopen_table);
	lua_getfield(L, -1, "unpack");
	lua_setglobal(L, "unpack");
	lua_pushcfunction(L, shim_getn);
	lua_setfield(L, -2, "getn");
	lua_pushcfunction(L, shim_maxn);
	lua_setfield(L, -2, "maxn");
	sandbox_freeze(L);
	lua_setglobal(L, "table");

	open_lib(L, luaopen_math);
	lua_pushcfunction(L, shim_pow);
	lua_setfield(L, -2, "pow");
	sandbox_freeze(L);
	lua_setglobal(L, "math");

	open_lib(L, luaopen_utf8);
	sandbox_freeze(L);
	lua_setglobal(L, "utf8");

	open_lib(L, luaopen_coroutine);
	lua_pushcfunction(L, co_create);
	lua_setfield(L, -2, "create");
	lua_pushcfunction(L, co_wrap);
	lua_setfield(L, -2, "wrap");
	sandbox_freeze(L);
	lua_setglobal(L, "coroutine");

	open_lib(L, luaopen_os);
	keep_fields(L, os_keep);
	sandbox_freeze(L);
	lua_setglobal(L, "os");

	ngx_open(L);
	request_open(L);
	lua_pushnil(L);
	lua_setglobal(L, "_G"); /* each request's _ENV gets its own _G */
	return 0;
}

lua_State *
sandbox_new(struct wstate *ws)
{
	lua_State *L;

	ws->ws_mem_unlimited = true;
	if ((L = lua_newstate(capped_alloc, ws)) == NULL)
		return NULL;
	*(struct wstate **)lua_getextraspace(L) = ws;
	lua_pushcfunction(L, build);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		dfr_log_err("waf, sandbox set-up failed (%s)", lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	/* Short-lived garbage (one _ENV per request) suits the generational collector. */
	lua_gc(L, LUA_GCGEN, 0, 0);
	ws->ws_mem_unlimited = false;
	return L;
}
