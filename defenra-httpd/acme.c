/*
 * ACME HTTP-01 answers from the config (ssl.acmeHttpChallenge): GET
 * /.well-known/acme-challenge/<token> on any name of the zone answers the key authorisation
 * as text/plain, over plain HTTP, whatever the domain's proxy settings and scheme (the CA
 * always asks over port 80). Only the pending token of the zone is answered; anything else
 * under the prefix goes the normal way.
 */
#include <string.h>

#include "httpd.h"

#define ACME_PREFIX "/.well-known/acme-challenge/"

const char *
acme_match(const struct route_zone *z, const char *url, size_t url_len)
{
	size_t plen = sizeof(ACME_PREFIX) - 1, tlen;

	if (z == NULL || z->rz_acme_token == NULL || url_len <= plen ||
	    memcmp(url, ACME_PREFIX, plen) != 0)
		return NULL;
	url += plen;
	url_len -= plen;
	/* A query string does not change the answer. */
	for (size_t i = 0; i < url_len; i++)
		if (url[i] == '?') {
			url_len = i;
			break;
		}
	tlen = strlen(z->rz_acme_token);
	if (url_len != tlen || memcmp(url, z->rz_acme_token, tlen) != 0)
		return NULL;
	return z->rz_acme_key_auth;
}
