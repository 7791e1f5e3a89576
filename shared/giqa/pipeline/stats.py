"""Dataset statistics (the paper's Table 1), the box-area histogram (Fig. 6) and the run report.

Accumulators fed one record at a time, so statistics over 167k samples stream like the export does.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO, Any

import numpy as np

AREA_BINS = np.linspace(0.0, 1.0, 21)  # normalized box area in steps of 0.05


class DatasetStats:
    """Counts per split: images, samples, DES, VQA Yes/No and What/Why/How (+ Yes vs No, modes, sources)."""

    def __init__(self) -> None:
        self.images: dict[str, set[str]] = {"train": set(), "val": set()}
        self.counts: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
        self.raw_hist = np.zeros(len(AREA_BINS) - 1, dtype=np.int64)
        self.refined_hist = np.zeros(len(AREA_BINS) - 1, dtype=np.int64)

    def add_sample(
        self, split: str, image: str, task: str, qtype: str | None, mode: str, answer: str
    ) -> None:
        self.images[split].add(image)
        counts = self.counts[split]
        counts["total"] += 1
        if task == "des":
            counts["des"] += 1
            counts[f"des_{mode}"] += 1
            return
        counts["vqa_y" if qtype == "yes_no" else "vqa_w"] += 1
        counts[f"qtype_{qtype}"] += 1
        counts[f"mode_{mode}"] += 1
        if qtype == "yes_no":
            counts["answer_yes" if answer.lower().startswith("yes") else "answer_no"] += 1

    def add_areas(self, raw: list[float], refined: list[float]) -> None:
        if raw:
            self.raw_hist += np.histogram(np.clip(raw, 0, 1), bins=AREA_BINS)[0]
        if refined:
            self.refined_hist += np.histogram(np.clip(refined, 0, 1), bins=AREA_BINS)[0]

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name, splits in (("train", ("train",)), ("val", ("val",)), ("all", ("train", "val"))):
            counts: Counter[str] = Counter()
            images: set[str] = set()
            for split in splits:
                counts.update(self.counts[split])
                images |= self.images[split]
            rows.append(
                {"split": name, "images": len(images), "total": counts["total"], "des": counts["des"],
                 "vqa_y": counts["vqa_y"], "vqa_w": counts["vqa_w"], "yes": counts["answer_yes"],
                 "no": counts["answer_no"], "referring": counts["mode_referring"],
                 "grounding": counts["mode_grounding"], "des_grounded": counts["des_grounding"]}
            )  # fmt: skip
        return rows

    def markdown(self) -> str:
        lines = [
            "| Split | Image | Total | DES | VQA (Y) | VQA (W) | Yes | No | Referring | Grounding |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.table():
            lines.append(
                f"| {r['split']} | {r['images']:,} | {r['total']:,} | {r['des']:,} | {r['vqa_y']:,} | "
                f"{r['vqa_w']:,} | {r['yes']:,} | {r['no']:,} | {r['referring']:,} | {r['grounding']:,} |"
            )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table(),
            "box_area_bins": AREA_BINS.tolist(),
            "box_area_raw": self.raw_hist.tolist(),
            "box_area_refined": self.refined_hist.tolist(),
        }

    def plot_histogram(self, target: Path | IO[bytes]) -> None:
        """Fig. 6-style: the share of boxes per normalized-area bin, raw detections vs refined boxes."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        centres = (AREA_BINS[:-1] + AREA_BINS[1:]) / 2
        width = (AREA_BINS[1] - AREA_BINS[0]) * 0.4
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
        for offset, counts, label in (
            (-width / 2, self.raw_hist, "Raw"),
            (width / 2, self.refined_hist, "Ref"),
        ):
            total = counts.sum()
            share = counts / total if total else counts.astype(float)
            ax.bar(centres + offset, share, width=width, label=f"{label} ({int(total):,} boxes)")
        ax.set_xlabel("normalized box area")
        ax.set_ylabel("share of boxes")
        ax.set_title("Box area distribution: raw detections vs refined (IQA-Filter + Box-Merge)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(target, format="png")
        plt.close(fig)


class RunReport:
    """Counts per stage, drops by reason and time per stage, from audit records."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.drops: dict[str, Counter[str]] = {"stage1": Counter(), "stage3": Counter(), "vqa": Counter()}
        self.failures: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.repairs: Counter[str] = Counter()

    def add(self, record: dict[str, Any]) -> None:
        self.counts["samples"] += 1
        for stage, seconds in (record.get("timings") or {}).items():
            self.seconds[stage] += seconds
        if record.get("status") != "ok":
            failure = record.get("failure") or {}
            self.counts["failed"] += 1
            self.failures[f"{failure.get('stage', '?')}: {failure.get('reason', '?')}"[:120]] += 1
            return
        self.counts["ok"] += 1
        stage1 = record.get("stage1") or {}
        self.counts["stage1_tags"] += len(stage1.get("tags", []))
        self.drops["stage1"].update(d["reason"] for d in stage1.get("drops", []))
        self.repairs.update(r["how"].split("(")[0] for r in stage1.get("repairs", []))
        for refined in record.get("refined", []):
            self.counts["stage2_boxes"] += len(refined.get("raw", []))
            self.counts["stage3_boxes"] += len(refined.get("merged", []))
            self.counts["stage3_grounded_tags"] += bool(refined.get("merged"))
            if refined.get("dropped_reason"):
                self.drops["stage3"][refined["dropped_reason"]] += 1
        self.counts["des_grounded"] += bool((record.get("des") or {}).get("objects"))
        vqa = record.get("vqa") or {}
        self.drops["vqa"].update(d["reason"] for d in vqa.get("drops", []))
        items = vqa.get("items", [])
        self.counts["vqa_items"] += len(items)
        self.counts["vqa_from_llm"] += sum(i.get("source") == "llm" for i in items)
        self.counts["vqa_from_template"] += sum(i.get("source") == "template" for i in items)
        self.counts["vqa_answers_corrected"] += sum(bool(i.get("corrected")) for i in items)
        if record.get("vqa_failure"):
            self.failures[f"vqa (templates used): {record['vqa_failure']}"[:120]] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "drops": {stage: dict(c.most_common()) for stage, c in self.drops.items()},
            "repairs": dict(self.repairs.most_common()),
            "failures": dict(self.failures.most_common()),
            "seconds_per_stage": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def markdown(self) -> str:
        lines = ["## Run report", "", "| count | value |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in self.counts.items()]
        lines += ["", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in self.seconds.items()]
        for stage, counter in self.drops.items():
            if counter:
                lines += ["", f"Drops in {stage}: " + ", ".join(f"{r} {n}" for r, n in counter.most_common())]
        if self.repairs:
            lines += ["", "Stage-1 repairs: " + ", ".join(f"{r} {n}" for r, n in self.repairs.most_common())]
        if self.failures:
            lines += ["", "Failures:"] + [f"- {r}: {n}" for r, n in self.failures.most_common()]
        return "\n".join(lines) + "\n"
