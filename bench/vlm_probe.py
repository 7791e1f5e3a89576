"""Why a tiny grounded VLM does or does not localise yet: three probes of one or more checkpoints.

1. **Top-left cell error** (teacher-forced, :func:`train_curve.box_error`) beside what a fixed guess scores:
   an error above the fixed guess means the boxes do not come from the picture yet.
2. **Attention at the box**: when the model is about to write a box's top-left cell (the token after "<"),
   how much of each layer's image attention falls on the named object's patches, as a ratio to a uniform
   spread (1.0: the model does not look at the object; the best head of each layer is shown) and the share
   of all attention that goes to image tokens at all.
3. **Where the position lives**: ridge-regression R² of a single object's centre (x, y) from what the
   language model receives for the image (the projector's output), once from the object's own patch token
   and once from the mean over all image tokens, which is all that uniform attention can read. Scenes come
   from GIQA-Synth (one object, world seed 7, never a training seed of the scripts).

    python bench/vlm_probe.py shared/giqa/assets/vlm runs/x/train/checkpoint-900 \
        --bench runs/x/bench/bench.jsonl

Prints one Markdown row per checkpoint. CPU-only, about a minute per checkpoint.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT / "bench")]


def _load(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, attn_implementation="eager").eval()
    return model, processor


def _patch_side(model: Any) -> int:
    vision = model.config.vision_config
    return vision.image_size // vision.patch_size


def attention_at_box(model: Any, processor: Any, bench: Path, items: int = 40) -> dict[str, list[float]]:
    """Per layer: the best head's object-attention ratio (to uniform) and the mean image share at "<"."""
    import torch

    from giqa.evaluation.io import read_bench
    from train_curve import teacher_forced

    side = _patch_side(model)
    tok = processor.tokenizer
    opening, image_id = tok.convert_tokens_to_ids("<"), tok.convert_tokens_to_ids(processor.image_token)
    ratio_sum, share_sum, n = None, None, 0
    for item in [it for it in read_bench(bench) if it.task == "des" and it.objects][:items]:
        enc, _ = teacher_forced(processor, bench, item)
        ids = enc["input_ids"][0]
        boxes = (ids == opening).nonzero()[:, 0]
        if not len(boxes):
            continue
        named = re.search(r"\[([^\]]+)\]\(<", item.answer)
        first = next((o for o in item.objects if named and o.phrase == named.group(1)), None)
        if first is None:
            continue
        x0, y0, x1, y1 = first.box.as_list()
        cells = torch.zeros(side * side, dtype=torch.bool)
        for r in range(side):
            for c in range(side):
                inside_x = c / side < x1 and (c + 1) / side > x0
                cells[r * side + c] = inside_x and r / side < y1 and (r + 1) / side > y0
        if not cells.any():
            continue
        with torch.no_grad():
            attentions = model(**enc, output_attentions=True).attentions
        image_pos = (ids == image_id).nonzero()[:, 0]
        t = int(boxes[0])  # the query that predicts the top-left cell sits at "<"
        ratios, shares = [], []
        for layer in attentions:
            a = layer[0, :, t, :][:, image_pos]  # heads x image tokens
            total = a.sum(-1).clamp_min(1e-9)
            ratios.append((a[:, cells].sum(-1) / total / cells.float().mean()).max().item())
            shares.append(total.mean().item())
        ratio_sum = ratios if ratio_sum is None else [a + b for a, b in zip(ratio_sum, ratios, strict=True)]
        share_sum = shares if share_sum is None else [a + b for a, b in zip(share_sum, shares, strict=True)]
        n += 1
    if not n:
        return {"ratio": [], "share": []}
    return {"ratio": [round(v / n, 2) for v in ratio_sum], "share": [round(v / n, 2) for v in share_sum]}


def position_r2(model: Any, processor: Any, scenes: int = 400) -> dict[str, tuple[float, float]]:
    """R² of a single object's centre from its own patch token and from the mean image token."""
    import numpy as np
    import torch

    from giqa.synth.config import SynthConfig
    from giqa.synth.generate import generate_scene

    side = _patch_side(model)
    config = SynthConfig(min_objects=1, max_objects=1, p_hard_case=0.0)
    own, mean, target = [], [], []
    for index in range(scenes):
        image, record = generate_scene(7, index, config)
        pixels = processor.image_processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            feats = model.get_image_features(pixel_values=pixels)
        feats = getattr(feats, "pooler_output", feats)
        feats = feats[0] if isinstance(feats, (list, tuple)) else feats
        tokens = feats.reshape(-1, feats.shape[-1]).float().numpy()
        x0, y0, x1, y1 = record.objects[0].box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        own.append(tokens[min(side - 1, int(cy * side)) * side + min(side - 1, int(cx * side))])
        mean.append(tokens.mean(0))
        target.append([cx, cy])
    y = np.asarray(target)
    cut = int(0.7 * len(y))
    out = {}
    for name, x in (("own patch", np.asarray(own)), ("mean of image tokens", np.asarray(mean))):
        a = np.c_[x, np.ones(len(x))]
        w = np.linalg.solve(a[:cut].T @ a[:cut] + np.eye(a.shape[1]), a[:cut].T @ y[:cut])
        pred = a[cut:] @ w
        r2 = 1 - ((pred - y[cut:]) ** 2).sum(0) / ((y[cut:] - y[cut:].mean(0)) ** 2).sum(0)
        out[name] = (round(float(r2[0]), 2), round(float(r2[1]), 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="model folders (checkpoint-N/, final/)")
    parser.add_argument("--bench", type=Path, required=True, help="a GIQA-Synth-Bench JSONL with DES items")
    parser.add_argument("--scenes", type=int, default=400, help="single-object scenes for the position probe")
    args = parser.parse_args()
    if not args.bench.is_file():
        parser.error(f"no bench file at {args.bench}")
    from train_curve import box_error

    print(
        "| checkpoint | top-left error (fixed guess) | object attention at '<' per layer (x uniform) "
        "| image share per layer | position R² x, y: own patch | mean of image tokens |"
    )
    print("|---|---|---|---|---|---|")
    for folder in args.checkpoints:
        if not (folder / "config.json").is_file():
            parser.error(f"{folder} is not a model folder")
        model, processor = _load(folder)
        err = box_error(folder, args.bench, loaded=(model, processor)) or {}
        att = attention_at_box(model, processor, args.bench)
        pos = position_r2(model, processor, args.scenes)
        print(
            f"| {folder} | {err.get('box_err_tl')} ({err.get('box_err_tl_fixed_guess')}) | "
            f"{' '.join(map(str, att['ratio']))} | {' '.join(map(str, att['share']))} | "
            f"{pos['own patch']} | {pos['mean of image tokens']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
