/*
 * dnsd's answers over the Core fixtures: every record type, the negative cases (NXDOMAIN,
 * NODATA, REFUSED) with their SOA, CNAME chains, wildcards, case, ANY, EDNS, truncation and
 * malformed queries. The answer function runs without a socket; ldns decodes what it wrote.
 */
#include "dnsd_test.h"

#define LABEL60 "23456789012345678901234567890123456789012345678901234567890"

static void
test_small(void)
{
	struct zone_db *db = db_from_fixture("small.json", 41);
	struct qopt edns = {.edns = 1232};
	ldns_pkt *p;

	ok(db != NULL, "small.json compiles");
	if (db == NULL)
		return;

	p = ask(db, "example.com", DNS_T_A, NULL, false);
	is_int(RCODE(p), 0, "apex A: NOERROR");
	ok(p && ldns_pkt_aa(p), "apex A: AA set");
	is_str(ANSWER(p), "example.com. 60 IN A 192.0.2.10",
	       "apex A without GeoIP: the default entry, TTL 60");
	ldns_pkt_free(p);

	p = ask(db, "ExAmPlE.CoM", DNS_T_A, NULL, false);
	ok(test_outlen > 20 && memcmp(test_out + 13, "ExAmPlE", 7) == 0,
	   "question echoed with its case");
	is_str(ANSWER(p), "ExAmPlE.CoM. 60 IN A 192.0.2.10", "mixed-case name answered");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_AAAA, NULL, false);
	is_str(ANSWER(p), "example.com. 60 IN AAAA 2001:db8::10", "apex AAAA: default entry");
	ldns_pkt_free(p);

	p = ask(db, "www.example.com", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "www.example.com. 60 IN A 192.0.2.10",
	       "proxied CNAME www: GeoDNS answer (the CNAME is the origin)");
	ldns_pkt_free(p);

	p = ask(db, "mail.example.com", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "mail.example.com. 3600 IN A 192.0.2.25", "regular A");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_MX, NULL, false);
	is_str(ANSWER(p), "example.com. 3600 IN MX 10 mail.example.com.", "MX");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_TXT, NULL, false);
	is_str(ANSWER(p), "example.com. 3600 IN TXT \"v=spf1 mx ip4:192.0.2.25 -all\"", "TXT");
	ldns_pkt_free(p);

	p = ask(db, "_DMARC.example.com", DNS_T_TXT, NULL, false);
	is_str(ANSWER(p),
	       "_DMARC.example.com. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\"",
	       "TXT at _dmarc, asked in upper case");
	ldns_pkt_free(p);

	p = ask(db, "nope.example.com", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_NXDOMAIN, "missing name: NXDOMAIN");
	ok(p && ldns_pkt_aa(p), "NXDOMAIN: AA set");
	is_str(AUTHORITY(p),
	       "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 41 3600 600 604800 300",
	       "NXDOMAIN: synthesised SOA, serial = generation, negative TTL");
	is_str(ANSWER(p), "", "NXDOMAIN: empty answer");
	ldns_pkt_free(p);

	p = ask(db, "mail.example.com", DNS_T_AAAA, NULL, false);
	is_int(RCODE(p), 0, "NODATA: NOERROR");
	is_str(ANSWER(p), "", "NODATA: empty answer");
	ok(strstr(AUTHORITY(p), " IN SOA ") != NULL, "NODATA: SOA in authority");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_SOA, NULL, false);
	is_str(ANSWER(p),
	       "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 41 3600 600 604800 300",
	       "SOA query");
	ldns_pkt_free(p);

	p = ask(db, "us.example.com", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_NXDOMAIN, "a location record is not a sub-domain");
	ldns_pkt_free(p);

	p = ask(db, "example.org", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_REFUSED, "outside every zone: REFUSED");
	ok(p && !ldns_pkt_aa(p), "REFUSED: AA clear");
	ldns_pkt_free(p);

	p = ask(db, "com", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_REFUSED, "parent of a zone: REFUSED");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_ANY, NULL, false);
	ok(p && ldns_rr_list_rr_count(ldns_pkt_answer(p)) >= 1 && RCODE(p) == 0,
	   "ANY: one rrset (RFC 8482)");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_AXFR, NULL, true);
	is_int(RCODE(p), LDNS_RCODE_REFUSED, "AXFR refused");
	ldns_pkt_free(p);

	p = ask(db, "example.com", DNS_T_CAA, NULL, false);
	ok(RCODE(p) == 0 && ldns_rr_list_rr_count(ldns_pkt_answer(p)) == 0, "CAA absent: NODATA");
	ldns_pkt_free(p);

	/* EDNS */
	p = ask(db, "example.com", DNS_T_A, &edns, false);
	ok(p && ldns_pkt_edns(p), "EDNS query: OPT in the answer");
	is_int(p ? ldns_pkt_edns_udp_size(p) : 0, DNS_EDNS_SIZE, "EDNS: our UDP size advertised");
	ldns_pkt_free(p);

	edns.version = 1;
	p = ask(db, "example.com", DNS_T_A, &edns, false);
	ok(p && ldns_pkt_edns(p) && ldns_pkt_edns_extended_rcode(p) == 1 && RCODE(p) == 0,
	   "EDNS version 1: BADVERS");
	is_str(ANSWER(p), "", "BADVERS: no answer");
	ldns_pkt_free(p);

	zone_db_free(db);
}

static void
test_edge(void)
{
	struct zone_db *db = db_from_fixture("edge.json", 7);
	ldns_pkt *p;
	const ldns_rr_list *an;

	ok(db != NULL, "edge.json compiles");
	if (db == NULL)
		return;

	p = ask(db, "a.b.c.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "a.b.c.edgecase.example.net. 3600 IN A 192.0.2.77", "multi-label name");
	ldns_pkt_free(p);

	p = ask(db, "b.c.edgecase.example.net", DNS_T_A, NULL, false);
	ok(RCODE(p) == 0 && strcmp(ANSWER(p), "") == 0 && strstr(AUTHORITY(p), "SOA"),
	   "empty non-terminal: NODATA, not NXDOMAIN");
	ldns_pkt_free(p);

	p = ask(db, "x.c.edgecase.example.net", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_NXDOMAIN,
	       "below an empty non-terminal: the apex wildcard does not apply (RFC 4592)");
	ldns_pkt_free(p);

	p = ask(db, "Anything.EdgeCase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "Anything.EdgeCase.example.net. 3600 IN A 192.0.2.99",
	       "wildcard: synthesised with the asked owner");
	ldns_pkt_free(p);

	p = ask(db, "anything.edgecase.example.net", DNS_T_MX, NULL, false);
	ok(RCODE(p) == 0 && strcmp(ANSWER(p), "") == 0, "wildcard without the type: NODATA");
	ldns_pkt_free(p);

	p = ask(db, "ns.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "ns.edgecase.example.net. 3600 IN A 192.0.2.53",
	       "two-letter sub-domain that is not a location stays a name");
	ldns_pkt_free(p);

	p = ask(db, "dkim._domainkey.edgecase.example.net", DNS_T_TXT, NULL, true);
	an = p ? ldns_pkt_answer(p) : NULL;
	ok(an && ldns_rr_list_rr_count(an) == 1 && ldns_rr_rd_count(ldns_rr_list_rr(an, 0)) == 2,
	   "332-byte TXT split into two strings");
	if (an && ldns_rr_list_rr_count(an) == 1) {
		ldns_rr *rr = ldns_rr_list_rr(an, 0);
		size_t l0 = ldns_rdf_size(ldns_rr_rdf(rr, 0)), l1 = ldns_rdf_size(ldns_rr_rdf(rr, 1));

		is_int((long long)l0, 256, "first string 255 bytes");
		is_int((long long)(l0 + l1 - 2), 332, "all 332 bytes kept");
	}
	ldns_pkt_free(p);

	p = ask(db, "quote.edgecase.example.net", DNS_T_TXT, NULL, false);
	an = p ? ldns_pkt_answer(p) : NULL;
	if (an && ldns_rr_list_rr_count(an) == 1) {
		ldns_rdf *rd = ldns_rr_rdf(ldns_rr_list_rr(an, 0), 0);
		const char *want = "say \"hi\"; path=C:\\temp\\x; end";

		ok(ldns_rdf_size(rd) == strlen(want) + 1 &&
			   memcmp(ldns_rdf_data(rd) + 1, want, strlen(want)) == 0,
		   "TXT with quotes and backslashes: bytes exact");
	} else {
		ok(0, "TXT with quotes answered");
	}
	ldns_pkt_free(p);

	p = ask(db, "edgecase.example.net", DNS_T_TXT, NULL, false);
	an = p ? ldns_pkt_answer(p) : NULL;
	if (an && ldns_rr_list_rr_count(an) == 1) {
		ldns_rdf *rd = ldns_rr_rdf(ldns_rr_list_rr(an, 0), 0);
		const char *want = "\xe2\x9c\x93 h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
				   "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xf0\x9f\x9a\x80";

		ok(ldns_rdf_size(rd) == strlen(want) + 1 &&
			   memcmp(ldns_rdf_data(rd) + 1, want, strlen(want)) == 0,
		   "Unicode TXT: UTF-8 bytes exact");
	} else {
		ok(0, "Unicode TXT answered");
	}
	ldns_pkt_free(p);

	p = ask(db, "edgecase.example.net", DNS_T_MX, NULL, false);
	is_str(ANSWER(p),
	       "edgecase.example.net. 3600 IN MX 0 mail.edgecase.example.net. | "
	       "edgecase.example.net. 3600 IN MX 0 backup-mx.example.org.",
	       "MX with null and 0 priority");
	ldns_pkt_free(p);

	p = ask(db, "edgecase.example.net", DNS_T_NS, NULL, false);
	is_str(ANSWER(p), "edgecase.example.net. 86400 IN NS ns1.example.org.", "NS from the config");
	ldns_pkt_free(p);

	p = ask(db, "nothing.c.edgecase.example.net", DNS_T_A, NULL, false);
	ok(strstr(AUTHORITY(p), "SOA ns1.example.org. hostmaster.edgecase.example.net. 7 ") != NULL,
	   "SOA mname = first NS of the zone");
	ldns_pkt_free(p);

	p = ask(db, "_sip._udp.edgecase.example.net", DNS_T_SRV, NULL, false);
	is_str(ANSWER(p), "_sip._udp.edgecase.example.net. 3600 IN SRV 10 5 5060 sip.example.org.",
	       "SRV");
	ldns_pkt_free(p);

	p = ask(db, "edgecase.example.net", DNS_T_CAA, NULL, false);
	is_str(ANSWER(p), "edgecase.example.net. 3600 IN CAA 0 issue \"letsencrypt.org\"", "CAA");
	ldns_pkt_free(p);

	p = ask(db, "alias.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "alias.edgecase.example.net. 3600 IN CNAME target.example.org.",
	       "CNAME out of the zone: the CNAME alone");
	is_int(RCODE(p), 0, "CNAME out of the zone: NOERROR");
	ldns_pkt_free(p);

	p = ask(db, "alias.edgecase.example.net", DNS_T_CNAME, NULL, false);
	is_str(ANSWER(p), "alias.edgecase.example.net. 3600 IN CNAME target.example.org.",
	       "CNAME query");
	ldns_pkt_free(p);

	p = ask(db, "zero-ttl.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "zero-ttl.edgecase.example.net. 0 IN A 192.0.2.100", "TTL 0 kept");
	ldns_pkt_free(p);

	p = ask(db, "v6-in-a.edgecase.example.net", DNS_T_AAAA, NULL, false);
	is_str(ANSWER(p), "v6-in-a.edgecase.example.net. 3600 IN AAAA 2001:db8::bad",
	       "IPv6 in an A record served as AAAA");
	ldns_pkt_free(p);

	p = ask(db, "mail.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "mail.edgecase.example.net. 3600 IN A 192.0.2.3", "absolute record name");
	ldns_pkt_free(p);

	p = ask(db, "www.edgecase.example.net", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "www.edgecase.example.net. 300 IN A 192.0.2.2", "upper-case record name");
	ldns_pkt_free(p);

	p = ask(db, "empty.example.org", DNS_T_A, NULL, false);
	ok(RCODE(p) == 0 && p && ldns_pkt_aa(p) && strstr(AUTHORITY(p), "SOA"),
	   "empty domain: authoritative NODATA");
	ldns_pkt_free(p);

	zone_db_free(db);
}

#define CHAIN_JSON \
	"{\"success\":true,\"domains\":[{\"id\":\"0123456789abcdef01234567\",\"domain\":\"chain.test\"," \
	"\"dnsRecords\":[" \
	"{\"id\":\"1\",\"name\":\"@\",\"type\":\"A\",\"value\":\"192.0.2.1\",\"ttl\":300}," \
	"{\"id\":\"2\",\"name\":\"a\",\"type\":\"CNAME\",\"value\":\"b.chain.test\",\"ttl\":300}," \
	"{\"id\":\"3\",\"name\":\"b\",\"type\":\"CNAME\",\"value\":\"c.chain.test\",\"ttl\":300}," \
	"{\"id\":\"4\",\"name\":\"c\",\"type\":\"A\",\"value\":\"192.0.2.3\",\"ttl\":300}," \
	"{\"id\":\"5\",\"name\":\"dangling\",\"type\":\"CNAME\",\"value\":\"gone.chain.test\",\"ttl\":300}," \
	"{\"id\":\"6\",\"name\":\"loop1\",\"type\":\"CNAME\",\"value\":\"loop2.chain.test\",\"ttl\":300}," \
	"{\"id\":\"7\",\"name\":\"loop2\",\"type\":\"CNAME\",\"value\":\"loop1.chain.test\",\"ttl\":300}," \
	"{\"id\":\"8\",\"name\":\"w\",\"type\":\"CNAME\",\"value\":\"x.wild.chain.test\",\"ttl\":300}," \
	"{\"id\":\"9\",\"name\":\"*.wild\",\"type\":\"TXT\",\"value\":\"wild\",\"ttl\":300}," \
	"%s" \
	"{\"id\":\"10\",\"name\":\"apexalias\",\"type\":\"CNAME\",\"value\":\"chain.test\",\"ttl\":300}" \
	"]}],\"proxies\":[]}"

static void
test_chain_and_tc(void)
{
	char json[16384], big[12000];
	size_t n = 0;
	struct zone_db *db;
	ldns_pkt *p;
	struct qopt e4096 = {.edns = 4096}, e100 = {.edns = 100};

	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "{\"id\":\"b%d\",\"name\":\"big\",\"type\":\"A\","
				      "\"value\":\"198.51.100.%d\",\"ttl\":300},",
				      i, i + 1);
	snprintf(json, sizeof(json), CHAIN_JSON, big);
	db = db_from_json(json, 3);
	ok(db != NULL, "inline config compiles");
	if (db == NULL)
		return;

	p = ask(db, "A.chain.test", DNS_T_A, NULL, false);
	is_str(ANSWER(p),
	       "A.chain.test. 300 IN CNAME b.chain.test. | b.chain.test. 300 IN CNAME c.chain.test. | "
	       "c.chain.test. 300 IN A 192.0.2.3",
	       "CNAME chain followed inside the zone");
	ldns_pkt_free(p);

	p = ask(db, "dangling.chain.test", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_NXDOMAIN, "chain to a missing name: NXDOMAIN (RFC 6604)");
	is_str(ANSWER(p), "dangling.chain.test. 300 IN CNAME gone.chain.test.",
	       "chain to a missing name: the CNAME kept");
	ok(strstr(AUTHORITY(p), "SOA") != NULL, "chain to a missing name: SOA");
	ldns_pkt_free(p);

	p = ask(db, "loop1.chain.test", DNS_T_A, NULL, false);
	ok(p != NULL && RCODE(p) == 0 && ldns_rr_list_rr_count(ldns_pkt_answer(p)) <= DNS_MAX_CHAIN + 1,
	   "CNAME loop: bounded answer");
	ldns_pkt_free(p);

	p = ask(db, "w.chain.test", DNS_T_TXT, NULL, false);
	is_str(ANSWER(p), "w.chain.test. 300 IN CNAME x.wild.chain.test. | x.wild.chain.test. 300 IN TXT \"wild\"",
	       "chain into a wildcard");
	ldns_pkt_free(p);

	p = ask(db, "apexalias.chain.test", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "apexalias.chain.test. 300 IN CNAME chain.test. | chain.test. 300 IN A 192.0.2.1",
	       "chain to the apex");
	ldns_pkt_free(p);

	p = ask(db, "big.chain.test", DNS_T_A, NULL, false);
	ok(p && ldns_pkt_tc(p) && ldns_rr_list_rr_count(ldns_pkt_answer(p)) == 0,
	   "60 A records over 512 bytes without EDNS: TC, empty answer");
	ok(test_outlen <= 512, "truncated answer within 512 bytes");
	ldns_pkt_free(p);

	p = ask(db, "big.chain.test", DNS_T_A, &e4096, false);
	ok(p && !ldns_pkt_tc(p) && ldns_rr_list_rr_count(ldns_pkt_answer(p)) == 60,
	   "the same with EDNS 4096: whole answer");
	ldns_pkt_free(p);

	p = ask(db, "big.chain.test", DNS_T_A, &e100, false);
	ok(p && ldns_pkt_tc(p) && test_outlen <= 512, "EDNS size below 512 counts as 512");
	ldns_pkt_free(p);

	p = ask(db, "big.chain.test", DNS_T_A, NULL, true);
	ok(p && !ldns_pkt_tc(p) && ldns_rr_list_rr_count(ldns_pkt_answer(p)) == 60,
	   "over TCP: whole answer");
	ldns_pkt_free(p);

	zone_db_free(db);
}

static void
test_malformed(void)
{
	struct zone_db *db = db_from_fixture("small.json", 1);
	uint8_t q[600], out[4096];
	size_t n;
	struct sockaddr_in sin = {.sin_family = AF_INET};

	n = mkquery(q, "example.com", DNS_T_A, NULL);
	is_int((long long)answer_query(&test_ac, db, q, 11, (struct sockaddr *)&sin, false, out, 4096),
	       0, "shorter than a header: dropped");
	q[2] |= 0x80;
	is_int((long long)answer_query(&test_ac, db, q, n, (struct sockaddr *)&sin, false, out, 4096), 0,
	       "a response: dropped");
	q[2] &= 0x7F;
	q[5] = 2;
	ok(answer_query(&test_ac, db, q, n, (struct sockaddr *)&sin, false, out, 4096) == 12 &&
		   (out[3] & 0xF) == 1,
	   "two questions: FORMERR");
	q[5] = 1;
	ok(answer_query(&test_ac, db, q, n - 3, (struct sockaddr *)&sin, false, out, 4096) == 12 &&
		   (out[3] & 0xF) == 1,
	   "question cut short: FORMERR");
	q[12] = 0xC0;
	ok(answer_query(&test_ac, db, q, n, (struct sockaddr *)&sin, false, out, 4096) == 12 &&
		   (out[3] & 0xF) == 1,
	   "compression pointer in the question: FORMERR");
	n = mkquery(q, "example.com", DNS_T_A, NULL);
	q[2] = 0x28; /* opcode UPDATE */
	ok(answer_query(&test_ac, db, q, n, (struct sockaddr *)&sin, false, out, 4096) == 12 &&
		   (out[3] & 0xF) == 4,
	   "opcode UPDATE: NOTIMP");
	/* OPT record with a bad ECS option (non-zero bits beyond the prefix) */
	{
		struct qopt o = {.edns = 1232, .ecs = "192.0.2.1/24"};

		n = mkquery(q, "example.com", DNS_T_A, &o);
		q[n - 1] = 0x01; /* last address byte beyond /24 is... inside; set scope instead */
		q[n - 4] = 5;    /* SCOPE must be 0 in a query */
		ok(answer_query(&test_ac, db, q, n, (struct sockaddr *)&sin, false, out, 4096) == 12 &&
			   (out[3] & 0xF) == 1,
		   "ECS with a non-zero scope: FORMERR");
	}
	/* Two OPT records */
	{
		struct qopt o = {.edns = 1232};
		size_t m;

		n = mkquery(q, "example.com", DNS_T_A, &o);
		m = n - 12 - 17; /* the OPT record is the last 11 bytes */
		memcpy(q + n, q + n - 11, 11);
		q[11] = 2;
		(void)m;
		ok(answer_query(&test_ac, db, q, n + 11, (struct sockaddr *)&sin, false, out, 4096) ==
				   12 &&
			   (out[3] & 0xF) == 1,
		   "two OPT records: FORMERR");
	}
	zone_db_free(db);
}

static void
test_long_apex(void)
{
	char apex[300], json[1024], want[1200];
	struct zone_db *db;
	ldns_pkt *p;

	snprintf(apex, sizeof(apex), "%s.%s.%s.%s", "a" LABEL60, "b" LABEL60, "c" LABEL60,
		 "d" LABEL60);
	snprintf(json, sizeof(json),
		 "{\"success\":true,\"domains\":[{\"id\":\"0123456789abcdef0123456a\","
		 "\"domain\":\"%s\",\"dnsRecords\":[]}],\"proxies\":[]}",
		 apex);
	db = db_from_json(json, 9);
	ok(db != NULL, "243-character apex compiles");
	p = ask(db, apex, DNS_T_SOA, NULL, true); /* over 512 bytes */
	snprintf(want, sizeof(want), "%s. 3600 IN SOA ns1.%s. %s. 9 3600 600 604800 300", apex, apex,
		 apex);
	is_str(ANSWER(p), want, "SOA of a long apex: rname falls back to the apex (256 bytes)");
	ldns_pkt_free(p);
	zone_db_free(db);
}

#define CONFLICT_JSON \
	"{\"success\":true,\"domains\":[" \
	"{\"id\":\"0123456789abcdef0123456b\",\"domain\":\"c.test\",\"dnsRecords\":[" \
	"{\"id\":\"1\",\"name\":\"x\",\"type\":\"CNAME\",\"value\":\"y.c.test\"}," \
	"{\"id\":\"2\",\"name\":\"x\",\"type\":\"TXT\",\"value\":\"kept\"}," \
	"{\"id\":\"3\",\"name\":\"d\",\"type\":\"A\",\"value\":\"192.0.2.5\",\"ttl\":600}," \
	"{\"id\":\"4\",\"name\":\"d\",\"type\":\"A\",\"value\":\"192.0.2.5\",\"ttl\":600}," \
	"{\"id\":\"5\",\"name\":\"d\",\"type\":\"A\",\"value\":\"192.0.2.6\",\"ttl\":60}," \
	"{\"id\":\"6\",\"name\":\"sub.child\",\"type\":\"A\",\"value\":\"192.0.2.7\"}]}," \
	"{\"id\":\"0123456789abcdef0123456c\",\"domain\":\"child.c.test\",\"dnsRecords\":[" \
	"{\"id\":\"7\",\"name\":\"@\",\"type\":\"A\",\"value\":\"192.0.2.8\"}]}" \
	"],\"proxies\":[]}"

static void
test_conflicts(void)
{
	struct zone_db *db = db_from_json(CONFLICT_JSON, 2);
	ldns_pkt *p;

	ok(db != NULL, "conflict config compiles");
	if (db == NULL)
		return;
	p = ask(db, "x.c.test", DNS_T_A, NULL, false);
	ok(RCODE(p) == 0 && strcmp(ANSWER(p), "") == 0, "CNAME beside other data: dropped");
	ldns_pkt_free(p);
	p = ask(db, "x.c.test", DNS_T_TXT, NULL, false);
	is_str(ANSWER(p), "x.c.test. 3600 IN TXT \"kept\"", "the other data stays");
	ldns_pkt_free(p);
	p = ask(db, "d.c.test", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "d.c.test. 60 IN A 192.0.2.5 | d.c.test. 60 IN A 192.0.2.6",
	       "duplicate record kept once, the set shares its smallest TTL");
	ldns_pkt_free(p);
	p = ask(db, "sub.child.c.test", DNS_T_A, NULL, false);
	is_int(RCODE(p), LDNS_RCODE_NXDOMAIN,
	       "a parent-zone record under a child zone is dropped (the child zone answers)");
	ldns_pkt_free(p);
	p = ask(db, "child.c.test", DNS_T_A, NULL, false);
	is_str(ANSWER(p), "child.c.test. 3600 IN A 192.0.2.8", "child zone apex");
	ldns_pkt_free(p);
	zone_db_free(db);
}

static void
test_empty_db(void)
{
	ldns_pkt *p = ask(NULL, "example.com", DNS_T_A, NULL, false);
	struct dfr_config *cfg = dfr_config_new_empty();
	struct zone_db *db = cfg ? zone_db_compile(cfg) : NULL;

	is_int(RCODE(p), LDNS_RCODE_REFUSED, "no config yet: REFUSED");
	ldns_pkt_free(p);
	ok(db != NULL && db->zd_nzones == 0, "a config without domains compiles");
	p = db ? ask(db, "example.com", DNS_T_A, NULL, false) : NULL;
	is_int(RCODE(p), LDNS_RCODE_REFUSED, "no zones: REFUSED");
	ldns_pkt_free(p);
	zone_db_free(db);
	dfr_config_unref(cfg);
}

int
main(void)
{
	plan_lazy();
	answer_ctx_init(&test_ac);
	test_small();
	test_edge();
	test_chain_and_tc();
	test_malformed();
	test_long_apex();
	test_conflicts();
	test_empty_db();
	return done_testing();
}
