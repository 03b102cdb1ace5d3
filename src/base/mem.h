/* mem.h: the one allocation layer, 64-byte aligned buffers, and arenas.
 *
 * Owns: every heap allocation of the library goes through it_malloc and
 * friends, which count live bytes and can inject failures (tests use that to
 * prove that an out-of-memory path returns IT_ERR_NOMEM and leaks nothing).
 * Arenas serve memory whose lifetime is one phase (a step, a request): bump
 * allocation, reset at once. Does not own memory-mapped files (fileio.h). */
#ifndef IT_MEM_H
#define IT_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define IT_ALIGN 64

void *it_malloc(size_t n);
void *it_calloc(size_t count, size_t size); /* checks count*size overflow */
void *it_realloc(void *p, size_t n);
void it_free(void *p);
char *it_strdup(const char *s);
char *it_strndup(const char *s, size_t n);

/* 64-byte aligned, counted; free with it_free_aligned. */
void *it_malloc_aligned(size_t n);
void it_free_aligned(void *p);

/* Live bytes and number of live blocks allocated through this layer. */
size_t it_mem_live_bytes(void);
size_t it_mem_live_blocks(void);
size_t it_mem_peak_bytes(void);

/* Failure injection: the n-th allocation from now (0 = the next one) fails,
 * and every later one too if sticky. n < 0 disables. Test-only. */
void it_mem_fail_after(long n, int sticky);

/* Arena: a chain of aligned blocks; allocations are 64-byte aligned. */
typedef struct it_arena_block it_arena_block;
typedef struct it_arena {
    it_arena_block *head;   /* current block, newest first */
    size_t block_size;      /* default capacity of new blocks */
    size_t used;            /* bytes handed out since the last reset */
    size_t peak;            /* largest `used` ever seen */
} it_arena;

void it_arena_init(it_arena *a, size_t block_size);
/* NULL on out-of-memory. Zero-size requests return a valid unique pointer. */
void *it_arena_alloc(it_arena *a, size_t n);
void *it_arena_calloc(it_arena *a, size_t count, size_t size);
char *it_arena_strdup(it_arena *a, const char *s);
/* Keeps the largest block for reuse, frees the others. */
void it_arena_reset(it_arena *a);
void it_arena_free(it_arena *a);

/* Growable byte buffer (Redis-style sds, simpler): for building text. */
typedef struct it_buf {
    char *data;   /* always NUL-terminated when len > 0 or after append */
    size_t len;
    size_t cap;
} it_buf;

void it_buf_init(it_buf *b);
it_status it_buf_append(it_buf *b, const void *p, size_t n);
it_status it_buf_printf(it_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void it_buf_free(it_buf *b);

#endif
