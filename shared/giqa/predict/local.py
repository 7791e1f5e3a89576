"""A local LLaVA-family checkpoint as a :class:`giqa.ports.GroundedVLM` (transformers, greedy decoding).

Beside the port it reads the next-token distribution (:meth:`TransformersVLM.next_word_probs_batch`): the
Q-Align score (level words after "The quality of the image is") and P(Yes) of a Yes/No answer need the
model's probabilities, not its text.
"""

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

    def word_token_ids(self, word: str) -> list[int]:
        """The token ids that start ``word`` as the next token: after a space and glued on (deduplicated)."""
        tokenizer = self.processor.tokenizer
        ids: list[int] = []
        for form in (" " + word, word):
            encoded = tokenizer.encode(form, add_special_tokens=False)
            if encoded and encoded[0] not in ids and tokenizer.decode(encoded[:1]).strip():
                ids.append(int(encoded[0]))
        if not ids:
            raise ValueError(f"the tokenizer of {self.path} cannot write the word {word!r}")
        return ids

    def next_word_probs_batch(
        self, items: Sequence[tuple[Image.Image, str, str]], words: Sequence[str]
    ) -> list[dict[str, float]]:
        """For each (image, question, answer prefix): the probability that the answer continues with each
        of ``words`` (the softmax mass of the tokens that start it, :meth:`word_token_ids`), read from one
        forward pass over the batch (left padding: every row's last position is its next token)."""
        import torch

        if not items:
            return []
        ids = {word: self.word_token_ids(word) for word in words}
        probs = torch.softmax(self._next_logits(items), dim=-1)
        return [{word: float(row[ids[word]].sum()) for word in words} for row in probs]

    def next_token_logprobs_batch(
        self, items: Sequence[tuple[Image.Image, str, str]], k: int
    ) -> list[list[tuple[str, float]]]:
        """For each (image, question, answer prefix): the ``k`` most likely next tokens, as (vocabulary
        token, natural-log probability), most likely first (what OpenAI's ``top_logprobs`` returns)."""
        import torch

        if not items:
            return []
        logits = self._next_logits(items)
        top = torch.log_softmax(logits, dim=-1).topk(max(1, k), dim=-1)
        tokenizer = self.processor.tokenizer
        return [
            [
                (str(tokenizer.convert_ids_to_tokens(int(i))), float(v))
                for v, i in zip(values, ids, strict=True)
            ]
            for values, ids in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]

    def _next_logits(self, items: Sequence[tuple[Image.Image, str, str]]) -> Any:
        import torch

        images = [img.convert("RGB") for img, _, _ in items]
        prompts = [
            build_prompt(self.processor, question) + (" " + prefix.strip() if prefix.strip() else "")
            for _, question, prefix in items
        ]
        inputs: Any = self.processor(images=images, text=prompts, return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            return self.model(**inputs).logits[:, -1, :].float().cpu()

    def next_word_probs(
        self, image: Image.Image, question: str, prefix: str, words: Sequence[str]
    ) -> dict[str, float]:
        return self.next_word_probs_batch([(image, question, prefix)], words)[0]
