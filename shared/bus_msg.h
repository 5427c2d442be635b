/*
 * The bus's message catalogue and wire encoding (docs/bus.md says the same for humans).
 *
 * Every message is a fixed 32-byte header followed by a payload:
 *
 *   0  magic "DFRB"        4  version (u16, 1)     6  type (u16, enum dfr_msg_type)
 *   8  generation (u64)    16 base generation (u64)  24 payload length (u32)  28 flags (u32, 0)
 *
 * All integers big-endian. A decoder checks magic, version, type and that the payload length is
 * exactly what arrived before it reads the payload. Unknown types are logged and dropped by the
 * receiver's dispatch (peers restart and upgrade separately), never fatal.
 */
#ifndef DFR_BUS_MSG_H
#define DFR_BUS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define DFR_BUS_MAGIC 0x44465242u /* "DFRB" */
#define DFR_BUS_VERSION 1
#define DFR_BUS_HDR_LEN 32
#define DFR_BUS_MAX_MSG (256u * 1024 * 1024) /* larger than any valid config snapshot */

enum dfr_msg_type {
	/* config family, pub/sub on config.pub */
	DFR_MSG_CFG_DELTA = 1,     /* syncd -> all: changes from base generation to generation */
	DFR_MSG_CFG_HEARTBEAT = 2, /* syncd -> all: generation is the current one; no payload */
	/* config family, req/rep on config.rep */
	DFR_MSG_CFG_SNAPSHOT_REQ = 3, /* any -> syncd: generation = what the asker has; no payload */
	DFR_MSG_CFG_SNAPSHOT_REP = 4, /* syncd -> asker: the whole config as JSON */
	/* waf family, req/rep on waf.rep */
	DFR_MSG_WAF_EVAL_REQ = 16, /* httpd -> wafd: a request to judge */
	DFR_MSG_WAF_EVAL_REP = 17, /* wafd -> httpd: the verdict */
};

struct dfr_msg_hdr {
	uint16_t mh_version;
	uint16_t mh_type;
	uint64_t mh_generation;
	uint64_t mh_base_generation;
	uint32_t mh_payload_len;
	uint32_t mh_flags;
};

/* Name of a type for log lines ("cfg-delta"), "unknown" otherwise. */
const char *dfr_msg_type_name(uint16_t type);

/* Writes the header for `h` (magic and version filled in) into buf[DFR_BUS_HDR_LEN]. */
void dfr_msg_hdr_encode(uint8_t *buf, const struct dfr_msg_hdr *h);

/* Checks and decodes a whole message. On DFR_OK fills *h and points *payload into buf.
 * DFR_EPARSE (short, bad magic, length mismatch), DFR_EVERSION, DFR_ELIMIT. */
int dfr_msg_decode(const uint8_t *buf, size_t len, struct dfr_msg_hdr *h, const uint8_t **payload);

/* A config delta's payload, JSON:
 *   {"domains":{"upsert":[<dom_json>,…],"remove":["<id>",…]},
 *    "proxies":{"upsert":[<px_json>,…],"remove":["<id>",…]}}
 * Encoding takes the diff's added and changed items as upserts, removed ones as removes.
 * Returns a malloc'd, NUL-terminated buffer the caller frees, NULL on ENOMEM. */
char *dfr_delta_encode(const struct dfr_config_diff *diff, size_t *len);
/* The same in two steps, for a caller that owns the buffer (the bus message): the exact length
 * (0 on ENOMEM), then the bytes written into out, which must hold that many (returns the
 * length written, 0 on ENOMEM; no NUL). */
size_t dfr_delta_encoded_len(const struct dfr_config_diff *diff);
size_t dfr_delta_encode_into(const struct dfr_config_diff *diff, char *out);

/* A decoded delta: new objects with a reference each, owned by the delta. */
struct dfr_delta {
	struct dfr_domain **dl_dom_upserts;
	size_t dl_ndom_upserts;
	char **dl_dom_removes;
	size_t dl_ndom_removes;
	struct dfr_proxy **dl_px_upserts;
	size_t dl_npx_upserts;
	char **dl_px_removes;
	size_t dl_npx_removes;
};

/* Decodes a delta payload. DFR_OK (fills *d; free with dfr_delta_free) or DFR_EPARSE/ELIMIT. An
 * item that fails to parse fails the whole delta: the receiver then asks for a snapshot. */
int dfr_delta_decode(const uint8_t *payload, size_t len, struct dfr_delta *d);
void dfr_delta_free(struct dfr_delta *d);

/* A config applied to a delta: a new config with one reference, NULL on ENOMEM. */
struct dfr_config *dfr_delta_apply(const struct dfr_config *base, const struct dfr_delta *d);

#endif
