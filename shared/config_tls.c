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
 *
 * Parsing a certificate costs the same again: d2i_X509() builds a decoder chain for the leaf's
 * public key each time (~0.19 ms of 0.2 for a P-256 certificate). With a cache, a pair is first
 * tried on a fast path that parses the certificates in a library context holding only the null
 * provider (the public key is left undecoded, ~0.015 ms), decodes the leaf's SubjectPublicKeyInfo
 * through a kept decoder and compares it with the key (EVP_PKEY_eq(), which is what
 * X509_check_private_key() does). Only a pair that passes every step there is accepted from it;
 * any failure, whatever its cause, runs the full check below, so the verdict and its reason are
 * those of the usual path. The key and public key decoders there are made for the leaf's key type
 * (EC, RSA, Ed25519) when it is one of those: a decoder for any type costs twice as much a key.
 * An EC leaf is not decoded at all when its point and named curve are byte for byte the key's.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "config_int.h"

int
dfr_pem_no_passphrase(char *buf, int size, int rwflag, void *u)
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
		    OSSL_DECODER_CTX_set_pem_password_cb(tc->tc_dctx, dfr_pem_no_passphrase,
		                                         NULL) != 1) {
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

/* Sets up the fast path once; false if it cannot be used. */
static bool
fast_setup(struct dfr_tls_cache *tc)
{
	if (tc->tc_pdctx != NULL)
		return true;
	if (tc->tc_fast_failed)
		return false;
	if ((tc->tc_lctx = OSSL_LIB_CTX_new()) == NULL ||
	    (tc->tc_nullprov = OSSL_PROVIDER_load(tc->tc_lctx, "null")) == NULL ||
	    (tc->tc_pdctx = OSSL_DECODER_CTX_new_for_pkey(&tc->tc_pub, "DER",
	                                                  "SubjectPublicKeyInfo", NULL,
	                                                  EVP_PKEY_PUBLIC_KEY, NULL, NULL)) == NULL) {
		tc->tc_fast_failed = true;
		ERR_clear_error();
		return false;
	}
	return true;
}

/* One certificate of cb parsed in the provider-less context, or NULL. */
static X509 *
fast_x509(struct dfr_tls_cache *tc, BIO *cb)
{
	X509 *x = X509_new_ex(tc->tc_lctx, NULL);

	if (x == NULL)
		return NULL;
	if (PEM_read_bio_X509(cb, &x, dfr_pem_no_passphrase, NULL) == NULL) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* data[0..len) through a kept decoder that writes to *slot: the whole of it, or NULL. */
static EVP_PKEY *
decode_all(OSSL_DECODER_CTX *dctx, EVP_PKEY **slot, const unsigned char *data, size_t len)
{
	EVP_PKEY *k = NULL;

	*slot = NULL;
	if (OSSL_DECODER_from_data(dctx, &data, &len) == 1 && len == 0)
		k = *slot;
	else
		EVP_PKEY_free(*slot);
	*slot = NULL;
	return k;
}

/* The decoders for the leaf's key type, or NULL (then the generic ones are used). */
static struct dfr_tls_typed *
fast_typed(struct dfr_tls_cache *tc, X509 *leaf)
{
	static const struct {
		int nid;
		const char *name;
	} types[] = {{NID_X9_62_id_ecPublicKey, "EC"}, {NID_rsaEncryption, "RSA"},
	             {NID_ED25519, "ED25519"}};
	const ASN1_OBJECT *alg = NULL;
	struct dfr_tls_typed *ty;
	size_t i;
	int nid;

	if (X509_PUBKEY_get0_param((ASN1_OBJECT **)&alg, NULL, NULL, NULL,
	                           X509_get_X509_PUBKEY(leaf)) != 1)
		return NULL;
	nid = OBJ_obj2nid(alg);
	for (i = 0; i < sizeof(types) / sizeof(types[0]) && types[i].nid != nid; i++)
		;
	if (i == sizeof(types) / sizeof(types[0]))
		return NULL;
	ty = &tc->tc_typed[i];
	if (ty->ty_pdctx != NULL)
		return ty;
	if (ty->ty_failed)
		return NULL;
	if ((ty->ty_kdctx = OSSL_DECODER_CTX_new_for_pkey(&ty->ty_key, "PEM", NULL, types[i].name,
	                                                  EVP_PKEY_KEYPAIR, NULL, NULL)) == NULL ||
	    OSSL_DECODER_CTX_set_pem_password_cb(ty->ty_kdctx, dfr_pem_no_passphrase, NULL) !=
	            1 ||
	    (ty->ty_pdctx = OSSL_DECODER_CTX_new_for_pkey(&ty->ty_pub, "DER",
	                                                  "SubjectPublicKeyInfo", types[i].name,
	                                                  EVP_PKEY_PUBLIC_KEY, NULL, NULL)) == NULL) {
		OSSL_DECODER_CTX_free(ty->ty_kdctx);
		ty->ty_kdctx = NULL;
		ty->ty_failed = true;
		ERR_clear_error();
		return NULL;
	}
	return ty;
}

/* The leaf's public key through a kept decoder, or NULL. */
static EVP_PKEY *
fast_pub(struct dfr_tls_cache *tc, struct dfr_tls_typed *ty, X509 *leaf)
{
	unsigned char *der = NULL;
	EVP_PKEY *pub;
	int len;

	if ((len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &der)) <= 0)
		return NULL;
	if (ty != NULL)
		pub = decode_all(ty->ty_pdctx, &ty->ty_pub, der, (size_t)len);
	else
		pub = decode_all(tc->tc_pdctx, &tc->tc_pub, der, (size_t)len);
	OPENSSL_free(der);
	return pub;
}

/*
 * True if an EC key's public point is, byte for byte, the leaf's on the same named curve: then
 * EVP_PKEY_eq() of the two is 1, without decoding the leaf's key. False: not known.
 */
static bool
ec_same(X509 *leaf, EVP_PKEY *key)
{
	const unsigned char *pt;
	const ASN1_OBJECT *aobj;
	const void *pval;
	X509_ALGOR *alg;
	unsigned char buf[160];
	char gname[64];
	size_t blen = 0;
	int ptlen, ptype, nid;

	if (!EVP_PKEY_is_a(key, "EC") ||
	    X509_PUBKEY_get0_param(NULL, &pt, &ptlen, &alg, X509_get_X509_PUBKEY(leaf)) != 1 ||
	    alg == NULL)
		return false;
	X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
	if (ptype != V_ASN1_OBJECT || pval == NULL ||
	    (nid = OBJ_obj2nid(pval)) == NID_undef ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, gname, sizeof(gname),
	                                   NULL) != 1 ||
	    OBJ_sn2nid(gname) != nid ||
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
	                                    sizeof(buf), &blen) != 1)
		return false;
	return ptlen > 0 && blen == (size_t)ptlen && memcmp(buf, pt, blen) == 0;
}

/* True if the pair is good, decided cheaply; false means "not known": take the full check. */
static bool
fast_ok(struct dfr_tls_cache *tc, const char *cert_pem, const char *key_pem)
{
	BIO *cb = NULL;
	X509 *leaf = NULL, *extra;
	EVP_PKEY *key = NULL, *pub = NULL;
	struct dfr_tls_typed *ty;
	unsigned long e;
	bool ok = false;

	if (!fast_setup(tc))
		return false;
	ERR_clear_error();
	if ((cb = BIO_new_mem_buf(cert_pem, -1)) == NULL || (leaf = fast_x509(tc, cb)) == NULL)
		goto out;
	while ((extra = fast_x509(tc, cb)) != NULL)
		X509_free(extra);
	e = ERR_peek_last_error();
	if (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
		goto out;
	ERR_clear_error();
	if ((ty = fast_typed(tc, leaf)) != NULL)
		key = decode_all(ty->ty_kdctx, &ty->ty_key, (const unsigned char *)key_pem,
		                 strlen(key_pem));
	else
		key = key_fast(tc, key_pem);
	if (key == NULL)
		goto out;
	if (ec_same(leaf, key)) {
		ok = true;
		goto out;
	}
	if ((pub = fast_pub(tc, ty, leaf)) == NULL)
		goto out;
	ok = EVP_PKEY_eq(pub, key) == 1;
out:
	ERR_clear_error();
	EVP_PKEY_free(pub);
	EVP_PKEY_free(key);
	X509_free(leaf);
	BIO_free(cb);
	return ok;
}

void
dfr_cfg_tls_cache_free(struct dfr_tls_cache *tc)
{
	OSSL_DECODER_CTX_free(tc->tc_dctx);
	EVP_PKEY_free(tc->tc_key);
	OSSL_DECODER_CTX_free(tc->tc_pdctx);
	EVP_PKEY_free(tc->tc_pub);
	for (size_t i = 0; i < sizeof(tc->tc_typed) / sizeof(tc->tc_typed[0]); i++) {
		OSSL_DECODER_CTX_free(tc->tc_typed[i].ty_kdctx);
		OSSL_DECODER_CTX_free(tc->tc_typed[i].ty_pdctx);
		EVP_PKEY_free(tc->tc_typed[i].ty_key);
		EVP_PKEY_free(tc->tc_typed[i].ty_pub);
	}
	if (tc->tc_nullprov != NULL)
		OSSL_PROVIDER_unload(tc->tc_nullprov);
	OSSL_LIB_CTX_free(tc->tc_lctx);
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
	if (tc != NULL && fast_ok(tc, cert_pem, key_pem))
		goto out;
	if ((cb = BIO_new_mem_buf(cert_pem, -1)) == NULL ||
	    (kb = BIO_new_mem_buf(key_pem, -1)) == NULL) {
		reason = "out of memory";
		goto out;
	}
	if ((leaf = PEM_read_bio_X509(cb, NULL, dfr_pem_no_passphrase, NULL)) == NULL) {
		reason = "certificate does not parse";
		goto out;
	}
	/* The rest of the chain: certificates until the end of the text, nothing else. */
	while ((extra = PEM_read_bio_X509(cb, NULL, dfr_pem_no_passphrase, NULL)) != NULL)
		X509_free(extra);
	e = ERR_peek_last_error();
	if (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		reason = "certificate chain does not parse";
		goto out;
	}
	ERR_clear_error();
	if ((key = key_fast(tc, key_pem)) == NULL &&
	    (key = PEM_read_bio_PrivateKey(kb, NULL, dfr_pem_no_passphrase, NULL)) == NULL) {
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
