"""Stage 3 on GIQA-Synth's hard case ("two of a kind, only one degraded", paper Fig. 3 "hands").

Each hard-case scene has two look-alike objects with the same phrase; only one is degraded and the description
names its quality (Tq). The "detector" returns exactly the two true boxes (isolating Stage 3), the classical
judge asks "Is the image quality <Tq>?" of each crop, and the IQA-Filter keeps p_yes >= 0.5.
Success: the degraded twin kept AND the clean twin dropped. Baseline in the same run: no filter (both kept).

    .venv/bin/python bench/stage3_hard_case.py --scenes 200 --seed 0
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from tqdm import tqdm

from giqa.backends.classical import ClassicalJudge
from giqa.pipeline import RefineConfig, refine_tag
from giqa.ports import Detection
from giqa.schemas import Tag
from giqa.synth import SynthConfig, generate_scene


def hard_case_outcome(image, record, judge, config: RefineConfig) -> tuple[str, dict]:
    """ "ok", "clean_kept", "degraded_dropped" or "both_wrong" for one hard-case scene, plus details."""
    bad = next(o for o in record.objects if o.role == "twin_degraded")
    good = next(o for o in record.objects if o.role == "twin_clean")
    tag = Tag(phrase=bad.phrase, quality=bad.quality or "degraded", effect="negative")
    from giqa.boxes import as_box

    bad_box, good_box = as_box(bad.box), as_box(good.box)
    refined = refine_tag(image, tag, [Detection(bad_box, 1.0), Detection(good_box, 1.0)], judge, config)
    kept_bad, kept_good = bad_box in refined.kept, good_box in refined.kept
    outcome = (
        "ok"
        if kept_bad and not kept_good
        else "clean_kept"
        if kept_bad
        else "degraded_dropped"
        if not kept_good
        else "both_wrong"
    )
    detail = {
        "scene": record.id,
        "quality": tag.quality,
        "kinds": [d.kind for d in bad.degradations],
        "global": [d.kind for d in record.global_degradations],
        "p_degraded": refined.judgements[0].p_yes if refined.judgements[0] else None,
        "p_clean": refined.judgements[1].p_yes if refined.judgements[1] else None,
    }
    return outcome, detail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=200, help="hard-case scenes to evaluate")
    parser.add_argument("--seed", type=int, default=0, help="synth seed (calibration used 7000)")
    parser.add_argument("--show-failures", type=int, default=10)
    args = parser.parse_args()

    config = SynthConfig(p_hard_case=1.0)
    judge = ClassicalJudge()
    refine_config = RefineConfig()
    outcomes: Counter[str] = Counter()
    per_kind: dict[str, Counter[str]] = {}
    failures = []
    start = time.perf_counter()
    index = 0
    with tqdm(total=args.scenes, desc="hard-case scenes") as bar:
        while sum(outcomes.values()) < args.scenes:
            image, record = generate_scene(args.seed, index, config)
            index += 1
            if not record.hard_case:
                continue
            outcome, detail = hard_case_outcome(image, record, judge, refine_config)
            outcomes[outcome] += 1
            for kind in detail["kinds"]:
                per_kind.setdefault(kind, Counter())[outcome] += 1
            if outcome != "ok":
                failures.append(detail)
            bar.update(1)
    elapsed = time.perf_counter() - start
    total = sum(outcomes.values())
    ms = 1000 * elapsed / total
    print(f"hard-case scenes: {total} (seed {args.seed}), {elapsed:.1f} s, {ms:.1f} ms/scene")
    print(f"IQA-Filter (classical judge): degraded kept AND clean dropped = {outcomes['ok'] / total:.3f}")
    print(f"  outcomes: {dict(outcomes)}")
    print("baseline (no filter, both boxes kept): rate = 0.000")
    print("per degradation kind of the degraded twin:")
    for kind, counts in sorted(per_kind.items()):
        n = sum(counts.values())
        print(f"  {kind:13s} n={n:3d} ok={counts['ok'] / n:.3f}")
    for detail in failures[: args.show_failures]:
        print(f"  failure: {detail}")


if __name__ == "__main__":
    main()
