"""Labels are −100 exactly on the non-answer tokens: system, user turns, image tokens, padding."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

pytestmark = pytest.mark.models

# The shape of llava-hf's LLaVA-1.5 template: no role for the system turn, answers end with a space, no eos.
LLAVA_HF_STYLE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

Q1 = "<image>\nIs the [red circle](<21, 43>) blurry?"
CASES: dict[str, tuple[list[dict[str, str]], list[str]]] = {
    "one turn": ([{"from": "human", "value": Q1}, {"from": "gpt", "value": "Yes."}], ["Yes."]),
    "multi-turn": (
        [
            {"from": "human", "value": Q1},
            {"from": "gpt", "value": "No."},
            {"from": "human", "value": "Why is the image poor?"},
            {"from": "gpt", "value": "The [blue square](<3, 45>) is noisy."},
        ],
        ["No.", "The [blue square](<3, 45>) is noisy."],
    ),
    "empty system": (
        [{"from": "system", "value": ""}, {"from": "human", "value": Q1}, {"from": "gpt", "value": "Yes."}],
        ["Yes."],
    ),
    "system and a trailing question": (
        [
            {"from": "system", "value": "Assess the image quality."},
            {"from": "human", "value": Q1},
            {"from": "gpt", "value": "No."},
            {"from": "human", "value": "What else?"},
        ],
        ["No."],
    ),
}


@pytest.fixture(scope="module")
def processors(tiny_llava: Path) -> dict[str, Any]:
    from transformers import AutoProcessor

    own = AutoProcessor.from_pretrained(tiny_llava, local_files_only=True)
    hf_style = copy.deepcopy(own)
    hf_style.chat_template = LLAVA_HF_STYLE
    return {"tiny": own, "llava-hf style": hf_style}


def _encode(
    processor: Any, conversation: list[dict[str, str]], tmp_path: Path, max_length: int = 4096
) -> Any:
    from giqa.training.data import LlavaJsonDataset, Row, SkipLog, to_messages

    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(image)
    row = Row("r", image, to_messages(conversation))
    return LlavaJsonDataset([row], processor, max_length=max_length, skips=SkipLog()).encode(row)


def _kept_runs(labels: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    previous = -100
    for label in labels:
        if label != -100:
            if previous == -100:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


@pytest.mark.parametrize("template", ["tiny", "llava-hf style"])
@pytest.mark.parametrize("case", list(CASES))
def test_only_answers_and_their_eos_carry_labels(
    processors: dict[str, Any], tmp_path: Path, template: str, case: str
) -> None:
    processor = processors[template]
    conversation, answers = CASES[case]
    sample = _encode(processor, conversation, tmp_path)
    ids, labels = sample["input_ids"].tolist(), sample["labels"].tolist()
    tok = processor.tokenizer
    runs = _kept_runs(labels)
    assert [tok.decode(run) for run in runs] == [f" {a}{tok.eos_token}" for a in answers]
    for token, label in zip(ids, labels, strict=True):  # kept labels are the input tokens themselves
        assert label in (-100, token)
    image_id = tok.convert_tokens_to_ids(processor.image_token)
    assert ids.count(image_id) == 16 and all(
        lab == -100 for t, lab in zip(ids, labels, strict=True) if t == image_id
    )
    # the prompt the model sees at inference is exactly the unlabelled text before the first answer
    first = labels.index(runs[0][0])
    prompt = tok.decode(ids[:first]).replace(processor.image_token * 16, processor.image_token)
    from giqa.models.llava import build_prompt

    question = conversation[-2 if case == "one turn" else 1]["value"]
    if case in ("one turn", "empty system"):
        assert prompt.endswith(build_prompt(processor, question.replace("<image>\n", "")))


def test_a_conversation_longer_than_max_length_is_skipped(processors: dict[str, Any], tmp_path: Path) -> None:
    from giqa.training.data import SkipRow

    long = [{"from": "human", "value": "<image>\n" + "blurry " * 300}, {"from": "gpt", "value": "Yes."}]
    with pytest.raises(SkipRow, match="too long"):
        _encode(processors["tiny"], long, tmp_path, max_length=256)


def test_collator_pads_on_the_right_with_ignored_labels(processors: dict[str, Any], tmp_path: Path) -> None:
    from giqa.training.data import Collator

    processor = processors["tiny"]
    short = _encode(processor, CASES["one turn"][0], tmp_path)
    long = _encode(processor, CASES["multi-turn"][0], tmp_path)
    batch = Collator(processor.tokenizer.pad_token_id)([short, long])
    n = len(short["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(long["input_ids"]))
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
    assert (batch["labels"][0, n:] == -100).all() and (
        batch["input_ids"][0, n:] == processor.tokenizer.pad_token_id
    ).all()
    assert batch["pixel_values"].shape[0] == 2 and batch["skipped"] == []


WORDS = st.sampled_from(
    [" The", " red", " circle", " is", " blurry", ".", " Yes", " No", " noisy", " 12", ","]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(st.lists(WORDS, min_size=1, max_size=8).map("".join), min_size=1, max_size=3))
def test_any_answers_are_recovered_from_the_labels(
    processors: dict[str, Any], tmp_path: Path, answers: list[str]
) -> None:
    conversation = []
    for k, answer in enumerate(answers):
        conversation.append({"from": "human", "value": (Q1 if k == 0 else f"Question {k}?")})
        conversation.append({"from": "gpt", "value": answer})
    processor = processors["tiny"]
    sample = _encode(processor, conversation, tmp_path)
    runs = _kept_runs(sample["labels"].tolist())
    tok = processor.tokenizer
    assert [tok.decode(r) for r in runs] == [f" {a.strip()}{tok.eos_token}" for a in answers]


def test_the_tiny_vocabulary_is_the_same_in_every_process() -> None:
    """Token ids must not depend on the hash seed: every torchrun rank and resume builds the same ones."""
    import os
    import subprocess
    import sys

    code = "from giqa.models.tokenizer import vocabulary; print(vocabulary(['Zebra crisp']))"
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
