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

static void
sb_abs_name(struct dfr_sb *sb, const char *name)
{
	/* Absolute with the trailing dot, so the parser never reads it as relative. */
	dfr_sb_putc(sb, '"');
	dfr_sb_puts(sb, name); /* a validated name: nothing to escape */
	if (strcmp(name, ".") != 0)
		dfr_sb_putc(sb, '.');
	dfr_sb_putc(sb, '"');
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

static void
record_json(struct dfr_sb *sb, const struct dfr_record *r)
{
	dfr_sb_puts(sb, "{\"id\":");
	dfr_sb_json_str(sb, r->rec_id);
	sb_key(sb, "name", false);
	sb_abs_name(sb, r->rec_name);
	sb_key(sb, "type", false);
	dfr_sb_json_str(sb, dfr_rr_type_name(r->rec_type));
	sb_key(sb, "value", false);
	dfr_sb_json_str(sb, r->rec_value);
	sb_key(sb, "ttl", false);
	dfr_sb_uint(sb, r->rec_ttl);
	sb_key(sb, "priority", false);
	dfr_sb_uint(sb, r->rec_priority);
	sb_key(sb, "httpProxyEnabled", false);
	dfr_sb_puts(sb, r->rec_proxied ? "true" : "false");
	sb_key(sb, "locationCode", false);
	dfr_sb_json_str(sb, r->rec_location);
	dfr_sb_putc(sb, '}');
}

int
dfr_cfg_domain_build_json(struct dfr_domain *dom)
{
	struct dfr_sb sb = {0};
	const struct dfr_ssl *ssl = &dom->dom_ssl;

	/* The PEMs and the script are most of the bytes: one allocation up front. */
	if (!sb_grow(&sb, 2048 + (ssl->ssl_cert_pem ? strlen(ssl->ssl_cert_pem) : 0) +
	                          (ssl->ssl_key_pem ? strlen(ssl->ssl_key_pem) : 0) +
	                          (dom->dom_lua_code ? strlen(dom->dom_lua_code) : 0) +
	                          dom->dom_nrecords * 160))
		return DFR_ENOMEM;

	dfr_sb_puts(&sb, "{\"id\":");
	dfr_sb_json_str(&sb, dom->dom_id);
	sb_key(&sb, "domain", false);
	dfr_sb_json_str(&sb, dom->dom_name);
	sb_key(&sb, "description", false);
	dfr_sb_json_str(&sb, dom->dom_description);
	sb_key(&sb, "dnsRecords", false);
	dfr_sb_putc(&sb, '[');
	for (size_t i = 0; i < dom->dom_nrecords; i++) {
		if (i > 0)
			dfr_sb_putc(&sb, ',');
		record_json(&sb, &dom->dom_records[i]);
	}
	dfr_sb_putc(&sb, ']');
	sb_key(&sb, "geoDnsLocations", false);
	dfr_sb_putc(&sb, '[');
	for (size_t i = 0; i < dom->dom_nlocations; i++) {
		const struct dfr_location *l = &dom->dom_locations[i];

		dfr_sb_puts(&sb, i > 0 ? ",{\"code\":" : "{\"code\":");
		dfr_sb_json_str(&sb, l->loc_code);
		sb_key(&sb, "name", false);
		dfr_sb_json_str(&sb, l->loc_name);
		sb_key(&sb, "type", false);
		dfr_sb_json_str(&sb, loc_type_name(l->loc_type));
		sb_key(&sb, "subdomain", false);
		dfr_sb_json_str(&sb, l->loc_subdomain);
		dfr_sb_putc(&sb, '}');
	}
	dfr_sb_putc(&sb, ']');
	dfr_sb_puts(&sb, ",\"httpProxy\":{\"type\":");
	dfr_sb_json_str(&sb, http_type_name(dom->dom_http_type));
	sb_key(&sb, "antiDDoS", false);
	/* Already compact JSON printed by cJSON, which prints its own output back identically. */
	dfr_sb_puts(&sb, dom->dom_antiddos_json != NULL ? dom->dom_antiddos_json : "null");
	dfr_sb_puts(&sb, "},\"ssl\":{\"enabled\":");
	dfr_sb_puts(&sb, ssl->ssl_enabled ? "true" : "false");
	sb_key(&sb, "certificate", false);
	dfr_sb_json_str(&sb, ssl->ssl_cert_pem);
	sb_key(&sb, "privateKey", false);
	dfr_sb_json_str(&sb, ssl->ssl_key_pem);
	sb_key(&sb, "autoRenew", false);
	dfr_sb_puts(&sb, ssl->ssl_auto_renew ? "true" : "false");
	dfr_sb_puts(&sb, ",\"acmeHttpChallenge\":{\"token\":");
	dfr_sb_json_str(&sb, ssl->ssl_acme_token != NULL ? ssl->ssl_acme_token : "");
	sb_key(&sb, "keyAuthorization", false);
	dfr_sb_json_str(&sb, ssl->ssl_acme_key_auth != NULL ? ssl->ssl_acme_key_auth : "");
	dfr_sb_puts(&sb, "}},\"luaCode\":");
	dfr_sb_json_str(&sb, dom->dom_lua_code);
	dfr_sb_putc(&sb, '}');
	if (sb.sb_err) {
		if (sb.sb_buf != NULL)
			explicit_bzero(sb.sb_buf, sb.sb_len);
		free(sb.sb_buf);
		return DFR_ENOMEM;
	}
	free(dom->dom_json);
	dom->dom_json = sb.sb_buf;
	dom->dom_json_len = sb.sb_len;
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
