/*
 * Fuzz target: httpd's HTTP/1 path on raw bytes (h1.c), as hconn.c drives it: requests parsed
 * with pauses at every head and end (pipelining), the Host normalised and the backend head
 * serialised; the same bytes also go through the response parser and the client head.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "defenra-httpd/httpd.h"

static void
run(enum http_parser_type type, const uint8_t *data, size_t size)
{
	static char out[80 * 1024];
	struct h1_parser hp;
	char host[DFR_CFG_MAX_NAME + 1];
	size_t off = 0, step = size > 0 ? (size_t)data[0] % 7 + 1 : 1;

	if (h1_parser_init(&hp, type, 8192, 64, 1 << 20) != 0)
		return;
	/* Feed in small pieces so heads straddle reads. */
	while (off < size) {
		size_t want = size - off < step ? size - off : step;
		size_t n = h1_parser_feed(&hp, (const char *)data + off, want);

		off += n;
		if (hp.hp_ev == H1_EV_HEAD) {
			(void)h1_msg_host(&hp.hp_msg, host, sizeof(host));
			if (type == HTTP_REQUEST)
				(void)h1_req_head(&hp.hp_msg, "192.0.2.1", "http", out,
				                  sizeof(out));
			else
				(void)h1_resp_head(&hp.hp_msg, true, false, "X: y\r\n", 6, out,
				                   sizeof(out));
			h1_parser_resume(&hp);
		} else if (hp.hp_ev == H1_EV_DONE) {
			h1_parser_resume(&hp);
		} else if (hp.hp_ev == H1_EV_ERROR || n < want) {
			break;
		}
	}
	h1_parser_fini(&hp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(HTTP_REQUEST, data, size);
	run(HTTP_RESPONSE, data, size);
	return 0;
}
