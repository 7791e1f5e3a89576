"""Loss on answers only: render a conversation with the model's own chat template and find its answers.

Each assistant turn's answer is the text the template adds between the generation prompt
(``render(turns before it, add_generation_prompt=True)``) and the rendering that includes the turn; so what
is learned is exactly what the model must produce after the prompt it sees at inference. The answer ends
with the tokenizer's eos token: templates that write none after an assistant turn (llava-hf's LLaVA-1.5
one ends answers with a space) get it in place of that trailing whitespace, which is the separator
LLaVA-1.5's own training used (``ASSISTANT: ...</s>``) and what teaches the model to stop (decided).
"""

from __future__ import annotations

from typing import Any


class TemplateError(ValueError):
    """A chat template whose renderings are not prefixes of each other, or a tokenization that disagrees."""


def _render(processor: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    if not messages:
        return ""
    text = processor.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    return text if isinstance(text, str) else str(text[0])


def render_conversation(processor: Any, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[int, int]]]:
    """The training text of a conversation and the character spans of its answers (eos included).

    Turns after the last assistant turn are dropped: nothing would be learned from them.
    """
    if getattr(processor, "chat_template", None) is None:
        raise TemplateError("the processor has no chat template; answers cannot be located")
    eos = processor.tokenizer.eos_token
    text = ""
    spans: list[tuple[int, int]] = []
    done = ""  # the template's own rendering of the turns consumed so far
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = _render(processor, messages[:i], True)
        through = _render(processor, messages[: i + 1], False)
        if not prompt.startswith(done) or not through.startswith(prompt):
            raise TemplateError(
                "the chat template does not render conversations prefix-consistently, so answer tokens "
                "cannot be separated from the prompt"
            )
        text += prompt[len(done) :]
        answer = through[len(prompt) :]
        if eos and eos not in answer:
            answer = answer.rstrip() + eos
        spans.append((len(text), len(text) + len(answer)))
        text += answer
        done = through
    return text, spans


def answer_labels(
    tokenizer: Any, text: str, spans: list[tuple[int, int]], input_ids: Any, image_token_id: int
) -> Any:
    """``input_ids`` where a token starts inside an answer span, −100 elsewhere.

    ``input_ids`` is the processor's encoding, in which every ``<image>`` of ``text`` became a run of image
    tokens; the tokenizer's own encoding of ``text`` (with character offsets) is walked beside it.
    """
    import torch

    enc = tokenizer(text, return_offsets_mapping=True)
    plain: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = list(enc["offset_mapping"])
    ids: list[int] = input_ids.tolist()
    labels: list[int] = []
    i = j = 0
    while i < len(plain):
        if plain[i] == image_token_id:
            while i < len(plain) and plain[i] == image_token_id:
                i += 1
            if j >= len(ids) or ids[j] != image_token_id:
                raise TemplateError("image tokens of the processor and the tokenizer do not line up")
            while j < len(ids) and ids[j] == image_token_id:
                labels.append(-100)
                j += 1
            continue
        if j >= len(ids) or ids[j] != plain[i]:
            raise TemplateError(f"token {i} differs between the processor and the tokenizer")
        start, end = offsets[i]
        inside = end > start and any(s <= start < e for s, e in spans)
        labels.append(ids[j] if inside else -100)
        i += 1
        j += 1
    if j != len(ids):
        raise TemplateError("the processor's encoding is longer than the tokenizer's")
    return torch.tensor(labels, dtype=torch.long)
