/*
 * The diff of two configs (added, changed, removed domains and proxies), dfr_config_apply() and
 * the reference counting of shared items.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "tests/lib/tap.h"

static struct dfr_config *
fixture_cfg(const char *name)
{
	char path[1024];
	struct dfr_config *cfg = NULL;
	size_t len;
	char *s;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	if ((s = tap_read_file(path, &len)) == NULL)
		return NULL;
	if (dfr_config_parse(s, len, NULL, &cfg, NULL, 0) != DFR_OK)
		cfg = NULL;
	free(s);
	return cfg;
}

/* Parses `json` with every occurrence of `from` replaced by `to`. */
static struct dfr_config *
parse_edit(const char *name, const char *from, const char *to)
{
	char path[1024];
	struct dfr_config *cfg = NULL;
	size_t len, fl = strlen(from), tl = strlen(to), o = 0;
	char *s, *out;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	if ((s = tap_read_file(path, &len)) == NULL)
		return NULL;
	out = malloc(len * 2 + 16);
	for (size_t i = 0; i < len;) {
		if (fl > 0 && i + fl <= len && memcmp(s + i, from, fl) == 0) {
			memcpy(out + o, to, tl);
			o += tl;
			i += fl;
		} else {
			out[o++] = s[i++];
		}
	}
	if (dfr_config_parse(out, o, NULL, &cfg, NULL, 0) != DFR_OK)
		cfg = NULL;
	free(s);
	free(out);
	return cfg;
}

static void
test_diff(void)
{
	struct dfr_config *a = fixture_cfg("geodns.json"), *b = fixture_cfg("geodns.json");
	struct dfr_config *c = parse_edit("geodns.json", "198.51.100.81", "198.51.100.82");
	struct dfr_config *e = fixture_cfg("edge.json"), *empty = dfr_config_new_empty();
	struct dfr_config *p = parse_edit("geodns.json", "\"sourcePort\": 15432", "\"sourcePort\": 15433");
	struct dfr_config_diff d;

	if (!a || !b || !c || !e || !p || !empty) {
		ok(false, "diff: fixtures parse");
		goto out;
	}
	is_int(dfr_config_diff(a, b, &d), DFR_OK, "diff: identical");
	ok(dfr_config_diff_is_empty(&d), "diff: identical configs -> empty diff");
	dfr_config_diff_free(&d);
	is_int(dfr_config_diff(NULL, a, &d), DFR_OK, "diff: against NULL");
	ok(d.dd_nadded == 3 && d.dd_npx_added == 1 && d.dd_nchanged == 0 && d.dd_nremoved == 0 &&
		   !dfr_config_diff_is_empty(&d),
	   "diff: against NULL, everything added");
	ok(d.dd_added[0] == a->cfg_domains[0], "diff: items point into the new config");
	dfr_config_diff_free(&d);
	is_int(dfr_config_diff(a, NULL, &d), DFR_OK, "diff: to NULL");
	ok(d.dd_nremoved == 3 && d.dd_npx_removed == 1 && d.dd_nadded == 0, "diff: to NULL, all removed");
	dfr_config_diff_free(&d);
	dfr_config_diff(a, c, &d);
	ok(d.dd_nchanged == 1 && d.dd_nadded == 0 && d.dd_nremoved == 0 && d.dd_npx_changed == 0 &&
		   strcmp(d.dd_changed[0]->dom_name, "example.net") == 0 &&
		   d.dd_changed[0] == dfr_config_find_zone(c, "example.net"),
	   "diff: one record value changed -> that domain changed (new version)");
	dfr_config_diff_free(&d);
	dfr_config_diff(a, p, &d);
	ok(d.dd_npx_changed == 1 && d.dd_nchanged == 0 && d.dd_px_changed[0]->px_source_port == 15433,
	   "diff: proxy port changed");
	dfr_config_diff_free(&d);
	dfr_config_diff(a, e, &d);
	ok(d.dd_nadded == 2 && d.dd_nremoved == 3 && d.dd_npx_added == 5 && d.dd_npx_removed == 1,
	   "diff: disjoint configs");
	dfr_config_diff_free(&d);
	dfr_config_diff(empty, empty, &d);
	ok(dfr_config_diff_is_empty(&d), "diff: empty vs empty");
	dfr_config_diff_free(&d);
	dfr_config_diff_free(NULL);
out:
	dfr_config_unref(a);
	dfr_config_unref(b);
	dfr_config_unref(c);
	dfr_config_unref(e);
	dfr_config_unref(p);
	dfr_config_unref(empty);
}

static void
test_apply(void)
{
	struct dfr_config *a = fixture_cfg("geodns.json");
	struct dfr_config *c = parse_edit("geodns.json", "198.51.100.81", "198.51.100.82");
	struct dfr_config *e = fixture_cfg("edge.json");
	struct dfr_config *n = NULL, *n2 = NULL;
	struct dfr_config_diff d;
	struct dfr_domain *ups[3];
	struct dfr_proxy *pups[1];
	const char *rms[2], *prms[1];
	const struct dfr_domain *net;

	if (!a || !c || !e) {
		ok(false, "apply: fixtures parse");
		goto out;
	}
	a->cfg_generation = 7;
	/* The delta a -> c applied to a gives c. */
	net = dfr_config_find_zone(c, "example.net");
	ups[0] = (struct dfr_domain *)net;
	n = dfr_config_apply(a, ups, 1, NULL, 0, NULL, 0, NULL, 0);
	ok(n != NULL, "apply: upsert");
	if (n == NULL)
		goto out;
	dfr_config_diff(n, c, &d);
	ok(dfr_config_diff_is_empty(&d), "apply: base + changed domain equals the new config");
	dfr_config_diff_free(&d);
	ok(dfr_config_find_zone(n, "example.net") == net && n->cfg_generation == 7 &&
		   n->cfg_nrecords == c->cfg_nrecords && n->cfg_domains[1] == a->cfg_domains[1],
	   "apply: item shared, generation copied, records recounted, unchanged items shared");
	is_int(net->dom_refs, 2, "apply: a reference taken on the upserted item");
	is_int(a->cfg_domains[1]->dom_refs, 2, "apply: a reference taken on kept items");
	/* Add two of edge's, remove one of a's and the proxy, add edge's proxies one. */
	ups[0] = e->cfg_domains[1];
	ups[1] = e->cfg_domains[0];
	ups[2] = e->cfg_domains[0]; /* twice: the last wins, no double entry */
	rms[0] = "6721c3d4e5f6a7b8c9d0e102";
	rms[1] = "not-there";
	pups[0] = e->cfg_proxies[2];
	prms[0] = "6721d0e1f2a3b4c5d6e7f801";
	n2 = dfr_config_apply(n, ups, 3, rms, 2, pups, 1, prms, 1);
	ok(n2 != NULL && n2->cfg_ndomains == 4 && n2->cfg_nproxies == 1 &&
		   n2->cfg_proxies[0] == e->cfg_proxies[2],
	   "apply: adds and removes");
	if (n2 != NULL) {
		bool sorted = true;

		for (size_t i = 1; i < n2->cfg_ndomains; i++)
			sorted = sorted && strcmp(n2->cfg_domains[i - 1]->dom_id,
						  n2->cfg_domains[i]->dom_id) < 0;
		ok(sorted, "apply: still sorted by id");
		ok(dfr_config_find_domain(n2, rms[0]) == NULL &&
			   dfr_config_find_zone(n2, "empty.example.org") != NULL &&
			   dfr_config_find_zone(n2, "example.org") == NULL,
		   "apply: look-ups after apply");
	}
	/* Removing an upserted id: removed. */
	{
		struct dfr_config *n3;

		ups[0] = e->cfg_domains[0];
		rms[0] = e->cfg_domains[0]->dom_id;
		n3 = dfr_config_apply(NULL, ups, 1, rms, 1, NULL, 0, NULL, 0);
		ok(n3 != NULL && n3->cfg_ndomains == 0, "apply: remove wins over upsert; NULL base");
		dfr_config_unref(n3);
	}
	/* Refcounts: dropping the configs frees everything exactly once (ASan checks). */
	dfr_config_ref(n2);
	dfr_config_unref(n2);
	is_int(n2 ? n2->cfg_refs : 0, 1, "ref/unref");
out:
	dfr_config_unref(n2);
	dfr_config_unref(n);
	dfr_config_unref(a);
	dfr_config_unref(c);
	dfr_config_unref(e);
}

/* A config made by hand (no zone index): find_zone falls back to a scan. */
static void
test_hand_made(void)
{
	struct dfr_config *e = fixture_cfg("edge.json");
	struct dfr_config hand = {0};

	if (e == NULL) {
		ok(false, "hand-made: fixture");
		return;
	}
	hand.cfg_domains = e->cfg_domains;
	hand.cfg_ndomains = e->cfg_ndomains;
	ok(e->cfg_zones != NULL && hand.cfg_zones == NULL, "hand-made: no index");
	ok(dfr_config_find_zone(&hand, "empty.example.org") == e->cfg_domains[1] &&
		   dfr_config_find_zone(&hand, "nope.example") == NULL,
	   "hand-made: find_zone scans");
	dfr_config_unref(e);
}

int
main(void)
{
	plan_lazy();
	dfr_log_set_level(DFR_LOG_ERR);
	test_diff();
	test_apply();
	test_hand_made();
	return done_testing();
}
