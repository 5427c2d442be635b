/*
 * The SP-over-IPC codec (shared/sp_ipc.c): hellos as NNG writes them, frame headers, the
 * incremental decoder fed byte by byte, oversize and malformed frames, and REQ backtraces.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sp_ipc.h"
#include "tap.h"

static void
test_hello(void)
{
	static const uint8_t nng_req[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t h[DFR_SP_HELLO_LEN], bad[DFR_SP_HELLO_LEN];

	dfr_sp_hello(h, DFR_SP_PROTO_REQ0);
	ok(memcmp(h, nng_req, 8) == 0, "REQ0 hello is NNG's bytes");
	is_int(dfr_sp_hello_check(h, DFR_SP_PROTO_REQ0), DFR_OK, "REQ0 hello accepted as REQ0");
	is_int(dfr_sp_hello_check(h, DFR_SP_PROTO_REP0), DFR_EREJECTED, "REQ0 hello refused as REP0");
	dfr_sp_hello(h, DFR_SP_PROTO_REP0);
	is_int(h[5], 0x31, "REP0 hello carries 0x31");
	for (int i = 0; i < 8; i++) {
		if (i == 4 || i == 5)
			continue;
		memcpy(bad, h, 8);
		bad[i] ^= 0x40;
		is_int(dfr_sp_hello_check(bad, DFR_SP_PROTO_REP0), DFR_EPARSE,
		       "hello with byte %d corrupted is refused", i);
	}
	is_int(dfr_sp_hello_check((const uint8_t *)"GET / HT", DFR_SP_PROTO_REQ0), DFR_EPARSE,
	       "an HTTP request is not a hello");
}

static void
test_frames(void)
{
	uint8_t buf[64], hdr[DFR_SP_HDR_LEN];
	const uint8_t *p = NULL;
	size_t plen = 0, need = 0, off = 0;
	int frames = 0, rv;

	dfr_sp_frame_header(hdr, 0x0102030405060708ull);
	ok(hdr[0] == 1 && hdr[1] == 1 && hdr[8] == 8, "frame header: type 1, length big-endian");
	/* two frames back to back: "abc" and "" */
	dfr_sp_frame_header(buf, 3);
	memcpy(buf + 9, "abc", 3);
	dfr_sp_frame_header(buf + 12, 0);
	/* fed one byte at a time, only whole frames come out */
	for (size_t len = 0; len <= 21; len++) {
		rv = dfr_sp_frame_next(buf + off, len - off, 16, &p, &plen, &need);
		if (rv == DFR_OK) {
			frames++;
			if (frames == 1)
				ok(len == 12 && plen == 3 && memcmp(p, "abc", 3) == 0 && need == 12,
				   "first frame whole at 12 bytes");
			else
				ok(len == 21 && plen == 0 && need == 9, "empty frame whole at 21 bytes");
			off += need;
		} else if (rv != DFR_EAGAIN) {
			ok(0, "unexpected %d at %zu", rv, len);
		}
	}
	is_int(frames, 2, "two frames decoded");
	rv = dfr_sp_frame_next(buf, 5, 16, &p, &plen, &need);
	ok(rv == DFR_EAGAIN && need == DFR_SP_HDR_LEN, "partial header: needs the header");
	rv = dfr_sp_frame_next(buf, 10, 16, &p, &plen, &need);
	ok(rv == DFR_EAGAIN && need == 12, "partial payload: needs the whole frame");
	rv = dfr_sp_frame_next(buf, 0, 16, &p, &plen, &need);
	is_int(rv, DFR_EAGAIN, "nothing yet");
	/* oversize, by one byte and by 2^63 */
	dfr_sp_frame_header(buf, 17);
	is_int(dfr_sp_frame_next(buf, 9, 16, &p, &plen, &need), DFR_ELIMIT, "payload above max");
	dfr_sp_frame_header(buf, 16);
	is_int(dfr_sp_frame_next(buf, 9, 16, &p, &plen, &need), DFR_EAGAIN, "payload of max is fine");
	dfr_sp_frame_header(buf, ~0ull);
	is_int(dfr_sp_frame_next(buf, 9, 16, &p, &plen, &need), DFR_ELIMIT, "2^64-1 refused");
	/* wrong type byte, seen at once */
	buf[0] = 0;
	is_int(dfr_sp_frame_next(buf, 1, 16, &p, &plen, &need), DFR_EPARSE, "type 0 refused");
	buf[0] = 'G';
	is_int(dfr_sp_frame_next(buf, 1, 16, &p, &plen, &need), DFR_EPARSE, "garbage refused");
}

static void
test_backtrace(void)
{
	uint8_t m[48];
	size_t hlen = 0;
	uint32_t id = 0;

	dfr_sp_put32(m, 0x80000123u);
	memcpy(m + 4, "body", 4);
	ok(dfr_sp_backtrace(m, 8, &hlen, &id) == DFR_OK && hlen == 4 && id == 0x80000123u,
	   "one-word backtrace: the request id");
	/* a device hop in front */
	dfr_sp_put32(m, 7);
	dfr_sp_put32(m + 4, 0x8000abcdu);
	ok(dfr_sp_backtrace(m, 8, &hlen, &id) == DFR_OK && hlen == 8 && id == 0x8000abcdu,
	   "two-word backtrace");
	is_int(dfr_sp_backtrace(m, 4, &hlen, &id), DFR_EPARSE, "no id word within the payload");
	is_int(dfr_sp_backtrace(m, 3, &hlen, &id), DFR_EPARSE, "shorter than a word");
	is_int(dfr_sp_backtrace(m, 0, &hlen, &id), DFR_EPARSE, "empty payload");
	memset(m, 0, sizeof(m));
	dfr_sp_put32(m + 4 * DFR_SP_MAX_HOPS, 0x80000001u);
	is_int(dfr_sp_backtrace(m, sizeof(m), &hlen, &id), DFR_EPARSE, "too many hops refused");
	dfr_sp_put32(m + 4 * (DFR_SP_MAX_HOPS - 1), 0x80000001u);
	ok(dfr_sp_backtrace(m, sizeof(m), &hlen, &id) == DFR_OK && hlen == 4 * DFR_SP_MAX_HOPS,
	   "the most hops accepted");
	is_int((long long)dfr_sp_get32((const uint8_t *)"\x12\x34\x56\x78"), 0x12345678, "get32");
}

int
main(void)
{
	plan_lazy();
	test_hello();
	test_frames();
	test_backtrace();
	return done_testing();
}
