/*
 * Fuzz target: the SP-over-IPC decoders wafd and httpd run on bytes from waf.rep
 * (shared/sp_ipc.c). The input is a stream after the hello: frames are taken off it as the
 * daemons do (bounded by a small max so the limit path is reached), each payload is split into
 * backtrace and body, and a decoded frame must encode back to the same header bytes. The first
 * 8 bytes are also checked as a hello.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sp_ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p;
	size_t off = 0, plen, need, hlen;
	uint32_t id;
	uint8_t hdr[DFR_SP_HDR_LEN];
	int rv;

	if (size >= DFR_SP_HELLO_LEN)
		(void)dfr_sp_hello_check(data, DFR_SP_PROTO_REQ0);
	for (;;) {
		rv = dfr_sp_frame_next(data + off, size - off, 4096, &p, &plen, &need);
		if (rv != DFR_OK) {
			if (rv == DFR_EAGAIN && (need < DFR_SP_HDR_LEN || need > DFR_SP_HDR_LEN + 4096))
				abort();
			break;
		}
		if (need != DFR_SP_HDR_LEN + plen || p != data + off + DFR_SP_HDR_LEN ||
		    off + need > size)
			abort();
		dfr_sp_frame_header(hdr, plen);
		if (memcmp(hdr, data + off, DFR_SP_HDR_LEN) != 0)
			abort();
		if (dfr_sp_backtrace(p, plen, &hlen, &id) == DFR_OK &&
		    (hlen > plen || hlen % 4 != 0 || !(id & DFR_SP_ID_FLAG)))
			abort();
		off += need;
	}
	return 0;
}
