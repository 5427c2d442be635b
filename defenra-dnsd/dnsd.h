/*
 * defenra-dnsd: the authoritative GeoDNS server. Central structs, then one prototype block per
 * file. The DNS logic (wire.c, zone.c, answer.c, geo.c) is plain functions over buffers that
 * never see a socket, so unit tests and the fuzzer drive it directly; udp.c, tcp.c, bus.c and
 * main.c are the glue around it.
 */
#ifndef DNSD_H
#define DNSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "env.h"

/* ---- protocol constants --------------------------------------------------------------------- */
#define DNS_HDR_LEN    12
#define DNS_MIN_UDP    512   /* a client without EDNS */
#define DNS_MAX_UDP    4096  /* the largest UDP answer we build, whatever the client says */
#define DNS_EDNS_SIZE  1232  /* the UDP size we advertise (DNS flag day 2020) */
#define DNS_MAX_MSG    65535 /* TCP */
#define DNS_MAX_NAME   255   /* wire form, root label included */
#define DNS_MAX_LABELS 128
#define DNS_MAX_CHAIN  8  /* CNAMEs followed inside a zone */
#define DNS_GEO_TTL    60 /* TTL of every GeoDNS answer (core-api.md) */

enum dns_type {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_SRV = 33,
	DNS_T_OPT = 41,
	DNS_T_IXFR = 251,
	DNS_T_AXFR = 252,
	DNS_T_ANY = 255,
	DNS_T_CAA = 257,
};

enum dns_rcode {
	DNS_RC_NOERROR = 0,
	DNS_RC_FORMERR = 1,
	DNS_RC_SERVFAIL = 2,
	DNS_RC_NXDOMAIN = 3,
	DNS_RC_NOTIMP = 4,
	DNS_RC_REFUSED = 5,
	DNS_RC_BADVERS = 16, /* extended: 1 in the OPT record's upper bits */
};

#define DNS_CLASS_IN  1
#define DNS_CLASS_ANY 255
#define DNS_F_QR      0x8000
#define DNS_F_AA      0x0400
#define DNS_F_TC      0x0200
#define DNS_F_RD      0x0100
#define DNS_F_CD      0x0010
#define DNS_OPT_ECS   8

/* ---- a parsed query (wire.c) ---------------------------------------------------------------- */
struct dns_query {
	uint16_t q_id;
	uint16_t q_flags;
	uint16_t q_type;
	uint16_t q_class;
	size_t q_question_len;        /* bytes of the question as asked: name, type, class */
	uint8_t q_name[DNS_MAX_NAME]; /* lower-case wire form */
	uint8_t q_namelen;
	uint8_t q_nlabels;                /* labels before the root */
	uint8_t q_labels[DNS_MAX_LABELS]; /* offset of each label in q_name */
	bool q_edns;
	uint8_t q_edns_version;
	uint16_t q_edns_size;
	bool q_do;
	bool q_ecs;
	uint8_t q_ecs_family;   /* 1 IPv4, 2 IPv6 */
	uint8_t q_ecs_source;   /* SOURCE PREFIX-LENGTH */
	uint8_t q_ecs_addr[16]; /* zero-filled beyond the prefix */
};

/* ---- the compiled zones of one generation (zone.c) ------------------------------------------- */

/* The records of one owner and type, pre-encoded: rs_count records of
 * [owner 2][type 2][class 2][ttl 4][rdlength 2][rdata], the owner being a compression pointer
 * placeholder that answer.c patches. */
struct zrrset {
	uint16_t rs_type;
	uint16_t rs_count;
	uint32_t rs_len;
	const uint8_t *rs_data;
};

enum znode_flag {
	ZN_APEX = 0x01,  /* the zone's apex */
	ZN_GEO = 0x02,   /* A/AAAA answered with GeoDNS */
	ZN_CNAME = 0x04, /* zn_rrsets[0] is a CNAME and the only set */
};

struct zone;

struct znode {
	const uint8_t *zn_name; /* lower-case wire form */
	uint32_t zn_hash;
	uint8_t zn_namelen;
	uint8_t zn_flags;
	uint16_t zn_nrrsets; /* 0 for an empty non-terminal */
	struct zone *zn_zone;
	struct znode *zn_wild; /* the "*.<this name>" node, or NULL */
	struct zrrset *zn_rrsets;
};

/* Continents as the GeoIP database codes them; the index into zone.z_cont. */
enum geo_continent {
	GEO_CONT_NONE = -1,
	GEO_CONT_EU = 0,
	GEO_CONT_NA,
	GEO_CONT_SA,
	GEO_CONT_AS,
	GEO_CONT_AF,
	GEO_CONT_OC,
	GEO_CONT_AN,
	GEO_NCONT,
};

/* One country location of a zone: its node addresses per family (0 = A, 1 = AAAA). */
struct zloc {
	uint16_t zl_country; /* two lower-case letters, first in the high byte */
	struct zrrset zl_rr[2];
};

struct zone {
	struct znode *z_apex;
	uint8_t z_apex_nlabels;
	uint8_t *z_soa; /* one record as in zrrset, TTL at offset 6 */
	uint16_t z_soa_len;
	uint32_t z_soa_ttl;
	uint32_t z_neg_ttl;  /* TTL of the SOA in a negative answer */
	struct zloc *z_locs; /* sorted by zl_country */
	size_t z_nlocs;
	struct zrrset z_cont[GEO_NCONT][2];
	const struct zrrset *z_default[2]; /* the apex's own A / AAAA, or NULL */
};

struct zone_chunk;

struct zone_db {
	uint64_t zd_generation;
	struct znode **zd_table; /* open addressing, zd_mask + 1 slots */
	size_t zd_mask;
	struct zone *zd_zones;
	size_t zd_nzones;
	size_t zd_nnodes;
	size_t zd_bytes; /* memory held, for the gauge */
	struct zone_chunk *zd_chunks;
};

/* ---- GeoIP (geo.c) ------------------------------------------------------------------------- */
struct geo_result {
	uint16_t gr_country; /* 0 when unknown */
	int8_t gr_cont;      /* enum geo_continent */
	uint8_t gr_scope;    /* ECS scope: prefix length the answer holds for */
};

#define GEO_CACHE_SIZE 4096 /* entries per worker, a power of two */

struct geo_cache_entry {
	uint64_t ge_key_hi, ge_key_lo; /* 0/0 = empty */
	struct geo_result ge_res;
};

struct geo_cache {
	struct geo_cache_entry gc_e[GEO_CACHE_SIZE];
};

/* ---- statistics (stats.c) ------------------------------------------------------------------ */
enum stats_qtype {
	ST_T_A = 0,
	ST_T_AAAA,
	ST_T_CNAME,
	ST_T_MX,
	ST_T_TXT,
	ST_T_NS,
	ST_T_SRV,
	ST_T_CAA,
	ST_T_SOA,
	ST_T_ANY,
	ST_T_OTHER,
	ST_NTYPES,
};
enum stats_rcode {
	ST_RC_NOERROR = 0,
	ST_RC_FORMERR,
	ST_RC_SERVFAIL,
	ST_RC_NXDOMAIN,
	ST_RC_NOTIMP,
	ST_RC_REFUSED,
	ST_RC_BADVERS,
	ST_NRCODES,
};
/* Location slots of the GeoDNS counter: 26*26 countries, then continents, then default. */
#define ST_GEO_COUNTRIES (26 * 26)
#define ST_GEO_DEFAULT   (ST_GEO_COUNTRIES + GEO_NCONT)
#define ST_GEO_SLOTS     (ST_GEO_DEFAULT + 1)

/* Per-thread counters: plain integers on the hot path, added to the shared registry by
 * stats_flush(). */
struct dnsd_stats {
	uint64_t st_queries[ST_NTYPES][ST_NRCODES];
	uint64_t st_geo[ST_GEO_SLOTS];
	uint64_t st_cache_hits, st_cache_misses;
	uint64_t st_truncated, st_malformed, st_dropped;
	uint64_t st_tcp_queries, st_udp_queries;
	bool st_dirty;
};

/* ---- one answering context per thread (answer.c) --------------------------------------------- */
struct answer_ctx {
	struct dns_query ac_q;
	struct geo_cache ac_geo;
	struct dnsd_stats ac_stats;
};

/* ---- wire.c ---------------------------------------------------------------------------------- */
/* Parses a query. Returns DNS_RC_NOERROR with *q filled, DNS_RC_FORMERR when the header was read
 * but the rest is malformed (q->q_id and q->q_flags are then valid), or -1 when the packet must
 * be dropped (too short for a header, or a response). */
int wire_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q);
/* Converts a text name ("www.example.com", lower-case, no trailing dot; "" or "." = root) to
 * wire form, lower-casing. Returns the wire length, or 0 when the name is not valid. */
size_t wire_name_from_text(const char *text, uint8_t *out, size_t cap);
/* Fills labels[] with the offset of each label of a wire name; returns their count. */
unsigned wire_name_labels(const uint8_t *name, uint8_t *labels);

/* ---- zone.c ---------------------------------------------------------------------------------- */
/* Compiles `cfg` into a new immutable zone database for generation cfg->cfg_generation. The
 * caller owns the result (zone_db_free). NULL on ENOMEM (logged). Invalid items are skipped
 * with a logged reason. */
struct zone_db *zone_db_compile(const struct dfr_config *cfg);
void zone_db_free(struct zone_db *db); /* NULL is fine */
/* The node of a lower-case wire name, or NULL. */
struct znode *zone_db_find(const struct zone_db *db, const uint8_t *name, size_t len);
uint32_t zone_hash(const uint8_t *name, size_t len);
const struct zrrset *zone_node_rrset(const struct znode *n, uint16_t type);

/* ---- geo.c ----------------------------------------------------------------------------------- */
/* Opens the MaxMind database at `path`; a missing or unreadable file leaves GeoDNS on the default
 * answer and logs one warning. Call once before the workers start. */
void geo_open(const char *path);
void geo_close(void);
bool geo_enabled(void);
/* Locates an address (family 1 = IPv4 4 bytes, 2 = IPv6 16 bytes) whose first `prefix` bits are
 * meaningful, through the thread's cache. */
struct geo_result geo_locate(struct geo_cache *gc, struct dnsd_stats *st, int family,
                             const uint8_t *addr, unsigned prefix);
/* The rrset of `zone` for family fam (0 A, 1 AAAA) at the location `loc` along the chain country
 * -> continent -> neighbours; NULL when none applies (the caller uses the default). *slot gets
 * the location's stats slot. */
const struct zrrset *geo_choose(const struct zone *z, const struct geo_result *loc, int fam,
                                unsigned *slot);
/* The country's four neighbours of go-agent-compat.md, in order; NULL if it has no list. */
const char *const *geo_neighbours(uint16_t country);
uint16_t geo_country_key(const char *code);    /* "de" -> key, 0 if not two letters */
int geo_continent_from_name(const char *name); /* "europe" -> GEO_CONT_EU, else -1 */
/* Text of a stats slot ("de", "europe", "default") into buf. */
const char *geo_slot_name(unsigned slot, char *buf, size_t len);

/* ---- answer.c -------------------------------------------------------------------------------- */
/* Builds the answer to one query. `db` may be NULL (no config yet: REFUSED). `from` is the
 * client's address (ECS takes precedence for GeoDNS). `max` is the room for the answer: 65535
 * over TCP; over UDP the answer is cut to the client's limit and TC set. Returns the answer
 * length, or 0 when the query is to be dropped. Never allocates. */
size_t answer_query(struct answer_ctx *ac, const struct zone_db *db, const uint8_t *pkt, size_t len,
                    const struct sockaddr *from, bool tcp, uint8_t *out, size_t max);
void answer_ctx_init(struct answer_ctx *ac);

/* ---- stats.c --------------------------------------------------------------------------------- */
void stats_init(void); /* registers the metrics; once at start */
/* Adds the thread's counters to the registry and zeroes them. */
void stats_flush(struct dnsd_stats *st);
void stats_set_generation(uint64_t gen, size_t nzones, size_t bytes);
void stats_tcp_conns(int delta);
int stats_type_index(uint16_t qtype);
int stats_rcode_index(int rcode);

/* ---- udp.c ----------------------------------------------------------------------------------- */
struct udp_pool;
/* Opens `nworkers` threads, each with its own SO_REUSEPORT socket on every address. NULL after
 * logging why. */
struct udp_pool *udp_start(const struct dfr_addr_list *addrs, unsigned nworkers);
void udp_stop(struct udp_pool *p); /* joins the workers; NULL is fine */

/* ---- tcp.c ----------------------------------------------------------------------------------- */
struct event_base;
struct tcp_server;
struct tcp_server *tcp_start(struct event_base *base, const struct dfr_addr_list *addrs);
void tcp_stop(struct tcp_server *ts); /* NULL is fine */

struct dfr_admin;

/* ---- bus.c ----------------------------------------------------------------------------------- */
/* The zone database in force, for RCU readers (inside rcu_read_lock). */
const struct zone_db *bus_current(void);
/* True once a first config is compiled: before it every answer would be REFUSED, so the
 * transports leave queries waiting in their sockets (socket activation loses none). */
bool bus_ready(void);
/* Starts the subscriber; configs arrive in the loop's thread. */
int bus_start(struct event_base *base, struct dfr_admin *adm);
void bus_stop(void);
/* Replaces the database (tests and bus): waits for readers, frees the old one. Takes db. */
void bus_swap(struct zone_db *db);

#endif
