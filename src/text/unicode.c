/* unicode.c: strict UTF-8, classes, lower-casing and NFC over the generated
 * tables (unicode_tables.c). */
#include "text/unicode.h"

#include <string.h>

#include "base/mem.h"

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

/* The well-formed byte sequences of Unicode table 3-7: the allowed range of
 * the second byte depends on the lead byte, later ones are always 80..BF. An
 * ill-formed sequence is replaced by one U+FFFD per maximal subpart: the lead
 * byte plus the continuation bytes that were still acceptable. */
size_t it_utf8_decode(uint32_t *cp, const uint8_t *s, size_t n)
{
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        v = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        v = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F; /* surrogates are ill-formed */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        v = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *cp = IT_UNICODE_REPLACEMENT;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *cp = IT_UNICODE_REPLACEMENT;
            return i;
        }
        v = (v << 6) | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return i;
}

size_t it_utf8_encode(uint8_t out[4], uint32_t cp)
{
    IT_ASSERT(cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF));
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

it_status it_utf8_to_cps(it_err *err, uint32_t **cps, size_t *n_cps, const uint8_t *s, size_t n)
{
    /* One code point per byte at most; +1 so that empty input allocates. */
    uint32_t *out = it_malloc((n + 1) * sizeof *out);
    if (!out) return it_err_set(err, IT_ERR_NOMEM, "utf-8 decode: out of memory (%zu bytes)", n);
    size_t k = 0;
    for (size_t i = 0; i < n;) i += it_utf8_decode(&out[k++], s + i, n - i);
    *cps = out;
    *n_cps = k;
    return IT_OK;
}

/* ------------------------------------------------------------------------ */
/* Classes and lower-casing                                                  */
/* ------------------------------------------------------------------------ */

static int in_ranges(const it_unicode_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int it_unicode_is_letter(uint32_t cp)
{
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(it_unicode_letters, it_unicode_letters_n, cp);
}

int it_unicode_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(it_unicode_numbers, it_unicode_numbers_n, cp);
}

int it_unicode_is_space(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return in_ranges(it_unicode_spaces, it_unicode_spaces_n, cp);
}

int it_unicode_lower(uint32_t out[3], uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    size_t lo = 0, hi = it_unicode_lower_map_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const it_unicode_lower_entry *e = &it_unicode_lower_map[mid];
        if (cp < e->cp) hi = mid;
        else if (cp > e->cp) lo = mid + 1;
        else {
            int k = 0;
            while (k < 3 && (k == 0 || e->lower[k])) {
                out[k] = e->lower[k];
                k++;
            }
            return k;
        }
    }
    out[0] = cp;
    return 1;
}

static int ccc_in(const it_unicode_ccc_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return r[mid].ccc;
    }
    return 0;
}

int it_unicode_ccc(uint32_t cp)
{
    if (cp < 0x300) return 0;
    return ccc_in(it_unicode_ccc_ranges, it_unicode_ccc_ranges_n, cp);
}

/* The class under Python's data: the extra marks the main table zeroes. */
static int ccc_of(uint32_t cp, int py)
{
    int c = it_unicode_ccc(cp);
    if (!c && py && cp >= 0x300) c = ccc_in(it_unicode_py_ccc_extra, it_unicode_py_ccc_extra_n, cp);
    return c;
}

int it_unicode_py_is_control(uint32_t cp)
{
    if (cp < 0x80) return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F;
    return in_ranges(it_unicode_py_control, it_unicode_py_control_n, cp);
}

int it_unicode_py_is_zs(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ';
    return in_ranges(it_unicode_py_zs, it_unicode_py_zs_n, cp);
}

const char *it_unicode_data_source(void) { return it_unicode_source; }

/* ------------------------------------------------------------------------ */
/* NFC                                                                       */
/* ------------------------------------------------------------------------ */

/* Hangul syllables decompose and compose by arithmetic (Unicode 3.12). */
enum {
    HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
    HANGUL_LN = 19, HANGUL_VN = 21, HANGUL_TN = 28,
    HANGUL_NN = HANGUL_VN * HANGUL_TN, HANGUL_SN = HANGUL_LN * HANGUL_NN,
};

/* Appends the full canonical decomposition of cp at out; returns its length
 * (at most 4 for Hangul, at most the longest pool entry otherwise). */
static size_t decompose(uint32_t *out, uint32_t cp)
{
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SN) {
        uint32_t s = cp - HANGUL_S;
        out[0] = HANGUL_L + s / HANGUL_NN;
        out[1] = HANGUL_V + (s % HANGUL_NN) / HANGUL_TN;
        if (s % HANGUL_TN == 0) return 2;
        out[2] = HANGUL_T + s % HANGUL_TN;
        return 3;
    }
    if (cp >= 0xC0) {
        size_t lo = 0, hi = it_unicode_decomp_map_n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const it_unicode_decomp *e = &it_unicode_decomp_map[mid];
            if (cp < e->cp) hi = mid;
            else if (cp > e->cp) lo = mid + 1;
            else {
                memcpy(out, it_unicode_decomp_pool + e->offset, e->len * sizeof *out);
                return e->len;
            }
        }
    }
    out[0] = cp;
    return 1;
}

static uint32_t compose_in(const it_unicode_compose *m, size_t n, uint32_t a, uint32_t b)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const it_unicode_compose *e = &m[mid];
        if (a < e->first || (a == e->first && b < e->second)) hi = mid;
        else if (a > e->first || b > e->second) lo = mid + 1;
        else return e->composite;
    }
    return 0;
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b, int py)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_TN)
        return a + (b - HANGUL_T);
    uint32_t c = compose_in(it_unicode_compose_map, it_unicode_compose_map_n, a, b);
    if (!c && py) c = compose_in(it_unicode_py_compose_extra, it_unicode_py_compose_extra_n, a, b);
    return c;
}

/* Stable counting sort of one run of non-starters by combining class; a
 * run can be as long as the input, so no quadratic sort here. */
static it_status order_run(it_err *err, uint32_t *cps, size_t n, int py)
{
    uint32_t *tmp = it_malloc(n * sizeof *tmp);
    uint8_t *cls = it_malloc(n);
    if (!tmp || !cls) {
        it_free(tmp);
        it_free(cls);
        return it_err_set(err, IT_ERR_NOMEM, "nfc: out of memory (%zu marks)", n);
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) {
        cls[i] = (uint8_t)ccc_of(cps[i], py);
        start[cls[i] + 1]++;
    }
    for (int c = 1; c < 257; c++) start[c] += start[c - 1];
    for (size_t i = 0; i < n; i++) tmp[start[cls[i]]++] = cps[i];
    memcpy(cps, tmp, n * sizeof *cps);
    it_free(tmp);
    it_free(cls);
    return IT_OK;
}

/* Canonical ordering: each run of non-starters sorted by class, stably
 * (insertion sort for the usual short runs). */
static it_status canonical_order(it_err *err, uint32_t *cps, size_t n, int py)
{
    for (size_t a = 0; a < n;) {
        if (ccc_of(cps[a], py) == 0) {
            a++;
            continue;
        }
        size_t b = a + 1;
        while (b < n && ccc_of(cps[b], py) != 0) b++;
        if (b - a > 16) {
            IT_TRY(order_run(err, cps + a, b - a, py));
        } else {
            for (size_t i = a + 1; i < b; i++) {
                uint32_t v = cps[i];
                int c = ccc_of(v, py);
                size_t j = i;
                while (j > a && ccc_of(cps[j - 1], py) > c) {
                    cps[j] = cps[j - 1];
                    j--;
                }
                cps[j] = v;
            }
        }
        a = b;
    }
    return IT_OK;
}

/* Canonical composition in place (the algorithm of UAX #15): a character
 * joins the last starter unless a character of the same or higher class,
 * or a starter, stands between them. Returns the new length. */
static size_t canonical_compose(uint32_t *cps, size_t n, int py)
{
    if (n == 0) return 0;
    size_t starter = 0, w = 1;
    int last_class = ccc_of(cps[0], py) ? 256 : 0;
    for (size_t r = 1; r < n; r++) {
        uint32_t ch = cps[r];
        int c = ccc_of(ch, py);
        uint32_t comp = compose(cps[starter], ch, py);
        if (comp && (last_class < c || last_class == 0)) {
            cps[starter] = comp;
            continue;
        }
        if (c == 0) starter = w;
        last_class = c;
        cps[w++] = ch;
    }
    return w;
}

static it_status nfc(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n, int py)
{
    int simple = 1;
    for (size_t i = 0; i < n && simple; i++) simple = cps[i] < it_unicode_nfc_fast_limit;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t tmp[8];
        cap += simple ? 1 : (cps[i] < 0xC0 ? 1 : decompose(tmp, cps[i]));
    }
    uint32_t *buf = it_malloc(cap * sizeof *buf);
    if (!buf) return it_err_set(err, IT_ERR_NOMEM, "nfc: out of memory (%zu code points)", n);
    size_t k = 0;
    if (simple) {
        memcpy(buf, cps, n * sizeof *buf);
        k = n;
    } else {
        for (size_t i = 0; i < n; i++) k += decompose(buf + k, cps[i]);
        it_status st = canonical_order(err, buf, k, py);
        if (st) {
            it_free(buf);
            return st;
        }
        k = canonical_compose(buf, k, py);
    }
    *out = buf;
    *n_out = k;
    return IT_OK;
}

it_status it_unicode_nfc(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n)
{
    return nfc(err, out, n_out, cps, n, 0);
}

it_status it_unicode_nfc_python(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n)
{
    return nfc(err, out, n_out, cps, n, 1);
}

/* ------------------------------------------------------------------------ */
/* Python's str.lower                                                        */
/* ------------------------------------------------------------------------ */

static int py_ignorable(uint32_t cp)
{
    return in_ranges(it_unicode_py_ignorable, it_unicode_py_ignorable_n, cp);
}

static int py_cased(uint32_t cp)
{
    return in_ranges(it_unicode_py_cased, it_unicode_py_cased_n, cp);
}

/* CPython's handle_capital_sigma: \p{cased} \p{case-ignorable}* SIGMA not
 * followed by \p{case-ignorable}* \p{cased}. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && py_ignorable(s[j - 1])) j--;
    if (j == 0 || !py_cased(s[j - 1])) return 0;
    for (j = i + 1; j < n && py_ignorable(s[j]); j++) {}
    return j == n || !py_cased(s[j]);
}

it_status it_unicode_py_lower(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n)
{
    uint32_t *res = it_malloc((3 * n + 1) * sizeof *res);
    if (!res) return it_err_set(err, IT_ERR_NOMEM, "lower: out of memory (%zu code points)", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (cps[i] == 0x3A3) res[k++] = final_sigma(cps, n, i) ? 0x3C2 : 0x3C3;
        else k += (size_t)it_unicode_lower(res + k, cps[i]);
    }
    *out = res;
    *n_out = k;
    return IT_OK;
}
