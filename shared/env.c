/*
 * Environment parsing (DESIGN.md §4). Each daemon reads its settings once at start through these
 * helpers, so every variable is parsed the same way and a bad value always ends in the same
 * single line: "NAME=value is not valid (expected …)". An unset or empty variable takes the
 * default, and the default goes through the same parser (a bad default is reported like a bad
 * value rather than trusted). Nothing here is on a hot path and nothing is cached: the daemon
 * keeps what it needs.
 *
 * Addresses are numeric only ("127.0.0.1:53", "[::1]:53"): a listener must not depend on a
 * resolver at start-up, and an ambiguous bare IPv6 ("::1:53") is refused rather than guessed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "log.h"

#define ADDR_EXPECT "host:port or [v6]:port with a numeric host and a port from 0 to 65535"

int
dfr_env_invalid(const char *name, const char *value, const char *expected)
{
	/* The value is bounded so that a huge variable still gives one readable line. */
	dfr_log_err("%s=%.200s is not valid (expected %s)", name, value != NULL ? value : "",
		    expected);
	return DFR_EINVAL;
}

/* getenv() that treats an empty value as unset. */
static const char *
env_get(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

const char *
dfr_env_str(const char *name, const char *def)
{
	const char *v = env_get(name);

	return v != NULL ? v : def;
}

/* Decimal digits only (no sign, no spaces, no 0x): true and *out when s fits in an unsigned. */
static bool
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

int
dfr_env_uint_expect(const char *name, unsigned def, unsigned min, unsigned max,
		    const char *expected, unsigned *out)
{
	const char *v = env_get(name);
	unsigned long n;
	char gen[96];

	if (v == NULL) {
		*out = def;
		return DFR_OK;
	}
	if (!parse_uint(v, max, &n) || n < min) {
		if (expected == NULL) {
			snprintf(gen, sizeof(gen), "a whole number from %u to %u", min, max);
			expected = gen;
		}
		return dfr_env_invalid(name, v, expected);
	}
	*out = (unsigned)n;
	return DFR_OK;
}

int
dfr_env_uint(const char *name, unsigned def, unsigned min, unsigned max, unsigned *out)
{
	return dfr_env_uint_expect(name, def, min, max, NULL, out);
}

int
dfr_env_choice(const char *name, const char *def, const char *const *choices, unsigned *out)
{
	const char *v = dfr_env_str(name, def);
	char expect[256];
	size_t len = 0, n = 0;

	for (unsigned i = 0; v != NULL && choices[i] != NULL; i++) {
		if (strcasecmp(v, choices[i]) == 0) {
			*out = i;
			return DFR_OK;
		}
	}
	/* "a, b or c" */
	while (choices[n] != NULL)
		n++;
	expect[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof(expect); i++) {
		const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
		int w = snprintf(expect + len, sizeof(expect) - len, "%s%s", sep, choices[i]);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	return dfr_env_invalid(name, v, expect);
}

int
dfr_parse_addr(const char *text, struct dfr_addr *out)
{
	struct dfr_addr a;
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs, *he, *ps;
	unsigned long port;
	bool v6;

	if (text == NULL || strlen(text) >= sizeof(a.text))
		return DFR_EINVAL;
	memset(&a, 0, sizeof(a));
	if (text[0] == '[') {
		hs = text + 1;
		if ((he = strchr(hs, ']')) == NULL || he[1] != ':')
			return DFR_EINVAL;
		ps = he + 2;
		v6 = true;
	} else {
		hs = text;
		if ((he = strrchr(text, ':')) == NULL || memchr(hs, ':', (size_t)(he - hs)) != NULL)
			return DFR_EINVAL; /* no port, or a bare IPv6 address */
		ps = he + 1;
		v6 = false;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(host))
		return DFR_EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (strlen(ps) > 5 || !parse_uint(ps, 65535, &port))
		return DFR_EINVAL;

	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.sa;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return DFR_EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a.salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a.sa;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return DFR_EINVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		a.salen = sizeof(*s4);
	}
	snprintf(a.text, sizeof(a.text), "%s", text);
	*out = a;
	return DFR_OK;
}

int
dfr_env_addr(const char *name, const char *def, struct dfr_addr *out)
{
	const char *v = dfr_env_str(name, def);

	if (dfr_parse_addr(v, out) != DFR_OK)
		return dfr_env_invalid(name, v, ADDR_EXPECT);
	return DFR_OK;
}

int
dfr_env_addr_list(const char *name, const char *def, struct dfr_addr_list *out)
{
	struct dfr_addr_list list; /* ~1.6 KB; *out is written only on success */
	const char *v = dfr_env_str(name, def), *p, *end;
	char one[sizeof(list.addrs[0].text)];
	char expect[160];

	snprintf(expect, sizeof(expect), "a comma-separated list of up to %d addresses as %s",
		 DFR_ENV_MAX_ADDRS, ADDR_EXPECT);
	if (v == NULL)
		return dfr_env_invalid(name, v, expect);
	memset(&list, 0, sizeof(list));
	for (p = v;; p = end + 1) {
		const char *s, *e;

		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		for (s = p; s < end && isspace((unsigned char)*s); s++)
			;
		for (e = end; e > s && isspace((unsigned char)e[-1]); e--)
			;
		if (e == s || (size_t)(e - s) >= sizeof(one) || list.n == DFR_ENV_MAX_ADDRS)
			return dfr_env_invalid(name, v, expect);
		memcpy(one, s, (size_t)(e - s));
		one[e - s] = '\0';
		if (dfr_parse_addr(one, &list.addrs[list.n]) != DFR_OK)
			return dfr_env_invalid(name, v, expect);
		list.n++;
		if (*end == '\0')
			break;
	}
	*out = list;
	return DFR_OK;
}

int
dfr_env_workers(const char *name, unsigned *out)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned def = ncpu < 1 ? 1 : ncpu > 256 ? 256 : (unsigned)ncpu;

	return dfr_env_uint_expect(name, def, 1, 256, "a whole number of worker threads from 1 to 256",
				   out);
}

const char *
dfr_env_run_dir(void)
{
	return dfr_env_str("DEFENRA_RUN_DIR", "/run/defenra");
}

const char *
dfr_env_state_dir(void)
{
	return dfr_env_str("DEFENRA_STATE_DIR", "/var/lib/defenra");
}
