/*
 * The parser of the Core's poll answer (core-api.md) into the config model, and of the
 * canonical JSON of one domain or proxy (config_json.c writes it in the same shape, so one
 * parser serves both). cJSON builds the tree; this file validates and normalises every field so
 * no daemon has to. It does not fetch anything, keep state between polls, or decide what to do
 * with a config: that is syncd's job.
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
 *    A pair byte-identical to prev's is not checked again (10,000 domains per poll). The
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

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
	dfr_log_warn("%s", line);
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
parse_locations(struct dfr_pctx *c, struct dfr_domain *dom, const cJSON *arr)
{
	const cJSON *jl;
	size_t n = (size_t)cJSON_GetArraySize(arr);

	if (n == 0)
		return DFR_OK;
	if ((dom->dom_locations = calloc(n, sizeof(*dom->dom_locations))) == NULL)
		return DFR_ENOMEM;
	cJSON_ArrayForEach(jl, arr)
	{
		struct dfr_location *l = &dom->dom_locations[dom->dom_nlocations];
		const char *code = NULL, *name = NULL, *type = NULL, *sub = NULL;
		char cb[64], vb[80];

		if (!cJSON_IsObject(jl) || get_str(jl, "code", &code) != F_OK ||
		    get_str(jl, "name", &name) == F_BAD || get_str(jl, "type", &type) == F_BAD ||
		    get_str(jl, "subdomain", &sub) == F_BAD || strlen(code) > 63) {
			drop(c,
			     "config, domain %s, a geoDnsLocations entry dropped (not an object "
			     "with a string code)",
			     dom->dom_id);
			continue;
		}
		snprintf(cb, sizeof(cb), "%s", code);
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
		l->loc_code = strdup(cb);
		l->loc_name = strdup(name != NULL ? name : "");
		l->loc_subdomain = xstrdup(sub);
		dom->dom_nlocations++;
		if (l->loc_code == NULL || l->loc_name == NULL ||
		    (sub != NULL && !l->loc_subdomain))
			return DFR_ENOMEM;
	}
	return DFR_OK;
}

static int
parse_records(struct dfr_pctx *c, struct dfr_domain *dom, const cJSON *arr)
{
	struct dfr_record *recs;
	const cJSON *jr;
	size_t n = (size_t)cJSON_GetArraySize(arr), k = 0, w = 0;
	bool mixed = false;
	int rc;

	if (n == 0)
		return DFR_OK;
	if ((recs = dom->dom_records = calloc(n, sizeof(*recs))) == NULL)
		return DFR_ENOMEM;
	cJSON_ArrayForEach(jr, arr)
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

static int
parse_ssl(struct dfr_pctx *c, struct dfr_domain *dom, const cJSON *js)
{
	struct dfr_ssl *ssl = &dom->dom_ssl;
	const struct dfr_domain *old;
	const char *cert = NULL, *key = NULL, *tok = NULL, *ka = NULL;
	enum dfr_field fc, fk;
	const cJSON *acme;
	char why[128];

	if (get_bool(js, "enabled", &ssl->ssl_enabled) == F_BAD ||
	    get_bool(js, "autoRenew", &ssl->ssl_auto_renew) == F_BAD)
		return 1;
	acme = cJSON_GetObjectItemCaseSensitive(js, "acmeHttpChallenge");
	if (acme != NULL && !cJSON_IsNull(acme)) {
		if (!cJSON_IsObject(acme) || get_str(acme, "token", &tok) == F_BAD ||
		    get_str(acme, "keyAuthorization", &ka) == F_BAD)
			return 1;
		if (tok != NULL && *tok != '\0') {
			ssl->ssl_acme_token = strdup(tok);
			ssl->ssl_acme_key_auth = strdup(ka != NULL ? ka : "");
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
	} else if (c->pc_verify_tls && !dfr_cfg_tls_check(cert, key, why, sizeof(why))) {
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
	ssl->ssl_cert_pem = strdup(cert);
	ssl->ssl_key_pem = strdup(key);
	if (ssl->ssl_cert_pem == NULL || ssl->ssl_key_pem == NULL)
		return DFR_ENOMEM;
	return DFR_OK;
}

/*
 * Parses one domain object. Returns the domain (one reference) or NULL with *rc = 1 when it was
 * dropped (logged, counted), DFR_ENOMEM when memory ran out.
 */
static struct dfr_domain *
parse_domain(struct dfr_pctx *c, const cJSON *jd, size_t idx, int *rc)
{
	struct dfr_domain *dom = calloc(1, sizeof(*dom));
	const char *id = NULL, *name = NULL, *desc = NULL, *lua = NULL, *ht = NULL;
	const cJSON *recs, *locs, *hp, *ssl, *anti;
	char nb[DFR_CFG_MAX_NAME + 2], vb[80];
	bool dot;
	int r;

	*rc = DFR_ENOMEM;
	if (dom == NULL)
		return NULL;
	dom->dom_refs = 1;
	if (!cJSON_IsObject(jd)) {
		drop(c, "config, domain #%zu dropped (not an object)", idx);
		goto bad;
	}
	if (get_str(jd, "id", &id) != F_OK || *id == '\0') {
		drop(c, "config, domain #%zu dropped (no id)", idx);
		goto bad;
	}
	if ((dom->dom_id = strdup(id)) == NULL)
		goto enomem;
	if (get_str(jd, "domain", &name) != F_OK)
		DOM_DROP("no domain name");
	if (!name_fold(name, nb, &dot) || !name_is_valid(nb, false))
		DOM_DROP("\"%s\" is not a valid zone name", dfr_cfg_excerpt(name, vb, sizeof(vb)));
	if ((dom->dom_name = strdup(nb)) == NULL)
		goto enomem;
	if (get_str(jd, "description", &desc) == F_BAD)
		DOM_DROP("description is not a string");
	if ((dom->dom_description = strdup(desc != NULL ? desc : "")) == NULL)
		goto enomem;

	locs = cJSON_GetObjectItemCaseSensitive(jd, "geoDnsLocations");
	if (locs != NULL && !cJSON_IsNull(locs) && !cJSON_IsArray(locs))
		DOM_DROP("geoDnsLocations is not an array");
	if (cJSON_IsArray(locs) && parse_locations(c, dom, locs) != DFR_OK)
		goto enomem;
	recs = cJSON_GetObjectItemCaseSensitive(jd, "dnsRecords");
	if (recs != NULL && !cJSON_IsNull(recs) && !cJSON_IsArray(recs))
		DOM_DROP("dnsRecords is not an array");

	hp = cJSON_GetObjectItemCaseSensitive(jd, "httpProxy");
	if (hp != NULL && !cJSON_IsNull(hp)) {
		if (!cJSON_IsObject(hp) || get_str(hp, "type", &ht) == F_BAD)
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
		anti = cJSON_GetObjectItemCaseSensitive(hp, "antiDDoS");
		if (anti != NULL && !cJSON_IsNull(anti)) {
			if (!cJSON_IsObject(anti))
				DOM_DROP("httpProxy.antiDDoS is not an object");
			if ((dom->dom_antiddos_json = cJSON_PrintUnformatted(anti)) == NULL)
				goto enomem;
		}
	}
	ssl = cJSON_GetObjectItemCaseSensitive(jd, "ssl");
	if (ssl != NULL && !cJSON_IsNull(ssl)) {
		if (!cJSON_IsObject(ssl))
			DOM_DROP("ssl is not an object");
		if ((r = parse_ssl(c, dom, ssl)) == DFR_ENOMEM)
			goto enomem;
		if (r != DFR_OK)
			DOM_DROP("a field of ssl has the wrong type");
	}
	if (get_str(jd, "luaCode", &lua) == F_BAD)
		DOM_DROP("luaCode is not a string");
	if (lua != NULL && *lua != '\0' && (dom->dom_lua_code = strdup(lua)) == NULL)
		goto enomem;
	/* Records last: the cheap domain-level checks may drop the domain before them. */
	if (cJSON_IsArray(recs) && parse_records(c, dom, recs) != DFR_OK)
		goto enomem;
	if (dfr_cfg_domain_build_json(dom) != DFR_OK)
		goto enomem;
	*rc = DFR_OK;
	return dom;
enomem:
	dfr_log_err("config, domain %s dropped (out of memory)", dom->dom_id ? dom->dom_id : "?");
	*rc = DFR_ENOMEM;
	dfr_cfg_domain_free(dom);
	return NULL;
bad:
	*rc = 1;
	dfr_cfg_domain_free(dom);
	return NULL;
}

#define PX_DROP(...)                                                                               \
	do {                                                                                       \
		char why_[320];                                                                    \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                         \
		drop(c, "config, proxy %s dropped (%s)", px->px_id, why_);                         \
		goto bad;                                                                          \
	} while (0)

static bool
port_of(const cJSON *jp, const char *k, uint16_t *out)
{
	double d;

	if (get_num(jp, k, &d) != F_OK || d < 1 || d > 65535 || d != floor(d))
		return false;
	*out = (uint16_t)d;
	return true;
}

static struct dfr_proxy *
parse_proxy(struct dfr_pctx *c, const cJSON *jp, size_t idx, int *rc)
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
	if (!cJSON_IsObject(jp) || get_str(jp, "id", &id) != F_OK || *id == '\0') {
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

static cJSON *
parse_tree(const char *what, const char *json, size_t len, char *why, size_t whylen, int *rc)
{
	const char *end = NULL;
	cJSON *root;

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
	root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (root == NULL) {
		/* cJSON sets `end` to the error position (its global error pointer is not
		 * thread-safe, and this runs on any thread). */
		set_why(what, why, whylen, "not JSON, error near byte %zu",
		        end != NULL && end >= json && end <= json + len ? (size_t)(end - json)
		                                                        : len);
		return NULL;
	}
	for (; end != NULL && end < json + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
			break;
	if (end != NULL && end < json + len) {
		set_why(what, why, whylen, "not JSON, trailing bytes after byte %zu",
		        (size_t)(end - json));
		cJSON_Delete(root);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		set_why(what, why, whylen, "not a JSON object");
		cJSON_Delete(root);
		return NULL;
	}
	*rc = DFR_OK;
	return root;
}

int
dfr_config_parse(const char *json, size_t len, const struct dfr_config *prev,
                 struct dfr_config **out, char *why, size_t whylen)
{
	struct dfr_pctx c = {.pc_prev = prev, .pc_verify_tls = true};
	struct dfr_config *cfg = NULL;
	const cJSON *doms, *pxs, *ag, *it;
	cJSON *root;
	const char *s;
	double d;
	size_t i;
	int rc;

	if ((root = parse_tree("poll answer", json, len, why, whylen, &rc)) == NULL)
		return rc;
	rc = DFR_EPARSE;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "success"))) {
		set_why("poll answer", why, whylen, "\"success\" is not true");
		goto out;
	}
	doms = cJSON_GetObjectItemCaseSensitive(root, "domains");
	pxs = cJSON_GetObjectItemCaseSensitive(root, "proxies");
	if ((doms != NULL && !cJSON_IsArray(doms)) || (pxs != NULL && !cJSON_IsArray(pxs))) {
		set_why("poll answer", why, whylen, "\"domains\" or \"proxies\" is not an array");
		goto out;
	}
	rc = DFR_ENOMEM;
	if ((cfg = dfr_cfg_alloc()) == NULL)
		goto out;
	ag = cJSON_GetObjectItemCaseSensitive(root, "agent");
	if (cJSON_IsObject(ag)) {
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

	if (doms != NULL && doms->child != NULL) {
		size_t n = (size_t)cJSON_GetArraySize(doms);

		if ((cfg->cfg_domains = calloc(n, sizeof(*cfg->cfg_domains))) == NULL)
			goto out;
		i = 0;
		cJSON_ArrayForEach(it, doms)
		{
			struct dfr_domain *dom = parse_domain(&c, it, i++, &rc);

			if (rc == DFR_ENOMEM)
				goto out;
			if (dom != NULL)
				cfg->cfg_domains[cfg->cfg_ndomains++] = dom;
		}
		if (dedupe(&c, (void **)cfg->cfg_domains, &cfg->cfg_ndomains, true) != DFR_OK) {
			rc = DFR_ENOMEM;
			goto out;
		}
	}
	if (pxs != NULL && pxs->child != NULL) {
		size_t n = (size_t)cJSON_GetArraySize(pxs);

		rc = DFR_ENOMEM;
		if ((cfg->cfg_proxies = calloc(n, sizeof(*cfg->cfg_proxies))) == NULL)
			goto out;
		i = 0;
		cJSON_ArrayForEach(it, pxs)
		{
			struct dfr_proxy *px = parse_proxy(&c, it, i++, &rc);

			if (rc == DFR_ENOMEM)
				goto out;
			if (px != NULL)
				cfg->cfg_proxies[cfg->cfg_nproxies++] = px;
		}
		if (dedupe(&c, (void **)cfg->cfg_proxies, &cfg->cfg_nproxies, false) != DFR_OK) {
			rc = DFR_ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < cfg->cfg_ndomains; i++)
		cfg->cfg_nrecords += cfg->cfg_domains[i]->dom_nrecords;
	cfg->cfg_dropped = c.pc_dropped;
	rc = DFR_ENOMEM;
	if (dfr_cfg_index_zones(cfg) != DFR_OK)
		goto out;
	rc = DFR_OK;
	log_summary(&c);
	*out = cfg;
	cfg = NULL;
out:
	if (rc == DFR_ENOMEM)
		set_why("poll answer", why, whylen, "out of memory");
	dfr_config_unref(cfg);
	cJSON_Delete(root);
	return rc;
}

struct dfr_domain *
dfr_domain_from_json(const char *json, size_t len)
{
	struct dfr_pctx c = {.pc_verify_tls = false};
	struct dfr_domain *dom;
	cJSON *root;
	int rc;

	if ((root = parse_tree("domain JSON", json, len, NULL, 0, &rc)) == NULL)
		return NULL;
	dom = parse_domain(&c, root, 0, &rc);
	log_summary(&c);
	cJSON_Delete(root);
	return dom;
}

struct dfr_proxy *
dfr_proxy_from_json(const char *json, size_t len)
{
	struct dfr_pctx c = {0};
	struct dfr_proxy *px;
	cJSON *root;
	int rc;

	if ((root = parse_tree("proxy JSON", json, len, NULL, 0, &rc)) == NULL)
		return NULL;
	px = parse_proxy(&c, root, 0, &rc);
	log_summary(&c);
	cJSON_Delete(root);
	return px;
}
