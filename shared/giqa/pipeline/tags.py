"""Stage 1: key-object tags {phrase Tr, quality Tq, effect Te} from a quality description (paper §3.2).

The LLM gets a few-shot prompt (``prompts/tags_*``) and a JSON schema; then every tag it returns is checked
against the description (DESIGN §3.5), because a small model's answers cannot be trusted:
- the phrase must be a verbatim span: found as is, or repaired (a clause cut at its verb, quality words
  taken off, or the closest word n-gram by difflib ratio above ``repair_threshold``), else dropped;
- the quality word is taken from the phrase's own sentence when the model's word is not there;
- the effect is normalized, and corrected when it contradicts the quality word ("blurry" is not positive);
- "no impact" tags, whole-image tags ("image", "photo", "overall", ...), quality-only "objects" ("noise"),
  duplicates and overlong phrases are dropped. Every drop and repair is recorded with its reason.
Then the clause rules (``clauses.rule_pairs``) complete the answer: every object a clause says something
about that the model left out is added ("added_by_rules") or recorded as dropped with the reason, so nothing
a description says about an object is lost silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from giqa.pipeline import clauses, lexicon
from giqa.pipeline.candidates import Candidates, candidates
from giqa.pipeline.spans import EDGE_JUNK, find_span, locate_phrase, sentence_of, sentence_quality
from giqa.pipeline.spans import closest_span as closest_span  # re-exported: tests and callers use it here
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
_EDGE_JUNK = EDGE_JUNK


@dataclass(frozen=True, slots=True)
class TagRules:
    """Validation knobs of Stage 1 (every threshold is a setting)."""

    repair_threshold: float = 0.8  # difflib ratio a word n-gram needs to stand in for a phrase
    max_phrase_words: int = 12
    max_tags: int = 8
    drop_no_impact: bool = True
    fix_effect_from_quality: bool = True
    repair_quality: bool = True
    complete_from_rules: bool = True  # add the objects the clause rules read and the model left out


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


# ------------------------------------------------------------------------------------------ validation


def _text(value: Any) -> str:
    return value.strip(_EDGE_JUNK) if isinstance(value, str) else ""


def _effect(value: str) -> str | None:
    return _EFFECT_ALIASES.get(" ".join(value.lower().replace("_", " ").replace("-", " ").split()))


def validate_tags(
    description: str,
    raw_tags: Any,
    rules: TagRules | None = None,
    *,
    pairs: list[clauses.RulePair] | None = None,
    result: Stage1Result | None = None,
) -> Stage1Result:
    """Keep, repair or drop each raw tag (pure). ``raw_tags`` is whatever the model gave for "tags";
    ``pairs`` the clause rules' reading (computed when not given); ``result`` one to add to."""
    rules = rules or TagRules()
    pairs = clauses.rule_pairs(description) if pairs is None else pairs
    result = result if result is not None else Stage1Result(tags=[], raw=raw_tags)
    if not isinstance(raw_tags, list):
        result.drops.append(TagDrop("", "", "", "malformed", f"tags is not a list: {str(raw_tags)[:80]}"))
        return result
    claimed = [find_span(description, t.phrase) or (-1, -1) for t in result.tags]
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
        located = locate_phrase(description, phrase, rules.repair_threshold)
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
        owner = next((p for p in pairs if _modifies((start, end), p)), None)
        if owner is not None:  # "white t-shirt" of "the man wearing a white t-shirt is blurry"
            whole = description[owner.phrase[0] : owner.phrase[1]]
            drop("not_the_subject", f"part of {whole!r}, which the clause rates", span_text)
            continue

        quality_out = _check_quality(description, (start, end), span_text, quality, rules, result, pairs)
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
        if any(s < end and start < e for s, e in claimed) or any(
            span_text.lower() == t.phrase.lower() for t in result.tags
        ):
            drop("duplicate", phrase=span_text, quality=quality_out)
            continue
        if len(result.tags) >= rules.max_tags:
            drop("too_many", f"more than {rules.max_tags} tags", span_text, quality_out)
            continue
        claimed.append((start, end))
        result.tags.append(Tag(phrase=span_text, quality=quality_out, effect=effect))
    return result


def _modifies(span: tuple[int, int], pair: clauses.RulePair) -> bool:
    """True when ``span`` lies in the modifier of the pair's object, away from its head noun."""
    inside = pair.phrase[0] <= span[0] and span[1] <= pair.phrase[1]
    return inside and not (pair.head[0] < span[1] and span[0] < pair.head[1])


def _check_quality(
    description: str,
    span: tuple[int, int],
    phrase: str,
    quality: str,
    rules: TagRules,
    result: Stage1Result,
    pairs: list[clauses.RulePair],
) -> str | None:
    """The quality words for the tag, or None when the phrase's sentence says nothing about its quality.

    With ``repair_quality`` the quality the clause rules give the phrase wins, else the run nearest it in
    its sentence (a model's word from the neighbouring clause, "the X is dark, while the Y is sharp", is
    replaced); the model's word is kept when it lies inside that run, unless the run is negated ("blurry"
    out of "not blurry" would say the opposite), or is a word the lexicon does not know but the sentence
    uses ("blue").
    """
    near = None
    if rules.repair_quality:
        pair = next((p for p in pairs if p.head[0] < span[1] and span[0] < p.head[1]), None)
        if pair is not None:
            near = (description[pair.quality[0] : pair.quality[1]], *pair.quality)
        else:
            near = sentence_quality(description, span, phrase)
    s_start, s_end = sentence_of(description, span[0])
    in_sentence = find_span(description[s_start:s_end], quality) if quality else None
    model_word = description[s_start + in_sentence[0] : s_start + in_sentence[1]] if in_sentence else None
    if near:
        if model_word and find_span(near[0], model_word) and not lexicon.is_negated(near[0]):
            return model_word
        if near[0] != quality:
            result.repairs.append(TagRepair("quality", quality, near[0], "quality_from_sentence", phrase))
        return near[0]
    # The sentence holds no quality word (from the lexicon) about the phrase: keep the model's own word
    # only if the sentence says it; otherwise the description says nothing of this object's quality.
    return model_word


def complete_from_rules(
    description: str, result: Stage1Result, rules: TagRules, pairs: list[clauses.RulePair]
) -> Stage1Result:
    """Every object the clause rules read that no tag covers goes through the same validation: it is added
    (repair "added_by_rules") or recorded as dropped with the reason (whole image, duplicate, ...)."""
    for pair in pairs:
        spans = [find_span(description, t.phrase) for t in result.tags]
        if any(s is not None and s[0] < pair.head[1] and pair.head[0] < s[1] for s in spans):
            continue
        phrase = description[pair.phrase[0] : pair.phrase[1]]
        quality = description[pair.quality[0] : pair.quality[1]]
        kept, dropped = len(result.tags), len(result.drops)
        guess = {"phrase": phrase, "quality": quality, "effect": lexicon.polarity(quality) or ""}
        validate_tags(description, [guess], rules, pairs=pairs, result=result)
        if len(result.tags) > kept:
            result.repairs.append(TagRepair("tag", "", result.tags[-1].phrase, "added_by_rules", phrase))
        for index in range(dropped, len(result.drops)):
            drop = result.drops[index]
            result.drops[index] = replace(drop, detail="; ".join(filter(None, [drop.detail, "clause rules"])))
    return result


def rule_tags(description: str, rules: TagRules | None = None) -> Stage1Result:
    """Stage 1 by the clause rules alone, no LLM: the reference line of ``bench/stage1_quality.py``."""
    rules = rules or TagRules()
    pairs = clauses.rule_pairs(description)
    return complete_from_rules(description, validate_tags(description, [], rules, pairs=pairs), rules, pairs)


STAGE1_MODES = ("sentences", "constrained", "free")


def request_units(description: str, pairs: list[clauses.RulePair] | None = None) -> list[str]:
    """The texts the per-sentence mode asks about: each clause the rules found an object and a quality in
    (overlapping clauses merged, "the cup, the spoon and the saucer are sharp" is one; clauses about the
    whole image are not asked about), and each sentence with quality words where they found nothing (the
    model may see what the rules do not)."""
    pairs = clauses.rule_pairs(description) if pairs is None else pairs
    units: list[str] = []
    for s_start, s_end in clauses.sentences(description):
        here = [p for p in pairs if s_start <= p.clause[0] < s_end]
        named = [p for p in here if not lexicon.names_whole_image(description[p.phrase[0] : p.phrase[1]])]
        inside = sorted(p.clause for p in named)
        merged: list[tuple[int, int]] = []
        for start, end in inside:
            if merged and start < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        if not here and lexicon.quality_words(description[s_start:s_end]):
            merged = [(s_start, s_end)]
        units.extend(description[a:b].strip(" \t\n,;:-") for a, b in merged)
    return [u for u in units if u]


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
    """Every Stage-1 call for a description: one per clause that has a candidate ("sentences", see
    :func:`request_units`), or one for the whole text ("constrained", "free")."""
    if mode not in STAGE1_MODES:
        raise ValueError(f"unknown Stage-1 mode {mode!r}; expected one of {STAGE1_MODES}")
    if mode == "sentences":
        parts = request_units(description)
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

    Modes: ``"sentences"`` (default) asks once per clause of each sentence, with phrases and quality words
    limited to that clause's candidate spans — measured best for the 135M embedded model, which lists only
    about half the objects when given the whole text; ``"constrained"`` asks once with the whole description's
    candidates; ``"free"`` lets a strong model (Llama-3-8B on vLLM) write any text, validated all the same.
    Validation always runs against the whole description, and the clause rules complete the result
    (``TagRules.complete_from_rules``).
    """
    if not description or not description.strip():
        raise ValueError("Stage 1 needs a non-empty description")
    rules = rules or TagRules()
    pairs = clauses.rule_pairs(description)
    raw: Any = []  # a list of tags, or the one malformed answer
    answer: Any = None
    for messages, schema in stage1_requests(description, mode=mode, few_shot=few_shot):
        answer = llm.chat_json(messages, schema, max_tokens=max_tokens)
        found = answer.get("tags") if isinstance(answer, dict) else answer
        if not isinstance(found, list):
            raw = found  # recorded as one malformed answer; the rules still complete the tags
            break
        raw.extend(found)
    result = validate_tags(description, raw, rules, pairs=pairs)
    if rules.complete_from_rules:
        complete_from_rules(description, result, rules, pairs)
    if not result.tags and not result.drops and answer is None:
        result.drops.append(TagDrop("", "", "", "no_candidates", "no noun chunk found"))
    return result
