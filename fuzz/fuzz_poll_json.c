/*
 * Fuzz target for the Core's poll answer (shared/config_parse.c): parse without and with a
 * previous config, write the result as canonical JSON, read it back, diff, free. A crash, a leak
 * or a canonical JSON that does not read back is a finding.
 */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "error.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dfr_config *a = NULL, *b = NULL, *c = NULL;
	struct dfr_config_diff d;
	size_t len;
	char *js;

	dfr_log_set_level(DFR_LOG_ERR);
	if (dfr_config_parse((const char *)data, size, NULL, &a, NULL, 0) != DFR_OK)
		return 0;
	if (dfr_config_parse((const char *)data, size, a, &b, NULL, 0) != DFR_OK)
		abort(); /* parsed once, must parse again */
	if ((js = dfr_config_to_json(b, &len)) != NULL) {
		if (dfr_config_parse(js, len, b, &c, NULL, 0) != DFR_OK)
			abort(); /* canonical JSON must read back */
		if (dfr_config_diff(b, c, &d) == DFR_OK) {
			if (!dfr_config_diff_is_empty(&d))
				abort(); /* and give the same items */
			dfr_config_diff_free(&d);
		}
	}
	for (size_t i = 0; b != NULL && i < b->cfg_ndomains; i++) {
		struct dfr_domain *dom = dfr_domain_from_json(b->cfg_domains[i]->dom_json,
							      b->cfg_domains[i]->dom_json_len);
		dfr_domain_unref(dom);
	}
	free(js);
	dfr_config_unref(a);
	dfr_config_unref(b);
	dfr_config_unref(c);
	return 0;
}
