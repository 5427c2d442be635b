/*
 * The check of a domain's certificate and private key when a poll answer is parsed: both PEM
 * blocks parse, the chain holds nothing but certificates, and the key matches the leaf (the
 * first certificate). It does not judge validity dates or names: an expired certificate still
 * serves better than none while the Core renews it, and httpd picks certificates by SNI itself.
 * Nothing of the key ever reaches a log line or `why`.
 *
 * OpenSSL 3 builds a decoder chain for each PEM_read_bio_PrivateKey() (~0.45 ms of 0.5 for an
 * RSA key); a caller checking many pairs passes a cache where the chain is built once and reused
 * (~0.02 ms a key). Only a key that chain decodes at once is taken from it; anything else goes
 * through PEM_read_bio_PrivateKey() as before, so the verdicts are the same.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config_int.h"

/* An encrypted key would make OpenSSL prompt on the terminal for a pass phrase: refuse it. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* The key through the cached decoder chain, or NULL (then the caller takes the usual path). */
static EVP_PKEY *
key_fast(struct dfr_tls_cache *tc, const char *key_pem)
{
	const unsigned char *p = (const unsigned char *)key_pem;
	size_t len = strlen(key_pem);
	EVP_PKEY *key;

	if (tc == NULL)
		return NULL;
	if (tc->tc_dctx == NULL && !tc->tc_failed) {
		tc->tc_dctx = OSSL_DECODER_CTX_new_for_pkey(&tc->tc_key, "PEM", NULL, NULL,
		                                            EVP_PKEY_KEYPAIR, NULL, NULL);
		if (tc->tc_dctx == NULL ||
		    OSSL_DECODER_CTX_set_pem_password_cb(tc->tc_dctx, no_passphrase, NULL) != 1) {
			OSSL_DECODER_CTX_free(tc->tc_dctx);
			tc->tc_dctx = NULL;
			tc->tc_failed = true;
		}
	}
	if (tc->tc_dctx == NULL)
		return NULL;
	tc->tc_key = NULL;
	if (OSSL_DECODER_from_data(tc->tc_dctx, &p, &len) != 1) {
		EVP_PKEY_free(tc->tc_key);
		tc->tc_key = NULL;
		ERR_clear_error();
		return NULL;
	}
	key = tc->tc_key;
	tc->tc_key = NULL;
	return key;
}

void
dfr_cfg_tls_cache_free(struct dfr_tls_cache *tc)
{
	OSSL_DECODER_CTX_free(tc->tc_dctx);
	EVP_PKEY_free(tc->tc_key);
	memset(tc, 0, sizeof(*tc));
}

bool
dfr_cfg_tls_check(const char *cert_pem, const char *key_pem, char *why, size_t whylen)
{
	return dfr_cfg_tls_check_cached(NULL, cert_pem, key_pem, why, whylen);
}

bool
dfr_cfg_tls_check_cached(struct dfr_tls_cache *tc, const char *cert_pem, const char *key_pem,
                         char *why, size_t whylen)
{
	BIO *cb = NULL, *kb = NULL;
	X509 *leaf = NULL, *extra = NULL;
	EVP_PKEY *key = NULL;
	const char *reason = NULL;
	unsigned long e;

	if (cert_pem == NULL || *cert_pem == '\0') {
		reason = "no certificate";
		goto out;
	}
	if (key_pem == NULL || *key_pem == '\0') {
		reason = "no private key";
		goto out;
	}
	if ((cb = BIO_new_mem_buf(cert_pem, -1)) == NULL ||
	    (kb = BIO_new_mem_buf(key_pem, -1)) == NULL) {
		reason = "out of memory";
		goto out;
	}
	if ((leaf = PEM_read_bio_X509(cb, NULL, no_passphrase, NULL)) == NULL) {
		reason = "certificate does not parse";
		goto out;
	}
	/* The rest of the chain: certificates until the end of the text, nothing else. */
	while ((extra = PEM_read_bio_X509(cb, NULL, no_passphrase, NULL)) != NULL)
		X509_free(extra);
	e = ERR_peek_last_error();
	if (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		reason = "certificate chain does not parse";
		goto out;
	}
	ERR_clear_error();
	if ((key = key_fast(tc, key_pem)) == NULL &&
	    (key = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL)) == NULL) {
		reason = "private key does not parse";
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		reason = "key does not match certificate";
		goto out;
	}
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(leaf);
	BIO_free(cb);
	BIO_free(kb);
	if (reason != NULL && why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", reason);
	return reason == NULL;
}
