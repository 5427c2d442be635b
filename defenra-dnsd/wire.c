/*
 * DNS wire format for dnsd: parsing a query (header, question, EDNS0 OPT with the Client Subnet
 * option) into a struct dns_query, and converting text names to wire form for zone.c.
 *
 * Every length read from the packet is checked against what remains before use. Parsing never
 * allocates: it writes into the caller's struct. Building answers is answer.c's job; this file
 * does not write packets.
 */
#include <string.h>

#include "dnsd.h"

static inline uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Skips a possibly compressed name at *off; false if it runs past the end. */
static bool
skip_name(const uint8_t *pkt, size_t len, size_t *off)
{
	size_t o = *off;
	unsigned total = 0;

	for (;;) {
		uint8_t l;

		if (o >= len)
			return false;
		l = pkt[o];
		if ((l & 0xC0) == 0xC0) {
			if (o + 2 > len)
				return false;
			*off = o + 2;
			return true;
		}
		if (l & 0xC0) /* 0x40 and 0x80 label types are obsolete */
			return false;
		o += 1 + l;
		total += 1 + l;
		if (total > DNS_MAX_NAME)
			return false;
		if (l == 0) {
			*off = o;
			return true;
		}
	}
}

/* The Client Subnet option (RFC 7871 §6). Returns false when it is malformed (FORMERR). */
static bool
parse_ecs(const uint8_t *p, size_t olen, struct dns_query *q)
{
	unsigned family, source, scope, alen, maxbits;

	if (olen < 4 || q->q_ecs)
		return false;
	family = rd16(p);
	source = p[2];
	scope = p[3];
	alen = (unsigned)olen - 4;
	if (family == 1)
		maxbits = 32;
	else if (family == 2)
		maxbits = 128;
	else
		return false;
	if (source > maxbits || scope != 0 || alen != (source + 7) / 8)
		return false;
	memset(q->q_ecs_addr, 0, sizeof(q->q_ecs_addr));
	memcpy(q->q_ecs_addr, p + 4, alen);
	/* Bits beyond the source prefix must be zero (§6). */
	if (source % 8 != 0 && (q->q_ecs_addr[alen - 1] & (0xFF >> (source % 8))) != 0)
		return false;
	q->q_ecs = true;
	q->q_ecs_family = (uint8_t)family;
	q->q_ecs_source = (uint8_t)source;
	return true;
}

/* An OPT record whose owner name has been skipped; p points at its TYPE. */
static bool
parse_opt(const uint8_t *p, size_t rdlen, const uint8_t *rdata, struct dns_query *q)
{
	size_t o = 0;

	if (q->q_edns) /* more than one OPT */
		return false;
	q->q_edns = true;
	q->q_edns_size = rd16(p + 2);
	q->q_edns_version = p[5];
	q->q_do = (p[6] & 0x80) != 0;
	while (o < rdlen) {
		uint16_t code, olen;

		if (rdlen - o < 4)
			return false;
		code = rd16(rdata + o);
		olen = rd16(rdata + o + 2);
		o += 4;
		if (olen > rdlen - o)
			return false;
		if (code == DNS_OPT_ECS && !parse_ecs(rdata + o, olen, q))
			return false;
		o += olen;
	}
	return true;
}

int
wire_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q)
{
	size_t off = DNS_HDR_LEN;
	unsigned qd, an, ns, ar, n = 0, lab = 0;

	if (len < DNS_HDR_LEN)
		return -1;
	q->q_id = rd16(pkt);
	q->q_flags = rd16(pkt + 2);
	q->q_edns = false;
	q->q_ecs = false;
	q->q_do = false;
	q->q_question_len = 0;
	if (q->q_flags & DNS_F_QR) /* a response: answering it invites loops */
		return -1;
	qd = rd16(pkt + 4);
	an = rd16(pkt + 6);
	ns = rd16(pkt + 8);
	ar = rd16(pkt + 10);
	if (qd != 1)
		return DNS_RC_FORMERR;

	/* The question name: uncompressed (nothing precedes it to point at). */
	for (;;) {
		uint8_t l;

		if (off >= len)
			return DNS_RC_FORMERR;
		l = pkt[off];
		if (l > 63)
			return DNS_RC_FORMERR;
		if ((size_t)n + 1 + l > DNS_MAX_NAME || off + 1 + l > len)
			return DNS_RC_FORMERR;
		if (l == 0) {
			q->q_name[n++] = 0;
			off++;
			break;
		}
		if (lab >= DNS_MAX_LABELS - 1)
			return DNS_RC_FORMERR;
		q->q_labels[lab++] = (uint8_t)n;
		q->q_name[n++] = l;
		for (unsigned i = 0; i < l; i++) {
			uint8_t c = pkt[off + 1 + i];

			q->q_name[n++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
		}
		off += 1 + l;
	}
	if (off + 4 > len)
		return DNS_RC_FORMERR;
	q->q_namelen = (uint8_t)n;
	q->q_nlabels = (uint8_t)lab;
	q->q_labels[lab] = (uint8_t)(n - 1); /* the root */
	q->q_type = rd16(pkt + off);
	q->q_class = rd16(pkt + off + 2);
	off += 4;
	q->q_question_len = off - DNS_HDR_LEN;

	/* Answer and authority records of a query carry nothing for us; skip them whole. */
	for (unsigned i = 0; i < an + ns + ar; i++) {
		const uint8_t *p;
		size_t rdlen;
		bool root;

		root = off < len && pkt[off] == 0;
		if (!skip_name(pkt, len, &off) || off + 10 > len)
			return DNS_RC_FORMERR;
		p = pkt + off;
		rdlen = rd16(p + 8);
		if (off + 10 + rdlen > len)
			return DNS_RC_FORMERR;
		if (rd16(p) == DNS_T_OPT) {
			if (i < an + ns || !root || !parse_opt(p, rdlen, p + 10, q))
				return DNS_RC_FORMERR;
		}
		off += 10 + rdlen;
	}
	return DNS_RC_NOERROR;
}

size_t
wire_name_from_text(const char *text, uint8_t *out, size_t cap)
{
	size_t n = 0;
	const char *p = text;

	if (cap < 1)
		return 0;
	if (p[0] == '.' && p[1] == '\0')
		p++;
	while (*p != '\0') {
		const char *e = strchr(p, '.');
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);

		if (l == 0 || l > 63 || n + 1 + l + 1 > cap || n + 1 + l + 1 > DNS_MAX_NAME)
			return 0;
		out[n++] = (uint8_t)l;
		for (size_t i = 0; i < l; i++) {
			uint8_t c = (uint8_t)p[i];

			out[n++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
		}
		p += l;
		if (*p == '.') {
			p++;
			if (*p == '\0') /* trailing dot: absolute, same thing */
				break;
		}
	}
	out[n++] = 0;
	return n;
}

unsigned
wire_name_labels(const uint8_t *name, uint8_t *labels)
{
	unsigned n = 0, o = 0;

	while (name[o] != 0 && n < DNS_MAX_LABELS - 1) {
		labels[n++] = (uint8_t)o;
		o += 1u + name[o];
	}
	labels[n] = (uint8_t)o;
	return n;
}
