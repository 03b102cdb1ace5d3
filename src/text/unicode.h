/* unicode.h: strict UTF-8, character classes, lower-casing and NFC.
 *
 * Owns: what the CLIP tokenizer needs from Unicode, with exactly the
 * behaviour of the HuggingFace tokenizers library (the data tables in
 * unicode_tables.c are probed from it, see tools/gen_unicode_tables.py):
 *   - strict UTF-8 decoding: every ill-formed sequence becomes one U+FFFD per
 *     maximal subpart (the Unicode / WHATWG / Python errors="replace" rule),
 *     so our result on invalid bytes equals the reference library's result on
 *     the text Python would decode from them;
 *   - letter / number / white-space classes as the pre-tokenizer regex sees
 *     them (\p{L}, \p{N}, \s);
 *   - per-character full lower-case mapping (no context rules);
 *   - NFC normalisation (canonical decomposition, ordering, composition,
 *     Hangul included).
 * Does not own tokenisation (clip_tokenizer.h). */
#ifndef IT_UNICODE_H
#define IT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

#define IT_UNICODE_REPLACEMENT 0xFFFDu

/* Decodes one code point at s[0..n-1] (n >= 1). Returns the number of bytes
 * consumed (1..4) and the code point in *cp; an ill-formed sequence gives
 * U+FFFD and consumes its maximal subpart (at least 1 byte). */
size_t it_utf8_decode(uint32_t *cp, const uint8_t *s, size_t n);

/* Encodes cp (<= 0x10FFFF, not a surrogate) into out[0..3]; returns bytes. */
size_t it_utf8_encode(uint8_t out[4], uint32_t cp);

/* Decodes a whole buffer into a new array of code points (it_free). */
it_status it_utf8_to_cps(it_err *err, uint32_t **cps, size_t *n_cps, const uint8_t *s, size_t n);

int it_unicode_is_letter(uint32_t cp);
int it_unicode_is_number(uint32_t cp);
int it_unicode_is_space(uint32_t cp);

/* Lower-case mapping of one code point into out[0..2]; returns 1..3. */
int it_unicode_lower(uint32_t out[3], uint32_t cp);

/* Canonical combining class (0 for starters). */
int it_unicode_ccc(uint32_t cp);

/* NFC of cps[0..n-1] into a new array (it_free). The result may be longer
 * than the input only transiently; the final length is in *n_out. */
it_status it_unicode_nfc(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps, size_t n);

/* --- Python's view, for the legacy (transformers 4.x slow) tokenizer --- */

/* Python's category C* (Cc Cf Cs Co Cn) except tab, LF and CR. */
int it_unicode_py_is_control(uint32_t cp);
/* Python's category Zs. */
int it_unicode_py_is_zs(uint32_t cp);
/* NFC with Python 3.11's data (all of Unicode 14.0, which the tokenizers
 * library's NFC lacks a little of). */
it_status it_unicode_nfc_python(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps,
                                size_t n);
/* Python's str.lower of a whole string: the per-character mapping plus the
 * Final_Sigma rule (capital sigma after a cased letter and not before one,
 * case-ignorable characters skipped, becomes final sigma). */
it_status it_unicode_py_lower(it_err *err, uint32_t **out, size_t *n_out, const uint32_t *cps,
                              size_t n);

/* The data's provenance, e.g. "tokenizers 0.23.3, unicodedata 14.0.0". */
const char *it_unicode_data_source(void);

/* --- table types, used by the generated unicode_tables.c --- */
typedef struct it_unicode_range {
    uint32_t lo, hi;
} it_unicode_range;
typedef struct it_unicode_lower_entry {
    uint32_t cp;
    uint32_t lower[3]; /* unused slots are 0 */
} it_unicode_lower_entry;
typedef struct it_unicode_ccc_range {
    uint32_t lo, hi;
    uint8_t ccc;
} it_unicode_ccc_range;
typedef struct it_unicode_decomp {
    uint32_t cp;
    uint16_t offset, len; /* into it_unicode_decomp_pool */
} it_unicode_decomp;
typedef struct it_unicode_compose {
    uint32_t first, second, composite;
} it_unicode_compose;

extern const char it_unicode_source[];
extern const uint32_t it_unicode_nfc_fast_limit;
extern const it_unicode_range it_unicode_letters[], it_unicode_numbers[], it_unicode_spaces[];
extern const size_t it_unicode_letters_n, it_unicode_numbers_n, it_unicode_spaces_n;
extern const it_unicode_lower_entry it_unicode_lower_map[];
extern const size_t it_unicode_lower_map_n;
extern const it_unicode_ccc_range it_unicode_ccc_ranges[];
extern const size_t it_unicode_ccc_ranges_n;
extern const it_unicode_decomp it_unicode_decomp_map[];
extern const size_t it_unicode_decomp_map_n;
extern const uint32_t it_unicode_decomp_pool[];
extern const it_unicode_compose it_unicode_compose_map[];
extern const size_t it_unicode_compose_map_n;
/* unicode_legacy_tables.c */
extern const it_unicode_range it_unicode_py_control[], it_unicode_py_zs[], it_unicode_py_ignorable[],
    it_unicode_py_cased[];
extern const size_t it_unicode_py_control_n, it_unicode_py_zs_n, it_unicode_py_ignorable_n,
    it_unicode_py_cased_n;
extern const it_unicode_ccc_range it_unicode_py_ccc_extra[];
extern const size_t it_unicode_py_ccc_extra_n;
extern const it_unicode_compose it_unicode_py_compose_extra[];
extern const size_t it_unicode_py_compose_extra_n;

#endif
