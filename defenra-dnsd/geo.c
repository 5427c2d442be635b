/*
 * GeoDNS for dnsd: where a client is (MaxMind database through libmaxminddb, behind a bounded
 * per-thread cache), and which of a zone's location records answers it.
 *
 * The choice is the Go agent's, made deterministic (go-agent-compat.md): the country's entry,
 * else the continent's entry (when the Core sends continent locations), else the first of the
 * country's fixed neighbours that has an entry, else nothing (the caller answers the default).
 * A database record without a country stands for its continent's usual country (EU -> de, NA ->
 * us, ...). The cache is keyed by the /24 (IPv4) or /56 (IPv6) prefix, direct-mapped, one per
 * thread so the hot path takes no lock; its size is fixed (GEO_CACHE_SIZE). The database is
 * opened once at start and only read afterwards (libmaxminddb lookups are thread-safe).
 */
#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dnsd.h"
#include "log.h"

static MMDB_s geo_db;
static bool geo_ok;

static const char *const cont_names[GEO_NCONT] = {
        "europe", "north-america", "south-america", "asia", "africa", "oceania", "antarctica",
};
static const char cont_codes[GEO_NCONT][3] = {"EU", "NA", "SA", "AS", "AF", "OC", "AN"};
/* The country a continent stands for when the database gives no country (the Go agent's). */
static const char *const cont_country[GEO_NCONT] = {"de", "us", "br", "sg", "za", "au", NULL};

/* go-agent-compat.md, in the Go agent's order. */
static const char *const neighbour_table[][5] = {
        {"us", "ca", "mx", "gb", "de"}, {"ca", "us", "mx", "gb", "de"},
        {"mx", "us", "ca", "br", "cl"}, {"br", "ar", "cl", "us", "mx"},
        {"ar", "br", "cl", "mx", "us"}, {"cl", "ar", "br", "mx", "us"},
        {"co", "br", "ar", "mx", "cl"}, {"gb", "de", "fr", "nl", "us"},
        {"de", "nl", "fr", "gb", "pl"}, {"fr", "de", "gb", "es", "it"},
        {"it", "fr", "de", "es", "tr"}, {"es", "fr", "it", "br", "mx"},
        {"nl", "de", "gb", "fr", "pl"}, {"pl", "de", "ua", "ru", "nl"},
        {"ua", "pl", "ru", "tr", "de"}, {"ru", "ua", "pl", "kz", "cn"},
        {"cn", "jp", "kr", "sg", "in"}, {"jp", "kr", "cn", "sg", "au"},
        {"kr", "jp", "cn", "sg", "au"}, {"in", "sg", "th", "id", "ae"},
        {"id", "sg", "th", "au", "in"}, {"th", "sg", "id", "in", "cn"},
        {"sg", "id", "th", "in", "au"}, {"au", "nz", "sg", "id", "jp"},
        {"nz", "au", "sg", "id", "jp"}, {"za", "eg", "ng", "ae", "gb"},
        {"eg", "ae", "tr", "za", "ng"}, {"ng", "za", "eg", "br", "fr"},
        {"ae", "ir", "tr", "in", "eg"}, {"tr", "ae", "ir", "eg", "it"},
        {"ir", "ae", "tr", "kz", "in"}, {"kz", "ru", "cn", "ir", "tr"},
};
#define NNEIGH (sizeof(neighbour_table) / sizeof(neighbour_table[0]))

uint16_t
geo_country_key(const char *code)
{
	unsigned char a, b;

	if (code == NULL || code[0] == '\0' || code[1] == '\0' || code[2] != '\0')
		return 0;
	a = (unsigned char)(code[0] | 0x20);
	b = (unsigned char)(code[1] | 0x20);
	if (a < 'a' || a > 'z' || b < 'a' || b > 'z')
		return 0;
	return (uint16_t)(a << 8 | b);
}

int
geo_continent_from_name(const char *name)
{
	for (int i = 0; i < GEO_NCONT; i++)
		if (name != NULL && strcmp(name, cont_names[i]) == 0)
			return i;
	return -1;
}

const char *const *
geo_neighbours(uint16_t country)
{
	for (size_t i = 0; i < NNEIGH; i++)
		if (geo_country_key(neighbour_table[i][0]) == country)
			return &neighbour_table[i][1];
	return NULL;
}

const char *
geo_slot_name(unsigned slot, char *buf, size_t len)
{
	if (slot < ST_GEO_COUNTRIES)
		snprintf(buf, len, "%c%c", 'a' + slot / 26, 'a' + slot % 26);
	else if (slot < ST_GEO_DEFAULT)
		snprintf(buf, len, "%s", cont_names[slot - ST_GEO_COUNTRIES]);
	else
		snprintf(buf, len, "default");
	return buf;
}

static unsigned
country_slot(uint16_t key)
{
	return (unsigned)((key >> 8) - 'a') * 26u + (unsigned)((key & 0xFF) - 'a');
}

void
geo_open(const char *path)
{
	int rc;

	if (path == NULL || path[0] == '\0') {
		dfr_log_warn("geo, no GeoIP database configured (GeoDNS answers the default)");
		return;
	}
	if ((rc = MMDB_open(path, MMDB_MODE_MMAP, &geo_db)) != MMDB_SUCCESS) {
		dfr_log_warn("geo, GeoIP database %s not used, GeoDNS answers the default (%s)",
		             path, MMDB_strerror(rc));
		return;
	}
	geo_ok = true;
	dfr_log_info("geo, GeoIP database %s opened (%s, built %llu)", path,
	             geo_db.metadata.database_type,
	             (unsigned long long)geo_db.metadata.build_epoch);
}

void
geo_close(void)
{
	if (geo_ok)
		MMDB_close(&geo_db);
	geo_ok = false;
}

bool
geo_enabled(void)
{
	return geo_ok;
}

/* The two-letter code at `path` of an entry, as a key; 0 if absent. */
static uint16_t
entry_code(MMDB_entry_s *e, const char *a, const char *b, char *out2)
{
	MMDB_entry_data_s d;

	if (MMDB_get_value(e, &d, a, b, NULL) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return 0;
	if (out2 != NULL)
		memcpy(out2, d.utf8_string, 2);
	{
		char c[3] = {d.utf8_string[0], d.utf8_string[1], 0};

		return geo_country_key(c);
	}
}

static struct geo_result
lookup_db(int family, const uint8_t *addr, unsigned prefix)
{
	struct geo_result r = {0, GEO_CONT_NONE, 0};
	struct sockaddr_storage ss;
	MMDB_lookup_result_s res;
	int err;
	char cc[2];

	memset(&ss, 0, sizeof(ss));
	if (family == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, addr, 16);
	}
	res = MMDB_lookup_sockaddr(&geo_db, (struct sockaddr *)&ss, &err);
	if (err != MMDB_SUCCESS || !res.found_entry) {
		/* Unknown: the answer holds for the network the lookup fell in. */
		r.gr_scope = (uint8_t)(res.netmask > 0 ? res.netmask : prefix);
	} else {
		uint16_t cont;

		r.gr_country = entry_code(&res.entry, "country", "iso_code", NULL);
		if (r.gr_country == 0)
			r.gr_country =
			        entry_code(&res.entry, "registered_country", "iso_code", NULL);
		if (entry_code(&res.entry, "continent", "code", cc) != 0) {
			cont = 0;
			for (int i = 0; i < GEO_NCONT; i++)
				if (cc[0] == cont_codes[i][0] && cc[1] == cont_codes[i][1])
					r.gr_cont = (int8_t)i;
			(void)cont;
		}
		r.gr_scope = (uint8_t)res.netmask;
	}
	/* An IPv4 lookup in an IPv6 tree counts the 96 bits of the ::/96 prefix. */
	if (family == 1 && geo_db.metadata.ip_version == 6 && r.gr_scope >= 96)
		r.gr_scope = (uint8_t)(r.gr_scope - 96);
	return r;
}

struct geo_result
geo_locate(struct geo_cache *gc, struct dnsd_stats *st, int family, const uint8_t *addr,
           unsigned prefix)
{
	struct geo_result r = {0, GEO_CONT_NONE, 0};
	uint8_t a[16] = {0};
	unsigned bits = family == 1 ? 24 : 56, nbytes;
	uint64_t hi = 0, lo = 0;
	struct geo_cache_entry *e;

	if (!geo_ok)
		return r;
	if (prefix < bits)
		bits = prefix;
	nbytes = (bits + 7) / 8;
	memcpy(a, addr, nbytes);
	if (bits % 8)
		a[nbytes - 1] &= (uint8_t)(0xFF << (8 - bits % 8));
	/* Key: family, prefix length and the masked address bytes (at most 7). */
	for (unsigned i = 0; i < 7; i++)
		lo = lo << 8 | a[i];
	hi = (uint64_t)family << 8 | bits | 1u << 16;
	e = &gc->gc_e[(lo * 0x9E3779B97F4A7C15ull + hi) >> 52 & (GEO_CACHE_SIZE - 1)];
	if (e->ge_key_hi == hi && e->ge_key_lo == lo) {
		st->st_cache_hits++;
		return e->ge_res;
	}
	st->st_cache_misses++;
	r = lookup_db(family, a, bits);
	/* The answer holds for the lookup's granularity at most. */
	if (r.gr_scope > bits)
		r.gr_scope = (uint8_t)bits;
	e->ge_key_hi = hi;
	e->ge_key_lo = lo;
	e->ge_res = r;
	return r;
}

static const struct zloc *
find_loc(const struct zone *z, uint16_t key)
{
	size_t lo = 0, hi = z->z_nlocs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (z->z_locs[mid].zl_country == key)
			return &z->z_locs[mid];
		if (z->z_locs[mid].zl_country < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct zrrset *
geo_choose(const struct zone *z, const struct geo_result *loc, int fam, unsigned *slot)
{
	uint16_t country = loc->gr_country;
	int cont = loc->gr_cont;
	const struct zloc *zl;
	const char *const *nb;

	if (country == 0 && cont >= 0 && cont_country[cont] != NULL)
		country = geo_country_key(cont_country[cont]);
	if (country != 0 && (zl = find_loc(z, country)) != NULL && zl->zl_rr[fam].rs_count > 0) {
		*slot = country_slot(country);
		return &zl->zl_rr[fam];
	}
	if (cont >= 0 && z->z_cont[cont][fam].rs_count > 0) {
		*slot = ST_GEO_COUNTRIES + (unsigned)cont;
		return &z->z_cont[cont][fam];
	}
	if (country != 0 && (nb = geo_neighbours(country)) != NULL) {
		for (int i = 0; i < 4; i++) {
			uint16_t k = geo_country_key(nb[i]);

			if ((zl = find_loc(z, k)) != NULL && zl->zl_rr[fam].rs_count > 0) {
				*slot = country_slot(k);
				return &zl->zl_rr[fam];
			}
		}
	}
	*slot = ST_GEO_DEFAULT;
	return NULL;
}
