/*
 * The config model's objects: reference counting, constructors that do not parse (new_empty,
 * apply), look-ups and the record type names. Parsing lives in config_parse.c, the canonical
 * JSON in config_json.c, the diff in config_diff.c.
 *
 * Reference counts are atomic (__atomic builtins) so a reader on any thread may take and drop
 * references; the item is freed by whoever drops the last one. Items are immutable once built.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "log.h"

/* Frees what a record owns and zeroes it; a half-parsed record is fine. */
void
dfr_cfg_record_clear(struct dfr_record *r)
{
	free(r->rec_id);
	free(r->rec_name);
	free(r->rec_value);
	free(r->rec_location);
	switch (r->rec_type) {
	case DFR_RR_SRV:
		free(r->rec_data.srv.target);
		break;
	case DFR_RR_CAA:
		free(r->rec_data.caa.tag);
		free(r->rec_data.caa.value);
		break;
	case DFR_RR_CNAME:
	case DFR_RR_NS:
	case DFR_RR_MX:
		free(r->rec_data.target);
		break;
	default:
		break;
	}
	memset(r, 0, sizeof(*r));
}

void
dfr_cfg_domain_free(struct dfr_domain *dom)
{
	if (dom == NULL)
		return;
	if (dom->dom_mem != NULL) {
		/* A parsed domain: everything, the domain struct and its canonical JSON included,
		 * is in its one block. The key is a secret: do not leave it in freed memory, nor
		 * the JSON that carries it. */
		struct dfr_achunk *mem = dom->dom_mem;

		if (dom->dom_ssl.ssl_key_pem != NULL) {
			explicit_bzero(dom->dom_ssl.ssl_key_pem, strlen(dom->dom_ssl.ssl_key_pem));
			if (dom->dom_json != NULL)
				explicit_bzero(dom->dom_json, dom->dom_json_len);
		}
		dfr_achunks_free(mem);
		return;
	}
	for (size_t i = 0; i < dom->dom_nrecords; i++)
		dfr_cfg_record_clear(&dom->dom_records[i]);
	free(dom->dom_records);
	for (size_t i = 0; i < dom->dom_nlocations; i++) {
		free(dom->dom_locations[i].loc_code);
		free(dom->dom_locations[i].loc_name);
		free(dom->dom_locations[i].loc_subdomain);
	}
	free(dom->dom_locations);
	free(dom->dom_id);
	free(dom->dom_name);
	free(dom->dom_description);
	free(dom->dom_antiddos_json);
	free(dom->dom_ssl.ssl_cert_pem);
	if (dom->dom_ssl.ssl_key_pem != NULL) {
		/* A secret: do not leave it in freed memory. */
		explicit_bzero(dom->dom_ssl.ssl_key_pem, strlen(dom->dom_ssl.ssl_key_pem));
		free(dom->dom_ssl.ssl_key_pem);
	}
	free(dom->dom_ssl.ssl_acme_token);
	free(dom->dom_ssl.ssl_acme_key_auth);
	free(dom->dom_lua_code);
	if (dom->dom_json != NULL) {
		/* Carries the key too. */
		explicit_bzero(dom->dom_json, dom->dom_json_len);
		free(dom->dom_json);
	}
	free(dom);
}

void
dfr_cfg_proxy_free(struct dfr_proxy *px)
{
	if (px == NULL)
		return;
	free(px->px_id);
	free(px->px_name);
	free(px->px_dest_host);
	free(px->px_json);
	free(px);
}

struct dfr_domain *
dfr_domain_ref(struct dfr_domain *dom)
{
	if (dom != NULL)
		__atomic_add_fetch(&dom->dom_refs, 1, __ATOMIC_RELAXED);
	return dom;
}

void
dfr_domain_unref(struct dfr_domain *dom)
{
	if (dom != NULL && __atomic_sub_fetch(&dom->dom_refs, 1, __ATOMIC_ACQ_REL) == 0)
		dfr_cfg_domain_free(dom);
}

struct dfr_proxy *
dfr_proxy_ref(struct dfr_proxy *px)
{
	if (px != NULL)
		__atomic_add_fetch(&px->px_refs, 1, __ATOMIC_RELAXED);
	return px;
}

void
dfr_proxy_unref(struct dfr_proxy *px)
{
	if (px != NULL && __atomic_sub_fetch(&px->px_refs, 1, __ATOMIC_ACQ_REL) == 0)
		dfr_cfg_proxy_free(px);
}

struct dfr_config *
dfr_config_ref(struct dfr_config *cfg)
{
	if (cfg != NULL)
		__atomic_add_fetch(&cfg->cfg_refs, 1, __ATOMIC_RELAXED);
	return cfg;
}

static void
config_free(struct dfr_config *cfg)
{
	for (size_t i = 0; i < cfg->cfg_ndomains; i++)
		dfr_domain_unref(cfg->cfg_domains[i]);
	for (size_t i = 0; i < cfg->cfg_nproxies; i++)
		dfr_proxy_unref(cfg->cfg_proxies[i]);
	free(cfg->cfg_domains);
	free(cfg->cfg_zones);
	free(cfg->cfg_proxies);
	free(cfg->cfg_agent.ag_id);
	free(cfg->cfg_agent.ag_name);
	free(cfg);
}

void
dfr_config_unref(struct dfr_config *cfg)
{
	if (cfg != NULL && __atomic_sub_fetch(&cfg->cfg_refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(cfg);
}

struct dfr_config *
dfr_cfg_alloc(void)
{
	struct dfr_config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL) {
		dfr_log_err("config, cannot allocate a config (out of memory)");
		return NULL;
	}
	cfg->cfg_refs = 1;
	return cfg;
}

struct dfr_config *
dfr_config_new_empty(void)
{
	return dfr_cfg_alloc();
}

static int
zone_cmp(const void *a, const void *b)
{
	const struct dfr_domain *x = *(struct dfr_domain *const *)a;
	const struct dfr_domain *y = *(struct dfr_domain *const *)b;
	int c = strcmp(x->dom_name, y->dom_name);

	return c != 0 ? c : strcmp(x->dom_id, y->dom_id);
}

int
dfr_cfg_index_zones(struct dfr_config *cfg)
{
	free(cfg->cfg_zones);
	cfg->cfg_zones = NULL;
	if (cfg->cfg_ndomains == 0)
		return DFR_OK;
	cfg->cfg_zones = malloc(cfg->cfg_ndomains * sizeof(*cfg->cfg_zones));
	if (cfg->cfg_zones == NULL)
		return DFR_ENOMEM;
	memcpy(cfg->cfg_zones, cfg->cfg_domains, cfg->cfg_ndomains * sizeof(*cfg->cfg_zones));
	qsort(cfg->cfg_zones, cfg->cfg_ndomains, sizeof(*cfg->cfg_zones), zone_cmp);
	return DFR_OK;
}

const struct dfr_domain *
dfr_config_find_domain(const struct dfr_config *cfg, const char *id)
{
	size_t lo = 0, hi;

	if (cfg == NULL || id == NULL)
		return NULL;
	hi = cfg->cfg_ndomains;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, cfg->cfg_domains[mid]->dom_id);

		if (c == 0)
			return cfg->cfg_domains[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Returns the first domain of that name in (name, id) order: a config made by apply() may hold
 * two domains of one name for a moment (a rename seen in two deltas); the parser never makes one.
 */
const struct dfr_domain *
dfr_config_find_zone(const struct dfr_config *cfg, const char *name)
{
	size_t lo = 0, hi;

	if (cfg == NULL || name == NULL)
		return NULL;
	if (cfg->cfg_zones == NULL) {
		for (size_t i = 0; i < cfg->cfg_ndomains; i++)
			if (strcmp(cfg->cfg_domains[i]->dom_name, name) == 0)
				return cfg->cfg_domains[i];
		return NULL;
	}
	hi = cfg->cfg_ndomains;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(cfg->cfg_zones[mid]->dom_name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < cfg->cfg_ndomains && strcmp(cfg->cfg_zones[lo]->dom_name, name) == 0)
		return cfg->cfg_zones[lo];
	return NULL;
}

const struct dfr_proxy *
dfr_config_find_proxy(const struct dfr_config *cfg, const char *id)
{
	size_t lo = 0, hi;

	if (cfg == NULL || id == NULL)
		return NULL;
	hi = cfg->cfg_nproxies;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, cfg->cfg_proxies[mid]->px_id);

		if (c == 0)
			return cfg->cfg_proxies[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const struct {
	enum dfr_rr_type t;
	const char *name;
} rr_names[] = {
        {DFR_RR_A, "A"},     {DFR_RR_NS, "NS"},     {DFR_RR_CNAME, "CNAME"}, {DFR_RR_MX, "MX"},
        {DFR_RR_TXT, "TXT"}, {DFR_RR_AAAA, "AAAA"}, {DFR_RR_SRV, "SRV"},     {DFR_RR_CAA, "CAA"},
};

const char *
dfr_rr_type_name(enum dfr_rr_type t)
{
	for (size_t i = 0; i < sizeof(rr_names) / sizeof(rr_names[0]); i++)
		if (rr_names[i].t == t)
			return rr_names[i].name;
	return NULL;
}

/* Case-insensitive: the Core writes upper case, a hand-written config may not. */
enum dfr_rr_type
dfr_rr_type_from_name(const char *name)
{
	if (name == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(rr_names) / sizeof(rr_names[0]); i++)
		if (strcasecmp(rr_names[i].name, name) == 0)
			return rr_names[i].t;
	return 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool
is_removed(const char **rm, size_t n, const char *id)
{
	return n > 0 && bsearch(&id, rm, n, sizeof(*rm), str_cmp) != NULL;
}

/*
 * Merges base items (sorted by id) with upserts (sorted here; of equal ids the last given wins)
 * minus removes (applied last: an id both upserted and removed is removed). A macro because it
 * is the same walk for domains and proxies; returns the new array (refs taken) and its length.
 */
#define APPLY_MERGE(T, IDF, REF)                                                                   \
	struct T##_up {                                                                            \
		T *p;                                                                              \
		size_t k;                                                                          \
	};                                                                                         \
	static int T##_up_cmp(const void *a, const void *b)                                        \
	{                                                                                          \
		const struct T##_up *x = a, *y = b;                                                \
		int c = strcmp(x->p->IDF, y->p->IDF);                                              \
		return c != 0 ? c : x->k < y->k ? -1 : x->k > y->k;                                \
	}                                                                                          \
	static int apply_##T(T *const *base, size_t nbase, T **ups, size_t nups,                   \
	                     const char *const *rms, size_t nrms, T ***out, size_t *nout)          \
	{                                                                                          \
		struct T##_up *u = NULL;                                                           \
		T **res = NULL;                                                                    \
		const char **rm = NULL;                                                            \
		size_t nu = 0, n = 0, i = 0, j = 0;                                                \
		int rc = DFR_ENOMEM;                                                               \
                                                                                                   \
		if (nups > 0 && (u = malloc(nups * sizeof(*u))) == NULL)                           \
			goto out;                                                                  \
		if (nrms > 0 && (rm = malloc(nrms * sizeof(*rm))) == NULL)                         \
			goto out;                                                                  \
		if ((res = malloc((nbase + nups + 1) * sizeof(*res))) == NULL)                     \
			goto out;                                                                  \
		for (size_t k = 0; k < nups; k++)                                                  \
			u[k] = (struct T##_up){ups[k], k};                                         \
		if (nrms > 0)                                                                      \
			memcpy(rm, rms, nrms * sizeof(*rm));                                       \
		if (nups > 0)                                                                      \
			qsort(u, nups, sizeof(*u), T##_up_cmp);                                    \
		/* Of equal ids keep the last given (the highest k, last of its run). */           \
		for (size_t k = 0; k < nups; k++) {                                                \
			if (k + 1 < nups && strcmp(u[k].p->IDF, u[k + 1].p->IDF) == 0)             \
				continue;                                                          \
			u[nu++] = u[k];                                                            \
		}                                                                                  \
		if (nrms > 0)                                                                      \
			qsort(rm, nrms, sizeof(*rm), str_cmp);                                     \
		while (i < nbase || j < nu) {                                                      \
			T *pick;                                                                   \
			int c = i >= nbase ? 1 : j >= nu ? -1 : strcmp(base[i]->IDF, u[j].p->IDF); \
			if (c < 0)                                                                 \
				pick = base[i++];                                                  \
			else if (c > 0)                                                            \
				pick = u[j++].p;                                                   \
			else {                                                                     \
				pick = u[j++].p;                                                   \
				i++;                                                               \
			}                                                                          \
			if (!is_removed(rm, nrms, pick->IDF))                                      \
				res[n++] = REF(pick);                                              \
		}                                                                                  \
		*out = res;                                                                        \
		*nout = n;                                                                         \
		res = NULL;                                                                        \
		rc = DFR_OK;                                                                       \
	out:                                                                                       \
		free(u);                                                                           \
		free(rm);                                                                          \
		free(res);                                                                         \
		return rc;                                                                         \
	}

typedef struct dfr_domain dom_t;
typedef struct dfr_proxy px_t;
APPLY_MERGE(dom_t, dom_id, dfr_domain_ref)
APPLY_MERGE(px_t, px_id, dfr_proxy_ref)

struct dfr_config *
dfr_config_apply(const struct dfr_config *base, struct dfr_domain **dom_upserts,
                 size_t ndom_upserts, const char *const *dom_removes, size_t ndom_removes,
                 struct dfr_proxy **px_upserts, size_t npx_upserts, const char *const *px_removes,
                 size_t npx_removes)
{
	struct dfr_config *cfg = dfr_cfg_alloc();
	static struct dfr_config empty;

	if (cfg == NULL)
		return NULL;
	if (base == NULL)
		base = &empty;
	cfg->cfg_generation = base->cfg_generation;
	cfg->cfg_next_poll_interval = base->cfg_next_poll_interval;
	cfg->cfg_agent = base->cfg_agent;
	cfg->cfg_agent.ag_id = base->cfg_agent.ag_id ? strdup(base->cfg_agent.ag_id) : NULL;
	cfg->cfg_agent.ag_name = base->cfg_agent.ag_name ? strdup(base->cfg_agent.ag_name) : NULL;
	if ((base->cfg_agent.ag_id && !cfg->cfg_agent.ag_id) ||
	    (base->cfg_agent.ag_name && !cfg->cfg_agent.ag_name))
		goto fail;
	if (apply_dom_t(base->cfg_domains, base->cfg_ndomains, dom_upserts, ndom_upserts,
	                dom_removes, ndom_removes, &cfg->cfg_domains, &cfg->cfg_ndomains) != DFR_OK)
		goto fail;
	if (apply_px_t(base->cfg_proxies, base->cfg_nproxies, px_upserts, npx_upserts, px_removes,
	               npx_removes, &cfg->cfg_proxies, &cfg->cfg_nproxies) != DFR_OK)
		goto fail;
	for (size_t i = 0; i < cfg->cfg_ndomains; i++)
		cfg->cfg_nrecords += cfg->cfg_domains[i]->dom_nrecords;
	/* Nothing is validated here: what was dropped was counted when the items were parsed. */
	cfg->cfg_dropped = 0;
	if (dfr_cfg_index_zones(cfg) != DFR_OK)
		goto fail;
	return cfg;
fail:
	dfr_log_err("config, cannot apply a delta (out of memory)");
	dfr_config_unref(cfg);
	return NULL;
}
