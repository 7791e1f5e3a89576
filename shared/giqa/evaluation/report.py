"""Scoring a prediction file against a bench: the report of DESIGN §3.4 and the per-item details.

:func:`evaluate` parses every response once, gathers the per-item evidence (matched IoUs, recalled tags, the
yes/no word, judge scores) and then applies the split-level metrics and their null rules. The report has
exactly the keys of DESIGN §3.4; each item's row says what it scored and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from giqa.boxes import Box, iou_matrix, to_array
from giqa.evaluation.io import PredictionSet
from giqa.evaluation.judge import Judge, JudgeRequest, JudgeResult
from giqa.grid import DEFAULT_M, DEFAULT_N
from giqa.grounded_text import parse_text
from giqa.metrics import (
    BoxMatch,
    PhraseSimilarity,
    SplitGrounding,
    TagMatch,
    acc_total,
    acc_w,
    acc_y,
    bleu4,
    llm_score,
    match_boxes,
    match_tags,
    plain_text,
    split_grounding,
    yes_no_word,
)
from giqa.metrics.grounding import IOU_THRESHOLD
from giqa.schemas import BenchItem

PhraseBoxes = list[tuple[str, Box]]


@dataclass(slots=True)
class Evaluation:
    report: dict[str, Any]  # the DESIGN §3.4 report
    items: list[dict[str, Any]]  # one row per bench item, in bench order


@dataclass(slots=True)
class _Grounding:
    box: BoxMatch
    tag: TagMatch


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _judged(item: BenchItem) -> bool:
    """Descriptions and What/Why/How answers go to the judge; yes/no answers are matched by word."""
    return item.task == "des" or item.qtype != "yes_no"


def _same_words(a: str, b: str) -> bool:
    return a.lower().split() == b.lower().split()


def similarity_table(
    pairs: Sequence[tuple[PhraseBoxes, PhraseBoxes]], similarity: PhraseSimilarity
) -> dict[tuple[str, str], float]:
    """Similarity of every (ground-truth phrase, predicted phrase) whose boxes overlap enough to count.

    Only pairs above the IoU threshold can be recalled, so only their phrases are embedded, all in one
    call to the port. The same words (MiniLM is uncased) embed identically: cosine 1 without the encoder.
    """
    wanted: set[tuple[str, str]] = set()
    for gt, pred in pairs:
        if gt and pred:
            ious = iou_matrix(to_array(b for _, b in gt), to_array(b for _, b in pred))
            for i, j in zip(*np.nonzero(ious > IOU_THRESHOLD), strict=True):
                wanted.add((gt[i][0], pred[j][0]))
    table = {(a, b): 1.0 for a, b in wanted if _same_words(a, b)}
    rest = [pair for pair in wanted if pair not in table]
    if rest:
        left, right = sorted({a for a, _ in rest}), sorted({b for _, b in rest})
        matrix = similarity.similarity(left, right)
        li, ri = {p: k for k, p in enumerate(left)}, {p: k for k, p in enumerate(right)}
        table.update({(a, b): float(matrix[li[a], ri[b]]) for a, b in rest})
    return table


def _ground(
    bench: Sequence[BenchItem], objects: dict[str, PhraseBoxes], similarity: PhraseSimilarity
) -> dict[str, _Grounding]:
    """mIoU and Tag-Recall matching for every item with ground-truth objects."""
    grounded = [it for it in bench if it.objects]
    truth = {it.id: [(o.phrase, o.box) for o in it.objects] for it in grounded}
    sims = similarity_table([(truth[it.id], objects[it.id]) for it in grounded], similarity)
    out: dict[str, _Grounding] = {}
    for it in grounded:
        gt, pred = truth[it.id], objects[it.id]
        sim = np.array([[sims.get((g, p), 0.0) for p, _ in pred] for g, _ in gt]).reshape(len(gt), len(pred))
        out[it.id] = _Grounding(
            match_boxes([b for _, b in gt], [b for _, b in pred]), match_tags(gt, pred, sim)
        )
    return out


def _judge_all(
    bench: Sequence[BenchItem], responses: dict[str, str], judge: Judge | None, progress: bool
) -> dict[str, JudgeResult]:
    """Judge scores of the judged items that have a response; a missing or empty one is never sent."""
    if judge is None:
        return {}
    todo = [it for it in bench if _judged(it) and responses.get(it.id, "").strip()]
    requests = [
        JudgeRequest(
            "des" if it.task == "des" else "vqa",
            plain_text(it.question),
            plain_text(it.answer),
            plain_text(responses[it.id]),
        )
        for it in todo
    ]
    return dict(zip([it.id for it in todo], judge.score_many(requests, progress=progress), strict=True))


def _item_row(
    it: BenchItem,
    response: str | None,
    objects: PhraseBoxes,
    problems: list[str],
    grounding: _Grounding | None,
    judged: JudgeResult | None,
    has_judge: bool,
) -> dict[str, Any]:
    status = "missing" if response is None else ("empty" if not response.strip() else "ok")
    row: dict[str, Any] = {
        "id": it.id,
        "task": it.task,
        "qtype": it.qtype,
        "mode": it.mode,
        "status": status,
        "pred_boxes": len(objects),
        "parse_problems": problems,
    }
    if grounding is not None:
        bm, tm = grounding.box, grounding.tag
        row["gt_boxes"] = len(it.objects)
        row["ious"] = [round(v, 4) for v in bm.ious]
        row["tags_recalled"] = list(tm.recalled)
        row["tags"] = [
            {
                "phrase": o.phrase,
                "iou": round(bm.ious[k], 4),
                "recalled": tm.recalled[k],
                "matched_phrase": objects[m][0] if (m := tm.matched[k]) is not None else None,
            }
            for k, o in enumerate(it.objects)
        ]
    if it.task == "vqa" and it.qtype == "yes_no":
        expected, got = yes_no_word(it.answer), yes_no_word(response or "")
        row["yes_no"] = {"expected": expected, "got": got, "correct": got == expected}
    if has_judge and _judged(it):
        row["judge"] = {
            "score": judged.score if judged else 0,
            "cached": bool(judged and judged.cached),
            "error": judged.error if judged else f"not judged: response {status}",
        }
    row["why"] = _why(row)
    return row


def evaluate(
    bench: Sequence[BenchItem],
    predictions: PredictionSet,
    *,
    similarity: PhraseSimilarity,
    judge: Judge | None = None,
    progress: bool = False,
    grid: tuple[int, int] = (DEFAULT_N, DEFAULT_M),
) -> Evaluation:
    """Score ``predictions`` against ``bench``; ``judge=None`` leaves LLM-Score and Acc(W) null.
    ``grid`` (n, m) decodes grid-index boxes in the responses: settings ``grid_n``/``grid_m``, the grid
    the annotation pipeline and the trained model write."""
    responses = predictions.responses
    parsed = {it.id: parse_text(responses.get(it.id, ""), *grid) for it in bench}
    objects = {i: p.objects() for i, p in parsed.items()}
    problems = {i: [f"{q.reason}: {q.text}" for q in p.problems] for i, p in parsed.items()}
    grounding = _ground(bench, objects, similarity)
    judged = _judge_all(bench, responses, judge, progress)
    rows = [
        _item_row(
            it,
            responses.get(it.id),
            objects[it.id],
            problems[it.id],
            grounding.get(it.id),
            judged.get(it.id),
            bool(judge),
        )
        for it in bench
    ]

    des = [(it, r) for it, r in zip(bench, rows, strict=True) if it.task == "des"]
    yes_no = [r for it, r in zip(bench, rows, strict=True) if it.task == "vqa" and it.qtype == "yes_no"]
    wwh = [r for it, r in zip(bench, rows, strict=True) if it.task == "vqa" and it.qtype != "yes_no"]
    splits = {
        task: split_grounding(
            [grounding[it.id].box for it in bench if it.task == task and it.id in grounding],
            [grounding[it.id].tag for it in bench if it.task == task and it.id in grounding],
            [len(objects[it.id]) for it in bench if it.task == task and it.id in grounding],
        )
        for task in ("des", "vqa")
    }
    a_y = acc_y([r["yes_no"]["correct"] for r in yes_no])
    a_w = acc_w([r["judge"]["score"] for r in wwh]) if judge else None
    bleu = bleu4([responses.get(it.id) or "" for it, _ in des], [it.answer for it, _ in des]) if des else None
    report = {
        "des": {
            "miou": _round(splits["des"].miou),
            "tag_recall": _round(splits["des"].tag_recall),
            "bleu4": _round(bleu, 4),
            "llm_score": _round(llm_score([r["judge"]["score"] for _, r in des]) if judge else None, 4),
        },
        "vqa": {
            "miou": _round(splits["vqa"].miou),
            "tag_recall": _round(splits["vqa"].tag_recall),
            "acc_y": _round(a_y),
            "acc_w": _round(a_w),
            "acc_total": _round(acc_total(a_y, len(yes_no), a_w, len(wwh))),
        },
        # the judge section also names the phrase-similarity model: both decide scores
        "judge": (judge.info() if judge else {"enabled": False, "model": None, "prompt_hash": None})
        | {"phrase_similarity": similarity.name},
        "counts": {
            "bench_items": len(bench),
            "des_items": len(des),
            "vqa_items": len(bench) - len(des),
            "yes_no_items": len(yes_no),
            "wwh_items": len(wwh),
            # whole-image questions (mode none): scored by Acc(Y)/Acc(W), no boxes to match
            "whole_image_vqa_items": sum(1 for it in bench if it.task == "vqa" and it.mode in (None, "none")),
            "des_gt_boxes": splits["des"].gt_boxes,
            "vqa_gt_boxes": splits["vqa"].gt_boxes,
            "des_responses_with_boxes": splits["des"].responses_with_boxes,
            "vqa_responses_with_boxes": splits["vqa"].responses_with_boxes,
            "responses_with_parse_problems": sum(1 for r in rows if r["parse_problems"]),
            **predictions.counts(),
            "null_reasons": _null_reasons(splits, bool(judge), len(des), len(yes_no), len(wwh)),
        },
    }
    return Evaluation(report, rows)


def _why(row: dict[str, Any]) -> str:
    """One line a person can read: what the item scored and why."""
    parts = []
    if row["status"] != "ok":
        parts.append(f"response {row['status']}: scores 0")
    if "gt_boxes" in row:
        recalled = sum(row["tags_recalled"])
        parts.append(
            f"{row['pred_boxes']} predicted box(es) for {row['gt_boxes']} true; "
            f"IoUs {row['ious']}; {recalled}/{row['gt_boxes']} tags recalled"
        )
    if "yes_no" in row:
        yn = row["yes_no"]
        parts.append(f"yes/no: expected {yn['expected']}, got {yn['got']}")
    if "judge" in row:
        j = row["judge"]
        cached = " (cached)" if j["cached"] else ""
        error = f" [{j['error']}]" if j["error"] else ""
        parts.append(f"judge {j['score']}/4{cached}{error}")
    if row["parse_problems"]:
        parts.append(f"{len(row['parse_problems'])} unreadable mention(s)")
    return "; ".join(parts)


def _null_reasons(
    splits: dict[str, SplitGrounding], has_judge: bool, n_des: int, n_y: int, n_w: int
) -> dict[str, str]:
    """Why each null metric of the report is null."""
    reasons: dict[str, str] = {}
    for task in ("des", "vqa"):
        if reason := splits[task].null_reason:
            reasons[f"{task}.miou"] = reasons[f"{task}.tag_recall"] = reason
    if not n_des:
        reasons["des.bleu4"] = reasons["des.llm_score"] = "no des items"
    elif not has_judge:
        reasons["des.llm_score"] = "no judge configured (--no-judge)"
    if not n_y:
        reasons["vqa.acc_y"] = "no yes/no items"
    if not n_w:
        reasons["vqa.acc_w"] = "no what/why/how items"
    elif not has_judge:
        reasons["vqa.acc_w"] = "no judge configured (--no-judge)"
        reasons["vqa.acc_total"] = "Acc(W) is null (no judge)"
    if not (n_y or n_w):
        reasons["vqa.acc_total"] = "no vqa items"
    return reasons
