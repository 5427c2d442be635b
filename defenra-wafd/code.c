/*
 * Generations of code: the Lua text of every domain of one config generation, as workers run
 * it. Built by the main thread from each config syncd hands over, then immutable and shared by
 * reference. A domain whose text did not change keeps the same struct wcode across generations,
 * which is how a worker knows it may keep its compiled state (script.c compiles each wcode once
 * per worker).
 *
 * Also reads the size directives of shared dicts from the code: a line
 *   -- lua_shared_dict NAME SIZE        (SIZE like nginx: 512k, 10m, or bytes)
 * sets the bound of the domain's dict NAME (nginx's own directive, written as a comment so the
 * script stays valid Lua).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

#define DICT_MAX_SIZE (256u * 1024 * 1024)

static void
code_free(struct wcode *c)
{
	for (size_t i = 0; i < c->wc_ndicts; i++)
		free(c->wc_dicts[i].wd_name);
	free(c->wc_dicts);
	free(c->wc_dom_id);
	free(c->wc_dom_name);
	free(c->wc_code);
	free(c);
}

struct wcode *
code_ref(struct wcode *c)
{
	__atomic_add_fetch(&c->wc_refs, 1, __ATOMIC_RELAXED);
	return c;
}

void
code_unref(struct wcode *c)
{
	if (c != NULL && __atomic_sub_fetch(&c->wc_refs, 1, __ATOMIC_ACQ_REL) == 0)
		code_free(c);
}

struct wgen *
code_gen_ref(struct wgen *g)
{
	__atomic_add_fetch(&g->wg_refs, 1, __ATOMIC_RELAXED);
	return g;
}

void
code_gen_unref(struct wgen *g)
{
	if (g == NULL || __atomic_sub_fetch(&g->wg_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < g->wg_ncodes; i++)
		code_unref(g->wg_codes[i]);
	free(g->wg_codes);
	free(g);
}

/* Reads "-- lua_shared_dict NAME SIZE" lines. Bad lines are ignored (logged). */
static void
parse_dicts(struct wcode *c)
{
	const char *p = c->wc_code, *end = c->wc_code + c->wc_len;

	while (p != NULL && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *e = eol != NULL ? eol : end, *q = p;
		char name[64], unit = 0;
		size_t nlen = 0;
		unsigned long long v = 0;
		struct wcode_dict *nd;

		while (q < e && isspace((unsigned char)*q))
			q++;
		if (e - q < 2 || q[0] != '-' || q[1] != '-')
			goto next;
		q += 2;
		while (q < e && isspace((unsigned char)*q))
			q++;
		if ((size_t)(e - q) < 16 || memcmp(q, "lua_shared_dict", 15) != 0 ||
		    !isspace((unsigned char)q[15]))
			goto next;
		q += 15;
		while (q < e && isspace((unsigned char)*q))
			q++;
		while (q < e && !isspace((unsigned char)*q) && nlen < sizeof(name) - 1)
			name[nlen++] = *q++;
		name[nlen] = '\0';
		while (q < e && isspace((unsigned char)*q))
			q++;
		while (q < e && isdigit((unsigned char)*q) && v < DICT_MAX_SIZE)
			v = v * 10 + (unsigned long long)(*q++ - '0');
		if (q < e && strchr("kKmM", *q) != NULL)
			unit = (char)tolower((unsigned char)*q);
		v *= unit == 'k' ? 1024u : unit == 'm' ? 1024u * 1024 : 1u;
		if (nlen == 0 || v == 0 || v > DICT_MAX_SIZE) {
			dfr_log_warn(
			        "waf, %s: lua_shared_dict line ignored (name or size not valid)",
			        c->wc_dom_name);
			goto next;
		}
		nd = realloc(c->wc_dicts, (c->wc_ndicts + 1) * sizeof(*nd));
		if (nd == NULL)
			return;
		c->wc_dicts = nd;
		if ((nd[c->wc_ndicts].wd_name = strdup(name)) == NULL)
			return;
		nd[c->wc_ndicts++].wd_size = (size_t)v;
	next:
		p = eol != NULL ? eol + 1 : NULL;
	}
}

static struct wcode *
code_new(const char *dom_id, const char *dom_name, const char *code, size_t len,
         uint64_t generation)
{
	struct wcode *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->wc_refs = 1;
	c->wc_generation = generation;
	if ((c->wc_dom_id = strdup(dom_id)) == NULL || (c->wc_dom_name = strdup(dom_name)) == NULL)
		goto fail;
	if (code != NULL) {
		if ((c->wc_code = malloc(len + 1)) == NULL)
			goto fail;
		memcpy(c->wc_code, code, len);
		c->wc_code[len] = '\0';
		c->wc_len = len;
		parse_dicts(c);
	}
	return c;
fail:
	code_free(c);
	return NULL;
}

size_t
code_dict_size(const struct wcode *c, const char *name)
{
	for (size_t i = 0; i < c->wc_ndicts; i++)
		if (strcmp(c->wc_dicts[i].wd_name, name) == 0)
			return c->wc_dicts[i].wd_size;
	return 0;
}

static bool
same_text(const struct wcode *c, const char *code, size_t len)
{
	if (c->wc_code == NULL || code == NULL)
		return c->wc_code == NULL && code == NULL;
	return c->wc_len == len && memcmp(c->wc_code, code, len) == 0;
}

static int
cmp_code(const void *a, const void *b)
{
	const struct wcode *const *x = a, *const *y = b;

	return strcmp((*x)->wc_dom_id, (*y)->wc_dom_id);
}

struct wgen *
code_gen_build(const struct dfr_config *cfg, const struct wgen *prev)
{
	struct wgen *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->wg_refs = 1;
	g->wg_generation = cfg->cfg_generation;
	if (cfg->cfg_ndomains > 0 &&
	    (g->wg_codes = calloc(cfg->cfg_ndomains, sizeof(*g->wg_codes))) == NULL)
		goto fail;
	for (size_t i = 0; i < cfg->cfg_ndomains; i++) {
		const struct dfr_domain *dom = cfg->cfg_domains[i];
		const char *code = dom->dom_lua_code;
		size_t len = code != NULL ? strlen(code) : 0;
		struct wcode *old = NULL, *c;

		/* blank code is no code */
		if (code != NULL && strspn(code, " \t\r\n") == len)
			code = NULL;
		if (prev != NULL)
			old = code_find(prev, dom->dom_id, strlen(dom->dom_id), NULL, 0);
		if (old != NULL && strcmp(old->wc_dom_name, dom->dom_name) == 0 &&
		    same_text(old, code, len))
			c = code_ref(old);
		else if ((c = code_new(dom->dom_id, dom->dom_name, code, len,
		                       cfg->cfg_generation)) == NULL)
			goto fail;
		g->wg_codes[g->wg_ncodes++] = c;
	}
	/* the config keeps domains sorted by id; look-ups rely on it, so make sure */
	qsort(g->wg_codes, g->wg_ncodes, sizeof(*g->wg_codes), cmp_code);
	return g;
fail:
	code_gen_unref(g);
	return NULL;
}

struct wgen *
code_gen_single(const char *dom_id, const char *dom_name, const char *code, size_t len,
                uint64_t generation)
{
	struct wgen *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->wg_refs = 1;
	g->wg_generation = generation;
	if ((g->wg_codes = calloc(1, sizeof(*g->wg_codes))) == NULL ||
	    (g->wg_codes[0] = code_new(dom_id, dom_name, code, len, generation)) == NULL) {
		code_gen_unref(g);
		return NULL;
	}
	g->wg_ncodes = 1;
	return g;
}

static int
cmp_id(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	int r = memcmp(a, b, alen < blen ? alen : blen);

	if (r != 0)
		return r;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

struct wcode *
code_find(const struct wgen *g, const char *id, size_t idlen, const char *name, size_t namelen)
{
	size_t lo = 0, hi = g->wg_ncodes;

	if (idlen > 0) {
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int r = cmp_id(id, idlen, g->wg_codes[mid]->wc_dom_id);
			if (r == 0)
				return g->wg_codes[mid];
			if (r < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
	}
	if (namelen > 0)
		for (size_t i = 0; i < g->wg_ncodes; i++)
			if (cmp_id(name, namelen, g->wg_codes[i]->wc_dom_name) == 0)
				return g->wg_codes[i];
	return NULL;
}

long
code_index(const struct wgen *g, const struct wcode *c)
{
	size_t lo = 0, hi = g->wg_ncodes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(c->wc_dom_id, g->wg_codes[mid]->wc_dom_id);
		if (r == 0)
			return g->wg_codes[mid] == c ? (long)mid : -1;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}
