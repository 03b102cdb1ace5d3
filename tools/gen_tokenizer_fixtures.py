#!/usr/bin/env python3
"""Generates the CLIP tokenizer fixtures under tests/fixtures/text/.

Usage:
  tools/.venv/bin/python tools/gen_tokenizer_fixtures.py --bpe-gz PATH [--bin build/intenttuner]

--bpe-gz is open_clip's bpe_simple_vocab_16e6.txt.gz (the original CLIP
merges), e.g. from `pip download --no-deps open_clip_torch` then
`unzip -j open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz`.
--bin is our binary; it trains the tiny tokenizer (`intenttuner tokenize train`).

Writes:
  clip/merges.txt            CLIP's 48894 merges in the HF hub layout; the
                             tests rebuild vocab.json from it (49408 tokens:
                             256 byte characters, the same + "</w>", each
                             merge's result, <|startoftext|>, <|endoftext|>)
  clip/configs/<name>/       tokenizer_config.json / special_tokens_map.json
                             variants: bare (none: CLIPTokenizer defaults),
                             sd15 (Stable Diffusion 1.x: special tokens
                             "normalized"), sd2 (SD 2.x: pad token "!"),
                             decoder (added_tokens_decoder, newer files)
  clip_parity.json           the corpus (>= 500 strings: prompts,
                             punctuation, numbers, scripts, emoji, white
                             space, control characters, special tokens, random
                             mixes, invalid UTF-8 as hex) with transformers'
                             input_ids for sd15, plus per-variant ids where
                             they differ, plus padded/truncated ids (77)
  tiny/                      corpus.txt (toy captions), the folder our
                             trainer wrote from it, and tiny_parity.json with
                             transformers' ids for texts using that folder
The reference is transformers' CLIPTokenizer (>= 5: the tokenizers-library
pipeline) with its exact versions recorded in the fixtures.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import tokenizers
import transformers
from transformers import CLIPTokenizer

OUT = 'tests/fixtures/text'

SPECIAL_OBJ = {"lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_merges(gz):
    lines = gzip.open(gz).read().decode('utf-8').split('\n')
    return [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]


def clip_vocab(merges):
    """CLIP's SimpleTokenizer vocabulary, as the HF hub's vocab.json has it."""
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab]
    for m in merges:
        vocab.append(''.join(m))
    vocab.extend(['<|startoftext|>', '<|endoftext|>'])
    assert len(vocab) == len(set(vocab)) == 49408
    return {v: i for i, v in enumerate(vocab)}


def configs():
    def added(content):
        return dict({"content": content}, **SPECIAL_OBJ)

    def cfg(pad, extra=None):
        c = {"add_prefix_space": False,
             "bos_token": dict({"__type": "AddedToken"}, **added("<|startoftext|>")),
             "do_lower_case": True,
             "eos_token": dict({"__type": "AddedToken"}, **added("<|endoftext|>")),
             "errors": "replace", "model_max_length": 77, "pad_token": pad,
             "tokenizer_class": "CLIPTokenizer",
             "unk_token": dict({"__type": "AddedToken"}, **added("<|endoftext|>"))}
        c.update(extra or {})
        return c

    def smap(pad):
        return {"bos_token": added("<|startoftext|>"), "eos_token": added("<|endoftext|>"),
                "pad_token": pad, "unk_token": added("<|endoftext|>")}

    def obj(c, n):
        return dict({"__type": "AddedToken", "content": c}, **dict(SPECIAL_OBJ, normalized=n))

    S, E = "<|startoftext|>", "<|endoftext|>"

    def roles(bos, eos, unk, pad):
        return {"bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": pad, "model_max_length": 77}

    # How transformers settles the "normalized" flag of a token named by
    # several roles, and which file wins (probed; see apply_specials in
    # src/text/clip_tokenizer.c).
    probes = {
        'p_unk_str': {'tokenizer_config.json': roles(obj(S, True), obj(E, True), E, obj(E, True))},
        'p_eos_str': {'tokenizer_config.json': roles(obj(S, True), E, obj(E, True), obj(E, True))},
        'p_pad_false': {'tokenizer_config.json': roles(obj(S, True), obj(E, True), obj(E, True), obj(E, False))},
        'p_eos_false': {'tokenizer_config.json': roles(obj(S, True), obj(E, False), obj(E, True), obj(E, True))},
        'p_map_wins': {'tokenizer_config.json': {"model_max_length": 77, "pad_token": obj(E, True), "bos_token": S},
                       'special_tokens_map.json': {"bos_token": dict(added(S)), "eos_token": added(E),
                                                   "unk_token": added(E), "pad_token": "!"}},
        'p_decoder_true': {'tokenizer_config.json': dict(roles(S, E, E, E), added_tokens_decoder={
            "49407": dict(added(E), special=True)})},
    }

    dec = {"49406": dict(added("<|startoftext|>"), special=True),
           "49407": dict(added("<|endoftext|>"), special=True)}
    for v in dec.values():
        v["normalized"] = False
    return {
        'bare': {},
        'sd15': {'tokenizer_config.json': cfg("<|endoftext|>"),
                 'special_tokens_map.json': smap("<|endoftext|>")},
        'sd2': {'tokenizer_config.json': cfg("!"), 'special_tokens_map.json': smap("!")},
        'decoder': {'tokenizer_config.json': {
            "added_tokens_decoder": dec, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 77,
            "tokenizer_class": "CLIPTokenizer", "do_lower_case": True}},
        **probes,
    }


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

SUBJECTS = ['a cat', 'an astronaut', 'a red fox', 'Vincent', 'a cyberpunk city', 'two dogs',
            'a knight in armour', 'a bowl of ramen', 'the Eiffel Tower', 'a portrait of a woman',
            'a dragon', 'a 1967 Ford Mustang', 'a robot', 'a cartoon creature with 3 eyes']
STYLES = ['oil painting', 'by Greg Rutkowski', 'trending on ArtStation', '8k, ultra-detailed',
          'studio lighting', 'bokeh', 'anime style', 'photorealistic', 'watercolor', 'HDR',
          'octane render', 'unreal engine 5', '35mm film', 'f/1.8', 'golden hour']

FIXED = [
    '', ' ', '   \t\n  ', 'a', 'A', 'a photo of a cat', 'A PHOTO OF A CAT', 'a photo of a cat.',
    'masterpiece, best quality, (detailed face:1.2), [blurry], ((sharp focus))',
    '(masterpiece:1.4), 1girl, solo, long hair, looking at viewer, smile, BREAK outdoors',
    'a [cat|dog] sitting on a {red|blue} chair', 'lora:style_v2:0.8 <lora:foo:1>',
    'embedding:EasyNegative, worst quality, low quality, jpeg artifacts',
    "don't", "DON'T", "I'm", "we're", "they've", "she'll", "he'd", "it's", "it’s",
    "rock 'n' roll", "''s", "'s", "'", "can't won't shouldn't", "O'Neil's dog's bone",
    "'re've'm'll'd't's", "the '90s", "y'all'd've",
    '!!!', '???!!!', '...', '…', '---', '—', '–', '~~~', '@#$%^&*()', '<>', '<|', '|>', '{}[]',
    '"quoted"', '“curly quotes”', '‘single’', '«guillemets»', '`backticks`', 'a/b\\c', 'path/to/file.png',
    'email@example.com', 'https://example.com/a?b=c&d=e#f', 'snake_case_name', 'kebab-case-name',
    'CamelCaseName', 'hash #tag', '$100', '€50', '£3.50', '¥1000', '100%', '50/50', '3:2', '16:9',
    '0', '1', '12', '123', '1234567890', '3.14159', '1,000,000', '-42', '+7', '1e10', '0x1F',
    '2nd 3rd 4th 21st', '1920x1080', 'v1.5', 'SD2.1', 'x4', '4k', '1/3', '½ ¼ ¾', '²³¹', '⅓',
    '①②③', 'Ⅳ Ⅻ', '٣٤٥', '१२३', '一二三', '𝟏𝟐𝟑',
    'café', 'cafe\u0301', 'naïve', 'nai\u0308ve', 'Ångström', 'A\u030angstro\u0308m', 'résumé',
    'Straße', 'STRASSE', 'ÆØÅ æøå', 'Œuvre', 'İstanbul', 'ıi', 'ǅ ǈ ǋ', 'ΣΑΣ σας', 'ὈΔΥΣΣΕΎΣ',
    'Ελληνικά', 'Русский текст', 'ПРИВЕТ мир', 'Українська', 'עברית', 'العربية', 'فارسی',
    'हिन्दी', 'বাংলা', 'தமிழ்', 'ไทย ภาษา', 'ລາວ', 'ქართული', 'Հայերեն', 'አማርኛ',
    '你好世界', '中文 提示词 猫', '日本語のテキスト', 'カタカナ ひらがな', 'ｶﾀｶﾅ', '한국어 텍스트',
    '\u1100\u1161\u11a8', '가\u11a8', 'Ｆｕｌｌｗｉｄｔｈ', 'ﬁ ﬂ ﬀ', 'ℌ ℑ ℜ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝒜𝓁𝓅𝒽𝒶',
    '∑∫∂√∞≠≤≥', '→ ← ↑ ↓', '★☆♥♦', '©®™', '°C', 'µm', 'Ω', 'Å', 'K',
    '😀', '🐱 cat', 'a 🐶 dog', '😀😃😄😁', '👍🏽', '👨\u200d👩\u200d👧\u200d👦', '🏳\ufe0f\u200d🌈', '🇯🇵🇺🇸',
    '1\ufe0f\u20e3', '❤\ufe0f', '☀', '🫠🫡🫶', '🪿🫎', 'emoji🙂inside', '🎨🖌️ art',
    'tab\there', 'new\nline', 'cr\r\nlf', 'nbsp\u00a0here', 'ideographic\u3000space',
    'line\u2028sep', 'para\u2029sep', 'zero\u200bwidth', 'zwnj\u200cx', 'bom\ufeffx', 'nel\u0085x',
    'thin\u2009space', 'em\u2003space', '\u180emongolian', 'vt\x0bff\x0c', 'fs\x1cgs\x1drs\x1eus\x1f',
    'nul\x00x', 'bell\x07x', 'esc\x1b[0m', 'del\x7fx', '\x80\x9f c1', 'soft\u00adhyphen',
    'rtl\u200fmark', 'replacement\ufffdchar', 'private\ue000use', 'noncharacter\uffff',
    '\U0010fffd plane 16', 'combining\u0301\u0301\u0301', '\u0301leading mark', 'a\u0338', '<\u0338',
    'q\u0307\u0323', 'ṩ', 's\u0323\u0307', 'ệ', 'e\u0302\u0323', '\u0915\u093c', 'क़',
    '<|startoftext|>', '<|endoftext|>', 'a<|endoftext|>b', '<|startoftext|>a cat<|endoftext|>',
    '<|ENDOFTEXT|>', '<|EndOfText|>', '<| endoftext |>', '<|endoftext|><|endoftext|>',
    '<|endoftext|>\u0338', 'x\u0338<|endoftext|>', '<<|endoftext|>>', '<|endoftext', 'endoftext|>',
    '<|startoftext|>\u00a0<|endoftext|>', 'hello!!! world!', '!', '! ! !', 'wow!wow', '!hello',
    'a' * 300, 'ab' * 80, 'supercalifragilisticexpialidocious', 'pneumonoultramicroscopicsilicovolcanoconiosis',
    '1' * 100, '!' * 120, '🙂' * 40,
]


def templated(rng, n):
    out = []
    for _ in range(n):
        parts = [rng.choice(SUBJECTS)]
        parts += rng.sample(STYLES, rng.randint(1, 5))
        sep = rng.choice([', ', ',', ' ', ' | ', '; '])
        s = sep.join(parts)
        if rng.random() < 0.3:
            s = s.upper() if rng.random() < 0.5 else s.title()
        if rng.random() < 0.3:
            s = '(%s:%.1f)' % (s, rng.uniform(0.5, 1.5))
        out.append(s)
    return out


ALPHABETS = [
    'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', ' \t\n',
    '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~', 'áéíóúàèìòùâêîôûäëïöüñçÅß', 'αβγδεζηθΣσςΩ',
    'абвгдежзийклмнопрстуфхцчшщъыьэюяЖЯ', 'אבגדהוזחטי', 'ابتثجحخدذ', 'कखगघङचछजझ\u093f\u094d',
    '的一是不了人我在有他这中大来上', 'あいうえおカキクケコ', '가나다라마바사\u1100\u1161', 'ไทยภาษา\u0e31\u0e34',
    '\u0300\u0301\u0302\u0303\u0308\u0323\u0327\u0338', '\u200b\u200c\u200d\ufeff\u00ad\u2060',
    '\u00a0\u2000\u2003\u3000\u2028\u0085\x0b\x0c', '\x00\x01\x07\x1b\x7f\x9f',
    '😀🐱👍🏽❤️🇯🇵🫠🪿', '½²①Ⅳ٣𝟏', 'ﬁＦｕℌ𝔘', '…—–“”‘’«»', '€£¥©®™°µ',
    "'s't're've'm'll'd", '<|startoftext|><|endoftext|>', '\U0001f9ff\U0001fae8\U0001faf8',
]


def random_mix(rng, n):
    out = []
    for _ in range(n):
        k = rng.randint(1, 60)
        alphas = rng.sample(ALPHABETS, rng.randint(1, 4))
        out.append(''.join(rng.choice(rng.choice(alphas)) for _ in range(k)))
    return out


def random_codepoints(rng, n):
    """Any scalar value, including unassigned and newer-Unicode ones."""
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.3:
                cp = rng.randint(0x20, 0x7e)
            elif r < 0.6:
                cp = rng.randint(0x80, 0xffff)
            else:
                cp = rng.randint(0x10000, 0x10ffff)
            if 0xd800 <= cp < 0xe000:
                cp = 0xfffd
            s.append(chr(cp))
        out.append(''.join(s))
    return out


INVALID = [b'\xff', b'\xc0\xaf', b'\xe0\x80\x80', b'\xed\xa0\x80', b'\xf4\x90\x80\x80', b'\xf8\x88\x80\x80\x80',
           b'caf\xe9', b'\xe2\x82', b'\xe2\x82x', b'abc\xf0\x9f\x98', b'\x80\x80\x80', b'a\xc3', b'\xc3\x28',
           b'\xf0\x28\x8c\xbc', b'\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41', b'ok \xfe\xfe ok', b'<|endoftext\xff|>',
           b'<|endoftext|>\xff', b'\xef\xbb\xbfbom', b'\xc2\xa0nbsp', b'\xf4\x8f\xbf\xbf']


def random_bytes(rng, n):
    return [bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 24))) for _ in range(n)]


def corpus():
    rng = random.Random(20260513)
    texts = [s.encode('utf-8') for s in FIXED + templated(rng, 90) + random_mix(rng, 150) + random_codepoints(rng, 60)]
    texts += INVALID + random_bytes(rng, 40)
    long_prompt = ', '.join(templated(rng, 12))
    texts += [long_prompt.encode(), (long_prompt + ' ' + long_prompt).encode()]
    seen, out = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def write_folder(path, vocab, merges_lines, files):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(path, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write(merges_lines)
    for name, obj in files.items():
        with open(os.path.join(path, name), 'w') as f:
            json.dump(obj, f, indent=2)


def text_entry(raw):
    try:
        s = raw.decode('utf-8')
        return {'text': s}, s
    except UnicodeDecodeError:
        return {'hex': raw.hex()}, raw.decode('utf-8', errors='replace')


def ids_of(tok, s):
    return tok(s)['input_ids']


def padded(tok, s):
    return tok(s, padding='max_length', max_length=77, truncation=True)['input_ids']


def versions():
    return {'transformers': transformers.__version__, 'tokenizers': tokenizers.__version__,
            'python': sys.version.split()[0]}


def gen_clip(bpe_gz, tmp):
    merges = clip_merges(bpe_gz)
    vocab = clip_vocab(merges)
    merges_text = '#version: 0.2\n' + ''.join('%s %s\n' % m for m in merges)
    os.makedirs(os.path.join(OUT, 'clip'), exist_ok=True)
    with open(os.path.join(OUT, 'clip', 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write(merges_text)
    toks = {}
    for name, files in configs().items():
        d = os.path.join(OUT, 'clip', 'configs', name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for fname, obj in files.items():
            with open(os.path.join(d, fname), 'w') as f:
                json.dump(obj, f, indent=2)
        write_folder(os.path.join(tmp, name), vocab, merges_text, files)
        toks[name] = CLIPTokenizer.from_pretrained(os.path.join(tmp, name))
    assert ids_of(toks['sd15'], 'a photo of a cat') == [49406, 320, 1125, 539, 320, 2368, 49407]
    cases = []
    n_pad = 0
    for raw in corpus():
        entry, s = text_entry(raw)
        entry['ids'] = ids_of(toks['sd15'], s)
        for name in toks:
            if name == 'sd15':
                continue
            other = ids_of(toks[name], s)
            if other != entry['ids']:
                entry['ids_' + name] = other
        # Truncation keeps the start, the first 75 ids and the end token.
        for name in ('sd15', 'sd2'):
            p = padded(toks[name], s)
            full = entry['ids'] if name == 'sd15' else entry.get('ids_sd2', entry['ids'])
            pad = toks[name].pad_token_id
            want = (full[:76] + [49407] if len(full) > 77 else full) + [pad] * max(0, 77 - len(full))
            assert p == want, (s, name)
        if len(entry['ids']) > 77 or n_pad < 20:
            entry['padded_sd15'] = padded(toks['sd15'], s)
            entry['padded_sd2'] = padded(toks['sd2'], s)
            n_pad += 1
        cases.append(entry)
    doc = {'about': 'CLIPTokenizer input_ids for the parity corpus; made by tools/gen_tokenizer_fixtures.py',
           'versions': versions(), 'base_config': 'sd15', 'configs': sorted(toks), 'cases': cases}
    with open(os.path.join(OUT, 'clip_parity.json'), 'w') as f:
        json.dump(doc, f, ensure_ascii=True, separators=(',', ':'))
        f.write('\n')
    diff = {n: sum(1 for c in cases if 'ids_' + n in c) for n in toks if n != 'sd15'}
    print('clip: %d cases (%d invalid UTF-8), %d longer than 77; differing from sd15: %s'
          % (len(cases), sum(1 for c in cases if 'hex' in c), sum(1 for c in cases if len(c['ids']) > 77), diff))


TINY_COLOURS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'pink', 'black', 'white', 'grey']
TINY_BODIES = ['round', 'tall', 'blob', 'square']
TINY_THINGS = ['hat', 'goggles', 'necklace', 'scarf', 'bow tie']
TINY_OUTFITS = ['plain', 'striped', 'dotted']
TINY_POSES = ['standing', 'arms up', 'jumping', 'a superhero landing']
TINY_BGS = ['plain background', 'sky', 'grass', 'a room', 'the night']


def tiny_captions(rng, n):
    out = []
    for _ in range(n):
        s = 'a %s %s creature with %d eye%s' % (rng.choice(TINY_COLOURS), rng.choice(TINY_BODIES),
                                               e := rng.randint(1, 3), '' if e == 1 else 's')
        if rng.random() < 0.6:
            s += ', wearing a %s %s %s' % (rng.choice(TINY_OUTFITS), rng.choice(TINY_COLOURS), rng.choice(['jacket', 'shirt']))
        if rng.random() < 0.5:
            s += ' and a %s' % rng.choice(TINY_THINGS)
        s += ', %s, %s' % (rng.choice(TINY_POSES), rng.choice(TINY_BGS))
        if rng.random() < 0.2:
            s = rng.choice(['vincent', 'zork', 'bibi']) + ', ' + s
        out.append(s)
    return out


def gen_tiny(binary):
    rng = random.Random(7)
    d = os.path.join(OUT, 'tiny')
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'corpus.txt'), 'w') as f:
        f.write('\n'.join(tiny_captions(rng, 400)) + '\n')
    folder = os.path.join(d, 'tokenizer')
    subprocess.run([binary, 'tokenize', 'train', '--corpus', os.path.join(d, 'corpus.txt'),
                    '--vocab-size', '800', '--min-frequency', '2', '-o', folder], check=True)
    tok = CLIPTokenizer.from_pretrained(folder)
    texts = tiny_captions(random.Random(8), 60) + [
        'a Red Round creature!', 'VINCENT with 3 eyes, jumping', 'an unseen word: xylophone', '',
        'a creature<|endoftext|>with a hat', 'café 🙂 creature', '12 eyes?!', "it's zork's hat"]
    texts += [t for t in FIXED if isinstance(t, str)][:40]
    cases = [{'text': t, 'ids': ids_of(tok, t), 'padded': padded(tok, t)} for t in texts]
    doc = {'about': 'tiny tokenizer (trained by intenttuner tokenize train on corpus.txt, vocab 800, '
                    'min frequency 2) read by CLIPTokenizer; made by tools/gen_tokenizer_fixtures.py',
           'versions': versions(), 'cases': cases}
    with open(os.path.join(d, 'tiny_parity.json'), 'w') as f:
        json.dump(doc, f, ensure_ascii=True, separators=(',', ':'))
        f.write('\n')
    print('tiny: %d merges, %d cases' % (len(open(os.path.join(folder, 'merges.txt')).read().splitlines()) - 1, len(cases)))


def gen_legacy(bpe_gz, tmp):
    """transformers 4.x's slow CLIPTokenizer (run this under a venv with
    transformers<5 and without ftfy): ids for the same corpus, stored only
    where they differ from the default (>= 5) ids."""
    assert transformers.__version__.startswith('4.'), 'run --legacy with transformers 4.x'
    try:
        import ftfy  # noqa: F401
        sys.exit('uninstall ftfy: the legacy reference is the BasicTokenizer fallback')
    except ImportError:
        pass
    merges = clip_merges(bpe_gz)
    vocab = clip_vocab(merges)
    merges_text = '#version: 0.2\n' + ''.join('%s %s\n' % m for m in merges)
    doc = json.load(open(os.path.join(OUT, 'clip_parity.json')))
    variants = ('sd15', 'sd2', 'bare')
    toks = {}
    for name in variants:
        files = configs()[name]
        write_folder(os.path.join(tmp, name), vocab, merges_text, files)
        toks[name] = CLIPTokenizer.from_pretrained(os.path.join(tmp, name), use_fast=False)
        assert not toks[name].is_fast and toks[name].fix_text is None
    out, same = [], 0
    for i, c in enumerate(doc['cases']):
        s = c['text'] if 'text' in c else bytes.fromhex(c['hex']).decode('utf-8', errors='replace')
        base = ids_of(toks['sd15'], s)
        p = padded(toks['sd15'], s)
        assert p == (base[:76] + [49407] if len(base) > 77 else base) + [49407] * max(0, 77 - len(base)), s
        entry = {'i': i}
        if base != c['ids']:
            entry['ids'] = base
        for name in variants[1:]:
            other = ids_of(toks[name], s)
            if other != base:
                entry['ids_' + name] = other
        if len(entry) > 1:
            out.append(entry)
        else:
            same += 1
    res = {'about': "transformers 4.x slow CLIPTokenizer (no ftfy) ids for clip_parity.json's texts, "
                    'listed where they differ from the default ids ("ids": sd15 config; '
                    '"ids_<variant>": where that variant differs from it); made by '
                    'tools/gen_tokenizer_fixtures.py --legacy',
           'versions': versions(), 'n_cases': len(doc['cases']), 'cases': out}
    with open(os.path.join(OUT, 'clip_parity_legacy.json'), 'w') as f:
        json.dump(res, f, ensure_ascii=True, separators=(',', ':'))
        f.write('\n')
    print('legacy: %d of %d cases differ from transformers 5 (sd15)' % (sum(1 for e in out if 'ids' in e), len(doc['cases'])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bpe-gz', required=True)
    ap.add_argument('--bin', default='build/intenttuner')
    ap.add_argument('--legacy', action='store_true',
                    help='write clip_parity_legacy.json (needs transformers 4.x, no ftfy)')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.legacy:
            gen_legacy(args.bpe_gz, tmp)
            return
        gen_clip(args.bpe_gz, tmp)
    gen_tiny(args.bin)


if __name__ == '__main__':
    main()
