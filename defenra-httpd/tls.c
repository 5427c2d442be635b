/*
 * TLS for httpd: the OpenSSL contexts, the certificate chosen by SNI, session tickets.
 *
 * One base context (tls_init) starts every TLS connection: TLS 1.2 and 1.3 only, AEAD cipher
 * suites with forward secrecy, no renegotiation, no compression, stateless session tickets and
 * no session cache. It holds no certificate: the SNI callback finds the zone of the name on the
 * worker's current route table (apex, subdomain or wildcard: the longest zone the name is in)
 * and moves the connection to that zone's context; a name with no certificate (or no SNI at
 * all) gets the certificate of HTTPS_DEFAULT_DOMAIN when that names a zone with one, else the
 * handshake ends with an unrecognized_name alert.
 *
 * A zone's context is built when a generation arrives (route_table_build, main thread) from the
 * domain's certificate chain and key, which the config model has already checked (and kept when
 * a renewal was bad, shared/config_tls.c). Contexts are cached by the SHA-256 of chain and key,
 * so a generation that does not change a certificate reuses its context, and a pair shared by
 * several domains is built once. An SSL keeps a reference to the context it was moved to, so a
 * connection finishes on the certificate it started with while new ones get the new one.
 *
 * Ticket keys are held by the process (all workers and contexts share them), made at random at
 * start and rotated every TLS_TICKET_ROTATE_S: a ticket is issued with the current key and
 * accepted with it or either of the two before it (renewed then), so a ticket lives at most
 * three periods. A TLS 1.3 resumption always gets a new ticket (clients use each ticket once),
 * a TLS 1.2 one only when its key is not the current one. OCSP stapling is not done: the config
 * carries no OCSP response. ALPN selects h2 (h2.c) when the client offers it, else http/1.1.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "httpd.h"
#include "log.h"

#define TLS_TICKET_KEYS     3
#define TLS_TICKET_ROTATE_S 3600
#define TLS_SID_CTX         "defenra-httpd"

static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char tls13_suites[] =
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

struct tls_cert {
	int tc_refs; /* atomic: the cache and every route table holding it */
	SSL_CTX *tc_ctx;
	unsigned char tc_digest[32]; /* SHA-256 of chain and key: the cache key */
	uint64_t tc_epoch;           /* last build that used it */
	struct tls_cert *tc_next;    /* cache list */
};

struct ticket_key {
	unsigned char tk_name[16];
	unsigned char tk_aes[32];
	unsigned char tk_hmac[32];
};

static SSL_CTX *base_ctx;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cert *cache;
static uint64_t cache_epoch;

static pthread_rwlock_t tk_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct ticket_key tk_keys[TLS_TICKET_KEYS]; /* [0] current */
static unsigned tk_n;
static time_t tk_next_rotate;

/* ---- ticket keys -------------------------------------------------------------------------- */

static int
ticket_key_new(struct ticket_key *k)
{
	if (RAND_bytes(k->tk_name, sizeof(k->tk_name)) != 1 ||
	    RAND_bytes(k->tk_aes, sizeof(k->tk_aes)) != 1 ||
	    RAND_bytes(k->tk_hmac, sizeof(k->tk_hmac)) != 1)
		return DFR_EIO;
	return DFR_OK;
}

/* A new current key; the older ones move down, the oldest goes. */
static void
ticket_rotate(time_t now)
{
	struct ticket_key k;

	if (ticket_key_new(&k) != DFR_OK) {
		dfr_log_warn("tls, ticket key rotation failed (no random bytes), keeping the key");
		tk_next_rotate = now + 60;
		return;
	}
	memmove(&tk_keys[1], &tk_keys[0], sizeof(tk_keys[0]) * (TLS_TICKET_KEYS - 1));
	tk_keys[0] = k;
	if (tk_n < TLS_TICKET_KEYS)
		tk_n++;
	tk_next_rotate = now + TLS_TICKET_ROTATE_S;
	OPENSSL_cleanse(&k, sizeof(k));
	stats_tls_ticket_rotation();
}

void
tls_ticket_rotate_now(void)
{
	pthread_rwlock_wrlock(&tk_lock);
	ticket_rotate(time(NULL));
	pthread_rwlock_unlock(&tk_lock);
}

static int
ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx,
          int enc)
{
	OSSL_PARAM params[3];
	const struct ticket_key *k = NULL;
	time_t now = time(NULL);
	int rc = 0;
	unsigned i;

	if (now >= __atomic_load_n(&tk_next_rotate, __ATOMIC_RELAXED)) {
		pthread_rwlock_wrlock(&tk_lock);
		if (now >= tk_next_rotate)
			ticket_rotate(now);
		pthread_rwlock_unlock(&tk_lock);
	}
	pthread_rwlock_rdlock(&tk_lock);
	if (enc) {
		k = &tk_keys[0];
		if (RAND_bytes(iv, 16) != 1)
			goto out;
		memcpy(name, k->tk_name, 16);
		if (EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->tk_aes, iv) != 1)
			goto out;
		rc = 1;
	} else {
		for (i = 0; i < tk_n; i++)
			if (memcmp(name, tk_keys[i].tk_name, 16) == 0) {
				k = &tk_keys[i];
				break;
			}
		if (k == NULL)
			goto out; /* unknown or expired key: a full handshake */
		if (EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->tk_aes, iv) != 1)
			goto out;
		/* 2: valid, and a new ticket (with the current key) goes out after the handshake.
		 * Always so in TLS 1.3: clients use a ticket once (RFC 8446 C.4; OpenSSL's do),
		 * so without a new one the next connection is a full handshake (wrk resumed every
		 * other connection, and the client paid a certificate check on the others). A
		 * TLS 1.2 ticket may be used again: renewed only when under an older key. */
		rc = (i == 0 && SSL_version(ssl) != TLS1_3_VERSION) ? 1 : 2;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->tk_hmac,
	                                              sizeof(k->tk_hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (EVP_MAC_CTX_set_params(hctx, params) != 1 || EVP_MAC_init(hctx, NULL, 0, NULL) != 1)
		rc = -1;
out:
	pthread_rwlock_unlock(&tk_lock);
	return rc;
}

/* ---- contexts ----------------------------------------------------------------------------- */

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
        unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; h2_enabled && i < inlen;) {
		unsigned n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	for (unsigned i = 0; i < inlen;) {
		unsigned n = in[i];

		if (i + 1 + n > inlen)
			break;
		if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static int
servername_cb(SSL *ssl, int *alert, void *arg)
{
	struct hconn *hc = SSL_get_app_data(ssl);
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct route_zone *z;
	char host[DFR_CFG_MAX_NAME + 1];
	size_t n;

	(void)arg;
	if (hc == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	if (name == NULL || (n = strlen(name)) == 0 || n > DFR_CFG_MAX_NAME) {
		z = NULL;
	} else {
		for (size_t i = 0; i < n; i++)
			host[i] =
			        (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
		if (n > 1 && host[n - 1] == '.')
			n--;
		host[n] = '\0';
		z = route_zone_lookup(hc->hc_srv->h_routes, host);
	}
	if ((z == NULL || z->rz_tls == NULL) && hc->hc_srv->h_opts.o_https_default[0] != '\0')
		z = route_zone_lookup(hc->hc_srv->h_routes, hc->hc_srv->h_opts.o_https_default);
	if (z == NULL || z->rz_tls == NULL) {
		hc->hc_tls_fail = name == NULL ? "no_sni" : "unknown_name";
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (SSL_set_SSL_CTX(ssl, z->rz_tls->tc_ctx) == NULL) {
		hc->hc_tls_fail = "internal";
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* What every context has: versions, suites, options, tickets, ALPN. */
static int
ctx_common(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, tls13_suites) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1 ||
	    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
	                                   sizeof(TLS_SID_CTX) - 1) != 1)
		return DFR_EINVAL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TLSv1 |
	                                 SSL_OP_NO_TLSv1_1 | SSL_OP_NO_SSLv3);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	return DFR_OK;
}

int
tls_init(void)
{
	int rc = DFR_ENOMEM;

	pthread_rwlock_wrlock(&tk_lock);
	for (tk_n = 0; tk_n < 1; tk_n++)
		if (ticket_key_new(&tk_keys[tk_n]) != DFR_OK) {
			pthread_rwlock_unlock(&tk_lock);
			dfr_log_err("tls, cannot make a ticket key (no random bytes)");
			return DFR_EIO;
		}
	tk_next_rotate = time(NULL) + TLS_TICKET_ROTATE_S;
	pthread_rwlock_unlock(&tk_lock);
	if ((base_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    (rc = ctx_common(base_ctx)) != DFR_OK) {
		dfr_log_err("tls, cannot set up the server context (%s)",
		            ERR_reason_error_string(ERR_get_error()));
		SSL_CTX_free(base_ctx);
		base_ctx = NULL;
		return rc;
	}
	SSL_CTX_set_tlsext_servername_callback(base_ctx, servername_cb);
	return DFR_OK;
}

void
tls_fini(void)
{
	struct tls_cert *c;

	pthread_mutex_lock(&cache_lock);
	while ((c = cache) != NULL) {
		cache = c->tc_next;
		tls_cert_unref(c);
	}
	pthread_mutex_unlock(&cache_lock);
	SSL_CTX_free(base_ctx);
	base_ctx = NULL;
	pthread_rwlock_wrlock(&tk_lock);
	OPENSSL_cleanse(tk_keys, sizeof(tk_keys));
	tk_n = 0;
	pthread_rwlock_unlock(&tk_lock);
}

SSL *
tls_new_ssl(void)
{
	return base_ctx != NULL ? SSL_new(base_ctx) : NULL;
}

/* A context with the chain (leaf first) and key; NULL with the reason in why. */
static SSL_CTX *
ctx_build(const char *cert_pem, const char *key_pem, char *why, size_t whylen)
{
	SSL_CTX *ctx = NULL;
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	const char *what = "out of memory";

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL || ctx_common(ctx) != DFR_OK)
		goto fail;
	if ((b = BIO_new_mem_buf(cert_pem, -1)) == NULL)
		goto fail;
	what = "certificate does not parse";
	if ((x = PEM_read_bio_X509(b, NULL, dfr_pem_no_passphrase, NULL)) == NULL)
		goto fail;
	what = "certificate refused";
	if (SSL_CTX_use_certificate(ctx, x) != 1)
		goto fail;
	X509_free(x);
	while ((x = PEM_read_bio_X509(b, NULL, dfr_pem_no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
			goto fail;
	}
	ERR_clear_error(); /* the end of the chain */
	BIO_free(b);
	if ((b = BIO_new_mem_buf(key_pem, -1)) == NULL)
		goto fail;
	what = "key does not parse";
	if ((key = PEM_read_bio_PrivateKey(b, NULL, dfr_pem_no_passphrase, NULL)) == NULL)
		goto fail;
	what = "key does not match the certificate";
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	EVP_PKEY_free(key);
	BIO_free(b);
	return ctx;
fail:
	snprintf(why, whylen, "%s", what);
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(key);
	BIO_free(b);
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_build_begin(void)
{
	pthread_mutex_lock(&cache_lock);
	cache_epoch++;
	pthread_mutex_unlock(&cache_lock);
}

struct tls_cert *
tls_cert_get(const char *zone, const char *cert_pem, const char *key_pem)
{
	unsigned char d[32];
	EVP_MD_CTX *md;
	struct tls_cert *c;
	char why[128];
	bool ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return NULL;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, cert_pem, strlen(cert_pem) + 1) == 1 &&
	     EVP_DigestUpdate(md, key_pem, strlen(key_pem)) == 1 &&
	     EVP_DigestFinal_ex(md, d, NULL) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return NULL;
	pthread_mutex_lock(&cache_lock);
	for (c = cache; c != NULL; c = c->tc_next)
		if (memcmp(c->tc_digest, d, sizeof(d)) == 0)
			break;
	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		if ((c->tc_ctx = ctx_build(cert_pem, key_pem, why, sizeof(why))) == NULL) {
			dfr_log_err("tls, certificate of %s not usable (%s), no https for it", zone,
			            why);
			free(c);
			c = NULL;
		} else {
			c->tc_refs = 1;
			memcpy(c->tc_digest, d, sizeof(d));
			c->tc_next = cache;
			cache = c;
			stats_tls_cert_built();
			dfr_log_debug("tls, context built for %s", zone);
		}
	}
	if (c != NULL) {
		c->tc_epoch = cache_epoch;
		tls_cert_ref(c);
	}
	pthread_mutex_unlock(&cache_lock);
	return c;
}

void
tls_build_end(void)
{
	struct tls_cert **pp, *c;

	pthread_mutex_lock(&cache_lock);
	for (pp = &cache; (c = *pp) != NULL;) {
		if (c->tc_epoch != cache_epoch) {
			*pp = c->tc_next;
			tls_cert_unref(c); /* tables still using it keep it */
		} else {
			pp = &c->tc_next;
		}
	}
	pthread_mutex_unlock(&cache_lock);
}

struct tls_cert *
tls_cert_ref(struct tls_cert *c)
{
	__atomic_fetch_add(&c->tc_refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
tls_cert_unref(struct tls_cert *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->tc_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	SSL_CTX_free(c->tc_ctx);
	free(c);
}

/* ---- per connection ----------------------------------------------------------------------- */

void
tls_handshake_done(struct hconn *hc, SSL *ssl)
{
	hc->hc_tls_done = true;
	stats_tls_handshake(SSL_session_reused(ssl) == 1, SSL_version(ssl));
}

const char *
tls_error_reason(unsigned long err)
{
	int r = ERR_GET_REASON(err);

	if (err == 0)
		return "closed";
	switch (r) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return "version";
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
		return "no_shared_cipher";
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
		return "plain_http";
	default:
		return "other";
	}
}
