"""Stage 3 IQA-Filter judge: Q-Instruct (a LLaVA-1.5 fine-tune) through ``transformers``' LLaVA.

For each box the CROP is shown with the question "Is the image quality <Tq>?" in the LLaVA-1.5 conversation
format (Vicuna system prompt, ``USER: <image>\\n<question> ASSISTANT:``), and the answer is read from the
next-token logits restricted to "Yes" and "No": ``p_yes = softmax([logit_yes, logit_no])[0]`` — no sampling,
no generation. Tokenizers differ in how "Yes" is split, so **(decided)** each side uses the FIRST token of
each spelling ``"Yes"`` and ``" Yes"`` (``"No"``/``" No"``), merged by log-sum-exp; a first token shared by
both sides (e.g. a bare "▁") is dropped from both. The ids are stored in every judgement's ``detail``.
Batches are left-padded with explicit position ids, so a batched crop gets the same logits as alone.

Checkpoints — the llava-hf layout (``LlavaForConditionalGeneration`` + ``LlavaProcessor`` in one folder)
is loaded from a local path, never from a hub. Q-Instruct's published checkpoints
(``teowu/llava_v1.5_7b_qinstruct_preview_v0.1``, and the 13B one) are in the ORIGINAL LLaVA format; convert
them once, on a machine with network access, with transformers' script
``transformers/models/llava/convert_llava_weights_to_hf.py`` (arguments as of transformers 4.4x–5.x)::

    python -m transformers.models.llava.convert_llava_weights_to_hf \
        --text_model_id lmsys/vicuna-7b-v1.5 \
        --vision_model_id openai/clip-vit-large-patch14-336 \
        --old_state_dict_id teowu/llava_v1.5_7b_qinstruct_preview_v0.1 \
        --output_hub_path <your-org>/qinstruct-llava-1.5-7b-hf

- ``--text_model_id``: the language model the checkpoint was tuned from (its config and tokenizer; Vicuna-7B
  v1.5 for 7B, ``lmsys/vicuna-13b-v1.5`` for 13B); the script adds ``<image>`` (id 32000) and ``<pad>``.
- ``--vision_model_id``: LLaVA-1.5's CLIP tower and image processor.
- ``--old_state_dict_id``: a hub repo holding the original weights as ``*.safetensors`` or one
  ``model_state_dict.bin``. A repo that only has ``pytorch_model-*.bin`` shards must first be re-saved in one
  of those forms (load the shards with ``torch.load`` and save them with ``safetensors.torch.save_file``).
- ``--output_hub_path``: a hub repo id — the script ``push_to_hub``-es the model and processor there (it
  does not write a local folder). Download that repo once (``hf download <id> --local-dir
  /models/qinstruct-llava-1.5-7b-hf``) and point ``GIQA_PIPELINE__JUDGE_MODEL`` at the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from giqa.backends.images import crop
from giqa.boxes import Box, BoxLike
from giqa.ports import Health, Judgement

SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
QUESTION = "Is the image quality {quality}?"


def question_for(quality: str) -> str:
    word = " ".join(quality.split()).rstrip("?.")
    if not word:
        raise ValueError("the quality word must not be empty")
    return QUESTION.format(quality=word)


def llava15_prompt(question: str, image_token: str = "<image>", system: str = SYSTEM_PROMPT) -> str:
    """LLaVA-1.5's ``llava_v1`` conversation with one image, ending where the answer starts."""
    prefix = f"{system} " if system else ""
    return f"{prefix}USER: {image_token}\n{question} ASSISTANT:"


def first_token_ids(tokenizer: Any, spellings: Sequence[str]) -> set[int]:
    ids: set[int] = set()
    for text in spellings:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if encoded:
            ids.add(int(encoded[0]))
    return ids


class QInstructJudge:
    """:class:`giqa.ports.QualityJudge` over a local llava-hf checkpoint (Q-Instruct in production)."""

    name = "qinstruct"

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        import torch

        from giqa.models.llava import load_llava

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_path = Path(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.processor, self.arch = load_llava(self.model_path, device=self.device, dtype=dtype)
        self.batch_size = batch_size
        self.system_prompt = system_prompt
        tok = self.processor.tokenizer
        self.image_token = getattr(self.processor, "image_token", "<image>")
        yes = first_token_ids(tok, ("Yes", " Yes"))
        no = first_token_ids(tok, ("No", " No"))
        shared = yes & no
        self.yes_ids, self.no_ids = sorted(yes - shared), sorted(no - shared)
        if not self.yes_ids or not self.no_ids:
            raise ValueError(f"tokenizer of {model_path} has no distinct first token for 'Yes' and 'No'")
        self._torch = torch

    def health(self) -> Health:
        return Health(True, f"q-instruct ({self.arch}) from {self.model_path} on {self.device}")

    def prompt(self, quality: str) -> str:
        return llava15_prompt(question_for(quality), self.image_token, self.system_prompt)

    def judge(self, image: Image.Image, box: BoxLike, quality: str) -> Judgement:
        return self.judge_batch([(image, box, quality)])[0]  # type: ignore[list-item]

    def judge_batch(self, items: Sequence[tuple[Image.Image, Box, str]]) -> list[Judgement]:
        out: list[Judgement] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            crops = [crop(image.convert("RGB"), box, 2) for image, box, _ in chunk]
            out.extend(self.judge_crops(crops, [q for _, _, q in chunk]))
        return out

    def yes_no_logits(self, crops: Sequence[Image.Image], qualities: Sequence[str]) -> Any:
        """(B, 2) tensor: log-sum-exp of the "Yes" and of the "No" first-token logits per crop."""
        torch = self._torch
        prompts = [self.prompt(q) for q in qualities]
        inputs = self.processor(images=list(crops), text=prompts, return_tensors="pt", padding=True)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        mask = inputs["attention_mask"]
        # left padding: positions count real tokens only, so padding cannot shift a row's rotary positions
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(**inputs, position_ids=position_ids).logits[:, -1, :].float()
        yes = torch.logsumexp(logits[:, self.yes_ids], dim=-1)
        no = torch.logsumexp(logits[:, self.no_ids], dim=-1)
        return torch.stack([yes, no], dim=-1).cpu()

    def judge_crops(self, crops: Sequence[Image.Image], qualities: Sequence[str]) -> list[Judgement]:
        if len(crops) != len(qualities):
            raise ValueError(f"{len(crops)} crops but {len(qualities)} quality words")
        if not crops:
            return []
        pair = self.yes_no_logits(crops, qualities)
        probs = pair.softmax(dim=-1)[:, 0].tolist()
        return [
            Judgement(
                float(p),
                detail={
                    "quality": q,
                    "logit_yes": float(pair[k, 0]),
                    "logit_no": float(pair[k, 1]),
                    "yes_ids": self.yes_ids,
                    "no_ids": self.no_ids,
                },
            )
            for k, (p, q) in enumerate(zip(probs, qualities, strict=True))
        ]
