/*
 * NNG's SP-over-IPC wire (shared/sp_ipc.h): hello, frame header, frame decoder and REQ/REP
 * backtrace. wafd's waf.rep server and httpd's client speak it straight from their event loops,
 * without NNG's I/O threads (docs/waf.md); fuzz/fuzz_sp_frame.c fuzzes the decoders, since
 * their input comes off a socket.
 */
#include <string.h>

#include "error.h"
#include "sp_ipc.h"

void
dfr_sp_put32(uint8_t *out, uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
}

uint32_t
dfr_sp_get32(const uint8_t *in)
{
	return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

void
dfr_sp_hello(uint8_t *out, uint16_t proto)
{
	out[0] = 0;
	out[1] = 'S';
	out[2] = 'P';
	out[3] = 0;
	out[4] = (uint8_t)(proto >> 8);
	out[5] = (uint8_t)proto;
	out[6] = 0;
	out[7] = 0;
}

int
dfr_sp_hello_check(const uint8_t *in, uint16_t peer_proto)
{
	if (in[0] != 0 || in[1] != 'S' || in[2] != 'P' || in[3] != 0 || in[6] != 0 || in[7] != 0)
		return DFR_EPARSE;
	if (((uint16_t)(in[4] << 8) | in[5]) != peer_proto)
		return DFR_EREJECTED;
	return DFR_OK;
}

void
dfr_sp_frame_header(uint8_t *out, uint64_t len)
{
	out[0] = 1;
	for (int i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(len >> (56 - 8 * i));
}

int
dfr_sp_frame_next(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload, size_t *plen,
                  size_t *need)
{
	uint64_t n = 0;

	*need = DFR_SP_HDR_LEN;
	if (len < 1)
		return DFR_EAGAIN;
	if (buf[0] != 1)
		return DFR_EPARSE;
	if (len < DFR_SP_HDR_LEN)
		return DFR_EAGAIN;
	for (int i = 0; i < 8; i++)
		n = n << 8 | buf[1 + i];
	if (n > max)
		return DFR_ELIMIT;
	*need = DFR_SP_HDR_LEN + (size_t)n;
	if (len < *need)
		return DFR_EAGAIN;
	*payload = buf + DFR_SP_HDR_LEN;
	*plen = (size_t)n;
	return DFR_OK;
}

int
dfr_sp_backtrace(const uint8_t *payload, size_t len, size_t *hlen, uint32_t *id)
{
	for (size_t off = 0; off + 4 <= len && off < 4 * DFR_SP_MAX_HOPS; off += 4) {
		if (payload[off] & 0x80) {
			*hlen = off + 4;
			*id = dfr_sp_get32(payload + off);
			return DFR_OK;
		}
	}
	return DFR_EPARSE;
}
