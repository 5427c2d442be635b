/*
 * The bus's wire encoding (shared/bus_msg.c): header round trip and every rejection of the
 * decoder, config deltas encoded from real diffs of the Core fixtures, decoded and applied back
 * to the same config, and hostile delta payloads that must fail cleanly (ASan checks no leak).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bus_msg.h"
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

static struct dfr_config *
parse_text(const char *json, size_t len, const char *what)
{
	struct dfr_config *cfg = NULL;
	char why[256] = "";
	int rc = dfr_config_parse(json, len, NULL, &cfg, why, sizeof(why));

	if (!ok(rc == DFR_OK && cfg != NULL, "%s parses", what))
		diag("rc %d (%s): %s", rc, dfr_strerror(rc), why);
	return rc == DFR_OK ? cfg : NULL;
}

static struct dfr_config *
parse_fixture(const char *name)
{
	size_t len;
	char *json = fixture(name, &len);
	struct dfr_config *cfg;

	if (json == NULL) {
		ok(false, "fixture %s readable", name);
		return NULL;
	}
	cfg = parse_text(json, len, name);
	free(json);
	return cfg;
}

/* Same domains and proxies, compared by their canonical JSON (what the bus carries). */
static bool
cfg_same(const struct dfr_config *a, const struct dfr_config *b)
{
	if (a->cfg_ndomains != b->cfg_ndomains || a->cfg_nproxies != b->cfg_nproxies) {
		diag("domains %zu vs %zu, proxies %zu vs %zu", a->cfg_ndomains, b->cfg_ndomains,
		     a->cfg_nproxies, b->cfg_nproxies);
		return false;
	}
	for (size_t i = 0; i < a->cfg_ndomains; i++)
		if (strcmp(a->cfg_domains[i]->dom_json, b->cfg_domains[i]->dom_json) != 0) {
			diag("domain %s differs", a->cfg_domains[i]->dom_id);
			return false;
		}
	for (size_t i = 0; i < a->cfg_nproxies; i++)
		if (strcmp(a->cfg_proxies[i]->px_json, b->cfg_proxies[i]->px_json) != 0) {
			diag("proxy %s differs", a->cfg_proxies[i]->px_id);
			return false;
		}
	return true;
}

static void
test_header(void)
{
	uint8_t buf[DFR_BUS_HDR_LEN + 5];
	struct dfr_msg_hdr h = {.mh_type = DFR_MSG_CFG_DELTA,
				.mh_generation = 0x0102030405060708ull,
				.mh_base_generation = 0x1112131415161718ull,
				.mh_payload_len = 5,
				.mh_flags = 0};
	struct dfr_msg_hdr got;
	const uint8_t *payload = NULL;
	static const uint8_t want_hdr[DFR_BUS_HDR_LEN] = {
		'D', 'F', 'R', 'B', 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0, 0, 0, 5, 0, 0, 0, 0};

	memset(&got, 0xa5, sizeof(got));
	dfr_msg_hdr_encode(buf, &h);
	memcpy(buf + DFR_BUS_HDR_LEN, "hello", 5);
	ok(memcmp(buf, want_hdr, DFR_BUS_HDR_LEN) == 0, "header bytes are big-endian as documented");
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_OK, "header decodes");
	is_int(got.mh_version, DFR_BUS_VERSION, "version");
	is_int(got.mh_type, DFR_MSG_CFG_DELTA, "type");
	ok(got.mh_generation == h.mh_generation, "generation");
	ok(got.mh_base_generation == h.mh_base_generation, "base generation");
	is_int(got.mh_payload_len, 5, "payload length");
	is_int(got.mh_flags, 0, "flags");
	ok(payload == buf + DFR_BUS_HDR_LEN, "payload points after the header");

	/* an empty payload (heartbeat) */
	h.mh_type = DFR_MSG_CFG_HEARTBEAT;
	h.mh_payload_len = 0;
	dfr_msg_hdr_encode(buf, &h);
	is_int(dfr_msg_decode(buf, DFR_BUS_HDR_LEN, &got, &payload), DFR_OK,
	       "header-only message decodes");
	is_int(got.mh_type, DFR_MSG_CFG_HEARTBEAT, "heartbeat type");

	/* rejections */
	h.mh_type = DFR_MSG_CFG_DELTA;
	h.mh_payload_len = 5;
	dfr_msg_hdr_encode(buf, &h);
	is_int(dfr_msg_decode(buf, DFR_BUS_HDR_LEN - 1, &got, &payload), DFR_EPARSE,
	       "short message rejected");
	is_int(dfr_msg_decode(buf, 0, &got, &payload), DFR_EPARSE, "empty message rejected");
	is_int(dfr_msg_decode(buf, sizeof(buf) - 1, &got, &payload), DFR_EPARSE,
	       "payload shorter than announced rejected");
	is_int(dfr_msg_decode(buf, DFR_BUS_HDR_LEN, &got, &payload), DFR_EPARSE,
	       "missing payload rejected");
	h.mh_payload_len = 4;
	dfr_msg_hdr_encode(buf, &h);
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_EPARSE,
	       "payload longer than announced rejected");
	h.mh_payload_len = DFR_BUS_MAX_MSG;
	dfr_msg_hdr_encode(buf, &h);
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_ELIMIT,
	       "payload length over the limit rejected");
	h.mh_payload_len = 0xffffffffu;
	dfr_msg_hdr_encode(buf, &h);
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_ELIMIT,
	       "payload length 2^32-1 rejected");
	h.mh_payload_len = 5;
	dfr_msg_hdr_encode(buf, &h);
	buf[0] = 'X';
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_EPARSE, "bad magic rejected");
	dfr_msg_hdr_encode(buf, &h);
	buf[5] = 2;
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_EVERSION,
	       "version 2 rejected");
	buf[4] = 1;
	buf[5] = 1;
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_EVERSION,
	       "version 257 rejected");
	ok(got.mh_type == DFR_MSG_CFG_HEARTBEAT, "a failed decode leaves the output alone");

	/* an unknown type is the dispatcher's business, not the decoder's */
	dfr_msg_hdr_encode(buf, &h);
	buf[7] = 99;
	is_int(dfr_msg_decode(buf, sizeof(buf), &got, &payload), DFR_OK,
	       "unknown type decodes (dropped by dispatch)");
	is_int(got.mh_type, 99, "unknown type number kept");

	is_str(dfr_msg_type_name(DFR_MSG_CFG_DELTA), "cfg-delta", "type name delta");
	is_str(dfr_msg_type_name(DFR_MSG_CFG_HEARTBEAT), "cfg-heartbeat", "type name heartbeat");
	is_str(dfr_msg_type_name(DFR_MSG_CFG_SNAPSHOT_REQ), "cfg-snapshot-req", "type name req");
	is_str(dfr_msg_type_name(DFR_MSG_CFG_SNAPSHOT_REP), "cfg-snapshot-rep", "type name rep");
	is_str(dfr_msg_type_name(DFR_MSG_WAF_EVAL_REQ), "waf-eval-req", "type name waf req");
	is_str(dfr_msg_type_name(99), "unknown", "type name of an unknown type");
}

/* Encodes the diff old -> new, decodes it, applies it to old: must give new. */
static void
check_delta(const struct dfr_config *old, const struct dfr_config *new, const char *what)
{
	struct dfr_config_diff diff;
	struct dfr_delta d;
	struct dfr_config *got;
	char *payload;
	size_t len = 0;

	memset(&d, 0, sizeof(d));
	if (!ok(dfr_config_diff(old, new, &diff) == DFR_OK, "%s: diff", what))
		return;
	payload = dfr_delta_encode(&diff, &len);
	ok(payload != NULL && len == strlen(payload), "%s: delta encoded (%zu bytes)", what, len);
	if (payload == NULL) {
		dfr_config_diff_free(&diff);
		return;
	}
	is_int(dfr_delta_decode((const uint8_t *)payload, len, &d), DFR_OK, "%s: delta decodes",
	       what);
	is_int(d.dl_ndom_upserts, diff.dd_nadded + diff.dd_nchanged, "%s: domain upserts", what);
	is_int(d.dl_ndom_removes, diff.dd_nremoved, "%s: domain removes", what);
	is_int(d.dl_npx_upserts, diff.dd_npx_added + diff.dd_npx_changed, "%s: proxy upserts",
	       what);
	is_int(d.dl_npx_removes, diff.dd_npx_removed, "%s: proxy removes", what);
	got = dfr_delta_apply(old, &d);
	ok(got != NULL && cfg_same(got, new), "%s: applied delta gives the new config", what);
	dfr_config_unref(got);
	dfr_delta_free(&d);
	free(payload);
	dfr_config_diff_free(&diff);
}

/* Removed ids are the Core's text: whatever they hold, the payload is JSON that gives them back. */
static void
test_delta_id_escaping(void)
{
	static const char id[] = "a\"b\\c\n\x01\x1f/\xc3\xa9";
	struct dfr_domain dom = {.dom_id = (char *)id};
	const struct dfr_domain *removed[] = {&dom};
	struct dfr_config_diff diff = {.dd_removed = removed, .dd_nremoved = 1};
	char *payload;
	size_t len = 0;
	cJSON *j = NULL, *rm;

	payload = dfr_delta_encode(&diff, &len);
	ok(payload != NULL && len == dfr_delta_encoded_len(&diff) && len == strlen(payload),
	   "delta with an awkward id encoded (%zu bytes)", len);
	if (payload != NULL)
		j = cJSON_ParseWithLength(payload, len);
	rm = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "domains"), "remove");
	ok(cJSON_IsArray(rm) && cJSON_GetArraySize(rm) == 1 &&
	           cJSON_IsString(cJSON_GetArrayItem(rm, 0)) &&
	           strcmp(cJSON_GetArrayItem(rm, 0)->valuestring, id) == 0,
	   "it parses as JSON and gives the id back: %s", payload ? payload : "(null)");
	ok(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "proxies"), "upsert")) ==
	           0,
	   "empty families are empty arrays");
	cJSON_Delete(j);
	free(payload);
}

/* small.json with a domain changed and one added (from geodns.json), a proxy changed and one
 * removed. */
static struct dfr_config *
small_modified(void)
{
	size_t slen, glen;
	char *small = fixture("small.json", &slen), *geo = fixture("geodns.json", &glen), *text;
	cJSON *s = NULL, *g = NULL, *doms, *pxs;
	struct dfr_config *cfg = NULL;

	if (small == NULL || geo == NULL)
		goto out;
	s = cJSON_ParseWithLength(small, slen);
	g = cJSON_ParseWithLength(geo, glen);
	if (s == NULL || g == NULL)
		goto out;
	doms = cJSON_GetObjectItem(s, "domains");
	pxs = cJSON_GetObjectItem(s, "proxies");
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(doms, 0), "description",
				  cJSON_CreateString("Changed site"));
	cJSON_AddItemToArray(doms, cJSON_DetachItemFromArray(cJSON_GetObjectItem(g, "domains"), 1));
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(pxs, 0), "destinationPort",
				  cJSON_CreateNumber(23));
	cJSON_DeleteItemFromArray(pxs, 1);
	if ((text = cJSON_PrintUnformatted(s)) != NULL) {
		cfg = parse_text(text, strlen(text), "modified small.json");
		free(text);
	}
out:
	cJSON_Delete(s);
	cJSON_Delete(g);
	free(small);
	free(geo);
	return cfg;
}

static void
test_delta_round_trip(void)
{
	struct dfr_config *small = parse_fixture("small.json");
	struct dfr_config *geo = parse_fixture("geodns.json");
	struct dfr_config *edge = parse_fixture("edge.json");
	struct dfr_config *mod = small_modified();
	struct dfr_config *empty = dfr_config_new_empty();

	if (small == NULL || geo == NULL || edge == NULL || mod == NULL || empty == NULL) {
		ok(false, "fixtures parsed");
		goto out;
	}
	check_delta(NULL, small, "nothing -> small");
	check_delta(NULL, geo, "nothing -> geodns");
	check_delta(NULL, edge, "nothing -> edge");
	check_delta(empty, edge, "empty -> edge");
	check_delta(small, geo, "small -> geodns");
	check_delta(geo, edge, "geodns -> edge");
	check_delta(edge, empty, "edge -> empty");
	check_delta(small, mod, "small -> modified");
	check_delta(mod, small, "modified -> small");
	check_delta(small, small, "small -> small (empty delta)");

	/* the modified config really exercises every kind of change */
	{
		struct dfr_config_diff diff;

		if (dfr_config_diff(small, mod, &diff) == DFR_OK) {
			is_int(diff.dd_nadded, 1, "modified: one domain added");
			is_int(diff.dd_nchanged, 1, "modified: one domain changed");
			is_int(diff.dd_npx_changed, 1, "modified: one proxy changed");
			is_int(diff.dd_npx_removed, 1, "modified: one proxy removed");
			dfr_config_diff_free(&diff);
		}
	}

	/* a delta applied to NULL applies to the empty config */
	{
		struct dfr_delta d;
		static const char p[] = "{\"domains\":{\"upsert\":[],\"remove\":[\"x\"]},"
					"\"proxies\":{\"upsert\":[],\"remove\":[]}}";
		struct dfr_config *got;

		if (is_int(dfr_delta_decode((const uint8_t *)p, sizeof(p) - 1, &d), DFR_OK,
			   "delta removing an unknown id decodes")) {
			got = dfr_delta_apply(NULL, &d);
			ok(got != NULL && got->cfg_ndomains == 0 && got->cfg_nproxies == 0,
			   "applied to nothing: the empty config");
			dfr_config_unref(got);
			dfr_delta_free(&d);
		}
	}
out:
	dfr_config_unref(small);
	dfr_config_unref(geo);
	dfr_config_unref(edge);
	dfr_config_unref(mod);
	dfr_config_unref(empty);
}

static void
hostile(const char *payload, int want, const char *what)
{
	struct dfr_delta d;

	memset(&d, 0x5a, sizeof(d));
	is_int(dfr_delta_decode((const uint8_t *)payload, strlen(payload), &d), want, "%s", what);
	if (want == DFR_OK)
		dfr_delta_free(&d);
}

static void
test_hostile_deltas(void)
{
	struct dfr_config *small = parse_fixture("small.json");
	char *good = NULL, *p;
	size_t n;

	hostile("", DFR_EPARSE, "empty payload");
	hostile("not json", DFR_EPARSE, "not JSON");
	hostile("{\"domains\":", DFR_EPARSE, "truncated JSON");
	hostile("[]", DFR_EPARSE, "an array");
	hostile("\"x\"", DFR_EPARSE, "a string");
	hostile("{}", DFR_OK, "an empty object is an empty delta");
	hostile("{\"domains\":[]}", DFR_EPARSE, "domains not an object");
	hostile("{\"proxies\":5}", DFR_EPARSE, "proxies not an object");
	hostile("{\"domains\":{\"upsert\":{}}}", DFR_EPARSE, "upsert not an array");
	hostile("{\"domains\":{\"remove\":\"x\"}}", DFR_EPARSE, "remove not an array");
	hostile("{\"domains\":{\"upsert\":[1]}}", DFR_EPARSE, "upsert item a number");
	hostile("{\"domains\":{\"upsert\":[null]}}", DFR_EPARSE, "upsert item null");
	hostile("{\"domains\":{\"remove\":[1]}}", DFR_EPARSE, "remove item a number");
	hostile("{\"domains\":{\"remove\":[\"\"]}}", DFR_EPARSE, "remove item empty");
	hostile("{\"proxies\":{\"remove\":[\"a\",null]}}", DFR_EPARSE, "remove item null");
	hostile("{\"domains\":{\"upsert\":[{}]}}", DFR_EPARSE, "domain without anything");
	hostile("{\"domains\":{\"upsert\":[{\"id\":5,\"domain\":[]}]}}", DFR_EPARSE,
		"domain with wrong types");
	hostile("{\"proxies\":{\"upsert\":[{\"id\":\"p\",\"sourcePort\":\"x\"}]}}", DFR_EPARSE,
		"proxy with wrong types");
	hostile("{\"proxies\":{\"upsert\":[{\"id\":\"p\",\"type\":\"tcp\",\"sourcePort\":70000,"
		"\"destinationHost\":\"192.0.2.1\",\"destinationPort\":1,\"enabled\":true}]}}",
		DFR_EPARSE, "proxy with a port out of range");

	/* a good domain then a bad one: the whole delta fails and the good one is freed */
	if (small != NULL && small->cfg_ndomains > 0 && small->cfg_nproxies > 0) {
		n = strlen(small->cfg_domains[0]->dom_json) + strlen(small->cfg_proxies[0]->px_json);
		good = malloc(n + 256);
		p = good;
		p += sprintf(p, "{\"proxies\":{\"upsert\":[%s]},\"domains\":{\"upsert\":[%s,{\"id\":1}]}}",
			     small->cfg_proxies[0]->px_json, small->cfg_domains[0]->dom_json);
		hostile(good, DFR_EPARSE, "good items then a bad domain");
		sprintf(good, "{\"domains\":{\"upsert\":[%s],\"remove\":[\"a\"]},"
			      "\"proxies\":{\"upsert\":[%s],\"remove\":[\"b\"]}}",
			small->cfg_domains[0]->dom_json, small->cfg_proxies[0]->px_json);
		hostile(good, DFR_OK, "the same items well formed decode");
		free(good);
	}
	dfr_config_unref(small);
}

int
main(void)
{
	plan_lazy();
	dfr_log_set_level(DFR_LOG_ERR);
	test_header();
	test_delta_id_escaping();
	test_delta_round_trip();
	test_hostile_deltas();
	return done_testing();
}
