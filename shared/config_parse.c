/*
 * The parser of the Core's poll answer (core-api.md) into the config model, and of the
 * canonical JSON of one domain or proxy (config_json.c writes it in the same shape, so one
 * parser serves both). config_jv.c reads the text with cJSON's grammar, the answer's domains
 * one at a time (each tree dropped once its domain is built, on a second thread for a large
 * answer); this file validates and normalises every field so no daemon has to. It does not fetch
 * anything, keep state between polls, or decide what to do with a config: that is syncd's job.
 *
 * Policy: a whole answer fails (DFR_EPARSE, DFR_ELIMIT) only when it is not an answer at all.
 * Inside it, the smallest enclosing item that is wrong is dropped with a logged reason and
 * counted in cfg_dropped: a bad record drops the record, a bad geoDnsLocations entry the entry,
 * a domain-level field of the wrong type (or a missing id or name) the domain, a bad proxy the
 * proxy. The first DFR_CFG_LOG_MAX warnings of one parse are logged, the rest summed up in one
 * line, so a hostile answer cannot flood the log. Records are parsed in config_record.c.
 *
 * Rules decided here (the Core's contract leaves them open):
 *  - Record owner names: "@", "" or the apex -> the apex; a name ending in "." is absolute; a
 *    name equal to the apex or ending in ".<apex>" is also taken as absolute (the dashboards let
 *    operators type full names); anything else is relative ("a.b" -> "a.b.<apex>"). "*" may
 *    only be the leftmost label. The result must lie inside the zone, labels 1..63 bytes of
 *    letters, digits, '-' and '_', 253 bytes in all. All names are stored lower-case; dnsd
 *    echoes the question's case itself.
 *  - Targets of CNAME, NS, MX and SRV are absolute whether or not they end in "." (the Core
 *    writes "mail.example.com" meaning the absolute name); "@" means the apex; MX and SRV may
 *    be "." (no service).
 *  - GeoDNS location records: a record with a non-empty "locationCode" is a location record
 *    (rec_location = the code lower-case, rec_name = the apex). For the Go agent's configs, an
 *    A/AAAA record WITHOUT locationCode whose owner is "<code>.<apex>", where <code> is listed
 *    in the domain's geoDnsLocations and is either two letters or a continent code (europe,
 *    north-america, south-america, asia, africa, oceania, antarctica), is a location record
 *    too. A two-letter name not listed there (edge.json's "ns") stays a regular record.
 *    Location records must be A or AAAA; dnsd never serves them as regular records. They are
 *    stored after the regular records, each group in the Core's order.
 *  - An A record holding an IPv6 literal becomes AAAA ("::ffff:192.0.2.9" stays AAAA). An
 *    AAAA holding an IPv4 literal is dropped.
 *  - TTL: null or absent -> 3600; negative -> 0 with a warning; above DFR_TTL_MAX -> clamped;
 *    fractions truncated; any other type drops the record. priority: null/absent -> 0, else
 *    0..65535 or the record is dropped. SRV value "weight port target" (priority from
 *    "priority") or "priority weight port target". CAA value `flags tag "value"`, quotes
 *    optional. TXT bytes are kept exactly, up to DFR_CFG_MAX_TXT.
 *  - rec_value holds the normalised text (address as inet_ntop writes it, target lower-case,
 *    SRV "weight port target", CAA `flags tag "value"`, TXT exact).
 *  - Records beyond DFR_CFG_MAX_RECORDS over the whole answer are dropped (counted), the rest
 *    applies: rejecting the answer would leave every zone stale for one oversized tenant.
 *  - Domains: a repeated id, or a name equal after lower-casing to an earlier one, drops the
 *    later domain (answer order). Proxies: repeated id drops the later one.
 *  - ssl: a certificate and key that do not parse or do not match are dropped; if `prev` has a
 *    valid pair for the same domain id, that pair is kept (a bad renewal never removes HTTPS).
 *    A pair byte-identical to prev's is not checked again (10,000 domains per poll), and a
 *    pair repeated in one answer is checked once (OpenSSL takes ~0.4 ms per RSA key); in a large
 *    answer the reader thread checks every other new pair ahead of the worker. The
 *    canonical JSON read by dfr_domain_from_json() comes from syncd, which checked the pair:
 *    it is not checked again there (httpd loads it anyway).
 *  - Proxy ports must be JSON integers 1..65535; numeric strings are refused (the Core sends
 *    numbers; accepting "80" would hide a Core bug). destinationHost: an IP literal (brackets
 *    around IPv6 allowed, removed) or a host name, stored lower-case without trailing dot.
 *  - "generation" (not from the Core: dfr_config_to_json() writes it) is read into
 *    cfg_generation, exact up to 2^53.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h> /* antiDDoS is printed by cJSON, as before */

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "log.h"

/* Logs a warning about the answer within the per-parse budget; counts a dropped item. */
void
dfr_cfg_note(struct dfr_pctx *c, bool dropped, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	c->pc_dropped += dropped;
	if (c->pc_logged++ >= DFR_CFG_LOG_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!c->pc_hold) {
		dfr_log_warn("%s", line);
		return;
	}
	if (c->pc_held == NULL &&
	    (c->pc_held = calloc(DFR_CFG_LOG_MAX, sizeof(*c->pc_held))) == NULL)
		return;
	if (c->pc_nheld < DFR_CFG_LOG_MAX && (c->pc_held[c->pc_nheld] = strdup(line)) != NULL)
		c->pc_nheld++;
}

/* Logs (when `emit`) and frees the warnings held during a parse. */
static void
flush_held(struct dfr_pctx *c, bool emit)
{
	for (size_t i = 0; i < c->pc_nheld; i++) {
		if (emit)
			dfr_log_warn("%s", c->pc_held[i]);
		free(c->pc_held[i]);
	}
	free(c->pc_held);
	c->pc_held = NULL;
	c->pc_nheld = 0;
}

/* A short printable excerpt of untrusted text for a log line. */
const char *
dfr_cfg_excerpt(const char *s, char *buf, size_t size)
{
	size_t i = 0, o = 0;

	if (s == NULL)
		return "(null)";
	for (; s[i] != '\0' && o + 4 < size && i < 60; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
	if (s[i] != '\0' && o + 4 < size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

#define DOM_DROP(...)                                                                              \
	do {                                                                                       \
		char why_[320];                                                                    \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                         \
		drop(c, "config, domain %s %s dropped (%s)", dom->dom_id ? dom->dom_id : "?",      \
		     dom->dom_name ? dom->dom_name : "?", why_);                                   \
		goto bad;                                                                          \
	} while (0)

static int
parse_locations(struct dfr_pctx *c, struct dfr_domain *dom, const struct dfr_jv *arr)
{
	const struct dfr_jv *jl;
	size_t n = arr->jv_n;

	if (n == 0)
		return DFR_OK;
	if ((dom->dom_locations = dfr_arena_alloc(c->pc_ar, n * sizeof(*dom->dom_locations))) ==
	    NULL)
		return DFR_ENOMEM;
	memset(dom->dom_locations, 0, n * sizeof(*dom->dom_locations));
	jv_foreach(jl, arr)
	{
		struct dfr_location *l = &dom->dom_locations[dom->dom_nlocations];
		const char *code = NULL, *name = NULL, *type = NULL, *sub = NULL;
		char cb[64], vb[80];

		if (!jv_is(jl, DFR_JV_OBJECT) || get_str(jl, "code", &code) != F_OK ||
		    get_str(jl, "name", &name) == F_BAD || get_str(jl, "type", &type) == F_BAD ||
		    get_str(jl, "subdomain", &sub) == F_BAD || strlen(code) > 63) {
			drop(c,
			     "config, domain %s, a geoDnsLocations entry dropped (not an object "
			     "with a string code)",
			     dom->dom_id);
			continue;
		}
		memcpy(cb, code, strlen(code) + 1); /* at most 63 bytes: checked above */
		lower(cb);
		if (!code_is_valid(cb)) {
			drop(c, "config, domain %s, location \"%s\" dropped (not a valid code)",
			     dom->dom_id, dfr_cfg_excerpt(code, vb, sizeof(vb)));
			continue;
		}
		if (type != NULL && strcasecmp(type, "country") == 0)
			l->loc_type = DFR_LOC_COUNTRY;
		else if (type != NULL && strcasecmp(type, "continent") == 0)
			l->loc_type = DFR_LOC_CONTINENT;
		else if (type != NULL)
			l->loc_type = DFR_LOC_CUSTOM;
		else
			l->loc_type = strlen(cb) == 2    ? DFR_LOC_COUNTRY
			              : is_continent(cb) ? DFR_LOC_CONTINENT
			                                 : DFR_LOC_CUSTOM;
		/* Name and subdomain are mostly the code: one copy then (domain_compact()). */
		if ((l->loc_code = dfr_arena_strdup(c->pc_ar, cb)) == NULL)
			return DFR_ENOMEM;
		if (name != NULL && strcmp(name, cb) == 0)
			l->loc_name = l->loc_code;
		else
			l->loc_name = dfr_arena_strdup(c->pc_ar, name != NULL ? name : "");
		if (sub != NULL && strcmp(sub, cb) == 0)
			l->loc_subdomain = l->loc_code;
		else
			l->loc_subdomain = dfr_arena_strdup(c->pc_ar, sub);
		dom->dom_nlocations++;
		if (l->loc_name == NULL || (sub != NULL && !l->loc_subdomain))
			return DFR_ENOMEM;
	}
	return DFR_OK;
}

static int
parse_records(struct dfr_pctx *c, struct dfr_domain *dom, const struct dfr_jv *arr)
{
	struct dfr_record *recs;
	const struct dfr_jv *jr;
	size_t n = arr->jv_n, k = 0, w = 0;
	bool mixed = false;
	int rc;

	if (n == 0)
		return DFR_OK;
	if ((recs = dom->dom_records = dfr_arena_alloc(c->pc_ar, n * sizeof(*recs))) == NULL)
		return DFR_ENOMEM;
	jv_foreach(jr, arr)
	{
		/* dom_nrecords follows k so a failure frees what was parsed. */
		if ((rc = dfr_cfg_parse_record(c, dom, jr, &recs[k])) == DFR_ENOMEM)
			return rc;
		if (rc == DFR_OK) {
			mixed = mixed || (k > 0 && recs[k].rec_location == NULL &&
			                  recs[k - 1].rec_location != NULL);
			dom->dom_nrecords = ++k;
		}
	}
	if (!mixed)
		return DFR_OK; /* the Core's usual order: regular records, then location records */
	/* Regular records first, then location records, each group in the Core's order. */
	if ((recs = malloc(k * sizeof(*recs))) == NULL)
		return DFR_ENOMEM;
	for (size_t i = 0; i < k; i++)
		if (dom->dom_records[i].rec_location == NULL)
			recs[w++] = dom->dom_records[i];
	for (size_t i = 0; i < k; i++)
		if (dom->dom_records[i].rec_location != NULL)
			recs[w++] = dom->dom_records[i];
	memcpy(dom->dom_records, recs, k * sizeof(*recs));
	free(recs);
	return DFR_OK;
}

struct dfr_tls_seen {
	uint64_t ts_hash;
	char *ts_cert, *ts_key; /* copies; the key is zeroed before it is freed */
	bool ts_ok;
	bool ts_busy; /* being checked by one thread; the verdict is not there yet */
	char ts_why[128];
};

/* When a large answer is built on two threads, the table of checked pairs is shared: the reader
 * checks some pairs ahead of the worker (see sink_precheck()). */
struct dfr_tls_sync {
	pthread_mutex_t sy_mu;
	pthread_cond_t sy_cv; /* an entry stopped being busy */
};

static uint64_t
pem_hash(uint64_t h, const char *s)
{
	size_t n = strlen(s), i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x9E3779B97F4A7C15ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
	return (h ^ n) * 0x9E3779B97F4A7C15ull;
}

static void
tls_lock(struct dfr_pctx *c)
{
	if (c->pc_tls_sync != NULL)
		pthread_mutex_lock(&c->pc_tls_sync->sy_mu);
}

static void
tls_unlock(struct dfr_pctx *c)
{
	if (c->pc_tls_sync != NULL)
		pthread_mutex_unlock(&c->pc_tls_sync->sy_mu);
}

/* The index of the pair in the table, or SIZE_MAX (lock held). */
static size_t
tls_find(const struct dfr_pctx *c, uint64_t h, const char *cert, const char *key)
{
	for (size_t i = 0; i < c->pc_ntls; i++) {
		const struct dfr_tls_seen *t = &c->pc_tls[i];

		if (t->ts_hash == h && strcmp(t->ts_cert, cert) == 0 && strcmp(t->ts_key, key) == 0)
			return i;
	}
	return SIZE_MAX;
}

/*
 * dfr_cfg_tls_check() once per distinct pair in a parse: the verdict is a function of the bytes
 * alone, and the same pair on many domains (a wildcard or multi-name certificate) is parsed by
 * OpenSSL once, not once per domain (RSA key loading costs ~0.4 ms). `tc` is the calling
 * thread's OpenSSL cache. On two threads a pair another thread is checking is waited for, or with
 * `hint` (the reader checking ahead) left to it. The verdict does not depend on which thread
 * checked a pair, so the drops and their reasons are those of one thread.
 */
static bool
tls_check_once(struct dfr_pctx *c, struct dfr_tls_cache *tc, const char *cert, const char *key,
               bool hint, char *why, size_t whylen)
{
	struct dfr_tls_seen *t;
	char *cc = NULL, *kc = NULL;
	char lwhy[sizeof(t->ts_why)];
	size_t i;
	uint64_t h;
	bool ok;

	if (cert == NULL || key == NULL)
		return dfr_cfg_tls_check(cert, key, why, whylen);
	h = pem_hash(pem_hash(0x12345, cert), key);
	tls_lock(c);
	while ((i = tls_find(c, h, cert, key)) != SIZE_MAX && c->pc_tls[i].ts_busy && !hint)
		pthread_cond_wait(&c->pc_tls_sync->sy_cv, &c->pc_tls_sync->sy_mu);
	if (i != SIZE_MAX) {
		t = &c->pc_tls[i];
		ok = t->ts_busy || t->ts_ok; /* busy: only with hint, where nothing is used */
		if (!ok)
			snprintf(why, whylen, "%s", t->ts_why);
		tls_unlock(c);
		return ok;
	}
	if (c->pc_ntls == c->pc_tls_cap) {
		size_t cap = c->pc_tls_cap ? c->pc_tls_cap * 2 : 16;

		if ((t = realloc(c->pc_tls, cap * sizeof(*t))) == NULL)
			goto unlisted;
		c->pc_tls = t;
		c->pc_tls_cap = cap;
	}
	if ((cc = strdup(cert)) == NULL || (kc = strdup(key)) == NULL)
		goto unlisted;
	i = c->pc_ntls++;
	t = &c->pc_tls[i];
	t->ts_hash = h;
	t->ts_cert = cc;
	t->ts_key = kc;
	t->ts_busy = true;
	t->ts_ok = false;
	t->ts_why[0] = '\0';
	tls_unlock(c);
	lwhy[0] = '\0';
	ok = dfr_cfg_tls_check_cached(tc, cert, key, lwhy, sizeof(lwhy));
	tls_lock(c);
	t = &c->pc_tls[i]; /* the table may have moved */
	t->ts_ok = ok;
	memcpy(t->ts_why, lwhy, sizeof(t->ts_why));
	t->ts_busy = false;
	if (c->pc_tls_sync != NULL)
		pthread_cond_broadcast(&c->pc_tls_sync->sy_cv);
	tls_unlock(c);
	if (!ok)
		snprintf(why, whylen, "%s", lwhy);
	return ok;
unlisted:
	tls_unlock(c);
	free(cc);
	return dfr_cfg_tls_check_cached(tc, cert, key, why, whylen);
}

static void
tls_seen_free(struct dfr_pctx *c)
{
	for (size_t i = 0; i < c->pc_ntls; i++) {
		explicit_bzero(c->pc_tls[i].ts_key, strlen(c->pc_tls[i].ts_key));
		free(c->pc_tls[i].ts_cert);
		free(c->pc_tls[i].ts_key);
	}
	free(c->pc_tls);
	c->pc_tls = NULL;
	c->pc_ntls = c->pc_tls_cap = 0;
	dfr_cfg_tls_cache_free(&c->pc_tlsc);
}

/* httpProxy.antiDDoS as cJSON prints it compact (what dom_antiddos_json always held), into the
 * domain's arena. Domains mostly share one text: the last one is remembered. */
static char *
antiddos_json(struct dfr_pctx *c, const struct dfr_jv *anti)
{
	char *out;

	if (c->pc_anti_raw == NULL || c->pc_anti_rawlen != anti->jv_rawlen ||
	    memcmp(c->pc_anti_raw, anti->jv_raw, anti->jv_rawlen) != 0) {
		cJSON *t = cJSON_ParseWithLength(anti->jv_raw, anti->jv_rawlen);
		char *p = t != NULL ? cJSON_PrintUnformatted(t) : NULL;
		char *raw = malloc(anti->jv_rawlen + 1);

		cJSON_Delete(t);
		if (p == NULL || raw == NULL) {
			free(p);
			free(raw);
			return NULL;
		}
		memcpy(raw, anti->jv_raw, anti->jv_rawlen);
		free(c->pc_anti_raw);
		free(c->pc_anti_out);
		c->pc_anti_raw = raw;
		c->pc_anti_rawlen = anti->jv_rawlen;
		c->pc_anti_out = p;
		c->pc_anti_outlen = strlen(p);
	}
	if ((out = dfr_arena_alloc_raw(c->pc_ar, c->pc_anti_outlen + 1)) != NULL)
		memcpy(out, c->pc_anti_out, c->pc_anti_outlen + 1);
	return out;
}

static void
pctx_free(struct dfr_pctx *c, bool emit)
{
	flush_held(c, emit);
	tls_seen_free(c);
	free(c->pc_anti_raw);
	free(c->pc_anti_out);
	c->pc_anti_raw = c->pc_anti_out = NULL;
	free(c->pc_lens);
	c->pc_lens = NULL;
	c->pc_lens_cap = 0;
	if (c->pc_jbuf != NULL) {
		explicit_bzero(c->pc_jbuf, c->pc_jcap); /* may hold a key */
		free(c->pc_jbuf);
		c->pc_jbuf = NULL;
		c->pc_jcap = 0;
	}
}

static int
parse_ssl(struct dfr_pctx *c, struct dfr_domain *dom, const struct dfr_jv *js)
{
	struct dfr_ssl *ssl = &dom->dom_ssl;
	const struct dfr_domain *old;
	const char *cert = NULL, *key = NULL, *tok = NULL, *ka = NULL;
	enum dfr_field fc, fk;
	const struct dfr_jv *acme;
	char why[128];

	if (get_bool(js, "enabled", &ssl->ssl_enabled) == F_BAD ||
	    get_bool(js, "autoRenew", &ssl->ssl_auto_renew) == F_BAD)
		return 1;
	acme = dfr_jv_get(js, "acmeHttpChallenge");
	if (acme != NULL && acme->jv_type != DFR_JV_NULL) {
		if (acme->jv_type != DFR_JV_OBJECT || get_str(acme, "token", &tok) == F_BAD ||
		    get_str(acme, "keyAuthorization", &ka) == F_BAD)
			return 1;
		if (tok != NULL && *tok != '\0') {
			ssl->ssl_acme_token = dfr_arena_strdup(c->pc_ar, tok);
			ssl->ssl_acme_key_auth = dfr_arena_strdup(c->pc_ar, ka != NULL ? ka : "");
			if (ssl->ssl_acme_token == NULL || ssl->ssl_acme_key_auth == NULL)
				return DFR_ENOMEM;
		}
	}
	fc = get_str(js, "certificate", &cert);
	fk = get_str(js, "privateKey", &key);
	if (cert != NULL && *cert == '\0')
		cert = NULL;
	if (key != NULL && *key == '\0')
		key = NULL;
	if (fc != F_BAD && fk != F_BAD && cert == NULL && key == NULL)
		return DFR_OK;
	old = dfr_config_find_domain(c->pc_prev, dom->dom_id);
	if (old != NULL && (old->dom_ssl.ssl_cert_pem == NULL || old->dom_ssl.ssl_key_pem == NULL))
		old = NULL;
	if (fc == F_BAD || fk == F_BAD) {
		snprintf(why, sizeof(why), "certificate or privateKey is not a string");
	} else if (old != NULL && cert != NULL && key != NULL &&
	           strcmp(old->dom_ssl.ssl_cert_pem, cert) == 0 &&
	           strcmp(old->dom_ssl.ssl_key_pem, key) == 0) {
		why[0] = '\0'; /* checked when it first came */
	} else if (c->pc_verify_tls &&
	           !tls_check_once(c, &c->pc_tlsc, cert, key, false, why, sizeof(why))) {
		; /* why is set */
	} else if (!c->pc_verify_tls && (cert == NULL || key == NULL)) {
		snprintf(why, sizeof(why), "%s",
		         cert == NULL ? "no certificate" : "no private key");
	} else {
		why[0] = '\0';
	}
	if (why[0] != '\0') {
		drop(c, "tls, certificate for %s rejected (%s)%s", dom->dom_name, why,
		     old != NULL ? ", keeping the previous one" : "");
		if (old == NULL)
			return DFR_OK;
		cert = old->dom_ssl.ssl_cert_pem;
		key = old->dom_ssl.ssl_key_pem;
	}
	ssl->ssl_cert_pem = dfr_arena_strdup(c->pc_ar, cert);
	ssl->ssl_key_pem = dfr_arena_strdup(c->pc_ar, key);
	if (ssl->ssl_cert_pem == NULL || ssl->ssl_key_pem == NULL)
		return DFR_ENOMEM;
	return DFR_OK;
}

/*
 * A domain is built in the parse's scratch arena, then copied once into a block of exactly the
 * bytes it needs: the struct, its record and location arrays, its strings and its canonical JSON,
 * one malloc. (Sizing a domain's memory from its text instead cost twice the data: 10,000 small
 * domains held ~8 KB each where ~3.5 KB are needed.) Strings the parser already shares (a record
 * owner that is the apex, a target that is the value, a location code) stay shared: compared by
 * address, not by content. A first pass counts, remembering each string's length for the second.
 */
struct dcopy {
	char *dc_base; /* NULL: count */
	size_t dc_off;
	size_t *dc_lens; /* of each string, in order, filled when counting */
	size_t dc_n, dc_cap, dc_i;
	bool dc_err;
};

static char *
dc_str(struct dcopy *k, const char *s)
{
	size_t n;
	char *r;

	if (s == NULL)
		return NULL;
	if (k->dc_base == NULL) {
		n = strlen(s) + 1;
		if (k->dc_n == k->dc_cap) {
			size_t cap = k->dc_cap ? k->dc_cap * 2 : 256;
			size_t *p = realloc(k->dc_lens, cap * sizeof(*p));

			if (p == NULL) {
				k->dc_err = true;
				k->dc_off += n;
				return NULL;
			}
			k->dc_lens = p;
			k->dc_cap = cap;
		}
		k->dc_lens[k->dc_n++] = n;
		k->dc_off += n;
		return NULL;
	}
	n = k->dc_lens[k->dc_i++];
	r = k->dc_base + k->dc_off;
	memcpy(r, s, n);
	k->dc_off += n;
	return r;
}

/* The index of the location whose code p is, or n. */
static size_t
loc_index(const struct dfr_domain *s, const char *p)
{
	size_t j = 0;

	while (j < s->dom_nlocations && s->dom_locations[j].loc_code != p)
		j++;
	return j;
}

/* Copies (d != NULL) or counts (d == NULL) the strings of s; d's arrays are already copied. */
static void
dc_domain_strings(struct dcopy *k, const struct dfr_domain *s, struct dfr_domain *d)
{
	char *t;

#define DC_STR(field)                                                                              \
	do {                                                                                       \
		t = dc_str(k, s->field);                                                           \
		if (d != NULL)                                                                     \
			d->field = t;                                                              \
	} while (0)
#define DC_SHARE(field, other)                                                                     \
	do {                                                                                       \
		if (d != NULL)                                                                     \
			d->field = (other);                                                        \
	} while (0)
	DC_STR(dom_id);
	DC_STR(dom_name);
	DC_STR(dom_description);
	DC_STR(dom_antiddos_json);
	DC_STR(dom_ssl.ssl_cert_pem);
	DC_STR(dom_ssl.ssl_key_pem);
	DC_STR(dom_ssl.ssl_acme_token);
	DC_STR(dom_ssl.ssl_acme_key_auth);
	DC_STR(dom_lua_code);
	for (size_t i = 0; i < s->dom_nlocations; i++) {
		const struct dfr_location *l = &s->dom_locations[i];

		DC_STR(dom_locations[i].loc_code);
		if (l->loc_name == l->loc_code)
			DC_SHARE(dom_locations[i].loc_name, d->dom_locations[i].loc_code);
		else
			DC_STR(dom_locations[i].loc_name);
		if (l->loc_subdomain != NULL && l->loc_subdomain == l->loc_code)
			DC_SHARE(dom_locations[i].loc_subdomain, d->dom_locations[i].loc_code);
		else
			DC_STR(dom_locations[i].loc_subdomain);
	}
	for (size_t i = 0; i < s->dom_nrecords; i++) {
		const struct dfr_record *r = &s->dom_records[i];
		size_t j = r->rec_location != NULL ? loc_index(s, r->rec_location) : 0;

		DC_STR(dom_records[i].rec_id);
		if (r->rec_name == s->dom_name)
			DC_SHARE(dom_records[i].rec_name, d->dom_name);
		else
			DC_STR(dom_records[i].rec_name);
		DC_STR(dom_records[i].rec_value);
		if (r->rec_location != NULL && j < s->dom_nlocations)
			DC_SHARE(dom_records[i].rec_location, d->dom_locations[j].loc_code);
		else
			DC_STR(dom_records[i].rec_location);
		switch (r->rec_type) {
		case DFR_RR_SRV:
			DC_STR(dom_records[i].rec_data.srv.target);
			break;
		case DFR_RR_CAA:
			DC_STR(dom_records[i].rec_data.caa.tag);
			DC_STR(dom_records[i].rec_data.caa.value);
			break;
		case DFR_RR_CNAME:
		case DFR_RR_NS:
		case DFR_RR_MX:
			if (r->rec_data.target != NULL && r->rec_data.target == r->rec_value)
				DC_SHARE(dom_records[i].rec_data.target,
				         d->dom_records[i].rec_value);
			else
				DC_STR(dom_records[i].rec_data.target);
			break;
		default:
			break;
		}
	}
#undef DC_STR
#undef DC_SHARE
}

static size_t
round_up(size_t n)
{
	return (n + _Alignof(max_align_t) - 1) & ~(size_t)(_Alignof(max_align_t) - 1);
}

/* The domain s (built in scratch memory) with json[0..jlen) as its dom_json, in one block of
 * its own (dom_mem). NULL on ENOMEM. */
static struct dfr_domain *
domain_compact(struct dfr_pctx *c, const struct dfr_domain *s, const char *json, size_t jlen)
{
	struct dcopy k = {.dc_lens = c->pc_lens, .dc_cap = c->pc_lens_cap};
	struct dfr_arena a;
	struct dfr_domain *d;
	size_t nr = s->dom_nrecords * sizeof(*s->dom_records);
	size_t nl = s->dom_nlocations * sizeof(*s->dom_locations);
	size_t size;

	dc_domain_strings(&k, s, NULL);
	c->pc_lens = k.dc_lens;
	c->pc_lens_cap = k.dc_cap;
	size = round_up(sizeof(*d)) + round_up(nr) + round_up(nl) + k.dc_off + jlen + 1;
	if (k.dc_err || !dfr_arena_init(&a, size))
		return NULL;
	/* The block is sized for exactly these allocations: none of them fails. */
	d = dfr_arena_alloc(&a, sizeof(*d));
	*d = *s;
	d->dom_records = NULL;
	d->dom_locations = NULL;
	if (nr > 0) {
		d->dom_records = dfr_arena_alloc(&a, nr);
		memcpy(d->dom_records, s->dom_records, nr);
	}
	if (nl > 0) {
		d->dom_locations = dfr_arena_alloc(&a, nl);
		memcpy(d->dom_locations, s->dom_locations, nl);
	}
	k.dc_base = dfr_arena_alloc_raw(&a, k.dc_off);
	k.dc_off = 0;
	dc_domain_strings(&k, s, d);
	d->dom_json = dfr_arena_strndup(&a, json, jlen);
	d->dom_json_len = jlen;
	d->dom_mem = a.ar_head;
	return d;
}

/*
 * Parses one domain object. Returns the domain (one reference) or NULL with *rc = 1 when it was
 * dropped (logged, counted), DFR_ENOMEM when memory ran out. The domain is built in c->pc_scratch
 * (the caller resets it) and then copied into one block with everything it holds (dom_mem).
 */
static struct dfr_domain *
parse_domain(struct dfr_pctx *c, const struct dfr_jv *jd, size_t idx, int *rc)
{
	struct dfr_arena *ar = c->pc_scratch;
	struct dfr_domain *dom, *out = NULL;
	size_t jlen;
	const char *id = NULL, *name = NULL, *desc = NULL, *lua = NULL, *ht = NULL;
	const struct dfr_jv *recs, *locs, *hp, *ssl, *anti;
	char nb[DFR_CFG_MAX_NAME + 2], vb[80];
	bool dot;
	int r;

	*rc = DFR_ENOMEM;
	if ((dom = dfr_arena_alloc(ar, sizeof(*dom))) == NULL)
		return NULL;
	memset(dom, 0, sizeof(*dom));
	c->pc_ar = ar;
	dom->dom_refs = 1;
	if (!jv_is(jd, DFR_JV_OBJECT)) {
		drop(c, "config, domain #%zu dropped (not an object)", idx);
		goto bad;
	}
	if (get_str(jd, "id", &id) != F_OK || *id == '\0') {
		drop(c, "config, domain #%zu dropped (no id)", idx);
		goto bad;
	}
	if ((dom->dom_id = dfr_arena_strdup(ar, id)) == NULL)
		goto enomem;
	if (get_str(jd, "domain", &name) != F_OK)
		DOM_DROP("no domain name");
	if (!name_fold(name, nb, &dot) || !name_is_valid(nb, false))
		DOM_DROP("\"%s\" is not a valid zone name", dfr_cfg_excerpt(name, vb, sizeof(vb)));
	if ((dom->dom_name = dfr_arena_strdup(ar, nb)) == NULL)
		goto enomem;
	if (get_str(jd, "description", &desc) == F_BAD)
		DOM_DROP("description is not a string");
	if ((dom->dom_description = dfr_arena_strdup(ar, desc != NULL ? desc : "")) == NULL)
		goto enomem;

	locs = dfr_jv_get(jd, "geoDnsLocations");
	if (locs != NULL && locs->jv_type != DFR_JV_NULL && locs->jv_type != DFR_JV_ARRAY)
		DOM_DROP("geoDnsLocations is not an array");
	if (jv_is(locs, DFR_JV_ARRAY) && parse_locations(c, dom, locs) != DFR_OK)
		goto enomem;
	recs = dfr_jv_get(jd, "dnsRecords");
	if (recs != NULL && recs->jv_type != DFR_JV_NULL && recs->jv_type != DFR_JV_ARRAY)
		DOM_DROP("dnsRecords is not an array");

	hp = dfr_jv_get(jd, "httpProxy");
	if (hp != NULL && hp->jv_type != DFR_JV_NULL) {
		if (hp->jv_type != DFR_JV_OBJECT || get_str(hp, "type", &ht) == F_BAD)
			DOM_DROP("httpProxy is not an object with a string type");
		if (ht == NULL || strcasecmp(ht, "both") == 0)
			dom->dom_http_type = DFR_HTTP_BOTH;
		else if (strcasecmp(ht, "http") == 0)
			dom->dom_http_type = DFR_HTTP_ONLY;
		else if (strcasecmp(ht, "https") == 0)
			dom->dom_http_type = DFR_HTTPS_ONLY;
		else
			dfr_cfg_note(c, false,
			             "config, domain %s httpProxy.type \"%s\" unknown, taken as "
			             "both",
			             dom->dom_name, dfr_cfg_excerpt(ht, vb, sizeof(vb)));
		anti = dfr_jv_get(hp, "antiDDoS");
		if (anti != NULL && anti->jv_type != DFR_JV_NULL) {
			if (anti->jv_type != DFR_JV_OBJECT)
				DOM_DROP("httpProxy.antiDDoS is not an object");
			if ((dom->dom_antiddos_json = antiddos_json(c, anti)) == NULL)
				goto enomem;
		}
	}
	ssl = dfr_jv_get(jd, "ssl");
	if (ssl != NULL && ssl->jv_type != DFR_JV_NULL) {
		if (ssl->jv_type != DFR_JV_OBJECT)
			DOM_DROP("ssl is not an object");
		if ((r = parse_ssl(c, dom, ssl)) == DFR_ENOMEM)
			goto enomem;
		if (r != DFR_OK)
			DOM_DROP("a field of ssl has the wrong type");
	}
	if (get_str(jd, "luaCode", &lua) == F_BAD)
		DOM_DROP("luaCode is not a string");
	if (lua != NULL && *lua != '\0' && (dom->dom_lua_code = dfr_arena_strdup(ar, lua)) == NULL)
		goto enomem;
	/* Records last: the cheap domain-level checks may drop the domain before them. */
	if (jv_is(recs, DFR_JV_ARRAY) && parse_records(c, dom, recs) != DFR_OK)
		goto enomem;
	if (dfr_cfg_domain_write_json(dom, &c->pc_jbuf, &c->pc_jcap, &jlen) != DFR_OK ||
	    (out = domain_compact(c, dom, c->pc_jbuf, jlen)) == NULL)
		goto enomem;
	*rc = DFR_OK;
	goto out;
enomem:
	dfr_log_err("config, domain %s dropped (out of memory)", dom->dom_id ? dom->dom_id : "?");
	*rc = DFR_ENOMEM;
	goto out;
bad:
	*rc = 1;
out:
	c->pc_ar = NULL;
	/* The scratch copy of the key is not left behind (the JSON buffer is wiped at the end of
	 * the parse). */
	if (dom->dom_ssl.ssl_key_pem != NULL)
		explicit_bzero(dom->dom_ssl.ssl_key_pem, strlen(dom->dom_ssl.ssl_key_pem));
	return out;
}

#define PX_DROP(...)                                                                               \
	do {                                                                                       \
		char why_[320];                                                                    \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                         \
		drop(c, "config, proxy %s dropped (%s)", px->px_id, why_);                         \
		goto bad;                                                                          \
	} while (0)

static bool
port_of(const struct dfr_jv *jp, const char *k, uint16_t *out)
{
	double d;

	if (get_num(jp, k, &d) != F_OK || d < 1 || d > 65535 || d != floor(d))
		return false;
	*out = (uint16_t)d;
	return true;
}

static struct dfr_proxy *
parse_proxy(struct dfr_pctx *c, const struct dfr_jv *jp, size_t idx, int *rc)
{
	struct dfr_proxy *px = calloc(1, sizeof(*px));
	const char *id = NULL, *name = NULL, *type = NULL, *host = NULL;
	char hb[DFR_CFG_MAX_NAME + 2], vb[80];
	unsigned char addr[sizeof(struct in6_addr)];
	bool dot;

	*rc = DFR_ENOMEM;
	if (px == NULL)
		return NULL;
	px->px_refs = 1;
	px->px_enabled = true;
	if (!jv_is(jp, DFR_JV_OBJECT) || get_str(jp, "id", &id) != F_OK || *id == '\0') {
		drop(c, "config, proxy #%zu dropped (not an object with an id)", idx);
		goto bad;
	}
	if ((px->px_id = strdup(id)) == NULL)
		goto enomem;
	if (get_str(jp, "name", &name) == F_BAD)
		PX_DROP("name is not a string");
	if ((px->px_name = strdup(name != NULL ? name : "")) == NULL)
		goto enomem;
	if (get_str(jp, "type", &type) != F_OK)
		PX_DROP("no type");
	if (strcasecmp(type, "tcp") == 0)
		px->px_proto = DFR_PROXY_TCP;
	else if (strcasecmp(type, "udp") == 0)
		px->px_proto = DFR_PROXY_UDP;
	else
		PX_DROP("type \"%s\" is not tcp or udp", dfr_cfg_excerpt(type, vb, sizeof(vb)));
	if (!port_of(jp, "sourcePort", &px->px_source_port))
		PX_DROP("sourcePort is not an integer 1..65535");
	if (!port_of(jp, "destinationPort", &px->px_dest_port))
		PX_DROP("destinationPort is not an integer 1..65535");
	if (get_str(jp, "destinationHost", &host) != F_OK || *host == '\0')
		PX_DROP("no destinationHost");
	if (get_bool(jp, "enabled", &px->px_enabled) == F_BAD)
		PX_DROP("enabled is not a boolean");
	if (strlen(host) > DFR_CFG_MAX_NAME + 1)
		PX_DROP("destinationHost too long");
	snprintf(hb, sizeof(hb), "%s", host);
	if (hb[0] == '[' && hb[strlen(hb) - 1] == ']') {
		memmove(hb, hb + 1, strlen(hb) - 2);
		hb[strlen(hb) - 2] = '\0';
	}
	if (inet_pton(AF_INET, hb, addr) == 1) {
		inet_ntop(AF_INET, addr, hb, sizeof(hb));
	} else if (inet_pton(AF_INET6, hb, addr) == 1) {
		inet_ntop(AF_INET6, addr, hb, sizeof(hb));
	} else {
		char tmp[DFR_CFG_MAX_NAME + 2];

		if (!name_fold(hb, tmp, &dot) || !name_is_valid(tmp, false))
			PX_DROP("destinationHost \"%s\" is neither an address nor a host name",
			        dfr_cfg_excerpt(host, vb, sizeof(vb)));
		memcpy(hb, tmp, strlen(tmp) + 1);
	}
	if ((px->px_dest_host = strdup(hb)) == NULL || dfr_cfg_proxy_build_json(px) != DFR_OK)
		goto enomem;
	*rc = DFR_OK;
	return px;
enomem:
	dfr_log_err("config, proxy dropped (out of memory)");
	dfr_cfg_proxy_free(px);
	return NULL;
bad:
	*rc = 1;
	dfr_cfg_proxy_free(px);
	return NULL;
}

struct ent {
	void *e_item;
	const char *e_key;
	size_t e_idx;
};

static int
ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	int c = strcmp(x->e_key, y->e_key);

	return c != 0 ? c : x->e_idx < y->e_idx ? -1 : x->e_idx > y->e_idx;
}

static void
log_summary(struct dfr_pctx *c)
{
	if (c->pc_logged > DFR_CFG_LOG_MAX)
		dfr_log_warn("config, %zu more warnings about the answer not logged one by one",
		             c->pc_logged - DFR_CFG_LOG_MAX);
}

static int
item_cmp_dom(const void *a, const void *b)
{
	return strcmp((*(struct dfr_domain *const *)a)->dom_id,
	              (*(struct dfr_domain *const *)b)->dom_id);
}

static int
item_cmp_px(const void *a, const void *b)
{
	return strcmp((*(struct dfr_proxy *const *)a)->px_id,
	              (*(struct dfr_proxy *const *)b)->px_id);
}

/* Marks later duplicates of e[] (answer order) by key; kills[i] set for the dropped. Each
 * dropped one is logged through `what`. */
static int
mark_dups(struct dfr_pctx *c, struct ent *e, size_t n, bool *dead, const char *what, bool dom)
{
	qsort(e, n, sizeof(*e), ent_cmp);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(e[i].e_key, e[i - 1].e_key) != 0)
			continue;
		/* e[i-1] is the first of the run (lowest index) or itself a dup: either way the
		 * earliest kept is further up; all but the first of a run are dropped. */
		dead[e[i].e_idx] = true;
		if (dom) {
			const struct dfr_domain *d = e[i].e_item;

			drop(c, "config, domain %s %s dropped (%s an earlier domain)", d->dom_id,
			     d->dom_name, what);
		} else {
			drop(c, "config, proxy %s dropped (%s an earlier proxy)",
			     ((const struct dfr_proxy *)e[i].e_item)->px_id, what);
		}
	}
	return DFR_OK;
}

/*
 * Deduplicates items[0..n) (answer order) by id and, for domains, by name, frees the dropped,
 * compacts the rest and sorts them by id. *n is updated.
 */
static int
dedupe(struct dfr_pctx *c, void **items, size_t *n, bool dom)
{
	struct ent *e = NULL;
	bool *dead = NULL;
	size_t m = 0, w = 0;

	if (*n == 0)
		return DFR_OK;
	e = malloc(*n * sizeof(*e));
	dead = calloc(*n, sizeof(*dead));
	if (e == NULL || dead == NULL) {
		free(e);
		free(dead);
		return DFR_ENOMEM;
	}
	for (size_t i = 0; i < *n; i++)
		e[i] = (struct ent){items[i],
		                    dom ? ((struct dfr_domain *)items[i])->dom_id
		                        : ((struct dfr_proxy *)items[i])->px_id,
		                    i};
	mark_dups(c, e, *n, dead, "same id as", dom);
	if (dom) {
		for (size_t i = 0; i < *n; i++)
			if (!dead[i])
				e[m++] = (struct ent){items[i],
				                      ((struct dfr_domain *)items[i])->dom_name, i};
		mark_dups(c, e, m, dead, "same name as", dom);
	}
	for (size_t i = 0; i < *n; i++) {
		if (!dead[i])
			items[w++] = items[i];
		else if (dom)
			dfr_domain_unref(items[i]);
		else
			dfr_proxy_unref(items[i]);
	}
	*n = w;
	qsort(items, w, sizeof(*items), dom ? item_cmp_dom : item_cmp_px);
	free(e);
	free(dead);
	return DFR_OK;
}

static void set_why(const char *what, char *why, size_t whylen, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
set_why(const char *what, char *why, size_t whylen, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	dfr_log_warn("config, %s rejected (%s)", what, line);
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", line);
}

/* Parses the whole text into `ar` (nodes) with cJSON's grammar and the checks parse_tree() always
 * made: no trailing bytes, an object at the root. With `fn`, the root's first "domains" array is
 * streamed to it (see dfr_jv_parse()). */
static struct dfr_jv *
parse_tree(const char *what, const char *json, size_t len, struct dfr_arena *ar,
           dfr_jv_elem_fn fn, void *arg, struct dfr_arena **elem_ar, char *why, size_t whylen,
           int *rc)
{
	struct dfr_jv *root;
	size_t end = 0;
	int cb_rc = DFR_OK;

	*rc = DFR_EPARSE;
	if (json == NULL) {
		set_why(what, why, whylen, "no input");
		return NULL;
	}
	if (len > DFR_CFG_MAX_ANSWER) {
		*rc = DFR_ELIMIT;
		set_why(what, why, whylen, "%zu bytes, more than %u", len, DFR_CFG_MAX_ANSWER);
		return NULL;
	}
	root = dfr_jv_parse(json, len, ar, fn, arg, elem_ar, &end, &cb_rc);
	if (root == NULL) {
		set_why(what, why, whylen, "not JSON, error near byte %zu", end);
		return NULL;
	}
	for (; end < len; end++)
		if (json[end] != ' ' && json[end] != '\t' && json[end] != '\n' && json[end] != '\r')
			break;
	if (end < len) {
		set_why(what, why, whylen, "not JSON, trailing bytes after byte %zu", end);
		return NULL;
	}
	if (root->jv_type != DFR_JV_OBJECT) {
		set_why(what, why, whylen, "not a JSON object");
		return NULL;
	}
	*rc = cb_rc;
	return root;
}

/*
 * The domains of a poll answer as the reader meets them. A large answer is read and built on two
 * threads: the caller's thread reads the text into element trees, batch after batch, and a
 * worker turns each tree into a struct dfr_domain (validation, normalisation, canonical JSON) in
 * answer order, so the drop reasons, the record budget and the result are those of one thread.
 */
#define DOM_BATCH 64               /* domains in a batch, or fewer if their text passes: */
#define DOM_BATCH_BYTES (1u << 20)
#define DOM_BATCHES 4              /* in flight at most: bounds the trees held in memory */
#define DOM_THREAD_MIN (1u << 20) /* below this an answer is built on the caller's thread */

struct dom_batch {
	struct dom_batch *b_next;
	struct dfr_arena b_ar;
	const struct dfr_jv *b_el[DOM_BATCH];
	size_t b_idx[DOM_BATCH];
	size_t b_n;
	size_t b_bytes; /* text of the domains in it */
};

struct dom_sink {
	struct dfr_pctx *ds_c;
	struct dfr_domain **ds_doms;
	size_t ds_n, ds_cap;
	int ds_rc;                  /* DFR_ENOMEM once memory ran out */
	struct dfr_arena *ds_cur_ar; /* where the reader puts the next element */
	/* two threads */
	bool ds_threaded;
	pthread_t ds_thread;
	pthread_mutex_t ds_mu;
	pthread_cond_t ds_cv;
	struct dom_batch *ds_cur;               /* being filled by the reader */
	struct dom_batch *ds_full, **ds_full_tail; /* waiting for the worker */
	struct dom_batch *ds_free;
	size_t ds_nbatches;
	bool ds_done; /* the reader has finished */
	struct dfr_tls_sync ds_tls;  /* the shared table of checked pairs */
	struct dfr_tls_cache ds_tlsc; /* the reader's OpenSSL cache */
	size_t ds_npairs;             /* pairs the reader met that need a check */
	struct dfr_arena ds_single; /* one thread: the element arena */
	struct dfr_arena ds_scratch; /* where each domain is built (pc_scratch), reset after */
};

/* Builds one domain (worker, or the caller's thread). */
static void
sink_build(struct dom_sink *s, const struct dfr_jv *jd, size_t idx)
{
	struct dfr_domain *dom;
	int rc;

	if (s->ds_rc != DFR_OK)
		return;
	if (s->ds_n == s->ds_cap) {
		size_t cap = s->ds_cap ? s->ds_cap * 2 : 1024;
		struct dfr_domain **p = realloc(s->ds_doms, cap * sizeof(*p));

		if (p == NULL) {
			s->ds_rc = DFR_ENOMEM;
			return;
		}
		s->ds_doms = p;
		s->ds_cap = cap;
	}
	dom = parse_domain(s->ds_c, jd, idx, &rc);
	dfr_arena_reset(&s->ds_scratch);
	if (rc == DFR_ENOMEM)
		s->ds_rc = rc;
	else if (dom != NULL)
		s->ds_doms[s->ds_n++] = dom;
}

static void *
sink_worker(void *arg)
{
	struct dom_sink *s = arg;

	pthread_mutex_lock(&s->ds_mu);
	for (;;) {
		struct dom_batch *b = s->ds_full;

		if (b == NULL) {
			if (s->ds_done)
				break;
			pthread_cond_wait(&s->ds_cv, &s->ds_mu);
			continue;
		}
		if ((s->ds_full = b->b_next) == NULL)
			s->ds_full_tail = &s->ds_full;
		pthread_mutex_unlock(&s->ds_mu);
		for (size_t i = 0; i < b->b_n; i++)
			sink_build(s, b->b_el[i], b->b_idx[i]);
		b->b_n = 0;
		b->b_bytes = 0;
		dfr_arena_reset(&b->b_ar);
		pthread_mutex_lock(&s->ds_mu);
		b->b_next = s->ds_free;
		s->ds_free = b;
		pthread_cond_broadcast(&s->ds_cv);
	}
	pthread_mutex_unlock(&s->ds_mu);
	return NULL;
}

/* Hands the batch being filled to the worker and takes an empty one (NULL: out of memory). */
static struct dom_batch *
sink_submit(struct dom_sink *s)
{
	struct dom_batch *b = s->ds_cur, *nb = NULL;

	pthread_mutex_lock(&s->ds_mu);
	if (b != NULL && b->b_n > 0) {
		b->b_next = NULL;
		*s->ds_full_tail = b;
		s->ds_full_tail = &b->b_next;
		pthread_cond_broadcast(&s->ds_cv);
		b = NULL;
	}
	while (b == NULL && s->ds_free == NULL && s->ds_nbatches >= DOM_BATCHES)
		pthread_cond_wait(&s->ds_cv, &s->ds_mu);
	if (b == NULL && s->ds_free != NULL) {
		b = s->ds_free;
		s->ds_free = b->b_next;
	}
	pthread_mutex_unlock(&s->ds_mu);
	if (b == NULL && (nb = calloc(1, sizeof(*nb))) != NULL) {
		if (!dfr_arena_init(&nb->b_ar, 512u << 10)) {
			free(nb);
			nb = NULL;
		} else {
			s->ds_nbatches++; /* only the reader changes it */
			b = nb;
		}
	}
	s->ds_cur = b;
	return b;
}

/*
 * The reader's share of the certificate checks: every other pair it meets that the worker will
 * check (a pair byte-identical to the previous config's for that domain is not checked), checked
 * now into the shared table, where the worker finds the verdict. Only a hint: whatever the reader
 * checks or skips, the worker's result is the same.
 */
static void
sink_precheck(struct dom_sink *s, const struct dfr_jv *jd)
{
	struct dfr_pctx *c = s->ds_c;
	const struct dfr_domain *old;
	const struct dfr_jv *js;
	const char *id = NULL, *cert = NULL, *key = NULL;
	char why[128];

	if (!c->pc_verify_tls || !jv_is(jd, DFR_JV_OBJECT))
		return;
	js = dfr_jv_get(jd, "ssl");
	if (!jv_is(js, DFR_JV_OBJECT) || get_str(js, "certificate", &cert) != F_OK ||
	    get_str(js, "privateKey", &key) != F_OK || cert == NULL || key == NULL ||
	    *cert == '\0' || *key == '\0')
		return;
	if (get_str(jd, "id", &id) == F_OK && id != NULL &&
	    (old = dfr_config_find_domain(c->pc_prev, id)) != NULL &&
	    old->dom_ssl.ssl_cert_pem != NULL && old->dom_ssl.ssl_key_pem != NULL &&
	    strcmp(old->dom_ssl.ssl_cert_pem, cert) == 0 && strcmp(old->dom_ssl.ssl_key_pem, key) == 0)
		return;
	if ((s->ds_npairs++ & 1) != 0)
		return;
	(void)tls_check_once(c, &s->ds_tlsc, cert, key, true, why, sizeof(why));
}

static int
domain_elem(void *arg, const struct dfr_jv *jd, size_t idx)
{
	struct dom_sink *s = arg;
	struct dom_batch *b = s->ds_cur;

	if (!s->ds_threaded) {
		sink_build(s, jd, idx);
		dfr_arena_reset(&s->ds_single);
		return s->ds_rc;
	}
	sink_precheck(s, jd);
	b->b_el[b->b_n] = jd;
	b->b_idx[b->b_n] = idx;
	b->b_bytes += jd->jv_type == DFR_JV_OBJECT ? jd->jv_rawlen : 0;
	if (++b->b_n < DOM_BATCH && b->b_bytes < DOM_BATCH_BYTES)
		return DFR_OK;
	if ((b = sink_submit(s)) == NULL) {
		/* The worker still owns every batch made; stop handing it more. */
		s->ds_cur_ar = &s->ds_single;
		return DFR_ENOMEM;
	}
	s->ds_cur_ar = &b->b_ar;
	return DFR_OK;
}

static bool
sink_start(struct dom_sink *s, struct dfr_pctx *c, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->ds_c = c;
	s->ds_full_tail = &s->ds_full;
	if (!dfr_arena_init(&s->ds_single, 64u << 10))
		return false;
	if (!dfr_arena_init(&s->ds_scratch, 16u << 10)) {
		dfr_arena_free(&s->ds_single);
		return false;
	}
	c->pc_scratch = &s->ds_scratch;
	s->ds_cur_ar = &s->ds_single;
	if (len < DOM_THREAD_MIN)
		return true;
	if (pthread_mutex_init(&s->ds_mu, NULL) != 0)
		return true;
	if (pthread_cond_init(&s->ds_cv, NULL) != 0) {
		pthread_mutex_destroy(&s->ds_mu);
		return true;
	}
	if (pthread_mutex_init(&s->ds_tls.sy_mu, NULL) != 0) {
		pthread_cond_destroy(&s->ds_cv);
		pthread_mutex_destroy(&s->ds_mu);
		return true;
	}
	if (pthread_cond_init(&s->ds_tls.sy_cv, NULL) != 0) {
		pthread_mutex_destroy(&s->ds_tls.sy_mu);
		pthread_cond_destroy(&s->ds_cv);
		pthread_mutex_destroy(&s->ds_mu);
		return true;
	}
	s->ds_threaded = true;
	c->pc_tls_sync = &s->ds_tls;
	if (sink_submit(s) == NULL || dfr_cfg_thread_start(&s->ds_thread, sink_worker, s) != 0) {
		s->ds_threaded = false;
		c->pc_tls_sync = NULL;
		pthread_cond_destroy(&s->ds_tls.sy_cv);
		pthread_mutex_destroy(&s->ds_tls.sy_mu);
		if (s->ds_cur != NULL) {
			dfr_arena_free(&s->ds_cur->b_ar);
			free(s->ds_cur);
			s->ds_cur = NULL;
		}
		pthread_cond_destroy(&s->ds_cv);
		pthread_mutex_destroy(&s->ds_mu);
		return true;
	}
	s->ds_cur_ar = &s->ds_cur->b_ar;
	return true;
}

/* Waits until every element read has been built; the worker is gone after. */
static void
sink_finish(struct dom_sink *s)
{
	struct dom_batch *b;

	if (!s->ds_threaded)
		return;
	pthread_mutex_lock(&s->ds_mu);
	if ((b = s->ds_cur) != NULL && b->b_n > 0) {
		b->b_next = NULL;
		*s->ds_full_tail = b;
		s->ds_full_tail = &b->b_next;
	} else if (b != NULL) {
		b->b_next = s->ds_free;
		s->ds_free = b;
	}
	s->ds_cur = NULL;
	s->ds_done = true;
	pthread_cond_broadcast(&s->ds_cv);
	pthread_mutex_unlock(&s->ds_mu);
	pthread_join(s->ds_thread, NULL);
	while ((b = s->ds_free) != NULL) {
		s->ds_free = b->b_next;
		dfr_arena_free(&b->b_ar);
		free(b);
	}
	pthread_cond_destroy(&s->ds_cv);
	pthread_mutex_destroy(&s->ds_mu);
	s->ds_c->pc_tls_sync = NULL;
	pthread_cond_destroy(&s->ds_tls.sy_cv);
	pthread_mutex_destroy(&s->ds_tls.sy_mu);
	dfr_cfg_tls_cache_free(&s->ds_tlsc);
	s->ds_threaded = false;
}

/* Frees what the sink still holds (the domains not taken). */
static void
sink_free(struct dom_sink *s)
{
	sink_finish(s);
	for (size_t i = 0; i < s->ds_n; i++)
		dfr_domain_unref(s->ds_doms[i]);
	free(s->ds_doms);
	s->ds_doms = NULL;
	s->ds_n = 0;
	dfr_arena_free(&s->ds_single);
	dfr_arena_free(&s->ds_scratch);
}

int
dfr_config_parse(const char *json, size_t len, const struct dfr_config *prev,
                 struct dfr_config **out, char *why, size_t whylen)
{
	struct dfr_pctx c = {.pc_prev = prev, .pc_verify_tls = true, .pc_hold = true};
	struct dom_sink sink;
	struct dfr_arena ar;
	struct dfr_config *cfg = NULL;
	const struct dfr_jv *doms, *pxs, *ag, *it;
	struct dfr_jv *root = NULL;
	const char *s;
	double d;
	size_t i;
	int rc;

	if (!dfr_arena_init(&ar, 64u << 10))
		return DFR_ENOMEM;
	if (!sink_start(&sink, &c, len)) {
		dfr_arena_free(&ar);
		return DFR_ENOMEM;
	}
	/* The domains are parsed as they come; what they logged is held until the answer as a
	 * whole is known to be one. */
	root = parse_tree("poll answer", json, len, &ar, domain_elem, &sink, &sink.ds_cur_ar, why,
	                  whylen, &rc);
	sink_finish(&sink);
	if (root == NULL)
		goto out;
	if (rc == DFR_OK)
		rc = sink.ds_rc;
	if (rc != DFR_OK)
		goto out; /* DFR_ENOMEM from a domain */
	rc = DFR_EPARSE;
	if (!jv_is(dfr_jv_get(root, "success"), DFR_JV_TRUE)) {
		set_why("poll answer", why, whylen, "\"success\" is not true");
		goto out;
	}
	doms = dfr_jv_get(root, "domains");
	pxs = dfr_jv_get(root, "proxies");
	if ((doms != NULL && doms->jv_type != DFR_JV_ARRAY) ||
	    (pxs != NULL && pxs->jv_type != DFR_JV_ARRAY)) {
		set_why("poll answer", why, whylen, "\"domains\" or \"proxies\" is not an array");
		goto out;
	}
	rc = DFR_ENOMEM;
	if ((cfg = dfr_cfg_alloc()) == NULL)
		goto out;
	ag = dfr_jv_get(root, "agent");
	if (jv_is(ag, DFR_JV_OBJECT)) {
		if (get_str(ag, "id", &s) == F_OK && (cfg->cfg_agent.ag_id = strdup(s)) == NULL)
			goto out;
		if (get_str(ag, "name", &s) == F_OK && (cfg->cfg_agent.ag_name = strdup(s)) == NULL)
			goto out;
		if (get_num(ag, "pollingInterval", &d) == F_OK)
			cfg->cfg_agent.ag_polling_interval = (uint32_t)clamp_u(d, UINT32_MAX);
		if (get_num(ag, "inactivityThreshold", &d) == F_OK)
			cfg->cfg_agent.ag_inactivity_threshold = (uint32_t)clamp_u(d, UINT32_MAX);
	}
	if (get_num(root, "nextPollInterval", &d) == F_OK)
		cfg->cfg_next_poll_interval = (uint32_t)clamp_u(d, UINT32_MAX);
	if (get_num(root, "generation", &d) == F_OK)
		cfg->cfg_generation = clamp_u(d, UINT64_MAX);

	cfg->cfg_domains = sink.ds_doms;
	cfg->cfg_ndomains = sink.ds_n;
	sink.ds_doms = NULL;
	sink.ds_n = 0;
	if (dedupe(&c, (void **)cfg->cfg_domains, &cfg->cfg_ndomains, true) != DFR_OK)
		goto out;
	if (pxs != NULL && pxs->jv_n > 0) {
		if ((cfg->cfg_proxies = calloc(pxs->jv_n, sizeof(*cfg->cfg_proxies))) == NULL)
			goto out;
		i = 0;
		jv_foreach(it, pxs)
		{
			struct dfr_proxy *px = parse_proxy(&c, it, i++, &rc);

			if (rc == DFR_ENOMEM)
				goto out;
			if (px != NULL)
				cfg->cfg_proxies[cfg->cfg_nproxies++] = px;
		}
		rc = DFR_ENOMEM;
		if (dedupe(&c, (void **)cfg->cfg_proxies, &cfg->cfg_nproxies, false) != DFR_OK)
			goto out;
	}
	for (i = 0; i < cfg->cfg_ndomains; i++)
		cfg->cfg_nrecords += cfg->cfg_domains[i]->dom_nrecords;
	cfg->cfg_dropped = c.pc_dropped;
	rc = DFR_ENOMEM;
	if (dfr_cfg_index_zones(cfg) != DFR_OK)
		goto out;
	rc = DFR_OK;
	pctx_free(&c, true);
	log_summary(&c);
	*out = cfg;
	cfg = NULL;
out:
	if (rc == DFR_ENOMEM)
		set_why("poll answer", why, whylen, "out of memory");
	pctx_free(&c, false);
	sink_free(&sink);
	dfr_config_unref(cfg);
	dfr_arena_free(&ar);
	return rc;
}

struct dfr_domain *
dfr_domain_from_json(const char *json, size_t len)
{
	struct dfr_pctx c = {.pc_verify_tls = false};
	struct dfr_domain *dom = NULL;
	struct dfr_arena ar;
	struct dfr_jv *root;
	int rc;

	if (!dfr_arena_init(&ar, len + 1024))
		return NULL;
	c.pc_scratch = &ar; /* the domain is built beside the tree, both freed below */
	if ((root = parse_tree("domain JSON", json, len, &ar, NULL, NULL, NULL, NULL, 0, &rc)) !=
	    NULL) {
		dom = parse_domain(&c, root, 0, &rc);
		log_summary(&c);
	}
	pctx_free(&c, false);
	dfr_arena_free(&ar);
	return dom;
}

struct dfr_proxy *
dfr_proxy_from_json(const char *json, size_t len)
{
	struct dfr_pctx c = {0};
	struct dfr_proxy *px = NULL;
	struct dfr_arena ar;
	struct dfr_jv *root;
	int rc;

	if (!dfr_arena_init(&ar, len + 1024))
		return NULL;
	if ((root = parse_tree("proxy JSON", json, len, &ar, NULL, NULL, NULL, NULL, 0, &rc)) !=
	    NULL) {
		px = parse_proxy(&c, root, 0, &rc);
		log_summary(&c);
	}
	pctx_free(&c, false);
	dfr_arena_free(&ar);
	return px;
}
