/*
 * Destination host names without blocking the loop: IP literals are parsed at once, names go
 * through libevent's evdns (which reads /etc/resolv.conf and answers from /etc/hosts first).
 * The first address of the answer is used; proxy.c resolves again on each config change.
 *
 * Not here: caching, or several addresses per backend (a failed connect is not retried on the
 * next address).
 */
#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "l4d.h"
#include "log.h"

struct resolve_req {
	struct evdns_getaddrinfo_request *r_req;
	resolve_fn *r_fn; /* NULL once cancelled */
	void *r_arg;
	uint16_t r_port;
	bool r_in_start; /* the answer came before evdns_getaddrinfo() returned */
	bool r_answered;
};

bool
resolve_literal(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char buf[64];
	size_t hl = strlen(host);

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return true;
	}
	/* "[2001:db8::1]" as well as "2001:db8::1" */
	if (hl >= 2 && hl < sizeof(buf) && host[0] == '[' && host[hl - 1] == ']') {
		memcpy(buf, host + 1, hl - 2);
		buf[hl - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return true;
	}
	return false;
}

static void
on_answer(int err, struct evutil_addrinfo *res, void *arg)
{
	struct resolve_req *r = arg;
	struct evutil_addrinfo *ai;

	r->r_answered = true;
	if (r->r_fn != NULL) {
		if (err != 0 || res == NULL) {
			r->r_fn(DFR_ENOTFOUND, NULL, 0, r->r_arg);
		} else {
			ai = res;
			/* Prefer IPv4 when a name has both ("localhost"): backends commonly
			 * listen on 0.0.0.0 only. */
			for (struct evutil_addrinfo *x = res; x != NULL; x = x->ai_next) {
				if (x->ai_family == AF_INET) {
					ai = x;
					break;
				}
			}
			struct sockaddr_storage ss;
			memset(&ss, 0, sizeof(ss));
			memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
			if (ss.ss_family == AF_INET)
				((struct sockaddr_in *)&ss)->sin_port = htons(r->r_port);
			else
				((struct sockaddr_in6 *)&ss)->sin6_port = htons(r->r_port);
			r->r_fn(DFR_OK, (struct sockaddr *)&ss, (socklen_t)ai->ai_addrlen,
			        r->r_arg);
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	if (!r->r_in_start)
		free(r);
}

struct resolve_req *
resolve_start(struct l4d *l4, const char *host, uint16_t port, int socktype, resolve_fn *fn,
              void *arg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct resolve_req *r;
	struct evutil_addrinfo hints;

	if (resolve_literal(host, port, &ss, &len)) {
		fn(DFR_OK, (struct sockaddr *)&ss, len, arg);
		return NULL;
	}
	if (l4->l_dns == NULL || (r = calloc(1, sizeof(*r))) == NULL) {
		fn(DFR_ENOMEM, NULL, 0, arg);
		return NULL;
	}
	r->r_fn = fn;
	r->r_arg = arg;
	r->r_port = port;
	r->r_in_start = true;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = socktype;
	r->r_req = evdns_getaddrinfo(l4->l_dns, host, NULL, &hints, on_answer, r);
	r->r_in_start = false;
	if (r->r_answered) {
		/* Answered from /etc/hosts (or failed) inside the call. */
		free(r);
		return NULL;
	}
	return r;
}

void
resolve_cancel(struct resolve_req *r)
{
	if (r == NULL)
		return;
	r->r_fn = NULL;
	/* evdns calls on_answer with EVUTIL_EAI_CANCEL, which frees r. */
	evdns_getaddrinfo_cancel(r->r_req);
}
