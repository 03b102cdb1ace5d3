#!/usr/bin/env python3
"""gen_vision_fixtures.py: tiny random-initialised CLIP (transformers and
OpenCLIP layouts), OWL-ViT v1 and a preference head, with reference outputs,
for tests/test_vision*.c.

Run: /work/main/tools/.venv/bin/python tools/gen_vision_fixtures.py
Needs transformers 5.24 and open_clip_torch (pip install --no-deps
open_clip_torch; torchvision is stubbed out below because open_clip imports
one class from it that these models never use).

Writes tests/fixtures/vision/:
  img_*.png            real-looking test images drawn with Pillow
  clip_hf/             CLIPModel (config.json, model.safetensors, tokenizer,
                       preprocessor_config.json = openai/clip-vit-base-patch32's)
  clip_openclip/       the same architecture in OpenCLIP's layout
                       (open_clip_config.json, open_clip_model.safetensors)
  owlvit/              OwlViTForObjectDetection at 768x768 (real processor)
  pref/                preference head (pref_config.json, pref.safetensors)
  crop_*.png           CLIPImageProcessorPil's resized+cropped uint8 images
  vision_io.safetensors reference outputs (see keys below)
"""
import json
import os
import shutil
import sys
import types

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "vision")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "text", "tiny", "tokenizer")
VOCAB = 664


def stub_torchvision():
    import importlib.machinery as im
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    misc = types.ModuleType("torchvision.ops.misc")

    class FrozenBatchNorm2d(torch.nn.Module):
        pass
    misc.FrozenBatchNorm2d = FrozenBatchNorm2d
    ops.misc = misc
    tv.ops = ops
    for m, n in ((tv, "torchvision"), (ops, "torchvision.ops"), (misc, "torchvision.ops.misc")):
        m.__spec__ = im.ModuleSpec(n, None)
        sys.modules[n] = m


def randomise(model, seed):
    """Weights of a size that makes every layer matter (HF init is ~0.02)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale") and p.ndim == 0:
                p.fill_(float(np.log(1 / 0.07)))
            elif "norm" in name or "ln_" in name or ".ln" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan = p.shape[-1] if p.ndim > 1 else 16
                if p.ndim == 4:
                    fan = p.shape[1] * p.shape[2] * p.shape[3]
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(max(fan, 1)) * 1.5)


def draw_image(w, h, seed):
    """A smooth scene: sky gradient, ground, sun, a house and a person-like
    figure, slight blur: compresses well and has real edges."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    top = rng.uniform(60, 200, 3)
    bot = rng.uniform(120, 255, 3)
    arr = top * (1 - y) + bot * y + 20 * x
    img = Image.fromarray(np.clip(arr + 0 * x, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(h * 0.65), w, h], fill=tuple(int(v) for v in rng.uniform(30, 140, 3)))
    r = int(min(w, h) * 0.08) + 2
    cx, cy = int(w * rng.uniform(0.6, 0.9)), int(h * 0.2)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 220, 90))
    hx, hy = int(w * 0.15), int(h * 0.4)
    d.rectangle([hx, hy, hx + w // 4, int(h * 0.7)], fill=(170, 60, 50), outline=(40, 20, 20), width=2)
    d.polygon([(hx - 5, hy), (hx + w // 8, hy - h // 6), (hx + w // 4 + 5, hy)], fill=(90, 40, 30))
    px = int(w * 0.6)
    d.ellipse([px - 6, int(h * 0.45), px + 6, int(h * 0.45) + 12], fill=(230, 190, 160))
    d.rectangle([px - 8, int(h * 0.5), px + 8, int(h * 0.68)], fill=(20, 20, 25))
    d.line([(0, int(h * 0.9)), (w, int(h * 0.8))], fill=(200, 200, 200), width=3)
    img = img.filter(ImageFilter.GaussianBlur(0.7))
    return img


IMAGES = [("img_a.png", 320, 240, 1), ("img_b.png", 200, 300, 2), ("img_c.png", 131, 97, 3)]

CLIP_PREPROC = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
    "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224},
}
OWL_PREPROC = {
    "crop_size": {"height": 768, "width": 768}, "do_center_crop": False, "do_convert_rgb": True,
    "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "OwlViTImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"height": 768, "width": 768},
}
TEXTS = ["a photo of a house", "a red sun over the field", "a person in black"]
QUERIES = ["a black jacket", "a house"]


def tokenize(texts, length):
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(TOKENIZER)
    return tok(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")


def to_u8(pix, mean, std):
    """Inverts rescale+normalise to the uint8 image the processor resized."""
    m = np.array(mean, np.float32)[:, None, None]
    s = np.array(std, np.float32)[:, None, None]
    u = np.round((pix * s + m) * 255.0)
    return np.clip(u, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def copy_tokenizer(d):
    for f in os.listdir(TOKENIZER):
        shutil.copy(os.path.join(TOKENIZER, f), os.path.join(d, f))


def gen_clip_hf(io, images):
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel
    cfg = CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=662,
                         eos_token_id=663, pad_token_id=663),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=224, patch_size=16),
        projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    randomise(model, 10)
    d = os.path.join(OUT, "clip_hf")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, f))
    json.dump(CLIP_PREPROC, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=1)
    copy_tokenizer(d)
    proc = CLIPImageProcessorPil(**{k: v for k, v in CLIP_PREPROC.items() if k != "image_processor_type"})
    pix = proc(images=images, return_tensors="pt")["pixel_values"]
    for i, (name, _, _, _) in enumerate(IMAGES):
        Image.fromarray(to_u8(pix[i].numpy(), CLIP_PREPROC["image_mean"], CLIP_PREPROC["image_std"])).save(
            os.path.join(OUT, "crop_" + name))
    ids = tokenize(TEXTS, 77)
    with torch.no_grad():
        out = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], pixel_values=pix)
        vo = model.vision_model(pixel_values=pix)
        # position embeddings interpolated for a 192x256 (h x w) input
        small = [im.convert("RGB").resize((256, 192), Image.BICUBIC) for im in images[:1]]
        arr = np.stack([np.asarray(s, np.float32).transpose(2, 0, 1) for s in small]) / 255.0
        m = np.array(CLIP_PREPROC["image_mean"], np.float32)[:, None, None]
        s = np.array(CLIP_PREPROC["image_std"], np.float32)[:, None, None]
        pix2 = torch.from_numpy(((arr - m) / s).astype(np.float32))
        vi = model.vision_model(pixel_values=pix2, interpolate_pos_encoding=True)
        emb2 = model.visual_projection(vi.pooler_output)
        to = model.text_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        io["clip.text_embeds"] = model.text_projection(to.pooler_output).detach()
    io["clip.ids"] = ids["input_ids"].to(torch.int32)
    io["clip.image_embeds"] = model.visual_projection(vo.pooler_output).detach()
    io["clip.vision_last_hidden"] = vo.last_hidden_state[0].detach()
    io["clip.logits_per_image"] = out.logits_per_image.detach()
    io["clip.interp_image_embeds"] = emb2.detach()
    return model, pix


def gen_clip_openclip(io, hf_pix):
    stub_torchvision()
    import importlib.util
    spec = importlib.util.find_spec("open_clip")
    pkg = types.ModuleType("open_clip")
    pkg.__path__ = [os.path.dirname(spec.origin)]
    sys.modules["open_clip"] = pkg
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    model_cfg = dict(embed_dim=16, quick_gelu=False,
                     vision_cfg=dict(image_size=224, layers=2, width=32, head_width=8, patch_size=32, mlp_ratio=2.0),
                     text_cfg=dict(context_length=77, vocab_size=VOCAB, width=32, heads=4, layers=2, mlp_ratio=2.0))
    torch.manual_seed(1)
    model = CLIP(embed_dim=16, quick_gelu=False, vision_cfg=CLIPVisionCfg(**model_cfg["vision_cfg"]),
                 text_cfg=CLIPTextCfg(**model_cfg["text_cfg"])).eval()
    randomise(model, 20)
    d = os.path.join(OUT, "clip_openclip")
    os.makedirs(d, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(d, "open_clip_model.safetensors"))
    json.dump({"model_cfg": model_cfg,
               "preprocess_cfg": {"mean": CLIP_PREPROC["image_mean"], "std": CLIP_PREPROC["image_std"],
                                  "interpolation": "bicubic", "resize_mode": "shortest"}},
              open(os.path.join(d, "open_clip_config.json"), "w"), indent=1)
    copy_tokenizer(d)
    # OpenCLIP's tokenizer pads with 0; CLIPTokenizer's tiny pads with eos: the
    # text tower pools at argmax(ids), the first eos in both cases.
    ids = tokenize(TEXTS, 77)["input_ids"]
    with torch.no_grad():
        img = model.encode_image(hf_pix)
        txt = model.encode_text(ids)
        li = model.logit_scale.exp() * torch.nn.functional.normalize(img, dim=-1) @ \
            torch.nn.functional.normalize(txt, dim=-1).T
    io["openclip.image_embeds"] = img
    io["openclip.text_embeds"] = txt
    io["openclip.logits_per_image"] = li


def center_to_corners(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def embed_image_query_box(model, feats, fmap, box):
    """transformers' OwlViTForObjectDetection.embed_image_query with the
    query box given instead of the whole image [0, 0, 1, 1] (same rule)."""
    from transformers.models.owlvit.modeling_owlvit import box_iou, generalized_box_iou
    _, class_embeds = model.class_predictor(feats)
    pred = center_to_corners(model.box_predictor(feats, fmap))
    q = torch.tensor([box], dtype=torch.float32)
    ious, _ = box_iou(q, pred[0])
    if torch.all(ious[0] == 0.0):
        ious = generalized_box_iou(q, pred[0])
    thr = torch.max(ious) * 0.8
    sel = (ious[0] >= thr).nonzero()
    se = class_embeds[0][sel.squeeze(1)]
    mean = torch.mean(class_embeds[0], axis=0)
    sim = torch.einsum("d,id->i", mean, se)
    best = sel[torch.argmin(sim)]
    return class_embeds[0][best], int(best)


def gen_owlvit(io, images):
    from transformers import OwlViTConfig, OwlViTForObjectDetection
    from transformers.models.owlvit.image_processing_pil_owlvit import OwlViTImageProcessorPil
    cfg = OwlViTConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=662,
                         eos_token_id=663, pad_token_id=663),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=768, patch_size=32),
        projection_dim=32)  # the class head maps to the text width
    torch.manual_seed(2)
    model = OwlViTForObjectDetection(cfg).eval()
    randomise(model, 30)
    d = os.path.join(OUT, "owlvit")
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, f))
    json.dump(OWL_PREPROC, open(os.path.join(d, "preprocessor_config.json"), "w"), indent=1)
    copy_tokenizer(d)
    proc = OwlViTImageProcessorPil(**{k: v for k, v in OWL_PREPROC.items() if k != "image_processor_type"})
    pix = proc(images=images[:2], return_tensors="pt")["pixel_values"]
    ids = tokenize(QUERIES, 16)
    with torch.no_grad():
        out = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], pixel_values=pix[:1])
        io["owl.ids"] = ids["input_ids"].to(torch.int32)
        io["owl.logits"] = out.logits[0]
        io["owl.pred_boxes"] = out.pred_boxes[0]
        io["owl.text_embeds"] = out.text_embeds[0]
        io["owl.image_embeds"] = out.image_embeds[0].reshape(-1, 32)
        # image-guided: target img_a, query img_b (whole image, as transformers)
        g = model.image_guided_detection(pixel_values=pix[:1], query_pixel_values=pix[1:2])
        io["owl.guided_logits"] = g.logits[0]
        io["owl.guided_boxes"] = g.target_pred_boxes[0]
        # the same rule from a box on the query image (normalised corners)
        qmap = model.image_embedder(pixel_values=pix[1:2])[0]
        qfeats = qmap.reshape(1, -1, 32)
        emb_full, _ = embed_image_query_box(model, qfeats, qmap, [0, 0, 1, 1])
        emb_hf, _, _ = model.embed_image_query(qfeats, qmap)
        assert torch.allclose(emb_full, emb_hf[0]), "box rule differs from transformers"
        box = [0.1, 0.3, 0.45, 0.75]
        emb, best = embed_image_query_box(model, qfeats, qmap, box)
        fmap = model.image_embedder(pixel_values=pix[:1])[0]
        logits, _ = model.class_predictor(fmap.reshape(1, -1, 32), emb.reshape(1, 1, -1))
        io["owl.box_query"] = torch.tensor(box)
        io["owl.box_best_index"] = torch.tensor([best], dtype=torch.int32)
        io["owl.box_guided_logits"] = logits[0]


def gen_pref(io, clip_model, pix):
    d = os.path.join(OUT, "pref")
    os.makedirs(d, exist_ok=True)
    conf = {"input_dim": 16, "normalize": True,
            "layers": [{"key": "layers.0", "out": 32, "activation": "relu"},
                       {"key": "layers.2", "out": 8, "activation": "none"},
                       {"key": "layers.3", "out": 1, "activation": "none"}]}
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8),
                              torch.nn.Linear(8, 1))
    randomise(net, 40)
    json.dump(conf, open(os.path.join(d, "pref_config.json"), "w"), indent=1)
    save_file({"layers." + k: v.contiguous() for k, v in net.state_dict().items()},
              os.path.join(d, "pref.safetensors"))
    with torch.no_grad():
        e = clip_model.get_image_features(pixel_values=pix)
        e = getattr(e, "pooler_output", e)
        e = e / e.norm(dim=-1, keepdim=True)
        io["pref.scores"] = net(e)[:, 0]


def main():
    os.makedirs(OUT, exist_ok=True)
    images = []
    for name, w, h, seed in IMAGES:
        im = draw_image(w, h, seed)
        im.save(os.path.join(OUT, name))
        images.append(Image.open(os.path.join(OUT, name)).convert("RGB"))
    io = {}
    model, pix = gen_clip_hf(io, images)
    gen_clip_openclip(io, pix)
    gen_owlvit(io, images)
    gen_pref(io, model, pix)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(OUT, "vision_io.safetensors"),
              metadata={"generator": "tools/gen_vision_fixtures.py", "transformers": "5.24"})
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print("fixtures:", OUT, "bytes:", total)


if __name__ == "__main__":
    main()
