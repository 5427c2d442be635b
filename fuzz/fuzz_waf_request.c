/*
 * Fuzz target: the WAF request decoder wafd runs on every message httpd sends (shared/waf_msg.c),
 * and the verdict decoder httpd runs on wafd's answers. A decoded request is encoded again and
 * must give back the same payload bytes: the format has one encoding per request (the bus
 * header's base generation and flags are not part of a request).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus_msg.h"
#include "error.h"
#include "waf_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dfr_waf_hdr hdrs[DFR_WAF_MAX_HEADERS];
	struct dfr_waf_req req;
	struct dfr_waf_rep rep;
	uint64_t gen;
	uint8_t *copy, *again;
	size_t len = 0;

	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	if (dfr_waf_req_decode(copy, size, &gen, &req, hdrs) == DFR_OK) {
		if ((again = malloc(size)) != NULL) {
			if (dfr_waf_req_encode(again, size, gen, &req, &len) != DFR_OK || len != size ||
			    memcmp(again + DFR_BUS_HDR_LEN, copy + DFR_BUS_HDR_LEN,
				   size - DFR_BUS_HDR_LEN) != 0)
				abort();
			free(again);
		}
	}
	(void)dfr_waf_rep_decode(copy, size, &gen, &rep, hdrs);
	free(copy);
	return 0;
}
