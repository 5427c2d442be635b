/*
 * The bus's wire encoding: the fixed 32-byte header of every message (bus_msg.h has the layout)
 * and the JSON payload of a config delta. Pure functions from bytes to structures and back: no
 * socket, no event loop, so the fuzzer and the unit tests drive them directly. The transport
 * (NNG sockets, who sends what when) lives in bus_pub.c and bus_sub.c; the protocol is written
 * down in docs/bus.md.
 *
 * Everything decoded here comes from another process and is checked, never trusted: a header
 * with a bad magic, version or length, or a delta that is not exactly the documented JSON, is an
 * error the receiver answers by asking for a snapshot. Unknown message types are not an error
 * at this level: the receiver's dispatch logs and drops them, as peers upgrade separately.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bus_msg.h"
#include "config.h"
#include "error.h"

/* ---- header --------------------------------------------------------------------------------- */

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

const char *
dfr_msg_type_name(uint16_t type)
{
	switch (type) {
	case DFR_MSG_CFG_DELTA:
		return "cfg-delta";
	case DFR_MSG_CFG_HEARTBEAT:
		return "cfg-heartbeat";
	case DFR_MSG_CFG_SNAPSHOT_REQ:
		return "cfg-snapshot-req";
	case DFR_MSG_CFG_SNAPSHOT_REP:
		return "cfg-snapshot-rep";
	case DFR_MSG_WAF_EVAL_REQ:
		return "waf-eval-req";
	case DFR_MSG_WAF_EVAL_REP:
		return "waf-eval-rep";
	}
	return "unknown";
}

void
dfr_msg_hdr_encode(uint8_t *buf, const struct dfr_msg_hdr *h)
{
	put_be32(buf, DFR_BUS_MAGIC);
	put_be16(buf + 4, DFR_BUS_VERSION);
	put_be16(buf + 6, h->mh_type);
	put_be64(buf + 8, h->mh_generation);
	put_be64(buf + 16, h->mh_base_generation);
	put_be32(buf + 24, h->mh_payload_len);
	put_be32(buf + 28, h->mh_flags);
}

int
dfr_msg_decode(const uint8_t *buf, size_t len, struct dfr_msg_hdr *h, const uint8_t **payload)
{
	struct dfr_msg_hdr mh;

	if (buf == NULL || len < DFR_BUS_HDR_LEN)
		return DFR_EPARSE;
	if (get_be32(buf) != DFR_BUS_MAGIC)
		return DFR_EPARSE;
	mh.mh_version = get_be16(buf + 4);
	if (mh.mh_version != DFR_BUS_VERSION)
		return DFR_EVERSION;
	mh.mh_type = get_be16(buf + 6);
	mh.mh_generation = get_be64(buf + 8);
	mh.mh_base_generation = get_be64(buf + 16);
	mh.mh_payload_len = get_be32(buf + 24);
	mh.mh_flags = get_be32(buf + 28);
	if (len > DFR_BUS_MAX_MSG || mh.mh_payload_len > DFR_BUS_MAX_MSG - DFR_BUS_HDR_LEN)
		return DFR_ELIMIT;
	if ((size_t)mh.mh_payload_len != len - DFR_BUS_HDR_LEN)
		return DFR_EPARSE;
	*h = mh;
	*payload = buf + DFR_BUS_HDR_LEN;
	return DFR_OK;
}

/* ---- delta payload -------------------------------------------------------------------------- */

/*
 * Items go in as raw JSON (their canonical dom_json / px_json): the encoder never parses what the
 * config model already serialised, it only strings the pieces together, straight into the
 * caller's buffer (the bus message itself when publishing: a first poll of 10,000 domains is a
 * 37 MB delta, and each copy of it cost 10-20 ms). Ids are escaped as JSON strings since they are
 * the Core's text.
 */
struct delta_out {
	char *o_p;     /* next byte; NULL while only measuring */
	size_t o_len;  /* bytes so far */
};

static void
delta_put(struct delta_out *o, const char *s, size_t n)
{
	if (o->o_p != NULL) {
		memcpy(o->o_p, s, n);
		o->o_p += n;
	}
	o->o_len += n;
}

/* A JSON string: quotes, backslash and control characters escaped, everything else as is. */
static void
delta_put_string(struct delta_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	delta_put(o, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			delta_put(o, esc, 2);
		} else if (c < 0x20) {
			delta_put(o, esc, 6);
		} else {
			delta_put(o, (const char *)&c, 1);
		}
	}
	delta_put(o, "\"", 1);
}

/* "name":{"upsert":[<json>,…],"remove":["<id>",…]}; false when an item has no JSON. */
static bool
delta_family(struct delta_out *o, const char *name, const char *const *jsons,
             const size_t *lens, size_t njsons, const char *const *ids, size_t nids)
{
	delta_put_string(o, name);
	delta_put(o, ":{\"upsert\":[", 12);
	for (size_t i = 0; i < njsons; i++) {
		if (jsons[i] == NULL)
			return false;
		if (i > 0)
			delta_put(o, ",", 1);
		delta_put(o, jsons[i], lens[i]);
	}
	delta_put(o, "],\"remove\":[", 12);
	for (size_t i = 0; i < nids; i++) {
		if (i > 0)
			delta_put(o, ",", 1);
		delta_put_string(o, ids[i]);
	}
	delta_put(o, "]}", 2);
	return true;
}

/* Lists each family's pieces once; the walk is the same for measuring and for writing. */
static size_t
delta_write(const struct dfr_config_diff *diff, char *out)
{
	const char **djson = NULL, **dids = NULL, **pjson = NULL, **pids = NULL;
	size_t *dlen = NULL, *plen = NULL, nd = 0, np = 0, len = 0;
	struct delta_out o = {out, 0};

	/* calloc(n + 1) so an empty family still gets a non-NULL array */
	djson = calloc(diff->dd_nadded + diff->dd_nchanged + 1, sizeof(*djson));
	dids = calloc(diff->dd_nremoved + 1, sizeof(*dids));
	pjson = calloc(diff->dd_npx_added + diff->dd_npx_changed + 1, sizeof(*pjson));
	pids = calloc(diff->dd_npx_removed + 1, sizeof(*pids));
	dlen = calloc(diff->dd_nadded + diff->dd_nchanged + 1, sizeof(*dlen));
	plen = calloc(diff->dd_npx_added + diff->dd_npx_changed + 1, sizeof(*plen));
	if (djson == NULL || dids == NULL || pjson == NULL || pids == NULL || dlen == NULL ||
	    plen == NULL)
		goto out;
	for (size_t i = 0; i < diff->dd_nadded + diff->dd_nchanged; i++, nd++) {
		const struct dfr_domain *d = i < diff->dd_nadded
		                                     ? diff->dd_added[i]
		                                     : diff->dd_changed[i - diff->dd_nadded];

		djson[nd] = d->dom_json;
		dlen[nd] = d->dom_json_len;
	}
	for (size_t i = 0; i < diff->dd_nremoved; i++)
		dids[i] = diff->dd_removed[i]->dom_id;
	for (size_t i = 0; i < diff->dd_npx_added + diff->dd_npx_changed; i++, np++) {
		const struct dfr_proxy *x = i < diff->dd_npx_added
		                                    ? diff->dd_px_added[i]
		                                    : diff->dd_px_changed[i - diff->dd_npx_added];

		pjson[np] = x->px_json;
		plen[np] = x->px_json_len;
	}
	for (size_t i = 0; i < diff->dd_npx_removed; i++)
		pids[i] = diff->dd_px_removed[i]->px_id;

	delta_put(&o, "{", 1);
	if (!delta_family(&o, "domains", djson, dlen, nd, dids, diff->dd_nremoved))
		goto out;
	delta_put(&o, ",", 1);
	if (!delta_family(&o, "proxies", pjson, plen, np, pids, diff->dd_npx_removed))
		goto out;
	delta_put(&o, "}", 1);
	len = o.o_len;
out:
	free(djson);
	free(dids);
	free(pjson);
	free(pids);
	free(dlen);
	free(plen);
	return len;
}

size_t
dfr_delta_encoded_len(const struct dfr_config_diff *diff)
{
	return delta_write(diff, NULL);
}

size_t
dfr_delta_encode_into(const struct dfr_config_diff *diff, char *out)
{
	return delta_write(diff, out);
}

char *
dfr_delta_encode(const struct dfr_config_diff *diff, size_t *len)
{
	size_t n = dfr_delta_encoded_len(diff);
	char *out;

	if (n == 0 || (out = malloc(n + 1)) == NULL)
		return NULL;
	if (dfr_delta_encode_into(diff, out) != n) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	if (len != NULL)
		*len = n;
	return out;
}

void
dfr_delta_free(struct dfr_delta *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->dl_ndom_upserts; i++)
		dfr_domain_unref(d->dl_dom_upserts[i]);
	for (size_t i = 0; i < d->dl_ndom_removes; i++)
		free(d->dl_dom_removes[i]);
	for (size_t i = 0; i < d->dl_npx_upserts; i++)
		dfr_proxy_unref(d->dl_px_upserts[i]);
	for (size_t i = 0; i < d->dl_npx_removes; i++)
		free(d->dl_px_removes[i]);
	free(d->dl_dom_upserts);
	free(d->dl_dom_removes);
	free(d->dl_px_upserts);
	free(d->dl_px_removes);
	memset(d, 0, sizeof(*d));
}

/*
 * One family ("domains" or "proxies") into `dl`. An absent family or list is empty; anything
 * present must have the documented type. Each upsert item is printed back to compact JSON and
 * parsed by the config model, which validates and normalises it like an item of a poll answer; a
 * failure fails the whole delta (a partly applied delta would be a config nobody published).
 */
static int
delta_decode_family(const cJSON *root, bool is_domain, struct dfr_delta *dl)
{
	const cJSON *fam, *up, *rm, *it;
	char ***removes = is_domain ? &dl->dl_dom_removes : &dl->dl_px_removes;
	size_t *nremoves = is_domain ? &dl->dl_ndom_removes : &dl->dl_npx_removes;
	int n;

	fam = cJSON_GetObjectItemCaseSensitive(root, is_domain ? "domains" : "proxies");
	if (fam == NULL)
		return DFR_OK;
	if (!cJSON_IsObject(fam))
		return DFR_EPARSE;
	up = cJSON_GetObjectItemCaseSensitive(fam, "upsert");
	rm = cJSON_GetObjectItemCaseSensitive(fam, "remove");
	if ((up != NULL && !cJSON_IsArray(up)) || (rm != NULL && !cJSON_IsArray(rm)))
		return DFR_EPARSE;

	if (up != NULL && (n = cJSON_GetArraySize(up)) > 0) {
		if (is_domain)
			dl->dl_dom_upserts = calloc((size_t)n, sizeof(*dl->dl_dom_upserts));
		else
			dl->dl_px_upserts = calloc((size_t)n, sizeof(*dl->dl_px_upserts));
		if (is_domain ? dl->dl_dom_upserts == NULL : dl->dl_px_upserts == NULL)
			return DFR_ENOMEM;
		cJSON_ArrayForEach(it, up)
		{
			char *json;
			bool parsed;

			if (!cJSON_IsObject(it))
				return DFR_EPARSE;
			if ((json = cJSON_PrintUnformatted(it)) == NULL)
				return DFR_ENOMEM;
			if (is_domain) {
				struct dfr_domain *dom = dfr_domain_from_json(json, strlen(json));

				if ((parsed = dom != NULL))
					dl->dl_dom_upserts[dl->dl_ndom_upserts++] = dom;
			} else {
				struct dfr_proxy *px = dfr_proxy_from_json(json, strlen(json));

				if ((parsed = px != NULL))
					dl->dl_px_upserts[dl->dl_npx_upserts++] = px;
			}
			free(json);
			if (!parsed)
				return DFR_EPARSE;
		}
	}
	if (rm != NULL && (n = cJSON_GetArraySize(rm)) > 0) {
		if ((*removes = calloc((size_t)n, sizeof(char *))) == NULL)
			return DFR_ENOMEM;
		cJSON_ArrayForEach(it, rm)
		{
			if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
				return DFR_EPARSE;
			if (((*removes)[*nremoves] = strdup(it->valuestring)) == NULL)
				return DFR_ENOMEM;
			(*nremoves)++;
		}
	}
	return DFR_OK;
}

int
dfr_delta_decode(const uint8_t *payload, size_t len, struct dfr_delta *d)
{
	struct dfr_delta dl;
	cJSON *root;
	int rc;

	memset(&dl, 0, sizeof(dl));
	if (len > DFR_BUS_MAX_MSG)
		return DFR_ELIMIT;
	if (payload == NULL || len == 0)
		return DFR_EPARSE;
	if ((root = cJSON_ParseWithLength((const char *)payload, len)) == NULL)
		return DFR_EPARSE;
	if (!cJSON_IsObject(root))
		rc = DFR_EPARSE;
	else if ((rc = delta_decode_family(root, true, &dl)) == DFR_OK)
		rc = delta_decode_family(root, false, &dl);
	cJSON_Delete(root);
	if (rc != DFR_OK) {
		dfr_delta_free(&dl);
		return rc;
	}
	*d = dl;
	return DFR_OK;
}

struct dfr_config *
dfr_delta_apply(const struct dfr_config *base, const struct dfr_delta *d)
{
	struct dfr_config *empty = NULL, *cfg;

	/* No config yet: the delta applies to the empty one (every item is then an upsert). */
	if (base == NULL && (base = empty = dfr_config_new_empty()) == NULL)
		return NULL;
	cfg = dfr_config_apply(base, d->dl_dom_upserts, d->dl_ndom_upserts,
	                       (const char *const *)d->dl_dom_removes, d->dl_ndom_removes,
	                       d->dl_px_upserts, d->dl_npx_upserts,
	                       (const char *const *)d->dl_px_removes, d->dl_npx_removes);
	dfr_config_unref(empty);
	return cfg;
}
