"""Stage 1: key-object tags {phrase Tr, quality Tq, effect Te} from a quality description (paper §3.2).

The LLM gets a few-shot prompt (``prompts/tags_*``) and a JSON schema; then every tag it returns is checked
against the description (DESIGN §3.5), because a small model's answers cannot be trusted:
- the phrase must be a verbatim span: found as is, or repaired (a clause cut at its verb, quality words
  taken off, or the closest word n-gram by difflib ratio above ``repair_threshold``), else dropped;
- the quality word is taken from the phrase's own sentence when the model's word is not there;
- the effect is normalized, and corrected when it contradicts the quality word ("blurry" is not positive);
- "no impact" tags, whole-image tags ("image", "photo", "overall", ...), quality-only "objects" ("noise"),
  duplicates and overlong phrases are dropped. Every drop and repair is recorded with its reason.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from giqa.pipeline import lexicon
from giqa.pipeline.candidates import Candidates, candidates
from giqa.ports import ChatLLM, Message
from giqa.schemas import EFFECTS, Tag

TAGS_SCHEMA: dict[str, Any] = {
    "title": "quality_tags",
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "maxItems": 10,
            "items": {
                "type": "object",
                "properties": {
                    "phrase": {"type": "string", "minLength": 1, "maxLength": 100},
                    "quality": {"type": "string", "minLength": 1, "maxLength": 60},
                    "effect": {"type": "string", "enum": list(EFFECTS)},
                },
                "required": ["phrase", "quality", "effect"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["tags"],
    "additionalProperties": False,
}

_EFFECT_ALIASES = {
    "negative": "negative", "bad": "negative", "lowers": "negative", "worse": "negative",
    "positive": "positive", "good": "positive", "raises": "positive", "better": "positive",
    "no impact": "no impact", "none": "no impact", "neutral": "no impact", "no effect": "no impact",
}  # fmt: skip
_COPULA = re.compile(
    r"\s+(?:is|are|was|were|looks|look|appears|appear|seems|seem|remains|stays|has|have)\s+", re.I
)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_EDGE_JUNK = " \t\n\"'`.,;:!?()[]{}"


@dataclass(frozen=True, slots=True)
class TagRules:
    """Validation knobs of Stage 1 (every threshold is a setting)."""

    repair_threshold: float = 0.8  # difflib ratio a word n-gram needs to stand in for a phrase
    max_phrase_words: int = 12
    max_tags: int = 8
    drop_no_impact: bool = True
    fix_effect_from_quality: bool = True
    repair_quality: bool = True


@dataclass(frozen=True, slots=True)
class TagDrop:
    phrase: str
    quality: str
    effect: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TagRepair:
    field: str
    before: str
    after: str
    how: str
    phrase: str = ""  # the (repaired) phrase of the tag this repair belongs to


@dataclass(slots=True)
class Stage1Result:
    tags: list[Tag]
    drops: list[TagDrop] = field(default_factory=list)
    repairs: list[TagRepair] = field(default_factory=list)
    raw: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tags": [t.model_dump(mode="json") for t in self.tags],
            "drops": [asdict(d) for d in self.drops],
            "repairs": [asdict(r) for r in self.repairs],
            "raw": self.raw,
        }


# ------------------------------------------------------------------------------------------ prompt


@lru_cache(maxsize=8)
def load_prompt(name: str) -> str:
    return resources.files("giqa.pipeline").joinpath("prompts", name).read_text(encoding="utf-8")


def _ask(description: str, listed: bool) -> str:
    text = f"Description: {description.strip()}"
    if listed:
        found = candidates(description)
        text += "\nCandidate objects: " + "; ".join(found.phrases)
        if found.qualities:
            text += "\nCandidate quality words: " + "; ".join(found.qualities)
    return text


def tags_messages(description: str, *, few_shot: bool = True, listed: bool = False) -> list[Message]:
    """The Stage-1 chat: system rules, worked examples as earlier turns, then the description.

    ``listed`` adds the candidate spans under each description (the constrained mode's prompt).
    """
    messages: list[Message] = [{"role": "system", "content": load_prompt("tags_system.txt").strip()}]
    if few_shot:
        for example in json.loads(load_prompt("tags_examples.json")):
            messages.append({"role": "user", "content": _ask(example["description"], listed)})
            messages.append({"role": "assistant", "content": json.dumps({"tags": example["tags"]})})
    messages.append({"role": "user", "content": _ask(description, listed)})
    return messages


def constrained_schema(found: Candidates) -> dict[str, Any]:
    """TAGS_SCHEMA with phrase and quality limited to the description's own spans (``enum``)."""
    item = TAGS_SCHEMA["properties"]["tags"]["items"]
    properties = dict(item["properties"])
    properties["phrase"] = {"type": "string", "enum": found.phrases}
    if found.qualities:
        properties["quality"] = {"type": "string", "enum": found.qualities}
    tags = dict(TAGS_SCHEMA["properties"]["tags"], items=dict(item, properties=properties))
    return dict(TAGS_SCHEMA, properties={"tags": tags})


def prompt_fingerprint() -> str:
    """A short hash of the Stage-1 prompt files: recorded in every run so outputs name their prompt."""
    text = load_prompt("tags_system.txt") + load_prompt("tags_examples.json")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ spans


@lru_cache(maxsize=16384)
def _span_pattern(phrase: str) -> re.Pattern[str] | None:
    tokens = phrase.split()
    if not tokens:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(t) for t in tokens) + r"(?!\w)", re.IGNORECASE)


def find_span(text: str, phrase: str, start: int = 0) -> tuple[int, int] | None:
    """The first word-bounded, case-insensitive occurrence of ``phrase`` (any whitespace between words)."""
    pattern = _span_pattern(phrase)
    match = pattern.search(text, start) if pattern else None
    return (match.start(), match.end()) if match else None


def closest_span(text: str, phrase: str, threshold: float) -> tuple[int, int, float] | None:
    """The word n-gram of ``text`` most like ``phrase`` (difflib ratio), if it reaches ``threshold``."""
    target = " ".join(phrase.lower().split())
    words = list(lexicon.WORD.finditer(text))
    size = len(target.split())
    best: tuple[int, int, float] | None = None
    for length in range(max(1, size - 2), size + 3):
        for i in range(len(words) - length + 1):
            start, end = words[i].start(), words[i + length - 1].end()
            candidate = " ".join(text[start:end].lower().split())
            matcher = difflib.SequenceMatcher(None, target, candidate, autojunk=False)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            score = matcher.ratio()
            if score >= threshold and (best is None or score > best[2]):
                best = (start, end, score)
    return best


def _locate_phrase(description: str, phrase: str, rules: TagRules) -> tuple[tuple[int, int], str] | None:
    """(span, how) for a phrase: "verbatim" or the repair that found it; None if nothing is close."""
    span = find_span(description, phrase)
    if span:
        return span, "verbatim"
    clause = _COPULA.split(phrase, maxsplit=1)[0].strip(_EDGE_JUNK)
    if clause and clause != phrase and (span := find_span(description, clause)):
        return span, "trimmed_clause"
    bare = " ".join(lexicon.WORD.findall(lexicon._ANY_QUALITY.sub(" ", phrase)))
    if (
        bare
        and bare.lower() not in lexicon.DETERMINERS
        and bare != phrase
        and (span := find_span(description, bare))
    ):
        return span, "removed_quality_words"
    near = closest_span(description, phrase, rules.repair_threshold)
    if near:
        return (near[0], near[1]), f"fuzzy_span({near[2]:.2f})"
    return None


def _sentence_of(text: str, position: int) -> tuple[int, int]:
    for match in _SENTENCE.finditer(text):
        if match.start() <= position < match.end():
            return match.start(), match.end()
    return 0, len(text)


def _sentence_quality(
    description: str, phrase_span: tuple[int, int], phrase: str
) -> tuple[str, int, int] | None:
    """Quality words that the sentence of one of the phrase's mentions says about it.

    The first quality run after the phrase (joined over "and") wins, else the last one before it.
    """
    position = 0
    spans = [phrase_span]
    while (later := find_span(description, phrase, position)) is not None:
        if later != phrase_span:
            spans.append(later)
        position = later[1]
    for p_start, p_end in spans:
        s_start, s_end = _sentence_of(description, p_start)
        sentence = description[s_start:s_end]
        found = [(s + s_start, e + s_start) for s, e, _ in lexicon.quality_spans(sentence)]
        found = [(s, e) for s, e in found if e <= p_start or s >= p_end]
        if not found:
            continue
        after = [q for q in found if q[0] >= p_end]
        start, end = after[0] if after else found[-1]
        for s, e in found:  # extend "dark and noisy" over its "and"
            if s > end and re.fullmatch(r"\s*(?:,\s*)?(?:and|,)\s*", description[end:s]):
                end = e
        return description[start:end], start, end
    return None


# ------------------------------------------------------------------------------------------ validation


def _text(value: Any) -> str:
    return value.strip(_EDGE_JUNK) if isinstance(value, str) else ""


def _effect(value: str) -> str | None:
    return _EFFECT_ALIASES.get(" ".join(value.lower().replace("_", " ").replace("-", " ").split()))


def validate_tags(description: str, raw_tags: Any, rules: TagRules | None = None) -> Stage1Result:
    """Keep, repair or drop each raw tag (pure). ``raw_tags`` is whatever the model gave for "tags"."""
    rules = rules or TagRules()
    result = Stage1Result(tags=[], raw=raw_tags)
    if not isinstance(raw_tags, list):
        result.drops.append(TagDrop("", "", "", "malformed", f"tags is not a list: {str(raw_tags)[:80]}"))
        return result
    claimed: list[tuple[int, int]] = []
    for item in raw_tags:
        if not isinstance(item, dict):
            result.drops.append(TagDrop(str(item)[:60], "", "", "malformed", "not an object"))
            continue
        phrase, quality, effect_in = (_text(item.get(k)) for k in ("phrase", "quality", "effect"))

        def drop(
            reason: str,
            detail: str = "",
            phrase: str = phrase,
            quality: str = quality,
            effect: str = effect_in,
        ) -> None:
            result.drops.append(TagDrop(phrase, quality, effect, reason, detail))

        if not phrase:
            drop("empty_phrase")
            continue
        located = _locate_phrase(description, phrase, rules)
        if located is None:
            drop("phrase_not_in_description")
            continue
        (start, end), how = located
        span_text = description[start:end]
        if how != "verbatim":
            result.repairs.append(TagRepair("phrase", phrase, span_text, how, span_text))
        if len(span_text.split()) > rules.max_phrase_words:
            drop("phrase_too_long", f"{len(span_text.split())} words > {rules.max_phrase_words}", span_text)
            continue
        if lexicon.names_whole_image(span_text):
            drop("whole_image", phrase=span_text)
            continue
        if lexicon.is_quality_only(span_text):
            drop("not_an_object", "the phrase is only quality words", span_text)
            continue

        quality_out = _check_quality(description, (start, end), span_text, quality, rules, result)
        if quality_out is None:
            drop("quality_not_found", phrase=span_text)
            continue
        effect = _effect(effect_in)
        word_polarity = lexicon.polarity(quality_out)
        if effect is None and word_polarity is None:
            drop("invalid_effect", f"{effect_in!r}", span_text, quality_out)
            continue
        if word_polarity and rules.fix_effect_from_quality and effect != word_polarity:
            result.repairs.append(
                TagRepair("effect", effect_in, word_polarity, "effect_from_quality", span_text)
            )
            effect = word_polarity
        if effect == "no impact" and rules.drop_no_impact:
            drop("no_impact", phrase=span_text, quality=quality_out)
            continue
        if (start, end) in claimed or any(span_text.lower() == t.phrase.lower() for t in result.tags):
            drop("duplicate", phrase=span_text, quality=quality_out)
            continue
        if len(result.tags) >= rules.max_tags:
            drop("too_many", f"more than {rules.max_tags} tags", span_text, quality_out)
            continue
        claimed.append((start, end))
        result.tags.append(Tag(phrase=span_text, quality=quality_out, effect=effect))
    return result


def _check_quality(
    description: str, span: tuple[int, int], phrase: str, quality: str, rules: TagRules, result: Stage1Result
) -> str | None:
    """The quality words for the tag, or None when the phrase's sentence says nothing about its quality.

    With ``repair_quality`` the quality run nearest the phrase in its own sentence wins (a model's word from
    the neighbouring clause, "the X is dark, while the Y is sharp", is replaced); the model's word is kept
    when it lies inside that run or is a word the lexicon does not know but the sentence uses ("blue").
    """
    near = _sentence_quality(description, span, phrase) if rules.repair_quality else None
    s_start, s_end = _sentence_of(description, span[0])
    in_sentence = find_span(description[s_start:s_end], quality) if quality else None
    model_word = description[s_start + in_sentence[0] : s_start + in_sentence[1]] if in_sentence else None
    if near:
        if model_word and find_span(near[0], model_word):
            return model_word
        result.repairs.append(TagRepair("quality", quality, near[0], "quality_from_sentence", phrase))
        return near[0]
    # The sentence holds no quality word (from the lexicon) about the phrase: keep the model's own word
    # only if the sentence says it; otherwise the description says nothing of this object's quality.
    return model_word


STAGE1_MODES = ("sentences", "constrained", "free")


def stage1_request(
    description: str, *, mode: str = "constrained", few_shot: bool = True
) -> tuple[list[Message], dict[str, Any]] | None:
    """(messages, schema) of one Stage-1 call; None when constrained mode finds no candidate phrase."""
    if mode == "free":
        return tags_messages(description, few_shot=few_shot), TAGS_SCHEMA
    if mode != "constrained":
        raise ValueError(f"unknown Stage-1 request mode {mode!r}; expected 'constrained' or 'free'")
    found = candidates(description)
    if not found.phrases:
        return None
    return tags_messages(description, few_shot=few_shot, listed=True), constrained_schema(found)


def stage1_requests(
    description: str, *, mode: str = "sentences", few_shot: bool = True
) -> list[tuple[list[Message], dict[str, Any]]]:
    """Every Stage-1 call for a description: one per sentence that has a candidate ("sentences"), or one
    for the whole text ("constrained", "free")."""
    if mode not in STAGE1_MODES:
        raise ValueError(f"unknown Stage-1 mode {mode!r}; expected one of {STAGE1_MODES}")
    if mode == "sentences":
        parts = [m.group(0).strip() for m in _SENTENCE.finditer(description) if m.group(0).strip()]
        requests = [stage1_request(part, mode="constrained", few_shot=few_shot) for part in parts]
    else:
        requests = [stage1_request(description, mode=mode, few_shot=few_shot)]
    return [r for r in requests if r is not None]


def extract_tags(
    llm: ChatLLM,
    description: str,
    rules: TagRules | None = None,
    *,
    mode: str = "sentences",
    few_shot: bool = True,
    max_tokens: int = 384,
) -> Stage1Result:
    """Stage 1 for one description: ask the LLM (schema-constrained), then validate (LLMError propagates).

    Modes: ``"sentences"`` (default) asks once per sentence, with phrases and quality words limited to
    that sentence's candidate spans — measured best for the 135M embedded model, which lists only about
    half the objects when given the whole text; ``"constrained"`` asks once with the whole description's
    candidates; ``"free"`` lets a strong model (Llama-3-8B on vLLM) write any text, validated all the same.
    Validation always runs against the whole description.
    """
    if not description or not description.strip():
        raise ValueError("Stage 1 needs a non-empty description")
    requests = stage1_requests(description, mode=mode, few_shot=few_shot)
    if not requests:
        return Stage1Result(tags=[], drops=[TagDrop("", "", "", "no_candidates", "no noun chunk found")])
    raw: list[Any] = []
    for messages, schema in requests:
        answer = llm.chat_json(messages, schema, max_tokens=max_tokens)
        found = answer.get("tags") if isinstance(answer, dict) else answer
        if not isinstance(found, list):
            return validate_tags(description, found, rules)  # records the malformed answer
        raw.extend(found)
    return validate_tags(description, raw, rules)
