/*
 * The GeoDNS choice (geo.c) over the fixtures' location records: country entry, continent entry,
 * the Go agent's neighbour list, the continent standing for a country, the default; never
 * random. The GeoIP look-up itself is exercised by the integration test with a real database.
 */
#include "dnsd_test.h"

static const struct zone *
zone_named(const struct zone_db *db, const char *name)
{
	uint8_t w[256];
	size_t l = wire_name_from_text(name, w, sizeof(w));
	struct znode *n = zone_db_find(db, w, l);

	return n && (n->zn_flags & ZN_APEX) ? n->zn_zone : NULL;
}

/* The first address of the choice for (country, continent) as text, or "default". */
static const char *
choice(const struct zone *z, const char *country, int cont, int fam)
{
	static char buf[64];
	struct geo_result r = {country ? geo_country_key(country) : 0, (int8_t)cont, 0};
	unsigned slot;
	const struct zrrset *rs = geo_choose(z, &r, fam, &slot);

	if (rs == NULL)
		return "default";
	inet_ntop(fam ? AF_INET6 : AF_INET, rs->rs_data + 12, buf, sizeof(buf));
	return buf;
}

int
main(void)
{
	struct zone_db *db;
	const struct zone *net, *org, *edge;
	char b[32];

	plan_lazy();
	is_int(geo_country_key("DE"), geo_country_key("de"), "country keys ignore case");
	is_int(geo_country_key("deu"), 0, "three letters are not a country");
	is_int(geo_continent_from_name("north-america"), GEO_CONT_NA, "continent names");
	ok(geo_neighbours(geo_country_key("xx")) == NULL, "no neighbours for an unlisted country");
	is_str(geo_neighbours(geo_country_key("pl"))[0], "de", "pl's first neighbour is de");
	is_str(geo_slot_name(ST_GEO_COUNTRIES + GEO_CONT_OC, b, sizeof(b)), "oceania", "slot names");
	is_str(geo_slot_name(3 * 26 + 4, b, sizeof(b)), "de", "country slot names");

	db = db_from_fixture("geodns.json", 1);
	ok(db != NULL, "geodns.json compiles");
	if (db == NULL)
		return done_testing();
	net = zone_named(db, "example.net");
	org = zone_named(db, "example.org");
	ok(net && org, "both zones present");
	if (!net || !org)
		goto out;
	ok(net->z_apex->zn_flags & ZN_GEO, "apex with locations is a GeoDNS name");
	is_int((long long)net->z_nlocs, 17, "17 country locations (upper-case codes)");

	is_str(choice(net, "de", GEO_CONT_EU, 0), "203.0.113.10", "country entry");
	is_str(choice(net, "us", GEO_CONT_NA, 0), "198.51.100.20", "country entry (us)");
	is_str(choice(net, "pl", GEO_CONT_EU, 0), "203.0.113.10",
	       "no entry for pl, no continent entries: neighbour de");
	is_str(choice(net, "nz", GEO_CONT_OC, 0), "203.0.113.30", "nz -> neighbour au");
	is_str(choice(net, "it", GEO_CONT_EU, 0), "203.0.113.10", "it -> neighbour fr");
	is_str(choice(net, "cl", GEO_CONT_SA, 0), "198.51.100.40", "cl -> neighbour ar");
	is_str(choice(net, "in", GEO_CONT_AS, 0), "203.0.113.30", "in -> neighbour sg");
	is_str(choice(net, NULL, GEO_CONT_EU, 0), "203.0.113.10", "no country, EU stands for de");
	is_str(choice(net, NULL, GEO_CONT_AF, 0), "198.51.100.40", "no country, AF stands for za");
	is_str(choice(net, "is", GEO_CONT_EU, 0), "default",
	       "country without entry or neighbour list, no continent entries: default");
	is_str(choice(net, NULL, GEO_CONT_NONE, 0), "default", "unknown client: default");
	is_str(choice(net, "de", GEO_CONT_EU, 1), "default", "no IPv6 locations: AAAA default");

	is_str(choice(org, "us", GEO_CONT_NA, 0), "198.51.100.20", "lower-case country entry");
	is_str(choice(org, "fr", GEO_CONT_EU, 0), "203.0.113.10",
	       "no fr entry: the europe entry before the neighbour list");
	is_str(choice(org, "pl", GEO_CONT_EU, 0), "203.0.113.10", "pl -> europe");
	is_str(choice(org, "br", GEO_CONT_SA, 0), "198.51.100.40", "br -> south-america");
	is_str(choice(org, "ng", GEO_CONT_AF, 0), "203.0.113.10", "ng -> africa");
	is_str(choice(org, "nz", GEO_CONT_OC, 0), "203.0.113.30", "nz -> oceania");
	is_str(choice(org, "mx", GEO_CONT_NA, 0), "198.51.100.20", "mx -> north-america");
	is_str(choice(org, NULL, GEO_CONT_AN, 0), "default", "antarctica: no entry, default");
	{
		struct geo_result r = {geo_country_key("pl"), GEO_CONT_EU, 0};
		unsigned s1 = 0, s2 = 0;
		const struct zrrset *a = geo_choose(org, &r, 0, &s1), *c = geo_choose(org, &r, 0, &s2);

		ok(a == c && s1 == s2 && s1 == ST_GEO_COUNTRIES + GEO_CONT_EU,
		   "the same client always gets the same entry (no random choice)");
	}
	zone_db_free(db);

	db = db_from_fixture("edge.json", 1);
	edge = db ? zone_named(db, "edgecase.example.net") : NULL;
	ok(edge != NULL, "edge.json zone present");
	if (edge != NULL) {
		is_str(choice(edge, "fi", GEO_CONT_EU, 1), "2001:db8:4::53",
		       "IPv6 node address in an A location record answers AAAA");
		is_str(choice(edge, "fi", GEO_CONT_EU, 0), "192.0.2.40",
		       "fi has only IPv6: A falls back along the chain (europe)");
		is_str(choice(edge, "de", GEO_CONT_EU, 0), "192.0.2.40",
		       "de (lower-case code, IPv6 only): A from the europe entry");
		is_str(choice(edge, "ua", GEO_CONT_EU, 0), "192.0.2.40", "last-resort entry still a country");
	}
out:
	zone_db_free(db);
	return done_testing();
}
