/*
 * Compiles a config (struct dfr_config) into the immutable lookup structure answer.c reads for
 * one generation: a hash of every owner name (lower-case wire form) over all zones, each node
 * holding its record sets pre-encoded in wire form, plus per zone the SOA, the GeoDNS location
 * table and the default answer.
 *
 * A name belongs to the zone of its longest matching apex. Ancestors of every owner up to the
 * apex exist as empty non-terminals, so that walking a query name up label by label finds the
 * closest encloser (RFC 4592) and its zone in one pass; a node whose first label is "*" is linked
 * from its parent as that parent's wildcard. Everything lives in a few large chunks freed at once
 * when the generation is retired. Compiling happens in the main thread, never on the query path.
 */
#include <stdlib.h>
#include <string.h>

#include "dnsd.h"
#include "error.h"
#include "log.h"

/* SOA constants: the Core has no notion of them; these are the usual sane values. */
#define SOA_TTL     3600u
#define SOA_REFRESH 3600u
#define SOA_RETRY   600u
#define SOA_EXPIRE  604800u
#define SOA_MINIMUM 300u

#define CHUNK_SIZE (256u * 1024)

struct zone_chunk {
	struct zone_chunk *zc_next;
	size_t zc_used, zc_size;
	max_align_t zc_data[];
};

static void *
zalloc(struct zone_db *db, size_t n)
{
	struct zone_chunk *c = db->zd_chunks;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (c == NULL || c->zc_size - c->zc_used < n) {
		size_t sz = n > CHUNK_SIZE ? n : CHUNK_SIZE;

		if ((c = malloc(sizeof(*c) + sz)) == NULL)
			return NULL;
		c->zc_size = sz;
		c->zc_used = 0;
		c->zc_next = db->zd_chunks;
		db->zd_chunks = c;
		db->zd_bytes += sizeof(*c) + sz;
	}
	p = (uint8_t *)c->zc_data + c->zc_used;
	c->zc_used += n;
	memset(p, 0, n);
	return p;
}

uint32_t
zone_hash(const uint8_t *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 16777619u;
	return h ^ (h >> 15);
}

struct znode *
zone_db_find(const struct zone_db *db, const uint8_t *name, size_t len)
{
	uint32_t h = zone_hash(name, len);
	size_t i = h & db->zd_mask;
	struct znode *n;

	while ((n = db->zd_table[i]) != NULL) {
		if (n->zn_hash == h && n->zn_namelen == len && memcmp(n->zn_name, name, len) == 0)
			return n;
		i = (i + 1) & db->zd_mask;
	}
	return NULL;
}

const struct zrrset *
zone_node_rrset(const struct znode *n, uint16_t type)
{
	for (unsigned i = 0; i < n->zn_nrrsets; i++)
		if (n->zn_rrsets[i].rs_type == type)
			return &n->zn_rrsets[i];
	return NULL;
}

/* ---- building ------------------------------------------------------------------------------ */

/* One record on its way into an rrset. */
struct pending {
	struct znode *p_node;
	uint16_t p_type;
	uint32_t p_order;
	const struct dfr_record *p_rec;
};

struct builder {
	struct zone_db *b_db;
	size_t b_cap; /* table slots */
	struct pending *b_pend;
	size_t b_npend, b_cappend;
	uint8_t b_buf[65536]; /* scratch for one rrset */
};

static int
table_grow(struct builder *b)
{
	struct zone_db *db = b->b_db;
	size_t ncap = b->b_cap ? b->b_cap * 2 : 1024;
	struct znode **t = calloc(ncap, sizeof(*t));

	if (t == NULL)
		return DFR_ENOMEM;
	for (size_t i = 0; i < b->b_cap; i++) {
		struct znode *n = db->zd_table[i];
		size_t j;

		if (n == NULL)
			continue;
		for (j = n->zn_hash & (ncap - 1); t[j] != NULL; j = (j + 1) & (ncap - 1))
			;
		t[j] = n;
	}
	db->zd_bytes += (ncap - b->b_cap) * sizeof(*t);
	free(db->zd_table);
	db->zd_table = t;
	db->zd_mask = ncap - 1;
	b->b_cap = ncap;
	return DFR_OK;
}

/* The node of `name`, created (with no rrsets) when absent. NULL on ENOMEM. */
static struct znode *
node_get(struct builder *b, const uint8_t *name, size_t len, struct zone *z, bool *created)
{
	struct zone_db *db = b->b_db;
	struct znode *n;
	uint8_t *copy;
	size_t i;

	*created = false;
	if ((n = zone_db_find(db, name, len)) != NULL)
		return n;
	if ((db->zd_nnodes + 1) * 2 > b->b_cap && table_grow(b) != DFR_OK)
		return NULL;
	if ((n = zalloc(db, sizeof(*n))) == NULL || (copy = zalloc(db, len)) == NULL)
		return NULL;
	memcpy(copy, name, len);
	n->zn_name = copy;
	n->zn_namelen = (uint8_t)len;
	n->zn_hash = zone_hash(name, len);
	n->zn_zone = z;
	for (i = n->zn_hash & db->zd_mask; db->zd_table[i] != NULL; i = (i + 1) & db->zd_mask)
		;
	db->zd_table[i] = n;
	db->zd_nnodes++;
	*created = true;
	return n;
}

static void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends a text name in wire form; 0 when invalid or out of room. */
static size_t
put_name(uint8_t *p, size_t room, const char *text)
{
	if (text == NULL)
		return 0;
	return wire_name_from_text(text, p, room);
}

/* Encodes the RDATA of one record into p (room bytes). Returns its length, or -1 when the record
 * cannot be encoded. */
static long
encode_rdata(const struct dfr_record *r, uint8_t *p, size_t room)
{
	size_t n, l;

	switch ((int)r->rec_type) {
	case DFR_RR_A:
		if (room < 4)
			return -1;
		memcpy(p, &r->rec_data.a, 4);
		return 4;
	case DFR_RR_AAAA:
		if (room < 16)
			return -1;
		memcpy(p, &r->rec_data.aaaa, 16);
		return 16;
	case DFR_RR_CNAME:
	case DFR_RR_NS:
		n = put_name(p, room, r->rec_data.target);
		return n ? (long)n : -1;
	case DFR_RR_MX:
		if (room < 3)
			return -1;
		wr16(p, r->rec_priority);
		n = put_name(p + 2, room - 2, r->rec_data.target);
		return n ? (long)(n + 2) : -1;
	case DFR_RR_SRV:
		if (room < 7)
			return -1;
		wr16(p, r->rec_priority);
		wr16(p + 2, r->rec_data.srv.weight);
		wr16(p + 4, r->rec_data.srv.port);
		n = put_name(p + 6, room - 6, r->rec_data.srv.target);
		return n ? (long)(n + 6) : -1;
	case DFR_RR_CAA: {
		const char *tag = r->rec_data.caa.tag, *val = r->rec_data.caa.value;
		size_t tl, vl;

		if (tag == NULL || val == NULL)
			return -1;
		tl = strlen(tag);
		vl = strlen(val);
		if (tl == 0 || tl > 255 || 2 + tl + vl > room || 2 + tl + vl > 65535)
			return -1;
		p[0] = r->rec_data.caa.flags;
		p[1] = (uint8_t)tl;
		memcpy(p + 2, tag, tl);
		memcpy(p + 2 + tl, val, vl);
		return (long)(2 + tl + vl);
	}
	case DFR_RR_TXT: {
		/* Split into character-strings of at most 255 bytes, bytes kept as given. */
		const char *v = r->rec_value != NULL ? r->rec_value : "";
		size_t vl = strlen(v), o = 0;

		n = 0;
		do {
			l = vl - o > 255 ? 255 : vl - o;
			if (n + 1 + l > room)
				return -1;
			p[n++] = (uint8_t)l;
			memcpy(p + n, v + o, l);
			n += l;
			o += l;
		} while (o < vl);
		return (long)n;
	}
	}
	return -1;
}

/* Encodes the records of pend[0..count) (same owner and type) into an rrset. Identical RDATA is
 * kept once; every record gets the smallest TTL of the set (RFC 2181 §5.2). */
static int
build_rrset(struct builder *b, const struct pending *pend, size_t count, uint16_t type,
            uint32_t ttl_override, struct zrrset *out)
{
	uint8_t *buf = b->b_buf;
	size_t len = 0;
	uint32_t ttl = UINT32_MAX;
	uint16_t nrr = 0;
	uint8_t *data;

	for (size_t i = 0; i < count; i++)
		if (pend[i].p_rec->rec_ttl < ttl)
			ttl = pend[i].p_rec->rec_ttl;
	if (ttl_override != UINT32_MAX)
		ttl = ttl_override;
	for (size_t i = 0; i < count; i++) {
		const struct dfr_record *r = pend[i].p_rec;
		long rdl;
		bool dup = false;

		if (sizeof(b->b_buf) - len < 12)
			break;
		rdl = encode_rdata(r, buf + len + 12, sizeof(b->b_buf) - len - 12);
		if (rdl < 0 || rdl > 65535) {
			dfr_log_warn("zone, record %s %s dropped (cannot encode value)",
			             r->rec_name ? r->rec_name : "?",
			             dfr_rr_type_name(r->rec_type) ? dfr_rr_type_name(r->rec_type)
			                                           : "?");
			continue;
		}
		/* Duplicate RDATA? Walk the records encoded so far. */
		for (size_t o = 0; o < len;) {
			uint16_t l = (uint16_t)(buf[o + 10] << 8 | buf[o + 11]);

			if (l == rdl && memcmp(buf + o + 12, buf + len + 12, (size_t)rdl) == 0) {
				dup = true;
				break;
			}
			o += 12u + l;
		}
		if (dup)
			continue;
		wr16(buf + len, 0xC00C);
		wr16(buf + len + 2, type);
		wr16(buf + len + 4, DNS_CLASS_IN);
		wr32(buf + len + 6, ttl);
		wr16(buf + len + 10, (uint16_t)rdl);
		len += 12 + (size_t)rdl;
		nrr++;
	}
	out->rs_type = type;
	out->rs_count = nrr;
	out->rs_len = (uint32_t)len;
	out->rs_data = NULL;
	if (nrr == 0)
		return DFR_OK;
	if ((data = zalloc(b->b_db, len)) == NULL)
		return DFR_ENOMEM;
	memcpy(data, buf, len);
	out->rs_data = data;
	return DFR_OK;
}

static int
pending_add(struct builder *b, struct znode *n, uint16_t type, const struct dfr_record *r)
{
	if (b->b_npend == b->b_cappend) {
		size_t ncap = b->b_cappend ? b->b_cappend * 2 : 256;
		struct pending *np = realloc(b->b_pend, ncap * sizeof(*np));

		if (np == NULL)
			return DFR_ENOMEM;
		b->b_pend = np;
		b->b_cappend = ncap;
	}
	b->b_pend[b->b_npend] = (struct pending){n, type, (uint32_t)b->b_npend, r};
	b->b_npend++;
	return DFR_OK;
}

static int
pending_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->p_node != y->p_node)
		return x->p_node < y->p_node ? -1 : 1;
	if (x->p_type != y->p_type)
		return x->p_type < y->p_type ? -1 : 1;
	return x->p_order < y->p_order ? -1 : x->p_order > y->p_order;
}

/* The zone whose apex is the longest suffix of `name`, or NULL. */
static struct zone *
zone_of(const struct zone_db *db, const uint8_t *name)
{
	uint8_t labels[DNS_MAX_LABELS];
	unsigned nl = wire_name_labels(name, labels);

	for (unsigned i = 0; i <= nl; i++) {
		const uint8_t *s = name + labels[i];
		size_t len = 0;
		struct znode *n;

		while (s[len] != 0)
			len += 1u + s[len];
		len++;
		if ((n = zone_db_find(db, s, len)) != NULL && (n->zn_flags & ZN_APEX))
			return n->zn_zone;
	}
	return NULL;
}

/* Adds one regular record: its node, the empty non-terminals above it, and a pending entry. */
static int
add_record(struct builder *b, struct zone *z, const struct dfr_record *r)
{
	uint8_t name[DNS_MAX_NAME], labels[DNS_MAX_LABELS];
	size_t len;
	unsigned nl;
	struct znode *n, *owner;
	bool created;

	if (r->rec_name == NULL ||
	    (len = wire_name_from_text(r->rec_name, name, sizeof(name))) == 0) {
		dfr_log_warn("zone, record %s dropped (not a valid owner name)",
		             r->rec_name ? r->rec_name : "(null)");
		return DFR_OK;
	}
	if (zone_of(b->b_db, name) != z) {
		dfr_log_warn("zone, record %s dropped (outside its zone or under a sub-zone)",
		             r->rec_name);
		return DFR_OK;
	}
	if ((owner = node_get(b, name, len, z, &created)) == NULL)
		return DFR_ENOMEM;
	/* Empty non-terminals up to the apex. */
	nl = wire_name_labels(name, labels);
	for (unsigned i = 1; i < nl; i++) {
		const uint8_t *s = name + labels[i];

		if (len - labels[i] <= z->z_apex->zn_namelen)
			break;
		if ((n = node_get(b, s, len - labels[i], z, &created)) == NULL)
			return DFR_ENOMEM;
		if (!created)
			break;
	}
	return pending_add(b, owner, (uint16_t)r->rec_type, r);
}

/* A location record on its way into a zone's table: slot = country key, or 0x10000 + continent. */
struct locpend {
	uint32_t lp_slot;
	uint16_t lp_type;
	uint32_t lp_order;
	const struct dfr_record *lp_rec;
};

static int
locpend_cmp(const void *a, const void *b)
{
	const struct locpend *x = a, *y = b;

	if (x->lp_slot != y->lp_slot)
		return x->lp_slot < y->lp_slot ? -1 : 1;
	if (x->lp_type != y->lp_type)
		return x->lp_type < y->lp_type ? -1 : 1;
	return x->lp_order < y->lp_order ? -1 : x->lp_order > y->lp_order;
}

/* Builds z_locs and z_cont from the domain's location records (TTL 60, as the Core sends). */
static int
build_locations(struct builder *b, struct zone *z, const struct dfr_domain *dom)
{
	struct locpend *lp;
	struct pending tmp[64];
	size_t n = 0, ncountries = 0;
	int rc = DFR_OK;

	if ((lp = calloc(dom->dom_nrecords + 1, sizeof(*lp))) == NULL)
		return DFR_ENOMEM;
	for (size_t i = 0; i < dom->dom_nrecords; i++) {
		const struct dfr_record *r = &dom->dom_records[i];
		uint32_t slot;
		int cont;

		if (r->rec_location == NULL)
			continue;
		if (r->rec_type != DFR_RR_A && r->rec_type != DFR_RR_AAAA)
			continue;
		if ((slot = geo_country_key(r->rec_location)) == 0) {
			if ((cont = geo_continent_from_name(r->rec_location)) < 0)
				continue; /* custom location: nothing maps a client to it */
			slot = 0x10000u + (uint32_t)cont;
		}
		lp[n++] = (struct locpend){slot, (uint16_t)r->rec_type, (uint32_t)i, r};
	}
	qsort(lp, n, sizeof(*lp), locpend_cmp);
	for (size_t i = 0; i < n; i++)
		if (lp[i].lp_slot < 0x10000u && (i == 0 || lp[i - 1].lp_slot != lp[i].lp_slot))
			ncountries++;
	if (ncountries > 0 &&
	    (z->z_locs = zalloc(b->b_db, ncountries * sizeof(*z->z_locs))) == NULL) {
		rc = DFR_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i, k = 0;
		int fam = lp[i].lp_type == DFR_RR_AAAA;
		struct zrrset *dst;

		while (j < n && lp[j].lp_slot == lp[i].lp_slot && lp[j].lp_type == lp[i].lp_type)
			j++;
		for (size_t m = i; m < j && k < 64; m++)
			tmp[k++] =
			        (struct pending){NULL, lp[m].lp_type, lp[m].lp_order, lp[m].lp_rec};
		if (lp[i].lp_slot >= 0x10000u) {
			dst = &z->z_cont[lp[i].lp_slot - 0x10000u][fam];
		} else {
			if (z->z_nlocs == 0 ||
			    z->z_locs[z->z_nlocs - 1].zl_country != lp[i].lp_slot)
				z->z_locs[z->z_nlocs++].zl_country = (uint16_t)lp[i].lp_slot;
			dst = &z->z_locs[z->z_nlocs - 1].zl_rr[fam];
		}
		if ((rc = build_rrset(b, tmp, k, lp[i].lp_type, DNS_GEO_TTL, dst)) != DFR_OK)
			goto out;
		i = j;
	}
out:
	free(lp);
	return rc;
}

/* Writes "<label>.<apex>" in wire form, or the bare apex when that would pass 255 bytes. */
static size_t
put_prefixed(uint8_t *p, const char *label, const struct znode *apex)
{
	size_t l = strlen(label);

	if (1 + l + apex->zn_namelen > DNS_MAX_NAME) {
		memcpy(p, apex->zn_name, apex->zn_namelen);
		return apex->zn_namelen;
	}
	p[0] = (uint8_t)l;
	memcpy(p + 1, label, l);
	memcpy(p + 1 + l, apex->zn_name, apex->zn_namelen);
	return 1 + l + apex->zn_namelen;
}

static int
build_soa(struct builder *b, struct zone *z, const struct dfr_domain *dom)
{
	const struct zrrset *ns = zone_node_rrset(z->z_apex, DNS_T_NS);
	uint8_t *p = b->b_buf, *rd;
	size_t n;

	wr16(p, 0xC00C);
	wr16(p + 2, DNS_T_SOA);
	wr16(p + 4, DNS_CLASS_IN);
	wr32(p + 6, SOA_TTL);
	rd = p + 12;
	if (ns != NULL && ns->rs_count > 0) {
		/* The first NS target, copied from its encoded RDATA. */
		uint16_t l = (uint16_t)(ns->rs_data[10] << 8 | ns->rs_data[11]);

		memcpy(rd, ns->rs_data + 12, l);
		n = l;
	} else {
		n = put_prefixed(rd, "ns1", z->z_apex);
	}
	n += put_prefixed(rd + n, "hostmaster", z->z_apex);
	wr32(rd + n, (uint32_t)b->b_db->zd_generation);
	wr32(rd + n + 4, SOA_REFRESH);
	wr32(rd + n + 8, SOA_RETRY);
	wr32(rd + n + 12, SOA_EXPIRE);
	wr32(rd + n + 16, SOA_MINIMUM);
	n += 20;
	wr16(p + 10, (uint16_t)n);
	if ((z->z_soa = zalloc(b->b_db, n + 12)) == NULL)
		return DFR_ENOMEM;
	memcpy(z->z_soa, p, n + 12);
	z->z_soa_len = (uint16_t)(n + 12);
	z->z_soa_ttl = SOA_TTL;
	z->z_neg_ttl = SOA_TTL < SOA_MINIMUM ? SOA_TTL : SOA_MINIMUM;
	(void)dom;
	return DFR_OK;
}

/* Turns the sorted pending records into each node's rrsets. */
static int
build_nodes(struct builder *b)
{
	struct pending *pd = b->b_pend;
	size_t i = 0;

	while (i < b->b_npend) {
		struct znode *n = pd[i].p_node;
		size_t end = i, ntypes = 0, k = 0;
		bool has_cname = false, has_other = false, geo = false;

		while (end < b->b_npend && pd[end].p_node == n) {
			if (end == i || pd[end].p_type != pd[end - 1].p_type)
				ntypes++;
			if (pd[end].p_type == DNS_T_CNAME)
				has_cname = true;
			else
				has_other = true;
			if (pd[end].p_rec->rec_proxied &&
			    (pd[end].p_type == DNS_T_A || pd[end].p_type == DNS_T_AAAA ||
			     pd[end].p_type == DNS_T_CNAME))
				geo = true;
			end++;
		}
		if (geo)
			n->zn_flags |= ZN_GEO;
		if ((n->zn_rrsets = zalloc(b->b_db, ntypes * sizeof(*n->zn_rrsets))) == NULL)
			return DFR_ENOMEM;
		while (i < end) {
			size_t j = i;
			uint16_t type = pd[i].p_type;
			bool proxied = false;

			while (j < end && pd[j].p_type == type) {
				proxied |= pd[j].p_rec->rec_proxied;
				j++;
			}
			if (type == DNS_T_CNAME &&
			    (has_other || (n->zn_flags & ZN_APEX) || proxied)) {
				/* A CNAME beside other data (or at the apex, beside the SOA) is not
				 * legal; the other data wins. A proxied CNAME names the origin
				 * httpd forwards to: the public answer is the GeoDNS one. */
				if (!proxied)
					dfr_log_warn("zone, CNAME at %s dropped (other data at the "
					             "name)",
					             pd[i].p_rec->rec_name);
				i = j;
				continue;
			}
			if (build_rrset(b, pd + i, j - i, type, UINT32_MAX, &n->zn_rrsets[k]) !=
			    DFR_OK)
				return DFR_ENOMEM;
			if (n->zn_rrsets[k].rs_count > 0)
				k++;
			i = j;
		}
		n->zn_nrrsets = (uint16_t)k;
		if (has_cname && k == 1 && n->zn_rrsets[0].rs_type == DNS_T_CNAME)
			n->zn_flags |= ZN_CNAME;
	}
	return DFR_OK;
}

struct zone_db *
zone_db_compile(const struct dfr_config *cfg)
{
	struct builder *b;
	struct zone_db *db;
	struct zone **zone_of_dom = NULL;
	size_t nd = cfg->cfg_ndomains;

	if ((b = calloc(1, sizeof(*b))) == NULL || (db = calloc(1, sizeof(*db))) == NULL) {
		free(b);
		dfr_log_err("zone, cannot compile generation %llu (out of memory)",
		            (unsigned long long)cfg->cfg_generation);
		return NULL;
	}
	b->b_db = db;
	db->zd_generation = cfg->cfg_generation;
	if (table_grow(b) != DFR_OK)
		goto nomem;
	if ((zone_of_dom = calloc(nd + 1, sizeof(*zone_of_dom))) == NULL)
		goto nomem;
	if (nd > 0 && (db->zd_zones = zalloc(db, nd * sizeof(*db->zd_zones))) == NULL)
		goto nomem;

	/* Apexes first, so each record can be placed in the zone of its longest apex. */
	for (size_t i = 0; i < nd; i++) {
		const struct dfr_domain *dom = cfg->cfg_domains[i];
		uint8_t name[DNS_MAX_NAME];
		size_t len =
		        wire_name_from_text(dom->dom_name ? dom->dom_name : "", name, sizeof(name));
		struct zone *z = &db->zd_zones[db->zd_nzones];
		struct znode *n;
		bool created;

		if (len <= 1) {
			dfr_log_warn("zone, domain %s dropped (not a valid zone name)",
			             dom->dom_name ? dom->dom_name : "(null)");
			continue;
		}
		if ((n = node_get(b, name, len, z, &created)) == NULL)
			goto nomem;
		if (!created) {
			dfr_log_warn(
			        "zone, domain %s (id %s) dropped (zone already served by another "
			        "domain)",
			        dom->dom_name, dom->dom_id ? dom->dom_id : "?");
			continue;
		}
		n->zn_flags |= ZN_APEX;
		z->z_apex = n;
		z->z_apex_nlabels = (uint8_t)(wire_name_labels(name, (uint8_t[DNS_MAX_LABELS]){0}));
		zone_of_dom[i] = z;
		db->zd_nzones++;
	}
	for (size_t i = 0; i < nd; i++) {
		const struct dfr_domain *dom = cfg->cfg_domains[i];

		if (zone_of_dom[i] == NULL)
			continue;
		for (size_t r = 0; r < dom->dom_nrecords; r++) {
			if (dom->dom_records[r].rec_location != NULL)
				continue;
			if (add_record(b, zone_of_dom[i], &dom->dom_records[r]) != DFR_OK)
				goto nomem;
		}
	}
	if (b->b_npend > 0) /* qsort(NULL, 0) is undefined */
		qsort(b->b_pend, b->b_npend, sizeof(*b->b_pend), pending_cmp);
	if (build_nodes(b) != DFR_OK)
		goto nomem;
	for (size_t i = 0; i < nd; i++) {
		struct zone *z = zone_of_dom[i];
		bool has_loc = false;

		if (z == NULL)
			continue;
		if (build_locations(b, z, cfg->cfg_domains[i]) != DFR_OK)
			goto nomem;
		if (build_soa(b, z, cfg->cfg_domains[i]) != DFR_OK)
			goto nomem;
		z->z_default[0] = zone_node_rrset(z->z_apex, DNS_T_A);
		z->z_default[1] = zone_node_rrset(z->z_apex, DNS_T_AAAA);
		has_loc = z->z_nlocs > 0;
		for (int c = 0; c < GEO_NCONT; c++)
			has_loc |= z->z_cont[c][0].rs_count > 0 || z->z_cont[c][1].rs_count > 0;
		if (has_loc)
			z->z_apex->zn_flags |= ZN_GEO;
	}
	/* Wildcards: link each "*.<name>" node from its parent. */
	for (size_t i = 0; i <= db->zd_mask; i++) {
		struct znode *n = db->zd_table[i], *parent;

		if (n == NULL || n->zn_namelen < 3 || n->zn_name[0] != 1 || n->zn_name[1] != '*')
			continue;
		if ((parent = zone_db_find(db, n->zn_name + 2, n->zn_namelen - 2u)) != NULL)
			parent->zn_wild = n;
	}
	free(zone_of_dom);
	free(b->b_pend);
	free(b);
	return db;
nomem:
	dfr_log_err("zone, cannot compile generation %llu (out of memory)",
	            (unsigned long long)cfg->cfg_generation);
	free(zone_of_dom);
	free(b->b_pend);
	free(b);
	zone_db_free(db);
	return NULL;
}

void
zone_db_free(struct zone_db *db)
{
	struct zone_chunk *c, *next;

	if (db == NULL)
		return;
	for (c = db->zd_chunks; c != NULL; c = next) {
		next = c->zc_next;
		free(c);
	}
	free(db->zd_table);
	free(db);
}
