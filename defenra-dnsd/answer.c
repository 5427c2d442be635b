/*
 * The DNS logic of dnsd as one pure function: query bytes + client address + zone database ->
 * answer bytes. It never sees a socket (udp.c and tcp.c carry the bytes) and never allocates: the
 * parsed query, the GeoIP cache and the counters live in the caller's per-thread answer_ctx and
 * the answer is written into the caller's buffer.
 *
 * The question is copied from the query as asked (case kept); every owner name in the answer is
 * a compression pointer into it (or into a CNAME target written earlier), so pre-encoded record
 * sets are copied whole and only their owner pointers and, for GeoDNS, their TTLs are patched.
 * An answer that does not fit the client's UDP limit is cut back to the question (and OPT) with
 * TC set, so the client retries over TCP.
 */
#include <netinet/in.h>
#include <string.h>

#include "dnsd.h"

struct wbuf {
	uint8_t *w_p;
	size_t w_len;
	size_t w_cap;
	uint16_t w_an, w_ns;
	bool w_full;
};

static inline void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Copies an rrset with every owner set to the pointer `owner`; ttl != UINT32_MAX replaces the
 * TTLs. Returns the offset of the first record's RDATA (for a CNAME target), 0 if it did not
 * fit. */
static size_t
put_rrset(struct wbuf *w, const uint8_t *data, size_t len, unsigned count, uint16_t owner,
          uint32_t ttl, bool authority)
{
	uint8_t *p;
	size_t start = w->w_len;

	if (w->w_full || w->w_cap - w->w_len < len) {
		w->w_full = true;
		return 0;
	}
	p = w->w_p + start;
	memcpy(p, data, len);
	for (size_t o = 0; o < len;) {
		wr16(p + o, (uint16_t)(0xC000 | owner));
		if (ttl != UINT32_MAX)
			wr32(p + o + 6, ttl);
		o += 12u + (size_t)(p[o + 10] << 8 | p[o + 11]);
	}
	w->w_len += len;
	if (authority)
		w->w_ns = (uint16_t)(w->w_ns + count);
	else
		w->w_an = (uint16_t)(w->w_an + count);
	return start + 12;
}

static void
put_soa(struct wbuf *w, const struct zone *z, uint16_t apex_ptr, bool authority)
{
	if (z->z_soa == NULL)
		return;
	put_rrset(w, z->z_soa, z->z_soa_len, 1, apex_ptr, authority ? z->z_neg_ttl : z->z_soa_ttl,
	          authority);
}

/* Finds `name` or, failing that, its closest encloser. *exact tells which. NULL when no zone
 * holds the name. */
static struct znode *
lookup(const struct zone_db *db, const uint8_t *name, size_t len, const uint8_t *labels,
       unsigned nlabels, bool *exact)
{
	struct znode *n;

	if ((n = zone_db_find(db, name, len)) != NULL) {
		*exact = true;
		return n;
	}
	*exact = false;
	for (unsigned i = 1; i <= nlabels; i++)
		if ((n = zone_db_find(db, name + labels[i], len - labels[i])) != NULL)
			return n;
	return NULL;
}

/* The client's address for GeoDNS: ECS when present (and not /0), else the source. */
static struct geo_result
locate(struct answer_ctx *ac, const struct dns_query *q, const struct sockaddr *from)
{
	struct geo_result none = {0, GEO_CONT_NONE, 0};

	if (q->q_ecs && q->q_ecs_source > 0)
		return geo_locate(&ac->ac_geo, &ac->ac_stats, q->q_ecs_family, q->q_ecs_addr,
		                  q->q_ecs_source);
	if (from == NULL)
		return none;
	if (from->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)from;

		return geo_locate(&ac->ac_geo, &ac->ac_stats, 1, (const uint8_t *)&s4->sin_addr,
		                  32);
	}
	if (from->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)from;
		const uint8_t *a = (const uint8_t *)&s6->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return geo_locate(&ac->ac_geo, &ac->ac_stats, 1, a + 12, 32);
		return geo_locate(&ac->ac_geo, &ac->ac_stats, 2, a, 128);
	}
	return none;
}

/* Writes the OPT record (with the ECS option echoed when the query had one). */
static void
put_opt(struct wbuf *w, const struct dns_query *q, unsigned ext_rcode, uint8_t scope)
{
	uint8_t *p = w->w_p + w->w_len;
	size_t alen = (q->q_ecs_source + 7u) / 8u, rdlen = q->q_ecs ? 8 + alen : 0;

	/* Room was reserved by the caller. */
	p[0] = 0;
	wr16(p + 1, DNS_T_OPT);
	wr16(p + 3, DNS_EDNS_SIZE);
	p[5] = (uint8_t)ext_rcode;
	p[6] = 0; /* version */
	wr16(p + 7, q->q_do ? 0x8000 : 0);
	wr16(p + 9, (uint16_t)rdlen);
	if (q->q_ecs) {
		wr16(p + 11, DNS_OPT_ECS);
		wr16(p + 13, (uint16_t)(4 + alen));
		wr16(p + 15, q->q_ecs_family);
		p[17] = q->q_ecs_source;
		p[18] = scope;
		memcpy(p + 19, q->q_ecs_addr, alen);
	}
	w->w_len += 11 + rdlen;
}

static size_t
opt_size(const struct dns_query *q)
{
	if (!q->q_edns)
		return 0;
	return 11 + (q->q_ecs ? 8 + (q->q_ecs_source + 7u) / 8u : 0);
}

static void
count(struct answer_ctx *ac, uint16_t qtype, int rcode)
{
	ac->ac_stats.st_queries[stats_type_index(qtype)][stats_rcode_index(rcode)]++;
	ac->ac_stats.st_dirty = true;
}

/* A header-only answer (FORMERR, NOTIMP for a query we did not parse further). */
static size_t
answer_bare(struct answer_ctx *ac, const struct dns_query *q, int rcode, uint8_t *out, size_t max)
{
	if (max < DNS_HDR_LEN)
		return 0;
	memset(out, 0, DNS_HDR_LEN);
	wr16(out, q->q_id);
	wr16(out + 2, (uint16_t)(DNS_F_QR | (q->q_flags & (0x7800 | DNS_F_RD)) | rcode));
	count(ac, 0, rcode);
	return DNS_HDR_LEN;
}

/* The answer, authority and rcode of a query that parsed, into w (after the question).
 * Returns the rcode; *scope gets the ECS scope. */
static int
resolve(struct answer_ctx *ac, const struct zone_db *db, const struct dns_query *q,
        const struct sockaddr *from, struct wbuf *w, uint8_t *scope, bool *aa)
{
	const uint8_t *name = q->q_name;
	size_t len = q->q_namelen;
	uint8_t labels_buf[DNS_MAX_LABELS];
	const uint8_t *labels = q->q_labels;
	unsigned nlabels = q->q_nlabels;
	uint16_t owner = DNS_HDR_LEN, apex_ptr = 0, qtype = q->q_type;
	const struct zone *zone = NULL;

	*aa = false;
	if (db == NULL)
		return DNS_RC_REFUSED;
	for (unsigned chain = 0; chain <= DNS_MAX_CHAIN; chain++) {
		bool exact;
		struct znode *n = lookup(db, name, len, labels, nlabels, &exact);
		const struct zrrset *rs;

		if (n == NULL || (zone != NULL && n->zn_zone != zone)) {
			/* Outside every zone; or a CNAME that leaves its zone: the resolver
			 * follows it. */
			return zone == NULL ? DNS_RC_REFUSED : DNS_RC_NOERROR;
		}
		if (zone == NULL) {
			zone = n->zn_zone;
			*aa = true;
			/* The apex is a suffix of the question name: point there. */
			apex_ptr = (uint16_t)(DNS_HDR_LEN +
			                      q->q_labels[q->q_nlabels - zone->z_apex_nlabels]);
		}
		if (!exact) {
			if (n->zn_wild == NULL) {
				put_soa(w, zone, apex_ptr, true);
				return DNS_RC_NXDOMAIN;
			}
			n = n->zn_wild; /* RFC 4592: synthesised with the asked owner */
		}
		if ((n->zn_flags & ZN_GEO) &&
		    (qtype == DNS_T_A || qtype == DNS_T_AAAA || qtype == DNS_T_ANY)) {
			int fam = qtype == DNS_T_AAAA;
			struct geo_result loc = locate(ac, q, from);
			unsigned slot;

			rs = geo_choose(zone, &loc, fam, &slot);
			if (rs == NULL)
				rs = zone->z_default[fam];
			if (rs == NULL) /* no apex address of that family: the name's own */
				rs = zone_node_rrset(n, fam ? DNS_T_AAAA : DNS_T_A);
			*scope = q->q_ecs && q->q_ecs_source > 0 ? loc.gr_scope : 0;
			if (rs != NULL && rs->rs_count > 0) {
				ac->ac_stats.st_geo[slot]++;
				put_rrset(w, rs->rs_data, rs->rs_len, rs->rs_count, owner,
				          DNS_GEO_TTL, false);
				return DNS_RC_NOERROR;
			}
			put_soa(w, zone, apex_ptr, true);
			return DNS_RC_NOERROR;
		}
		if ((n->zn_flags & ZN_CNAME) && qtype != DNS_T_CNAME) {
			size_t rdata;

			rs = &n->zn_rrsets[0];
			rdata = put_rrset(w, rs->rs_data, rs->rs_len, 1, owner, UINT32_MAX, false);
			if (rdata == 0 || rdata > 0x3FFF || qtype == DNS_T_ANY)
				return DNS_RC_NOERROR;
			/* Follow the target (already lower-case wire form). */
			owner = (uint16_t)rdata;
			name = rs->rs_data + 12;
			len = (size_t)(rs->rs_data[10] << 8 | rs->rs_data[11]);
			nlabels = wire_name_labels(name, labels_buf);
			labels = labels_buf;
			continue;
		}
		if (qtype == DNS_T_SOA && (n->zn_flags & ZN_APEX)) {
			put_soa(w, zone, owner, false);
			return DNS_RC_NOERROR;
		}
		if (qtype == DNS_T_ANY) {
			/* RFC 8482: one rrset stands for all of them. */
			if (n->zn_nrrsets > 0) {
				rs = &n->zn_rrsets[0];
				put_rrset(w, rs->rs_data, rs->rs_len, rs->rs_count, owner,
				          UINT32_MAX, false);
			} else if (n->zn_flags & ZN_APEX) {
				put_soa(w, zone, owner, false);
			} else {
				put_soa(w, zone, apex_ptr, true);
			}
			return DNS_RC_NOERROR;
		}
		if ((rs = zone_node_rrset(n, qtype)) != NULL) {
			put_rrset(w, rs->rs_data, rs->rs_len, rs->rs_count, owner, UINT32_MAX,
			          false);
			return DNS_RC_NOERROR;
		}
		put_soa(w, zone, apex_ptr, true); /* NODATA */
		return DNS_RC_NOERROR;
	}
	return DNS_RC_NOERROR; /* chain too long: what we have */
}

size_t
answer_query(struct answer_ctx *ac, const struct zone_db *db, const uint8_t *pkt, size_t len,
             const struct sockaddr *from, bool tcp, uint8_t *out, size_t max)
{
	struct dns_query *q = &ac->ac_q;
	struct wbuf w;
	size_t limit, qend, optsz;
	int prc, rcode;
	uint8_t scope = 0;
	bool aa = false;
	uint16_t flags;

	prc = wire_parse_query(pkt, len, q);
	if (prc < 0) {
		ac->ac_stats.st_dropped++;
		ac->ac_stats.st_malformed++;
		ac->ac_stats.st_dirty = true;
		return 0;
	}
	if (prc == DNS_RC_FORMERR) {
		ac->ac_stats.st_malformed++;
		return answer_bare(ac, q, DNS_RC_FORMERR, out, max);
	}
	if ((q->q_flags & 0x7800) != 0) /* opcode other than QUERY */
		return answer_bare(ac, q, DNS_RC_NOTIMP, out, max);

	limit = max;
	if (!tcp) {
		size_t client = q->q_edns ? q->q_edns_size : DNS_MIN_UDP;

		if (client < DNS_MIN_UDP)
			client = DNS_MIN_UDP;
		if (client < limit)
			limit = client;
	}
	if (limit > DNS_MAX_MSG)
		limit = DNS_MAX_MSG;
	optsz = opt_size(q);
	qend = DNS_HDR_LEN + q->q_question_len;
	if (qend + optsz > limit) /* a question that cannot even be echoed */
		return answer_bare(ac, q, DNS_RC_FORMERR, out, max);
	memcpy(out + DNS_HDR_LEN, pkt + DNS_HDR_LEN, q->q_question_len);
	w = (struct wbuf){out, qend, limit - optsz, 0, 0, false};

	if (q->q_edns && q->q_edns_version != 0) {
		rcode = DNS_RC_BADVERS;
	} else if (q->q_class != DNS_CLASS_IN && q->q_class != DNS_CLASS_ANY) {
		rcode = DNS_RC_REFUSED;
	} else if (q->q_type == DNS_T_OPT) {
		rcode = DNS_RC_FORMERR;
	} else if (q->q_type == DNS_T_AXFR || q->q_type == DNS_T_IXFR) {
		rcode = DNS_RC_REFUSED; /* no zone transfers: the Core is the source */
	} else {
		rcode = resolve(ac, db, q, from, &w, &scope, &aa);
	}
	flags = (uint16_t)(DNS_F_QR | (q->q_flags & (DNS_F_RD | DNS_F_CD)) | (rcode & 0xF));
	if (aa)
		flags |= DNS_F_AA;
	if (w.w_full) {
		/* Over the client's limit: question (and OPT) only, TC set. */
		w.w_len = qend;
		w.w_an = w.w_ns = 0;
		flags |= DNS_F_TC;
		ac->ac_stats.st_truncated++;
	}
	wr16(out, q->q_id);
	wr16(out + 2, flags);
	wr16(out + 4, 1);
	wr16(out + 6, w.w_an);
	wr16(out + 8, w.w_ns);
	wr16(out + 10, q->q_edns ? 1 : 0);
	if (q->q_edns)
		put_opt(&w, q, (unsigned)rcode >> 4, scope);
	count(ac, q->q_type, rcode);
	return w.w_len;
}

void
answer_ctx_init(struct answer_ctx *ac)
{
	memset(ac, 0, sizeof(*ac));
}
