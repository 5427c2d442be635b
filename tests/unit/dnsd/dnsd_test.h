/*
 * Helpers shared by dnsd's unit tests: configs from the Core fixtures (or inline JSON) compiled
 * into a zone database, queries built by hand, answers decoded with ldns (an independent
 * parser), and rrsets printed as text for comparison.
 */
#ifndef DNSD_TEST_H
#define DNSD_TEST_H

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/tap.h"
#include "config.h"
#include "defenra-dnsd/dnsd.h"

static struct answer_ctx test_ac;

static __attribute__((unused)) struct zone_db *
db_from_json(const char *json, uint64_t gen)
{
	struct dfr_config *cfg = NULL;
	struct zone_db *db;
	char why[256];

	if (dfr_config_parse(json, strlen(json), NULL, &cfg, why, sizeof(why)) != 0) {
		diag("config parse failed: %s", why);
		return NULL;
	}
	cfg->cfg_generation = gen;
	db = zone_db_compile(cfg);
	dfr_config_unref(cfg);
	return db;
}

static __attribute__((unused)) struct zone_db *
db_from_fixture(const char *name, uint64_t gen)
{
	char path[512];
	char *text;
	size_t len;
	struct zone_db *db;

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures_dir(), name);
	if ((text = tap_read_file(path, &len)) == NULL) {
		diag("cannot read %s", path);
		return NULL;
	}
	db = db_from_json(text, gen);
	free(text);
	return db;
}

struct qopt {
	int edns;          /* -1: no OPT, else the UDP size */
	int version;
	const char *ecs;   /* "192.0.2.0/24" or NULL */
	uint16_t id;
};

/* Builds a query; returns its length. */
static size_t
mkquery(uint8_t *b, const char *name, uint16_t type, const struct qopt *o)
{
	size_t n = 12, l;
	uint16_t id = o && o->id ? o->id : 0x1234;

	memset(b, 0, 12);
	b[0] = (uint8_t)(id >> 8);
	b[1] = (uint8_t)id;
	b[2] = 0x01; /* RD */
	b[5] = 1;
	/* name, keeping its case */
	for (const char *p = name; *p;) {
		const char *e = strchr(p, '.');

		l = e ? (size_t)(e - p) : strlen(p);
		b[n++] = (uint8_t)l;
		memcpy(b + n, p, l);
		n += l;
		p += l;
		if (*p == '.')
			p++;
	}
	b[n++] = 0;
	b[n++] = (uint8_t)(type >> 8);
	b[n++] = (uint8_t)type;
	b[n++] = 0;
	b[n++] = 1;
	if (o && o->edns >= 0) {
		size_t rdl = 0;
		uint8_t opt[64];

		if (o->ecs) {
			char a[64];
			const char *slash = strchr(o->ecs, '/');
			int pfx = atoi(slash + 1);
			uint8_t addr[16] = {0};
			int fam = strchr(o->ecs, ':') ? 2 : 1;
			size_t alen = ((size_t)pfx + 7) / 8;

			memcpy(a, o->ecs, (size_t)(slash - o->ecs));
			a[slash - o->ecs] = 0;
			inet_pton(fam == 1 ? AF_INET : AF_INET6, a, addr);
			opt[0] = 0;
			opt[1] = 8;
			opt[2] = 0;
			opt[3] = (uint8_t)(4 + alen);
			opt[4] = 0;
			opt[5] = (uint8_t)fam;
			opt[6] = (uint8_t)pfx;
			opt[7] = 0;
			memcpy(opt + 8, addr, alen);
			rdl = 8 + alen;
		}
		b[11] = 1;
		b[n++] = 0;
		b[n++] = 0;
		b[n++] = 41;
		b[n++] = (uint8_t)(o->edns >> 8);
		b[n++] = (uint8_t)o->edns;
		b[n++] = 0;
		b[n++] = (uint8_t)o->version;
		b[n++] = 0;
		b[n++] = 0;
		b[n++] = (uint8_t)(rdl >> 8);
		b[n++] = (uint8_t)rdl;
		memcpy(b + n, opt, rdl);
		n += rdl;
	}
	return n;
}

static uint8_t test_out[65536];
static size_t test_outlen;

/* Asks db over UDP (or TCP) from 127.0.0.1; returns the decoded answer (caller frees) or NULL
 * when the query was dropped. */
static __attribute__((unused)) ldns_pkt *
ask(const struct zone_db *db, const char *name, uint16_t type, const struct qopt *o, bool tcp)
{
	uint8_t q[512];
	size_t ql = mkquery(q, name, type, o);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	ldns_pkt *p = NULL;

	sin.sin_addr.s_addr = htonl(0x7F000001);
	test_outlen = answer_query(&test_ac, db, q, ql, (struct sockaddr *)&sin, tcp, test_out,
				   tcp ? 65535 : DNS_MAX_UDP);
	if (test_outlen == 0)
		return NULL;
	if (ldns_wire2pkt(&p, test_out, test_outlen) != LDNS_STATUS_OK) {
		diag("ldns cannot parse the answer to %s", name);
		return NULL;
	}
	return p;
}

/* The RRs of a section as "owner ttl type rdata" lines joined by " | ". */
static __attribute__((unused)) const char *
section_str(const ldns_rr_list *l)
{
	static char buf[8192];
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
		char *s = ldns_rr2str(ldns_rr_list_rr(l, i));
		char *p;

		for (p = s; *p; p++)
			if (*p == '\t')
				*p = ' ';
		if (p > s && p[-1] == '\n')
			p[-1] = 0;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? " | " : "", s);
		free(s);
		if (n >= sizeof(buf))
			break;
	}
	return buf;
}

#define ANSWER(p) section_str((p) ? ldns_pkt_answer(p) : NULL)
#define AUTHORITY(p) section_str((p) ? ldns_pkt_authority(p) : NULL)
#define RCODE(p) ((p) ? (int)ldns_pkt_get_rcode(p) : -1)

#endif
