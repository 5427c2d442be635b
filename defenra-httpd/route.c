/*
 * Host -> route on one config generation.
 *
 * A route table is built aside from a struct dfr_config when a generation arrives (bus.c),
 * never modified afterwards, and reference-counted: a connection holds a reference for one
 * request, so a swap never changes a request in flight (STYLE.md §8). The table copies what it
 * needs and keeps no pointer into the config.
 *
 * The rule (docs/httpd.md): the Host names an owner name of a zone. When a record of that name
 * has httpProxyEnabled, the backend is that record's value: an A/AAAA address (A first), or a
 * CNAME followed through the config's names to an A/AAAA. A proxied wildcard `*.zone` record
 * stands for names without records of their own. A name of a zone (or its apex) with records
 * but none proxied gets 403; a name inside a zone without any record 404, as does a Host
 * under no zone. Unlike the Go agent, a host never falls back to "the first proxied record of
 * the zone".
 *
 * Each zone with ssl enabled and a certificate also gets its TLS context here (tls.c, cached
 * across generations), which the SNI callback finds through route_zone_lookup().
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define CNAME_MAX_HOPS 8

static uint64_t
hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static size_t
pow2_at_least(size_t n)
{
	size_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

/* Build-time view of one owner name: its records in config order. */
struct bname {
	const char *bn_name;
	const struct dfr_domain *bn_dom;
	size_t bn_zone;
	bool bn_proxied;
	const struct dfr_record *bn_a, *bn_aaaa, *bn_cname;
	struct bname *bn_next;
};

struct bindex {
	struct bname **bi_buckets;
	size_t bi_nbuckets;
	struct bname *bi_names;
	size_t bi_n;
};

static struct bname *
bindex_find(const struct bindex *bi, const char *name)
{
	struct bname *bn = bi->bi_buckets[hash_name(name) & (bi->bi_nbuckets - 1)];

	for (; bn != NULL; bn = bn->bn_next)
		if (strcmp(bn->bn_name, name) == 0)
			return bn;
	return NULL;
}

static const struct route_zone *
zone_find(const struct route_table *t, const char *name)
{
	size_t mask = t->rtab_nzone_buckets - 1;

	for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
		const struct route_zone *z = t->rtab_zone_buckets[i];

		if (z == NULL)
			return NULL;
		if (strcmp(z->rz_name, name) == 0)
			return z;
	}
}

static void
set_addr(struct route *r, const struct dfr_record *rec, uint16_t port)
{
	memset(&r->rt_addr, 0, sizeof(r->rt_addr));
	if (rec->rec_type == DFR_RR_A) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&r->rt_addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = rec->rec_data.a;
		r->rt_addrlen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, r->rt_addr_text, sizeof(r->rt_addr_text));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->rt_addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = rec->rec_data.aaaa;
		r->rt_addrlen = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, r->rt_addr_text, sizeof(r->rt_addr_text));
	}
	r->rt_has_backend = true;
}

/* The A (else AAAA) record that name resolves to, following CNAMEs through the config. */
static const struct dfr_record *
resolve(const struct bindex *bi, const struct bname *bn)
{
	for (int hop = 0; bn != NULL && hop <= CNAME_MAX_HOPS; hop++) {
		if (bn->bn_a != NULL)
			return bn->bn_a;
		if (bn->bn_aaaa != NULL)
			return bn->bn_aaaa;
		if (bn->bn_cname == NULL)
			return NULL;
		bn = bindex_find(bi, bn->bn_cname->rec_data.target);
	}
	return NULL;
}

static void
zone_free(struct route_zone *z)
{
	free(z->rz_name);
	free(z->rz_id);
	free(z->rz_acme_token);
	free(z->rz_acme_key_auth);
	tls_cert_unref(z->rz_tls);
}

static char *
xstrdup(const char *s, bool *fail)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*fail = true;
	return d;
}

struct route_table *
route_table_build(const struct dfr_config *cfg, uint16_t port)
{
	struct route_table *t = NULL;
	struct bindex bi = {0};
	size_t nrec = 0;
	bool fail = false, tls_building = false;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto enomem;
	t->rtab_refs = 1;
	t->rtab_generation = cfg->cfg_generation;
	t->rtab_zones = calloc(cfg->cfg_ndomains ? cfg->cfg_ndomains : 1, sizeof(*t->rtab_zones));
	t->rtab_nzone_buckets = pow2_at_least(cfg->cfg_ndomains * 2 + 1);
	t->rtab_zone_buckets = calloc(t->rtab_nzone_buckets, sizeof(*t->rtab_zone_buckets));
	if (t->rtab_zones == NULL || t->rtab_zone_buckets == NULL)
		goto enomem;
	tls_build_begin();
	tls_building = true;

	/* Zones; two domains whose names differ only in case are one zone: the first wins. */
	for (size_t d = 0; d < cfg->cfg_ndomains; d++) {
		const struct dfr_domain *dom = cfg->cfg_domains[d];
		struct route_zone *z;
		size_t mask = t->rtab_nzone_buckets - 1, i;

		if (zone_find(t, dom->dom_name) != NULL) {
			dfr_log_debug("route, zone %s given twice, the first one applies",
			              dom->dom_name);
			continue;
		}
		z = &t->rtab_zones[t->rtab_nzones++];
		z->rz_name = xstrdup(dom->dom_name, &fail);
		z->rz_id = xstrdup(dom->dom_id, &fail);
		z->rz_http_type = dom->dom_http_type;
		z->rz_waf = dom->dom_lua_code != NULL && dom->dom_lua_code[0] != '\0';
		if (dom->dom_ssl.ssl_acme_token != NULL && dom->dom_ssl.ssl_acme_token[0] != '\0' &&
		    dom->dom_ssl.ssl_acme_key_auth != NULL) {
			z->rz_acme_token = xstrdup(dom->dom_ssl.ssl_acme_token, &fail);
			z->rz_acme_key_auth = xstrdup(dom->dom_ssl.ssl_acme_key_auth, &fail);
		}
		if (dom->dom_ssl.ssl_enabled && dom->dom_ssl.ssl_cert_pem != NULL &&
		    dom->dom_ssl.ssl_key_pem != NULL)
			z->rz_tls = tls_cert_get(dom->dom_name, dom->dom_ssl.ssl_cert_pem,
			                         dom->dom_ssl.ssl_key_pem);
		if (fail)
			goto enomem;
		for (i = hash_name(z->rz_name) & mask; t->rtab_zone_buckets[i] != NULL;
		     i = (i + 1) & mask)
			;
		t->rtab_zone_buckets[i] = z;
		nrec += dom->dom_nrecords;
	}

	/* Owner names of the regular records (location records are GeoDNS entries, not names). */
	bi.bi_nbuckets = pow2_at_least(nrec * 2 + 1);
	bi.bi_buckets = calloc(bi.bi_nbuckets, sizeof(*bi.bi_buckets));
	bi.bi_names = calloc(nrec ? nrec : 1, sizeof(*bi.bi_names));
	if (bi.bi_buckets == NULL || bi.bi_names == NULL)
		goto enomem;
	for (size_t zi = 0; zi < t->rtab_nzones; zi++) {
		const struct dfr_domain *dom = NULL;

		for (size_t d = 0; d < cfg->cfg_ndomains && dom == NULL; d++)
			if (strcmp(cfg->cfg_domains[d]->dom_id, t->rtab_zones[zi].rz_id) == 0)
				dom = cfg->cfg_domains[d];
		for (size_t r = 0; dom != NULL && r < dom->dom_nrecords; r++) {
			const struct dfr_record *rec = &dom->dom_records[r];
			struct bname *bn;

			if (rec->rec_location != NULL || rec->rec_name == NULL)
				continue;
			if ((bn = bindex_find(&bi, rec->rec_name)) == NULL) {
				size_t h = hash_name(rec->rec_name) & (bi.bi_nbuckets - 1);

				bn = &bi.bi_names[bi.bi_n++];
				bn->bn_name = rec->rec_name;
				bn->bn_dom = dom;
				bn->bn_zone = zi;
				bn->bn_next = bi.bi_buckets[h];
				bi.bi_buckets[h] = bn;
			}
			if (bn->bn_zone != zi)
				continue; /* a name inside a sub-zone of its own: the sub-zone's */
			bn->bn_proxied |= rec->rec_proxied;
			if (rec->rec_type == DFR_RR_A && bn->bn_a == NULL)
				bn->bn_a = rec;
			else if (rec->rec_type == DFR_RR_AAAA && bn->bn_aaaa == NULL)
				bn->bn_aaaa = rec;
			else if (rec->rec_type == DFR_RR_CNAME && bn->bn_cname == NULL)
				bn->bn_cname = rec;
		}
	}

	/* The routes: one per owner name, and the apex of every zone even without records. */
	t->rtab_routes = calloc(bi.bi_n + t->rtab_nzones + 1, sizeof(*t->rtab_routes));
	t->rtab_nbuckets = pow2_at_least((bi.bi_n + t->rtab_nzones) * 2 + 1);
	t->rtab_buckets = calloc(t->rtab_nbuckets, sizeof(*t->rtab_buckets));
	if (t->rtab_routes == NULL || t->rtab_buckets == NULL)
		goto enomem;
	for (size_t i = 0; i < bi.bi_n; i++) {
		const struct bname *bn = &bi.bi_names[i];
		struct route *r = &t->rtab_routes[t->rtab_nroutes++];
		size_t h = hash_name(bn->bn_name) & (t->rtab_nbuckets - 1);
		const struct dfr_record *target;

		if ((r->rt_host = strdup(bn->bn_name)) == NULL)
			goto enomem;
		r->rt_zone = &t->rtab_zones[bn->bn_zone];
		r->rt_proxied = bn->bn_proxied;
		if (r->rt_proxied && (target = resolve(&bi, bn)) != NULL)
			set_addr(r, target, port);
		r->rt_next = t->rtab_buckets[h];
		t->rtab_buckets[h] = r;
	}
	for (size_t zi = 0; zi < t->rtab_nzones; zi++) {
		struct route_zone *z = &t->rtab_zones[zi];
		const struct route *dummy;
		const struct route_zone *dz;
		struct route *r;
		size_t h;

		if (route_lookup(t, z->rz_name, &dummy, &dz) != ROUTE_NO_NAME)
			continue;
		r = &t->rtab_routes[t->rtab_nroutes++];
		h = hash_name(z->rz_name) & (t->rtab_nbuckets - 1);
		if ((r->rt_host = strdup(z->rz_name)) == NULL)
			goto enomem;
		r->rt_zone = z;
		r->rt_next = t->rtab_buckets[h];
		t->rtab_buckets[h] = r;
	}
	free(bi.bi_buckets);
	free(bi.bi_names);
	tls_build_end();
	return t;
enomem:
	dfr_log_err("route, cannot build the route table of generation %llu (out of memory)",
	            (unsigned long long)cfg->cfg_generation);
	free(bi.bi_buckets);
	free(bi.bi_names);
	if (tls_building)
		tls_build_end();
	route_table_unref(t);
	return NULL;
}

struct route_table *
route_table_ref(struct route_table *t)
{
	__atomic_fetch_add(&t->rtab_refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
route_table_unref(struct route_table *t)
{
	if (t == NULL || __atomic_sub_fetch(&t->rtab_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < t->rtab_nroutes; i++)
		free(t->rtab_routes[i].rt_host);
	for (size_t i = 0; i < t->rtab_nzones; i++)
		zone_free(&t->rtab_zones[i]);
	free(t->rtab_routes);
	free(t->rtab_buckets);
	free(t->rtab_zones);
	free(t->rtab_zone_buckets);
	free(t);
}

static const struct route *
route_find(const struct route_table *t, const char *host)
{
	const struct route *r = t->rtab_buckets[hash_name(host) & (t->rtab_nbuckets - 1)];

	for (; r != NULL; r = r->rt_next)
		if (strcmp(r->rt_host, host) == 0)
			return r;
	return NULL;
}

const struct route_zone *
route_zone_lookup(const struct route_table *t, const char *host)
{
	const struct route_zone *z;

	if (t == NULL || t->rtab_nzones == 0)
		return NULL;
	for (const char *suffix = host; suffix != NULL && *suffix != '\0';) {
		if ((z = zone_find(t, suffix)) != NULL)
			return z;
		suffix = strchr(suffix, '.');
		if (suffix != NULL)
			suffix++;
	}
	return NULL;
}

enum route_result
route_lookup(const struct route_table *t, const char *host, const struct route **route,
             const struct route_zone **zone)
{
	const struct route_zone *z = NULL;
	const struct route *r;
	const char *suffix;
	char wild[DFR_CFG_MAX_NAME + 3];

	*route = NULL;
	*zone = NULL;
	if (t == NULL || t->rtab_nzones == 0)
		return ROUTE_NO_ZONE;
	/* The longest zone the host is in. */
	for (suffix = host; suffix != NULL && *suffix != '\0';) {
		if ((z = zone_find(t, suffix)) != NULL)
			break;
		suffix = strchr(suffix, '.');
		if (suffix != NULL)
			suffix++;
	}
	if (z == NULL)
		return ROUTE_NO_ZONE;
	*zone = z;
	r = route_find(t, host);
	if (r != NULL && r->rt_zone != z)
		r = NULL;
	if (r == NULL && suffix != host) {
		/* A wildcard of the closest enclosing name: `*.` + the parent of host. */
		const char *parent = strchr(host, '.');

		if (parent != NULL && strlen(parent) + 2 <= sizeof(wild)) {
			wild[0] = '*';
			strcpy(wild + 1, parent);
			r = route_find(t, wild);
			if (r != NULL && r->rt_zone != z)
				r = NULL;
		}
	}
	if (r == NULL)
		return ROUTE_NO_NAME;
	*route = r;
	if (!r->rt_proxied)
		return ROUTE_NOT_PROXIED;
	if (!r->rt_has_backend)
		return ROUTE_NO_BACKEND;
	return ROUTE_OK;
}
