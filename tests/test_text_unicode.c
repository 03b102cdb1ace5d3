/* test_text_unicode.c: strict UTF-8, classes, lower-casing and NFC, with
 * expected values from Python's bytes.decode("utf-8", "replace") and the
 * tokenizers library's NFC / Lowercase (the reference the tokenizer
 * matches). */
#include "base/log.h"
#include "base/mem.h"
#include "text/clip_tokenizer.h"
#include "text/unicode.h"
#include "test.h"

typedef struct utf8_case {
    const char *bytes;
    size_t n_cps;
    uint32_t cps[8];
} utf8_case;

/* One U+FFFD per maximal subpart of an ill-formed sequence. */
static const utf8_case k_utf8[] = {
    {"", 0, {0}},
    {"\x61", 1, {0x61}},
    {"\xc3\xa9", 1, {0xE9}},
    {"\xe2\x82\xac", 1, {0x20AC}},
    {"\xf0\x9f\x98\x80", 1, {0x1F600}},
    {"\xff", 1, {0xFFFD}},
    {"\x80", 1, {0xFFFD}},
    {"\xc0\xaf", 2, {0xFFFD, 0xFFFD}},
    {"\xc1\xbf", 2, {0xFFFD, 0xFFFD}},
    {"\xc2", 1, {0xFFFD}},
    {"\xc2\x41", 2, {0xFFFD, 0x41}},
    {"\xe0\x80\x80", 3, {0xFFFD, 0xFFFD, 0xFFFD}},
    {"\xe0\xa0\x80", 1, {0x800}},
    {"\xed\xa0\x80", 3, {0xFFFD, 0xFFFD, 0xFFFD}},
    {"\xed\x9f\xbf", 1, {0xD7FF}},
    {"\xef\xbf\xbf", 1, {0xFFFF}},
    {"\xf0\x80\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"\xf0\x90\x80\x80", 1, {0x10000}},
    {"\xf4\x8f\xbf\xbf", 1, {0x10FFFF}},
    {"\xf4\x90\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"\xf5\x80\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
    {"\xe2\x82", 1, {0xFFFD}},
    {"\xe2\x82\x78", 2, {0xFFFD, 0x78}},
    {"\xf0\x9f\x98", 1, {0xFFFD}},
    {"\xf0\x9f\x98\x41", 2, {0xFFFD, 0x41}},
    {"\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41", 5, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x41}},
    {"\xfe\xfe", 2, {0xFFFD, 0xFFFD}},
    {"\xf8\x88\x80\x80\x80", 5, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}},
};

IT_TEST(text_unicode_utf8_decode) {
    it_err e;
    it_err_clear(&e);
    for (size_t i = 0; i < sizeof k_utf8 / sizeof k_utf8[0]; i++) {
        const utf8_case *c = &k_utf8[i];
        uint32_t *cps;
        size_t n;
        IT_CHECK_OK(it_utf8_to_cps(&e, &cps, &n, (const uint8_t *)c->bytes, strlen(c->bytes)), &e);
        if (n != c->n_cps) it_test_fail(t, __FILE__, __LINE__, "case %zu: %zu code points, want %zu", i, n, c->n_cps);
        for (size_t k = 0; k < n && k < c->n_cps; k++)
            if (cps[k] != c->cps[k])
                it_test_fail(t, __FILE__, __LINE__, "case %zu[%zu]: U+%04X, want U+%04X", i, k, cps[k], c->cps[k]);
        it_free(cps);
    }
}

/* Every scalar value survives encode -> decode; surrogates never decode. */
IT_TEST(text_unicode_utf8_roundtrip) {
    size_t bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        uint8_t buf[4];
        size_t k = it_utf8_encode(buf, cp);
        uint32_t back;
        size_t used = it_utf8_decode(&back, buf, k);
        bad += used != k || back != cp;
    }
    IT_CHECK_INT(bad, 0);
    uint32_t cp;
    IT_CHECK_INT(it_utf8_decode(&cp, (const uint8_t *)"\xed\xb0\x80", 3), 1);
    IT_CHECK_INT(cp, IT_UNICODE_REPLACEMENT);
}

typedef struct nfc_case {
    size_t n_in;
    uint32_t in[4];
    size_t n_out;
    uint32_t out[4];
} nfc_case;

static const nfc_case k_nfc[] = {
    {2, {0x65, 0x301}, 1, {0xE9}},
    {3, {0x1100, 0x1161, 0x11A8}, 1, {0xAC01}},
    {2, {0xAC00, 0x11A8}, 1, {0xAC01}},
    {2, {0xAC00, 0x11A7}, 2, {0xAC00, 0x11A7}},
    {2, {0x41, 0x30A}, 1, {0xC5}},
    {1, {0x212B}, 1, {0xC5}},
    {3, {0x73, 0x323, 0x307}, 1, {0x1E69}},
    {3, {0x73, 0x307, 0x323}, 1, {0x1E69}},
    {3, {0x71, 0x307, 0x323}, 3, {0x71, 0x323, 0x307}},
    {2, {0x301, 0x61}, 2, {0x301, 0x61}},
    {2, {0x61, 0x338}, 2, {0x61, 0x338}},
    {2, {0x3C, 0x338}, 1, {0x226E}},
    /* Unicode 13 composition the reference's NFC does not know. */
    {2, {0x11935, 0x11930}, 2, {0x11935, 0x11930}},
    {1, {0x344}, 2, {0x308, 0x301}},
    {3, {0x65, 0x301, 0x301}, 2, {0xE9, 0x301}},
    {2, {0xE9, 0x327}, 2, {0x229, 0x301}},
    {2, {0x1E9B, 0x323}, 2, {0x1E9B, 0x323}},
    {1, {0x958}, 2, {0x915, 0x93C}},
    {3, {0x61, 0x62, 0x63}, 3, {0x61, 0x62, 0x63}},
    {2, {0x915, 0x93C}, 2, {0x915, 0x93C}},
    {1, {0xF73}, 2, {0xF71, 0xF72}},
    {1, {0x1D15E}, 2, {0x1D157, 0x1D165}},
    {3, {0x6F, 0x308, 0x304}, 1, {0x22B}},
    {3, {0x78, 0x345, 0x301}, 3, {0x78, 0x301, 0x345}},
    {0, {0}, 0, {0}},
};

IT_TEST(text_unicode_nfc) {
    it_err e;
    it_err_clear(&e);
    for (size_t i = 0; i < sizeof k_nfc / sizeof k_nfc[0]; i++) {
        const nfc_case *c = &k_nfc[i];
        uint32_t *out;
        size_t n;
        IT_CHECK_OK(it_unicode_nfc(&e, &out, &n, c->in, c->n_in), &e);
        int ok = n == c->n_out;
        for (size_t k = 0; ok && k < n; k++) ok = out[k] == c->out[k];
        if (!ok) it_test_fail(t, __FILE__, __LINE__, "nfc case %zu: %zu code points, first U+%04X", i, n, n ? out[0] : 0);
        it_free(out);
    }
    /* Every Hangul syllable decomposes and recomposes to itself. */
    size_t bad = 0;
    for (uint32_t s = 0xAC00; s <= 0xD7A3; s++) {
        uint32_t l = 0x1100 + (s - 0xAC00) / 588, v = 0x1161 + (s - 0xAC00) % 588 / 28,
                 tt = 0x11A7 + (s - 0xAC00) % 28;
        uint32_t in[3] = {l, v, tt};
        uint32_t *out;
        size_t n;
        IT_CHECK_OK(it_unicode_nfc(&e, &out, &n, in, tt == 0x11A7 ? 2 : 3), &e);
        bad += n != 1 || out[0] != s;
        it_free(out);
    }
    IT_CHECK_INT(bad, 0);
}

IT_TEST(text_unicode_classes_and_lower) {
    static const struct {
        uint32_t cp;
        int letter, number, space;
    } cls[] = {
        {'a', 1, 0, 0}, {'Z', 1, 0, 0}, {'5', 0, 1, 0}, {' ', 0, 0, 1}, {'\t', 0, 0, 1},
        {0x0B, 0, 0, 1}, {0x1C, 0, 0, 0}, {'_', 0, 0, 0}, {0xAA, 1, 0, 0}, {0xB2, 0, 1, 0},
        {0xBD, 0, 1, 0}, {0xA0, 0, 0, 1}, {0x85, 0, 0, 1}, {0x200B, 0, 0, 0}, {0x3000, 0, 0, 1},
        {0x2028, 0, 0, 1}, {0x4E00, 1, 0, 0}, {0x0663, 0, 1, 0}, {0x2163, 0, 1, 0}, {0x0301, 0, 0, 0},
        {0x1F600, 0, 0, 0}, {0xFFFD, 0, 0, 0}, {0x10FFFF, 0, 0, 0},
        /* Unicode 15/16 characters: the reference's regex knows them. */
        {0x1E4D0, 1, 0, 0}, {0x11F50, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cls / sizeof cls[0]; i++) {
        if (it_unicode_is_letter(cls[i].cp) != cls[i].letter || it_unicode_is_number(cls[i].cp) != cls[i].number ||
            it_unicode_is_space(cls[i].cp) != cls[i].space)
            it_test_fail(t, __FILE__, __LINE__, "class of U+%04X", cls[i].cp);
    }
    static const struct {
        uint32_t cp;
        int n;
        uint32_t lower[3];
    } low[] = {
        {'A', 1, {'a'}}, {'a', 1, {'a'}}, {0xC9, 1, {0xE9}}, {0x130, 2, {'i', 0x307}},
        {0x3A3, 1, {0x3C3}}, {0x1E9E, 1, {0xDF}}, {0x212A, 1, {'k'}}, {0x1C5, 1, {0x1C6}},
        {0x10400, 1, {0x10428}}, {0xFF21, 1, {0xFF41}}, {0xDF, 1, {0xDF}}, {0x1F600, 1, {0x1F600}},
    };
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        uint32_t out[3];
        int n = it_unicode_lower(out, low[i].cp);
        int ok = n == low[i].n;
        for (int k = 0; ok && k < n; k++) ok = out[k] == low[i].lower[k];
        if (!ok) it_test_fail(t, __FILE__, __LINE__, "lower of U+%04X", low[i].cp);
    }
    IT_CHECK_INT(it_unicode_ccc(0x301), 230);
    IT_CHECK_INT(it_unicode_ccc('a'), 0);
    IT_CHECK_CONTAINS(it_unicode_data_source(), "tokenizers");
}

/* GPT-2's byte alphabet, as its Python definition enumerates it. */
IT_TEST(text_clip_byte_alphabet) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        uint32_t want = printable ? (uint32_t)b : next++;
        if (it_clip_byte_char((uint8_t)b) != want)
            it_test_fail(t, __FILE__, __LINE__, "byte %d -> U+%04X, want U+%04X", b, it_clip_byte_char((uint8_t)b), want);
    }
    IT_CHECK_INT(next, 256 + 68);
}

/* Python's view, for the legacy mode: str.lower with the final-sigma rule
 * (expected values from Python 3.11) and NFC with all of Unicode 14. */
IT_TEST(text_unicode_python_lower_nfc) {
    static const struct {
        size_t n;
        uint32_t in[4], out[4];
    } low[] = {
        {2, {0x391, 0x3A3}, {0x3B1, 0x3C2}},
        {2, {0x3A3, 0x391}, {0x3C3, 0x3B1}},
        {1, {0x3A3}, {0x3C3}},
        {3, {0x391, 0x3A3, 0x391}, {0x3B1, 0x3C3, 0x3B1}},
        {3, {0x391, 0x301, 0x3A3}, {0x3B1, 0x301, 0x3C2}},
        {3, {0x391, 0x3A3, 0x301}, {0x3B1, 0x3C2, 0x301}},
        {2, {'1', 0x3A3}, {'1', 0x3C3}},
        {4, {0x391, 0x3A3, '.', 0x392}, {0x3B1, 0x3C3, '.', 0x3B2}}, /* '.' is case-ignorable */
        {4, {0x391, 0x3A3, 0xAD, 0x392}, {0x3B1, 0x3C3, 0xAD, 0x3B2}},
        {2, {0x2B0, 0x3A3}, {0x2B0, 0x3C3}},
    };
    it_err e;
    it_err_clear(&e);
    for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
        uint32_t *out;
        size_t n;
        IT_CHECK_OK(it_unicode_py_lower(&e, &out, &n, low[i].in, low[i].n), &e);
        int ok = n == low[i].n;
        for (size_t k = 0; ok && k < n; k++) ok = out[k] == low[i].out[k];
        if (!ok) it_test_fail(t, __FILE__, __LINE__, "py lower case %zu", i);
        it_free(out);
    }
    static const uint32_t dives[2] = {0x11935, 0x11930}, marks[3] = {'x', 0x345, 0x16FF0};
    uint32_t *out;
    size_t n;
    IT_CHECK_OK(it_unicode_nfc_python(&e, &out, &n, dives, 2), &e);
    IT_CHECK(n == 1 && out[0] == 0x11938);
    it_free(out);
    IT_CHECK_OK(it_unicode_nfc_python(&e, &out, &n, marks, 3), &e);
    IT_CHECK(n == 3 && out[1] == 0x16FF0 && out[2] == 0x345);
    it_free(out);
    IT_CHECK_OK(it_unicode_nfc(&e, &out, &n, marks, 3), &e); /* unknown to the tokenizers library */
    IT_CHECK(n == 3 && out[1] == 0x345 && out[2] == 0x16FF0);
    it_free(out);
    IT_CHECK(it_unicode_py_is_control(0x200D) && it_unicode_py_is_control(0x1FABF) &&
             it_unicode_py_is_control(0x7F) && !it_unicode_py_is_control('\n') && !it_unicode_py_is_control('a'));
    IT_CHECK(it_unicode_py_is_zs(0x3000) && it_unicode_py_is_zs(0xA0) && !it_unicode_py_is_zs(0x2028));
}

/* A long run of marks (a hostile prompt) is ordered in linear time and
 * stably: classes 230 and 220 alternating end up all-220 then all-230. */
IT_TEST(text_unicode_nfc_long_run) {
    size_t n = 200001;
    uint32_t *in = it_malloc(n * sizeof *in);
    in[0] = 'a';
    for (size_t i = 1; i < n; i++) in[i] = i % 2 ? 0x301 : (i % 4 ? 0x316 : 0x317);
    it_err e;
    it_err_clear(&e);
    uint32_t *out;
    size_t k;
    double t0 = it_time_now();
    IT_CHECK_OK(it_unicode_nfc(&e, &out, &k, in, n), &e);
    /* Not a speed target: a quadratic ordering takes minutes on 200k marks,
     * the linear one milliseconds; 10 s leaves room for ASan on a loaded
     * machine. */
    IT_CHECK(it_time_now() - t0 < 10.0);
    if (!e.code) {
        /* The 100000 class-220 marks keep their order, then the 230s; the
         * first acute is not blocked (220 < 230) and joins 'a' as U+00E1. */
        IT_CHECK_INT(k, n - 1);
        IT_CHECK_INT(out[0], 0xE1);
        IT_CHECK_INT(out[1], 0x316);
        IT_CHECK_INT(out[2], 0x317);
        IT_CHECK_INT(out[100000], 0x317);
        IT_CHECK_INT(out[100001], 0x301);
        IT_CHECK_INT(out[n - 2], 0x301);
        it_free(out);
    }
    it_free(in);
}
