/*
 * dnsd's wire format (wire.c): text names to wire form and their limits, query parsing (header,
 * question, OPT, Client Subnet) with the malformed cases that must give FORMERR or a drop.
 */
#include "dnsd_test.h"

static int
parse(const uint8_t *b, size_t n, struct dns_query *q)
{
	return wire_parse_query(b, n, q);
}

/* A query for example.com A with an OPT whose ECS option is given raw. */
static size_t
ecs_query(uint8_t *b, const uint8_t *ecs, size_t ecslen)
{
	struct qopt o = {.edns = 1232};
	size_t n = mkquery(b, "example.com", DNS_T_A, &o);

	/* rdlength of the OPT is the last 2 bytes; append the option. */
	b[n - 2] = (uint8_t)((4 + ecslen) >> 8);
	b[n - 1] = (uint8_t)(4 + ecslen);
	b[n++] = 0;
	b[n++] = 8;
	b[n++] = (uint8_t)(ecslen >> 8);
	b[n++] = (uint8_t)ecslen;
	memcpy(b + n, ecs, ecslen);
	return n + ecslen;
}

int
main(void)
{
	uint8_t w[512], b[1024];
	char label63[64], label64[65], big[300];
	struct dns_query q;
	size_t n;

	plan_lazy();
	is_int((long long)wire_name_from_text("", w, sizeof(w)), 1, "root from \"\"");
	is_int((long long)wire_name_from_text(".", w, sizeof(w)), 1, "root from \".\"");
	n = wire_name_from_text("WwW.Example.COM.", w, sizeof(w));
	ok(n == 17 && memcmp(w, "\3www\7example\3com\0", 17) == 0,
	   "trailing dot accepted, lower-cased");
	is_int((long long)wire_name_from_text("a..b", w, sizeof(w)), 0, "empty label refused");
	memset(label63, 'x', 63);
	label63[63] = 0;
	memset(label64, 'x', 64);
	label64[64] = 0;
	ok(wire_name_from_text(label63, w, sizeof(w)) == 65, "63-byte label accepted");
	is_int((long long)wire_name_from_text(label64, w, sizeof(w)), 0, "64-byte label refused");
	snprintf(big, sizeof(big), "%s.%s.%s.%s", label63, label63, label63, label63);
	is_int((long long)wire_name_from_text(big, w, sizeof(w)), 0, "name over 255 bytes refused");
	{
		uint8_t labels[DNS_MAX_LABELS];

		wire_name_from_text("a.bc.def", w, sizeof(w));
		ok(wire_name_labels(w, labels) == 3 && labels[0] == 0 && labels[1] == 2 &&
			   labels[2] == 5 && labels[3] == 9,
		   "label offsets");
	}

	n = mkquery(b, "Mail.Example.Com", DNS_T_MX, NULL);
	ok(parse(b, n, &q) == 0, "plain query parses");
	ok(q.q_type == DNS_T_MX && q.q_class == 1 && !q.q_edns, "type, class, no EDNS");
	ok(q.q_namelen == 18 && memcmp(q.q_name, "\4mail\7example\3com\0", 18) == 0,
	   "name lower-cased for look-up");
	ok(q.q_nlabels == 3 && q.q_question_len == 22, "labels and question length");
	ok(parse(b, 12, &q) == DNS_RC_FORMERR, "header only: FORMERR");
	is_int(parse(b, 11, &q), -1, "short packet: drop");

	{
		struct qopt o = {.edns = 4096};

		n = mkquery(b, "example.com", DNS_T_A, &o);
		b[n - 4] = 0x80; /* DO */
		ok(parse(b, n, &q) == 0 && q.q_edns && q.q_edns_size == 4096 && q.q_do &&
			   q.q_edns_version == 0,
		   "OPT: size, DO, version");
	}
	{
		struct qopt o = {.edns = 1232, .ecs = "198.51.100.0/22"};

		n = mkquery(b, "example.com", DNS_T_A, &o);
		ok(parse(b, n, &q) == 0 && q.q_ecs && q.q_ecs_family == 1 && q.q_ecs_source == 22 &&
			   q.q_ecs_addr[0] == 198 && q.q_ecs_addr[2] == 100,
		   "ECS /22 parsed");
	}
	{
		struct qopt o = {.edns = 1232, .ecs = "2001:db8:1200::/40"};

		n = mkquery(b, "example.com", DNS_T_A, &o);
		ok(parse(b, n, &q) == 0 && q.q_ecs && q.q_ecs_family == 2 && q.q_ecs_source == 40 &&
			   q.q_ecs_addr[4] == 0x12 && q.q_ecs_addr[5] == 0,
		   "ECS IPv6 /40 parsed");
	}
	{
		const uint8_t bad_bits[] = {0, 1, 20, 0, 192, 0, 0x2F}; /* /20 with bits past 20 */
		const uint8_t bad_len[] = {0, 1, 24, 0, 192, 0};        /* /24 needs 3 bytes */
		const uint8_t bad_fam[] = {0, 3, 0, 0};
		const uint8_t bad_src[] = {0, 1, 33, 0, 1, 2, 3, 4, 5};
		const uint8_t ok0[] = {0, 1, 0, 0};

		n = ecs_query(b, bad_bits, sizeof(bad_bits));
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "ECS with bits beyond the prefix: FORMERR");
		n = ecs_query(b, bad_len, sizeof(bad_len));
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "ECS address length mismatch: FORMERR");
		n = ecs_query(b, bad_fam, sizeof(bad_fam));
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "ECS unknown family: FORMERR");
		n = ecs_query(b, bad_src, sizeof(bad_src));
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "ECS /33 for IPv4: FORMERR");
		n = ecs_query(b, ok0, sizeof(ok0));
		ok(parse(b, n, &q) == 0 && q.q_ecs && q.q_ecs_source == 0, "ECS /0 accepted");
	}
	{
		struct qopt o = {.edns = 1232};

		n = mkquery(b, "example.com", DNS_T_A, &o);
		b[n - 11] = 3; /* OPT owner must be the root */
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "OPT with a non-root owner: FORMERR");
		n = mkquery(b, "example.com", DNS_T_A, &o);
		b[n - 1] = 9; /* rdlength past the end */
		is_int(parse(b, n, &q), DNS_RC_FORMERR, "OPT rdlength past the end: FORMERR");
	}
	{
		/* An answer record in a query, compressed owner: skipped. */
		n = mkquery(b, "example.com", DNS_T_A, NULL);
		b[7] = 1;
		memcpy(b + n, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01", 16);
		ok(parse(b, n + 16, &q) == 0 && !q.q_edns, "answer record in a query skipped");
		b[n] = 0x80; /* label type 10: obsolete */
		is_int(parse(b, n + 16, &q), DNS_RC_FORMERR, "obsolete label type: FORMERR");
	}
	return done_testing();
}
