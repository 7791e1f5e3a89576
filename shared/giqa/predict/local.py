"""A local LLaVA-family checkpoint as a :class:`giqa.ports.GroundedVLM` (transformers, greedy decoding)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from giqa.models.llava import build_prompt, load_llava
from giqa.ports import Health


class TransformersVLM:
    """LLaVA-1.5 or LLaVA-1.6 (detected from the checkpoint) answering in batches with left padding."""

    def __init__(self, path: str | Path, *, device: str = "cpu", dtype: str | None = None) -> None:
        self.path = Path(path)
        self.model, self.processor, self.arch = load_llava(self.path, device=device, dtype=dtype)
        self.device = device

    @property
    def model_name(self) -> str:
        return self.path.name

    def health(self) -> Health:
        return Health(True, f"{self.arch} checkpoint {self.path} on {self.device}")

    def answer(self, image: Image.Image, question: str, *, max_new_tokens: int = 256) -> str:
        return self.answer_batch([(image, question)], max_new_tokens=max_new_tokens)[0]

    def answer_batch(
        self, items: Sequence[tuple[Image.Image, str]], *, max_new_tokens: int = 256
    ) -> list[str]:
        import torch

        if not items:
            return []
        images = [img.convert("RGB") for img, _ in items]
        prompts = [build_prompt(self.processor, question) for _, question in items]
        inputs: Any = self.processor(images=images, text=prompts, return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
