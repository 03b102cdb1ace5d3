#!/usr/bin/env python3
"""Generates tests/fixtures/image/: small test images and Pillow's decodes
and resizes of them, the reference for tests/test_image*.c.

Run from the repository root with the project venv:
    tools/.venv/bin/python tools/gen_image_fixtures.py
Deterministic (fixed seeds). Files:
  src_*.png              source images (gradients, shapes, strokes, noise)
  rs_<src>_<filter>_<W>x<H>.png   Pillow Image.resize outputs
  png_*.png, jpeg_*.jpg, webp_*.webp   codec variants
  *.pam                  expected decoded pixels (PAM, P7) as Pillow gives them,
                         in the channel layout our decoder returns
  convert_*.pam          expected it_image_convert results
  MANIFEST.txt           what each file is and how it was made
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageOps, __version__ as PIL_VERSION

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "image")
manifest = []


def note(name, what):
    manifest.append(f"{name}: {what}")


def write_pam(name, arr):
    """PAM (netpbm P7): header then raw interleaved 8-bit samples."""
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    tuple_type = {1: "GRAYSCALE", 2: "GRAYSCALE_ALPHA", 3: "RGB", 4: "RGB_ALPHA"}[c]
    hdr = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH {c}\nMAXVAL 255\nTUPLTYPE {tuple_type}\nENDHDR\n"
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(hdr.encode() + arr.tobytes())


def pixels(im):
    """Pillow image -> (h, w, c) uint8 array in our channel layout."""
    return np.asarray(im).reshape(im.size[1], im.size[0], -1)


def scene(w, h, seed, alpha=False):
    """A small 'real-looking' picture: gradient sky, shapes, strokes, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        40 + 180 * x / max(w - 1, 1),
        60 + 150 * y / max(h - 1, 1),
        200 - 120 * (x + y) / max(w + h - 2, 1),
    ], axis=-1)
    im = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse([w * 0.1, h * 0.2, w * 0.5, h * 0.8], fill=(230, 200, 40))
    d.rectangle([w * 0.55, h * 0.1, w * 0.9, h * 0.45], fill=(30, 90, 160), outline=(250, 250, 250))
    d.polygon([(w * 0.6, h * 0.95), (w * 0.95, h * 0.55), (w * 0.98, h * 0.98)], fill=(180, 30, 60))
    for i in range(4):  # text-like strokes
        x0 = w * (0.08 + 0.2 * i)
        d.line([(x0, h * 0.85), (x0 + w * 0.06, h * 0.65), (x0 + w * 0.12, h * 0.85)],
               fill=(10, 10, 10), width=1)
    arr = np.asarray(im).astype(np.int16)
    arr = (arr + rng.integers(-12, 13, size=arr.shape)).clip(0, 255).astype(np.uint8)
    if not alpha:
        return Image.fromarray(arr, "RGB")
    a = (255 * (0.5 + 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0))).clip(0, 255)
    a[: h // 4, : w // 4] = 0      # fully transparent corner
    a[-h // 4:, -w // 4:] = 255    # opaque corner
    return Image.fromarray(np.dstack([arr, a.astype(np.uint8)]), "RGBA")


# ---- PNG writer for what Pillow cannot write (16-bit colour, Adam7) ----------

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def write_png_raw(name, arr, depth, color_type, interlace=False):
    """arr: (h, w, c) integer samples; rows unfiltered (filter type 0)."""
    h, w, c = arr.shape
    dt = ">u2" if depth == 16 else "u1"

    def rows(a):
        return b"".join(b"\x00" + a[r].astype(dt).tobytes() for r in range(a.shape[0]))

    if not interlace:
        raw = rows(arr)
    else:
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = arr[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += rows(sub)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) \
        + png_chunk(b"IEND", b"")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def gen_sources():
    srcs = {
        "src_64x48": scene(64, 48, 1),
        "src_97x61": scene(97, 61, 2),
        "src_33x17_rgba": scene(33, 17, 3, alpha=True),
        "src_40x30_l": scene(40, 30, 4).convert("L"),
    }
    for k, im in srcs.items():
        im.save(os.path.join(OUT, k + ".png"))
        note(k + ".png", f"source image, mode {im.mode}, synthetic scene (seeded)")
    return srcs


FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

SIZES = {
    "src_64x48": [(32, 24), (23, 37), (100, 75), (7, 5), (64, 20)],
    "src_97x61": [(40, 30), (150, 90), (61, 97), (13, 61)],
    "src_33x17_rgba": [(16, 9), (50, 40)],
    "src_40x30_l": [(17, 11), (90, 31)],
}


def gen_resize(srcs):
    for k, sizes in SIZES.items():
        for fname, f in FILTERS.items():
            for (w, h) in sizes:
                out = srcs[k].resize((w, h), f)
                name = f"rs_{k}_{fname}_{w}x{h}.png"
                out.save(os.path.join(OUT, name))
    note("rs_*.png", "Image.resize(size, filter) of the src image named in the file name")
    # Fractional source regions (resize(size, filter, box)), incl. no scale change.
    for fname in ["bilinear", "bicubic", "lanczos"]:
        for i, ((w, h), box) in enumerate([((40, 30), (10.5, 5.25, 80.75, 55.5)),
                                            ((30, 61), (3.0, 0.0, 33.0, 61.0)),
                                            ((50, 20), (0.0, 7.5, 97.0, 41.0))]):
            out = srcs["src_97x61"].resize((w, h), FILTERS[fname], box=box)
            out.save(os.path.join(OUT, f"rsbox{i}_{fname}.png"))
    note("rsbox<i>_<filter>.png", "src_97x61.resize(size, filter, box=...) with the boxes in "
         "gen_resize (tests/test_image_resize.c lists the same)")


def gen_float_resize(srcs):
    """Pillow mode "F" resizes (the reference for it_resize_f32)."""
    f = srcs["src_40x30_l"].convert("F")
    for fname in ["bilinear", "bicubic", "lanczos"]:
        for (w, h) in [(17, 11), (90, 31)]:
            out = np.asarray(f.resize((w, h), FILTERS[fname]), dtype="<f4")
            with open(os.path.join(OUT, f"rsf_{fname}_{w}x{h}.f32"), "wb") as fh:
                fh.write(f"F32 {w} {h} 1\n".encode() + out.tobytes())
    note("rsf_<filter>_<W>x<H>.f32", "src_40x30_l as mode F resized by Pillow; header "
         "'F32 W H C\\n' then little-endian float32 samples, row-major")


def gen_png(base):
    rgb = pixels(base)                                 # 40x30 RGB
    rng = np.random.default_rng(7)
    Image.fromarray(rgb).save(os.path.join(OUT, "png_rgb8.png"))
    write_pam("png_rgb8.pam", rgb)
    rgba = pixels(scene(40, 30, 5, alpha=True))
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "png_rgba8.png"))
    write_pam("png_rgba8.pam", rgba)
    grey = pixels(base.convert("L"))
    Image.fromarray(grey[:, :, 0], "L").save(os.path.join(OUT, "png_l8.png"))
    write_pam("png_l8.pam", grey)
    la = np.dstack([grey, rgba[:, :, 3:]])
    Image.fromarray(la, "LA").save(os.path.join(OUT, "png_la8.png"))
    write_pam("png_la8.pam", la)
    # 16-bit: random low bytes, so that taking the high byte is what is tested.
    for name, arr8, ct in [("png_rgb16", rgb, 2), ("png_rgba16", rgba, 6), ("png_l16", grey, 0),
                           ("png_la16", la, 4)]:
        a16 = arr8.astype(np.uint16) * 256 + rng.integers(0, 256, size=arr8.shape)
        write_png_raw(name + ".png", a16, 16, ct)
        write_pam(name + ".pam", a16 >> 8)
    # Palette (adaptive, 16 colours) without and with tRNS.
    p = base.quantize(16)
    p.save(os.path.join(OUT, "png_p.png"))
    write_pam("png_p.pam", pixels(p.convert("RGB")))
    pt = p.copy()
    trns = bytes([0, 64, 128, 200] + [255] * 12)
    pt.info["transparency"] = trns
    pt.save(os.path.join(OUT, "png_p_trns.png"), transparency=trns)
    reread = Image.open(os.path.join(OUT, "png_p_trns.png"))
    write_pam("png_p_trns.pam", pixels(reread.convert("RGBA")))
    # Grey with a tRNS colour key -> grey+alpha.
    Image.fromarray(grey[:, :, 0], "L").save(os.path.join(OUT, "png_l_trns.png"),
                                             transparency=int(grey[0, 0, 0]))
    write_pam("png_l_trns.pam", np.dstack([grey, np.where(grey == grey[0, 0, 0], 0, 255)]))
    # 1-bit grey.
    bw = base.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1")
    bw.save(os.path.join(OUT, "png_l1.png"))
    write_pam("png_l1.pam", pixels(bw.convert("L")))
    # Adam7 interlaced, 8-bit RGB and 16-bit RGBA.
    write_png_raw("png_rgb8_interlaced.png", rgb, 8, 2, interlace=True)
    write_pam("png_rgb8_interlaced.pam", rgb)
    write_png_raw("png_rgba16_interlaced.png", rgba.astype(np.uint16) * 257, 16, 6, interlace=True)
    write_pam("png_rgba16_interlaced.pam", rgba)
    # Pillow must agree with our expectations for the hand-written files.
    for name in ["png_rgb8_interlaced", "png_rgba16_interlaced", "png_rgb16", "png_rgba16"]:
        im = Image.open(os.path.join(OUT, name + ".png"))
        assert np.array_equal(pixels(im.convert("RGBA" if "rgba" in name else "RGB")),
                              rgba if "rgba16_inter" in name else
                              (rgb if name == "png_rgb8_interlaced" else pixels(im))), name
    note("png_*.png / png_*.pam", "PNG variants of a 40x30 scene; .pam = expected 8-bit decode "
         "(palette -> RGB/RGBA, tRNS -> alpha, 16-bit -> high byte)")


def exif_bytes(orientation, big_endian=False):
    if not big_endian:
        ex = Image.Exif()
        ex[0x0112] = orientation
        return ex.tobytes()
    # Hand-made Motorola-order block: TIFF header, IFD0 with 2 entries.
    ifd = struct.pack(">H", 2)
    ifd += struct.pack(">HHIHH", 0x010F, 2, 4, 0x4142, 0x4300)  # Make "ABC"
    ifd += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd += struct.pack(">I", 0)
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd


def gen_jpeg(base):
    small = base.resize((24, 16), Image.Resampling.BOX)
    for o in range(1, 9):
        name = f"jpeg_orient{o}.jpg"
        small.save(os.path.join(OUT, name), quality=92, exif=exif_bytes(o))
        im = ImageOps.exif_transpose(Image.open(os.path.join(OUT, name)))
        write_pam(f"jpeg_orient{o}.pam", pixels(im))
    small.save(os.path.join(OUT, "jpeg_orient6_mm.jpg"), quality=92, exif=exif_bytes(6, True))
    im = ImageOps.exif_transpose(Image.open(os.path.join(OUT, "jpeg_orient6_mm.jpg")))
    assert im.size == (16, 24)
    write_pam("jpeg_orient6_mm.pam", pixels(im))
    # The same EXIF in PNG (eXIf chunk) and WebP (EXIF chunk) containers.
    small.save(os.path.join(OUT, "png_orient6.png"), exif=exif_bytes(6))
    small.save(os.path.join(OUT, "webp_orient8.webp"), lossless=True, exif=exif_bytes(8))
    for name in ["png_orient6.png", "webp_orient8.webp"]:
        im = ImageOps.exif_transpose(Image.open(os.path.join(OUT, name)))
        assert im.size == (16, 24), name
        write_pam(name.split(".")[0] + ".pam", pixels(im.convert("RGB")))
    note("png_orient6.png, webp_orient8.webp", "the 24x16 picture with EXIF orientation in "
         "PNG eXIf / WebP EXIF chunks; .pam = exif_transpose result")
    note("jpeg_orient<N>.jpg/.pam", "24x16 JPEG with EXIF orientation N; .pam = "
         "ImageOps.exif_transpose(Image.open(f)) pixels; _mm = big-endian EXIF written by hand")
    for name, im, kw in [("jpeg_rgb", base, {"quality": 90}),
                         ("jpeg_l", base.convert("L"), {"quality": 90}),
                         ("jpeg_progressive", base, {"quality": 85, "progressive": True}),
                         ("jpeg_cmyk", base.convert("CMYK"), {"quality": 95}),
                         ("jpeg_444", base, {"quality": 90, "subsampling": 0})]:
        im.save(os.path.join(OUT, name + ".jpg"), **kw)
        dec = Image.open(os.path.join(OUT, name + ".jpg"))
        dec = dec.convert("RGB") if dec.mode == "CMYK" else dec
        write_pam(name + ".pam", pixels(dec))
    note("jpeg_{rgb,l,progressive,cmyk,444}.jpg/.pam", "40x30 scene; .pam = Pillow decode "
         "(CMYK converted with convert('RGB'))")


def gen_webp(base):
    rgba = scene(40, 30, 5, alpha=True)
    for name, im, kw in [("webp_lossy", base, {"quality": 80}),
                         ("webp_lossless", base, {"lossless": True}),
                         ("webp_lossy_alpha", rgba, {"quality": 80}),
                         ("webp_lossless_alpha", rgba, {"lossless": True, "exact": True})]:
        im.save(os.path.join(OUT, name + ".webp"), **kw)
        write_pam(name + ".pam", pixels(Image.open(os.path.join(OUT, name + ".webp"))))
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(os.path.join(OUT, "webp_anim.webp"), save_all=True, append_images=frames[1:],
                   lossless=True, duration=100)
    first = Image.open(os.path.join(OUT, "webp_anim.webp"))
    first.seek(0)
    write_pam("webp_anim.pam", pixels(first.convert("RGBA")))
    note("webp_*.webp/.pam", "WebP variants of the 40x30 scenes; .pam = Pillow decode "
         "(animated: first frame as RGBA)")


def gen_convert():
    im = scene(33, 17, 3, alpha=True)
    bg = Image.new("RGB", im.size, (40, 120, 200))
    bg.paste(im, mask=im.getchannel("A"))
    write_pam("convert_rgba_over_bg.pam", pixels(bg))
    write_pam("convert_rgba_over_bg_l.pam", pixels(bg.convert("L")))
    write_pam("convert_rgb_to_l.pam", pixels(im.convert("RGB").convert("L")))
    write_pam("convert_rgba_to_la.pam", pixels(im.convert("LA")))
    note("convert_*.pam", "src_33x17_rgba pasted with its alpha on (40,120,200) with Image.paste, "
         "then convert('L'); convert('RGB').convert('L'); convert('LA')")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if not f.startswith("fuzz_"):  # fuzzer findings are kept, not generated
            os.remove(os.path.join(OUT, f))
    srcs = gen_sources()
    gen_resize(srcs)
    gen_float_resize(srcs)
    base = scene(40, 30, 6)
    gen_png(base)
    gen_jpeg(base)
    gen_webp(base)
    gen_convert()
    with open(os.path.join(OUT, "MANIFEST.txt"), "w") as f:
        f.write(f"Generated by tools/gen_image_fixtures.py with Pillow {PIL_VERSION}, "
                f"numpy {np.__version__}.\n")
        f.write("\n".join(manifest) + "\n")
        f.write("fuzz_jpeg_tiny_huge.jpg: 386-byte JPEG found by fuzz/jpeg_decode (timeout): "
                "declares 2584x15105 with EXIF orientation 6; libjpeg fills the missing data "
                "(not generated; kept when regenerating)\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(os.listdir(OUT))} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    sys.exit(main())
