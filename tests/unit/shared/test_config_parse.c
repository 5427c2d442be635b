/*
 * The config model on the Core's real answers (../shared/fixtures/core): counts, normalised
 * values, GeoDNS location records, TLS checks with and without a previous config, and the
 * canonical JSON round trips.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "tests/lib/tap.h"

static char *
fixture(const char *name, size_t *len)
{
	char path[1024];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	s = tap_read_file(path, len);
	if (s == NULL)
		diag("cannot read %s", path);
	return s;
}

static struct dfr_config *
parse_fixture(const char *name, const struct dfr_config *prev)
{
	struct dfr_config *cfg = NULL;
	char why[128] = "";
	size_t len;
	char *s = fixture(name, &len);
	int rc;

	if (s == NULL)
		return NULL;
	rc = dfr_config_parse(s, len, prev, &cfg, why, sizeof(why));
	is_int(rc, DFR_OK, "%s parses (%s)", name, why);
	free(s);
	return rc == DFR_OK ? cfg : NULL;
}

/* The n-th record of dom with that owner and type (and location or not). */
static const struct dfr_record *
rec(const struct dfr_domain *dom, const char *name, enum dfr_rr_type t, int nth)
{
	for (size_t i = 0; dom != NULL && i < dom->dom_nrecords; i++) {
		const struct dfr_record *r = &dom->dom_records[i];

		if (r->rec_location == NULL && strcmp(r->rec_name, name) == 0 && r->rec_type == t &&
		    nth-- == 0)
			return r;
	}
	return NULL;
}

static const struct dfr_record *
loc(const struct dfr_domain *dom, const char *code)
{
	for (size_t i = 0; dom != NULL && i < dom->dom_nrecords; i++)
		if (dom->dom_records[i].rec_location != NULL &&
		    strcmp(dom->dom_records[i].rec_location, code) == 0)
			return &dom->dom_records[i];
	return NULL;
}

static size_t
nloc(const struct dfr_domain *dom)
{
	size_t n = 0;

	for (size_t i = 0; i < dom->dom_nrecords; i++)
		n += dom->dom_records[i].rec_location != NULL;
	return n;
}

static bool
a_is(const struct dfr_record *r, const char *ip)
{
	char buf[64];

	if (r == NULL)
		return false;
	if (r->rec_type == DFR_RR_A)
		inet_ntop(AF_INET, &r->rec_data.a, buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, &r->rec_data.aaaa, buf, sizeof(buf));
	return strcmp(buf, ip) == 0;
}

static void
check_roundtrip(const struct dfr_config *cfg, const char *what)
{
	for (size_t i = 0; i < cfg->cfg_ndomains; i++) {
		const struct dfr_domain *d = cfg->cfg_domains[i];
		struct dfr_domain *d2 = dfr_domain_from_json(d->dom_json, d->dom_json_len);

		ok(d2 != NULL && d2->dom_json_len == d->dom_json_len &&
			   memcmp(d2->dom_json, d->dom_json, d->dom_json_len) == 0 &&
			   d2->dom_nrecords == d->dom_nrecords,
		   "%s: domain %s round-trips byte-identical", what, d->dom_name);
		dfr_domain_unref(d2);
	}
	for (size_t i = 0; i < cfg->cfg_nproxies; i++) {
		const struct dfr_proxy *p = cfg->cfg_proxies[i];
		struct dfr_proxy *p2 = dfr_proxy_from_json(p->px_json, p->px_json_len);

		ok(p2 != NULL && strcmp(p2->px_json, p->px_json) == 0,
		   "%s: proxy %s round-trips byte-identical", what, p->px_id);
		dfr_proxy_unref(p2);
	}
	/* The whole config, through dfr_config_to_json(). */
	{
		struct dfr_config *copy = dfr_config_ref((struct dfr_config *)cfg), *back = NULL;
		size_t len;
		char *js;
		bool same = true;

		copy->cfg_generation = 4242;
		js = dfr_config_to_json(copy, &len);
		copy->cfg_generation = 0;
		ok(js != NULL && strlen(js) == len, "%s: to_json", what);
		is_int(dfr_config_parse(js, len, NULL, &back, NULL, 0), DFR_OK, "%s: re-parse", what);
		if (back != NULL) {
			is_int((long long)back->cfg_generation, 4242, "%s: generation kept", what);
			is_int((long long)back->cfg_ndomains, (long long)cfg->cfg_ndomains,
			       "%s: same domain count", what);
			for (size_t i = 0; i < cfg->cfg_ndomains && i < back->cfg_ndomains; i++)
				same = same && strcmp(back->cfg_domains[i]->dom_json,
						      cfg->cfg_domains[i]->dom_json) == 0;
			for (size_t i = 0; i < cfg->cfg_nproxies && i < back->cfg_nproxies; i++)
				same = same && strcmp(back->cfg_proxies[i]->px_json,
						      cfg->cfg_proxies[i]->px_json) == 0;
			ok(same && back->cfg_nproxies == cfg->cfg_nproxies,
			   "%s: every item's JSON equal after to_json + parse", what);
			is_int((long long)back->cfg_dropped, 0, "%s: nothing dropped on re-parse", what);
			is_int(back->cfg_next_poll_interval, cfg->cfg_next_poll_interval,
			       "%s: nextPollInterval kept", what);
			is_str(back->cfg_agent.ag_name, cfg->cfg_agent.ag_name, "%s: agent kept", what);
		}
		dfr_config_unref(back);
		dfr_config_unref(copy);
		free(js);
	}
}

static void
test_small(void)
{
	struct dfr_config *cfg = parse_fixture("small.json", NULL);
	const struct dfr_domain *d;
	const struct dfr_record *r;
	const struct dfr_proxy *p;

	if (cfg == NULL)
		return;
	is_int((long long)cfg->cfg_ndomains, 1, "small: 1 domain");
	is_int((long long)cfg->cfg_nproxies, 2, "small: 2 proxies");
	is_int((long long)cfg->cfg_nrecords, 12, "small: 12 records");
	is_int((long long)cfg->cfg_dropped, 0, "small: nothing dropped");
	is_int(cfg->cfg_next_poll_interval, 60, "small: nextPollInterval");
	is_int((long long)cfg->cfg_generation, 0, "small: generation 0");
	is_str(cfg->cfg_agent.ag_name, "edge-fra-1", "small: agent name");
	is_int(cfg->cfg_agent.ag_inactivity_threshold, 300, "small: inactivity threshold");
	d = dfr_config_find_domain(cfg, "6720a1b2c3d4e5f601234567");
	ok(d != NULL && d == dfr_config_find_zone(cfg, "example.com"), "small: find by id and zone");
	ok(dfr_config_find_zone(cfg, "Example.com") == NULL, "small: find_zone is exact");
	ok(dfr_config_find_domain(cfg, "nope") == NULL, "small: unknown id");
	if (d == NULL)
		goto out;
	is_int((long long)d->dom_nlocations, 5, "small: 5 geoDnsLocations");
	is_str(d->dom_locations[0].loc_code, "us", "small: location code lower-case");
	is_int(d->dom_locations[0].loc_type, DFR_LOC_COUNTRY, "small: location type country");
	r = rec(d, "example.com", DFR_RR_A, 0);
	ok(r != NULL && r->rec_proxied && a_is(r, "192.0.2.10") && r->rec_ttl == 300,
	   "small: apex A proxied 192.0.2.10 ttl 300");
	is_str(r ? r->rec_id : NULL, "6720a1b2c3d4e5f601234601", "small: apex A id");
	r = rec(d, "example.com", DFR_RR_AAAA, 0);
	ok(a_is(r, "2001:db8::10") && r->rec_proxied, "small: apex AAAA proxied");
	r = rec(d, "www.example.com", DFR_RR_CNAME, 0);
	is_str(r ? r->rec_data.target : NULL, "example.com", "small: www CNAME target");
	r = rec(d, "example.com", DFR_RR_MX, 0);
	ok(r != NULL && r->rec_priority == 10, "small: MX priority 10");
	is_str(r ? r->rec_data.target : NULL, "mail.example.com", "small: MX target");
	r = rec(d, "_dmarc.example.com", DFR_RR_TXT, 0);
	is_str(r ? r->rec_value : NULL, "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com",
	       "small: DMARC TXT");
	ok(rec(d, "mail.example.com", DFR_RR_A, 0) != NULL, "small: mail A");
	is_int((long long)nloc(d), 5, "small: 5 location records");
	r = loc(d, "gb");
	ok(r != NULL && a_is(r, "203.0.113.10") && r->rec_ttl == 60 &&
		   strcmp(r->rec_name, "example.com") == 0 && r->rec_id == NULL,
	   "small: location gb -> 203.0.113.10, name = apex, no id");
	ok(d->dom_records[d->dom_nrecords - 5].rec_location != NULL &&
		   d->dom_records[6].rec_location == NULL,
	   "small: regular records first, then location records");
	ok(rec(d, "us.example.com", DFR_RR_A, 0) == NULL, "small: no regular us record");
	is_int(d->dom_http_type, DFR_HTTP_BOTH, "small: http type both");
	ok(d->dom_antiddos_json != NULL && strstr(d->dom_antiddos_json, "\"maxRequests\":100"),
	   "small: antiDDoS kept as compact JSON");
	ok(d->dom_ssl.ssl_enabled && d->dom_ssl.ssl_cert_pem != NULL &&
		   d->dom_ssl.ssl_key_pem != NULL,
	   "small: certificate and key accepted");
	ok(d->dom_ssl.ssl_acme_token == NULL && d->dom_ssl.ssl_acme_key_auth == NULL,
	   "small: empty ACME token -> NULL");
	ok(d->dom_lua_code != NULL && strstr(d->dom_lua_code, "sqlmap"), "small: lua code");
	is_str(d->dom_description, "Main site", "small: description");
	p = dfr_config_find_proxy(cfg, "6720b0c1d2e3f40516273802");
	ok(p != NULL && p->px_proto == DFR_PROXY_UDP && p->px_source_port == 27015 &&
		   p->px_dest_port == 27015 && strcmp(p->px_dest_host, "192.0.2.27") == 0 &&
		   p->px_enabled,
	   "small: UDP proxy 27015");
	p = cfg->cfg_proxies[0];
	ok(strcmp(p->px_id, "6720b0c1d2e3f40516273801") == 0 && p->px_proto == DFR_PROXY_TCP &&
		   p->px_source_port == 2222 && strcmp(p->px_name, "ssh-bastion") == 0,
	   "small: proxies sorted by id, TCP 2222 first");
	check_roundtrip(cfg, "small");
out:
	dfr_config_unref(cfg);
}

static void
test_geodns(void)
{
	struct dfr_config *cfg = parse_fixture("geodns.json", NULL);
	const struct dfr_domain *d;
	const struct dfr_record *r;

	if (cfg == NULL)
		return;
	is_int((long long)cfg->cfg_ndomains, 3, "geodns: 3 domains");
	is_int((long long)cfg->cfg_nrecords, 47, "geodns: 47 records");
	is_int((long long)cfg->cfg_dropped, 0, "geodns: nothing dropped");
	d = dfr_config_find_zone(cfg, "example.net");
	if (d != NULL) {
		is_int((long long)nloc(d), 17, "geodns: example.net 17 location records");
		r = loc(d, "mx");
		ok(r != NULL && r->rec_type == DFR_RR_A && a_is(r, "198.51.100.20"),
		   "geodns: location MX is Mexico, not a mail record");
		ok(loc(d, "ax") != NULL, "geodns: upper-case codes lower-cased");
	} else {
		ok(false, "geodns: example.net found");
	}
	d = dfr_config_find_zone(cfg, "example.org");
	if (d != NULL) {
		is_int((long long)nloc(d), 16, "geodns: example.org 16 location records");
		ok(loc(d, "north-america") != NULL && loc(d, "ru") != NULL,
		   "geodns: continent and country locations");
		ok(rec(d, "example.org", DFR_RR_MX, 1) != NULL &&
			   rec(d, "example.org", DFR_RR_MX, 1)->rec_priority == 20,
		   "geodns: second MX priority 20");
		is_str(d->dom_ssl.ssl_acme_token, "Zx9F3kL2mQ7wR8tY1uI4oP6aS5dG0hJ3kL8zX2cV7bN",
		       "geodns: ACME token");
		ok(d->dom_ssl.ssl_acme_key_auth != NULL && d->dom_ssl.ssl_auto_renew &&
			   d->dom_ssl.ssl_cert_pem == NULL,
		   "geodns: ACME key authorization, autoRenew, no certificate");
		ok(d->dom_locations[0].loc_type == DFR_LOC_CONTINENT, "geodns: continent type");
	} else {
		ok(false, "geodns: example.org found");
	}
	d = dfr_config_find_zone(cfg, "shop.example.com");
	ok(d != NULL && d->dom_http_type == DFR_HTTPS_ONLY, "geodns: shop https only");
	ok(d != NULL && rec(d, "static.shop.example.com", DFR_RR_AAAA, 0) != NULL,
	   "geodns: three-label zone relative name");
	ok(cfg->cfg_nproxies == 1 && strcmp(cfg->cfg_proxies[0]->px_dest_host, "db.example.net") == 0,
	   "geodns: proxy to a host name");
	check_roundtrip(cfg, "geodns");
	dfr_config_unref(cfg);
}

static void
test_edge(void)
{
	struct dfr_config *cfg = parse_fixture("edge.json", NULL);
	const struct dfr_domain *d;
	const struct dfr_record *r;

	if (cfg == NULL)
		return;
	is_int((long long)cfg->cfg_ndomains, 2, "edge: 2 domains (case duplicate dropped)");
	is_int((long long)cfg->cfg_dropped, 2, "edge: 2 items dropped (not-an-ip, duplicate)");
	is_int((long long)cfg->cfg_nproxies, 5, "edge: 5 proxies");
	d = dfr_config_find_zone(cfg, "edgecase.example.net");
	ok(d != NULL && strcmp(d->dom_id, "6722e5f6a7b8c9d0e1f2a101") == 0,
	   "edge: the first of the two case-duplicates is kept");
	ok(dfr_config_find_domain(cfg, "6722e5f6a7b8c9d0e1f2a102") == NULL,
	   "edge: the later duplicate is dropped");
	if (d == NULL)
		goto out;
	is_int((long long)d->dom_nrecords, 25, "edge: 25 records kept of 26");
	is_int((long long)nloc(d), 6, "edge: 6 location records");
	r = rec(d, "edgecase.example.net", DFR_RR_A, 0);
	ok(r != NULL && r->rec_ttl == 3600 && r->rec_proxied, "edge: ttl null -> 3600");
	r = rec(d, "www.edgecase.example.net", DFR_RR_A, 0);
	ok(r != NULL && r->rec_id == NULL && r->rec_ttl == 300, "edge: WWW lower-cased, no id");
	ok(rec(d, "mail.edgecase.example.net", DFR_RR_A, 0) != NULL, "edge: absolute name");
	r = rec(d, "edgecase.example.net", DFR_RR_MX, 0);
	ok(r != NULL && r->rec_priority == 0 &&
		   strcmp(r->rec_data.target, "mail.edgecase.example.net") == 0,
	   "edge: MX priority null -> 0, target without dot");
	r = rec(d, "edgecase.example.net", DFR_RR_MX, 1);
	is_str(r ? r->rec_data.target : NULL, "backup-mx.example.org", "edge: MX relative-looking target is absolute");
	r = rec(d, "edgecase.example.net", DFR_RR_TXT, 0);
	is_str(r ? r->rec_value : NULL, "✓ héllo 日本語 привет 🚀", "edge: Unicode TXT exact");
	r = rec(d, "quote.edgecase.example.net", DFR_RR_TXT, 0);
	is_str(r ? r->rec_value : NULL, "say \"hi\"; path=C:\\temp\\x; end", "edge: quotes and backslashes");
	r = rec(d, "dkim._domainkey.edgecase.example.net", DFR_RR_TXT, 0);
	ok(r != NULL && strlen(r->rec_value) == 332, "edge: 332-byte DKIM TXT");
	r = rec(d, "v6-in-a.edgecase.example.net", DFR_RR_AAAA, 0);
	ok(a_is(r, "2001:db8::bad"), "edge: IPv6 in A became AAAA");
	ok(rec(d, "v6-in-a.edgecase.example.net", DFR_RR_A, 0) == NULL, "edge: no A left for it");
	r = rec(d, "mapped.edgecase.example.net", DFR_RR_AAAA, 0);
	ok(a_is(r, "::ffff:192.0.2.9"), "edge: mapped address stays AAAA");
	r = rec(d, "ns.edgecase.example.net", DFR_RR_A, 0);
	ok(a_is(r, "192.0.2.53") && loc(d, "ns") == NULL, "edge: ns is a regular record");
	ok(rec(d, "bad.edgecase.example.net", DFR_RR_A, 0) == NULL, "edge: not-an-ip dropped");
	r = rec(d, "edgecase.example.net", DFR_RR_NS, 0);
	is_str(r ? r->rec_data.target : NULL, "ns1.example.org", "edge: NS target");
	r = rec(d, "_sip._udp.edgecase.example.net", DFR_RR_SRV, 0);
	ok(r != NULL && r->rec_priority == 10 && r->rec_data.srv.weight == 5 &&
		   r->rec_data.srv.port == 5060 && strcmp(r->rec_data.srv.target, "sip.example.org") == 0,
	   "edge: SRV with 4 fields");
	is_str(r ? r->rec_value : NULL, "5 5060 sip.example.org", "edge: SRV value normalised");
	r = rec(d, "edgecase.example.net", DFR_RR_CAA, 0);
	ok(r != NULL && r->rec_data.caa.flags == 0 && strcmp(r->rec_data.caa.tag, "issue") == 0 &&
		   strcmp(r->rec_data.caa.value, "letsencrypt.org") == 0,
	   "edge: CAA flags, tag, value");
	ok(a_is(rec(d, "*.edgecase.example.net", DFR_RR_A, 0), "192.0.2.99"), "edge: wildcard");
	ok(rec(d, "a.b.c.edgecase.example.net", DFR_RR_A, 0) != NULL, "edge: multi-label name");
	r = rec(d, "zero-ttl.edgecase.example.net", DFR_RR_A, 0);
	ok(r != NULL && r->rec_ttl == 0, "edge: ttl 0 kept");
	r = rec(d, "alias.edgecase.example.net", DFR_RR_CNAME, 0);
	is_str(r ? r->rec_data.target : NULL, "target.example.org", "edge: CNAME trailing dot removed");
	r = loc(d, "fi");
	ok(r != NULL && r->rec_type == DFR_RR_AAAA && a_is(r, "2001:db8:4::53"),
	   "edge: IPv6 location record is AAAA");
	ok(loc(d, "apac-east") != NULL && loc(d, "europe") != NULL && loc(d, "ua") != NULL,
	   "edge: custom, continent and last-resort locations");
	ok(d->dom_ssl.ssl_enabled && d->dom_ssl.ssl_cert_pem == NULL,
	   "edge: ssl enabled without certificate");
	is_int(d->dom_http_type, DFR_HTTP_ONLY, "edge: http only");
	ok(d->dom_antiddos_json == NULL, "edge: antiDDoS null");
	d = dfr_config_find_zone(cfg, "empty.example.org");
	ok(d != NULL && d->dom_nrecords == 0 && d->dom_lua_code == NULL && d->dom_description &&
		   d->dom_description[0] == '\0',
	   "edge: empty domain");
	{
		const struct dfr_proxy *p = dfr_config_find_proxy(cfg, "6722f0a1b2c3d4e5f6a7b802");

		ok(p != NULL && strcmp(p->px_dest_host, "2001:db8::25") == 0 &&
			   p->px_proto == DFR_PROXY_UDP,
		   "edge: UDP proxy to IPv6");
	}
	check_roundtrip(cfg, "edge");
out:
	dfr_config_unref(cfg);
}

/* small.json with ssl.privateKey (and certificate, if cert != NULL) replaced. */
static char *
small_with_ssl(const char *cert, const char *key)
{
	size_t len;
	char *s = fixture("small.json", &len), *out;
	cJSON *root = s ? cJSON_Parse(s) : NULL;
	cJSON *ssl;

	free(s);
	if (root == NULL)
		return NULL;
	ssl = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "domains"), 0), "ssl");
	if (key != NULL)
		cJSON_ReplaceItemInObject(ssl, "privateKey", cJSON_CreateString(key));
	if (cert != NULL)
		cJSON_ReplaceItemInObject(ssl, "certificate", cJSON_CreateString(cert));
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

static char *
other_key_pem(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (k != NULL && b != NULL && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
		n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	return out;
}

/* PEM text of what a write function put into a memory BIO, or NULL. */
static char *
bio_text(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	return n > 0 ? strndup(data, (size_t)n) : NULL;
}

/* A key of a kind ("P-256", "P-384", "RSA", "ED25519"). */
static EVP_PKEY *
gen_key(const char *kind)
{
	if (strcmp(kind, "RSA") == 0)
		return EVP_RSA_gen(2048);
	if (strcmp(kind, "ED25519") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_EC_gen(kind);
}

/* A self-signed certificate (PEM) for k. */
static char *
self_signed(EVP_PKEY *k, int serial)
{
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	X509_NAME *n;
	char *out = NULL;

	if (x == NULL || b == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t.example", -1, -1,
	                           0);
	X509_set_issuer_name(x, n);
	if (X509_sign(x, k, EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) > 0 &&
	    PEM_write_bio_X509(b, x))
		out = bio_text(b);
out:
	X509_free(x);
	BIO_free(b);
	return out;
}

static char *
key_text(EVP_PKEY *k, bool encrypted)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL;

	if (b != NULL && PEM_write_bio_PrivateKey(b, k, encrypted ? EVP_aes_128_cbc() : NULL,
	                                          encrypted ? (unsigned char *)"secret1" : NULL,
	                                          encrypted ? 7 : 0, NULL, NULL))
		out = bio_text(b);
	BIO_free(b);
	return out;
}

#define NKIND 12

/*
 * Pairs of every kind the check meets, one verdict each: through dfr_cfg_tls_check(), through
 * the cache (first and second use), and in poll answers small (one thread) and over 1 MB (the
 * reader and the worker share the checks), where the same domains must be kept and dropped.
 */
static void
test_tls_kinds(void)
{
	static const char *const kinds[] = {"P-256", "P-384", "RSA", "ED25519", "P-256"};
	EVP_PKEY *k[5] = {NULL};
	char *cert[5] = {NULL}, *key[5] = {NULL}, *enc = NULL, *chain = NULL;
	struct {
		const char *what, *cert, *key;
		bool good;
		const char *why;
	} v[NKIND];
	struct dfr_tls_cache tc;
	size_t len, nv = 0;
	char *small = fixture("small.json", &len);
	cJSON *root = NULL, *doms, *proto;
	bool built = small != NULL;

	memset(&tc, 0, sizeof(tc));
	for (int i = 0; i < 5; i++) {
		k[i] = gen_key(kinds[i]);
		cert[i] = k[i] ? self_signed(k[i], i + 1) : NULL;
		key[i] = k[i] ? key_text(k[i], false) : NULL;
		built = built && cert[i] != NULL && key[i] != NULL;
	}
	enc = k[0] ? key_text(k[0], true) : NULL;
	if (built && enc != NULL && (chain = malloc(strlen(cert[0]) + strlen(cert[2]) + 1)) != NULL)
		strcat(strcpy(chain, cert[0]), cert[2]);
	ok(built && chain != NULL, "tls kinds: keys and certificates made");
	if (!built || chain == NULL)
		goto out;
#define V(w, c, kk, g, r) v[nv++] = (__typeof__(v[0])){w, c, kk, g, r}
	V("EC P-256 pair", cert[0], key[0], true, "");
	V("EC P-384 pair", cert[1], key[1], true, "");
	V("RSA pair", cert[2], key[2], true, "");
	V("Ed25519 pair", cert[3], key[3], true, "");
	V("chain, leaf first", chain, key[0], true, "");
	V("EC key of another P-256 pair", cert[0], key[4], false, "key does not match certificate");
	V("RSA certificate, EC key", cert[2], key[0], false, "key does not match certificate");
	V("P-256 certificate, P-384 key", cert[0], key[1], false, "key does not match certificate");
	V("Ed25519 certificate, RSA key", cert[3], key[2], false, "key does not match certificate");
	V("encrypted key", cert[0], enc, false, "private key does not parse");
	V("garbage certificate", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
	  key[0], false, "certificate does not parse");
	V("key as certificate", key[0], key[0], false, "certificate does not parse");
#undef V
	for (size_t i = 0; i < nv; i++) {
		char w1[128] = "", w2[128] = "", w3[128] = "";
		bool r1 = dfr_cfg_tls_check(v[i].cert, v[i].key, w1, sizeof(w1));
		bool r2 = dfr_cfg_tls_check_cached(&tc, v[i].cert, v[i].key, w2, sizeof(w2));
		bool r3 = dfr_cfg_tls_check_cached(&tc, v[i].cert, v[i].key, w3, sizeof(w3));

		ok(r1 == v[i].good && strcmp(w1, v[i].why) == 0, "tls kinds: %s: %s (%s)", v[i].what,
		   v[i].good ? "accepted" : "rejected", w1);
		ok(r2 == r1 && r3 == r1 && strcmp(w2, w1) == 0 && strcmp(w3, w1) == 0,
		   "tls kinds: %s: same verdict through the cache", v[i].what);
		ok(strstr(w1, "PRIVATE") == NULL, "tls kinds: %s: no key in the reason", v[i].what);
	}
	/* Answers: domain j carries variant j % nv; small (one thread) and large (two). */
	root = cJSON_Parse(small);
	doms = root ? cJSON_GetObjectItem(root, "domains") : NULL;
	proto = doms ? cJSON_DetachItemFromArray(doms, 0) : NULL;
	ok(proto != NULL, "tls kinds: answer template");
	if (proto == NULL)
		goto out;
	while (cJSON_GetArraySize(doms) > 0)
		cJSON_DeleteItemFromArray(doms, 0);
	for (int big = 0; big < 2; big++) {
		size_t n = big ? 480 : nv, kept = 0, want = 0, wrong = 0;
		struct dfr_config *cfg = NULL;
		char *text;

		for (size_t j = (size_t)cJSON_GetArraySize(doms); j < n; j++) {
			cJSON *d = cJSON_Duplicate(proto, 1), *ssl = cJSON_GetObjectItem(d, "ssl");
			char id[32], name[64];

			snprintf(id, sizeof(id), "%024zx", j + 1);
			snprintf(name, sizeof(name), "d%zu.example", j);
			cJSON_ReplaceItemInObject(d, "id", cJSON_CreateString(id));
			cJSON_ReplaceItemInObject(d, "domain", cJSON_CreateString(name));
			cJSON_ReplaceItemInObject(ssl, "certificate", cJSON_CreateString(v[j % nv].cert));
			cJSON_ReplaceItemInObject(ssl, "privateKey", cJSON_CreateString(v[j % nv].key));
			cJSON_AddItemToArray(doms, d);
		}
		text = cJSON_PrintUnformatted(root);
		if (big)
			ok(text != NULL && strlen(text) > (1u << 20), "tls kinds: large answer over 1 MB");
		is_int(text ? dfr_config_parse(text, strlen(text), NULL, &cfg, NULL, 0) : -1, DFR_OK,
		       "tls kinds: %s answer parses", big ? "large" : "small");
		for (size_t j = 0; cfg != NULL && j < n; j++) {
			char id[32];
			const struct dfr_domain *d;

			snprintf(id, sizeof(id), "%024zx", j + 1);
			d = dfr_config_find_domain(cfg, id);
			want += v[j % nv].good;
			if (d != NULL && d->dom_ssl.ssl_cert_pem != NULL) {
				kept++;
				wrong += !v[j % nv].good ||
				         strcmp(d->dom_ssl.ssl_cert_pem, v[j % nv].cert) != 0;
			} else {
				wrong += v[j % nv].good;
			}
		}
		ok(cfg != NULL && kept == want && wrong == 0 && cfg->cfg_dropped == n - want,
		   "tls kinds: %s answer: %zu of %zu pairs kept, each as its check says (%zu wrong)",
		   big ? "large" : "small", kept, n, wrong);
		dfr_config_unref(cfg);
		free(text);
	}
	cJSON_Delete(proto);
out:
	cJSON_Delete(root);
	dfr_cfg_tls_cache_free(&tc);
	for (int i = 0; i < 5; i++) {
		EVP_PKEY_free(k[i]);
		free(cert[i]);
		free(key[i]);
	}
	free(enc);
	free(chain);
	free(small);
}

static void
test_tls(void)
{
	struct dfr_config *prev = parse_fixture("small.json", NULL), *cfg = NULL;
	char *key = other_key_pem();
	char *bad = key ? small_with_ssl(NULL, key) : NULL;
	char *garbage = small_with_ssl("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", NULL);
	const struct dfr_domain *d;

	ok(bad != NULL && garbage != NULL, "tls: variants built");
	if (prev == NULL || bad == NULL || garbage == NULL)
		goto out;
	is_int(dfr_config_parse(bad, strlen(bad), NULL, &cfg, NULL, 0), DFR_OK, "tls: mismatched key parses");
	d = cfg ? cfg->cfg_domains[0] : NULL;
	ok(d != NULL && d->dom_ssl.ssl_cert_pem == NULL && d->dom_ssl.ssl_key_pem == NULL &&
		   cfg->cfg_dropped == 1,
	   "tls: mismatched key rejected, both dropped, counted");
	ok(d != NULL && strstr(d->dom_json, "PRIVATE KEY") == NULL, "tls: rejected key not in JSON");
	dfr_config_unref(cfg);
	cfg = NULL;
	is_int(dfr_config_parse(bad, strlen(bad), prev, &cfg, NULL, 0), DFR_OK, "tls: bad renewal parses");
	d = cfg ? cfg->cfg_domains[0] : NULL;
	ok(d != NULL && d->dom_ssl.ssl_cert_pem != NULL &&
		   strcmp(d->dom_ssl.ssl_key_pem, prev->cfg_domains[0]->dom_ssl.ssl_key_pem) == 0 &&
		   strcmp(d->dom_json, prev->cfg_domains[0]->dom_json) == 0,
	   "tls: bad renewal keeps the previous certificate and key");
	dfr_config_unref(cfg);
	cfg = NULL;
	is_int(dfr_config_parse(garbage, strlen(garbage), NULL, &cfg, NULL, 0), DFR_OK, "tls: garbage certificate parses");
	ok(cfg != NULL && cfg->cfg_domains[0]->dom_ssl.ssl_cert_pem == NULL, "tls: garbage certificate rejected");
	dfr_config_unref(cfg);
	cfg = NULL;
	/* The same pair as prev: accepted (without a check). */
	cfg = parse_fixture("small.json", prev);
	ok(cfg != NULL && cfg->cfg_domains[0]->dom_ssl.ssl_cert_pem != NULL && cfg->cfg_dropped == 0,
	   "tls: unchanged pair accepted");
out:
	dfr_config_unref(cfg);
	dfr_config_unref(prev);
	free(key);
	free(bad);
	free(garbage);
}

static void
test_names(void)
{
	is_str(dfr_rr_type_name(DFR_RR_AAAA), "AAAA", "rr: AAAA name");
	ok(dfr_rr_type_name((enum dfr_rr_type)99) == NULL, "rr: unknown type -> NULL");
	is_int(dfr_rr_type_from_name("caa"), DFR_RR_CAA, "rr: from name, any case");
	is_int(dfr_rr_type_from_name("PTR"), 0, "rr: unknown name -> 0");
	ok(dfr_domain_from_json("{", 1) == NULL, "from_json: truncated domain -> NULL");
	ok(dfr_domain_from_json("{}", 2) == NULL, "from_json: domain without id -> NULL");
	ok(dfr_domain_from_json("[]", 2) == NULL, "from_json: not an object -> NULL");
	ok(dfr_proxy_from_json("{\"id\":\"p\"}", 10) == NULL, "from_json: proxy without ports -> NULL");
	ok(dfr_proxy_from_json(NULL, 0) == NULL, "from_json: NULL -> NULL");
	{
		const char *j = "{\"id\":\"x\",\"domain\":\"A.b\"}";
		struct dfr_domain *d = dfr_domain_from_json(j, strlen(j));

		ok(d != NULL && d->dom_refs == 1 && strcmp(d->dom_name, "a.b") == 0 &&
			   d->dom_nrecords == 0 && d->dom_json != NULL,
		   "from_json: a minimal domain");
		dfr_domain_unref(d);
	}
}

/* The Go agent's location records without locationCode, interleaved with regular ones. */
static void
test_implicit_locations(void)
{
	const char *j =
		"{\"success\":true,\"domains\":[{\"id\":\"d\",\"domain\":\"Zone.Example.\","
		"\"geoDnsLocations\":[{\"code\":\"US\"},{\"code\":\"europe\"},{\"code\":\"apac\"}],"
		"\"dnsRecords\":[{\"name\":\"@\",\"type\":\"A\",\"value\":\"192.0.2.1\"},"
		"{\"name\":\"US\",\"type\":\"A\",\"value\":\"192.0.2.2\"},"
		"{\"name\":\"www\",\"type\":\"A\",\"value\":\"192.0.2.3\"},"
		"{\"name\":\"europe.zone.example.\",\"type\":\"A\",\"value\":\"2001:db8::1\"},"
		"{\"name\":\"apac\",\"type\":\"A\",\"value\":\"192.0.2.5\"},"
		"{\"name\":\"us\",\"type\":\"TXT\",\"value\":\"t\"},"
		"{\"name\":\"x\",\"type\":\"A\",\"value\":\"192.0.2.6\",\"locationCode\":\"JP\"},"
		"{\"name\":\"de\",\"type\":\"A\",\"value\":\"192.0.2.7\"}]}]}";
	struct dfr_config *cfg = NULL;
	const struct dfr_domain *d;
	static const char *const want[] = {"zone.example", "www.zone.example", "apac.zone.example",
					   "us.zone.example", "de.zone.example"};
	bool order = true;

	is_int(dfr_config_parse(j, strlen(j), NULL, &cfg, NULL, 0), DFR_OK, "implicit: parses");
	d = cfg ? dfr_config_find_zone(cfg, "zone.example") : NULL;
	if (d == NULL || d->dom_nrecords != 8) {
		ok(false, "implicit: 8 records in zone.example");
		dfr_config_unref(cfg);
		return;
	}
	for (size_t i = 0; i < 5; i++)
		order = order && d->dom_records[i].rec_location == NULL &&
			strcmp(d->dom_records[i].rec_name, want[i]) == 0;
	ok(order, "implicit: regular records first, in order (custom code and TXT stay regular, "
		  "unlisted two-letter name stays regular)");
	ok(strcmp(d->dom_records[5].rec_location, "us") == 0 &&
		   strcmp(d->dom_records[6].rec_location, "europe") == 0 &&
		   d->dom_records[6].rec_type == DFR_RR_AAAA &&
		   strcmp(d->dom_records[7].rec_location, "jp") == 0 &&
		   strcmp(d->dom_records[7].rec_name, "zone.example") == 0,
	   "implicit: listed two-letter and continent names are location records, then explicit");
	dfr_config_unref(cfg);
}

int
main(void)
{
	plan_lazy();
	test_names();
	test_small();
	test_geodns();
	test_edge();
	test_tls();
	test_tls_kinds();
	test_implicit_locations();
	return done_testing();
}
