"""Scoring a prediction file against a bench: the report of DESIGN §3.4 and the per-item details.

``evaluate`` is the one entry point: it parses every response once, computes the per-item evidence (matched
IoUs, recalled tags, the yes/no word, judge scores), then the split-level metrics with their null rules. The
report has exactly the keys of DESIGN §3.4; ``items`` explains each item's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from giqa.boxes import iou_matrix, to_array
from giqa.evaluation.io import PredictionSet
from giqa.evaluation.judge import Judge, JudgeRequest
from giqa.grounded_text import parse_text
from giqa.metrics import (
    BoxMatch,
    PhraseSimilarity,
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

DES_KEYS = ("miou", "tag_recall", "bleu4", "llm_score")
VQA_KEYS = ("miou", "tag_recall", "acc_y", "acc_w", "acc_total")


@dataclass(slots=True)
class Evaluation:
    report: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _similarity_table(
    pairs: Sequence[tuple[list[tuple[str, Any]], list[tuple[str, Any]]]], similarity: PhraseSimilarity
) -> dict[tuple[str, str], float]:
    """Similarity of every (ground-truth phrase, predicted phrase) pair whose boxes could match.

    Only pairs with IoU above the threshold can be recalled, so only their phrases are embedded, in one
    call to the port for the whole bench.
    """
    wanted: set[tuple[str, str]] = set()
    for gt, pred in pairs:
        if not gt or not pred:
            continue
        ious = iou_matrix(to_array(b for _, b in gt), to_array(b for _, b in pred))
        for i, j in zip(*np.nonzero(ious > IOU_THRESHOLD), strict=True):
            wanted.add((gt[i][0], pred[j][0]))
    # The same words (MiniLM is uncased) embed identically: cosine 1 without running the encoder.
    table = {(a, b): 1.0 for a, b in wanted if _same_words(a, b)}
    rest = [pair for pair in wanted if pair not in table]
    if rest:
        left = sorted({a for a, _ in rest})
        right = sorted({b for _, b in rest})
        matrix = similarity.similarity(left, right)
        li = {p: k for k, p in enumerate(left)}
        ri = {p: k for k, p in enumerate(right)}
        table.update({(a, b): float(matrix[li[a], ri[b]]) for a, b in rest})
    return table


def _same_words(a: str, b: str) -> bool:
    return a.lower().split() == b.lower().split()


def evaluate(
    bench: Sequence[BenchItem],
    predictions: PredictionSet,
    *,
    similarity: PhraseSimilarity,
    judge: Judge | None = None,
    progress: bool = False,
) -> Evaluation:
    """Score ``predictions`` against ``bench``; ``judge=None`` leaves LLM-Score and Acc(W) null."""
    details: list[dict[str, Any]] = []
    parsed: dict[str, tuple[list[tuple[str, Any]], list[str]]] = {}
    for item in bench:
        response = predictions.responses.get(item.id, "")
        result = parse_text(response)
        parsed[item.id] = (result.objects(), [f"{p.reason}: {p.text}" for p in result.problems])

    grounded = [it for it in bench if it.objects]
    gt_pairs = {it.id: [(o.phrase, o.box) for o in it.objects] for it in grounded}
    sims = _similarity_table([(gt_pairs[it.id], parsed[it.id][0]) for it in grounded], similarity)

    box_matches: dict[str, BoxMatch] = {}
    tag_matches: dict[str, TagMatch] = {}
    for it in grounded:
        gt, pred = gt_pairs[it.id], parsed[it.id][0]
        box_matches[it.id] = match_boxes([b for _, b in gt], [b for _, b in pred])
        sim = np.array([[sims.get((g, p), 0.0) for p, _ in pred] for g, _ in gt]).reshape(len(gt), len(pred))
        tag_matches[it.id] = match_tags(gt, pred, sim)

    # ------------------------------------------------------------------ judge requests, in bench order
    requests: list[tuple[str, JudgeRequest]] = []
    if judge is not None:
        for it in bench:
            response = predictions.responses.get(it.id, "")
            if not response.strip() or not _judged(it):
                continue  # a missing or empty response scores 0 without asking anyone
            kind = "des" if it.task == "des" else "vqa"
            requests.append(
                (
                    it.id,
                    JudgeRequest(kind, plain_text(it.question), plain_text(it.answer), plain_text(response)),
                )
            )
    judged = dict(
        zip(
            [i for i, _ in requests],
            judge.score_many([r for _, r in requests], progress=progress) if judge else [],
            strict=True,
        )
    )

    # ------------------------------------------------------------------ per item
    des_hyps, des_refs, des_judge, yes_no, w_judge = [], [], [], [], []
    for it in bench:
        response = predictions.responses.get(it.id)
        status = "missing" if response is None else ("empty" if not response.strip() else "ok")
        text = response or ""
        objects, problems = parsed[it.id]
        row: dict[str, Any] = {
            "id": it.id,
            "task": it.task,
            "qtype": it.qtype,
            "mode": it.mode,
            "status": status,
            "pred_boxes": len(objects),
            "parse_problems": problems,
        }
        if it.objects:
            bm, tm = box_matches[it.id], tag_matches[it.id]
            row["gt_boxes"] = len(it.objects)
            row["ious"] = [round(v, 4) for v in bm.ious]
            row["tags_recalled"] = list(tm.recalled)
            row["tags"] = [
                {
                    "phrase": o.phrase,
                    "iou": round(bm.ious[k], 4),
                    "recalled": tm.recalled[k],
                    "matched_phrase": objects[tm.matched[k]][0] if tm.matched[k] is not None else None,
                }
                for k, o in enumerate(it.objects)
            ]
        if it.task == "des":
            des_hyps.append(text)
            des_refs.append(it.answer)
        elif it.qtype == "yes_no":
            expected, got = yes_no_word(it.answer), yes_no_word(text)
            yes_no.append(got == expected)
            row["yes_no"] = {"expected": expected, "got": got, "correct": got == expected}
        if judge is not None and _judged(it):
            res = judged.get(it.id)
            score = res.score if res else 0
            (des_judge if it.task == "des" else w_judge).append(score)
            row["judge"] = {
                "score": score,
                "cached": bool(res and res.cached),
                "error": res.error if res else f"not judged: response {status}",
            }
        row["why"] = _why(row)
        details.append(row)

    # ------------------------------------------------------------------ split level
    des_items = [it for it in bench if it.task == "des"]
    yn_items = [it for it in bench if it.task == "vqa" and it.qtype == "yes_no"]
    w_items = [it for it in bench if it.task == "vqa" and it.qtype != "yes_no"]
    splits = {}
    for task in ("des", "vqa"):
        ids = [it.id for it in grounded if it.task == task]
        splits[task] = split_grounding(
            [box_matches[i] for i in ids], [tag_matches[i] for i in ids], [len(parsed[i][0]) for i in ids]
        )
    a_y, a_w = acc_y(yes_no), acc_w(w_judge) if judge else None
    report = {
        "des": {
            "miou": _round(splits["des"].miou),
            "tag_recall": _round(splits["des"].tag_recall),
            "bleu4": _round(bleu4(des_hyps, des_refs) if des_items else None, 4),
            "llm_score": _round(llm_score(des_judge) if judge else None, 4),
        },
        "vqa": {
            "miou": _round(splits["vqa"].miou),
            "tag_recall": _round(splits["vqa"].tag_recall),
            "acc_y": _round(a_y),
            "acc_w": _round(a_w),
            "acc_total": _round(acc_total(a_y, len(yn_items), a_w, len(w_items))),
        },
        "judge": (judge.info() if judge else {"enabled": False, "model": None, "prompt_hash": None})
        | {"phrase_similarity": similarity.name},
        "counts": {
            "bench_items": len(bench),
            "des_items": len(des_items),
            "vqa_items": len(bench) - len(des_items),
            "yes_no_items": len(yn_items),
            "wwh_items": len(w_items),
            "des_gt_boxes": splits["des"].gt_boxes,
            "vqa_gt_boxes": splits["vqa"].gt_boxes,
            "des_responses_with_boxes": splits["des"].responses_with_boxes,
            "vqa_responses_with_boxes": splits["vqa"].responses_with_boxes,
            "responses_with_parse_problems": sum(1 for r in details if r["parse_problems"]),
            **predictions.counts(),
            "null_reasons": _null_reasons(splits, judge is not None, des_items, yn_items, w_items),
        },
    }
    return Evaluation(report, details)


def _judged(item: BenchItem) -> bool:
    return item.task == "des" or item.qtype != "yes_no"


def _why(row: dict[str, Any]) -> str:
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
        parts.append(
            f"judge {j['score']}/4"
            + (" (cached)" if j["cached"] else "")
            + (f" [{j['error']}]" if j["error"] else "")
        )
    if row["parse_problems"]:
        parts.append(f"{len(row['parse_problems'])} unreadable mention(s)")
    return "; ".join(parts)


def _null_reasons(splits: dict[str, Any], has_judge: bool, des: list, yn: list, w: list) -> dict[str, str]:
    reasons: dict[str, str] = {}
    for task in ("des", "vqa"):
        if splits[task].null_reason:
            reasons[f"{task}.miou"] = reasons[f"{task}.tag_recall"] = splits[task].null_reason
    if not des:
        reasons["des.bleu4"] = "no des items"
    if not has_judge:
        reasons["des.llm_score"] = reasons["vqa.acc_w"] = "no judge configured (--no-judge)"
    elif not des:
        reasons["des.llm_score"] = "no des items"
    if has_judge and not w:
        reasons["vqa.acc_w"] = "no what/why/how items"
    if not yn:
        reasons["vqa.acc_y"] = "no yes/no items"
    if (yn or w) and not has_judge and w:
        reasons["vqa.acc_total"] = "Acc(W) is null"
    elif not (yn or w):
        reasons["vqa.acc_total"] = "no vqa items"
    return reasons
