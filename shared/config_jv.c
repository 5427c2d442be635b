/*
 * The JSON reader of the config model: a small tree parser that accepts exactly what cJSON
 * 1.7.15 accepts (the same grammar, the same string decoding, the same nesting limit), built for
 * the 40 MB poll answer of 10,000 domains. Its nodes and decoded strings live in an arena that is
 * reset as a whole, and the poll answer's "domains" array is handed over one element at a time,
 * so a domain's tree is built, turned into a struct dfr_domain and dropped while it is still in
 * the cache: no tree of the whole answer, no malloc per node, no free walk.
 *
 * Also here: the arena itself, which a parsed domain uses for all its strings and arrays too.
 */
#include <limits.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "config_int.h"
#include "error.h"

#include <signal.h> /* after config_int.h: it defines F_OK, a name config_int.h uses */

#define JV_NESTING_LIMIT 1000 /* cJSON's CJSON_NESTING_LIMIT */

/* ---- arena ------------------------------------------------------------------------------- */

struct dfr_achunk {
	struct dfr_achunk *ac_next;
	size_t ac_cap;
	max_align_t ac_data[];
};

bool
dfr_arena_init(struct dfr_arena *a, size_t first)
{
	struct dfr_achunk *c;

	memset(a, 0, sizeof(*a));
	if (first < 256)
		first = 256;
	if ((c = malloc(sizeof(*c) + first)) == NULL)
		return false;
	c->ac_next = NULL;
	c->ac_cap = first;
	a->ar_head = c;
	a->ar_cur = (char *)c->ac_data;
	a->ar_left = first;
	return true;
}

void *
dfr_arena_alloc_slow(struct dfr_arena *a, size_t n)
{
	struct dfr_achunk *c;
	size_t cap = a->ar_head != NULL ? a->ar_head->ac_cap * 2 : 4096;
	char *p;

	if (cap < n + 64)
		cap = n + 64;
	if (cap > (64u << 20) && n + 64 < (64u << 20))
		cap = 64u << 20;
	if ((c = malloc(sizeof(*c) + cap)) == NULL)
		return NULL;
	c->ac_cap = cap;
	c->ac_next = a->ar_head;
	a->ar_head = c;
	p = (char *)c->ac_data;
	a->ar_cur = p + n;
	a->ar_left = cap - n;
	return p;
}

char *
dfr_arena_strndup(struct dfr_arena *a, const char *s, size_t n)
{
	char *p = dfr_arena_alloc_raw(a, n + 1);

	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* Keeps the newest (largest) chunk, frees the others. */
void
dfr_arena_reset(struct dfr_arena *a)
{
	struct dfr_achunk *c = a->ar_head, *n;

	if (c == NULL)
		return;
	for (n = c->ac_next; n != NULL;) {
		struct dfr_achunk *x = n;

		n = n->ac_next;
		free(x);
	}
	c->ac_next = NULL;
	a->ar_cur = (char *)c->ac_data;
	a->ar_left = c->ac_cap;
}

void
dfr_achunks_free(struct dfr_achunk *c)
{
	while (c != NULL) {
		struct dfr_achunk *n = c->ac_next;

		free(c);
		c = n;
	}
}

void
dfr_arena_free(struct dfr_arena *a)
{
	dfr_achunks_free(a->ar_head);
	memset(a, 0, sizeof(*a));
}

/* ---- parser ------------------------------------------------------------------------------ */

struct jp {
	const unsigned char *p_buf;
	size_t p_len;
	size_t p_off;
	size_t p_depth;
	struct dfr_arena *p_ar; /* where nodes go now */
	/* Streaming of the root object's first "domains" array (NULL: none). */
	dfr_jv_elem_fn p_fn;
	void *p_arg;
	struct dfr_arena **p_elem_ar; /* read before each element */
	bool p_seen_domains;
	int p_cb_rc;
};

static inline void
skip_ws(struct jp *p)
{
	while (p->p_off < p->p_len && p->p_buf[p->p_off] <= 32)
		p->p_off++;
}

static inline bool
at(const struct jp *p, unsigned char ch)
{
	return p->p_off < p->p_len && p->p_buf[p->p_off] == ch;
}

static struct dfr_jv *
new_node(struct jp *p)
{
	struct dfr_jv *v = dfr_arena_alloc(p->p_ar, sizeof(*v));

	if (v != NULL)
		memset(v, 0, sizeof(*v));
	return v;
}

static unsigned
hex4(const unsigned char *in)
{
	unsigned h = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char ch = in[i];

		if (ch >= '0' && ch <= '9')
			h += (unsigned)(ch - '0');
		else if (ch >= 'A' && ch <= 'F')
			h += 10u + (unsigned)(ch - 'A');
		else if (ch >= 'a' && ch <= 'f')
			h += 10u + (unsigned)(ch - 'a');
		else
			return 0; /* as cJSON: an invalid digit makes the whole code 0 */
		if (i < 3)
			h <<= 4;
	}
	return h;
}

/* cJSON's utf16_literal_to_utf8(): returns the length consumed (6 or 12) or 0 on failure. */
static unsigned
utf16_to_utf8(const unsigned char *in, const unsigned char *end, unsigned char **out)
{
	unsigned long cp;
	unsigned first, len, mark = 0, n;

	if (end - in < 6)
		return 0;
	first = hex4(in + 2);
	if (first >= 0xDC00 && first <= 0xDFFF)
		return 0;
	if (first >= 0xD800 && first <= 0xDBFF) {
		const unsigned char *sec = in + 6;
		unsigned second;

		if (end - sec < 6 || sec[0] != '\\' || sec[1] != 'u')
			return 0;
		second = hex4(sec + 2);
		if (second < 0xDC00 || second > 0xDFFF)
			return 0;
		cp = 0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF));
		len = 12;
	} else {
		cp = first;
		len = 6;
	}
	if (cp < 0x80) {
		n = 1;
	} else if (cp < 0x800) {
		n = 2;
		mark = 0xC0;
	} else if (cp < 0x10000) {
		n = 3;
		mark = 0xE0;
	} else {
		n = 4;
		mark = 0xF0;
	}
	for (unsigned i = n - 1; i > 0; i--) {
		(*out)[i] = (unsigned char)((cp | 0x80) & 0xBF);
		cp >>= 6;
	}
	(*out)[0] = n > 1 ? (unsigned char)((cp | mark) & 0xFF) : (unsigned char)(cp & 0x7F);
	*out += n;
	return len;
}

/* The first '"' or '\\' in [s, lim), or lim; with `nul`, *nul is set when a NUL byte comes
 * before it. Sixteen bytes at a time where SSE2 is there (x86-64 always has it). */
static inline const unsigned char *
scan_special(const unsigned char *s, const unsigned char *lim, bool *nul)
{
#ifdef __SSE2__
	const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\'), z = _mm_setzero_si128();

	while (lim - s >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
		unsigned m = (unsigned)_mm_movemask_epi8(
		        _mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)));

		if (nul != NULL) {
			unsigned zm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, z));

			if (m != 0)
				zm &= (1u << __builtin_ctz(m)) - 1;
			if (zm != 0)
				*nul = true;
		}
		if (m != 0)
			return s + __builtin_ctz(m);
		s += 16;
	}
#endif
	for (; s < lim && *s != '"' && *s != '\\'; s++)
		if (*s == '\0' && nul != NULL)
			*nul = true;
	return s;
}

/* A string at p_off (the opening quote), decoded into the arena. With `slen`, *slen = strlen of
 * the result (a \u0000 or a NUL byte ends it, as in cJSON's C strings); values do without. */
static char *
parse_string(struct jp *p, size_t *slen)
{
	const unsigned char *start = p->p_buf + p->p_off, *in = start + 1, *end;
	const unsigned char *lim = p->p_buf + p->p_len;
	unsigned char *out, *o;
	bool nul = false;
	size_t n;

	if (p->p_off >= p->p_len || *start != '"')
		return NULL;
	end = scan_special(in, lim, slen != NULL ? &nul : NULL);
	if (end >= lim)
		return NULL;
	if (*end == '"') {
		/* No escape: copied as it is. */
		n = (size_t)(end - in);
		if ((out = dfr_arena_alloc_raw(p->p_ar, n + 1)) == NULL)
			return NULL;
		memcpy(out, in, n);
		out[n] = '\0';
		if (slen != NULL)
			*slen = nul ? strlen((char *)out) : n;
		p->p_off = (size_t)(end - p->p_buf) + 1;
		return (char *)out;
	}
	/* The closing quote: the first '"' not escaped (cJSON's scan: a backslash takes the next
	 * byte whatever it is). */
	while (*end == '\\') {
		if (end + 2 >= lim)
			return NULL;
		end = scan_special(end + 2, lim, NULL);
		if (end >= lim)
			return NULL;
	}
	if ((out = dfr_arena_alloc_raw(p->p_ar, (size_t)(end - in) + 1)) == NULL)
		return NULL;
	o = out;
	while (in < end) {
		unsigned k = 2;

		if (*in != '\\') {
			const unsigned char *nb = memchr(in, '\\', (size_t)(end - in));
			size_t run = nb != NULL ? (size_t)(nb - in) : (size_t)(end - in);

			memcpy(o, in, run);
			o += run;
			in += run;
			continue;
		}
		switch (in[1]) {
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case '"':
		case '\\':
		case '/':
			*o++ = in[1];
			break;
		case 'u':
			if ((k = utf16_to_utf8(in, end, &o)) == 0)
				return NULL;
			break;
		default:
			return NULL;
		}
		in += k;
	}
	*o = '\0';
	if (slen != NULL)
		*slen = strlen((char *)out);
	p->p_off = (size_t)(end - p->p_buf) + 1;
	return (char *)out;
}

/* cJSON's parse_number() (Debian's 1.7.15, patched for CVE-2023-26819: no length limit): the
 * whole run of [0-9+-eE.] through strtod, which takes what it can of it. */
static bool
parse_number(struct jp *p, double *out)
{
	char small[64], *num = small, *after;
	size_t i, n = p->p_len - p->p_off;
	const unsigned char *s = p->p_buf + p->p_off;
	bool simple = true, dot = false;

	for (i = 0; i < n; i++) {
		unsigned char ch = s[i];

		if (ch >= '0' && ch <= '9')
			continue;
		if (ch == '-' && i == 0)
			continue;
		if (ch == '+' || ch == '-' || ch == 'e' || ch == 'E' || ch == '.') {
			simple = false;
			dot = dot || ch == '.';
			continue;
		}
		break;
	}
	if (simple && i > 0 && i <= 16 && !(i == 1 && s[0] == '-')) {
		/* An integer of at most 16 digits: one correctly rounded conversion, as strtod
		 * makes it. */
		unsigned long long u = 0;
		size_t k = s[0] == '-';

		for (; k < i; k++)
			u = u * 10 + (unsigned)(s[k] - '0');
		*out = s[0] == '-' ? -(double)u : (double)u;
		p->p_off += i;
		return true;
	}
	if (i >= sizeof(small) && (num = malloc(i + 1)) == NULL)
		return false;
	memcpy(num, s, i);
	num[i] = '\0';
	if (dot) {
		const char *dp = localeconv()->decimal_point;

		if (dp != NULL && dp[0] != '\0' && dp[0] != '.')
			for (size_t k = 0; k < i; k++)
				if (num[k] == '.')
					num[k] = dp[0];
	}
	*out = strtod(num, &after);
	if (after != num)
		p->p_off += (size_t)(after - num);
	if (num != small)
		free(num);
	return after != num;
}

static struct dfr_jv *parse_value(struct jp *p);

static struct dfr_jv *
parse_array(struct jp *p, bool stream)
{
	struct dfr_jv *arr, *last = NULL;
	size_t begin = p->p_off;

	if (p->p_depth >= JV_NESTING_LIMIT)
		return NULL;
	p->p_depth++;
	if ((arr = new_node(p)) == NULL)
		return NULL;
	arr->jv_type = DFR_JV_ARRAY;
	p->p_off++; /* '[' */
	skip_ws(p);
	if (at(p, ']'))
		goto done;
	if (p->p_off >= p->p_len)
		return NULL;
	p->p_off--;
	do {
		struct dfr_jv *v;
		struct dfr_arena *saved = p->p_ar;

		p->p_off++;
		skip_ws(p);
		if (stream)
			p->p_ar = *p->p_elem_ar;
		v = parse_value(p);
		if (stream) {
			p->p_ar = saved;
			if (v == NULL)
				return NULL;
			if (p->p_cb_rc == DFR_OK)
				p->p_cb_rc = p->p_fn(p->p_arg, v, arr->jv_n);
			else
				dfr_arena_reset(*p->p_elem_ar); /* nobody takes it */
			arr->jv_n++;
			skip_ws(p);
			continue;
		}
		if (v == NULL)
			return NULL;
		if (last == NULL)
			arr->jv_child = v;
		else
			last->jv_next = v;
		last = v;
		arr->jv_n++;
		skip_ws(p);
	} while (at(p, ','));
	if (!at(p, ']'))
		return NULL;
done:
	p->p_depth--;
	p->p_off++;
	arr->jv_raw = (const char *)p->p_buf + begin;
	arr->jv_rawlen = p->p_off - begin;
	return arr;
}

static struct dfr_jv *
parse_object(struct jp *p)
{
	struct dfr_jv *obj, *last = NULL;
	size_t begin = p->p_off;

	if (p->p_depth >= JV_NESTING_LIMIT)
		return NULL;
	p->p_depth++;
	if ((obj = new_node(p)) == NULL)
		return NULL;
	obj->jv_type = DFR_JV_OBJECT;
	p->p_off++; /* '{' */
	skip_ws(p);
	if (at(p, '}'))
		goto done;
	if (p->p_off >= p->p_len)
		return NULL;
	p->p_off--;
	do {
		struct dfr_jv *v;
		const char *key;
		size_t klen;
		bool stream;

		p->p_off++;
		skip_ws(p);
		if ((key = parse_string(p, &klen)) == NULL)
			return NULL;
		skip_ws(p);
		if (!at(p, ':'))
			return NULL;
		p->p_off++;
		skip_ws(p);
		stream = p->p_fn != NULL && p->p_depth == 1 && !p->p_seen_domains && klen == 7 &&
		         memcmp(key, "domains", 7) == 0;
		if (stream)
			p->p_seen_domains = true;
		if (stream && at(p, '['))
			v = parse_array(p, true);
		else
			v = parse_value(p);
		if (v == NULL)
			return NULL;
		v->jv_key = key;
		v->jv_keylen = klen;
		if (last == NULL)
			obj->jv_child = v;
		else
			last->jv_next = v;
		last = v;
		obj->jv_n++;
		skip_ws(p);
	} while (at(p, ','));
	if (!at(p, '}'))
		return NULL;
done:
	p->p_depth--;
	p->p_off++;
	obj->jv_raw = (const char *)p->p_buf + begin;
	obj->jv_rawlen = p->p_off - begin;
	return obj;
}

static struct dfr_jv *
parse_value(struct jp *p)
{
	size_t left = p->p_len - p->p_off;
	const unsigned char *s = p->p_buf + p->p_off;
	struct dfr_jv *v;

	if (p->p_off >= p->p_len)
		return NULL;
	switch (s[0]) {
	case 'n':
	case 'f':
	case 't':
		if ((v = new_node(p)) == NULL)
			return NULL;
		if (left >= 4 && memcmp(s, "null", 4) == 0) {
			v->jv_type = DFR_JV_NULL;
			p->p_off += 4;
		} else if (left >= 5 && memcmp(s, "false", 5) == 0) {
			v->jv_type = DFR_JV_FALSE;
			p->p_off += 5;
		} else if (left >= 4 && memcmp(s, "true", 4) == 0) {
			v->jv_type = DFR_JV_TRUE;
			p->p_off += 4;
		} else {
			return NULL;
		}
		return v;
	case '"':
		if ((v = new_node(p)) == NULL)
			return NULL;
		v->jv_type = DFR_JV_STRING;
		if ((v->jv_str = parse_string(p, NULL)) == NULL)
			return NULL;
		return v;
	case '[':
		return parse_array(p, false);
	case '{':
		return parse_object(p);
	default:
		if (s[0] != '-' && !(s[0] >= '0' && s[0] <= '9'))
			return NULL;
		if ((v = new_node(p)) == NULL)
			return NULL;
		v->jv_type = DFR_JV_NUMBER;
		if (!parse_number(p, &v->jv_num))
			return NULL;
		return v;
	}
}

struct dfr_jv *
dfr_jv_parse(const char *buf, size_t len, struct dfr_arena *ar, dfr_jv_elem_fn fn, void *arg,
             struct dfr_arena **elem_ar, size_t *end, int *cb_rc)
{
	struct jp p = {.p_buf = (const unsigned char *)buf,
	               .p_len = len,
	               .p_ar = ar,
	               .p_fn = fn,
	               .p_arg = arg,
	               .p_elem_ar = elem_ar,
	               .p_cb_rc = DFR_OK};
	struct dfr_jv *root;

	*end = 0;
	if (buf == NULL || len == 0)
		return NULL;
	if (len > 4 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		p.p_off = 3;
	skip_ws(&p);
	root = parse_value(&p);
	/* On a failure, the position as cJSON reports it. */
	*end = root != NULL || p.p_off < len ? p.p_off : len - 1;
	if (cb_rc != NULL)
		*cb_rc = p.p_cb_rc;
	return root;
}

int
dfr_cfg_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
