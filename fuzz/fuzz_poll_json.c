/*
 * Fuzz target for the Core's poll answer (shared/config_parse.c): parse without and with a
 * previous config, write the result as canonical JSON, read it back, diff, free. A crash, a leak
 * or a canonical JSON that does not read back is a finding. The config model's own JSON reader
 * (shared/config_jv.c) must also accept exactly what cJSON accepts and give the same tree: a
 * difference is a finding too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "config_int.h"
#include "error.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same tree: types, member names, strings, numbers (bit for bit), order. */
static bool
same_tree(const cJSON *c, const struct dfr_jv *v)
{
	static const int types[] = {[cJSON_NULL] = DFR_JV_NULL,     [cJSON_False] = DFR_JV_FALSE,
	                            [cJSON_True] = DFR_JV_TRUE,     [cJSON_Number] = DFR_JV_NUMBER,
	                            [cJSON_String] = DFR_JV_STRING, [cJSON_Array] = DFR_JV_ARRAY,
	                            [cJSON_Object] = DFR_JV_OBJECT};
	const cJSON *cc;
	const struct dfr_jv *vv;
	size_t n = 0;

	if ((c->type & 0xff) > cJSON_Object || types[c->type & 0xff] != (int)v->jv_type)
		return false;
	if ((c->string == NULL) != (v->jv_key == NULL) ||
	    (c->string != NULL &&
	     (strcmp(c->string, v->jv_key) != 0 || strlen(c->string) != v->jv_keylen)))
		return false;
	if (v->jv_type == DFR_JV_STRING && strcmp(c->valuestring, v->jv_str) != 0)
		return false;
	if (v->jv_type == DFR_JV_NUMBER && memcmp(&c->valuedouble, &v->jv_num, sizeof(double)) != 0)
		return false;
	for (cc = c->child, vv = v->jv_child; cc != NULL && vv != NULL;
	     cc = cc->next, vv = vv->jv_next, n++)
		if (!same_tree(cc, vv))
			return false;
	return cc == NULL && vv == NULL &&
	       (v->jv_type != DFR_JV_ARRAY && v->jv_type != DFR_JV_OBJECT ? true : n == v->jv_n);
}

static void
reader_vs_cjson(const uint8_t *data, size_t size)
{
	const char *cend = NULL;
	cJSON *c = cJSON_ParseWithLengthOpts((const char *)data, size, &cend, false);
	struct dfr_arena ar;
	struct dfr_jv *v;
	size_t vend = 0;

	if (!dfr_arena_init(&ar, 4096)) {
		cJSON_Delete(c);
		return;
	}
	v = dfr_jv_parse((const char *)data, size, &ar, NULL, NULL, NULL, &vend, NULL);
	if ((c == NULL) != (v == NULL))
		abort(); /* one accepts what the other refuses */
	if (c != NULL && (!same_tree(c, v) || (size_t)(cend - (const char *)data) != vend))
		abort(); /* different trees */
	cJSON_Delete(c);
	dfr_arena_free(&ar);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dfr_config *a = NULL, *b = NULL, *c = NULL;
	struct dfr_config_diff d;
	size_t len;
	char *js;

	dfr_log_set_level(DFR_LOG_ERR);
	reader_vs_cjson(data, size);
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

		if (dom == NULL || dom->dom_json_len != b->cfg_domains[i]->dom_json_len ||
		    memcmp(dom->dom_json, b->cfg_domains[i]->dom_json, dom->dom_json_len) != 0)
			abort(); /* a domain's canonical JSON reads back to itself */
		dfr_domain_unref(dom);
	}
	free(js);
	dfr_config_unref(a);
	dfr_config_unref(b);
	dfr_config_unref(c);
	return 0;
}
