#!/usr/bin/env python3
"""Generates src/text/unicode_tables.c: the Unicode data the CLIP tokenizer needs.

Usage: tools/.venv/bin/python tools/gen_unicode_tables.py [-o PATH]

What we must match is not "Unicode" but the HuggingFace tokenizers library
(the engine behind transformers' CLIPTokenizer): its regex engine
(Oniguruma), Rust's char::to_lowercase and its NFC crate each carry their own,
different Unicode versions. So the tables are taken from that library where
it decides, by probing every code point through it, and from Python's
unicodedata for the structure it cannot show directly:
  letters/numbers/spaces  the class the CLIP pre-tokenizer regex gives each
               code point ([\\p{L}]+, [\\p{N}], \\s) -- probed
  lower        per-character lower-case mapping (1..3 code points, no
               context rules such as final sigma) -- probed
  ccc          canonical combining classes (unicodedata), zeroed for the marks
               the library's NFC does not know (probed: it does not reorder them)
  decomp       full canonical decompositions (unicodedata; Hangul is
               algorithmic in C)
  compose      primary composites (unicodedata, exclusions removed), less
               the ones the library's NFC does not compose (probed)
The C tests then compare our NFC, classes and lower-casing with fixtures
the tokenizer generator records from the library itself.
"""
import argparse
import sys
import unicodedata

from tokenizers import Regex, normalizers, pre_tokenizers

MAX_CP = 0x110000
SURR = range(0xD800, 0xE000)

CLIP_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
PRE = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False)])
LOWER = normalizers.Lowercase()
NFC = normalizers.NFC()


def chars():
    for cp in range(MAX_CP):
        if cp not in SURR:
            yield cp


def probe_class(cp):
    """L, N, S (removed as whitespace) or P (the punctuation/other run class),
    from how the pre-tokenizer splits the code point between two letters and
    between two '!'."""
    c = chr(cp)
    a = len(PRE.pre_tokenize_str('a' + c + 'a'))
    b = len(PRE.pre_tokenize_str('!' + c + '!'))
    cls = {(1, 3): 'L', (3, 3): 'N', (3, 1): 'P', (2, 2): 'S'}.get((a, b))
    assert cls, 'U+%04X splits %d/%d' % (cp, a, b)
    return cls


def probe_lower(cp):
    lo = LOWER.normalize_str(chr(cp))
    assert 1 <= len(lo) <= 3, hex(cp)
    return lo


def knows_ccc(cp):
    """The library's NFC reorders a mark only if it knows its class: put it
    after U+0345 (class 240, the highest) and see whether it moves."""
    s = 'x\u0345' + chr(cp)
    return NFC.normalize_str(s) != s


def to_ranges(cps):
    out = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def full_decomp(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith('<'):
        return [cp]
    out = []
    for h in d.split():
        out.extend(full_decomp(int(h, 16)))
    return out


def is_hangul_syllable(cp):
    return 0xAC00 <= cp <= 0xD7A3


def decomp_table():
    out = []
    for cp in chars():
        if is_hangul_syllable(cp):
            continue
        d = full_decomp(cp)
        if d != [cp]:
            assert unicodedata.normalize('NFD', chr(cp)) == ''.join(map(chr, d)), hex(cp)
            out.append((cp, d))
    return out


def compose_table():
    out, dropped = [], []
    for cp in chars():
        if is_hangul_syllable(cp):
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith('<'):
            continue
        parts = [int(h, 16) for h in d.split()]
        if len(parts) != 2:
            continue
        # Excluded composites (exclusion list, non-starter decompositions)
        # are exactly the ones NFC does not leave alone.
        if unicodedata.normalize('NFC', chr(cp)) != chr(cp):
            continue
        if NFC.normalize_str(chr(parts[0]) + chr(parts[1])) != chr(cp):
            dropped.append(cp)
            continue
        out.append((parts[0], parts[1], cp))
    out.sort()
    return out, dropped


def ccc_ranges():
    out, unknown = [], []
    for cp in chars():
        c = unicodedata.combining(chr(cp))
        if not c:
            continue
        if c < 240 and not knows_ccc(cp):
            unknown.append(cp)
            continue
        if out and out[-1][2] == c and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp, c])
    return out, unknown


def nfc_fast_limit(compose, ccc):
    """Lowest code point from which NFC may change text: below it a segment is
    already NFC and composes with nothing."""
    seconds = {s for _, s, _ in compose}
    marks = {cp for lo, hi, _ in ccc for cp in range(lo, hi + 1)}
    for cp in chars():
        ch = chr(cp)
        if cp in marks or cp in seconds or NFC.normalize_str(ch) != ch:
            return cp
    return MAX_CP


def fmt_ranges(name, rs):
    lines = ['const it_unicode_range %s[] = {' % name]
    for i in range(0, len(rs), 4):
        lines.append('    ' + ', '.join('{0x%X, 0x%X}' % (lo, hi) for lo, hi in rs[i:i + 4]) + ',')
    lines.append('};')
    lines.append('const size_t %s_n = sizeof %s / sizeof %s[0];\n' % (name, name, name))
    return '\n'.join(lines)


def generate(path):
    import tokenizers
    classes = {'L': [], 'N': [], 'S': []}
    lower = []
    for cp in chars():
        k = probe_class(cp)
        if k in classes:
            classes[k].append(cp)
        lo = probe_lower(cp)
        if lo != chr(cp):
            lower.append((cp, [ord(c) for c in lo]))
    decomp = decomp_table()
    compose, dropped = compose_table()
    ccc, unknown = ccc_ranges()
    out = ['/* unicode_tables.c: GENERATED by tools/gen_unicode_tables.py, do not edit.\n'
           ' *\n'
           ' * The Unicode data of the CLIP tokenizer, as the HuggingFace tokenizers\n'
           ' * library %s (behind transformers\' CLIPTokenizer) applies it: letter,\n'
           ' * number and space classes of its pre-tokenizer regex and per-character\n'
           ' * lower-case mappings probed code point by code point; NFC data from\n'
           ' * Python %s unicodedata (Unicode %s) less what that library\'s older NFC\n'
           ' * does not know (%d combining classes, %d compositions).\n'
           ' * Regenerate: tools/.venv/bin/python tools/gen_unicode_tables.py */'
           % (tokenizers.__version__, sys.version.split()[0], unicodedata.unidata_version,
              len(unknown), len(dropped)),
           '#include "text/unicode.h"\n',
           'const char it_unicode_source[] = "tokenizers %s, unicodedata %s";'
           % (tokenizers.__version__, unicodedata.unidata_version),
           'const uint32_t it_unicode_nfc_fast_limit = 0x%X;\n' % nfc_fast_limit(compose, ccc),
           fmt_ranges('it_unicode_letters', to_ranges(classes['L'])),
           fmt_ranges('it_unicode_numbers', to_ranges(classes['N'])),
           fmt_ranges('it_unicode_spaces', to_ranges(classes['S']))]
    lines = ['const it_unicode_lower_entry it_unicode_lower_map[] = {']
    for cp, lo in lower:
        lo = lo + [0] * (3 - len(lo))
        lines.append('    {0x%X, {0x%X, 0x%X, 0x%X}},' % (cp, lo[0], lo[1], lo[2]))
    lines += ['};', 'const size_t it_unicode_lower_map_n = sizeof it_unicode_lower_map / sizeof it_unicode_lower_map[0];\n']
    out.append('\n'.join(lines))
    lines = ['const it_unicode_ccc_range it_unicode_ccc_ranges[] = {']
    for lo, hi, c in ccc:
        lines.append('    {0x%X, 0x%X, %d},' % (lo, hi, c))
    lines += ['};', 'const size_t it_unicode_ccc_ranges_n = sizeof it_unicode_ccc_ranges / sizeof it_unicode_ccc_ranges[0];\n']
    out.append('\n'.join(lines))
    pool = []
    lines = ['const it_unicode_decomp it_unicode_decomp_map[] = {']
    for cp, d in decomp:
        lines.append('    {0x%X, %d, %d},' % (cp, len(pool), len(d)))
        pool.extend(d)
    lines += ['};', 'const size_t it_unicode_decomp_map_n = sizeof it_unicode_decomp_map / sizeof it_unicode_decomp_map[0];\n']
    out.append('\n'.join(lines))
    lines = ['const uint32_t it_unicode_decomp_pool[] = {']
    for i in range(0, len(pool), 8):
        lines.append('    ' + ', '.join('0x%X' % c for c in pool[i:i + 8]) + ',')
    lines.append('};\n')
    out.append('\n'.join(lines))
    lines = ['const it_unicode_compose it_unicode_compose_map[] = {']
    for a, b, c in compose:
        lines.append('    {0x%X, 0x%X, 0x%X},' % (a, b, c))
    lines += ['};', 'const size_t it_unicode_compose_map_n = sizeof it_unicode_compose_map / sizeof it_unicode_compose_map[0];']
    out.append('\n'.join(lines))
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    print('wrote %s: %d letters, %d numbers, %d spaces, %d lower, %d ccc ranges (%d unknown), '
          '%d decomp, %d compose (%d dropped: %s)'
          % (path, len(classes['L']), len(classes['N']), len(classes['S']), len(lower), len(ccc),
             len(unknown), len(decomp), len(compose), len(dropped), ' '.join('U+%04X' % c for c in dropped)))
    return unknown, dropped


# --------------------------------------------------------------------------
# Legacy: transformers 4.x slow CLIPTokenizer without ftfy (BasicTokenizer)
# --------------------------------------------------------------------------

def probe_case_class(cp):
    """Python's str.lower final-sigma context: I (case-ignorable: skipped),
    C (cased, not ignorable) or O. Probed through str.lower itself."""
    c = chr(cp)
    after_digit = ('1' + c + '\u03a3').lower().endswith('\u03c2')
    after_letter = ('A' + c + '\u03a3').lower().endswith('\u03c2')
    if after_digit:
        return 'C'
    return 'I' if after_letter else 'O'


def generate_legacy(path, main_ccc_unknown, main_dropped):
    control, zs, ign, cased = [], [], [], []
    lower_bad = []
    for cp in chars():
        c = chr(cp)
        cat = unicodedata.category(c)
        k = probe_case_class(cp)
        if k == 'I':
            ign.append(cp)
        elif k == 'C':
            cased.append(cp)
        if cat.startswith('C') and c not in '\t\n\r':
            control.append(cp)
            continue
        if cat == 'Zs':
            zs.append(cp)
        if c.lower() != probe_lower(cp):
            lower_bad.append(cp)
    # The tokenizers-probed lower-case table serves both modes: every
    # character that survives the legacy clean-up lower-cases alike.
    assert not lower_bad, ['U+%04X' % c for c in lower_bad[:10]]
    ccc_extra = [[cp, cp, unicodedata.combining(chr(cp))] for cp in main_ccc_unknown]
    merged = []
    for lo, hi, c in ccc_extra:
        if merged and merged[-1][2] == c and merged[-1][1] == lo - 1:
            merged[-1][1] = hi
        else:
            merged.append([lo, hi, c])
    comp_extra = []
    for cp in main_dropped:
        a, b = [int(h, 16) for h in unicodedata.decomposition(chr(cp)).split()]
        comp_extra.append((a, b, cp))
    out = ['/* unicode_legacy_tables.c: GENERATED by tools/gen_unicode_tables.py, do not edit.\n'
           ' *\n'
           ' * What transformers 4.x\'s slow CLIPTokenizer without ftfy (BasicTokenizer,\n'
           ' * Python %s unicodedata, Unicode %s) needs beyond unicode_tables.c:\n'
           ' * the characters it deletes (category C*, except tab, LF, CR), the Zs\n'
           ' * spaces it maps to " ", the final-sigma classes of str.lower (probed:\n'
           ' * case-ignorable, and cased but not ignorable), and the NFC data the\n'
           ' * tokenizers library lacks but Python has. */'
           % (sys.version.split()[0], unicodedata.unidata_version),
           '#include "text/unicode.h"\n',
           fmt_ranges('it_unicode_py_control', to_ranges(control)),
           fmt_ranges('it_unicode_py_zs', to_ranges(zs)),
           fmt_ranges('it_unicode_py_ignorable', to_ranges(ign)),
           fmt_ranges('it_unicode_py_cased', to_ranges(cased))]
    lines = ['const it_unicode_ccc_range it_unicode_py_ccc_extra[] = {']
    for lo, hi, c in merged:
        lines.append('    {0x%X, 0x%X, %d},' % (lo, hi, c))
    lines += ['};', 'const size_t it_unicode_py_ccc_extra_n = sizeof it_unicode_py_ccc_extra / sizeof it_unicode_py_ccc_extra[0];\n']
    out.append('\n'.join(lines))
    lines = ['const it_unicode_compose it_unicode_py_compose_extra[] = {']
    for a, b, c in sorted(comp_extra):
        lines.append('    {0x%X, 0x%X, 0x%X},' % (a, b, c))
    lines += ['};', 'const size_t it_unicode_py_compose_extra_n = sizeof it_unicode_py_compose_extra / sizeof it_unicode_py_compose_extra[0];']
    out.append('\n'.join(lines))
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    print('wrote %s: %d control, %d Zs, %d ignorable, %d cased, %d extra ccc ranges, %d extra compositions'
          % (path, len(control), len(zs), len(ign), len(cased), len(merged), len(comp_extra)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-o', default='src/text/unicode_tables.c')
    ap.add_argument('--legacy-out', default='src/text/unicode_legacy_tables.c')
    args = ap.parse_args()
    unknown, dropped = generate(args.o)
    generate_legacy(args.legacy_out, unknown, dropped)


if __name__ == '__main__':
    main()
