/*
 * One DNS record of the Core's answer (or of a domain's canonical JSON) into a struct
 * dfr_record: owner name, type, value, TTL, priority, GeoDNS location. The rules are written at
 * the top of config_parse.c, which calls this for each element of "dnsRecords"; this file does
 * the work for one record and nothing about domains, TLS or the answer as a whole.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "log.h"

/* The absolute owner name of a record (rules at the top of the file), or NULL. */
static char *
owner_name(struct dfr_arena *ar, const char *raw, const char *apex)
{
	char tmp[DFR_CFG_MAX_NAME + 2], out[2 * DFR_CFG_MAX_NAME + 4];
	bool dot;

	if (!name_fold(raw, tmp, &dot))
		return NULL;
	if ((tmp[0] == '\0' && !dot) || strcmp(tmp, "@") == 0 || strcmp(tmp, apex) == 0)
		return (char *)apex; /* the domain's own: shared (see domain_compact()) */
	if (dot || ends_with_zone(tmp, apex)) {
		if (!ends_with_zone(tmp, apex))
			return NULL; /* outside the zone */
		memcpy(out, tmp, strlen(tmp) + 1);
	} else {
		size_t t = strlen(tmp), a = strlen(apex);

		memcpy(out, tmp, t);
		out[t] = '.';
		memcpy(out + t + 1, apex, a + 1);
	}
	if (!name_is_valid(out, true))
		return NULL;
	return dfr_arena_strdup(ar, out);
}

/* A CNAME/NS/MX/SRV target: absolute, lower-case, no trailing dot; "." kept when allowed. */
static char *
target_name(struct dfr_arena *ar, const char *raw, const char *apex, bool root_ok)
{
	char tmp[DFR_CFG_MAX_NAME + 2];
	bool dot;

	if (strcmp(raw, "@") == 0)
		return dfr_arena_strdup(ar, apex);
	if (strcmp(raw, ".") == 0)
		return root_ok ? dfr_arena_strndup(ar, ".", 1) : NULL;
	if (!name_fold(raw, tmp, &dot) || !name_is_valid(tmp, false))
		return NULL;
	return dfr_arena_strdup(ar, tmp);
}

/* The Go-agent compatibility rule: is `owner` "<code>.<apex>" for a listed two-letter or
 * continent code? Returns the code (pointing into dom's locations) or NULL. */
static const char *
implicit_location(const struct dfr_domain *dom, const char *owner)
{
	size_t n = strlen(owner), a = strlen(dom->dom_name);

	if (n <= a + 1 || !ends_with_zone(owner, dom->dom_name))
		return NULL;
	n -= a + 1;
	for (size_t i = 0; i < dom->dom_nlocations; i++) {
		const char *code = dom->dom_locations[i].loc_code;

		if (strlen(code) == n && memcmp(code, owner, n) == 0 &&
		    ((n == 2 && isalpha((unsigned char)code[0]) &&
		      isalpha((unsigned char)code[1])) ||
		     is_continent(code)))
			return code;
	}
	return NULL;
}

/* The domain's own copy of a location code when it lists it (shared: strings are immutable and
 * freed with the domain), else a new copy. */
static char *
location_code(struct dfr_arena *ar, const struct dfr_domain *dom, const char *code)
{
	for (size_t i = 0; i < dom->dom_nlocations; i++)
		if (strcmp(dom->dom_locations[i].loc_code, code) == 0)
			return dom->dom_locations[i].loc_code;
	return dfr_arena_strdup(ar, code);
}

/* inet_ntop(AF_INET) without its sprintf: "%u.%u.%u.%u", the same text. */
static void
ntop4(const struct in_addr *a, char *out)
{
	const unsigned char *b = (const unsigned char *)&a->s_addr;

	for (int i = 0; i < 4; i++) {
		unsigned v = b[i];

		if (v >= 100)
			*out++ = (char)('0' + v / 100);
		if (v >= 10)
			*out++ = (char)('0' + v / 10 % 10);
		*out++ = (char)('0' + v % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

/* The owner name of a record as a log line shows it, before it is validated. */
static const char *
disp_name(const char *raw, const char *apex, char *buf, size_t size)
{
	char ex[80];
	size_t n;

	if (raw == NULL)
		return apex;
	dfr_cfg_excerpt(raw, ex, sizeof(ex));
	n = strlen(ex);
	if (n == 0 || strcmp(ex, "@") == 0)
		return apex;
	if (ex[n - 1] == '.')
		snprintf(buf, size, "%.*s", (int)(n - 1), ex);
	else
		snprintf(buf, size, "%s.%s", ex, apex);
	return buf;
}

/* The members of a record that are read; rec_fields[] in the same order. */
enum { RF_ID, RF_NAME, RF_TYPE, RF_VALUE, RF_TTL, RF_PRIO, RF_PROXIED, RF_LOC, RF_N };

static const struct {
	const char *rf_name;
	size_t rf_len;
} rec_fields[RF_N] = {
        {"id", 2},  {"name", 4},     {"type", 4},              {"value", 5},
        {"ttl", 3}, {"priority", 8}, {"httpProxyEnabled", 16}, {"locationCode", 12},
};

#define REC_DROP(...)                                                                              \
	do {                                                                                       \
		char why_[320];                                                                    \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                         \
		drop(c, "config, record %s %s %s dropped (%s)", id ? id : "(no id)",               \
		     disp_name(name, apex, nb, sizeof(nb)), dfr_cfg_excerpt(type, tb, sizeof(tb)), \
		     why_);                                                                        \
		goto bad;                                                                          \
	} while (0)

/*
 * Parses record `jr` of domain `dom` (its apex and locations already set) into *r. Returns
 * DFR_OK, 1 when the record was dropped (logged and counted), or DFR_ENOMEM.
 */
int
dfr_cfg_parse_record(struct dfr_pctx *c, const struct dfr_domain *dom, const struct dfr_jv *jr,
                     struct dfr_record *r)
{
	struct dfr_arena *ar = c->pc_ar;
	const char *id = NULL, *name = NULL, *type = NULL, *value = NULL, *loc = NULL;
	char nb[DFR_CFG_MAX_NAME + 80], vb[80], tb[24], buf[DFR_CFG_MAX_NAME * 2 + 64];
	const char *apex = dom->dom_name;
	const struct dfr_jv *fv[RF_N] = {0};
	double d;
	enum dfr_rr_type rt;
	bool b;

	memset(r, 0, sizeof(*r));
	if (!jv_is(jr, DFR_JV_OBJECT)) {
		drop(c, "config, domain %s, a record dropped (not an object)", dom->dom_id);
		return 1;
	}
	/* The fields in one pass over the members (the first of a repeated name counts), rather
	 * than one search per field: 120,000 records in a large answer. */
	for (const struct dfr_jv *m = jr->jv_child; m != NULL; m = m->jv_next)
		for (size_t k = 0; k < RF_N; k++)
			if (m->jv_keylen == rec_fields[k].rf_len &&
			    memcmp(m->jv_key, rec_fields[k].rf_name, rec_fields[k].rf_len) == 0) {
				if (fv[k] == NULL)
					fv[k] = m;
				break;
			}
	if (jv_str(fv[RF_ID], &id) == F_BAD)
		REC_DROP("id is not a string");
	if (id != NULL && *id == '\0')
		id = NULL;
	if (jv_str(fv[RF_TYPE], &type) != F_OK)
		REC_DROP("no type");
	if (jv_str(fv[RF_NAME], &name) == F_BAD)
		REC_DROP("name is not a string");
	if (jv_str(fv[RF_LOC], &loc) == F_BAD)
		REC_DROP("locationCode is not a string");
	if (loc != NULL && *loc == '\0')
		loc = NULL;
	if (name == NULL && loc == NULL)
		REC_DROP("no name");
	if ((rt = dfr_rr_type_from_name(type)) == 0)
		REC_DROP("type not supported");
	if (jv_str(fv[RF_VALUE], &value) != F_OK)
		REC_DROP("no value, or not a string");
	if (c->pc_nrecords >= DFR_CFG_MAX_RECORDS)
		REC_DROP("more than %u records in the answer", DFR_CFG_MAX_RECORDS);

	r->rec_type = rt;
	switch (jv_num(fv[RF_TTL], &d)) {
	case F_ABSENT:
		r->rec_ttl = DFR_TTL_DEFAULT;
		break;
	case F_BAD:
		REC_DROP("ttl is not a number");
	case F_OK:
		if (d < 0)
			dfr_cfg_note(c, false, "config, record %s %s ttl %g taken as 0 (negative)",
			             id ? id : "(no id)", disp_name(name, apex, nb, sizeof(nb)), d);
		r->rec_ttl = (uint32_t)clamp_u(d, DFR_TTL_MAX);
		break;
	}
	switch (jv_num(fv[RF_PRIO], &d)) {
	case F_ABSENT:
		break;
	case F_BAD:
		REC_DROP("priority is not a number");
	case F_OK:
		if (d < 0 || d > 65535)
			REC_DROP("priority %g out of 0..65535", d);
		r->rec_priority = (uint16_t)d;
		break;
	}
	b = false;
	if (jv_bool(fv[RF_PROXIED], &b) == F_BAD)
		REC_DROP("httpProxyEnabled is not a boolean");
	r->rec_proxied = b;

	/* Addresses first: an A holding IPv6 becomes AAAA before the location rule looks. */
	if (rt == DFR_RR_A) {
		if (inet_pton(AF_INET, value, &r->rec_data.a) != 1) {
			if (inet_pton(AF_INET6, value, &r->rec_data.aaaa) != 1)
				REC_DROP("value \"%s\" is not an IPv4 address",
				         dfr_cfg_excerpt(value, vb, sizeof(vb)));
			dfr_log_debug("config, record %s A holds an IPv6 address, taken as AAAA",
			              id ? id : "(no id)");
			r->rec_type = rt = DFR_RR_AAAA;
			inet_ntop(AF_INET6, &r->rec_data.aaaa, buf, sizeof(buf));
		} else {
			ntop4(&r->rec_data.a, buf);
		}
		r->rec_value = dfr_arena_strdup(ar, buf);
	} else if (rt == DFR_RR_AAAA) {
		if (inet_pton(AF_INET6, value, &r->rec_data.aaaa) != 1)
			REC_DROP("value \"%s\" is not an IPv6 address",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		inet_ntop(AF_INET6, &r->rec_data.aaaa, buf, sizeof(buf));
		r->rec_value = dfr_arena_strdup(ar, buf);
	}

	if (loc != NULL) {
		char code[64];

		if (strlen(loc) > 63)
			REC_DROP("locationCode too long");
		memcpy(code, loc, strlen(loc) + 1); /* at most 63 bytes: checked above */
		lower(code);
		if (!code_is_valid(code))
			REC_DROP("locationCode \"%s\" is not a valid code",
			         dfr_cfg_excerpt(loc, vb, sizeof(vb)));
		if (rt != DFR_RR_A && rt != DFR_RR_AAAA)
			REC_DROP("a location record must be A or AAAA");
		r->rec_location = location_code(ar, dom, code);
		r->rec_name = (char *)apex;
		r->rec_proxied = false;
	} else {
		const char *code;

		if ((r->rec_name = owner_name(ar, name, apex)) == NULL)
			REC_DROP("name is not a valid name inside %s", apex);
		if ((rt == DFR_RR_A || rt == DFR_RR_AAAA) &&
		    (code = implicit_location(dom, r->rec_name)) != NULL) {
			r->rec_location = (char *)code; /* the location's own */
			r->rec_name = (char *)apex;
			r->rec_proxied = false;
		}
	}
	if (r->rec_name == NULL || (loc != NULL && r->rec_location == NULL))
		goto enomem;

	switch (rt) {
	case DFR_RR_A:
	case DFR_RR_AAAA:
		break;
	case DFR_RR_CNAME:
	case DFR_RR_NS:
	case DFR_RR_MX:
		if ((r->rec_data.target = target_name(ar, value, apex, rt == DFR_RR_MX)) == NULL)
			REC_DROP("target \"%s\" is not a valid name",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		r->rec_value = r->rec_data.target; /* immutable: one copy serves both */
		if (rt != DFR_RR_MX)
			r->rec_priority = 0;
		break;
	case DFR_RR_TXT:
		if (strlen(value) > DFR_CFG_MAX_TXT)
			REC_DROP("TXT value of %zu bytes, more than %u", strlen(value),
			         DFR_CFG_MAX_TXT);
		r->rec_value = dfr_arena_strdup(ar, value);
		r->rec_priority = 0;
		break;
	case DFR_RR_SRV: {
		char *f[5], *save = NULL, *p;
		size_t nf = 0;
		uint16_t prio = r->rec_priority;

		if (strlen(value) > sizeof(buf) - 1)
			REC_DROP("SRV value too long");
		snprintf(buf, sizeof(buf), "%s", value);
		for (p = strtok_r(buf, " \t", &save); p != NULL && nf < 5;
		     p = strtok_r(NULL, " \t", &save))
			f[nf++] = p;
		if (nf != 3 && nf != 4)
			REC_DROP("SRV value \"%s\" is not \"[priority] weight port target\"",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		if ((nf == 4 && !parse_u16(f[0], 65535, &prio)) ||
		    !parse_u16(f[nf - 3], 65535, &r->rec_data.srv.weight) ||
		    !parse_u16(f[nf - 2], 65535, &r->rec_data.srv.port))
			REC_DROP("SRV value \"%s\" has a bad number",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		if ((r->rec_data.srv.target = target_name(ar, f[nf - 1], apex, true)) == NULL)
			REC_DROP("SRV target is not a valid name");
		r->rec_priority = prio;
		{
			char sv[DFR_CFG_MAX_NAME + 32];

			snprintf(sv, sizeof(sv), "%u %u %s", r->rec_data.srv.weight,
			         r->rec_data.srv.port, r->rec_data.srv.target);
			r->rec_value = dfr_arena_strdup(ar, sv);
		}
		break;
	}
	case DFR_RR_CAA: {
		const char *p = value, *t;
		uint16_t flags;
		size_t tl, vl;
		char fl[8];

		for (t = p; isdigit((unsigned char)*p); p++)
			;
		if (p == t || (size_t)(p - t) >= sizeof(fl))
			REC_DROP("CAA value \"%s\" has no flags",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		memcpy(fl, t, (size_t)(p - t));
		fl[p - t] = '\0';
		if (!parse_u16(fl, 255, &flags) || (*p != ' ' && *p != '\t'))
			REC_DROP("CAA value \"%s\" has bad flags",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		while (*p == ' ' || *p == '\t')
			p++;
		for (t = p; isalnum((unsigned char)*p); p++)
			;
		tl = (size_t)(p - t);
		if (tl == 0 || tl > 15 || (*p != '\0' && *p != ' ' && *p != '\t'))
			REC_DROP("CAA value \"%s\" has a bad tag",
			         dfr_cfg_excerpt(value, vb, sizeof(vb)));
		while (*p == ' ' || *p == '\t')
			p++;
		vl = strlen(p);
		if (vl >= 2 && p[0] == '"' && p[vl - 1] == '"') {
			p++;
			vl -= 2;
		}
		r->rec_data.caa.flags = (uint8_t)flags;
		r->rec_data.caa.tag = dfr_arena_strndup(ar, t, tl);
		r->rec_data.caa.value = dfr_arena_strndup(ar, p, vl);
		r->rec_priority = 0;
		if (r->rec_data.caa.tag == NULL || r->rec_data.caa.value == NULL)
			goto enomem;
		lower(r->rec_data.caa.tag);
		{
			size_t cl = 3 + 1 + tl + 2 + vl + 3;
			char *cv = dfr_arena_alloc_raw(ar, cl + 1);

			if (cv != NULL)
				snprintf(cv, cl + 1, "%u %s \"%s\"", flags, r->rec_data.caa.tag,
				         r->rec_data.caa.value);
			r->rec_value = cv;
		}
		break;
	}
	}
	if (r->rec_value == NULL)
		goto enomem;
	if (rt == DFR_RR_A || rt == DFR_RR_AAAA)
		r->rec_priority = 0;
	if (id != NULL && (r->rec_id = dfr_arena_strdup(ar, id)) == NULL)
		goto enomem;
	c->pc_nrecords++;
	return DFR_OK;
enomem:
	memset(r, 0, sizeof(*r)); /* what it holds is in the domain's arena */
	return DFR_ENOMEM;
bad:
	memset(r, 0, sizeof(*r));
	return 1;
}
