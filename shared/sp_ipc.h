/*
 * NNG's SP protocol over IPC (Unix stream sockets), the wire of waf.rep, as pure functions: the
 * 8-byte hello each side sends on connect, the frame header (0x01 + u64 big-endian length), an
 * incremental frame decoder over a buffer the caller owns, and the REQ/REP backtrace (the
 * request id words a REP side echoes before its answer). Wire-compatible with NNG 1.x
 * (src/sp/transport/ipc, src/sp/protocol/reqrep0): a real NNG REQ socket talks to a server built
 * on this, and an NNG REP socket to a client built on it. No I/O here: the daemons own sockets.
 */
#ifndef DFR_SP_IPC_H
#define DFR_SP_IPC_H

#include <stddef.h>
#include <stdint.h>

#define DFR_SP_HELLO_LEN  8 /* 0x00 'S' 'P' 0x00 proto(u16 BE) 0x00 0x00 */
#define DFR_SP_HDR_LEN    9 /* 0x01, u64 BE payload length */
#define DFR_SP_PROTO_REQ0 0x30
#define DFR_SP_PROTO_REP0 0x31
#define DFR_SP_MAX_HOPS   8 /* backtrace words a REP side accepts (NNG's default max TTL) */
#define DFR_SP_ID_FLAG    0x80000000u /* marks the last (request id) word of a backtrace */

/* Writes the hello of protocol `proto` (DFR_SP_PROTO_*) into out[DFR_SP_HELLO_LEN]. */
void dfr_sp_hello(uint8_t *out, uint16_t proto);

/* Checks a peer's hello (DFR_SP_HELLO_LEN bytes): DFR_OK when it is well-formed and names
 * `peer_proto`, DFR_EPARSE when it is not an SP hello, DFR_EREJECTED when it is one of another
 * protocol. */
int dfr_sp_hello_check(const uint8_t *in, uint16_t peer_proto);

/* Writes the frame header of a payload of `len` bytes into out[DFR_SP_HDR_LEN]. */
void dfr_sp_frame_header(uint8_t *out, uint64_t len);

/*
 * The next frame at the start of buf[0, len). `max` bounds the payload.
 *   DFR_OK: a whole frame; *payload and *plen point into buf, *need is the bytes it occupies
 *           (header included): the caller skips that many and calls again.
 *   DFR_EAGAIN: not all of it is there yet; *need is the bytes the frame will occupy once known
 *           (DFR_SP_HDR_LEN while the header is incomplete), so the caller can grow its buffer
 *           to at least that (never more than DFR_SP_HDR_LEN + max).
 *   DFR_EPARSE: not a message frame (type byte not 0x01); DFR_ELIMIT: payload above max.
 *           Both mean the stream cannot be resynchronised: close the connection.
 */
int dfr_sp_frame_next(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
                      size_t *plen, size_t *need);

/* The backtrace at the start of a REQ message payload: 4-byte words up to and including the
 * first with the high bit set (the request id), at most DFR_SP_MAX_HOPS words. DFR_OK with
 * *hlen its length in bytes and *id the request id, DFR_EPARSE when the payload has none. */
int dfr_sp_backtrace(const uint8_t *payload, size_t len, size_t *hlen, uint32_t *id);

/* Big-endian u32 in and out (request ids). */
void dfr_sp_put32(uint8_t *out, uint32_t v);
uint32_t dfr_sp_get32(const uint8_t *in);

#endif
