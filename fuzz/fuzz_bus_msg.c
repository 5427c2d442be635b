/*
 * Fuzz target for what a daemon reads off the bus (shared/bus_msg.c): the message header, and
 * behind it a delta (decoded and applied to an empty config) or a snapshot (parsed as a config).
 * Everything is freed, so leaks show up. Seeds: fuzz/corpus/bus_msg/, made from the Core
 * fixtures (docs/bus.md).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus_msg.h"
#include "config.h"
#include "error.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct dfr_msg_hdr h;
	const uint8_t *payload;
	struct dfr_delta d;
	struct dfr_config *empty, *cfg = NULL;

	if (!quiet) {
		dfr_log_set_level(DFR_LOG_ERR);
		quiet = true;
	}
	if (dfr_msg_decode(data, size, &h, &payload) != DFR_OK)
		return 0;
	switch (h.mh_type) {
	case DFR_MSG_CFG_DELTA:
		if (dfr_delta_decode(payload, h.mh_payload_len, &d) != DFR_OK)
			break;
		if ((empty = dfr_config_new_empty()) != NULL) {
			dfr_config_unref(dfr_delta_apply(empty, &d));
			dfr_config_unref(empty);
		}
		dfr_delta_free(&d);
		break;
	case DFR_MSG_CFG_SNAPSHOT_REP:
		if (dfr_config_parse((const char *)payload, h.mh_payload_len, NULL, &cfg, NULL, 0) ==
		    DFR_OK)
			dfr_config_unref(cfg);
		break;
	}
	return 0;
}
