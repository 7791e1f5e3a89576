"""Human-style quality descriptions of a scene, built as text pieces that know which object they name.

A description is a list of plain strings and :class:`Ref` pieces, so the grounded answer can wrap each
key object's first mention without searching the text. Sentence patterns, synonyms, ordering, an
opening line and the overall verdict all vary with the scene's language stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from giqa.synth.scene import PlannedObject, ScenePlan
from giqa.synth.words import BACKGROUND_WORDS, CAUSES, NEGATIVE_WORDS, NUMBER_WORDS, POSITIVE_WORDS

NEGATIVE_PATTERNS: tuple[str, ...] = (
    "The {obj} is {q}.",
    "The {obj} looks {q}.",
    "The {obj} appears {q}.",
    "The {obj} {where} is {q}.",
    "The {obj} is noticeably {q}.",
    "Unfortunately, the {obj} is {q}.",
    "I notice that the {obj} is {q}.",
    "The {obj} is quite {q}, which lowers the quality.",
    "The {obj} {where} looks {q} and loses detail.",
    "The {obj} has become {q}.",
    "One problem is the {obj}, which is {q}.",
    "{cause}, the {obj} is {q}.",
    "The quality drops at the {obj} {where}, which looks {q}.",
)
POSITIVE_PATTERNS: tuple[str, ...] = (
    "The {obj} is {q}.",
    "The {obj} looks {q}.",
    "The {obj} {where} remains {q}.",
    "The {obj} is rendered {q}.",
    "Fortunately, the {obj} is {q}.",
    "The {obj} {where} stays {q}.",
)
CONTRAST_PATTERNS: tuple[str, ...] = (
    "In contrast, the {obj} is {q}.",
    "On the other hand, the {obj} looks {q}.",
)
PAIR_PATTERNS: tuple[str, ...] = (
    "The {obj} is {q}, while the {obj2} is {q2}.",
    "The {obj} looks {q}, but the {obj2} is {q2}.",
)
OPENINGS: tuple[str, ...] = (
    "The image shows {count} shapes on a {bg} background.",
    "This picture contains {count} geometric objects over a {bg} background.",
    "In this image, several shapes sit on a {bg} background.",
    "The scene is a set of simple shapes on a {bg} background.",
)
GLOBAL_PATTERNS: tuple[str, ...] = (
    "The whole image is slightly {q}.",
    "The entire picture looks a bit {q}.",
    "Across the whole frame, the picture is somewhat {q}.",
)
VERDICT_END: tuple[str, ...] = (
    "Overall, the image quality is {v}.",
    "In summary, the quality of this image is {v}.",
    "All in all, the image quality is {v}.",
    "The overall quality is {v}.",
    "Taken together, I would rate the quality as {v}.",
)
VERDICT_BECAUSE = "Overall, the quality is {v}, mainly because the {obj} is {q}."
VERDICT_START: tuple[str, ...] = ("The image quality is {v} overall.", "This image has {v} quality.")


@dataclass(frozen=True)
class Ref:
    """A mention of object ``obj_id`` in the text, written as ``phrase``."""

    obj_id: int
    phrase: str


Piece = str | Ref


@dataclass
class Description:
    pieces: list[Piece]
    phrases: dict[int, str]
    qualities: dict[int, str] = field(default_factory=dict)  # quality words of each mentioned object
    effects: dict[int, str] = field(default_factory=dict)
    verdict: str = "good"

    @property
    def text(self) -> str:
        return "".join(p.phrase if isinstance(p, Ref) else p for p in self.pieces)


def where(obj: PlannedObject, width: int, height: int) -> str:
    """Position words from the box centre on a 3×3 layout, e.g. 'in the top left'."""
    cx = (obj.box_px[0] + obj.box_px[2]) / 2 / width
    cy = (obj.box_px[1] + obj.box_px[3]) / 2 / height
    col = 0 if cx < 1 / 3 else (1 if cx < 2 / 3 else 2)
    row = 0 if cy < 1 / 3 else (1 if cy < 2 / 3 else 2)
    names = (
        ("in the top left", "at the top", "in the top right"),
        ("on the left", "in the centre", "on the right"),
        ("in the bottom left", "at the bottom", "in the bottom right"),
    )
    return names[row][col]


def verdict_of(plan: ScenePlan) -> str:
    degraded = [o for o in plan.objects if o.degradations]
    worst = max((s for o in degraded for _, s in o.degradations), default=0.0)
    if not degraded:
        return "fair" if plan.global_degradations else "good"
    if len(degraded) >= 2 or worst >= 0.75 or plan.global_degradations:
        return "poor"
    return "fair"


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


def _fill(pattern: str, refs: dict[str, Ref], values: dict[str, str]) -> list[Piece]:
    """Split a pattern at its {obj}/{obj2} slots into pieces; other slots are filled as text."""
    pieces: list[Piece] = []
    rest = pattern
    while rest:
        slots = [(rest.find("{" + name + "}"), name) for name in refs if "{" + name + "}" in rest]
        if not slots:
            pieces.append(rest.format(**values))
            break
        pos, name = min(slots)
        if pos:
            pieces.append(rest[:pos].format(**values))
        pieces.append(refs[name])
        rest = rest[pos + len(name) + 2 :]
    return pieces


def negative_quality(obj: PlannedObject, rng: np.random.Generator) -> str:
    return " and ".join(_pick(rng, NEGATIVE_WORDS[kind]) for kind, _ in obj.degradations)


def positive_quality(banned: set[str], rng: np.random.Generator) -> str:
    words = [w for w, kinds in POSITIVE_WORDS.items() if not kinds & banned]
    first = _pick(rng, words)
    if rng.random() < 0.4 and len(words) > 1:
        second = _pick(rng, [w for w in words if w != first])
        return f"{first} and {second}"
    return first


def describe(
    plan: ScenePlan, phrases: dict[int, str], mention_clean: dict[int, bool], rng: np.random.Generator
) -> Description:
    """The description of a rendered plan (its degradations final) with the given object phrases."""
    desc = Description(pieces=[], phrases=phrases, verdict=verdict_of(plan))
    global_kinds = {k for k, _ in plan.global_degradations}
    negatives = [o for o in plan.objects if o.degradations]
    positives = [o for o in plan.objects if not o.degradations and o.role == "clean" and mention_clean[o.id]]
    for obj in negatives:
        desc.qualities[obj.id] = negative_quality(obj, rng)
        desc.effects[obj.id] = "negative"
    for obj in positives:
        desc.qualities[obj.id] = positive_quality(global_kinds, rng)
        desc.effects[obj.id] = "positive"

    def values(obj: PlannedObject) -> dict[str, str]:
        cause = _pick(rng, CAUSES[obj.degradations[0][0]]) if obj.degradations else ""
        return {"q": desc.qualities[obj.id], "where": where(obj, plan.width, plan.height), "cause": cause}

    def ref(obj: PlannedObject) -> Ref:
        return Ref(obj.id, phrases[obj.id])

    # Position words would tell the look-alikes apart; the hard case must stay ambiguous.
    def negative_patterns(obj: PlannedObject) -> list[str]:
        return [p for p in NEGATIVE_PATTERNS if not (obj.role == "twin_degraded" and "{where}" in p)]

    sentences: list[list[Piece]] = []
    neg_order = [negatives[int(i)] for i in rng.permutation(len(negatives))]
    pos_order = [positives[int(i)] for i in rng.permutation(len(positives))]
    if neg_order and pos_order and rng.random() < 0.3:
        a, b = neg_order.pop(0), pos_order.pop(0)
        vals = values(a) | {"q2": desc.qualities[b.id]}
        sentences.append(_fill(_pick(rng, PAIR_PATTERNS), {"obj": ref(a), "obj2": ref(b)}, vals))
    negative_sentences = [
        _fill(_pick(rng, negative_patterns(obj)), {"obj": ref(obj)}, values(obj)) for obj in neg_order
    ]
    # praise comes first now and then; "In contrast, ..." only reads right after a problem
    praise_first = rng.random() < 0.35
    follows_problem = bool(sentences or negative_sentences) and not praise_first
    positive_patterns = POSITIVE_PATTERNS + (CONTRAST_PATTERNS if follows_problem else ())
    positive_sentences = [
        _fill(_pick(rng, positive_patterns), {"obj": ref(obj)}, values(obj)) for obj in pos_order
    ]
    if praise_first:
        sentences = positive_sentences + sentences + negative_sentences
    else:
        sentences += negative_sentences + positive_sentences

    for kind, _ in plan.global_degradations:
        sentences.append([_pick(rng, GLOBAL_PATTERNS).format(q=_pick(rng, NEGATIVE_WORDS[kind]))])

    verdict_first = rng.random() < 0.2
    head: list[list[Piece]] = []
    if rng.random() < 0.6:
        bg = _pick(rng, BACKGROUND_WORDS[plan.background])
        head.append([_pick(rng, OPENINGS).format(count=NUMBER_WORDS[len(plan.objects)], bg=bg)])
    v = desc.verdict
    if verdict_first:
        head.insert(0, [_pick(rng, VERDICT_START).format(v=v)])
        tail: list[list[Piece]] = []
    elif negatives and rng.random() < 0.3:
        worst = max(negatives, key=lambda o: max(s for _, s in o.degradations))
        tail = [_fill(VERDICT_BECAUSE, {"obj": ref(worst)}, {"v": v, "q": desc.qualities[worst.id]})]
    else:
        tail = [[_pick(rng, VERDICT_END).format(v=v)]]
    for i, sentence in enumerate(head + sentences + tail):
        if i:
            desc.pieces.append(" ")
        desc.pieces.extend(sentence)
    return desc
