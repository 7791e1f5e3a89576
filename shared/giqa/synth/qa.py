"""GIQA-VQA items derived from a scene, correct by construction.

:func:`candidates` lists every question the scene can answer without doubt (a claim that another
degradation would half-confirm, or that a global degradation touches, is not asked); :func:`select`
draws a balanced handful for a training scene, and the bench draws its exact mix from the same pool.
Referring items carry the box in the question, grounding items in the answer (DESIGN §3.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from giqa.grounded_text import render_mention
from giqa.schemas import BenchObject
from giqa.synth.schema import SynthQA
from giqa.synth.words import (
    CLAIMS,
    CONFUSABLE,
    DISTORTION_NOUNS,
    HOW_ATTRIBUTES,
    HOW_DEPENDS,
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    severity_word,
)

YES_NO_PATTERNS = ("Is the {m} {c}?", "Does the {m} look {c}?", "Would you say the {m} is {c}?")
ANY_PATTERNS = ("Is any object in the image {c}?", "Do any of the shapes look {c}?")


@dataclass(frozen=True)
class QAObject:
    """What QA needs to know of one object."""

    id: int
    phrase: str
    box: list[float]
    kinds: tuple[str, ...]
    severity: float
    twin: bool  # one of the look-alike pair: only a box tells it apart


@dataclass(frozen=True)
class QAContext:
    objects: tuple[QAObject, ...]
    global_kinds: frozenset[str]
    kinds: tuple[str, ...]  # the degradation kinds of this world
    verdict: str
    form: str
    n: int
    m: int


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=4096)
def _render(phrase: str, box: tuple[float, ...], form: str, n: int, m: int) -> str:
    return render_mention(phrase, [box], form=form, n=n, m=m)  # type: ignore[arg-type]


def _mention(ctx: QAContext, obj: QAObject) -> str:
    """The object's grounded mention; cached, as every question about it repeats it."""
    return _render(obj.phrase, tuple(obj.box), ctx.form, ctx.n, ctx.m)


def _claim_truth(obj: QAObject, kind: str, ctx: QAContext) -> bool | None:
    """Whether "the object is <claim of kind>" holds; None when the answer would be doubtful."""
    if kind in obj.kinds:
        return True
    if kind in ctx.global_kinds or set(obj.kinds) & CONFUSABLE[kind]:
        return None
    return False


def _positive_truth(obj: QAObject, word: str, ctx: QAContext) -> bool | None:
    banned = POSITIVE_WORDS[word]
    if set(obj.kinds) & banned:
        return False
    if ctx.global_kinds & banned:
        return None
    return True


def _yes_no(ctx: QAContext, rng: np.random.Generator) -> list[SynthQA]:
    out: list[SynthQA] = []
    for obj in ctx.objects:
        claims: list[tuple[str, bool | None]] = [(CLAIMS[k], _claim_truth(obj, k, ctx)) for k in ctx.kinds]
        claims += [(w, _positive_truth(obj, w, ctx)) for w in ("sharp", "well-exposed", "clear")]
        for claim, truth in claims:
            if truth is None:
                continue
            pattern = YES_NO_PATTERNS[int(rng.integers(0, len(YES_NO_PATTERNS)))]
            answer = "Yes." if truth else "No."
            question = pattern.format(m=_mention(ctx, obj), c=claim)
            out.append(
                SynthQA(qtype="yes_no", mode="referring", question=question, answer=answer, about=[obj.id])
            )
            if not obj.twin:  # the phrase alone names it only when it has no look-alike
                question = pattern.format(m=obj.phrase, c=claim)
                out.append(
                    SynthQA(
                        qtype="yes_no", mode="grounding", question=question, answer=answer, about=[obj.id]
                    )
                )
    for kind in ctx.kinds:
        truths = [_claim_truth(o, kind, ctx) for o in ctx.objects]
        if any(t is None for t in truths) and not any(truths):
            continue
        holders = [o.id for o, t in zip(ctx.objects, truths, strict=True) if t]
        pattern = ANY_PATTERNS[int(rng.integers(0, len(ANY_PATTERNS)))]
        out.append(
            SynthQA(
                qtype="yes_no",
                mode="grounding",
                question=pattern.format(c=CLAIMS[kind]),
                answer="Yes." if holders else "No.",
                about=holders,
            )
        )
    return out


def _grounded(ctx: QAContext, objs: list[QAObject]) -> tuple[str, list[BenchObject]]:
    """'the [a](..) and the [b](..)' and the ground-truth objects it carries."""
    text = " and the ".join(_mention(ctx, o) for o in objs)
    return "the " + text, [BenchObject(phrase=o.phrase, box=o.box) for o in objs]


def _open(ctx: QAContext, rng: np.random.Generator) -> list[SynthQA]:
    out: list[SynthQA] = []
    degraded = [o for o in ctx.objects if o.kinds]
    for obj in degraded:
        m = _mention(ctx, obj)
        nouns = [
            DISTORTION_NOUNS[k][int(rng.integers(0, len(DISTORTION_NOUNS[k])))].rstrip(".") for k in obj.kinds
        ]
        what = _cap(" and ".join(n[:1].lower() + n[1:] if i else n for i, n in enumerate(nouns))) + "."
        q = ("What distortion affects the {m}?", "What is wrong with the quality of the {m}?")[
            int(rng.integers(0, 2))
        ]
        out.append(
            SynthQA(qtype="what", mode="referring", question=q.format(m=m), answer=what, about=[obj.id])
        )
        word = NEGATIVE_WORDS[obj.kinds[0]][0]
        q = ("Why does the {m} look poor?", "Why is the quality of the {m} low?")[int(rng.integers(0, 2))]
        out.append(
            SynthQA(
                qtype="why",
                mode="referring",
                question=q.format(m=m),
                answer=f"Because it is {word}.",
                about=[obj.id],
            )
        )
        out.append(
            SynthQA(
                qtype="how",
                mode="referring",
                question=f"How severe is the degradation of the {m}?",
                answer=severity_word(obj.severity),
                about=[obj.id],
            )
        )
    for obj in ctx.objects:
        for attribute, (stem, by_kind, default) in HOW_ATTRIBUTES.items():
            answer = next((by_kind[k] for k in obj.kinds if k in by_kind), None)
            depends = HOW_DEPENDS[attribute]
            if answer is None:
                if set(obj.kinds) & depends or ctx.global_kinds & depends:
                    continue
                answer = default
            question = f"{stem} the {_mention(ctx, obj)}?"
            out.append(
                SynthQA(qtype="how", mode="referring", question=question, answer=answer, about=[obj.id])
            )
    # grounding: the answer names and boxes the objects
    for kind in ctx.kinds:
        holders = [o for o in ctx.objects if kind in o.kinds]
        doubtful = kind in ctx.global_kinds or any(
            set(o.kinds) & CONFUSABLE[kind] and kind not in o.kinds for o in ctx.objects
        )
        if not holders or doubtful:
            continue
        text, objs = _grounded(ctx, holders)
        q = ("Which object in the image is {c}?", "Which part of the image looks {c}?")[
            int(rng.integers(0, 2))
        ]
        out.append(
            SynthQA(
                qtype="what",
                mode="grounding",
                question=q.format(c=CLAIMS[kind]),
                answer=_cap(text) + ".",
                objects=objs,
                about=[o.id for o in holders],
            )
        )
    if degraded:
        worst = sorted(degraded, key=lambda o: -o.severity)[:2]
        reasons = " and ".join(f"{_grounded(ctx, [o])[0]} is {NEGATIVE_WORDS[o.kinds[0]][0]}" for o in worst)
        objs = [BenchObject(phrase=o.phrase, box=o.box) for o in worst]
        verdict = ctx.verdict
        out.append(
            SynthQA(
                qtype="why",
                mode="grounding",
                question=f"Why is the image quality {verdict}?",
                answer=f"Because {reasons}.",
                objects=objs,
                about=[o.id for o in worst],
            )
        )
        text, objs = _grounded(ctx, worst[:1])
        out.append(
            SynthQA(
                qtype="how",
                mode="grounding",
                question="How is the quality of the image, and which object lowers it most?",
                answer=f"{_cap(verdict)}, mainly {text}.",
                objects=objs,
                about=[worst[0].id],
            )
        )
        out.append(
            SynthQA(
                qtype="what",
                mode="grounding",
                question="What is the most degraded object in the image?",
                answer=_cap(text) + ".",
                objects=objs,
                about=[worst[0].id],
            )
        )
    return out


def candidates(ctx: QAContext, rng: np.random.Generator) -> list[SynthQA]:
    """Every question this scene answers without doubt."""
    return _yes_no(ctx, rng) + _open(ctx, rng)


def select(pool: list[SynthQA], count: int, rng: np.random.Generator) -> list[SynthQA]:
    """About half Yes/No (as many Yes as No) and half What/Why/How, shuffled."""
    yes = [q for q in pool if q.qtype == "yes_no" and q.answer == "Yes."]
    no = [q for q in pool if q.qtype == "yes_no" and q.answer == "No."]
    other = [q for q in pool if q.qtype != "yes_no"]
    half = count // 2
    n_pairs = min(half // 2, len(yes), len(no))
    picked: list[SynthQA] = []
    for group, k in ((yes, n_pairs), (no, n_pairs), (other, min(count - 2 * n_pairs, len(other)))):
        picked += [group[int(i)] for i in rng.choice(len(group), size=k, replace=False)] if k else []
    return [picked[int(i)] for i in rng.permutation(len(picked))]
