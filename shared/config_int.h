/*
 * Internals of the config model shared by config_parse.c, config_record.c, config_obj.c,
 * config_json.c, config_diff.c and config_tls.c. Not part of the library's API: daemons include
 * config.h only.
 */
#ifndef DFR_CONFIG_INT_H
#define DFR_CONFIG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

/* A growing byte buffer for building canonical JSON. sb_err is set on ENOMEM; later appends are
 * then no-ops, so a builder checks once at the end. */
struct dfr_sb {
	char *sb_buf;
	size_t sb_len;
	size_t sb_cap;
	bool sb_err;
};

void dfr_sb_put(struct dfr_sb *sb, const char *s, size_t n);
void dfr_sb_puts(struct dfr_sb *sb, const char *s);
void dfr_sb_putc(struct dfr_sb *sb, char c);
void dfr_sb_json_str(struct dfr_sb *sb, const char *s); /* "..." escaped, or null for NULL */
void dfr_sb_uint(struct dfr_sb *sb, unsigned long long v);

/* The canonical JSON of a normalised domain into a buffer the caller keeps between domains
 * (*buf and *cap grown as needed; NUL-terminated, length in *len), and a proxy's into px_json.
 * DFR_OK or DFR_ENOMEM. */
int dfr_cfg_domain_write_json(const struct dfr_domain *dom, char **buf, size_t *cap,
                              size_t *len);
int dfr_cfg_proxy_build_json(struct dfr_proxy *px);

/* Frees what a record owns and zeroes it (a half-parsed record is fine). */
void dfr_cfg_record_clear(struct dfr_record *r);

/* Frees an item whatever its reference count (a half-built one included). */
void dfr_cfg_domain_free(struct dfr_domain *dom);
void dfr_cfg_proxy_free(struct dfr_proxy *px);

/* A config with no items yet (one reference), and its by-name index built from cfg_domains. */
struct dfr_config *dfr_cfg_alloc(void);
int dfr_cfg_index_zones(struct dfr_config *cfg);

/* Checks a certificate chain (PEM, leaf first) and its private key (PEM): both parse and the key
 * matches the leaf. Returns true if usable; else false with a reason in why (never key bytes). */
bool dfr_cfg_tls_check(const char *cert_pem, const char *key_pem, char *why, size_t whylen);

/* The same with OpenSSL's key decoder kept between calls (one thread at a time; zero it first,
 * free it with dfr_cfg_tls_cache_free()). Same verdicts, ~20 times cheaper per key. */
struct ossl_decoder_ctx_st;
struct evp_pkey_st;
struct ossl_lib_ctx_st;
struct ossl_provider_st;
struct dfr_tls_cache {
	struct ossl_decoder_ctx_st *tc_dctx; /* OSSL_DECODER_CTX */
	struct evp_pkey_st *tc_key;          /* EVP_PKEY the decoder writes to */
	bool tc_failed;
	/* The fast path of a good pair (see config_tls.c): certificates parsed in a library context
	 * without providers, the leaf's public key through a kept SubjectPublicKeyInfo decoder. */
	struct ossl_lib_ctx_st *tc_lctx;      /* OSSL_LIB_CTX with the null provider only */
	struct ossl_provider_st *tc_nullprov; /* OSSL_PROVIDER */
	struct ossl_decoder_ctx_st *tc_pdctx;
	struct evp_pkey_st *tc_pub;
	bool tc_fast_failed;
	/* Decoders for one key type each (EC, RSA, Ed25519: twice as fast as the generic ones),
	 * picked by the leaf's key algorithm: private key (PEM) and public key (DER). */
	struct dfr_tls_typed {
		struct ossl_decoder_ctx_st *ty_kdctx, *ty_pdctx;
		struct evp_pkey_st *ty_key, *ty_pub;
		bool ty_failed;
	} tc_typed[3];
};
bool dfr_cfg_tls_check_cached(struct dfr_tls_cache *tc, const char *cert_pem, const char *key_pem,
                              char *why, size_t whylen);
void dfr_cfg_tls_cache_free(struct dfr_tls_cache *tc);

/* --- arena and JSON tree (config_jv.c) ---------------------------------------------------- */

struct dfr_achunk;

/* A bump allocator in chunks, freed as a whole: the JSON reader keeps its nodes in one, a domain
 * is built in one (then copied into its own exactly sized block, dom_mem: config_parse.c). */
struct dfr_arena {
	struct dfr_achunk *ar_head; /* newest chunk first */
	char *ar_cur;
	size_t ar_left;
};

bool dfr_arena_init(struct dfr_arena *a, size_t first);
void *dfr_arena_alloc_slow(struct dfr_arena *a, size_t n);
char *dfr_arena_strndup(struct dfr_arena *a, const char *s, size_t n);
void dfr_arena_reset(struct dfr_arena *a); /* keeps the newest chunk */
void dfr_arena_free(struct dfr_arena *a);
void dfr_achunks_free(struct dfr_achunk *c);

/* n bytes, no alignment (strings). */
static inline void *
dfr_arena_alloc_raw(struct dfr_arena *a, size_t n)
{
	char *p;

	if (n > a->ar_left)
		return dfr_arena_alloc_slow(a, n);
	p = a->ar_cur;
	a->ar_cur += n;
	a->ar_left -= n;
	return p;
}

/* n bytes aligned for any object. */
static inline void *
dfr_arena_alloc(struct dfr_arena *a, size_t n)
{
	size_t pad = (size_t)(-(uintptr_t)a->ar_cur) & (_Alignof(max_align_t) - 1);

	if (pad + n > a->ar_left)
		return dfr_arena_alloc_slow(a, n);
	a->ar_cur += pad;
	a->ar_left -= pad;
	return dfr_arena_alloc_raw(a, n);
}

static inline char *
dfr_arena_strdup(struct dfr_arena *a, const char *s)
{
	return s != NULL ? dfr_arena_strndup(a, s, strlen(s)) : NULL;
}

enum dfr_jv_type {
	DFR_JV_NULL = 1,
	DFR_JV_FALSE,
	DFR_JV_TRUE,
	DFR_JV_NUMBER,
	DFR_JV_STRING,
	DFR_JV_ARRAY,
	DFR_JV_OBJECT,
};

/* A JSON value as cJSON would hold it: strings decoded and NUL-terminated (a \u0000 ends them),
 * numbers through strtod, object members in order with repeated keys kept (look-ups find the
 * first). */
struct dfr_jv {
	struct dfr_jv *jv_next;  /* next element or member */
	struct dfr_jv *jv_child; /* first element or member */
	const char *jv_key;      /* member name, or NULL */
	size_t jv_keylen;
	char *jv_str; /* DFR_JV_STRING */
	double jv_num; /* DFR_JV_NUMBER */
	const char *jv_raw; /* arrays and objects: their text in the input */
	size_t jv_rawlen;
	size_t jv_n; /* number of elements or members */
	enum dfr_jv_type jv_type;
};

/* Called for each element of the root object's first "domains" array while it is parsed. The
 * element's tree is in the arena *elem_ar pointed to when the element began, and stays there
 * until the callback resets it (it may also point *elem_ar to another arena for the next
 * element). A non-DFR_OK return stops further calls (the parse itself goes on, and then resets
 * *elem_ar after each element: it must point to an arena the callback no longer shares). */
typedef int (*dfr_jv_elem_fn)(void *arg, const struct dfr_jv *elem, size_t idx);

/* Parses buf[0..len) with cJSON 1.7.15's grammar into `ar` (nodes stay there until it is reset).
 * Returns the root, or NULL if the text is not JSON. *end: where parsing stopped (the byte after
 * the value, or near the error). Trailing bytes are the caller's business, as with cJSON. With
 * `fn`, the root object's first "domains" array is streamed to fn (element trees in *elem_ar) and
 * left empty in the tree; *cb_rc gets the first non-DFR_OK return of fn. */
struct dfr_jv *dfr_jv_parse(const char *buf, size_t len, struct dfr_arena *ar, dfr_jv_elem_fn fn,
                            void *arg, struct dfr_arena **elem_ar, size_t *end, int *cb_rc);

/* pthread_create() of a thread that takes no signals (they stay with the threads that expect
 * them). 0 or an errno value. */
int dfr_cfg_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* The first member named key, or NULL (also when obj is not an object). Inline so that the
 * length of a literal key is known at compile time. */
static inline const struct dfr_jv *
dfr_jv_get(const struct dfr_jv *obj, const char *key)
{
	size_t n = strlen(key);

	if (obj == NULL || obj->jv_type != DFR_JV_OBJECT)
		return NULL;
	for (const struct dfr_jv *v = obj->jv_child; v != NULL; v = v->jv_next)
		if (v->jv_keylen == n && memcmp(v->jv_key, key, n) == 0)
			return v;
	return NULL;
}

static inline bool
jv_is(const struct dfr_jv *v, enum dfr_jv_type t)
{
	return v != NULL && v->jv_type == t;
}

#define jv_foreach(el, arr)                                                                        \
	for ((el) = (arr) != NULL ? (arr)->jv_child : NULL; (el) != NULL; (el) = (el)->jv_next)

/* --- shared by config_parse.c and config_record.c ------------------------------------------ */

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DFR_CFG_LOG_MAX 100 /* warnings logged one by one per parse, then summed up */

struct dfr_tls_seen;
struct dfr_tls_sync;

/* The state of one parse: the previous config, the record budget, the drop count. */
struct dfr_pctx {
	const struct dfr_config *pc_prev;
	bool pc_verify_tls;
	size_t pc_nrecords; /* records kept so far, against DFR_CFG_MAX_RECORDS */
	size_t pc_dropped;
	size_t pc_logged;
	/* Warnings are held until the answer as a whole is known to be good (a poll answer is
	 * parsed in one pass: its domains before its last byte). */
	char **pc_held;
	size_t pc_nheld;
	bool pc_hold;
	/* Certificate/key pairs already checked in this parse, and their verdict. */
	struct dfr_tls_seen *pc_tls;
	size_t pc_ntls, pc_tls_cap;
	struct dfr_tls_cache pc_tlsc;
	struct dfr_tls_sync *pc_tls_sync; /* non-NULL while two threads share pc_tls */
	/* The last antiDDoS text and its compact form (most domains share one). */
	char *pc_anti_raw, *pc_anti_out;
	size_t pc_anti_rawlen, pc_anti_outlen;
	/* Where the domain being parsed keeps its strings: pc_scratch, which the caller resets
	 * between domains (the finished domain is copied out of it). */
	struct dfr_arena *pc_ar;
	struct dfr_arena *pc_scratch;
	/* The canonical JSON of the domain being parsed, before it is copied next to it. */
	char *pc_jbuf;
	size_t pc_jcap;
	size_t *pc_lens; /* domain_compact()'s string lengths */
	size_t pc_lens_cap;
};

/* Logs a warning about the answer within the per-parse budget; counts it as a dropped item
 * when `dropped`. */
void dfr_cfg_note(struct dfr_pctx *c, bool dropped, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
#define drop(c, ...) dfr_cfg_note((c), true, __VA_ARGS__)

/* A short printable excerpt of untrusted text for a log line. */
const char *dfr_cfg_excerpt(const char *s, char *buf, size_t size);

/* Parses record `jr` of `dom` (apex and locations set) into *r: DFR_OK, 1 when dropped
 * (logged, counted), or DFR_ENOMEM. */
int dfr_cfg_parse_record(struct dfr_pctx *c, const struct dfr_domain *dom,
                         const struct dfr_jv *jr, struct dfr_record *r);

enum dfr_field { F_ABSENT = 0, F_OK, F_BAD };

static inline char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static inline void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* The get_* helpers on a member already found (NULL: absent). */
static inline enum dfr_field
jv_str(const struct dfr_jv *v, const char **out)
{
	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_STRING)
		return F_BAD;
	*out = v->jv_str;
	return F_OK;
}

static inline enum dfr_field
jv_bool(const struct dfr_jv *v, bool *out)
{
	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_TRUE && v->jv_type != DFR_JV_FALSE)
		return F_BAD;
	*out = v->jv_type == DFR_JV_TRUE;
	return F_OK;
}

static inline enum dfr_field
jv_num(const struct dfr_jv *v, double *out)
{
	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_NUMBER || !isfinite(v->jv_num))
		return F_BAD;
	*out = v->jv_num;
	return F_OK;
}

static inline enum dfr_field
get_str(const struct dfr_jv *o, const char *k, const char **out)
{
	const struct dfr_jv *v = dfr_jv_get(o, k);

	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_STRING)
		return F_BAD;
	*out = v->jv_str;
	return F_OK;
}

static inline enum dfr_field
get_bool(const struct dfr_jv *o, const char *k, bool *out)
{
	const struct dfr_jv *v = dfr_jv_get(o, k);

	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_TRUE && v->jv_type != DFR_JV_FALSE)
		return F_BAD;
	*out = v->jv_type == DFR_JV_TRUE;
	return F_OK;
}

static inline enum dfr_field
get_num(const struct dfr_jv *o, const char *k, double *out)
{
	const struct dfr_jv *v = dfr_jv_get(o, k);

	if (v == NULL || v->jv_type == DFR_JV_NULL)
		return F_ABSENT;
	if (v->jv_type != DFR_JV_NUMBER || !isfinite(v->jv_num))
		return F_BAD;
	*out = v->jv_num;
	return F_OK;
}

/* Clamps a finite double into [0, max] without undefined conversions. */
static inline uint64_t
clamp_u(double d, uint64_t max)
{
	if (!(d > 0))
		return 0;
	if (d >= (double)max)
		return max;
	return (uint64_t)d;
}

/* A name in the text form we store: lower-case, no trailing dot, labels of letters, digits,
 * '-', '_' (1..63 bytes), 253 bytes in all; "*" only as the leftmost label when wild. */
static inline bool
name_is_valid(const char *s, bool wild)
{
	size_t len = strlen(s), lab = 0;

	if (len == 0 || len > DFR_CFG_MAX_NAME)
		return false;
	if (wild && s[0] == '*' && (s[1] == '\0' || s[1] == '.')) {
		if (s[1] == '\0')
			return true;
		s += 2;
		if (*s == '\0')
			return false;
	}
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '.') {
			if (lab == 0)
				return false;
			lab = 0;
			continue;
		}
		if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '_'))
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0;
}

/* Lower-cases `in` into out[DFR_CFG_MAX_NAME + 2] and removes one trailing dot; *had_dot says
 * whether there was one. False if too long. */
static inline bool
name_fold(const char *in, char *out, bool *had_dot)
{
	size_t n = strlen(in);

	if (n > DFR_CFG_MAX_NAME + 1)
		return false;
	memcpy(out, in, n + 1);
	lower(out);
	*had_dot = n > 0 && out[n - 1] == '.';
	if (*had_dot)
		out[n - 1] = '\0';
	return true;
}

static inline bool
ends_with_zone(const char *name, const char *apex)
{
	size_t n = strlen(name), a = strlen(apex);

	return n > a + 1 && name[n - a - 1] == '.' && memcmp(name + n - a, apex, a) == 0;
}

static inline bool
parse_u16(const char *s, unsigned max, uint16_t *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (uint16_t)v;
	return true;
}

static inline bool
is_continent(const char *code)
{
	static const char *const continents[] = {"europe", "north-america", "south-america", "asia",
	                                         "africa", "oceania",       "antarctica"};

	for (size_t i = 0; i < sizeof(continents) / sizeof(continents[0]); i++)
		if (strcmp(code, continents[i]) == 0)
			return true;
	return false;
}

static inline bool
code_is_valid(const char *code)
{
	return *code != '\0' && strlen(code) <= 63 && strchr(code, '.') == NULL &&
	       name_is_valid(code, false);
}

#endif
