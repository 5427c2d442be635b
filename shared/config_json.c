/*
 * The canonical JSON of the config model: what the bus carries and what the diff compares.
 *
 * Canonical means compact, fields in a fixed order, and written from the NORMALISED item, in the
 * shape of the Core's answer so that one parser (config_parse.c) reads both: record names are
 * absolute with a trailing dot ("www.example.com."), values are the normalised text (addresses
 * as inet_ntop writes them, targets lower-case, SRV "weight port target" with the priority
 * beside it, CAA `flags tag "value"`), location records carry their "locationCode", every
 * optional field is written (null when absent). Parsing dom_json again gives a domain whose
 * dom_json is byte-identical, which is what lets the diff compare bytes.
 *
 * The strings are built by hand rather than through cJSON objects: this runs once per domain
 * per poll (10,000 domains), and a byte buffer is several times cheaper than a cJSON tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "log.h"

static bool
sb_grow(struct dfr_sb *sb, size_t n)
{
	size_t cap;
	char *p;

	if (sb->sb_err)
		return false;
	if (sb->sb_len + n + 1 <= sb->sb_cap)
		return true;
	cap = sb->sb_cap ? sb->sb_cap : 4096; /* most domains fit: one allocation */
	while (cap < sb->sb_len + n + 1)
		cap *= 2;
	if ((p = realloc(sb->sb_buf, cap)) == NULL) {
		sb->sb_err = true;
		return false;
	}
	sb->sb_buf = p;
	sb->sb_cap = cap;
	return true;
}

void
dfr_sb_put(struct dfr_sb *sb, const char *s, size_t n)
{
	if (!sb_grow(sb, n))
		return;
	memcpy(sb->sb_buf + sb->sb_len, s, n);
	sb->sb_len += n;
	sb->sb_buf[sb->sb_len] = '\0';
}

void
dfr_sb_puts(struct dfr_sb *sb, const char *s)
{
	dfr_sb_put(sb, s, strlen(s));
}

void
dfr_sb_putc(struct dfr_sb *sb, char c)
{
	dfr_sb_put(sb, &c, 1);
}

void
dfr_sb_uint(struct dfr_sb *sb, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	dfr_sb_put(sb, tmp + i, sizeof(tmp) - i);
}

/* Escapes what JSON requires (quote, backslash, control bytes); other bytes, UTF-8 included,
 * are copied as they are, as cJSON does, so the TXT bytes survive exactly. */
void
dfr_sb_json_str(struct dfr_sb *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p, *run;

	if (s == NULL) {
		dfr_sb_put(sb, "null", 4);
		return;
	}
	dfr_sb_putc(sb, '"');
	for (p = run = (const unsigned char *)s; *p != '\0'; p++) {
		char esc[6];
		size_t n = 2;

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		dfr_sb_put(sb, (const char *)run, (size_t)(p - run));
		esc[0] = '\\';
		switch (*p) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			n = 6;
		}
		dfr_sb_put(sb, esc, n);
		run = p + 1;
	}
	dfr_sb_put(sb, (const char *)run, (size_t)(p - run));
	dfr_sb_putc(sb, '"');
}

static void
sb_key(struct dfr_sb *sb, const char *key, bool first)
{
	if (!first)
		dfr_sb_putc(sb, ',');
	dfr_sb_putc(sb, '"');
	dfr_sb_puts(sb, key);
	dfr_sb_put(sb, "\":", 2);
}

static const char *
loc_type_name(enum dfr_location_type t)
{
	return t == DFR_LOC_COUNTRY ? "country" : t == DFR_LOC_CONTINENT ? "continent" : "custom";
}

static const char *
http_type_name(enum dfr_http_type t)
{
	return t == DFR_HTTP_ONLY ? "http" : t == DFR_HTTPS_ONLY ? "https" : "both";
}

/* The writer of a domain's canonical JSON: one buffer sized up front, grown only when a string
 * needs more (escapes), and no check per byte. */
struct jw {
	char *jw_buf, *jw_p, *jw_end;
	bool jw_err;
};

static bool
jw_grow(struct jw *w, size_t n)
{
	size_t len = (size_t)(w->jw_p - w->jw_buf), cap = (size_t)(w->jw_end - w->jw_buf) * 2;
	char *p;

	if (w->jw_err)
		return false;
	if (cap < len + n + 1)
		cap = len + n + 1;
	if ((p = realloc(w->jw_buf, cap)) == NULL) {
		w->jw_err = true;
		return false;
	}
	w->jw_buf = p;
	w->jw_p = p + len;
	w->jw_end = p + cap;
	return true;
}

static inline bool
jw_need(struct jw *w, size_t n)
{
	return (size_t)(w->jw_end - w->jw_p) > n || jw_grow(w, n);
}

static inline void
jw_put(struct jw *w, const char *s, size_t n)
{
	if (!jw_need(w, n))
		return;
	memcpy(w->jw_p, s, n);
	w->jw_p += n;
}

#define JW_LIT(w, s) jw_put((w), (s), sizeof(s) - 1)

static const unsigned char jw_esc[256] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
        ['"'] = '"',  ['\\'] = '\\', [0] = 'u',   [1] = 'u',   [2] = 'u',  [3] = 'u',
        [4] = 'u',    [5] = 'u',   [6] = 'u',   [7] = 'u',   [11] = 'u', [14] = 'u',
        [15] = 'u',   [16] = 'u',  [17] = 'u',  [18] = 'u',  [19] = 'u', [20] = 'u',
        [21] = 'u',   [22] = 'u',  [23] = 'u',  [24] = 'u',  [25] = 'u', [26] = 'u',
        [27] = 'u',   [28] = 'u',  [29] = 'u',  [30] = 'u',  [31] = 'u',
};

/* As dfr_sb_json_str(): "..." with what JSON requires escaped, or null. */
static void
jw_str(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n;
	char *o;

	if (s == NULL) {
		JW_LIT(w, "null");
		return;
	}
	n = strlen(s);
	if (!jw_need(w, n + 2))
		return;
	o = w->jw_p;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch, e;

#ifdef __SSE2__
		/* Sixteen bytes at a time while none needs escaping. */
		while (n - i >= 16) {
			const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
			const __m128i c = _mm_set1_epi8(0x1f);
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
			__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)),
			                         _mm_cmpeq_epi8(_mm_max_epu8(x, c), c));

			if (_mm_movemask_epi8(m) != 0)
				break;
			_mm_storeu_si128((__m128i *)(void *)o, x);
			o += 16;
			i += 16;
		}
		if (i >= n)
			break;
#endif
		ch = (unsigned char)s[i];
		e = jw_esc[ch];

		if (e == 0) {
			*o++ = (char)ch;
			continue;
		}
		w->jw_p = o;
		if (!jw_need(w, 6 + (n - i) + 1))
			return;
		o = w->jw_p;
		*o++ = '\\';
		*o++ = (char)e;
		if (e == 'u') {
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o++ = '"';
	w->jw_p = o;
}

static inline void
jw_uint(struct jw *w, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	jw_put(w, tmp + i, sizeof(tmp) - i);
}

static inline void
jw_bool(struct jw *w, bool b)
{
	if (b)
		JW_LIT(w, "true");
	else
		JW_LIT(w, "false");
}

static void
record_json(struct jw *w, const struct dfr_record *r)
{
	size_t n = strlen(r->rec_name);

	JW_LIT(w, "{\"id\":");
	jw_str(w, r->rec_id);
	JW_LIT(w, ",\"name\":\"");
	/* Absolute with the trailing dot, so the parser never reads it as relative; a validated
	 * name: nothing to escape. */
	jw_put(w, r->rec_name, n);
	if (!(n == 1 && r->rec_name[0] == '.'))
		JW_LIT(w, ".");
	JW_LIT(w, "\",\"type\":");
	jw_str(w, dfr_rr_type_name(r->rec_type));
	JW_LIT(w, ",\"value\":");
	jw_str(w, r->rec_value);
	JW_LIT(w, ",\"ttl\":");
	jw_uint(w, r->rec_ttl);
	JW_LIT(w, ",\"priority\":");
	jw_uint(w, r->rec_priority);
	JW_LIT(w, ",\"httpProxyEnabled\":");
	jw_bool(w, r->rec_proxied);
	JW_LIT(w, ",\"locationCode\":");
	jw_str(w, r->rec_location);
	JW_LIT(w, "}");
}

/*
 * Writes the canonical JSON of `dom` into *buf (capacity *cap, grown with realloc as needed, kept
 * by the caller for the next domain), NUL-terminated; *len gets its length. On DFR_ENOMEM what
 * was written is wiped (it may carry the key); *buf and *cap stay valid for the caller to free.
 */
int
dfr_cfg_domain_write_json(const struct dfr_domain *dom, char **buf, size_t *cap, size_t *len)
{
	const struct dfr_ssl *ssl = &dom->dom_ssl;
	struct jw w = {0};
	size_t need;

	/* The PEMs and the script are most of the bytes: one allocation up front. */
	need = 2048 + (ssl->ssl_cert_pem ? strlen(ssl->ssl_cert_pem) : 0) +
	       (ssl->ssl_key_pem ? strlen(ssl->ssl_key_pem) : 0) +
	       (dom->dom_lua_code ? strlen(dom->dom_lua_code) : 0) +
	       (dom->dom_antiddos_json ? strlen(dom->dom_antiddos_json) : 0) +
	       dom->dom_nrecords * 200 + dom->dom_nlocations * 160;
	if (*buf == NULL || *cap < need) {
		char *p = realloc(*buf, need);

		if (p == NULL)
			return DFR_ENOMEM;
		*buf = p;
		*cap = need;
	}
	w.jw_buf = w.jw_p = *buf;
	w.jw_end = *buf + *cap;

	JW_LIT(&w, "{\"id\":");
	jw_str(&w, dom->dom_id);
	JW_LIT(&w, ",\"domain\":");
	jw_str(&w, dom->dom_name);
	JW_LIT(&w, ",\"description\":");
	jw_str(&w, dom->dom_description);
	JW_LIT(&w, ",\"dnsRecords\":[");
	for (size_t i = 0; i < dom->dom_nrecords; i++) {
		if (i > 0)
			JW_LIT(&w, ",");
		record_json(&w, &dom->dom_records[i]);
	}
	JW_LIT(&w, "],\"geoDnsLocations\":[");
	for (size_t i = 0; i < dom->dom_nlocations; i++) {
		const struct dfr_location *l = &dom->dom_locations[i];

		if (i > 0)
			JW_LIT(&w, ",");
		JW_LIT(&w, "{\"code\":");
		jw_str(&w, l->loc_code);
		JW_LIT(&w, ",\"name\":");
		jw_str(&w, l->loc_name);
		JW_LIT(&w, ",\"type\":");
		jw_str(&w, loc_type_name(l->loc_type));
		JW_LIT(&w, ",\"subdomain\":");
		jw_str(&w, l->loc_subdomain);
		JW_LIT(&w, "}");
	}
	JW_LIT(&w, "],\"httpProxy\":{\"type\":");
	jw_str(&w, http_type_name(dom->dom_http_type));
	JW_LIT(&w, ",\"antiDDoS\":");
	/* Already compact JSON printed by cJSON, which prints its own output back identically. */
	if (dom->dom_antiddos_json != NULL)
		jw_put(&w, dom->dom_antiddos_json, strlen(dom->dom_antiddos_json));
	else
		JW_LIT(&w, "null");
	JW_LIT(&w, "},\"ssl\":{\"enabled\":");
	jw_bool(&w, ssl->ssl_enabled);
	JW_LIT(&w, ",\"certificate\":");
	jw_str(&w, ssl->ssl_cert_pem);
	JW_LIT(&w, ",\"privateKey\":");
	jw_str(&w, ssl->ssl_key_pem);
	JW_LIT(&w, ",\"autoRenew\":");
	jw_bool(&w, ssl->ssl_auto_renew);
	JW_LIT(&w, ",\"acmeHttpChallenge\":{\"token\":");
	jw_str(&w, ssl->ssl_acme_token != NULL ? ssl->ssl_acme_token : "");
	JW_LIT(&w, ",\"keyAuthorization\":");
	jw_str(&w, ssl->ssl_acme_key_auth != NULL ? ssl->ssl_acme_key_auth : "");
	JW_LIT(&w, "}},\"luaCode\":");
	jw_str(&w, dom->dom_lua_code);
	JW_LIT(&w, "}");
	if (w.jw_err || !jw_need(&w, 1)) {
		*buf = w.jw_buf; /* jw_grow may have moved it, also when it failed later */
		*cap = (size_t)(w.jw_end - w.jw_buf);
		explicit_bzero(w.jw_buf, (size_t)(w.jw_p - w.jw_buf));
		return DFR_ENOMEM;
	}
	*w.jw_p = '\0';
	*buf = w.jw_buf;
	*cap = (size_t)(w.jw_end - w.jw_buf);
	*len = (size_t)(w.jw_p - w.jw_buf);
	return DFR_OK;
}

int
dfr_cfg_proxy_build_json(struct dfr_proxy *px)
{
	struct dfr_sb sb = {0};

	dfr_sb_puts(&sb, "{\"id\":");
	dfr_sb_json_str(&sb, px->px_id);
	sb_key(&sb, "name", false);
	dfr_sb_json_str(&sb, px->px_name);
	sb_key(&sb, "type", false);
	dfr_sb_puts(&sb, px->px_proto == DFR_PROXY_UDP ? "\"udp\"" : "\"tcp\"");
	sb_key(&sb, "sourcePort", false);
	dfr_sb_uint(&sb, px->px_source_port);
	sb_key(&sb, "destinationHost", false);
	dfr_sb_json_str(&sb, px->px_dest_host);
	sb_key(&sb, "destinationPort", false);
	dfr_sb_uint(&sb, px->px_dest_port);
	sb_key(&sb, "enabled", false);
	dfr_sb_puts(&sb, px->px_enabled ? "true" : "false");
	dfr_sb_putc(&sb, '}');
	if (sb.sb_err) {
		free(sb.sb_buf);
		return DFR_ENOMEM;
	}
	free(px->px_json);
	px->px_json = sb.sb_buf;
	px->px_json_len = sb.sb_len;
	return DFR_OK;
}

char *
dfr_config_to_json(const struct dfr_config *cfg, size_t *len)
{
	struct dfr_sb sb = {0};
	const struct dfr_agent *ag = &cfg->cfg_agent;

	dfr_sb_puts(&sb, "{\"success\":true,\"generation\":");
	dfr_sb_uint(&sb, cfg->cfg_generation);
	dfr_sb_puts(&sb, ",\"agent\":{\"id\":");
	dfr_sb_json_str(&sb, ag->ag_id);
	sb_key(&sb, "name", false);
	dfr_sb_json_str(&sb, ag->ag_name);
	sb_key(&sb, "pollingInterval", false);
	dfr_sb_uint(&sb, ag->ag_polling_interval);
	sb_key(&sb, "inactivityThreshold", false);
	dfr_sb_uint(&sb, ag->ag_inactivity_threshold);
	dfr_sb_puts(&sb, "},\"nextPollInterval\":");
	dfr_sb_uint(&sb, cfg->cfg_next_poll_interval);
	dfr_sb_puts(&sb, ",\"domains\":[");
	for (size_t i = 0; i < cfg->cfg_ndomains; i++) {
		if (i > 0)
			dfr_sb_putc(&sb, ',');
		dfr_sb_put(&sb, cfg->cfg_domains[i]->dom_json, cfg->cfg_domains[i]->dom_json_len);
	}
	dfr_sb_puts(&sb, "],\"proxies\":[");
	for (size_t i = 0; i < cfg->cfg_nproxies; i++) {
		if (i > 0)
			dfr_sb_putc(&sb, ',');
		dfr_sb_put(&sb, cfg->cfg_proxies[i]->px_json, cfg->cfg_proxies[i]->px_json_len);
	}
	dfr_sb_puts(&sb, "]}");
	if (sb.sb_err) {
		if (sb.sb_buf != NULL)
			explicit_bzero(sb.sb_buf, sb.sb_len);
		free(sb.sb_buf);
		dfr_log_err("config, cannot write the config as JSON (out of memory)");
		return NULL;
	}
	if (len != NULL)
		*len = sb.sb_len;
	return sb.sb_buf;
}
