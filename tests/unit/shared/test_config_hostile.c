/*
 * The config parser against what the Core (or someone in its place) should never send:
 * truncated JSON, every value of a record and of a domain replaced by each JSON type in turn,
 * whole-answer failures, size limits, duplicates, deep nesting, and a 10,000-domain answer
 * (timed: parse + validate + diff must stay well under 200 ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "tests/lib/tap.h"

static char *
fixture(const char *name, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	return tap_read_file(path, len);
}

static int
parse(const char *s, size_t len, struct dfr_config **out)
{
	*out = NULL;
	return dfr_config_parse(s, len, NULL, out, NULL, 0);
}

static void
test_truncated(const char *name, size_t step)
{
	size_t len, bad = 0, tried = 0, last;
	char *s = fixture(name, &len);

	if (s == NULL) {
		ok(false, "truncated %s: fixture", name);
		return;
	}
	last = len;
	while (last > 0 && s[last - 1] != '}')
		last--;
	for (size_t n = 0; n + 1 < last; n += step) {
		struct dfr_config *cfg;
		/* An exact-size copy, so ASan sees any read past the end. */
		char *cut = malloc(n ? n : 1);

		memcpy(cut, s, n);
		if (parse(cut, n, &cfg) != DFR_EPARSE || cfg != NULL)
			bad++;
		dfr_config_unref(cfg);
		free(cut);
		tried++;
	}
	ok(bad == 0 && tried > 100, "truncated %s: %zu prefixes all DFR_EPARSE", name, tried);
	free(s);
}

static cJSON *
make_value(int kind)
{
	switch (kind) {
	case 0: return cJSON_CreateNull();
	case 1: return cJSON_CreateNumber(-12345.5);
	case 2: return cJSON_CreateArray();
	case 3: return cJSON_CreateObject();
	case 4: return cJSON_CreateString("");
	case 5: return cJSON_CreateTrue();
	default: return cJSON_CreateString("x\x01y");
	}
}

/* Replaces each field of object `obj` (inside root) by every kind in turn and parses. Returns
 * the number of parses that did not answer DFR_OK. */
static size_t
mutate_fields(cJSON *root, cJSON *obj, size_t *parses, size_t *kept)
{
	size_t fails = 0;
	int nfields = cJSON_GetArraySize(obj);

	for (int f = 0; f < nfields; f++) {
		for (int kind = 0; kind < 7; kind++) {
			cJSON *item = cJSON_GetArrayItem(obj, f);
			cJSON *saved = cJSON_Duplicate(item, true);
			char *key = strdup(item->string);
			struct dfr_config *cfg;
			char *js;

			cJSON_ReplaceItemInObjectCaseSensitive(obj, key, make_value(kind));
			js = cJSON_PrintUnformatted(root);
			if (parse(js, strlen(js), &cfg) != DFR_OK)
				fails++;
			else if (cfg->cfg_ndomains > 0)
				++*kept;
			/* Whatever was kept must write and read back. */
			if (cfg != NULL) {
				size_t l;
				char *back = dfr_config_to_json(cfg, &l);
				struct dfr_config *cfg2;

				if (back == NULL || parse(back, l, &cfg2) != DFR_OK ||
				    cfg2->cfg_ndomains != cfg->cfg_ndomains)
					fails++;
				else
					dfr_config_unref(cfg2);
				free(back);
			}
			dfr_config_unref(cfg);
			free(js);
			cJSON_ReplaceItemInObjectCaseSensitive(obj, key, saved);
			free(key);
			++*parses;
		}
	}
	return fails;
}

static void
test_wrong_types(void)
{
	size_t len, parses = 0, kept = 0, fails;
	char *s = fixture("edge.json", &len);
	cJSON *root = s ? cJSON_Parse(s) : NULL;
	cJSON *doms = cJSON_GetObjectItem(root, "domains");
	cJSON *d0 = cJSON_GetArrayItem(doms, 0);
	cJSON *recs = cJSON_GetObjectItem(d0, "dnsRecords");

	free(s);
	if (root == NULL) {
		ok(false, "wrong types: fixture");
		return;
	}
	/* Keep one domain: the record mutations are then easy to count. */
	while (cJSON_GetArraySize(doms) > 1)
		cJSON_DeleteItemFromArray(doms, 1);
	fails = 0;
	for (int i = 0; i < cJSON_GetArraySize(recs); i += 3)
		fails += mutate_fields(root, cJSON_GetArrayItem(recs, i), &parses, &kept);
	ok(fails == 0 && parses > 300, "wrong types: %zu record mutations parse, none crashes",
	   parses);
	parses = kept = 0;
	fails = mutate_fields(root, d0, &parses, &kept);
	fails += mutate_fields(root, cJSON_GetObjectItem(d0, "ssl"), &parses, &kept);
	fails += mutate_fields(root, cJSON_GetObjectItem(d0, "httpProxy"), &parses, &kept);
	fails += mutate_fields(root, cJSON_GetArrayItem(cJSON_GetObjectItem(d0, "geoDnsLocations"), 0),
			       &parses, &kept);
	ok(fails == 0 && kept > 0 && kept < parses,
	   "wrong types: %zu domain mutations parse, %zu keep the domain", parses, kept);
	parses = kept = 0;
	fails = mutate_fields(root, cJSON_GetArrayItem(cJSON_GetObjectItem(root, "proxies"), 1),
			      &parses, &kept);
	ok(fails == 0, "wrong types: %zu proxy mutations parse", parses);
	/* The whole answer's own fields: agent and nextPollInterval never fail it. */
	parses = kept = 0;
	fails = 0;
	{
		cJSON *ag = cJSON_GetObjectItem(root, "agent");

		fails += mutate_fields(root, ag, &parses, &kept);
	}
	ok(fails == 0, "wrong types: agent fields never fail the answer");
	cJSON_Delete(root);
}

/* One record of edge.json's first domain, parsed alone, with `field` set to `json`. Returns
 * how many records were kept (-1 when the answer failed). */
static int
one_record(const char *field, const char *value_json, uint32_t *ttl)
{
	char buf[1024];
	struct dfr_config *cfg;
	int n = -1;

	snprintf(buf, sizeof(buf),
		 "{\"success\":true,\"domains\":[{\"id\":\"d1\",\"domain\":\"example.com\","
		 "\"dnsRecords\":[{\"id\":\"r1\",\"name\":\"x\",\"type\":\"A\",\"value\":"
		 "\"192.0.2.1\",\"ttl\":300,\"priority\":null,\"httpProxyEnabled\":false,"
		 "\"%s\":%s}]}]}",
		 field, value_json);
	/* A repeated key: cJSON keeps both, the parser reads the first, so put it first. */
	{
		cJSON *root = cJSON_Parse(buf);
		cJSON *r = cJSON_GetArrayItem(
			cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "domains"), 0),
					    "dnsRecords"),
			0);
		cJSON *last = cJSON_DetachItemFromArray(r, cJSON_GetArraySize(r) - 1);
		char *js;

		cJSON_DeleteItemFromObjectCaseSensitive(r, field);
		cJSON_AddItemToObject(r, field, last);
		js = cJSON_PrintUnformatted(root);
		if (parse(js, strlen(js), &cfg) == DFR_OK) {
			n = (int)cfg->cfg_domains[0]->dom_nrecords;
			if (n > 0 && ttl != NULL)
				*ttl = cfg->cfg_domains[0]->dom_records[0].rec_ttl;
			dfr_config_unref(cfg);
		}
		free(js);
		cJSON_Delete(root);
	}
	return n;
}

static void
test_record_fields(void)
{
	uint32_t ttl = 1;

	is_int(one_record("ttl", "null", &ttl), 1, "record: ttl null kept");
	is_int(ttl, 3600, "record: ttl null -> 3600");
	is_int(one_record("ttl", "-5", &ttl), 1, "record: negative ttl kept");
	is_int(ttl, 0, "record: negative ttl -> 0");
	one_record("ttl", "1e12", &ttl);
	is_int(ttl, DFR_TTL_MAX, "record: huge ttl clamped");
	is_int(one_record("ttl", "\"300\"", NULL), 0, "record: ttl string drops the record");
	is_int(one_record("name", "12", NULL), 0, "record: name number drops the record");
	is_int(one_record("name", "null", NULL), 0, "record: name null drops the record");
	is_int(one_record("name", "\"a..b\"", NULL), 0, "record: empty label drops the record");
	is_int(one_record("name", "\"other.org.\"", NULL), 0, "record: name outside the zone");
	is_int(one_record("name", "\"x.example.com\"", NULL), 1, "record: full name without dot");
	is_int(one_record("value", "null", NULL), 0, "record: value null drops the record");
	is_int(one_record("value", "\"192.0.2.256\"", NULL), 0, "record: bad IPv4");
	is_int(one_record("type", "\"PTR\"", NULL), 0, "record: unsupported type");
	is_int(one_record("type", "\"a\"", NULL), 1, "record: type any case");
	is_int(one_record("priority", "\"10\"", NULL), 0, "record: priority string drops");
	is_int(one_record("priority", "70000", NULL), 0, "record: priority out of range drops");
	is_int(one_record("httpProxyEnabled", "1", NULL), 0, "record: proxied not bool drops");
	is_int(one_record("id", "{}", NULL), 0, "record: id object drops");
	is_int(one_record("locationCode", "\"a.b\"", NULL), 0, "record: bad locationCode drops");
}

static void
expect_fail(const char *json, int want, const char *what)
{
	struct dfr_config *cfg = NULL;
	char why[128] = "";

	is_int(dfr_config_parse(json, strlen(json), NULL, &cfg, why, sizeof(why)), want, "%s (%s)",
	       what, why);
	ok(cfg == NULL, "%s: nothing returned", what);
}

static void
test_whole_answer(void)
{
	struct dfr_config *cfg = NULL;
	static const char big[16] = "{}";

	expect_fail("", DFR_EPARSE, "empty");
	expect_fail("not json", DFR_EPARSE, "not JSON");
	expect_fail("[]", DFR_EPARSE, "an array");
	expect_fail("null", DFR_EPARSE, "null");
	expect_fail("{}", DFR_EPARSE, "no success");
	expect_fail("{\"success\":false}", DFR_EPARSE, "success false");
	expect_fail("{\"success\":1}", DFR_EPARSE, "success 1");
	expect_fail("{\"success\":true,\"domains\":{}}", DFR_EPARSE, "domains an object");
	expect_fail("{\"success\":true,\"proxies\":\"x\"}", DFR_EPARSE, "proxies a string");
	expect_fail("{\"success\":true,\"domains\":null}", DFR_EPARSE, "domains null");
	expect_fail("{\"success\":true} x", DFR_EPARSE, "trailing bytes");
	is_int(dfr_config_parse(big, DFR_CFG_MAX_ANSWER + 1u, NULL, &cfg, NULL, 0), DFR_ELIMIT,
	       "an answer over 100 MB -> DFR_ELIMIT");
	is_int(dfr_config_parse("{\"success\":true} \n", 18, NULL, &cfg, NULL, 0), DFR_OK,
	       "minimal answer");
	ok(cfg != NULL && cfg->cfg_ndomains == 0 && cfg->cfg_nproxies == 0, "minimal: empty");
	dfr_config_unref(cfg);
	cfg = NULL;
	{
		const char *j = "{\"success\":true,\"domains\":[1,null,\"x\",[],{}],\"proxies\":[1,{},"
				"{\"id\":\"p\",\"type\":\"tcp\",\"sourcePort\":\"80\",\"destinationPort\":"
				"80,\"destinationHost\":\"h\"}],\"nextPollInterval\":-3,\"agent\":[]}";

		is_int(dfr_config_parse(j, strlen(j), NULL, &cfg, NULL, 0), DFR_OK, "junk items parse");
		ok(cfg && cfg->cfg_ndomains == 0 && cfg->cfg_nproxies == 0 && cfg->cfg_dropped == 8 &&
			   cfg->cfg_next_poll_interval == 0,
		   "junk items: all 8 dropped (port as string refused), nextPollInterval 0");
		dfr_config_unref(cfg);
	}
}

static void
test_limits_and_dups(void)
{
	size_t n = DFR_CFG_MAX_TXT + 200;
	char *s = malloc(n + 400), *p;
	struct dfr_config *cfg;

	for (int over = 0; over < 2; over++) {
		p = s + sprintf(s, "{\"success\":true,\"domains\":[{\"id\":\"d\",\"domain\":\"e.com\","
				   "\"dnsRecords\":[{\"name\":\"t\",\"type\":\"TXT\",\"value\":\"");
		memset(p, 'a', DFR_CFG_MAX_TXT + (size_t)over);
		p += DFR_CFG_MAX_TXT + over;
		strcpy(p, "\"}]}]}");
		is_int(parse(s, strlen(s), &cfg), DFR_OK, "TXT of 1 MB%s parses", over ? " + 1" : "");
		ok(cfg && cfg->cfg_domains[0]->dom_nrecords == (over ? 0u : 1u) &&
			   cfg->cfg_dropped == (size_t)over,
		   "TXT of 1 MB%s %s", over ? " + 1" : "", over ? "dropped" : "kept");
		dfr_config_unref(cfg);
	}
	free(s);

	{
		const char *j =
			"{\"success\":true,\"domains\":["
			"{\"id\":\"b\",\"domain\":\"one.com\"},{\"id\":\"a\",\"domain\":\"two.com\"},"
			"{\"id\":\"b\",\"domain\":\"three.com\"},{\"id\":\"c\",\"domain\":\"ONE.com.\"},"
			"{\"id\":\"\",\"domain\":\"x.com\"},{\"id\":\"d\",\"domain\":\"bad_-.*.com\"}],"
			"\"proxies\":[{\"id\":\"p\",\"type\":\"udp\",\"sourcePort\":1,"
			"\"destinationPort\":65535,\"destinationHost\":\"[2001:DB8::1]\"},"
			"{\"id\":\"p\",\"type\":\"tcp\",\"sourcePort\":2,\"destinationPort\":3,"
			"\"destinationHost\":\"h.example.\"},"
			"{\"id\":\"q\",\"type\":\"TCP\",\"sourcePort\":2,\"destinationPort\":3,"
			"\"destinationHost\":\"H.Example.\",\"enabled\":false},"
			"{\"id\":\"r\",\"type\":\"tcp\",\"sourcePort\":0,\"destinationPort\":3,"
			"\"destinationHost\":\"h\"},"
			"{\"id\":\"s\",\"type\":\"tcp\",\"sourcePort\":1.5,\"destinationPort\":3,"
			"\"destinationHost\":\"h\"},"
			"{\"id\":\"t\",\"type\":\"sctp\",\"sourcePort\":1,\"destinationPort\":3,"
			"\"destinationHost\":\"h\"}]}";

		is_int(parse(j, strlen(j), &cfg), DFR_OK, "duplicates parse");
		ok(cfg && cfg->cfg_ndomains == 2 && strcmp(cfg->cfg_domains[0]->dom_id, "a") == 0 &&
			   strcmp(cfg->cfg_domains[1]->dom_name, "one.com") == 0,
		   "duplicate id and duplicate name: the first kept, sorted by id");
		ok(cfg && cfg->cfg_nproxies == 2 && cfg->cfg_proxies[0]->px_proto == DFR_PROXY_UDP &&
			   strcmp(cfg->cfg_proxies[0]->px_dest_host, "2001:db8::1") == 0 &&
			   strcmp(cfg->cfg_proxies[1]->px_dest_host, "h.example") == 0 &&
			   !cfg->cfg_proxies[1]->px_enabled,
		   "proxies: duplicate dropped, brackets removed, host lower-cased");
		is_int(cfg ? (long long)cfg->cfg_dropped : -1, 8, "8 items dropped");
		dfr_config_unref(cfg);
	}
}

static void
test_nesting(void)
{
	for (int depth = 100; depth <= 3000; depth *= 30) {
		size_t n = (size_t)depth * 8 + 400;
		char *s = malloc(n), *p;
		struct dfr_config *cfg;
		int rc;

		p = s + sprintf(s, "{\"success\":true,\"domains\":[{\"id\":\"d\",\"domain\":\"e.com\","
				   "\"httpProxy\":{\"type\":\"both\",\"antiDDoS\":{\"x\":");
		for (int i = 0; i < depth; i++)
			p += sprintf(p, "[");
		for (int i = 0; i < depth; i++)
			p += sprintf(p, "]");
		strcpy(p, "}}}]}");
		rc = parse(s, strlen(s), &cfg);
		if (depth < 900)
			ok(rc == DFR_OK && cfg->cfg_ndomains == 1 &&
				   cfg->cfg_domains[0]->dom_antiddos_json != NULL,
			   "nesting %d kept", depth);
		else
			ok(rc == DFR_EPARSE, "nesting %d refused as a whole (cJSON's limit)", depth);
		dfr_config_unref(cfg);
		free(s);
	}
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
test_10k(void)
{
	size_t cap = 40u << 20, len = 0;
	char *s = malloc(cap);
	struct dfr_config *a = NULL, *b = NULL;
	struct dfr_config_diff diff;
	double t0, t1, t2, t3, t4, t5;

	len += (size_t)sprintf(s + len, "{\"success\":true,\"domains\":[");
	for (int i = 0; i < 10000; i++) {
		len += (size_t)sprintf(
			s + len,
			"%s{\"id\":\"%024x\",\"domain\":\"site%d.example.com\",\"description\":\"d\","
			"\"dnsRecords\":["
			"{\"id\":\"r1\",\"name\":\"@\",\"type\":\"A\",\"value\":\"192.0.2.%d\",\"ttl\":300,"
			"\"priority\":null,\"httpProxyEnabled\":true},"
			"{\"id\":\"r2\",\"name\":\"www\",\"type\":\"CNAME\",\"value\":\"site%d.example.com\","
			"\"ttl\":3600,\"priority\":null,\"httpProxyEnabled\":true},"
			"{\"id\":\"r3\",\"name\":\"@\",\"type\":\"MX\",\"value\":\"mail.example.com\","
			"\"ttl\":3600,\"priority\":10,\"httpProxyEnabled\":false},"
			"{\"id\":\"r4\",\"name\":\"@\",\"type\":\"TXT\",\"value\":\"v=spf1 mx -all\","
			"\"ttl\":3600,\"priority\":null,\"httpProxyEnabled\":false},"
			"{\"name\":\"US\",\"type\":\"A\",\"value\":\"198.51.100.20\",\"ttl\":60,"
			"\"locationCode\":\"US\",\"distance\":0,\"isLastResort\":false},"
			"{\"name\":\"DE\",\"type\":\"A\",\"value\":\"203.0.113.10\",\"ttl\":60,"
			"\"locationCode\":\"DE\",\"distance\":0,\"isLastResort\":false}],"
			"\"geoDnsLocations\":[{\"code\":\"US\",\"name\":\"USA\",\"type\":\"country\","
			"\"subdomain\":\"US\"},{\"code\":\"DE\",\"name\":\"Germany\",\"type\":\"country\","
			"\"subdomain\":\"DE\"}],\"httpProxy\":{\"type\":\"both\",\"antiDDoS\":{\"enabled\":"
			"false,\"rateLimit\":{\"windowSeconds\":5,\"maxRequests\":100}}},\"ssl\":{\"enabled\":"
			"false,\"certificate\":null,\"privateKey\":null,\"autoRenew\":false,"
			"\"acmeHttpChallenge\":{\"token\":\"\",\"keyAuthorization\":\"\"}},\"luaCode\":null}",
			i ? "," : "", 10000 - i, i, i % 250, i);
	}
	len += (size_t)sprintf(s + len, "],\"proxies\":[]}");
	t0 = now_ms();
	is_int(parse(s, len, &a), DFR_OK, "10k domains parse (%zu bytes)", len);
	t1 = now_ms();
	/* The same answer with one record changed: the next poll. */
	memcpy(strstr(s, "192.0.2.0\""), "192.0.2.9", 9);
	t2 = now_ms();
	is_int(parse(s, len, &b), DFR_OK, "10k domains parse again");
	t3 = now_ms();
	diag("10k domains (%zu MB), cold heap: parse+validate %.1f ms, again %.1f ms", len >> 20,
	     t1 - t0, t3 - t2);
	if (a != NULL) {
		struct dfr_config *w = NULL;

		dfr_config_unref(a);
		memcpy(strstr(s, "192.0.2.9\""), "192.0.2.0", 9);
		t4 = now_ms();
		is_int(parse(s, len, &w), DFR_OK, "10k domains parse a third time");
		if (w != NULL && b != NULL) {
			is_int(dfr_config_diff(b, w, &diff), DFR_OK, "10k diff, steady state");
			t5 = now_ms();
			ok(diff.dd_nchanged == 1, "10k: changed back");
			dfr_config_diff_free(&diff);
			diag("10k domains, steady state (heap warm): parse+validate+diff %.1f ms",
			     t5 - t4);
		}
		a = w;
	}
	if (a != NULL && b != NULL) {
		is_int(dfr_config_diff(a, b, &diff), DFR_OK, "10k diff");
		ok(a->cfg_ndomains == 10000 && a->cfg_nrecords == 60000 && a->cfg_dropped == 0,
		   "10k: all domains and records kept");
		ok(diff.dd_nchanged == 1 && diff.dd_nadded == 0 && diff.dd_nremoved == 0,
		   "10k: one domain changed");
		ok(dfr_config_find_zone(a, "site4321.example.com") != NULL &&
			   dfr_config_find_domain(a, "000000000000000000000001") != NULL,
		   "10k: look-ups");
		dfr_config_diff_free(&diff);
	}
	dfr_config_unref(a);
	dfr_config_unref(b);
	free(s);
}

int
main(void)
{
	plan_lazy();
	/* Thousands of expected drop lines: keep the test log readable. */
	dfr_log_set_level(DFR_LOG_ERR);
	test_truncated("small.json", 1);
	test_truncated("edge.json", 3);
	test_truncated("geodns.json", 5);
	test_wrong_types();
	test_record_fields();
	test_whole_answer();
	test_limits_and_dups();
	test_nesting();
	test_10k();
	return done_testing();
}
