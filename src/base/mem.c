/* mem.c: counting allocator with failure injection, aligned memory, arenas,
 * growable buffers.
 *
 * Every block carries a 64-byte header holding its size so that it_free can
 * keep the counters exact without a lookup table; the header size keeps the
 * user pointer 64-byte aligned when the underlying block is, which is what
 * makes it_malloc_aligned a thin wrapper. */
#include "base/mem.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR IT_ALIGN

static _Atomic size_t g_live_bytes;
static _Atomic size_t g_live_blocks;
static _Atomic size_t g_peak_bytes;
static _Atomic long g_fail_countdown = -1;
static _Atomic int g_fail_sticky;

void it_mem_fail_after(long n, int sticky)
{
    g_fail_countdown = n;
    g_fail_sticky = sticky;
}

static int should_fail(void)
{
    long c = g_fail_countdown;
    if (c < 0) return 0;
    if (c == 0) {
        if (!g_fail_sticky) g_fail_countdown = -1;
        return 1;
    }
    g_fail_countdown = c - 1;
    return 0;
}

static void count_add(size_t n)
{
    /* stdatomic calls rather than `+=` and __atomic builtins on _Atomic
     * objects: clang 14 (the fuzz build) rejects the latter. */
    size_t now = atomic_fetch_add(&g_live_bytes, n) + n;
    g_live_blocks++;
    size_t peak = atomic_load(&g_peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak_bytes, &peak, now)) {
    }
}

static void count_sub(size_t n)
{
    g_live_bytes -= n;
    g_live_blocks--;
}

void *it_malloc_aligned(size_t n)
{
    if (should_fail()) return NULL;
    if (n > SIZE_MAX - 2 * HDR) return NULL;
    void *raw = NULL;
    if (posix_memalign(&raw, IT_ALIGN, HDR + (n ? n : 1)) != 0) return NULL;
    *(size_t *)raw = n;
    count_add(n);
    return (char *)raw + HDR;
}

void it_free_aligned(void *p)
{
    if (!p) return;
    char *raw = (char *)p - HDR;
    count_sub(*(size_t *)raw);
    free(raw);
}

void *it_malloc(size_t n) { return it_malloc_aligned(n); }

void it_free(void *p) { it_free_aligned(p); }

void *it_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = it_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *it_realloc(void *p, size_t n)
{
    if (!p) return it_malloc(n);
    size_t old = *(size_t *)((char *)p - HDR);
    if (n <= old && n >= old / 2) return p;
    void *q = it_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    it_free(p);
    return q;
}

char *it_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = it_malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *it_strdup(const char *s) { return it_strndup(s, SIZE_MAX); }

size_t it_mem_live_bytes(void) { return g_live_bytes; }
size_t it_mem_live_blocks(void) { return g_live_blocks; }
size_t it_mem_peak_bytes(void) { return g_peak_bytes; }

/* ---------------------------------------------------------------- arenas */

struct it_arena_block {
    it_arena_block *next;
    size_t cap;
    size_t off;
    /* data follows, aligned because the header is padded to IT_ALIGN */
};

#define BLOCK_HDR ((sizeof(it_arena_block) + IT_ALIGN - 1) / IT_ALIGN * IT_ALIGN)

void it_arena_init(it_arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : (1u << 20);
    a->used = 0;
    a->peak = 0;
}

static it_arena_block *block_new(size_t cap)
{
    if (cap > SIZE_MAX - BLOCK_HDR) return NULL;
    it_arena_block *b = it_malloc_aligned(BLOCK_HDR + cap);
    if (!b) return NULL;
    b->next = NULL;
    b->cap = cap;
    b->off = 0;
    return b;
}

void *it_arena_alloc(it_arena *a, size_t n)
{
    size_t need = (n + IT_ALIGN - 1) / IT_ALIGN * IT_ALIGN;
    if (need < n) return NULL; /* overflow */
    if (need == 0) need = IT_ALIGN;
    it_arena_block *b = a->head;
    if (!b || b->cap - b->off < need) {
        size_t cap = need > a->block_size ? need : a->block_size;
        it_arena_block *nb = block_new(cap);
        if (!nb) return NULL;
        nb->next = a->head;
        a->head = nb;
        b = nb;
    }
    void *p = (char *)b + BLOCK_HDR + b->off;
    b->off += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *it_arena_calloc(it_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = it_arena_alloc(a, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

char *it_arena_strdup(it_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = it_arena_alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

void it_arena_reset(it_arena *a)
{
    /* Keep the largest block so that a steady-state step allocates nothing. */
    it_arena_block *keep = NULL;
    for (it_arena_block *b = a->head; b; b = b->next)
        if (!keep || b->cap > keep->cap) keep = b;
    it_arena_block *b = a->head;
    while (b) {
        it_arena_block *next = b->next;
        if (b != keep) it_free_aligned(b);
        b = next;
    }
    if (keep) {
        keep->next = NULL;
        keep->off = 0;
    }
    a->head = keep;
    a->used = 0;
}

void it_arena_free(it_arena *a)
{
    it_arena_block *b = a->head;
    while (b) {
        it_arena_block *next = b->next;
        it_free_aligned(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---------------------------------------------------------------- buffers */

void it_buf_init(it_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static it_status buf_reserve(it_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1) return IT_ERR_NOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return IT_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = it_realloc(b->data, cap);
    if (!d) return IT_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return IT_OK;
}

it_status it_buf_append(it_buf *b, const void *p, size_t n)
{
    IT_TRY(buf_reserve(b, n));
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return IT_OK;
}

it_status it_buf_printf(it_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return IT_ERR_INTERNAL;
    }
    it_status s = buf_reserve(b, (size_t)n);
    if (s == IT_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return s;
}

void it_buf_free(it_buf *b)
{
    it_free(b->data);
    it_buf_init(b);
}
