/*
 * Parse, validate, diff and publish a 10,000-domain poll answer (issue: under 200 ms here).
 * Builds the answer from small.json's domain (records, GeoDNS locations, WAF code), with the
 * certificate and key on one domain in ten (1,000 distinct ECDSA pairs made at start, as a real
 * answer carries; BENCH_SAME_CERT=1 uses small.json's one pair), then times, as syncd does them:
 *   cold:   parse + validate (no config in force), diff against nothing, publish on the bus;
 *   steady: the next poll with 1% of domains changed, parsed against the config in force.
 * Prints min/median/max of ROUNDS runs of each, and of their parts (parse+validate, diff,
 * publish: the delta encoded and sent, and the config it replaces released).
 * Then the memory the config model holds per domain (malloc's count of bytes in use, so the
 * allocator's own slack inside a block is counted too): as parsed from the answer (syncd, and a
 * subscriber reading a snapshot), and rebuilt from each domain's canonical JSON (a subscriber
 * applying deltas), with the share of the canonical JSON itself.
 */
#include <event2/event.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "bus.h"
#include "config.h"
#include "error.h"
#include "log.h"

#define NDOMAINS 10000
#define ROUNDS 11

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the whole process: on a machine shared with other work, wall time counts their
 * time slices too; this does not (nng's threads are counted). */
static double
cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A distinct certificate and key for domain i (ECDSA P-256, self-signed, CN = its name), so the
 * benchmark checks 1,000 different pairs as a real Core answer would carry. PEMs in *cert and
 * *key (malloc'd). */
static int
make_pair(const char *name, char **cert, char **key)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int rc = -1;

	if (pk == NULL || x == NULL || bc == NULL || bk == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 90);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, pk, EVP_sha256()) == 0 || !PEM_write_bio_X509(bc, x) ||
	    !PEM_write_bio_PrivateKey(bk, pk, NULL, NULL, 0, NULL, NULL))
		goto out;
	n = BIO_get_mem_data(bc, &p);
	*cert = strndup(p, (size_t)n);
	n = BIO_get_mem_data(bk, &p);
	*key = strndup(p, (size_t)n);
	rc = *cert != NULL && *key != NULL ? 0 : -1;
out:
	BIO_free(bc);
	BIO_free(bk);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

/* The answer with NDOMAINS domains; `variant` changes the TXT of one domain in a hundred. */
static struct {
	char *cert, *key;
} pairs[NDOMAINS / 10];

static char *
make_answer(const char *fixture, int variant)
{
	cJSON *doc = cJSON_Parse(fixture), *domains, *tmpl, *out;
	char *text;

	domains = cJSON_GetObjectItem(doc, "domains");
	tmpl = cJSON_DetachItemFromArray(domains, 0);
	for (int i = 0; i < NDOMAINS; i++) {
		cJSON *d = cJSON_Duplicate(tmpl, 1), *recs, *r;
		char id[32], name[64], txt[96];

		snprintf(id, sizeof(id), "%024x", i + 1);
		snprintf(name, sizeof(name), "site%05d.example", i);
		cJSON_ReplaceItemInObject(d, "id", cJSON_CreateString(id));
		cJSON_ReplaceItemInObject(d, "domain", cJSON_CreateString(name));
		recs = cJSON_GetObjectItem(d, "dnsRecords");
		cJSON_ArrayForEach(r, recs)
		{
			cJSON *rid = cJSON_GetObjectItem(r, "id"), *type = cJSON_GetObjectItem(r, "type");
			if (cJSON_IsString(rid)) {
				char buf[40];
				snprintf(buf, sizeof(buf), "%s%04x", id + 4, (unsigned)(rid->valuestring[23]));
				cJSON_ReplaceItemInObject(r, "id", cJSON_CreateString(buf));
			}
			if (strcmp(type->valuestring, "TXT") == 0 && variant && i % 100 == 0) {
				snprintf(txt, sizeof(txt), "v=spf1 mx -all; round=%d", variant);
				cJSON_ReplaceItemInObject(r, "value", cJSON_CreateString(txt));
			}
		}
		cJSON *ssl = cJSON_GetObjectItem(d, "ssl");
		if (getenv("BENCH_ALL_PLAIN") || i % 10 != 0) {
			cJSON_ReplaceItemInObject(ssl, "enabled", cJSON_CreateFalse());
			cJSON_ReplaceItemInObject(ssl, "certificate", cJSON_CreateNull());
			cJSON_ReplaceItemInObject(ssl, "privateKey", cJSON_CreateNull());
		} else if (pairs[i / 10].cert != NULL) {
			cJSON_ReplaceItemInObject(ssl, "certificate",
						  cJSON_CreateString(pairs[i / 10].cert));
			cJSON_ReplaceItemInObject(ssl, "privateKey",
						  cJSON_CreateString(pairs[i / 10].key));
		}
		cJSON_AddItemToArray(domains, d);
	}
	cJSON_Delete(tmpl);
	out = doc;
	text = cJSON_PrintUnformatted(out);
	cJSON_Delete(doc);
	return text;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
row(const char *what, double *v)
{
	qsort(v, ROUNDS, sizeof(double), cmp_double);
	printf("%-34s %8.1f %8.1f %8.1f\n", what, v[0], v[ROUNDS / 2], v[ROUNDS - 1]);
}

static size_t
heap_in_use(void)
{
	struct mallinfo2 m = mallinfo2();

	return m.uordblks + m.hblkhd;
}

/* Bytes per domain held by a parsed config, and by domains rebuilt from their JSON. */
static void
memory(const char *answer)
{
	struct dfr_config *cfg = NULL;
	struct dfr_domain **doms;
	size_t before, parsed, rebuilt, json = 0, n;

	before = heap_in_use();
	if (dfr_config_parse(answer, strlen(answer), NULL, &cfg, NULL, 0) != DFR_OK)
		return;
	parsed = heap_in_use() - before;
	n = cfg->cfg_ndomains;
	if (n == 0 || (doms = calloc(n, sizeof(*doms))) == NULL) {
		dfr_config_unref(cfg);
		return;
	}
	before = heap_in_use();
	for (size_t i = 0; i < n; i++) {
		const struct dfr_domain *d = cfg->cfg_domains[i];

		json += d->dom_json_len + 1;
		doms[i] = dfr_domain_from_json(d->dom_json, d->dom_json_len);
	}
	rebuilt = heap_in_use() - before;
	printf("memory per domain: %zu bytes parsed from the answer, %zu rebuilt from its JSON "
	       "(canonical JSON %zu of them)\n",
	       parsed / n, rebuilt / n, json / n);
	for (size_t i = 0; i < n; i++)
		dfr_domain_unref(doms[i]);
	free(doms);
	dfr_config_unref(cfg);
}

int
main(int argc, char **argv)
{
	const char *fixtures = getenv("DFR_FIXTURES") ? getenv("DFR_FIXTURES")
						      : "../shared/fixtures/core";
	char path[1024], dir[] = "/tmp/dfr-bench-XXXXXX", *fixture, *a1, *a2;
	double cold[ROUNDS], steady[ROUNDS], parse1[ROUNDS], parse2[ROUNDS];
	double diff1[ROUNDS], diff2[ROUNDS], pub1[ROUNDS], pub2[ROUNDS];
	double cpu1[ROUNDS], cpu2[ROUNDS];
	struct event_base *base;
	struct dfr_bus_pub *pub;
	uint64_t gen = 0;

	dfr_log_set_level(DFR_LOG_ERR);
	snprintf(path, sizeof(path), "%s/small.json", fixtures);
	if ((fixture = read_file(path)) == NULL || mkdtemp(dir) == NULL) {
		fprintf(stderr, "bench: cannot read %s\n", path);
		return 1;
	}
	/* Distinct pairs unless BENCH_SAME_CERT (then small.json's one pair, checked once). */
	for (int i = 0; i < NDOMAINS / 10 && getenv("BENCH_SAME_CERT") == NULL; i++) {
		char name[64];
		snprintf(name, sizeof(name), "site%05d.example", i * 10);
		if (make_pair(name, &pairs[i].cert, &pairs[i].key) != 0) {
			fprintf(stderr, "bench: cannot make a certificate\n");
			return 1;
		}
	}
	a1 = make_answer(fixture, 0);
	a2 = make_answer(fixture, 1);
	base = event_base_new();
	if ((pub = dfr_bus_pub_open(base, dir)) == NULL)
		return 1;

	for (int round = 0; round < ROUNDS; round++) {
		struct dfr_config *c1 = NULL, *c2 = NULL;
		struct dfr_config_diff d1, d2;
		double c0 = cpu_ms(), c1t, t0 = now_ms(), t1, t1b, t2, t3, t3b;

		if (dfr_config_parse(a1, strlen(a1), NULL, &c1, NULL, 0) != DFR_OK)
			return 1;
		t1 = now_ms();
		dfr_config_diff(NULL, c1, &d1);
		t1b = now_ms();
		c1->cfg_generation = ++gen;
		dfr_bus_pub_publish(pub, c1, &d1);
		dfr_config_diff_free(&d1);
		t2 = now_ms();
		c1t = cpu_ms();
		if (dfr_config_parse(a2, strlen(a2), c1, &c2, NULL, 0) != DFR_OK)
			return 1;
		t3 = now_ms();
		dfr_config_diff(c1, c2, &d2);
		t3b = now_ms();
		c2->cfg_generation = ++gen;
		dfr_bus_pub_publish(pub, c2, &d2);
		if (round == 0)
			printf("answer: %zu bytes, %zu domains, %zu records; steady change: %zu "
			       "domains\n",
			       strlen(a1), c1->cfg_ndomains, c1->cfg_nrecords, d2.dd_nchanged);
		dfr_config_diff_free(&d2);
		steady[round] = now_ms() - t2;
		cpu2[round] = cpu_ms() - c1t;
		cpu1[round] = c1t - c0;
		cold[round] = t2 - t0;
		parse1[round] = t1 - t0;
		parse2[round] = t3 - t2;
		diff1[round] = t1b - t1;
		diff2[round] = t3b - t3;
		pub1[round] = t2 - t1b;
		pub2[round] = t2 + steady[round] - t3b;
		dfr_config_unref(c1);
		dfr_config_unref(c2);
	}
	qsort(cold, ROUNDS, sizeof(double), cmp_double);
	qsort(steady, ROUNDS, sizeof(double), cmp_double);
	printf("%-34s %8s %8s %8s   (ms, %d rounds)\n", "", "min", "median", "max", ROUNDS);
	row("cold   parse+validate", parse1);
	row("cold   diff", diff1);
	row("cold   publish", pub1);
	row("cold   total", cold);
	row("cold   total, CPU time", cpu1);
	row("steady parse+validate", parse2);
	row("steady diff", diff2);
	row("steady publish", pub2);
	row("steady total", steady);
	row("steady total, CPU time", cpu2);
	printf("bar: under 200 ms -> %s\n", cold[ROUNDS / 2] < 200 && steady[ROUNDS / 2] < 200
						     ? "met"
						     : "NOT met");
	memory(a1);
	dfr_bus_pub_close(pub);
	event_base_free(base);
	free(a1);
	free(a2);
	free(fixture);
	(void)rmdir(dir);
	return 0;
}
