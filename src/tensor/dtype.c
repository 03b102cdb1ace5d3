/* dtype.c: element sizes, names, and exact f16/bf16 <-> f32 conversion.
 *
 * The conversions are integer-only on purpose: a float-arithmetic trick
 * (adding a "magic" constant) depends on the FPU rounding mode and on
 * flush-to-zero / denormals-are-zero flags that a BLAS or a caller may have
 * set, and then silently changes subnormal results. Bit manipulation gives
 * the same answer everywhere.
 *
 * NaN policy (documented in docs/SAFETENSORS.md): every conversion keeps the
 * sign and the payload bits that fit and sets the quiet bit, exactly as the
 * x86 F16C instructions do (so the vectorised bulk path below and the scalar
 * code agree bit for bit). Without the quiet bit, narrowing a NaN whose
 * payload lives only in the dropped low bits would give infinity. bf16 ->
 * f32 is the exception: a plain shift, payload and all, as in every
 * library. PyTorch returns a canonical NaN when narrowing and numpy keeps
 * signalling NaNs signalling, so NaN bit patterns differ between libraries;
 * only "is NaN" is portable. */
#include "tensor/dtype.h"

#include <string.h>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#define IT_HAVE_F16C 1
#endif

#include "base/status.h"

static const struct {
    const char *name;
    size_t size;
} g_dtypes[IT_DTYPE_COUNT] = {
    [IT_DTYPE_F32] = {"F32", 4}, [IT_DTYPE_F16] = {"F16", 2}, [IT_DTYPE_BF16] = {"BF16", 2},
    [IT_DTYPE_I32] = {"I32", 4}, [IT_DTYPE_I64] = {"I64", 8}, [IT_DTYPE_U8] = {"U8", 1},
};

size_t it_dtype_size(it_dtype t)
{
    IT_ASSERT((unsigned)t < IT_DTYPE_COUNT);
    return g_dtypes[t].size;
}

const char *it_dtype_name(it_dtype t)
{
    IT_ASSERT((unsigned)t < IT_DTYPE_COUNT);
    return g_dtypes[t].name;
}

int it_dtype_parse(const char *name, it_dtype *out)
{
    for (int i = 0; i < IT_DTYPE_COUNT; i++) {
        if (strcmp(name, g_dtypes[i].name) == 0) {
            *out = (it_dtype)i;
            return 0;
        }
    }
    return -1;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------------------------ f16 */

float it_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) /* Inf; NaN made quiet */
        return bits_f32(sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0));
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
    if (man == 0) return bits_f32(sign);
    /* Subnormal: normalise. man * 2^-24 with man in [1, 1023]. */
    int shift = 0;
    while (!(man & 0x400)) {
        man <<= 1;
        shift++;
    }
    /* Leading bit now at 2^10; value = 1.xxx * 2^(-14 - shift). */
    return bits_f32(sign | ((uint32_t)(127 - 14 - shift) << 23) | ((man & 0x3ff) << 13));
}

/* Shifts m right by s (1 <= s <= 31) rounding to nearest, ties to even. */
static inline uint32_t shift_rne(uint32_t m, unsigned s)
{
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t it_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x3ff); /* NaN, quiet */
    if (x >= (143u << 23)) return sign | 0x7c00; /* >= 2^16 (or Inf): beyond f16 */
    if (x >= (113u << 23)) {
        /* Normal f16 range [2^-14, 2^16): rebias the exponent and round the
         * mantissa; a carry out of the mantissa bumps the exponent, and one
         * out of the top exponent yields exactly 0x7c00 (infinity). */
        return sign | (uint16_t)shift_rne(x - (112u << 23), 13);
    }
    uint32_t e = x >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero (2^-25 itself ties to 0) */
    /* Subnormal f16: value = m * 2^(e-150), unit 2^-24, so shift by 126-e
     * (14..24). A carry into 0x400 correctly gives the smallest normal. */
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    return sign | (uint16_t)shift_rne(m, 126 - e);
}

/* ----------------------------------------------------------------- bf16 */

float it_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t it_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040); /* NaN, quiet */
    /* Round the low 16 bits away, ties to even; the carry propagates into
     * the exponent and turns the largest finite values into infinity. */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ----------------------------------------------------------------- bulk */

/* Below this many elements a parallel region costs more than it saves. */
#define IT_DTYPE_PAR_MIN (1 << 16)

/* The f16 bulk conversions run in blocks of this many elements, one block
 * per OpenMP iteration, vectorised with F16C when the build has it. */
#define IT_DTYPE_BLOCK 4096

static void f16_to_f32_block(float *dst, const uint16_t *src, size_t n)
{
    size_t i = 0;
#ifdef IT_HAVE_F16C
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = it_f16_to_f32(src[i]);
}

static void f32_to_f16_block(uint16_t *dst, const float *src, size_t n)
{
    size_t i = 0;
#ifdef IT_HAVE_F16C
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) dst[i] = it_f32_to_f16(src[i]);
}

void it_f16_to_f32_n(float *dst, const uint16_t *src, size_t n)
{
    size_t nb = (n + IT_DTYPE_BLOCK - 1) / IT_DTYPE_BLOCK;
#pragma omp parallel for schedule(static) if (n >= IT_DTYPE_PAR_MIN)
    for (size_t b = 0; b < nb; b++) {
        size_t i = b * IT_DTYPE_BLOCK;
        f16_to_f32_block(dst + i, src + i, n - i < IT_DTYPE_BLOCK ? n - i : IT_DTYPE_BLOCK);
    }
}

void it_f32_to_f16_n(uint16_t *dst, const float *src, size_t n)
{
    size_t nb = (n + IT_DTYPE_BLOCK - 1) / IT_DTYPE_BLOCK;
#pragma omp parallel for schedule(static) if (n >= IT_DTYPE_PAR_MIN)
    for (size_t b = 0; b < nb; b++) {
        size_t i = b * IT_DTYPE_BLOCK;
        f32_to_f16_block(dst + i, src + i, n - i < IT_DTYPE_BLOCK ? n - i : IT_DTYPE_BLOCK);
    }
}

void it_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= IT_DTYPE_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = it_bf16_to_f32(src[i]);
}

void it_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= IT_DTYPE_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = it_f32_to_bf16(src[i]);
}

void it_dtype_to_f32_n(float *dst, const void *src, it_dtype t, size_t n)
{
    switch (t) {
    case IT_DTYPE_F32: memmove(dst, src, n * 4); return;
    case IT_DTYPE_F16: it_f16_to_f32_n(dst, src, n); return;
    case IT_DTYPE_BF16: it_bf16_to_f32_n(dst, src, n); return;
    case IT_DTYPE_I32: {
        const int32_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return;
    }
    case IT_DTYPE_I64: {
        const int64_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return;
    }
    case IT_DTYPE_U8: {
        const uint8_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return;
    }
    case IT_DTYPE_COUNT: break;
    }
    IT_ASSERT(!"bad dtype");
}
