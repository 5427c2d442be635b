/*
 * tls.c: contexts built from the config's certificates and reused across generations, the SNI
 * choice (apex, subdomain, wildcard, case, unknown names), versions, and session resumption
 * with rotating ticket keys, through handshakes between memory BIOs. A client that keeps
 * resuming (each connection offers the session of the one before, as wrk and browsers do)
 * resumes every time: a TLS 1.3 ticket is used once, so a resumed handshake must hand out the
 * next one (without, every other connection was a full handshake).
 */
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "defenra-httpd/httpd.h"
#include "error.h"
#include "tap.h"

struct pair {
	char *cert, *key;
	X509 *x;
};

static char *
bio_str(BIO *b)
{
	char *p, *s;
	long n = BIO_get_mem_data(b, &p);

	s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

/* A self-signed P-256 certificate for `cn` (and *.cn). */
static void
make_pair(struct pair *p, const char *cn)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	BIO *b;
	char san[300];

	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	snprintf(san, sizeof(san), "DNS:%s,DNS:*.%s", cn, cn);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, k, EVP_sha256());
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	p->cert = bio_str(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	p->key = bio_str(b);
	p->x = x;
	EVP_PKEY_free(k);
}

static void
free_pair(struct pair *p)
{
	free(p->cert);
	free(p->key);
	X509_free(p->x);
}

/* JSON string body of s (PEM: newlines only need escaping). */
static void
json_str(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s != '\0' && o + 3 < cap; s++) {
		if (*s == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
}

static char *
domain_json(const char *id, const char *name, const struct pair *p, bool enabled)
{
	static char cert[8192], key[4096];
	char *out = malloc(32768);

	if (p != NULL) {
		json_str(cert, sizeof(cert), p->cert);
		json_str(key, sizeof(key), p->key);
	}
	snprintf(out, 32768,
	         "{\"id\":\"%s\",\"domain\":\"%s\",\"dnsRecords\":[{\"id\":\"r%s\",\"name\":\"@\","
	         "\"type\":\"A\",\"value\":\"127.0.0.1\",\"ttl\":60,\"httpProxyEnabled\":true}],"
	         "\"httpProxy\":{\"type\":\"both\"},\"ssl\":{\"enabled\":%s,\"certificate\":%s%s%s,"
	         "\"privateKey\":%s%s%s,\"autoRenew\":false}}",
	         id, name, id, enabled ? "true" : "false", p ? "\"" : "", p ? cert : "null",
	         p ? "\"" : "", p ? "\"" : "", p ? key : "null", p ? "\"" : "");
	return out;
}

static struct dfr_config *
make_config(const struct pair *a, const struct pair *b, bool c_enabled)
{
	char *da = domain_json("aaaaaaaaaaaaaaaaaaaaaaa1", "a.test", a, true);
	char *db = domain_json("aaaaaaaaaaaaaaaaaaaaaaa2", "b.test", b, true);
	char *dc = domain_json("aaaaaaaaaaaaaaaaaaaaaaa3", "c.test", b, c_enabled);
	char *json = malloc(120000), why[256];
	struct dfr_config *cfg = NULL;

	snprintf(json, 120000, "{\"success\":true,\"domains\":[%s,%s,%s],\"proxies\":[]}", da, db,
	         dc);
	if (dfr_config_parse(json, strlen(json), NULL, &cfg, why, sizeof(why)) != DFR_OK)
		diag("config: %s", why);
	free(da);
	free(db);
	free(dc);
	free(json);
	return cfg;
}

/* Runs a handshake between a client SSL and a server SSL from tls_new_ssl() over memory BIOs.
 * Returns 1 when both ends completed, 0 when either failed. */
static int
handshake(SSL *c, SSL *s)
{
	BIO *cb, *sb;
	int rc_c = 0, rc_s = 0;

	BIO_new_bio_pair(&cb, 0, &sb, 0);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < 50 && (rc_c != 1 || rc_s != 1); i++) {
		if (rc_c != 1) {
			rc_c = SSL_do_handshake(c);
			if (rc_c <= 0 && SSL_get_error(c, rc_c) != SSL_ERROR_WANT_READ)
				return 0;
		}
		if (rc_s != 1) {
			rc_s = SSL_do_handshake(s);
			if (rc_s <= 0 && SSL_get_error(s, rc_s) != SSL_ERROR_WANT_READ)
				return 0;
		}
	}
	return rc_c == 1 && rc_s == 1;
}

struct result {
	int ok;
	X509 *peer; /* the certificate the client got */
	SSL_SESSION *sess;
	bool reused;
	int version;
	const char *fail;
};

static void
connect_to(struct httpd *srv, const char *sni, int version, SSL_SESSION *sess, struct result *r)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *c, *s;
	struct hconn hc;
	char buf[64];

	memset(r, 0, sizeof(*r));
	memset(&hc, 0, sizeof(hc));
	hc.hc_srv = srv;
	SSL_CTX_set_security_level(cctx, 0);
	if (version != 0) {
		SSL_CTX_set_min_proto_version(cctx, version);
		SSL_CTX_set_max_proto_version(cctx, version);
	}
	c = SSL_new(cctx);
	s = tls_new_ssl();
	SSL_set_app_data(s, &hc);
	if (sni != NULL)
		SSL_set_tlsext_host_name(c, sni);
	if (sess != NULL)
		SSL_set_session(c, sess);
	r->ok = handshake(c, s);
	if (r->ok) {
		/* TLS 1.3 tickets come after the handshake: let the client read them. */
		(void)SSL_read(c, buf, sizeof(buf));
		r->peer = SSL_get1_peer_certificate(c);
		r->sess = SSL_get1_session(c);
		r->reused = SSL_session_reused(s) == 1;
		r->version = SSL_version(s);
	}
	r->fail = hc.hc_tls_fail;
	ERR_clear_error();
	/* Without a shutdown OpenSSL marks the session not resumable. */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
}

static void
result_free(struct result *r)
{
	X509_free(r->peer);
	SSL_SESSION_free(r->sess);
}

/* True when the two sessions carry the same ticket. */
static bool
same_ticket(const SSL_SESSION *a, const SSL_SESSION *b)
{
	const unsigned char *ta, *tb;
	size_t la, lb;

	if (a == NULL || b == NULL)
		return false;
	SSL_SESSION_get0_ticket(a, &ta, &la);
	SSL_SESSION_get0_ticket(b, &tb, &lb);
	return la == lb && la > 0 && memcmp(ta, tb, la) == 0;
}

/* One connection on the client SSL c, kept from one connection to the next as wrk keeps it
 * (SSL_shutdown() and SSL_clear() after each: the session stays and is offered on the next
 * connect). *sess: the client's session after it; 1 when the handshake completed. */
static int
connect_again(struct httpd *srv, SSL *c, SSL_SESSION **sess, bool *reused)
{
	SSL *s = tls_new_ssl();
	struct hconn hc;
	char buf[16];
	int ok;

	memset(&hc, 0, sizeof(hc));
	hc.hc_srv = srv;
	SSL_set_app_data(s, &hc);
	SSL_set_tlsext_host_name(c, "b.test");
	ok = handshake(c, s);
	if (ok) {
		(void)SSL_read(c, buf, sizeof(buf)); /* takes the tickets, if any */
		*reused = SSL_session_reused(s) == 1;
	}
	ERR_clear_error();
	SSL_SESSION_free(*sess);
	*sess = SSL_get1_session(c);
	(void)SSL_shutdown(c);
	ERR_clear_error();
	SSL_clear(c);
	SSL_free(s);
	return ok;
}

/* Eleven connections in a row on one client SSL, each offering the last session. */
static void
resume_chain(struct httpd *srv, int v)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL, *prev = NULL;
	int n_ok = 0, n_reused = 0, n_new_ticket = 0;
	bool reused = false;
	SSL *c;

	SSL_CTX_set_min_proto_version(cctx, v);
	SSL_CTX_set_max_proto_version(cctx, v);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT); /* as wrk */
	c = SSL_new(cctx);
	ok(connect_again(srv, c, &sess, &reused) && !reused && sess != NULL,
	   "v%x chain: the first connection is a full handshake", v);
	for (int i = 0; i < 10; i++) {
		SSL_SESSION_free(prev);
		prev = sess;
		SSL_SESSION_up_ref(prev);
		reused = false;
		n_ok += connect_again(srv, c, &sess, &reused);
		n_reused += reused;
		n_new_ticket += !same_ticket(prev, sess);
	}
	is_int(n_ok, 10, "v%x chain: 10 more connections, each offering the last session", v);
	is_int(n_reused, 10, "v%x chain: every one of them resumed", v);
	if (v == TLS1_3_VERSION)
		is_int(n_new_ticket, 10, "v%x chain: a new ticket after every resumption", v);
	else
		is_int(n_new_ticket, 0, "v%x chain: the ticket, under the current key, is kept", v);
	SSL_SESSION_free(prev);
	SSL_SESSION_free(sess);
	SSL_free(c);
	SSL_CTX_free(cctx);
}

int
main(void)
{
	struct pair pa, pb, pa2;
	struct dfr_config *c1, *c2;
	struct route_table *t1, *t2;
	const struct route_zone *za, *zb, *zc;
	struct httpd srv;
	struct result r, r2;

	plan_lazy();
	make_pair(&pa, "a.test");
	make_pair(&pb, "b.test");
	make_pair(&pa2, "a.test");
	is_int(tls_init(), DFR_OK, "tls_init");
	c1 = make_config(&pa, &pb, false);
	c2 = make_config(&pa2, &pb, true);
	ok(c1 != NULL && c2 != NULL, "configs with certificates parse");
	if (c1 == NULL || c2 == NULL)
		return done_testing();

	t1 = route_table_build(c1, 80);
	za = route_zone_lookup(t1, "a.test");
	zb = route_zone_lookup(t1, "www.b.test");
	zc = route_zone_lookup(t1, "c.test");
	ok(za != NULL && za->rz_tls != NULL, "a.test has a context");
	ok(zb != NULL && zb->rz_tls != NULL, "b.test has a context (found from a subdomain)");
	ok(zc != NULL && zc->rz_tls == NULL, "c.test: ssl not enabled, no context");
	ok(route_zone_lookup(t1, "x.invalid") == NULL, "no zone for a name outside");
	ok(route_zone_lookup(NULL, "a.test") == NULL, "no table, no zone");

	t2 = route_table_build(c2, 80);
	ok(route_zone_lookup(t2, "b.test")->rz_tls == zb->rz_tls,
	   "an unchanged certificate keeps its context across generations");
	ok(route_zone_lookup(t2, "c.test")->rz_tls == zb->rz_tls,
	   "the same pair on two domains: one context");
	ok(route_zone_lookup(t2, "a.test")->rz_tls != za->rz_tls,
	   "a changed certificate gets a new context");

	memset(&srv, 0, sizeof(srv));
	srv.h_routes = t1;
	connect_to(&srv, "a.test", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pa.x) == 0,
	   "SNI a.test: a.test's certificate");
	is_int(r.version, TLS1_3_VERSION, "TLS 1.3 by default");
	result_free(&r);
	connect_to(&srv, "Deep.A.Test.", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pa.x) == 0,
	   "a name under the zone, any case, trailing dot: the zone's certificate");
	result_free(&r);
	connect_to(&srv, "b.test", TLS1_2_VERSION, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pb.x) == 0, "TLS 1.2 to b.test: b's");
	result_free(&r);
	connect_to(&srv, "c.test", 0, NULL, &r);
	ok(!r.ok && r.fail != NULL && strcmp(r.fail, "unknown_name") == 0,
	   "ssl disabled for the zone: handshake refused (unknown_name)");
	connect_to(&srv, "nothing.invalid", 0, NULL, &r);
	ok(!r.ok && r.fail != NULL && strcmp(r.fail, "unknown_name") == 0, "unknown name refused");
	connect_to(&srv, NULL, 0, NULL, &r);
	ok(!r.ok && r.fail != NULL && strcmp(r.fail, "no_sni") == 0, "no SNI refused");
	connect_to(&srv, "a.test", TLS1_1_VERSION, NULL, &r);
	ok(!r.ok, "TLS 1.1 refused");
	connect_to(&srv, "a.test", TLS1_VERSION, NULL, &r);
	ok(!r.ok, "TLS 1.0 refused");

	/* HTTPS_DEFAULT_DOMAIN: names without a certificate get its certificate. */
	strcpy(srv.h_opts.o_https_default, "b.test");
	connect_to(&srv, "nothing.invalid", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pb.x) == 0,
	   "with a default domain: an unknown name gets its certificate");
	result_free(&r);
	connect_to(&srv, NULL, 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pb.x) == 0, "and so does no SNI");
	result_free(&r);
	connect_to(&srv, "a.test", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pa.x) == 0, "a known name keeps its own");
	result_free(&r);
	strcpy(srv.h_opts.o_https_default, "c.test");
	connect_to(&srv, "nothing.invalid", 0, NULL, &r);
	ok(!r.ok, "a default domain without a certificate: refused");
	srv.h_opts.o_https_default[0] = '\0';

	/* Swap the table: the new certificate for new connections. */
	srv.h_routes = t2;
	connect_to(&srv, "a.test", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pa2.x) == 0, "after the swap: the new one");
	result_free(&r);
	connect_to(&srv, "c.test", 0, NULL, &r);
	ok(r.ok && r.peer != NULL && X509_cmp(r.peer, pb.x) == 0, "c.test enabled now");
	result_free(&r);

	/* Resumption, both versions, and across key rotations. */
	for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		connect_to(&srv, "b.test", v, NULL, &r);
		ok(r.ok && !r.reused && r.sess != NULL, "v%x: full handshake, session kept", v);
		connect_to(&srv, "b.test", v, r.sess, &r2);
		ok(r2.ok && r2.reused, "v%x: resumed with the ticket", v);
		result_free(&r2);
		tls_ticket_rotate_now();
		connect_to(&srv, "b.test", v, r.sess, &r2);
		ok(r2.ok && r2.reused, "v%x: resumed after one rotation (previous key)", v);
		result_free(&r2);
		tls_ticket_rotate_now();
		tls_ticket_rotate_now();
		connect_to(&srv, "b.test", v, r.sess, &r2);
		ok(r2.ok && !r2.reused, "v%x: three rotations later the ticket is refused: full",
		   v);
		result_free(&r2);
		result_free(&r);
		resume_chain(&srv, v);
	}

	/* TLS 1.2 under the previous key: renewed (issued under the current one). */
	connect_to(&srv, "b.test", TLS1_2_VERSION, NULL, &r);
	tls_ticket_rotate_now();
	connect_to(&srv, "b.test", TLS1_2_VERSION, r.sess, &r2);
	ok(r2.ok && r2.reused, "v1.2 after a key rotation: resumed");
	ok(!same_ticket(r.sess, r2.sess), "and given a ticket under the current key");
	result_free(&r2);
	result_free(&r);

	route_table_unref(t1);
	route_table_unref(t2);
	dfr_config_unref(c1);
	dfr_config_unref(c2);
	tls_fini();
	free_pair(&pa);
	free_pair(&pb);
	free_pair(&pa2);
	return done_testing();
}
