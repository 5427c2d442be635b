/*
 * ngx.shared dicts: every method from Lua, TTLs, the byte bound with LRU eviction, sizes from
 * "-- lua_shared_dict" lines, per-domain separation, and a rate limit that holds across
 * workers (two judges, and threads hammering one counter).
 */
#include <pthread.h>
#include <unistd.h>

#include "wafd_test.h"

static void
test_methods(void)
{
	struct tcase t;

	t_init(&t, 0);
	is_str(t_eval(&t,
		      "local d = ngx.shared.cache\n"
		      "d:flush_all()\n"
		      "ngx.say(tostring(d:get('k')))\n"
		      "ngx.say(tostring(d:set('k', 'v')), ' ', d:get('k'))\n"
		      "ngx.say(tostring(d:add('k', 'w')), ' ', (select(2, d:add('k', 'w'))))\n"
		      "ngx.say(tostring(d:replace('k', 12)), ' ', d:get('k'), ' ', math.type(d:get('k')))\n"
		      "ngx.say(tostring(d:replace('nope', 1)), ' ', (select(2, d:replace('nope', 1))))\n"
		      "ngx.say(d:incr('k', 3), ' ', (d:incr('k', -0.5)))\n"
		      "ngx.say(tostring(d:incr('new', 1)), ' ', (select(2, d:incr('new', 1))))\n"
		      "ngx.say(d:incr('new', 1, 10), ' ', (d:incr('new', 1, 10)))\n"
		      "d:set('s', 'str') ngx.say(tostring(d:incr('s', 1)), ' ', (select(2, d:incr('s', 1))))\n"
		      "d:set('b', false) ngx.say(tostring(d:get('b')))\n"
		      "d:set('f', 'x', 0, 7) ngx.say((select(2, d:get('f'))))\n"
		      "d:delete('b') ngx.say(tostring(d:get('b')))\n"
		      "ngx.say(d:ttl('k'), ' ', tostring(d:ttl('missing')))\n"
		      "d:set('t', 1, 100) local ttl = d:ttl('t') ngx.say(ttl > 99 and ttl <= 100)\n"
		      "ngx.say(tostring(d:expire('t', 5)), ' ', d:ttl('t') <= 5)\n"
		      "ngx.say(tostring(d:expire('zz', 5)))\n"
		      "ngx.say(#d:get_keys(), ' ', #d:get_keys(2))\n"
		      "ngx.say(d:capacity(), ' ', d:free_space() < d:capacity())\n"
		      "ngx.say((select(2, d:get(nil))), ' ', (select(2, d:set('', 1))), ' ',\n"
		      "  (select(2, d:set('x', {}))))\n"
		      "d:set(5, 'num key') ngx.say(d:get('5'))\n"
		      "d:flush_all() ngx.say(#d:get_keys(0))\n"
		      "ngx.exit(200)"),
	       "nil\n"
	       "true v\n"
	       "false exists\n"
	       "true 12 integer\n"
	       "false not found\n"
	       "15 14.5\n"
	       "nil not found\n"
	       "11 12\n"
	       "nil not a number\n"
	       "false\n"
	       "7\n"
	       "nil\n"
	       "0 nil\n"
	       "true\n"
	       "true true\n"
	       "nil\n"
	       "5 2\n"
	       "1048576 true\n"
	       "nil key empty key bad value type\n"
	       "num key\n"
	       "0\n",
	       "dict methods");
	t_fini(&t);
}

static void
test_ttl_and_bound(void)
{
	struct shdict *d = shdict_open("ttl-dom", "x", 4096);
	struct shval v = {.sv_type = SHV_NUMBER, .sv_num = 1}, out;
	struct wbuf buf = {0};
	bool forcible = false;
	char key[32];
	double n;
	int live = 0;

	ok(d != NULL, "dict opened");
	is_int(shdict_set(d, "a", 1, &v, 0.05, SHD_SET, &forcible), DFR_OK, "set with ttl 50 ms");
	is_int(shdict_get(d, "a", 1, &out, &buf), DFR_OK, "present before the ttl");
	usleep(80 * 1000);
	is_int(shdict_get(d, "a", 1, &out, &buf), DFR_ENOTFOUND, "gone after the ttl");
	is_int(shdict_incr(d, "c", 1, 1, true, 0, 0.05, &n, &forcible), DFR_OK, "incr with init ttl");
	is_int(shdict_incr(d, "c", 1, 1, true, 0, 0.05, &n, &forcible), DFR_OK, "incr again");
	ok(n == 2, "counted 2");
	usleep(80 * 1000);
	is_int(shdict_incr(d, "c", 1, 1, true, 0, 0.05, &n, &forcible), DFR_OK, "incr after expiry");
	ok(n == 1, "the counter restarted: a per-minute limit is not a lifetime ban");

	/* the bound: 4096 bytes hold a few dozen entries; older ones are evicted */
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		(void)shdict_set(d, key, strlen(key), &v, 0, SHD_SET, &forcible);
	}
	ok(forcible, "stores past the bound evict");
	ok(shdict_capacity(d) - shdict_free_space(d) <= 4096, "bytes used within the bound");
	is_int(shdict_get(d, "key499", 6, &out, &buf), DFR_OK, "the newest entry is there");
	is_int(shdict_get(d, "key0", 4, &out, &buf), DFR_ENOTFOUND, "the oldest was evicted");
	for (int i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		live += shdict_get(d, key, strlen(key), &out, &buf) == DFR_OK;
	}
	ok(live > 10 && live < 100, "a bounded number of entries live (%d)", live);
	/* LRU, not FIFO: touch an old one, then store more */
	(void)shdict_get(d, "key480", 6, &out, &buf);
	for (int i = 500; i < 500 + live - 2; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		(void)shdict_set(d, key, strlen(key), &v, 0, SHD_SET, &forcible);
	}
	is_int(shdict_get(d, "key480", 6, &out, &buf), DFR_OK, "a recently read entry survives");
	is_int(shdict_get(d, "key481", 6, &out, &buf), DFR_ENOTFOUND, "its unread neighbour does not");
	{
		char big[8192];
		struct shval bv = {.sv_type = SHV_STRING, .sv_str = big, .sv_len = sizeof(big)};
		memset(big, 'b', sizeof(big));
		is_int(shdict_set(d, "big", 3, &bv, 0, SHD_SET, &forcible), DFR_ENOMEM,
		       "a value larger than the dict: no memory");
	}
	(void)shdict_set(d, "s1", 2, &v, 0, SHD_SET, &forcible);
	is_int(shdict_set(d, "s2", 2, &v, 0, SHD_SAFE_SET, &forcible), DFR_ENOMEM,
	       "safe_set on a full dict refuses instead of evicting");
	shdict_unref(d);
	wbuf_free(&buf);
}

static void
test_sizes_and_domains(void)
{
	struct tcase t;

	shdict_registry_clear();
	t_init(&t, 0);
	is_str(t_eval(&t, "-- lua_shared_dict limits 64k\n"
			  "ngx.say(ngx.shared.limits:capacity(), ' ', ngx.shared.other:capacity())\n"
			  "ngx.exit(200)"),
	       "65536 1048576\n", "size from a lua_shared_dict line, default otherwise");
	is_str(t_eval(&t, "local n = 0 for i = 1, 40 do if ngx.shared['d' .. i] then n = n + 1 end end\n"
			  "ngx.say(n) ngx.exit(200)"),
	       "14\n", "at most 16 dicts per domain (2 opened before)");
	t_fini(&t);
	shdict_registry_clear();
}

static void
test_directives(void)
{
	const char *code = "-- lua_shared_dict a 512k\n"
			   "  --lua_shared_dict b 1048576\n"
			   "-- lua_shared_dict c 0\n"
			   "-- lua_shared_dict d 999m\n"
			   "-- lua_shared_dict e 2M trailing words\n"
			   "x = 1 -- lua_shared_dict f 1m (not at the start of a line)\n";
	struct wgen *g = code_gen_single("id", "dom", code, strlen(code), 1);
	struct wcode *c = g->wg_codes[0];

	is_int((long long)code_dict_size(c, "a"), 512 * 1024, "512k");
	is_int((long long)code_dict_size(c, "b"), 1048576, "bytes, no space after --");
	is_int((long long)code_dict_size(c, "c"), 0, "size 0 ignored");
	is_int((long long)code_dict_size(c, "d"), 0, "over 256m ignored");
	is_int((long long)code_dict_size(c, "e"), 2 * 1024 * 1024, "2M");
	is_int((long long)code_dict_size(c, "f"), 0, "a directive must start its line");
	is_int((long long)code_dict_size(c, "zz"), 0, "unknown dict: 0");
	code_gen_unref(g);
}

static const char *rate_code =
	"local key = 'rl:' .. ngx.var.remote_addr\n"
	"local n, err = ngx.shared.cache:incr(key, 1, 0, 60)\n"
	"if n > 5 then return ngx.exit(429) end";

/* Two workers (judges) share the domain's dict: the limit counts both. */
static void
test_rate_limit_across_workers(void)
{
	struct tcase a, b;
	int blocked = 0, passed = 0;

	t_init(&a, 0);
	t_init(&b, 1);
	t_code(&a, rate_code);
	t_code(&b, rate_code);
	for (int i = 0; i < 10; i++) {
		struct tcase *t = i % 2 == 0 ? &a : &b;
		t_req(t, "GET", "/", "198.51.100.1");
		if (t_run(t) == DFR_WAF_RESPOND && t->rep.wv_status == 429)
			blocked++;
		else
			passed++;
	}
	is_int(passed, 5, "5 requests pass over two workers");
	is_int(blocked, 5, "the next 5 are limited, whichever worker judges them");
	t_req(&a, "GET", "/", "198.51.100.2");
	is_int(t_run(&a), DFR_WAF_PASS, "another address is not limited");
	t_fini(&a);
	t_fini(&b);
	shdict_registry_clear();
}

struct hammer {
	struct shdict *d;
	int n;
};

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	bool forcible;
	double v;

	for (int i = 0; i < h->n; i++)
		(void)shdict_incr(h->d, "hits", 4, 1, true, 0, 60, &v, &forcible);
	return NULL;
}

static void
test_threads(void)
{
	struct shdict *d = shdict_open("thr-dom", "cache", 1 << 20);
	pthread_t th[4];
	struct hammer h = {d, 20000};
	struct shval out;
	struct wbuf buf = {0};

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer_main, &h);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	is_int(shdict_get(d, "hits", 4, &out, &buf), DFR_OK, "counter present");
	ok(out.sv_type == SHV_NUMBER && out.sv_num == 80000, "4 threads x 20000 incr = 80000 (%g)",
	   out.sv_num);
	shdict_unref(d);
	wbuf_free(&buf);
	shdict_registry_clear();
}

int
main(void)
{
	plan_lazy();
	test_methods();
	test_ttl_and_bound();
	test_sizes_and_domains();
	test_directives();
	test_rate_limit_across_workers();
	test_threads();
	shdict_registry_clear();
	return done_testing();
}
