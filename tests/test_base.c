/* test_base.c: errors, memory, arenas, buffers, RNG, files. */
#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "base/status.h"
#include "base/threads.h"
#include "test.h"

IT_TEST(base_err_set_and_prefix) {
    it_err e;
    it_err_clear(&e);
    IT_CHECK_INT(e.code, IT_OK);
    IT_CHECK_INT(it_err_set(&e, IT_ERR_FORMAT, "bad %s at %d", "header", 7), IT_ERR_FORMAT);
    IT_CHECK_STR(e.msg, "bad header at 7");
    it_err_prefix(&e, "%s", "model.safetensors");
    IT_CHECK_STR(e.msg, "model.safetensors: bad header at 7");
    IT_CHECK_STR(it_status_str(IT_ERR_NOMEM), "out of memory");
    IT_CHECK_INT(it_err_set(NULL, IT_ERR_IO, "x"), IT_ERR_IO);
}

IT_TEST(base_mem_counts_and_injects) {
    size_t live = it_mem_live_bytes();
    char *p = it_malloc(100);
    IT_REQUIRE(p);
    IT_CHECK(((uintptr_t)p % IT_ALIGN) == 0);
    IT_CHECK_INT(it_mem_live_bytes(), live + 100);
    p = it_realloc(p, 1000);
    IT_REQUIRE(p);
    it_free(p);
    IT_CHECK_INT(it_mem_live_bytes(), live);
    it_mem_fail_after(1, 0);
    void *a = it_malloc(8);
    void *b = it_malloc(8);
    void *c = it_malloc(8);
    IT_CHECK(a != NULL);
    IT_CHECK(b == NULL);
    IT_CHECK(c != NULL);
    it_free(a);
    it_free(c);
    IT_CHECK(it_calloc(SIZE_MAX / 2, 4) == NULL);
}

IT_TEST(base_arena) {
    it_arena a;
    it_arena_init(&a, 256);
    char *p = it_arena_alloc(&a, 10);
    char *q = it_arena_alloc(&a, 1000); /* bigger than a block */
    IT_REQUIRE(p && q);
    IT_CHECK(((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0);
    memset(q, 1, 1000);
    IT_CHECK(a.used >= 1010);
    it_arena_reset(&a);
    IT_CHECK_INT(a.used, 0);
    char *r = it_arena_alloc(&a, 900); /* reuses the kept 1024-byte block */
    IT_CHECK(r == q);
    IT_CHECK_STR(it_arena_strdup(&a, "abc"), "abc");
    IT_CHECK(it_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL);
    it_arena_free(&a);
}

IT_TEST(base_buf_printf) {
    it_buf b;
    it_buf_init(&b);
    for (int i = 0; i < 100; i++) IT_CHECK_OK(it_buf_printf(&b, "%d,", i), NULL);
    IT_CHECK_INT(b.len, 290);
    IT_CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    it_buf_free(&b);
}

IT_TEST(base_rng_deterministic_and_thread_independent) {
    enum { N = 200000 };
    float *a = it_malloc(N * sizeof(float)), *b = it_malloc(N * sizeof(float));
    IT_REQUIRE(a && b);
    it_rng r;
    it_threads_set(1);
    it_rng_init(&r, 42);
    it_rng_normal(&r, a, N, 0, 1);
    it_threads_set(4);
    it_rng_init(&r, 42);
    /* split fill: same numbers as one fill */
    it_rng_normal(&r, b, 1000, 0, 1);
    it_rng_normal(&r, b + 1000, N - 1000, 0, 1);
    it_threads_set(0);
    IT_CHECK(memcmp(a, b, N * sizeof(float)) == 0);
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++) mean += a[i];
    mean /= N;
    for (int i = 0; i < N; i++) var += (a[i] - mean) * (a[i] - mean);
    var /= N;
    IT_CHECK_NEAR(mean, 0.0, 0.01);
    IT_CHECK_NEAR(var, 1.0, 0.02);
    it_rng_init(&r, 7);
    it_rng_uniform(&r, a, N);
    double umean = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        umean += a[i];
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    IT_CHECK_NEAR(umean / N, 0.5, 0.005);
    IT_CHECK(lo >= 0.0f && hi < 1.0f);
    /* a different seed gives different numbers */
    it_rng_init(&r, 8);
    it_rng_uniform(&r, b, 16);
    IT_CHECK(memcmp(a, b, 16 * sizeof(float)) != 0);
    it_free(a);
    it_free(b);
}

IT_TEST(base_rng_below_and_shuffle) {
    it_rng r;
    it_rng_init(&r, 1);
    int counts[3] = {0};
    for (int i = 0; i < 30000; i++) counts[it_rng_below(&r, 3)]++;
    for (int i = 0; i < 3; i++) IT_CHECK(counts[i] > 9500 && counts[i] < 10500);
    int32_t perm[50];
    for (int i = 0; i < 50; i++) perm[i] = i;
    it_rng_shuffle_i32(&r, perm, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[perm[i]]++;
    for (int i = 0; i < 50; i++) IT_CHECK_INT(seen[i], 1);
}

IT_TEST(base_file_atomic_write_and_read) {
    it_err e;
    it_err_clear(&e);
    const char *p = it_test_tmp(t, "out.bin");
    IT_REQUIRE_OK(it_file_write_atomic(&e, p, "hello", 5), &e);
    IT_REQUIRE_OK(it_file_write_atomic(&e, p, "world!", 6), &e);
    uint8_t *data;
    size_t n;
    IT_REQUIRE_OK(it_file_read(&e, &data, &n, p, 1 << 20), &e);
    IT_CHECK_INT(n, 6);
    IT_CHECK_STR((char *)data, "world!");
    it_free(data);
    IT_CHECK_INT(it_file_read(&e, &data, &n, p, 3), IT_ERR_RANGE);
    IT_CHECK_INT(it_file_read(&e, &data, &n, it_test_tmp(t, "missing"), 10), IT_ERR_IO);
    IT_CHECK_CONTAINS(e.msg, "missing");
    it_mmap m;
    IT_REQUIRE_OK(it_mmap_open(&e, &m, p), &e);
    IT_CHECK_INT(m.size, 6);
    IT_CHECK(memcmp(m.data, "world!", 6) == 0);
    it_mmap_close(&m);
    IT_CHECK_OK(it_mkdir_p(&e, it_test_tmp(t, "a/b/c")), &e);
    IT_CHECK(it_is_dir(it_test_tmp(t, "a/b/c")));
    IT_CHECK_STR(it_path_ext("dir.x/file.tar.png"), "png");
    IT_CHECK_STR(it_path_ext("dir.x/file"), "");
    IT_CHECK_STR(it_path_basename("a/b/c.txt"), "c.txt");
}
