/*
 * The diff of two configs: which domains and proxies were added, changed or removed, by id. Both
 * configs keep their items sorted by id, so this is one merge walk, linear in the two sizes (the
 * 10,000-domain poll costs a few hundred microseconds). "Changed" means the canonical JSON bytes
 * differ; an item shared by both configs (same pointer, as dfr_config_apply() makes) is unchanged
 * without looking at its bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"

static bool
same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return a == b || (alen == blen && a != NULL && b != NULL && memcmp(a, b, alen) == 0);
}

int
dfr_config_diff(const struct dfr_config *old, const struct dfr_config *new,
                struct dfr_config_diff *diff)
{
	static const struct dfr_config empty;
	size_t i = 0, j = 0;

	memset(diff, 0, sizeof(*diff));
	if (old == NULL)
		old = &empty;
	if (new == NULL)
		new = &empty;
	/* Upper bounds: one allocation each instead of growing. */
	diff->dd_added = malloc(new->cfg_ndomains * sizeof(void *) + sizeof(void *));
	diff->dd_changed = malloc(new->cfg_ndomains * sizeof(void *) + sizeof(void *));
	diff->dd_removed = malloc(old->cfg_ndomains * sizeof(void *) + sizeof(void *));
	diff->dd_px_added = malloc(new->cfg_nproxies * sizeof(void *) + sizeof(void *));
	diff->dd_px_changed = malloc(new->cfg_nproxies * sizeof(void *) + sizeof(void *));
	diff->dd_px_removed = malloc(old->cfg_nproxies * sizeof(void *) + sizeof(void *));
	if (!diff->dd_added || !diff->dd_changed || !diff->dd_removed || !diff->dd_px_added ||
	    !diff->dd_px_changed || !diff->dd_px_removed) {
		dfr_config_diff_free(diff);
		return DFR_ENOMEM;
	}
	while (i < old->cfg_ndomains || j < new->cfg_ndomains) {
		const struct dfr_domain *a = i < old->cfg_ndomains ? old->cfg_domains[i] : NULL;
		const struct dfr_domain *b = j < new->cfg_ndomains ? new->cfg_domains[j] : NULL;
		int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->dom_id, b->dom_id);

		if (c < 0) {
			diff->dd_removed[diff->dd_nremoved++] = a;
			i++;
		} else if (c > 0) {
			diff->dd_added[diff->dd_nadded++] = b;
			j++;
		} else {
			if (!same_bytes(a->dom_json, a->dom_json_len, b->dom_json, b->dom_json_len))
				diff->dd_changed[diff->dd_nchanged++] = b;
			i++;
			j++;
		}
	}
	i = j = 0;
	while (i < old->cfg_nproxies || j < new->cfg_nproxies) {
		const struct dfr_proxy *a = i < old->cfg_nproxies ? old->cfg_proxies[i] : NULL;
		const struct dfr_proxy *b = j < new->cfg_nproxies ? new->cfg_proxies[j] : NULL;
		int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->px_id, b->px_id);

		if (c < 0) {
			diff->dd_px_removed[diff->dd_npx_removed++] = a;
			i++;
		} else if (c > 0) {
			diff->dd_px_added[diff->dd_npx_added++] = b;
			j++;
		} else {
			if (!same_bytes(a->px_json, a->px_json_len, b->px_json, b->px_json_len))
				diff->dd_px_changed[diff->dd_npx_changed++] = b;
			i++;
			j++;
		}
	}
	return DFR_OK;
}

bool
dfr_config_diff_is_empty(const struct dfr_config_diff *diff)
{
	return diff->dd_nadded == 0 && diff->dd_nchanged == 0 && diff->dd_nremoved == 0 &&
	       diff->dd_npx_added == 0 && diff->dd_npx_changed == 0 && diff->dd_npx_removed == 0;
}

void
dfr_config_diff_free(struct dfr_config_diff *diff)
{
	if (diff == NULL)
		return;
	free(diff->dd_added);
	free(diff->dd_changed);
	free(diff->dd_removed);
	free(diff->dd_px_added);
	free(diff->dd_px_changed);
	free(diff->dd_px_removed);
	memset(diff, 0, sizeof(*diff));
}
