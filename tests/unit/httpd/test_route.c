/*
 * route.c on the Core's sample answers: which Host goes where, 403 and 404 cases, CNAME
 * following, wildcards, ACME tokens, and table life time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defenra-httpd/httpd.h"
#include "error.h"
#include "tap.h"

static struct dfr_config *
load(const char *name)
{
	char path[1024], why[256];
	struct dfr_config *cfg = NULL;
	size_t len;
	char *json;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	json = tap_read_file(path, &len);
	if (json == NULL || dfr_config_parse(json, len, NULL, &cfg, why, sizeof(why)) != DFR_OK)
		diag("cannot load %s", path);
	free(json);
	return cfg;
}

static void
check(const struct route_table *t, const char *host, enum route_result want, const char *addr)
{
	const struct route *r;
	const struct route_zone *z;
	enum route_result res = route_lookup(t, host, &r, &z);

	is_int(res, want, "%s: result", host);
	if (addr != NULL)
		is_str(r != NULL ? r->rt_addr_text : "(none)", addr, "%s: backend", host);
}

int
main(void)
{
	struct dfr_config *small, *geo, *edge;
	struct route_table *t;
	const struct route *r;
	const struct route_zone *z;

	plan_lazy();
	small = load("small.json");
	geo = load("geodns.json");
	edge = load("edge.json");
	ok(small && geo && edge, "fixtures load");
	if (!small || !geo || !edge)
		return done_testing();

	t = route_table_build(small, 80);
	ok(t != NULL, "table of small.json");
	check(t, "example.com", ROUTE_OK, "192.0.2.10");
	check(t, "www.example.com", ROUTE_OK, "192.0.2.10"); /* CNAME -> apex A */
	check(t, "mail.example.com", ROUTE_NOT_PROXIED, NULL);
	check(t, "_dmarc.example.com", ROUTE_NOT_PROXIED, NULL);
	check(t, "nothing.example.com", ROUTE_NO_NAME, NULL);
	check(t, "example.org", ROUTE_NO_ZONE, NULL);
	check(t, "com", ROUTE_NO_ZONE, NULL);
	route_lookup(t, "example.com", &r, &z);
	ok(z != NULL && strcmp(z->rz_name, "example.com") == 0 && z->rz_waf, "zone with WAF code");
	ok(r != NULL && ((struct sockaddr_in *)&r->rt_addr)->sin_port == htons(80), "port 80");
	is_int(t->rtab_generation, small->cfg_generation, "generation kept");
	/* A table outlives the config it was built from. */
	{
		struct route_table *held = route_table_ref(t);

		route_table_unref(t);
		check(held, "example.com", ROUTE_OK, "192.0.2.10");
		route_table_unref(held);
	}

	t = route_table_build(geo, 8080);
	check(t, "example.net", ROUTE_OK, "198.51.100.80");
	check(t, "www.example.net", ROUTE_OK, "198.51.100.80");
	check(t, "api.example.net", ROUTE_NOT_PROXIED, NULL);
	check(t, "www.example.org", ROUTE_OK, "192.0.2.80");
	check(t, "shop.example.com", ROUTE_OK, "203.0.113.90");
	check(t, "www.shop.example.com", ROUTE_NOT_PROXIED, NULL);
	check(t, "static.shop.example.com", ROUTE_NOT_PROXIED, NULL);
	/* Location records are GeoDNS entries, not names. */
	check(t, "de.example.net", ROUTE_NO_NAME, NULL);
	route_lookup(t, "shop.example.com", &r, &z);
	ok(z != NULL && z->rz_http_type == DFR_HTTPS_ONLY, "https-only zone");
	route_lookup(t, "example.org", &r, &z);
	ok(z != NULL && z->rz_acme_token != NULL, "acme token kept");
	ok(acme_match(z, "/.well-known/acme-challenge/Zx9F3kL2mQ7wR8tY1uI4oP6aS5dG0hJ3kL8zX2cV7bN",
	              strlen("/.well-known/acme-challenge/"
	                     "Zx9F3kL2mQ7wR8tY1uI4oP6aS5dG0hJ3kL8zX2cV7bN")) != NULL,
	   "acme token answered");
	ok(acme_match(z, "/.well-known/acme-challenge/other", 33) == NULL, "other token not");
	ok(acme_match(z, "/", 1) == NULL, "other path not");
	route_table_unref(t);

	t = route_table_build(edge, 80);
	check(t, "edgecase.example.net", ROUTE_OK, "192.0.2.1");
	check(t, "www.edgecase.example.net", ROUTE_NOT_PROXIED, NULL);
	/* The wildcard exists (not proxied) and stands for names without records. */
	check(t, "anything.edgecase.example.net", ROUTE_NOT_PROXIED, NULL);
	check(t, "empty.example.org", ROUTE_NOT_PROXIED, NULL);
	route_table_unref(t);

	{
		struct dfr_config *empty = dfr_config_new_empty();

		t = route_table_build(empty, 80);
		check(t, "example.com", ROUTE_NO_ZONE, NULL);
		route_table_unref(t);
		dfr_config_unref(empty);
	}
	check(NULL, "example.com", ROUTE_NO_ZONE, NULL);
	dfr_config_unref(small);
	dfr_config_unref(geo);
	dfr_config_unref(edge);
	return done_testing();
}
