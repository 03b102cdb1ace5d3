/* rng.c: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11). Value i of a stream is computed from counter block i
 * alone (word 0 for a uniform, words 0 and 1 for a normal). Using one block
 * per value wastes three words but makes every value independent of how a
 * fill is split across threads, which is the property we need. */
#include "base/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void it_philox4x32(uint32_t out[4], uint64_t counter, uint64_t key)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0x243F6A88u,
             c3 = 0x85A308D3u;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void it_rng_init(it_rng *r, uint64_t seed)
{
    r->seed = seed;
    r->offset = 0;
}

static float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float it_rng_uniform_at(uint64_t seed, uint64_t index)
{
    uint32_t w[4];
    it_philox4x32(w, index, seed);
    return u32_to_unit(w[0]);
}

float it_rng_normal_at(uint64_t seed, uint64_t index)
{
    uint32_t w[4];
    it_philox4x32(w, index, seed);
    /* u1 in (0, 1] so that log never sees 0. */
    double u1 = ((double)(w[0] >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(w[1] >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void it_rng_uniform(it_rng *r, float *out, size_t n)
{
    uint64_t base = r->offset;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = it_rng_uniform_at(r->seed, base + i);
    r->offset += n;
}

void it_rng_normal(it_rng *r, float *out, size_t n, float mean, float std)
{
    uint64_t base = r->offset;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = mean + std * it_rng_normal_at(r->seed, base + i);
    r->offset += n;
}

uint64_t it_rng_u64(it_rng *r)
{
    uint32_t w[4];
    it_philox4x32(w, r->offset++, r->seed);
    return ((uint64_t)w[0] << 32) | w[1];
}

uint64_t it_rng_below(it_rng *r, uint64_t n)
{
    /* Rejection keeps it unbiased: discard the top partial range. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = it_rng_u64(r);
    } while (x >= limit);
    return x % n;
}

float it_rng_float(it_rng *r) { return it_rng_uniform_at(r->seed, r->offset++); }

void it_rng_shuffle_i32(it_rng *r, int32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)it_rng_below(r, i);
        int32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
