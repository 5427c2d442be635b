/*
 * ngx.shared dicts: small key/value stores shared by every worker thread, one set per domain
 * (a tenant never sees another's), with TTLs and a byte bound enforced by least-recently-used
 * eviction, as lua-nginx-module's shared dicts (ngx_http_lua_shdict.c) behave.
 *
 * Each dict is a hash table plus an LRU list under one mutex. Operations are short and copy
 * out under the lock, never calling into Lua (a Lua error would jump out holding it). Entries
 * are allocated on demand, so a dict's size is a bound, not a reservation. Time is the monotonic
 * clock in milliseconds: wall-clock steps do not expire or revive entries.
 *
 * Dicts live in a registry by (domain id, name) and survive config generations, so a change of
 * a domain's code does not reset its rate-limit counters; a domain removed from the config
 * loses its dicts (shdict_prune). This file does not know Lua: ngx.c binds it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "log.h"
#include "wafd.h"

struct shent {
	struct shent *se_hnext;          /* hash chain */
	struct shent *se_prev, *se_next; /* LRU list, most recent first */
	uint32_t se_hash;
	uint32_t se_klen, se_vlen;
	uint8_t se_type; /* enum shval_type */
	bool se_bool;
	uint32_t se_flags;
	double se_num;
	uint64_t se_expire_ms; /* monotonic; 0: never */
	char se_data[];        /* key, then a string value */
};

struct shdict {
	int sd_refs; /* atomic */
	char *sd_dom_id, *sd_name;
	pthread_mutex_t sd_lock;
	struct shent **sd_buckets;
	size_t sd_nbuckets;
	struct shent *sd_head, *sd_tail; /* LRU */
	size_t sd_used, sd_cap, sd_count;
	struct shdict *sd_next; /* registry */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shdict *registry;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t
hash_key(const char *k, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)k[i]) * 16777619u;
	return h;
}

static size_t
ent_cost(size_t klen, size_t vlen)
{
	return sizeof(struct shent) + klen + vlen;
}

static bool
expired(const struct shent *e, uint64_t now)
{
	return e->se_expire_ms != 0 && e->se_expire_ms <= now;
}

static void
lru_unlink(struct shdict *d, struct shent *e)
{
	if (e->se_prev != NULL)
		e->se_prev->se_next = e->se_next;
	else
		d->sd_head = e->se_next;
	if (e->se_next != NULL)
		e->se_next->se_prev = e->se_prev;
	else
		d->sd_tail = e->se_prev;
	e->se_prev = e->se_next = NULL;
}

static void
lru_push(struct shdict *d, struct shent *e)
{
	e->se_prev = NULL;
	e->se_next = d->sd_head;
	if (d->sd_head != NULL)
		d->sd_head->se_prev = e;
	d->sd_head = e;
	if (d->sd_tail == NULL)
		d->sd_tail = e;
}

static struct shent **
find_slot(struct shdict *d, const char *key, size_t klen, uint32_t h)
{
	struct shent **pp = &d->sd_buckets[h & (d->sd_nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->se_hnext) {
		struct shent *e = *pp;
		if (e->se_hash == h && e->se_klen == klen && memcmp(e->se_data, key, klen) == 0)
			return pp;
	}
	return pp;
}

static void
ent_remove(struct shdict *d, struct shent *e)
{
	struct shent **pp = &d->sd_buckets[e->se_hash & (d->sd_nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->se_hnext;
	*pp = e->se_hnext;
	lru_unlink(d, e);
	d->sd_used -= ent_cost(e->se_klen, e->se_vlen);
	d->sd_count--;
	free(e);
}

static void
grow(struct shdict *d)
{
	size_t n = d->sd_nbuckets * 2;
	struct shent **nb = calloc(n, sizeof(*nb));

	if (nb == NULL)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < d->sd_nbuckets; i++) {
		struct shent *e = d->sd_buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->se_hnext;
			e->se_hnext = nb[e->se_hash & (n - 1)];
			nb[e->se_hash & (n - 1)] = e;
		}
	}
	free(d->sd_buckets);
	d->sd_buckets = nb;
	d->sd_nbuckets = n;
}

/* Makes room for `need` bytes: expired entries at the LRU end first, then (when `force`) the
 * least recently used ones. True when there is room; *forcible when live entries went. */
static bool
make_room(struct shdict *d, size_t need, bool force, bool *forcible, uint64_t now)
{
	struct shent *e, *prev;
	int scanned = 0;

	if (need > d->sd_cap)
		return false;
	for (e = d->sd_tail; e != NULL && d->sd_used + need > d->sd_cap && scanned < 64; e = prev) {
		prev = e->se_prev;
		scanned++;
		if (expired(e, now))
			ent_remove(d, e);
	}
	if (d->sd_used + need > d->sd_cap && !force) {
		/* a full scan for expired entries before refusing a safe_set */
		for (e = d->sd_tail; e != NULL && d->sd_used + need > d->sd_cap; e = prev) {
			prev = e->se_prev;
			if (expired(e, now))
				ent_remove(d, e);
		}
		return d->sd_used + need <= d->sd_cap;
	}
	while (d->sd_used + need > d->sd_cap && d->sd_tail != NULL) {
		ent_remove(d, d->sd_tail);
		*forcible = true;
	}
	return d->sd_used + need <= d->sd_cap;
}

static void
put_value(struct shent *e, const struct shval *v)
{
	e->se_type = (uint8_t)v->sv_type;
	e->se_bool = v->sv_bool;
	e->se_num = v->sv_num;
	e->se_flags = v->sv_flags;
	if (v->sv_type == SHV_STRING && v->sv_len > 0)
		memcpy(e->se_data + e->se_klen, v->sv_str, v->sv_len);
}

static uint64_t
expire_at(double ttl, uint64_t now)
{
	uint64_t ms;

	if (!(ttl > 0))
		return 0;
	if (ttl > 1e9)
		ttl = 1e9;
	ms = (uint64_t)(ttl * 1000.0);
	return now + (ms > 0 ? ms : 1);
}

/* Stores a new entry for key (the caller removed any old one). */
static int
insert(struct shdict *d, const char *key, size_t klen, uint32_t h, const struct shval *v,
       uint64_t expire, bool force, bool *forcible, uint64_t now)
{
	size_t vlen = v->sv_type == SHV_STRING ? v->sv_len : 0;
	size_t cost = ent_cost(klen, vlen);
	struct shent *e;

	if (!make_room(d, cost, force, forcible, now))
		return DFR_ENOMEM;
	if ((e = malloc(cost)) == NULL)
		return DFR_ENOMEM;
	memset(e, 0, sizeof(*e));
	e->se_hash = h;
	e->se_klen = (uint32_t)klen;
	e->se_vlen = (uint32_t)vlen;
	memcpy(e->se_data, key, klen);
	put_value(e, v);
	e->se_expire_ms = expire;
	/* make_room may have removed entries of this chain: look the slot up again */
	e->se_hnext = d->sd_buckets[h & (d->sd_nbuckets - 1)];
	d->sd_buckets[h & (d->sd_nbuckets - 1)] = e;
	lru_push(d, e);
	d->sd_used += cost;
	d->sd_count++;
	if (d->sd_count > d->sd_nbuckets)
		grow(d);
	return DFR_OK;
}

/* ---- operations --------------------------------------------------------------------------- */

int
shdict_get(struct shdict *d, const char *key, size_t klen, struct shval *v, struct wbuf *buf)
{
	uint32_t h = hash_key(key, klen);
	uint64_t now = now_ms();
	struct shent *e;
	int rc = DFR_OK;

	pthread_mutex_lock(&d->sd_lock);
	e = *find_slot(d, key, klen, h);
	if (e != NULL && expired(e, now)) {
		ent_remove(d, e);
		e = NULL;
	}
	if (e == NULL) {
		rc = DFR_ENOTFOUND;
		goto out;
	}
	lru_unlink(d, e);
	lru_push(d, e);
	v->sv_type = e->se_type;
	v->sv_bool = e->se_bool;
	v->sv_num = e->se_num;
	v->sv_flags = e->se_flags;
	v->sv_len = 0;
	v->sv_str = NULL;
	if (e->se_type == SHV_STRING) {
		buf->b_len = 0;
		if ((rc = wbuf_append(buf, e->se_data + e->se_klen, e->se_vlen)) != DFR_OK)
			goto out;
		v->sv_str = buf->b_data;
		v->sv_len = e->se_vlen;
	}
out:
	pthread_mutex_unlock(&d->sd_lock);
	return rc;
}

int
shdict_set(struct shdict *d, const char *key, size_t klen, const struct shval *v, double ttl,
           enum shdict_mode mode, bool *forcible)
{
	uint32_t h = hash_key(key, klen);
	uint64_t now = now_ms();
	struct shent *e;
	int rc = DFR_OK;

	*forcible = false;
	pthread_mutex_lock(&d->sd_lock);
	e = *find_slot(d, key, klen, h);
	if (e != NULL && expired(e, now)) {
		ent_remove(d, e);
		e = NULL;
	}
	if (mode == SHD_ADD && e != NULL) {
		rc = -EEXIST;
		goto out;
	}
	if (mode == SHD_REPLACE && e == NULL) {
		rc = DFR_ENOTFOUND;
		goto out;
	}
	if (v->sv_type == SHV_NIL) {
		if (e != NULL)
			ent_remove(d, e);
		goto out;
	}
	/* same size: update in place */
	if (e != NULL && e->se_vlen == (v->sv_type == SHV_STRING ? v->sv_len : 0)) {
		put_value(e, v);
		e->se_expire_ms = expire_at(ttl, now);
		lru_unlink(d, e);
		lru_push(d, e);
		goto out;
	}
	if (e != NULL)
		ent_remove(d, e);
	rc = insert(d, key, klen, h, v, expire_at(ttl, now), mode != SHD_SAFE_SET, forcible, now);
out:
	pthread_mutex_unlock(&d->sd_lock);
	return rc;
}

int
shdict_incr(struct shdict *d, const char *key, size_t klen, double delta, bool has_init,
            double init, double init_ttl, double *out, bool *forcible)
{
	uint32_t h = hash_key(key, klen);
	uint64_t now = now_ms();
	struct shent *e;
	int rc = DFR_OK;

	*forcible = false;
	pthread_mutex_lock(&d->sd_lock);
	e = *find_slot(d, key, klen, h);
	if (e != NULL && expired(e, now)) {
		ent_remove(d, e);
		e = NULL;
	}
	if (e == NULL) {
		struct shval v = {.sv_type = SHV_NUMBER, .sv_num = init + delta};
		if (!has_init) {
			rc = DFR_ENOTFOUND;
			goto out;
		}
		rc = insert(d, key, klen, h, &v, expire_at(init_ttl, now), true, forcible, now);
		if (rc == DFR_OK)
			*out = v.sv_num;
		goto out;
	}
	if (e->se_type != SHV_NUMBER) {
		rc = DFR_EINVAL;
		goto out;
	}
	e->se_num += delta;
	*out = e->se_num;
	lru_unlink(d, e);
	lru_push(d, e);
out:
	pthread_mutex_unlock(&d->sd_lock);
	return rc;
}

int
shdict_ttl(struct shdict *d, const char *key, size_t klen, double *out)
{
	uint64_t now = now_ms();
	struct shent *e;
	int rc = DFR_OK;

	pthread_mutex_lock(&d->sd_lock);
	e = *find_slot(d, key, klen, hash_key(key, klen));
	if (e == NULL || expired(e, now))
		rc = DFR_ENOTFOUND;
	else
		*out = e->se_expire_ms == 0 ? 0 : (double)(e->se_expire_ms - now) / 1000.0;
	pthread_mutex_unlock(&d->sd_lock);
	return rc;
}

int
shdict_expire(struct shdict *d, const char *key, size_t klen, double ttl)
{
	uint64_t now = now_ms();
	struct shent *e;
	int rc = DFR_OK;

	pthread_mutex_lock(&d->sd_lock);
	e = *find_slot(d, key, klen, hash_key(key, klen));
	if (e == NULL || expired(e, now))
		rc = DFR_ENOTFOUND;
	else
		e->se_expire_ms = expire_at(ttl, now);
	pthread_mutex_unlock(&d->sd_lock);
	return rc;
}

void
shdict_flush_all(struct shdict *d)
{
	pthread_mutex_lock(&d->sd_lock);
	while (d->sd_head != NULL)
		ent_remove(d, d->sd_head);
	pthread_mutex_unlock(&d->sd_lock);
}

size_t
shdict_flush_expired(struct shdict *d, size_t max)
{
	uint64_t now = now_ms();
	struct shent *e, *prev;
	size_t n = 0;

	pthread_mutex_lock(&d->sd_lock);
	for (e = d->sd_tail; e != NULL && (max == 0 || n < max); e = prev) {
		prev = e->se_prev;
		if (expired(e, now)) {
			ent_remove(d, e);
			n++;
		}
	}
	pthread_mutex_unlock(&d->sd_lock);
	return n;
}

size_t
shdict_keys(struct shdict *d, size_t max, struct wbuf *buf)
{
	uint64_t now = now_ms();
	size_t n = 0;

	buf->b_len = 0;
	pthread_mutex_lock(&d->sd_lock);
	for (struct shent *e = d->sd_head; e != NULL && (max == 0 || n < max); e = e->se_next) {
		uint32_t kl = e->se_klen;
		if (expired(e, now))
			continue;
		if (wbuf_append(buf, &kl, sizeof(kl)) != DFR_OK ||
		    wbuf_append(buf, e->se_data, kl) != DFR_OK)
			break;
		n++;
	}
	pthread_mutex_unlock(&d->sd_lock);
	return n;
}

size_t
shdict_capacity(struct shdict *d)
{
	size_t c;

	pthread_mutex_lock(&d->sd_lock);
	c = d->sd_cap;
	pthread_mutex_unlock(&d->sd_lock);
	return c;
}

size_t
shdict_free_space(struct shdict *d)
{
	size_t f;

	pthread_mutex_lock(&d->sd_lock);
	f = d->sd_cap > d->sd_used ? d->sd_cap - d->sd_used : 0;
	pthread_mutex_unlock(&d->sd_lock);
	return f;
}

size_t
shdict_count(struct shdict *d)
{
	size_t c;

	pthread_mutex_lock(&d->sd_lock);
	c = d->sd_count;
	pthread_mutex_unlock(&d->sd_lock);
	return c;
}

/* ---- registry ----------------------------------------------------------------------------- */

static void
dict_free(struct shdict *d)
{
	while (d->sd_head != NULL)
		ent_remove(d, d->sd_head);
	pthread_mutex_destroy(&d->sd_lock);
	free(d->sd_buckets);
	free(d->sd_dom_id);
	free(d->sd_name);
	free(d);
}

void
shdict_unref(struct shdict *d)
{
	if (d != NULL && __atomic_sub_fetch(&d->sd_refs, 1, __ATOMIC_ACQ_REL) == 0)
		dict_free(d);
}

struct shdict *
shdict_open(const char *dom_id, const char *name, size_t size)
{
	struct shdict *d;
	unsigned n = 0;

	pthread_mutex_lock(&registry_lock);
	for (d = registry; d != NULL; d = d->sd_next) {
		if (strcmp(d->sd_dom_id, dom_id) != 0)
			continue;
		if (strcmp(d->sd_name, name) == 0)
			break;
		n++;
	}
	if (d != NULL) {
		__atomic_add_fetch(&d->sd_refs, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&registry_lock);
		if (size > 0) {
			pthread_mutex_lock(&d->sd_lock);
			d->sd_cap = size; /* a smaller bound evicts on the next store */
			pthread_mutex_unlock(&d->sd_lock);
		}
		return d;
	}
	if (n >= WAFD_SHDICT_MAX_PER_DOMAIN) {
		pthread_mutex_unlock(&registry_lock);
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->sd_buckets = calloc(64, sizeof(*d->sd_buckets))) == NULL ||
	    (d->sd_dom_id = strdup(dom_id)) == NULL || (d->sd_name = strdup(name)) == NULL) {
		pthread_mutex_unlock(&registry_lock);
		if (d != NULL) {
			free(d->sd_buckets);
			free(d->sd_dom_id);
			free(d);
		}
		return NULL;
	}
	pthread_mutex_init(&d->sd_lock, NULL);
	d->sd_nbuckets = 64;
	d->sd_cap = size > 0 ? size : (size_t)WAFD_SHDICT_DEFAULT_KB * 1024;
	d->sd_refs = 2; /* the registry's and the caller's */
	d->sd_next = registry;
	registry = d;
	pthread_mutex_unlock(&registry_lock);
	return d;
}

void
shdict_prune(const struct wgen *gen)
{
	struct shdict **pp, *d, *gone = NULL;

	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; (d = *pp) != NULL;) {
		if (gen == NULL ||
		    code_find(gen, d->sd_dom_id, strlen(d->sd_dom_id), NULL, 0) == NULL) {
			*pp = d->sd_next;
			d->sd_next = gone;
			gone = d;
		} else {
			pp = &d->sd_next;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	while ((d = gone) != NULL) {
		gone = d->sd_next;
		shdict_unref(d);
	}
}

void
shdict_registry_clear(void)
{
	shdict_prune(NULL);
}
