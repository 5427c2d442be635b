/*
 * Internals of the config model shared by config_parse.c, config_record.c, config_obj.c,
 * config_json.c, config_diff.c and config_tls.c. Not part of the library's API: daemons include
 * config.h only.
 */
#ifndef DFR_CONFIG_INT_H
#define DFR_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* A growing byte buffer for building canonical JSON. sb_err is set on ENOMEM; later appends are
 * then no-ops, so a builder checks once at the end. */
struct dfr_sb {
	char *sb_buf;
	size_t sb_len;
	size_t sb_cap;
	bool sb_err;
};

void dfr_sb_put(struct dfr_sb *sb, const char *s, size_t n);
void dfr_sb_puts(struct dfr_sb *sb, const char *s);
void dfr_sb_putc(struct dfr_sb *sb, char c);
void dfr_sb_json_str(struct dfr_sb *sb, const char *s); /* "..." escaped, or null for NULL */
void dfr_sb_uint(struct dfr_sb *sb, unsigned long long v);

/* Fills dom_json / px_json from the normalised item. DFR_OK or DFR_ENOMEM. */
int dfr_cfg_domain_build_json(struct dfr_domain *dom);
int dfr_cfg_proxy_build_json(struct dfr_proxy *px);

/* Frees what a record owns and zeroes it (a half-parsed record is fine). */
void dfr_cfg_record_clear(struct dfr_record *r);

/* Frees an item whatever its reference count (a half-built one included). */
void dfr_cfg_domain_free(struct dfr_domain *dom);
void dfr_cfg_proxy_free(struct dfr_proxy *px);

/* A config with no items yet (one reference), and its by-name index built from cfg_domains. */
struct dfr_config *dfr_cfg_alloc(void);
int dfr_cfg_index_zones(struct dfr_config *cfg);

/* Checks a certificate chain (PEM, leaf first) and its private key (PEM): both parse and the key
 * matches the leaf. Returns true if usable; else false with a reason in why (never key bytes). */
bool dfr_cfg_tls_check(const char *cert_pem, const char *key_pem, char *why, size_t whylen);

/* --- shared by config_parse.c and config_record.c ------------------------------------------ */

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DFR_CFG_LOG_MAX 100 /* warnings logged one by one per parse, then summed up */

/* The state of one parse: the previous config, the record budget, the drop count. */
struct dfr_pctx {
	const struct dfr_config *pc_prev;
	bool pc_verify_tls;
	size_t pc_nrecords; /* records kept so far, against DFR_CFG_MAX_RECORDS */
	size_t pc_dropped;
	size_t pc_logged;
};

/* Logs a warning about the answer within the per-parse budget; counts it as a dropped item
 * when `dropped`. */
void dfr_cfg_note(struct dfr_pctx *c, bool dropped, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
#define drop(c, ...) dfr_cfg_note((c), true, __VA_ARGS__)

/* A short printable excerpt of untrusted text for a log line. */
const char *dfr_cfg_excerpt(const char *s, char *buf, size_t size);

/* Parses record `jr` of `dom` (apex and locations set) into *r: DFR_OK, 1 when dropped
 * (logged, counted), or DFR_ENOMEM. */
int dfr_cfg_parse_record(struct dfr_pctx *c, const struct dfr_domain *dom, const cJSON *jr,
                         struct dfr_record *r);

enum dfr_field { F_ABSENT = 0, F_OK, F_BAD };

static inline char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static inline void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static inline enum dfr_field
get_str(const cJSON *o, const char *k, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (v == NULL || cJSON_IsNull(v))
		return F_ABSENT;
	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return F_BAD;
	*out = v->valuestring;
	return F_OK;
}

static inline enum dfr_field
get_bool(const cJSON *o, const char *k, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (v == NULL || cJSON_IsNull(v))
		return F_ABSENT;
	if (!cJSON_IsBool(v))
		return F_BAD;
	*out = cJSON_IsTrue(v);
	return F_OK;
}

static inline enum dfr_field
get_num(const cJSON *o, const char *k, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (v == NULL || cJSON_IsNull(v))
		return F_ABSENT;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return F_BAD;
	*out = v->valuedouble;
	return F_OK;
}

/* Clamps a finite double into [0, max] without undefined conversions. */
static inline uint64_t
clamp_u(double d, uint64_t max)
{
	if (!(d > 0))
		return 0;
	if (d >= (double)max)
		return max;
	return (uint64_t)d;
}

/* A name in the text form we store: lower-case, no trailing dot, labels of letters, digits,
 * '-', '_' (1..63 bytes), 253 bytes in all; "*" only as the leftmost label when wild. */
static inline bool
name_is_valid(const char *s, bool wild)
{
	size_t len = strlen(s), lab = 0;

	if (len == 0 || len > DFR_CFG_MAX_NAME)
		return false;
	if (wild && s[0] == '*' && (s[1] == '\0' || s[1] == '.')) {
		if (s[1] == '\0')
			return true;
		s += 2;
		if (*s == '\0')
			return false;
	}
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '.') {
			if (lab == 0)
				return false;
			lab = 0;
			continue;
		}
		if (!(islower(ch) || isdigit(ch) || ch == '-' || ch == '_'))
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0;
}

/* Lower-cases `in` into out[DFR_CFG_MAX_NAME + 2] and removes one trailing dot; *had_dot says
 * whether there was one. False if too long. */
static inline bool
name_fold(const char *in, char *out, bool *had_dot)
{
	size_t n = strlen(in);

	if (n > DFR_CFG_MAX_NAME + 1)
		return false;
	memcpy(out, in, n + 1);
	lower(out);
	*had_dot = n > 0 && out[n - 1] == '.';
	if (*had_dot)
		out[n - 1] = '\0';
	return true;
}

static inline bool
ends_with_zone(const char *name, const char *apex)
{
	size_t n = strlen(name), a = strlen(apex);

	return n > a + 1 && name[n - a - 1] == '.' && memcmp(name + n - a, apex, a) == 0;
}

static inline bool
parse_u16(const char *s, unsigned max, uint16_t *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (uint16_t)v;
	return true;
}

static inline bool
is_continent(const char *code)
{
	static const char *const continents[] = {"europe", "north-america", "south-america", "asia",
	                                         "africa", "oceania",       "antarctica"};

	for (size_t i = 0; i < sizeof(continents) / sizeof(continents[0]); i++)
		if (strcmp(code, continents[i]) == 0)
			return true;
	return false;
}

static inline bool
code_is_valid(const char *code)
{
	return *code != '\0' && strlen(code) <= 63 && strchr(code, '.') == NULL &&
	       name_is_valid(code, false);
}

#endif
