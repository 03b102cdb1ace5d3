/* textmap.h: the two hash maps the text module needs.
 *
 * Owns: it_strmap (byte string -> int32, keys copied into one pool; used for
 * vocabularies, word caches and training word counts) and it_u64map (64-bit
 * key -> 64-bit value; used for merge ranks keyed by a token-id pair and for
 * pair counts). Open addressing with linear probing, power-of-two tables
 * kept at most half full, no deletion (callers rebuild or clear).
 * Does not own what keys mean. */
#ifndef IT_TEXTMAP_H
#define IT_TEXTMAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/mem.h"
#include "base/status.h"

typedef struct it_strmap_entry {
    size_t off;      /* key bytes at pool + off, NUL-terminated */
    uint32_t len;
    int32_t val;
    uint64_t hash;
} it_strmap_entry;

typedef struct it_strmap {
    it_strmap_entry *entries; /* (n) in insertion order */
    uint32_t *slots;          /* (cap) entry index + 1, 0 = empty */
    size_t n, n_alloc, cap;
    char *pool;               /* (pool_len) every key, each NUL-terminated */
    size_t pool_len, pool_cap;
} it_strmap;

/* Key of entry i (NUL-terminated); valid until the next put. */
static inline const char *it_strmap_key(const it_strmap *m, size_t i)
{
    return m->pool + m->entries[i].off;
}

void it_strmap_init(it_strmap *m);
void it_strmap_free(it_strmap *m);
/* Forgets every entry, keeps the memory for reuse. */
void it_strmap_clear(it_strmap *m);
/* Inserts or overwrites; *index_out (may be NULL) gets the entry index. */
it_status it_strmap_put(it_err *err, it_strmap *m, const char *key, size_t len, int32_t val,
                        size_t *index_out);
/* Entry index or -1. */
long it_strmap_find(const it_strmap *m, const char *key, size_t len);
/* 1 and *val if present, else 0. */
int it_strmap_get(const it_strmap *m, const char *key, size_t len, int32_t *val);

typedef struct it_u64map {
    uint64_t *keys;   /* (cap) */
    uint64_t *vals;   /* (cap) */
    uint8_t *used;    /* (cap) */
    size_t n, cap;
} it_u64map;

void it_u64map_init(it_u64map *m);
void it_u64map_free(it_u64map *m);
it_status it_u64map_put(it_err *err, it_u64map *m, uint64_t key, uint64_t val);
/* Pointer to the value or NULL; valid until the next put. */
uint64_t *it_u64map_get(const it_u64map *m, uint64_t key);

uint64_t it_text_hash(const void *p, size_t n);

#endif
