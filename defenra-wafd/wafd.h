/*
 * defenra-wafd: runs each domain's Lua WAF code in a sandbox and answers httpd's questions on
 * waf.rep with verdicts. Central structs, then one prototype block per file.
 *
 * The engine (sandbox.c, ngx.c, request.c, shdict.c, script.c) is plain functions from a decoded
 * request to a verdict that never see a socket, so unit tests and --check drive it directly;
 * worker.c (waf.rep: SP over IPC from epoll loops), bus.c (config from syncd) and main.c are
 * the glue.
 *
 * Threads: WAFD_WORKERS worker threads each own their Lua states (one per domain they have
 * seen) and judge one request at a time; the main thread runs the event loop (bus, admin) and
 * publishes each new generation of code; shared dicts are the only state workers share.
 */
#ifndef WAFD_H
#define WAFD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "config.h"
#include "waf_msg.h"

/* ---- limits and defaults -------------------------------------------------------------------- */
#define WAFD_MEM_DEFAULT_MB        32            /* WAFD_LUA_MEMORY_MB: cap per Lua state */
#define WAFD_BUDGET_DEFAULT        1000000u      /* WAFD_LUA_BUDGET: VM instructions per request */
#define WAFD_TIMEOUT_DEFAULT_MS    100u          /* WAFD_LUA_TIMEOUT_MS: wall time per request */
#define WAFD_SHDICT_DEFAULT_KB     8192u         /* WAFD_SHDICT_SIZE_KB: a dict's default bound */
#define WAFD_SHDICT_MAX_PER_DOMAIN 16            /* dicts one domain may create */
#define WAFD_HOOK_STEP             1000          /* instructions between two budget checks */
#define WAFD_BUDGET_ASYNC_MIN      1000000u      /* budgets from here: hook armed after 1 ms */
#define WAFD_WATCH_SIGNAL          4             /* SIGRTMIN + this: the CPU-time timer's */
#define WAFD_OUT_HDR_BYTES         (256u * 1024) /* bytes of response header names and values */
#define WAFD_STOP_GRACE_MS         2000u         /* teardown after SIGTERM may take this long */
#define WAFD_ERRLEN                256

struct wafd_limits {
	size_t wl_mem_cap;      /* bytes per Lua state */
	uint64_t wl_budget;     /* instructions per request */
	uint64_t wl_timeout_ns; /* wall time per request */
	size_t wl_shdict_size;  /* default bytes of a shared dict */
};

/* A growable byte buffer, reused between requests (capacity kept). */
struct wbuf {
	char *b_data;
	size_t b_len, b_cap;
};

/* ---- one domain's code in one generation (shared by all workers, immutable) ------------------ */
struct wcode {
	int wc_refs; /* atomic */
	char *wc_dom_id;
	char *wc_dom_name;
	char *wc_code; /* NULL: the domain has no code, every request passes */
	size_t wc_len;
	uint64_t wc_generation; /* the generation this text first appeared in */
	/* "-- lua_shared_dict NAME SIZE" lines of the code: sizes per dict */
	struct wcode_dict {
		char *wd_name;
		size_t wd_size;
	} * wc_dicts;
	size_t wc_ndicts;
};

/* The code of every domain of one config generation: what workers run. Immutable. */
struct wgen {
	int wg_refs; /* atomic */
	uint64_t wg_generation;
	struct wcode **wg_codes; /* sorted by wc_dom_id */
	size_t wg_ncodes;
};

/* ---- one request being judged: input, and what the script made of it ------------------------ */
struct wout_hdr {
	uint32_t oh_name_off, oh_name_len; /* into wn_hstore; name_len 0: removed */
	uint32_t oh_val_off, oh_val_len;
};

struct wrun {
	const struct dfr_waf_req *wn_req;
	uint64_t wn_generation; /* the request's */
	unsigned wn_worker_id, wn_nworkers;
	/* output */
	int wn_status;  /* ngx.status, 0 when unset */
	bool wn_exited; /* ngx.exit / ngx.redirect was called */
	int wn_exit_status;
	struct wbuf wn_body; /* ngx.say / ngx.print */
	struct wbuf wn_hstore;
	struct wbuf wn_scratch; /* shared dict values on their way into Lua */
	struct wout_hdr wn_hdrs[DFR_WAF_MAX_HEADERS];
	uint32_t wn_nhdrs;
	/* the verdict's header array, built from wn_hdrs */
	struct dfr_waf_hdr wn_vhdrs[DFR_WAF_MAX_HEADERS];
	char wn_err[WAFD_ERRLEN]; /* why a run failed */
};

/* ---- one Lua state: one domain's code in one worker ----------------------------------------- */
struct wstate {
	lua_State *ws_L;
	struct wcode *ws_code; /* reference */
	const struct wafd_limits *ws_lim;
	unsigned ws_worker_id;
	/* allocator */
	size_t ws_mem, ws_mem_peak;
	bool ws_mem_hit;       /* the cap refused an allocation during this run */
	bool ws_mem_unlimited; /* set while building the state: the cap does not apply yet */
	/* budget */
	uint64_t ws_used;
	uint64_t ws_deadline_ns;
	bool ws_budget_hit;
	bool ws_stopping; /* ngx.exit or a budget kill: every further instruction errors */
	/* code */
	bool ws_broken;   /* the code did not compile: every request fails */
	bool ws_recycle;  /* after a failure the state kept too much memory: make a new one */
	int ws_fn_ref;    /* the compiled chunk, in the registry */
	int ws_env_ref;   /* the chunk's _ENV, emptied before each request */
	char ws_err[WAFD_ERRLEN];
	unsigned ws_ndicts;  /* shared dicts opened */
	struct wrun *ws_run; /* the current request, NULL between requests */
	uint64_t ws_runs;
};

/* ---- sandbox.c ------------------------------------------------------------------------------ */
/* A new Lua state for `ws` with the capped allocator and the safe standard library as globals
 * (base without dofile/loadfile/print/collectgarbage, load of text only, string, table, math,
 * utf8, coroutine, os.time/clock/date, and 5.1 shims). NULL on ENOMEM. */
lua_State *sandbox_new(struct wstate *ws);
/* Arms the instruction budget and the deadline for one run (see the watchdog in sandbox.c). */
void sandbox_arm(struct wstate *ws);
/* The run is over: no hook, and the watchdog no longer looks at it. */
void sandbox_disarm(struct wstate *ws);
/* Makes every further instruction of this run raise `why` (ngx.exit, budget). */
void sandbox_stop(struct wstate *ws, lua_State *L);
/* Replaces the table at the top of the stack with a read-only proxy of it. */
void sandbox_freeze(lua_State *L);
/* Pushes an empty read-only table whose reads call `index` (t, key) and writes `newindex` (NULL:
 * refused). */
void sandbox_proxy(lua_State *L, lua_CFunction index, lua_CFunction newindex);
/* Makes rawset refuse the table at idx (its metatable guards the rest). */
void sandbox_mark_readonly(lua_State *L, int idx);
/* The state that owns L (from its extra space). */
struct wstate *sandbox_ws(lua_State *L);
/* Registry key of the current request's environment table (for load's default env). */
extern const char sandbox_env_key;
/* The error value ngx.exit raises to unwind the script. */
extern const char sandbox_exit_key;
uint64_t sandbox_now_ns(void);

/* ---- ngx.c ---------------------------------------------------------------------------------- */
/* Sets the global `ngx` (read-only) in L. */
void ngx_open(lua_State *L);
/* Resets the per-request parts (ngx.ctx) before a run. */
void ngx_reset(lua_State *L);
/* Appends a response header (the verdict's); false when a limit is hit. */
bool ngx_out_header_add(struct wrun *run, const char *name, size_t nlen, const char *val,
                        size_t vlen);

/* ---- request.c ------------------------------------------------------------------------------ */
/* Sets the global `request` (Go agent compatibility) and returns nothing; ngx_open uses
 * request_push_var for ngx.var. */
void request_open(lua_State *L);
void request_push_var(lua_State *L);
void request_reset(lua_State *L);
/* The first header named `name` (case-insensitive; '_' matches '-' when `underscores`). NULL
 * when absent. */
const struct dfr_waf_hdr *request_header(const struct dfr_waf_req *req, const char *name,
                                         size_t len, bool underscores);
/* The query string (after '?'), or NULL. */
const char *request_query(const struct dfr_waf_req *req, size_t *len);
/* Percent-decodes src into dst (of at least slen bytes); plus_space turns '+' into ' '. */
size_t request_unescape(char *dst, const char *src, size_t slen, bool plus_space);
/* Pushes a new table of the request's headers: lower-case names (unless raw) to the first value
 * (first_only) or to a string or an array of repeated values; at most max names (0: all). The
 * table reads names case-insensitively unless raw. */
void request_push_headers(lua_State *L, const struct dfr_waf_req *req, bool first_only, bool raw,
                          size_t max);
/* Pushes the metatable that makes header tables case-insensitive. */
void request_push_header_mt(lua_State *L);
/* Pushes the value of ngx.var.<name>, or nil. */
void request_var(lua_State *L, const struct dfr_waf_req *req, const char *name, size_t len);

/* ---- shdict.c ------------------------------------------------------------------------------- */
struct shdict;

enum shval_type {
	SHV_NIL = 0, /* absent */
	SHV_BOOLEAN,
	SHV_NUMBER,
	SHV_STRING,
};

struct shval {
	enum shval_type sv_type;
	bool sv_bool;
	double sv_num;
	const char *sv_str; /* SHV_STRING: into the caller's buffer (get) or the caller's (set) */
	size_t sv_len;
	uint32_t sv_flags;
};

enum shdict_mode {
	SHD_SET = 0,  /* store, evicting the least recently used entries when full */
	SHD_ADD,      /* only when the key is absent (or expired) */
	SHD_REPLACE,  /* only when the key is present */
	SHD_SAFE_SET, /* store without evicting unexpired entries */
};

/* The dict `name` of domain `dom_id`, created with `size` bytes on first use (a later size
 * replaces it). A new reference; NULL on ENOMEM or when the domain has WAFD_SHDICT_MAX_PER_DOMAIN
 * dicts already. Thread-safe. */
struct shdict *shdict_open(const char *dom_id, const char *name, size_t size);
void shdict_unref(struct shdict *d);
/* Forgets the dicts of domains not in `gen` (removed from the config). */
void shdict_prune(const struct wgen *gen);
/* Frees every dict nobody references (shutdown, tests). */
void shdict_registry_clear(void);

/* get: DFR_OK with *v (strings copied into buf), DFR_ENOTFOUND. */
int shdict_get(struct shdict *d, const char *key, size_t klen, struct shval *v, struct wbuf *buf);
/* set/add/replace/delete (v->sv_type SHV_NIL deletes). ttl <= 0: never expires. DFR_OK,
 * -EEXIST (add), DFR_ENOTFOUND (replace), DFR_ENOMEM (no room). *forcible: entries were evicted. */
int shdict_set(struct shdict *d, const char *key, size_t klen, const struct shval *v, double ttl,
               enum shdict_mode mode, bool *forcible);
/* incr: DFR_OK with *out, DFR_ENOTFOUND (absent, no init), DFR_EINVAL (not a number),
 * DFR_ENOMEM. */
int shdict_incr(struct shdict *d, const char *key, size_t klen, double delta, bool has_init,
                double init, double init_ttl, double *out, bool *forcible);
/* Remaining seconds (0: no expiry). DFR_OK or DFR_ENOTFOUND. */
int shdict_ttl(struct shdict *d, const char *key, size_t klen, double *out);
int shdict_expire(struct shdict *d, const char *key, size_t klen, double ttl);
void shdict_flush_all(struct shdict *d);
size_t shdict_flush_expired(struct shdict *d, size_t max);
/* Live keys, most recent first, at most max (0: all), into buf as (u32 length in host order,
 * bytes) pairs; returns the count. */
size_t shdict_keys(struct shdict *d, size_t max, struct wbuf *buf);
size_t shdict_capacity(struct shdict *d);
size_t shdict_free_space(struct shdict *d);
size_t shdict_count(struct shdict *d);

/* ---- script.c ------------------------------------------------------------------------------- */
/* A state for `code` (takes a reference). When the code does not compile, the state is still
 * returned, marked broken, with the reason in ws_err and logged. NULL on ENOMEM. */
struct wstate *script_state_new(struct wcode *code, const struct wafd_limits *lim,
                                unsigned worker_id);
void script_state_free(struct wstate *ws); /* NULL is fine */
/* Runs the code on run->wn_req and fills *rep (pointing into run's buffers). Never fails:
 * problems become an error verdict with a fail kind, the reason in run->wn_err. */
void script_run(struct wstate *ws, struct wrun *run, struct dfr_waf_rep *rep);
/* Checks that code compiles; DFR_OK or DFR_EPARSE with the reason in err[errlen]. */
int script_check_compiles(const char *code, size_t len, const char *name, char *err, size_t errlen);
void wrun_init(struct wrun *run);
void wrun_reset(struct wrun *run);
void wrun_free(struct wrun *run);

/* ---- code.c: generations of code --------------------------------------------------------------
 */
/* A new generation from cfg, reusing the wcode objects of `prev` (may be NULL) whose domain and
 * text did not change. NULL on ENOMEM. */
struct wgen *code_gen_build(const struct dfr_config *cfg, const struct wgen *prev);
/* A generation of one domain (--check and tests). */
struct wgen *code_gen_single(const char *dom_id, const char *dom_name, const char *code, size_t len,
                             uint64_t generation);
struct wgen *code_gen_ref(struct wgen *g);
void code_gen_unref(struct wgen *g); /* NULL is fine */
struct wcode *code_ref(struct wcode *c);
void code_unref(struct wcode *c);
/* The domain's code by id (binary search), else by name; NULL when unknown. */
struct wcode *code_find(const struct wgen *g, const char *id, size_t idlen, const char *name,
                        size_t namelen);
/* Index of c in g, or -1. */
long code_index(const struct wgen *g, const struct wcode *c);
/* The size from the code's "-- lua_shared_dict" line for dict `name`, or 0. */
size_t code_dict_size(const struct wcode *c, const char *name);

/* ---- judge.c: one worker's engine: generation, states and verdicts -----------------------------
 */
struct judge {
	unsigned jg_id, jg_nworkers;
	const struct wafd_limits *jg_lim;
	struct wgen *jg_gen;       /* reference */
	struct wstate **jg_states; /* parallel to jg_gen->wg_codes, NULL until first use */
	struct wrun jg_run;
	struct dfr_waf_hdr jg_hdrs[DFR_WAF_MAX_HEADERS]; /* the decoded request's */
};

void judge_init(struct judge *jg, unsigned id, unsigned nworkers, const struct wafd_limits *lim);
void judge_fini(struct judge *jg);
/* Moves the judge to generation g (takes a reference), keeping the states whose code did not
 * change. */
void judge_set_gen(struct judge *jg, struct wgen *g);
/* Judges a decoded request: fills *rep (valid until the next call). */
void judge_request(struct judge *jg, const struct dfr_waf_req *req, uint64_t generation,
                   struct dfr_waf_rep *rep, uint64_t *rep_generation);
/* Judges a raw message and encodes the verdict into out (grown as needed). DFR_OK or DFR_ENOMEM. */
int judge_message(struct judge *jg, const uint8_t *msg, size_t len, struct wbuf *out);

/* ---- worker.c ------------------------------------------------------------------------------- */
struct wafd_pool;
/* Listens on the Unix socket `path` (ipc://path for NNG peers) with nworkers threads (under
 * SCHED_BATCH when `batch`: WAFD_SCHED); NULL after logging why (also when a live wafd already
 * answers there). */
struct wafd_pool *worker_pool_open(const char *path, unsigned nworkers,
                                   const struct wafd_limits *lim, bool batch);
/* Publishes a new generation to every worker (takes a reference). Main thread. */
void worker_pool_publish(struct wafd_pool *p, struct wgen *g);
void worker_pool_close(struct wafd_pool *p); /* NULL is fine */

/* ---- bus.c ---------------------------------------------------------------------------------- */
struct event_base;
struct dfr_admin;
struct wafd_bus;
struct wafd_bus *wafd_bus_open(struct event_base *base, struct wafd_pool *pool,
                               struct dfr_admin *adm);
void wafd_bus_close(struct wafd_bus *b);

/* ---- stats.c -------------------------------------------------------------------------------- */
void stats_init(void);
void stats_verdict(const struct dfr_waf_rep *rep, uint64_t elapsed_ns);
void stats_generation(uint64_t generation, size_t ndomains_with_code);
void stats_states(long delta);
void stats_compile_error(void);
void stats_conns(int delta); /* connections open on waf.rep */
void stats_peer_error(void); /* a peer closed for a protocol error */
/* Rate-limited log of a script failure or script log line: true when this one may be logged. */
bool stats_log_allowed(void);

/* ---- util ----------------------------------------------------------------------------------- */
int wbuf_reserve(struct wbuf *b, size_t more);
int wbuf_append(struct wbuf *b, const void *p, size_t n);
void wbuf_free(struct wbuf *b);

#endif
