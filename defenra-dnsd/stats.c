/*
 * dnsd's metrics (served by the admin endpoint's /metrics and /stats): queries by type and
 * rcode, GeoDNS answers by location, GeoIP cache hits and misses, truncations, malformed
 * packets, TCP connections, the config generation and the size of the zone database.
 *
 * Worker threads count into plain per-thread integers (struct dnsd_stats) and add them to the
 * shared registry now and then with stats_flush(), so a query costs no atomic operation and no
 * shared cache line. Series are registered at start (or on the first flush of a new location
 * label); their pointers are kept in static tables.
 */
#include <stdio.h>
#include <string.h>

#include "dnsd.h"
#include "metrics.h"

static const char *const type_names[ST_NTYPES] = {
        "A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "SOA", "ANY", "other",
};
static const char *const rcode_names[ST_NRCODES] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS",
};

static struct dfr_metric *m_queries[ST_NTYPES][ST_NRCODES];
static struct dfr_metric *m_geo[ST_GEO_SLOTS]; /* registered on first use */
static struct dfr_metric *m_hits, *m_misses, *m_ratio, *m_trunc, *m_malformed, *m_dropped;
static struct dfr_metric *m_tcp_q, *m_udp_q, *m_tcp_conns, *m_zones, *m_bytes;

int
stats_type_index(uint16_t qtype)
{
	switch (qtype) {
	case DNS_T_A:
		return ST_T_A;
	case DNS_T_AAAA:
		return ST_T_AAAA;
	case DNS_T_CNAME:
		return ST_T_CNAME;
	case DNS_T_MX:
		return ST_T_MX;
	case DNS_T_TXT:
		return ST_T_TXT;
	case DNS_T_NS:
		return ST_T_NS;
	case DNS_T_SRV:
		return ST_T_SRV;
	case DNS_T_CAA:
		return ST_T_CAA;
	case DNS_T_SOA:
		return ST_T_SOA;
	case DNS_T_ANY:
		return ST_T_ANY;
	}
	return ST_T_OTHER;
}

int
stats_rcode_index(int rcode)
{
	switch (rcode) {
	case DNS_RC_NOERROR:
		return ST_RC_NOERROR;
	case DNS_RC_FORMERR:
		return ST_RC_FORMERR;
	case DNS_RC_NXDOMAIN:
		return ST_RC_NXDOMAIN;
	case DNS_RC_NOTIMP:
		return ST_RC_NOTIMP;
	case DNS_RC_REFUSED:
		return ST_RC_REFUSED;
	case DNS_RC_BADVERS:
		return ST_RC_BADVERS;
	}
	return ST_RC_SERVFAIL;
}

void
stats_init(void)
{
	char labels[64];

	for (int t = 0; t < ST_NTYPES; t++)
		for (int r = 0; r < ST_NRCODES; r++) {
			snprintf(labels, sizeof(labels), "type=\"%s\",rcode=\"%s\"", type_names[t],
			         rcode_names[r]);
			m_queries[t][r] = dfr_counter("dnsd_queries_total", labels,
			                              "DNS queries answered, by type and rcode");
		}
	m_hits = dfr_counter("dnsd_geoip_cache_hits_total", NULL,
	                     "GeoIP look-ups served by the cache");
	m_misses = dfr_counter("dnsd_geoip_cache_misses_total", NULL,
	                       "GeoIP look-ups that went to the database");
	m_ratio = dfr_gauge("dnsd_geoip_cache_hit_ratio_permille", NULL,
	                    "GeoIP cache hits per thousand look-ups, since start");
	m_trunc = dfr_counter("dnsd_truncated_total", NULL,
	                      "UDP answers cut to the client's limit (TC)");
	m_malformed = dfr_counter("dnsd_malformed_total", NULL,
	                          "malformed packets (answered FORMERR or dropped)");
	m_dropped = dfr_counter("dnsd_dropped_total", NULL, "packets dropped without an answer");
	m_udp_q = dfr_counter("dnsd_udp_queries_total", NULL, "queries received over UDP");
	m_tcp_q = dfr_counter("dnsd_tcp_queries_total", NULL, "queries received over TCP");
	m_tcp_conns = dfr_gauge("dnsd_tcp_connections", NULL, "open TCP connections");
	m_zones = dfr_gauge("dnsd_zones", NULL, "zones served");
	m_bytes = dfr_gauge("dnsd_zone_db_bytes", NULL, "memory held by the zone database");
}

void
stats_flush(struct dnsd_stats *st)
{
	int64_t hits, misses;

	for (int t = 0; t < ST_NTYPES; t++)
		for (int r = 0; r < ST_NRCODES; r++)
			if (st->st_queries[t][r] != 0) {
				dfr_metric_add(m_queries[t][r], (int64_t)st->st_queries[t][r]);
				st->st_queries[t][r] = 0;
			}
	for (unsigned s = 0; s < ST_GEO_SLOTS; s++) {
		struct dfr_metric *m;

		if (st->st_geo[s] == 0)
			continue;
		if ((m = __atomic_load_n(&m_geo[s], __ATOMIC_ACQUIRE)) == NULL) {
			char name[24], labels[48];

			snprintf(labels, sizeof(labels), "location=\"%s\"",
			         geo_slot_name(s, name, sizeof(name)));
			m = dfr_counter("dnsd_geodns_answers_total", labels,
			                "GeoDNS answers, by the location that answered");
			__atomic_store_n(&m_geo[s], m, __ATOMIC_RELEASE);
		}
		dfr_metric_add(m, (int64_t)st->st_geo[s]);
		st->st_geo[s] = 0;
	}
	dfr_metric_add(m_hits, (int64_t)st->st_cache_hits);
	dfr_metric_add(m_misses, (int64_t)st->st_cache_misses);
	dfr_metric_add(m_trunc, (int64_t)st->st_truncated);
	dfr_metric_add(m_malformed, (int64_t)st->st_malformed);
	dfr_metric_add(m_dropped, (int64_t)st->st_dropped);
	dfr_metric_add(m_udp_q, (int64_t)st->st_udp_queries);
	dfr_metric_add(m_tcp_q, (int64_t)st->st_tcp_queries);
	if (st->st_cache_hits + st->st_cache_misses > 0) {
		hits = dfr_metric_value(m_hits);
		misses = dfr_metric_value(m_misses);
		dfr_metric_set(m_ratio, hits + misses > 0 ? hits * 1000 / (hits + misses) : 0);
	}
	st->st_cache_hits = st->st_cache_misses = st->st_truncated = 0;
	st->st_malformed = st->st_dropped = st->st_udp_queries = st->st_tcp_queries = 0;
	st->st_dirty = false;
}

void
stats_set_generation(uint64_t gen, size_t nzones, size_t bytes)
{
	(void)gen; /* the admin endpoint serves dnsd_config_generation */
	dfr_metric_set(m_zones, (int64_t)nzones);
	dfr_metric_set(m_bytes, (int64_t)bytes);
}

void
stats_tcp_conns(int delta)
{
	dfr_metric_add(m_tcp_conns, delta);
}
