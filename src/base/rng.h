/* rng.h: seeded counter-based random numbers (Philox4x32-10).
 *
 * Owns: uniform and normal streams whose i-th value is a pure function of
 * (seed, stream offset, i). Parallel loops fill disjoint index ranges and get
 * exactly the numbers a single thread would, so results never depend on the
 * thread count. Does not own higher-level sampling (shuffles, augmentations
 * build on these). */
#ifndef IT_RNG_H
#define IT_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct it_rng {
    uint64_t seed;
    uint64_t offset; /* counter position: advanced by every fill */
} it_rng;

void it_rng_init(it_rng *r, uint64_t seed);

/* One Philox block: four 32-bit words for counter c under key k. */
void it_philox4x32(uint32_t out[4], uint64_t counter, uint64_t key);

/* Fills n values in [0, 1) (24-bit resolution floats) and advances by n. */
void it_rng_uniform(it_rng *r, float *out, size_t n);
/* Fills n standard normal values (Box-Muller on counter pairs), advances by n. */
void it_rng_normal(it_rng *r, float *out, size_t n, float mean, float std);
/* Uniform 64-bit value / integer in [0, n) (n > 0, unbiased). */
uint64_t it_rng_u64(it_rng *r);
uint64_t it_rng_below(it_rng *r, uint64_t n);
/* One uniform float in [0,1). */
float it_rng_float(it_rng *r);
/* Fisher-Yates shuffle of an index array. */
void it_rng_shuffle_i32(it_rng *r, int32_t *a, size_t n);

/* Stateless access for kernels: the i-th uniform / normal of (seed, offset). */
float it_rng_uniform_at(uint64_t seed, uint64_t index);
float it_rng_normal_at(uint64_t seed, uint64_t index);

#endif
