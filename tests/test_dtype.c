/* test_dtype.c: dtype table and f16/bf16 <-> f32 conversion.
 *
 * References: an independent formula (ldexp) for widening, all 65536 inputs
 * for round trips, torch and numpy outputs on a fixture of tricky values
 * (tools/gen_safetensors_fixtures.py), and the CPU's own F16C conversion on
 * a strided sweep of all f32 bit patterns when the build has it. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "base/fileio.h"
#include "base/mem.h"
#include "tensor/dtype.h"
#include "test.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

IT_TEST(dtype_table)
{
    static const struct {
        it_dtype t;
        const char *name;
        size_t size;
    } cases[] = {
        {IT_DTYPE_F32, "F32", 4}, {IT_DTYPE_F16, "F16", 2}, {IT_DTYPE_BF16, "BF16", 2},
        {IT_DTYPE_I32, "I32", 4}, {IT_DTYPE_I64, "I64", 8}, {IT_DTYPE_U8, "U8", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IT_CHECK_STR(it_dtype_name(cases[i].t), cases[i].name);
        IT_CHECK_INT(it_dtype_size(cases[i].t), cases[i].size);
        it_dtype got = IT_DTYPE_COUNT;
        IT_CHECK_INT(it_dtype_parse(cases[i].name, &got), 0);
        IT_CHECK_INT(got, cases[i].t);
    }
    it_dtype got;
    IT_CHECK_INT(it_dtype_parse("F64", &got), -1);
    IT_CHECK_INT(it_dtype_parse("f32", &got), -1);
    IT_CHECK_INT(it_dtype_parse("", &got), -1);
}

/* Value of an f16 bit pattern computed from the definition, in double. */
static double f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

IT_TEST(dtype_f16_all_values_widen_and_round_trip)
{
    int bad = 0, first = -1;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = it_f16_to_f32(h);
        if (bad && first < 0) first = (int)i - 1;
        int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        if (e == 0x1f && m) {
            /* NaN: stays NaN, sign and payload kept, made quiet. */
            uint32_t want = ((uint32_t)(h & 0x8000) << 16) | 0x7fc00000u | ((uint32_t)m << 13);
            if (!isnan(f) || fbits(f) != want) bad++;
            uint16_t back = it_f32_to_f16(f);
            /* Narrowing sets the quiet bit; quiet NaNs come back exactly. */
            if (back != (h | 0x200)) bad++;
            continue;
        }
        if (e == 0x1f) {
            if (!isinf(f) || (f < 0) != (h >> 15)) bad++;
        } else if ((double)f != f16_value(h) || !!signbit(f) != (h >> 15)) {
            bad++;
        }
        if (it_f32_to_f16(f) != h) bad++;
    }
    if (bad) it_test_fail(t, __FILE__, __LINE__, "%d mismatches, first at f16 0x%04x", bad, first);
}

IT_TEST(dtype_bf16_all_values_widen_and_round_trip)
{
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        float f = it_bf16_to_f32(h);
        if (fbits(f) != (uint32_t)h << 16) bad++;
        uint16_t back = it_f32_to_bf16(f);
        int nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan ? back != (h | 0x40) : back != h) bad++;
    }
    IT_CHECK_INT(bad, 0);
}

/* Hand-checked edge cases, with the reason for each expected value. */
IT_TEST(dtype_f16_edge_table)
{
    static const struct {
        uint32_t in; /* f32 bits */
        uint16_t f16, bf16;
        const char *why;
    } cases[] = {
        {0x00000000, 0x0000, 0x0000, "+0"},
        {0x80000000, 0x8000, 0x8000, "-0 keeps its sign"},
        {0x3f800000, 0x3c00, 0x3f80, "1"},
        {0x3f801000, 0x3c00, 0x3f80, "1 + 2^-11: f16 tie, rounds to even 1"},
        {0x3f803000, 0x3c02, 0x3f80, "1 + 3*2^-11: f16 tie, rounds to even 1+2^-9"},
        {0x3f808000, 0x3c04, 0x3f80, "1 + 2^-8: bf16 tie, rounds to even 1"},
        {0x3f818000, 0x3c0c, 0x3f82, "1 + 3*2^-8: bf16 tie, rounds up to even"},
        {0x477fe000, 0x7bff, 0x4780, "65504, largest f16"},
        {0x477fefff, 0x7bff, 0x4780, "just below 65520 stays finite"},
        {0x477ff000, 0x7c00, 0x4780, "65520: tie, rounds to even = infinity"},
        {0x7f7fffff, 0x7c00, 0x7f80, "FLT_MAX overflows both to infinity"},
        {0x7f7f7fff, 0x7c00, 0x7f7f, "largest f32 that stays finite in bf16"},
        {0x33000000, 0x0000, 0x3300, "2^-25: f16 tie between 0 and 2^-24, even is 0"},
        {0x33000001, 0x0001, 0x3300, "just above 2^-25 rounds up to 2^-24"},
        {0x33c00000, 0x0002, 0x33c0, "1.5*2^-24: tie, rounds to even 2*2^-24"},
        {0x387fe000, 0x0400, 0x3880, "2^-14 - 2^-25: tie, carries into the smallest normal"},
        {0x387fc000, 0x03ff, 0x3880, "largest f16 subnormal"},
        {0x00000001, 0x0000, 0x0000, "f32 subnormal -> 0"},
        {0x80000001, 0x8000, 0x8000, "negative f32 subnormal -> -0"},
        {0x7f800000, 0x7c00, 0x7f80, "+inf"},
        {0xff800000, 0xfc00, 0xff80, "-inf"},
        {0x7fc00000, 0x7e00, 0x7fc0, "quiet NaN"},
        {0x7f800001, 0x7e00, 0x7fc0, "signalling NaN, payload only in low bits: quieted, not inf"},
        {0xffc00001, 0xfe00, 0xffc0, "negative NaN keeps its sign"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = it_f32_to_f16(bitsf(cases[i].in));
        uint16_t b = it_f32_to_bf16(bitsf(cases[i].in));
        if (h != cases[i].f16 || b != cases[i].bf16)
            it_test_fail(t, __FILE__, __LINE__, "%s (0x%08x): f16 0x%04x want 0x%04x, bf16 0x%04x want 0x%04x",
                         cases[i].why, cases[i].in, h, cases[i].f16, b, cases[i].bf16);
    }
}

/* Loads a fixture of n elements of size es; returns NULL (test failed) if
 * it is missing or has the wrong size. */
static void *load_fixture(it_test_ctx *t, const char *name, size_t es, size_t *n)
{
    it_err err;
    uint8_t *data;
    size_t len;
    if (it_file_read(&err, &data, &len, it_test_fixture(t, name), 1 << 20) != IT_OK) {
        it_test_fail(t, __FILE__, __LINE__, "%s", err.msg);
        return NULL;
    }
    if (len % es != 0 || (*n && len / es != *n)) {
        it_test_fail(t, __FILE__, __LINE__, "%s: %zu bytes, expected %zu elements of %zu", name,
                     len, *n, es);
        it_free(data);
        return NULL;
    }
    *n = len / es;
    return data;
}

/* Compares our narrowing with a library's: bit-exact except NaN, where only
 * NaN-ness (and the sign when nan_sign) are compared: libraries disagree on
 * payloads, and torch's vectorised bf16 path even returns 0xffff (negative)
 * for every NaN. */
static int compare_narrowing(it_test_ctx *t, const char *lib, const float *in, const uint16_t *want,
                             size_t n, uint16_t (*conv)(float), uint16_t exp_mask, int nan_sign)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t got = conv(in[i]);
        int ok = isnan(in[i]) ? ((got & exp_mask) == exp_mask && (got & ~exp_mask & 0x7fff) &&
                                 (!nan_sign || (got >> 15) == (want[i] >> 15)))
                              : got == want[i];
        if (!ok && bad++ < 5)
            it_test_fail(t, __FILE__, __LINE__, "%s: input %a (0x%08x): ours 0x%04x, theirs 0x%04x",
                         lib, in[i], fbits(in[i]), got, want[i]);
    }
    return bad;
}

IT_TEST(dtype_narrowing_matches_torch_and_numpy)
{
    size_t n = 0;
    float *in = load_fixture(t, "safetensors/half_cases.f32.bin", 4, &n);
    IT_REQUIRE(in && n > 7000);
    uint16_t *tf16 = load_fixture(t, "safetensors/half_cases.torch_f16.bin", 2, &n);
    uint16_t *nf16 = load_fixture(t, "safetensors/half_cases.numpy_f16.bin", 2, &n);
    uint16_t *tbf16 = load_fixture(t, "safetensors/half_cases.torch_bf16.bin", 2, &n);
    if (tf16 && nf16 && tbf16) {
        IT_CHECK_INT(compare_narrowing(t, "torch f16", in, tf16, n, it_f32_to_f16, 0x7c00, 1), 0);
        IT_CHECK_INT(compare_narrowing(t, "numpy f16", in, nf16, n, it_f32_to_f16, 0x7c00, 1), 0);
        IT_CHECK_INT(compare_narrowing(t, "torch bf16", in, tbf16, n, it_f32_to_bf16, 0x7f80, 0), 0);
        /* Widening the library's results back gives the library's f32. */
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (isnan(in[i])) continue;
            double a = f16_value(tf16[i]), b = it_f16_to_f32(tf16[i]);
            if (!(a == b || (isinf(b) && (tf16[i] & 0x7fff) == 0x7c00))) bad++;
        }
        IT_CHECK_INT(bad, 0);
    }
    it_free(in);
    it_free(tf16);
    it_free(nf16);
    it_free(tbf16);
}

IT_TEST(dtype_f16_matches_cpu_f16c)
{
#if defined(__F16C__)
    /* Every 97th f32 bit pattern (44 M values, all exponents and many
     * mantissas): our integer code against the hardware's vcvtps2ph with
     * round-to-nearest-even, which also quiets NaNs keeping the payload. */
    long bad = 0, checked = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 97) {
        float f = bitsf((uint32_t)u);
        uint16_t hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        uint16_t ours = it_f32_to_f16(f);
        checked++;
        if (hw != ours && bad++ < 5)
            it_test_fail(t, __FILE__, __LINE__, "0x%08x: ours 0x%04x, F16C 0x%04x", (uint32_t)u, ours, hw);
        float w_hw = _cvtsh_ss(ours), w_ours = it_f16_to_f32(ours);
        if (fbits(w_hw) != fbits(w_ours) && bad++ < 5)
            it_test_fail(t, __FILE__, __LINE__, "widen 0x%04x: ours 0x%08x, F16C 0x%08x", ours,
                         fbits(w_ours), fbits(w_hw));
    }
    IT_CHECK_INT(bad, 0);
    IT_CHECK(checked > 40000000);
#else
    printf("    (no F16C in this build: hardware comparison skipped)\n");
#endif
}

IT_TEST(dtype_bulk_matches_scalar)
{
    /* Large enough to take the parallel path. */
    size_t n = (1 << 17) + 3;
    float *src = it_malloc(n * sizeof *src), *back = it_malloc(n * sizeof *back);
    uint16_t *h = it_malloc(n * sizeof *h);
    IT_REQUIRE(src && back && h);
    for (size_t i = 0; i < n; i++) src[i] = bitsf((uint32_t)(i * 2654435761u));
    int bad = 0;
    /* Every f16 bit pattern through the bulk widening (vectorised when the
     * build has F16C), NaNs included: identical to the scalar code. */
    uint16_t *all = it_malloc(65536 * sizeof *all);
    float *wide = it_malloc(65536 * sizeof *wide);
    IT_REQUIRE(all && wide);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    it_f16_to_f32_n(wide, all, 65536);
    for (uint32_t i = 0; i < 65536; i++) bad += fbits(wide[i]) != fbits(it_f16_to_f32(all[i]));
    it_free(all);
    it_free(wide);
    it_f32_to_f16_n(h, src, n);
    for (size_t i = 0; i < n; i++) bad += h[i] != it_f32_to_f16(src[i]);
    it_f16_to_f32_n(back, h, n);
    for (size_t i = 0; i < n; i++) bad += fbits(back[i]) != fbits(it_f16_to_f32(h[i]));
    it_f32_to_bf16_n(h, src, n);
    for (size_t i = 0; i < n; i++) bad += h[i] != it_f32_to_bf16(src[i]);
    it_bf16_to_f32_n(back, h, n);
    for (size_t i = 0; i < n; i++) bad += fbits(back[i]) != (uint32_t)h[i] << 16;
    it_dtype_to_f32_n(back, h, IT_DTYPE_BF16, n);
    for (size_t i = 0; i < n; i++) bad += fbits(back[i]) != (uint32_t)h[i] << 16;
    IT_CHECK_INT(bad, 0);
    it_free(src);
    it_free(back);
    it_free(h);
}

IT_TEST(dtype_integers_to_f32)
{
    const int32_t i32[] = {0, -1, 2147483647, -2147483647 - 1, 16777217};
    const int64_t i64[] = {0, -5, 1000000007LL * 3, -(1LL << 62), 9007199254740993LL};
    const uint8_t u8[] = {0, 1, 127, 128, 255};
    float out[5];
    it_dtype_to_f32_n(out, i32, IT_DTYPE_I32, 5);
    for (int i = 0; i < 5; i++) IT_CHECK(out[i] == (float)i32[i]);
    IT_CHECK(out[4] == 16777216.0f); /* nearest float */
    it_dtype_to_f32_n(out, i64, IT_DTYPE_I64, 5);
    for (int i = 0; i < 5; i++) IT_CHECK(out[i] == (float)i64[i]);
    IT_CHECK(out[3] == -4611686018427387904.0f);
    it_dtype_to_f32_n(out, u8, IT_DTYPE_U8, 5);
    for (int i = 0; i < 5; i++) IT_CHECK(out[i] == (float)u8[i]);
    const float f[] = {1.5f, -0.0f, INFINITY};
    it_dtype_to_f32_n(out, f, IT_DTYPE_F32, 3);
    IT_CHECK(memcmp(out, f, sizeof f) == 0);
}
