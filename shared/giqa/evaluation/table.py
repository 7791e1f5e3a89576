"""The printed report: one row per report in the paper's Table 5 layout, N/A for null metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (section, key, header, format): mIoU/Tag-Recall/Acc as 0-1 with 4 decimals, BLEU@4/LLM-Score 0-100 with 2.
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("des", "miou", "mIoU", "{:.4f}"),
    ("des", "tag_recall", "Tag-Recall", "{:.4f}"),
    ("des", "bleu4", "BLEU@4", "{:.2f}"),
    ("des", "llm_score", "LLM-Score", "{:.2f}"),
    ("vqa", "miou", "mIoU", "{:.4f}"),
    ("vqa", "tag_recall", "Tag-Recall", "{:.4f}"),
    ("vqa", "acc_y", "Acc (Y)", "{:.4f}"),
    ("vqa", "acc_w", "Acc (W)", "{:.4f}"),
    ("vqa", "acc_total", "Acc (Total)", "{:.4f}"),
)
NA = "N/A"


def cell(report: dict[str, Any], section: str, key: str, fmt: str) -> str:
    value = report.get(section, {}).get(key)
    return NA if value is None else fmt.format(value)


def format_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A plain-text table: a group header (GIQA-DES | GIQA-VQA), the metric header, one line per report."""
    name_w = max([len("Method"), *(len(name) for name, _ in rows)])
    widths = [max(len(header), 8) for _, _, header, _ in COLUMNS]
    body = [[cell(rep, s, k, f) for s, k, _, f in COLUMNS] for _, rep in rows]
    for line in body:
        widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]
    des_w = sum(widths[:4]) + 3 * 2
    vqa_w = sum(widths[4:]) + 4 * 2

    def join(cells: Sequence[str]) -> str:
        left = "  ".join(c.rjust(w) for c, w in zip(cells[:4], widths[:4], strict=True))
        right = "  ".join(c.rjust(w) for c, w in zip(cells[4:], widths[4:], strict=True))
        return f"{left} | {right}"

    lines = [
        f"{'':{name_w}} | {'GIQA-DES'.center(des_w)} | {'GIQA-VQA'.center(vqa_w)}",
        f"{'Method':{name_w}} | " + join([h for _, _, h, _ in COLUMNS]),
        "-" * (name_w + des_w + vqa_w + 6),
    ]
    lines += [f"{name:{name_w}} | " + join(cells) for (name, _), cells in zip(rows, body, strict=True)]
    return "\n".join(lines)


def format_summary(report: dict[str, Any]) -> str:
    """The lines under the table: judge, defects of the prediction file, why a metric is N/A."""
    counts, judge = report.get("counts", {}), report.get("judge", {})
    out = []
    if judge.get("enabled"):
        out.append(
            f"judge: {judge.get('model')} prompt {judge.get('prompt_hash')} "
            f"({judge.get('calls')} calls, {judge.get('cache_hits')} cached, {judge.get('failures')} failed)"
        )
    else:
        out.append("judge: none (LLM-Score and Acc (W) are N/A)")
    out.append(
        f"items: {counts.get('bench_items')} ({counts.get('des_items')} DES, "
        f"{counts.get('yes_no_items')} yes/no, "
        f"{counts.get('wwh_items')} what/why/how"
        + (f", {n} whole-image VQA" if (n := counts.get("whole_image_vqa_items")) else "")
        + f"); predictions used {counts.get('predictions_used')}"
    )
    defects = [
        (counts.get("missing_predictions"), "missing (score 0)"),
        (counts.get("empty_responses"), "empty responses"),
        (counts.get("duplicate_ids"), "duplicate ids (first kept)"),
        (counts.get("unknown_ids"), "unknown ids (ignored)"),
        (counts.get("invalid_lines"), "invalid lines (ignored)"),
    ]
    found = [f"{n} {label}" for n, label in defects if n]
    if found:
        out.append("prediction file: " + ", ".join(found))
        if counts.get("missing_id_list"):
            ids = counts["missing_id_list"]
            out.append(
                "missing ids: " + ", ".join(ids[:20]) + (f" ... (+{len(ids) - 20})" if len(ids) > 20 else "")
            )
    for metric, reason in counts.get("null_reasons", {}).items():
        out.append(f"N/A {metric}: {reason}")
    return "\n".join(out)
