/* ops_math.h: vectorisable float exp, tanh and erf for element-wise kernels
 * (internal).
 *
 * Owns: branch-free approximations that GCC turns into SIMD code inside
 * `#pragma omp simd` loops (glibc's expf/erff are scalar calls and made
 * SiLU/GELU/softmax several times slower than PyTorch's vectorised ones).
 * Accuracy (tests/test_engine.c measures it): exp within 2.5e-7 relative
 * over [-87, 88] (Cody-Waite reduction, degree-6 polynomial); erf within
 * 5.1e-7 absolute (Abramowitz & Stegun 7.1.26 evaluated in float); tanh from
 * exp, 2e-7 absolute. The reference kernels keep libm in double. */
#ifndef IT_OPS_MATH_H
#define IT_OPS_MATH_H

#include <stdint.h>
#include <string.h>

/* The clamps in it_fexp are selects; GCC only if-converts (and so
 * vectorises) them when float operations are assumed not to trap, and
 * -std=c11 turns off fused multiply-add contraction, which the polynomials
 * want. Nothing in the engine relies on floating-point traps or on unfused
 * rounding. Applies to the functions that follow this header in the
 * including file. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")
#endif

static inline float it_fexp(float x)
{
    /* Two unconditional selects (not nested) so that GCC if-converts them. */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* Round to nearest by the 1.5 * 2^23 trick: floorf does not vectorise. */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* ln2 split: hi exact, lo */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float it_fsigmoid(float x) { return 1.0f / (1.0f + it_fexp(-x)); }

static inline float it_ftanh(float x)
{
    /* tanh(x) = 1 - 2 / (exp(2x) + 1); saturates cleanly at both ends. */
    return 1.0f - 2.0f / (it_fexp(2.0f * x) + 1.0f);
}

static inline float it_ferf(float x)
{
    float a = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * it_fexp(-a * a);
    return x < 0 ? -y : y;
}

#endif
