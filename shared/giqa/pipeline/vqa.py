"""GIQA-VQA generation (paper §3.2 "For GIQA-VQA", DESIGN §3.3).

The LLM gets the description and the key objects' names and writes Yes/No and What/Why/How QA. Every pair
it returns is checked (a 135M model's output cannot be trusted):
- shape: a known type, a question that reads as that type (yes/no starts with an auxiliary verb, open ones
  with What/Which/Why/How), a "Yes"/"No" answer or a short phrase (at most ``max_answer_words``);
- keyword filter: the pair must name a key object or use a quality keyword ("unrelated" otherwise), and
  it must name a key object to carry a box ("ungroundable" otherwise);
- Yes/No truth: when the question claims a quality of an object, the answer must agree with the
  description (the object's quality word → "Yes", its opposite → "No"); a wrong answer is corrected and
  recorded.
Boxes are then inserted as grounded mentions: in the answer when the answer names the object (grounding),
else in the question (referring). When the model leaves a kind short, templates built from the tags fill
it (``source: "template"``), so every sample contributes both Yes and No questions to the balancing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from giqa.boxes import Box
from giqa.grounded_text import BoxForm, render_mention
from giqa.pipeline import lexicon
from giqa.pipeline.tags import find_span, load_prompt
from giqa.ports import ChatLLM, Message
from giqa.schemas import QTYPES, GroundedObject, Sample

VQA_SCHEMA: dict[str, Any] = {
    "title": "quality_qa",
    "type": "object",
    "properties": {
        "qa": {
            "type": "array",
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": list(QTYPES)},
                    "question": {"type": "string", "minLength": 5, "maxLength": 160},
                    "answer": {"type": "string", "minLength": 1, "maxLength": 60},
                },
                "required": ["type", "question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["qa"],
    "additionalProperties": False,
}

_AUXILIARY = re.compile(r"^(is|are|was|were|does|do|did|can|could|has|have|will|would|should)\b", re.I)
_WH = {"what": "what", "which": "what", "why": "why", "how": "how"}


@dataclass(frozen=True, slots=True)
class KeyObject:
    """A grounded tag: what VQA questions may be about."""

    phrase: str
    quality: str
    effect: str
    boxes: tuple[Box, ...]


@dataclass(frozen=True, slots=True)
class VQARules:
    max_answer_words: int = 5
    template_fill: bool = True
    min_yes: int = 1  # per sample, before balancing: templates fill up to these
    min_no: int = 1
    min_open: int = 1
    form: BoxForm = "grid"
    n: int = 20
    m: int = 20


@dataclass(slots=True)
class QAItem:
    qtype: str
    mode: str
    question: str
    answer: str
    source: str  # "llm" | "template"
    about: str  # the key object's phrase
    grounded_in_answer: bool = False
    corrected: bool = False

    def to_dict(self) -> dict[str, Any]:  # by hand: dataclasses.asdict deep-copies, 5x slower at scale
        return {
            "qtype": self.qtype,
            "mode": self.mode,
            "question": self.question,
            "answer": self.answer,
            "source": self.source,
            "about": self.about,
            "grounded_in_answer": self.grounded_in_answer,
            "corrected": self.corrected,
        }


@dataclass(slots=True)
class VQAResult:
    items: list[QAItem] = field(default_factory=list)
    drops: list[dict[str, str]] = field(default_factory=list)
    raw: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "drops": self.drops, "raw": self.raw}


# ------------------------------------------------------------------------------------------ prompt


def vqa_messages(description: str, objects: Sequence[KeyObject]) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": load_prompt("vqa_system.txt").strip()}]
    for example in json.loads(load_prompt("vqa_examples.json")):
        messages.append({"role": "user", "content": _ask(example["description"], example["objects"])})
        messages.append({"role": "assistant", "content": json.dumps({"qa": example["qa"]})})
    messages.append({"role": "user", "content": _ask(description, [o.phrase for o in objects])})
    return messages


def _ask(description: str, names: Sequence[str]) -> str:
    return f"Description: {description.strip()}\nKey objects: " + "; ".join(names)


def vqa_prompt_fingerprint() -> str:
    text = load_prompt("vqa_system.txt") + load_prompt("vqa_examples.json")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ checks


_HEAD_STOP = frozenset(
    {"in", "on", "at", "with", "behind", "near", "of", "under", "over", "beside", "next", "wearing",
     "holding", "that", "which", "who", "from", "to", "by", "and"}
)  # fmt: skip


def head_noun(phrase: str) -> str:
    """The noun a phrase is about: "The red circle in the top left" -> "circle" (last word before a
    preposition or clause)."""
    content = [w for w in lexicon.words(phrase) if w not in lexicon.DETERMINERS]
    for index, word in enumerate(content):
        if word in _HEAD_STOP and index > 0:
            return content[index - 1]
    return content[-1] if content else ""


@lru_cache(maxsize=2048)
def _names(
    objects: tuple[KeyObject, ...],
) -> tuple[list[tuple[KeyObject, tuple[str, ...]]], list[tuple[str, KeyObject]]]:
    """How a text may name each object: its phrases (longest first, also without a leading determiner),
    then the head nouns that only one object has. Cached: every QA pair of a sample asks again."""
    forms = []
    for obj in sorted(objects, key=lambda o: -len(o.phrase)):
        words = obj.phrase.split()
        alt = (" ".join(words[1:]),) if len(words) > 1 and words[0].lower() in lexicon.DETERMINERS else ()
        forms.append((obj, (obj.phrase, *alt)))
    heads: dict[str, list[KeyObject]] = {}
    for obj in objects:
        if head := head_noun(obj.phrase):
            heads.setdefault(head, []).append(obj)
    return forms, [(head, owners[0]) for head, owners in heads.items() if len(owners) == 1]


def _mentioned(text: str, objects: Sequence[KeyObject]) -> tuple[KeyObject, tuple[int, int]] | None:
    """The key object a text names: by its full phrase first, else by its head noun if only one has it."""
    forms, heads = _names(tuple(objects))
    for obj, phrases in forms:
        for phrase in phrases:
            if span := find_span(text, phrase):
                return obj, span
    for head, obj in heads:
        if span := find_span(text, head):
            return obj, span
    return None


def _expected_yes_no(question: str, obj: KeyObject, obj_span: tuple[int, int]) -> str | None:
    """'Yes.'/'No.' when the question claims a quality the description states or contradicts."""
    claims = [
        w.lower() for s, e, w in lexicon.quality_spans(question) if e <= obj_span[0] or s >= obj_span[1]
    ]
    if not claims:
        return None
    stated = obj.quality.lower()
    if any(find_span(stated, c) for c in claims) and not lexicon.is_negated(stated):  # not "not blurry"
        return "Yes."
    stated_polarity = lexicon.polarity(stated)
    claim_polarities = {lexicon.polarity(c) for c in claims} - {None}
    if stated_polarity and claim_polarities == {"positive" if stated_polarity == "negative" else "negative"}:
        return "No."
    return None


def _check_one(item: Any, objects: Sequence[KeyObject], rules: VQARules) -> QAItem | str:
    """A validated, not yet grounded QA pair, or the reason it is dropped."""
    if not isinstance(item, dict):
        return "malformed"
    qtype = str(item.get("type", "")).strip().lower().replace("/", "_").replace("-", "_")
    question = " ".join(str(item.get("question", "")).split())
    answer = " ".join(str(item.get("answer", "")).split()).strip(" \"'")
    if qtype not in QTYPES or not question or not answer:
        return "malformed"
    if "[" in question or "]" in question or "[" in answer or "]" in answer:
        return "malformed"
    question = question if question.endswith("?") else question.rstrip(".!") + "?"
    first = lexicon.words(question)[0] if lexicon.words(question) else ""
    if qtype == "yes_no":
        if not _AUXILIARY.match(question):
            return "not_a_yes_no_question"
        word = lexicon.words(answer)[0] if lexicon.words(answer) else ""
        if word not in ("yes", "no"):
            return "yes_no_answer_not_yes_or_no"
        answer = "Yes." if word == "yes" else "No."
    else:
        if first not in _WH:
            return "open_question_without_wh_word"
        qtype = _WH[first]  # the question's own word decides its type
        answer = answer.rstrip(".")
        if lexicon.words(answer)[:1] in (["yes"], ["no"]):
            return "open_answer_is_yes_or_no"
        if len(answer.split()) > rules.max_answer_words:
            return "answer_too_long"
        answer = answer[0].upper() + answer[1:] + "."
    text = f"{question} {answer}"
    hit = _mentioned(question, objects) or _mentioned(answer, objects)
    if hit is None:
        return "unrelated" if not lexicon.has_quality_keyword(text) else "ungroundable"
    obj = hit[0]
    corrected = False
    if qtype == "yes_no":
        expected = _expected_yes_no(question, obj, hit[1]) if _mentioned(question, objects) else None
        if expected and expected != answer:
            answer, corrected = expected, True
    return QAItem(qtype, "", question, answer, "llm", obj.phrase, corrected=corrected)


def _ground(item: QAItem, objects: Sequence[KeyObject], rules: VQARules) -> QAItem | str:
    """Insert the object's boxes: in the answer (grounding) when it names the object, else the question."""
    by_phrase = {o.phrase: o for o in objects}
    obj = by_phrase[item.about]
    for part, mode in (("answer", "grounding"), ("question", "referring")):
        if part == "answer" and item.qtype == "yes_no":
            continue
        text = getattr(item, part)
        hit = _mentioned(text, [obj])
        if hit is None:
            continue
        start, end = hit[1]
        mention = render_mention(text[start:end], obj.boxes, rules.form, rules.n, rules.m)
        setattr(item, part, text[:start] + mention + text[end:])
        item.mode = mode
        item.grounded_in_answer = part == "answer"
        return item
    return "ungroundable"


def _the(phrase: str) -> str:
    first = phrase.split()[0]
    if first.lower() in lexicon.DETERMINERS:
        return first.lower() + phrase[len(first) :]
    return "the " + phrase


def template_qa(objects: Sequence[KeyObject]) -> list[QAItem]:
    """Questions that follow from the tags alone: the stated quality (Yes), its opposite (No), and
    "What is the quality of X?"; "Which object is <q>?" when only one object has that quality."""
    out: list[QAItem] = []
    for obj in objects:
        head = head_noun(obj.phrase)
        verb = "Are" if head.endswith("s") and not head.endswith("ss") else "Is"
        first_quality = re.split(r"\s+and\s+|,\s*", obj.quality)[0].strip()
        out.append(
            QAItem(
                "yes_no", "", f"{verb} {_the(obj.phrase)} {first_quality}?", "Yes.", "template", obj.phrase
            )
        )
        opposite = lexicon.opposite(first_quality)
        if opposite:
            out.append(
                QAItem("yes_no", "", f"{verb} {_the(obj.phrase)} {opposite}?", "No.", "template", obj.phrase)
            )
        # grounding first (the box goes in the answer) when the quality names one object only
        if sum(first_quality.lower() in o.quality.lower() for o in objects) == 1:
            answer = obj.phrase[0].upper() + obj.phrase[1:] + "."
            out.append(
                QAItem("what", "", f"Which object is {first_quality}?", answer, "template", obj.phrase)
            )
        stated = first_quality[0].upper() + first_quality[1:] + "."
        out.append(
            QAItem("what", "", f"What is the quality of {_the(obj.phrase)}?", stated, "template", obj.phrase)
        )
    return out


def check_and_ground(raw_qa: Any, objects: Sequence[KeyObject], rules: VQARules | None = None) -> VQAResult:
    """Validate the model's QA list, fill from templates where a kind is short, insert the boxes (pure)."""
    rules = rules or VQARules()
    result = VQAResult(raw=raw_qa)
    objects = [o for o in objects if o.boxes]
    items: list[QAItem] = []
    for raw in raw_qa if isinstance(raw_qa, list) else []:
        checked = _check_one(raw, objects, rules) if objects else "no_key_objects"
        if isinstance(checked, str):
            result.drops.append({"reason": checked, "item": json.dumps(raw, ensure_ascii=False)[:200]})
        else:
            items.append(checked)
    if rules.template_fill and objects:
        need = {
            "yes": rules.min_yes - sum(i.answer == "Yes." for i in items),
            "no": rules.min_no - sum(i.answer == "No." for i in items),
            "open": rules.min_open - sum(i.qtype != "yes_no" for i in items),
        }
        for template in template_qa(objects):
            kind = "open" if template.qtype != "yes_no" else template.answer.rstrip(".").lower()
            if need[kind] > 0:
                items.append(template)
                need[kind] -= 1
    seen: set[str] = set()
    for item in items:
        key = item.question.lower()
        if key in seen:
            result.drops.append({"reason": "duplicate", "item": item.question})
            continue
        seen.add(key)
        grounded = _ground(item, objects, rules)
        if isinstance(grounded, str):
            result.drops.append({"reason": grounded, "item": item.question})
        else:
            result.items.append(grounded)
    return result


def generate_vqa(
    llm: ChatLLM,
    description: str,
    objects: Sequence[KeyObject],
    rules: VQARules | None = None,
    *,
    max_tokens: int = 384,
) -> VQAResult:
    """Ask the LLM for QA about the grounded key objects, then validate and ground (LLMError propagates)."""
    objects = [o for o in objects if o.boxes]
    if not objects:
        return VQAResult(drops=[{"reason": "no_key_objects", "item": ""}])
    answer = llm.chat_json(vqa_messages(description, objects), VQA_SCHEMA, max_tokens=max_tokens)
    return check_and_ground(answer.get("qa") if isinstance(answer, dict) else answer, objects, rules)


def to_samples(sample_id: str, image: str, result: VQAResult, objects: Sequence[KeyObject]) -> list[Sample]:
    """The grounded QA as training samples; a grounding answer lists the boxes it contains."""
    by_phrase = {o.phrase: o for o in objects}
    samples = []
    for index, item in enumerate(result.items):
        obj = by_phrase[item.about]
        grounded = (
            [GroundedObject(phrase=obj.phrase, boxes=list(obj.boxes))] if item.grounded_in_answer else []
        )
        samples.append(
            Sample(
                id=f"{sample_id}-vqa{index}",
                image=image,
                task="vqa",
                qtype=item.qtype,
                mode=item.mode,
                question=item.question,
                answer=item.answer,
                objects=grounded,
            )  # fmt: skip
        )
    return samples
