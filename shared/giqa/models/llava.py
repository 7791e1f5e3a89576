"""Loading LLaVA-family checkpoints (LLaVA-1.5 and LLaVA-1.6/NeXT) through transformers, offline.

The architecture is read from the checkpoint's ``config.json`` so one entry point serves both classes;
anything else is refused with a message that says what is supported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from giqa.models.tiny import llava15_prompt

Arch = Literal["llava", "llava_next"]
SUPPORTED = {
    "llava": "LLaVA-1.5 (LlavaForConditionalGeneration)",
    "llava_next": "LLaVA-1.6 (LlavaNextForConditionalGeneration)",
}


class CheckpointError(ValueError):
    """A model path that is not a loadable LLaVA-family checkpoint."""


def detect_arch(path: str | Path) -> Arch:
    """ "llava" or "llava_next" from ``<path>/config.json`` (``model_type``, then ``architectures``)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model path does not exist: {path}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path} is not a transformers checkpoint folder (no config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_file} is not valid JSON: {exc}") from exc
    model_type = str(config.get("model_type", ""))
    architectures = " ".join(config.get("architectures") or [])
    if model_type == "llava_next" or "LlavaNext" in architectures:
        return "llava_next"
    if model_type == "llava" or "LlavaForConditionalGeneration" in architectures:
        return "llava"
    raise CheckpointError(
        f"{path}: model_type {model_type!r} ({architectures or 'no architectures'}) is not supported; "
        f"supported: {', '.join(SUPPORTED.values())}"
    )


def load_llava(path: str | Path, *, device: str = "cpu", dtype: str | None = None) -> tuple[Any, Any, Arch]:
    """(model in eval mode, processor with left padding, arch) of a local checkpoint."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    arch = detect_arch(path)
    cls = LlavaNextForConditionalGeneration if arch == "llava_next" else LlavaForConditionalGeneration
    torch_dtype = getattr(torch, dtype) if dtype else None
    model: Any = cls.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
    model = model.to(torch.device(device)).eval()
    processor = load_processor(path, padding_side="left")  # batched generation continues every row at its end
    return model, processor, arch


def load_processor(path: str | Path, *, padding_side: str) -> Any:
    """A checkpoint's processor as training and inference use it: the whole image (:func:`whole_image_view`),
    the given padding side, and the end-of-text token as padding where the tokenizer has none."""
    from transformers import AutoProcessor

    processor = whole_image_view(AutoProcessor.from_pretrained(path, local_files_only=True))
    processor.tokenizer.padding_side = padding_side
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def whole_image_view(processor: Any) -> Any:
    """Make a LLaVA-1.5 processor show the model the whole image: resize to the crop size, no center crop.

    LLaVA-1.5 checkpoints ship CLIP's "resize the short side, then center-crop" processor; on a 4:3 photo it
    cuts an eighth off each side, while a grounded answer's grid spans the whole image: objects near the
    edges would be trained on and asked about unseen. Squeezing to the same square keeps the image-token
    count and the box grid exact (the distortion is what fine-tuning sees too). LLaVA-NeXT processors are
    left alone (their tiles cover the whole image). Changes ``processor`` in place and returns it.
    """
    image_processor = getattr(processor, "image_processor", None)
    tiles = getattr(image_processor, "image_grid_pinpoints", None)
    if image_processor is None or tiles or not getattr(image_processor, "do_center_crop", False):
        return processor
    crop = dict(getattr(image_processor, "crop_size", None) or {})
    if "height" not in crop or "width" not in crop:
        return processor
    image_processor.do_center_crop = False
    image_processor.size = {"height": int(crop["height"]), "width": int(crop["width"])}
    return processor


def build_prompt(processor: Any, question: str) -> str:
    """The checkpoint's chat template when it has one, else LLaVA-1.5's ``USER: <image>\\n... ASSISTANT:``."""
    template = getattr(processor, "chat_template", None)
    if template:
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return str(processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False))
    return llava15_prompt(question)
