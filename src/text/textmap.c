/* textmap.c: open-addressing hash maps for the text module. */
#include "text/textmap.h"

#include <string.h>

/* FNV-1a, then a final avalanche (splitmix64) so that low bits of the table
 * index are well mixed for short keys. */
uint64_t it_text_hash(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* ------------------------------------------------------------------------ */

void it_strmap_init(it_strmap *m)
{
    memset(m, 0, sizeof *m);
}

void it_strmap_free(it_strmap *m)
{
    it_free(m->entries);
    it_free(m->slots);
    it_free(m->pool);
    memset(m, 0, sizeof *m);
}

void it_strmap_clear(it_strmap *m)
{
    m->n = 0;
    if (m->slots) memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->pool_len = 0;
}

static long find_slot(const it_strmap *m, const char *key, size_t len, uint64_t h, size_t *slot)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint32_t e = m->slots[i];
        if (!e) {
            *slot = i;
            return -1;
        }
        const it_strmap_entry *en = &m->entries[e - 1];
        if (en->hash == h && en->len == len && memcmp(m->pool + en->off, key, len) == 0) {
            *slot = i;
            return (long)e - 1;
        }
    }
}

static it_status strmap_grow(it_err *err, it_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    if (cap > UINT32_MAX) return it_err_set(err, IT_ERR_RANGE, "hash map: too many entries");
    uint32_t *slots = it_calloc(cap, sizeof *slots);
    if (!slots) return it_err_set(err, IT_ERR_NOMEM, "hash map: out of memory (%zu slots)", cap);
    for (size_t k = 0; k < m->n; k++) {
        size_t i = (size_t)m->entries[k].hash & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = (uint32_t)(k + 1);
    }
    it_free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return IT_OK;
}

it_status it_strmap_put(it_err *err, it_strmap *m, const char *key, size_t len, int32_t val,
                        size_t *index_out)
{
    if (len > UINT32_MAX) return it_err_set(err, IT_ERR_RANGE, "hash map: key of %zu bytes", len);
    if ((m->n + 1) * 2 > m->cap) IT_TRY(strmap_grow(err, m));
    uint64_t h = it_text_hash(key, len);
    size_t slot;
    long e = find_slot(m, key, len, h, &slot);
    if (e >= 0) {
        m->entries[e].val = val;
        if (index_out) *index_out = (size_t)e;
        return IT_OK;
    }
    if (m->n == m->n_alloc) {
        size_t na = m->n_alloc ? m->n_alloc * 2 : 64;
        it_strmap_entry *ne = it_realloc(m->entries, na * sizeof *ne);
        if (!ne) return it_err_set(err, IT_ERR_NOMEM, "hash map: out of memory (%zu entries)", na);
        m->entries = ne;
        m->n_alloc = na;
    }
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t nc = m->pool_cap ? m->pool_cap : 4096;
        while (nc < m->pool_len + len + 1) nc *= 2;
        char *np = it_realloc(m->pool, nc);
        if (!np) return it_err_set(err, IT_ERR_NOMEM, "hash map: out of memory (%zu key bytes)", nc);
        m->pool = np;
        m->pool_cap = nc;
    }
    memcpy(m->pool + m->pool_len, key, len);
    m->pool[m->pool_len + len] = 0;
    m->entries[m->n] = (it_strmap_entry){m->pool_len, (uint32_t)len, val, h};
    m->pool_len += len + 1;
    m->slots[slot] = (uint32_t)(m->n + 1);
    if (index_out) *index_out = m->n;
    m->n++;
    return IT_OK;
}

long it_strmap_find(const it_strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    size_t slot;
    return find_slot(m, key, len, it_text_hash(key, len), &slot);
}

int it_strmap_get(const it_strmap *m, const char *key, size_t len, int32_t *val)
{
    long e = it_strmap_find(m, key, len);
    if (e < 0) return 0;
    *val = m->entries[e].val;
    return 1;
}

/* ------------------------------------------------------------------------ */

void it_u64map_init(it_u64map *m) { memset(m, 0, sizeof *m); }

void it_u64map_free(it_u64map *m)
{
    it_free(m->keys);
    it_free(m->vals);
    it_free(m->used);
    memset(m, 0, sizeof *m);
}

static it_status u64map_grow(it_err *err, it_u64map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = it_calloc(cap, sizeof *keys);
    uint64_t *vals = it_calloc(cap, sizeof *vals);
    uint8_t *used = it_calloc(cap, 1);
    if (!keys || !vals || !used) {
        it_free(keys);
        it_free(vals);
        it_free(used);
        return it_err_set(err, IT_ERR_NOMEM, "hash map: out of memory (%zu slots)", cap);
    }
    for (size_t k = 0; k < m->cap; k++) {
        if (!m->used[k]) continue;
        size_t i = (size_t)mix64(m->keys[k]) & (cap - 1);
        while (used[i]) i = (i + 1) & (cap - 1);
        used[i] = 1;
        keys[i] = m->keys[k];
        vals[i] = m->vals[k];
    }
    it_free(m->keys);
    it_free(m->vals);
    it_free(m->used);
    m->keys = keys;
    m->vals = vals;
    m->used = used;
    m->cap = cap;
    return IT_OK;
}

it_status it_u64map_put(it_err *err, it_u64map *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 2 > m->cap) IT_TRY(u64map_grow(err, m));
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask) {
        if (!m->used[i]) {
            m->used[i] = 1;
            m->keys[i] = key;
            m->vals[i] = val;
            m->n++;
            return IT_OK;
        }
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return IT_OK;
        }
    }
}

uint64_t *it_u64map_get(const it_u64map *m, uint64_t key)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)mix64(key) & mask; m->used[i]; i = (i + 1) & mask)
        if (m->keys[i] == key) return &m->vals[i];
    return NULL;
}
