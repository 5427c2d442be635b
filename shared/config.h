/*
 * The config model: the Core's poll answer (core-api.md) as validated, normalised C structures.
 *
 * A struct dfr_config is immutable once built and reference-counted; so is every domain and
 * proxy in it, so a config derived from another by a delta shares the unchanged items instead
 * of copying them. Readers hold a reference for as long as they use it (dfr_config_ref/unref,
 * atomic, safe from any thread).
 *
 * Normalisation done by the parser, so no daemon has to:
 *  - domain and record names lower-case, absolute, without the trailing dot
 *    ("@", "" and the apex itself -> the apex; "www" -> "www.example.com"; "x.org." -> "x.org");
 *  - A/AAAA values parsed into addr; an A record holding an IPv6 literal becomes AAAA (the Core
 *    writes IPv6 node addresses into A location records);
 *  - GeoDNS location records recognised (see dfr_record.rec_location) with the code lower-case;
 *  - TTL: null or absent -> 3600, clamped to [0, DFR_TTL_MAX];
 *  - MX priority: null -> 0; SRV "weight port target", CAA "flags tag value" parsed.
 * An invalid item (a record with a malformed value, a proxy with a bad port, a certificate that
 * does not parse or does not match its key) is dropped with a logged reason; the rest applies.
 */
#ifndef DFR_CONFIG_H
#define DFR_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what the Core may send; enforced, not trusted. */
#define DFR_CFG_MAX_ANSWER (100u * 1024 * 1024) /* bytes of one poll answer */
#define DFR_CFG_MAX_TXT (1024u * 1024)          /* bytes of one TXT value */
#define DFR_CFG_MAX_RECORDS 1000000u            /* records over all domains */
#define DFR_CFG_MAX_NAME 253                    /* a DNS name, text form without the dot */
#define DFR_TTL_MAX 604800u                     /* one week */
#define DFR_TTL_DEFAULT 3600u

enum dfr_rr_type {
	DFR_RR_A = 1,
	DFR_RR_NS = 2,
	DFR_RR_CNAME = 5,
	DFR_RR_MX = 15,
	DFR_RR_TXT = 16,
	DFR_RR_AAAA = 28,
	DFR_RR_SRV = 33,
	DFR_RR_CAA = 257,
};

enum dfr_location_type {
	DFR_LOC_COUNTRY = 0, /* code is an ISO 3166 alpha-2 code, lower-case */
	DFR_LOC_CONTINENT,   /* europe, north-america, south-america, asia, africa, oceania, antarctica */
	DFR_LOC_CUSTOM,      /* anything else the Core lets an operator define */
};

enum dfr_http_type {
	DFR_HTTP_BOTH = 0, /* http and https */
	DFR_HTTP_ONLY,     /* plain http only */
	DFR_HTTPS_ONLY,    /* https only: plain http is redirected */
};

enum dfr_proxy_proto {
	DFR_PROXY_TCP = 0,
	DFR_PROXY_UDP,
};

struct dfr_record {
	char *rec_id;             /* may be NULL: the Core omits it on location records */
	char *rec_name;           /* absolute owner name, lower-case, no trailing dot */
	enum dfr_rr_type rec_type;
	char *rec_value;          /* normalised text: address as inet_ntop writes it, target as in
				   * rec_data, SRV "weight port target", CAA `flags tag "value"`,
				   * TXT bytes exactly as the Core sent them */
	uint32_t rec_ttl;
	uint16_t rec_priority;    /* MX preference, SRV priority; 0 otherwise */
	bool rec_proxied;         /* httpProxyEnabled: value is the origin, answer with GeoDNS */
	char *rec_location;       /* GeoDNS location code (lower-case) or NULL for a regular record;
				   * a location record's rec_name is the apex (rules: config_parse.c) */
	union {
		struct in_addr a;     /* DFR_RR_A */
		struct in6_addr aaaa; /* DFR_RR_AAAA */
		struct {              /* DFR_RR_SRV */
			uint16_t weight, port;
			char *target; /* absolute, lower-case, no trailing dot; "." stays "." */
		} srv;
		struct { /* DFR_RR_CAA */
			uint8_t flags;
			char *tag;
			char *value;
		} caa;
		char *target; /* CNAME, NS, MX: absolute, lower-case, no trailing dot */
	} rec_data;
};

struct dfr_location {
	char *loc_code; /* lower-case */
	char *loc_name;
	enum dfr_location_type loc_type;
	char *loc_subdomain;
};

struct dfr_ssl {
	bool ssl_enabled;
	char *ssl_cert_pem; /* NULL when absent or rejected (and no earlier valid one) */
	char *ssl_key_pem;  /* secret: never logged */
	bool ssl_auto_renew;
	char *ssl_acme_token; /* NULL when no challenge is pending */
	char *ssl_acme_key_auth;
};

struct dfr_domain {
	int dom_refs;     /* atomic; see dfr_domain_ref() */
	char *dom_id;     /* 24 hex chars from the Core; the key for deltas */
	char *dom_name;   /* zone apex, lower-case, no trailing dot */
	char *dom_description;
	struct dfr_record *dom_records; /* regular records then location records, Core order */
	size_t dom_nrecords;
	struct dfr_location *dom_locations;
	size_t dom_nlocations;
	enum dfr_http_type dom_http_type;
	char *dom_antiddos_json; /* httpProxy.antiDDoS as compact JSON, or NULL */
	struct dfr_ssl dom_ssl;
	char *dom_lua_code; /* NULL when none */
	/* Canonical compact JSON of the normalised domain: what the bus carries and what the diff
	 * compares. Parsing it again gives an equal domain. */
	char *dom_json;
	size_t dom_json_len;
	void *dom_mem; /* private to the library: the memory this domain's strings live in */
};

struct dfr_proxy {
	int px_refs;
	char *px_id;
	char *px_name;
	enum dfr_proxy_proto px_proto;
	uint16_t px_source_port;
	char *px_dest_host; /* IP literal or host name */
	uint16_t px_dest_port;
	bool px_enabled;
	char *px_json; /* canonical compact JSON */
	size_t px_json_len;
};

struct dfr_agent {
	char *ag_id;
	char *ag_name;
	uint32_t ag_polling_interval;      /* seconds, 0 when absent */
	uint32_t ag_inactivity_threshold;
};

struct dfr_config {
	int cfg_refs;
	uint64_t cfg_generation;        /* set by syncd; 0 on a freshly parsed answer */
	struct dfr_agent cfg_agent;
	struct dfr_domain **cfg_domains; /* sorted by dom_id */
	size_t cfg_ndomains;
	struct dfr_proxy **cfg_proxies; /* sorted by px_id */
	size_t cfg_nproxies;
	uint32_t cfg_next_poll_interval; /* 0 when absent or null */
	size_t cfg_nrecords;             /* over all domains */
	size_t cfg_dropped;              /* items dropped by validation while parsing (0 after apply) */
	/* The same domains sorted by dom_name, for dfr_config_find_zone(); built by the library's
	 * constructors. NULL in a config made by hand: find_zone then scans cfg_domains. */
	struct dfr_domain **cfg_zones;
};

/*
 * Parses and validates a poll answer. `prev` (may be NULL) is the config in force: where an item
 * is invalid now but a valid version of it applied before (a domain's certificate and key), the
 * earlier version is kept. On DFR_OK *out is a new config with one reference, owned by the
 * caller. Errors: DFR_ELIMIT (answer too large), DFR_EPARSE (not JSON, not an object, "success"
 * not true, domains/proxies not arrays); nothing is allocated then. The reason of a failure or of
 * each dropped item is logged; `why`, when not NULL, receives a one-line reason of a failure.
 */
int dfr_config_parse(const char *json, size_t len, const struct dfr_config *prev,
		     struct dfr_config **out, char *why, size_t whylen);

/* Parses one domain or proxy from its canonical JSON (dom_json / px_json, as the bus carries
 * them). The certificate/key pair is not checked again (syncd did). Any thread. Returns a new
 * object with one reference, or NULL (reason logged). */
struct dfr_domain *dfr_domain_from_json(const char *json, size_t len);
struct dfr_proxy *dfr_proxy_from_json(const char *json, size_t len);

/* The whole config as canonical compact JSON, in the shape of a poll answer (so
 * dfr_config_parse() reads it back), with "generation" added (exact up to 2^53). It carries the
 * private keys: never log it. Caller frees. NULL on ENOMEM. */
char *dfr_config_to_json(const struct dfr_config *cfg, size_t *len);

/* An OpenSSL pem_password_cb that refuses: an encrypted key in the config fails to load instead
 * of OpenSSL prompting for a pass phrase on the terminal. For whoever reads the config's PEM. */
int dfr_pem_no_passphrase(char *buf, int size, int rwflag, void *u);

/* An empty config (no domains, no proxies) with one reference. */
struct dfr_config *dfr_config_new_empty(void);

/* A new config made of `base` (NULL: empty) with the given items added or replaced (matched by
 * id; of repeated ids the last given wins) and then the given ids removed; takes a reference on
 * each item it keeps. Agent, poll interval and generation are copied from base. The caller keeps
 * its references to `upserts` items. NULL on ENOMEM. */
struct dfr_config *dfr_config_apply(const struct dfr_config *base, struct dfr_domain **dom_upserts,
				    size_t ndom_upserts, const char *const *dom_removes,
				    size_t ndom_removes, struct dfr_proxy **px_upserts,
				    size_t npx_upserts, const char *const *px_removes,
				    size_t npx_removes);

struct dfr_config *dfr_config_ref(struct dfr_config *cfg);
void dfr_config_unref(struct dfr_config *cfg); /* NULL is fine */
struct dfr_domain *dfr_domain_ref(struct dfr_domain *dom);
void dfr_domain_unref(struct dfr_domain *dom);
struct dfr_proxy *dfr_proxy_ref(struct dfr_proxy *px);
void dfr_proxy_unref(struct dfr_proxy *px);

/* Look-ups by id (binary search) and by zone name (exact, lower-case, no dot). NULL if none. */
const struct dfr_domain *dfr_config_find_domain(const struct dfr_config *cfg, const char *id);
const struct dfr_domain *dfr_config_find_zone(const struct dfr_config *cfg, const char *name);
const struct dfr_proxy *dfr_config_find_proxy(const struct dfr_config *cfg, const char *id);

/* "A", "AAAA", … ; NULL for an unknown type. And back: 0 for an unknown name. */
const char *dfr_rr_type_name(enum dfr_rr_type t);
enum dfr_rr_type dfr_rr_type_from_name(const char *name);

/* The diff of two configs, by domain id and proxy id. Items point into the configs given. */
struct dfr_config_diff {
	const struct dfr_domain **dd_added;
	size_t dd_nadded;
	const struct dfr_domain **dd_changed; /* the new version */
	size_t dd_nchanged;
	const struct dfr_domain **dd_removed; /* the old version */
	size_t dd_nremoved;
	const struct dfr_proxy **dd_px_added;
	size_t dd_npx_added;
	const struct dfr_proxy **dd_px_changed;
	size_t dd_npx_changed;
	const struct dfr_proxy **dd_px_removed;
	size_t dd_npx_removed;
};

/* Fills *diff with what turns `old` (may be NULL: everything is added) into `new`. Both configs
 * must outlive the diff. DFR_OK or DFR_ENOMEM. */
int dfr_config_diff(const struct dfr_config *old, const struct dfr_config *new,
		    struct dfr_config_diff *diff);
bool dfr_config_diff_is_empty(const struct dfr_config_diff *diff);
void dfr_config_diff_free(struct dfr_config_diff *diff); /* frees the arrays, not the items */

#endif
