"""Stage 1 with the embedded LLM: tag precision/recall on GIQA-Synth and on hand-written human descriptions.

Two sections, one table each:
- GIQA-Synth (``--n`` scenes, ground truth from the generator): the model's raw output (free JSON, no
  checks) against the same output validated and repaired, the candidate-constrained schema over the whole
  description and per clause (raw, validated, validated + clause rules = the default), and the rules alone.
- Human (``--fixture``, default ``tests/fixtures/stage1_human.jsonl``, format in its folder's README.md):
  the default mode (raw, validated, validated + clause rules) and the rules alone, over all items and per
  split ("dev", "heldout", "blind": see the README beside the fixture).

Matching, one-to-one and greedy:
- phrase: the spans of predicted and true phrase in the description (a leading "the/a/his/her/its..."
  left off both) overlap with IoU >= 0.5, or start at the same word with one inside the other ("man" for
  "man wearing a white t-shirt": the same object with or without its modifier); a predicted phrase that is
  not in the description matches nothing;
- quality: the predicted quality words share a content word with the true ones ("grainy" ~ "too dark and
  grainy"; hedges like "slightly" do not count); effect: equal after matching.

    python bench/stage1_quality.py --n 200                      # both sections, embedded SmolLM2
    python bench/stage1_quality.py --n 50 --variants default    # the default mode only (faster)
    python bench/stage1_quality.py --n 0 --human-n 20           # human fixture only, first 20 items
    python bench/stage1_quality.py --no-llm                     # rules-only lines, no server (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from giqa.llm import LLMError, OpenAIChatClient
from giqa.pipeline import lexicon
from giqa.pipeline import tags as stage1
from giqa.pipeline.tags import find_span, stage1_requests, validate_tags

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stage1_human.jsonl"
DEFAULT = "default mode (sentences: per clause), few-shot"
PREDICTIONS: dict[str, list[dict[str, Any]]] = {}  # per variant, for --out (subsets can be re-scored)
_LEADING = {"the", "a", "an", "his", "her", "its", "their", "this", "these", "those", "my", "our", "your"}
_HEDGES = {"and", "too", "to", "a", "bit", "slightly", "little", "somewhat", "very", "quite", "rather"}

Pred = list[tuple[str, str, str]]  # (phrase, quality, effect)


@dataclass(frozen=True, slots=True)
class Item:
    description: str
    truth: Pred
    split: str = "synth"


def synth_items(n: int, seed: int) -> list[Item]:
    from giqa.synth import generate_scene

    records = [generate_scene(seed, i)[1] for i in range(n)]
    return [
        Item(r.description, [(t.phrase, t.quality, t.effect) for t in r.tags if t.effect != "no impact"])
        for r in records
    ]


def fixture_items(path: Path) -> list[Item]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        truth = [(t["phrase"], t["quality"], t["effect"]) for t in record["tags"]]
        for phrase, quality, _effect in truth:
            if find_span(record["description"], phrase) is None or quality not in record["description"]:
                raise SystemExit(f"{path.name} line {number}: gold tag {phrase!r}/{quality!r} is not a span")
        items.append(Item(record["description"], truth, record.get("split", "all")))
    return items


def locate(description: str, phrase: str) -> tuple[int, int] | None:
    """The phrase's span without a leading determiner or possessive."""
    span = find_span(description, phrase) if phrase.strip() else None
    if span is None:
        return None
    start, end = span
    first = lexicon.WORD.match(description, start)
    if first and first.group(0).lower() in _LEADING and first.end() < end:
        start = lexicon.WORD.search(description, first.end()).start()  # type: ignore[union-attr]
    return start, end


def phrase_match(a: tuple[int, int] | None, b: tuple[int, int] | None) -> float:
    if a is None or b is None:
        return 0.0
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    iou = inter / union if union else 0.0
    return max(iou, 0.5) if a[0] == b[0] else iou  # same first word: one phrase holds the other


def quality_agrees(predicted: str, truth: str) -> bool:
    return bool((set(lexicon.words(predicted)) - _HEDGES) & (set(lexicon.words(truth)) - _HEDGES))


def score(item: Item, predicted: Pred) -> dict[str, int]:
    truth = [(locate(item.description, p), q, e) for p, q, e in item.truth]
    preds = [(locate(item.description, p), q, e) for p, q, e in predicted]
    pairs = sorted(
        ((phrase_match(ps[0], ts[0]), i, j) for i, ps in enumerate(preds) for j, ts in enumerate(truth)),
        reverse=True,
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    matched = quality_ok = effect_ok = 0
    for value, i, j in pairs:
        if value < 0.5 or i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        matched += 1
        quality_ok += quality_agrees(preds[i][1], truth[j][1])
        effect_ok += preds[i][2] == truth[j][2]
    return {
        "pred": len(preds),
        "true": len(truth),
        "matched": matched,
        "quality_ok": quality_ok,
        "effect_ok": effect_ok,
    }


def raw_pairs(answer: Any) -> Pred:
    items = answer.get("tags", []) if isinstance(answer, dict) else []
    return [
        (str(t.get("phrase", "")), str(t.get("quality", "")), str(t.get("effect", "")))
        for t in items
        if isinstance(t, dict)
    ]


def _pred(result: Any) -> Pred:
    return [(t.phrase, t.quality, t.effect) for t in result.tags]


def validated(description: str, answer: Any) -> Pred:
    found = answer.get("tags") if isinstance(answer, dict) else None
    return _pred(validate_tags(description, found))


def completed(description: str, answer: Any) -> Pred | None:
    """Validated + completed by the clause rules (the default), or None on a package without them."""
    complete = getattr(stage1, "complete_from_rules", None)
    if complete is None:
        return None
    from giqa.pipeline.clauses import rule_pairs

    found = answer.get("tags") if isinstance(answer, dict) else None
    pairs = rule_pairs(description)
    result = validate_tags(description, found, pairs=pairs)
    return _pred(complete(description, result, stage1.TagRules(), pairs))


def rules_only(description: str) -> Pred:
    rule_tags = getattr(stage1, "rule_tags", None)
    if rule_tags is not None:
        return _pred(rule_tags(description))
    from giqa.pipeline.candidates import candidates  # the package before the clause rules

    guesses = [{"phrase": p, "quality": "", "effect": ""} for p in candidates(description).phrases]
    return _pred(validate_tags(description, guesses))


def run_llm(client: OpenAIChatClient, items: list[Item], mode: str, few_shot: bool) -> list[Any]:
    """One variant over all items, one request at a time (llama.cpp reuses the shared prompt prefix)."""
    answers: list[Any] = []
    for item in tqdm(items, desc=f"{mode} few_shot={few_shot}", file=sys.stderr):
        found: list[Any] = []
        try:
            for messages, schema in stage1_requests(item.description, mode=mode, few_shot=few_shot):
                answer = client.chat_json(messages, schema, max_tokens=320)
                found.extend(answer.get("tags", []) if isinstance(answer, dict) else [])
        except LLMError as exc:
            answers.append({"error": str(exc)[:200]})
            continue
        answers.append({"tags": found})
    return answers


def table_row(name: str, scores: list[dict[str, int]], seconds: float, failures: int) -> dict[str, Any]:
    total = {k: sum(s[k] for s in scores) for k in ("pred", "true", "matched", "quality_ok", "effect_ok")}
    precision = total["matched"] / total["pred"] if total["pred"] else 0.0
    recall = total["matched"] / total["true"] if total["true"] else 0.0
    matched = total["matched"]
    return {
        "variant": name,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "precision_q": total["quality_ok"] / total["pred"] if total["pred"] else 0.0,
        "recall_q": total["quality_ok"] / total["true"] if total["true"] else 0.0,
        "quality_acc": total["quality_ok"] / matched if matched else 0.0,
        "effect_acc": total["effect_ok"] / matched if matched else 0.0,
        "tags_per_desc": total["pred"] / len(scores) if scores else 0.0,
        "s_per_desc": seconds / len(scores) if scores else 0.0,
        "failed_calls": failures,
    }


def variant_rows(
    label: str,
    items: list[Item],
    answers: list[Any],
    seconds: float,
    ways: list[tuple[str, Callable[[str, Any], Pred | None]]],
    splits: bool,
    section_title: str = "",
) -> list[dict[str, Any]]:
    failures = sum("error" in a for a in answers if isinstance(a, dict))
    rows = []
    for suffix, way in ways:
        preds = [way(item.description, answer) for item, answer in zip(items, answers, strict=True)]
        if any(p is None for p in preds):
            continue  # this package has no such step
        PREDICTIONS.setdefault(f"{section_title}: {label}{suffix}", []).extend(
            {"description": item.description, "split": item.split, "pred": pred}
            for item, pred in zip(items, preds, strict=True)
        )
        groups = {"all": list(range(len(items)))}
        if splits:
            for index, item in enumerate(items):
                groups.setdefault(item.split, []).append(index)
        for group, indices in groups.items():
            name = f"{label}{suffix}" + ("" if group == "all" else f" [{group}]")
            scores = [score(items[i], preds[i]) for i in indices]  # type: ignore[arg-type]
            rows.append(table_row(name, scores, seconds * len(indices) / len(items), failures))
    return rows


def section(
    title: str, items: list[Item], client: OpenAIChatClient | None, variants: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    splits = any(item.split not in ("synth", "all") for item in items)
    rows: list[dict[str, Any]] = []
    ways: list[tuple[str, Callable[[str, Any], Pred | None]]] = [
        (": raw model output", lambda _d, a: raw_pairs(a)),
        (" + validation/repair", validated),
        (" + validation + clause rules", completed),
    ]
    for label, mode in variants if client is not None else []:
        started = time.perf_counter()
        answers = run_llm(client, items, mode, True)
        seconds = time.perf_counter() - started
        rows += variant_rows(
            label, items, answers, seconds, ways if mode == "sentences" else ways[:2], splits, title
        )
    started = time.perf_counter()
    answers = [None] * len(items)
    rule_way: list[tuple[str, Callable[[str, Any], Pred | None]]] = [("", lambda d, _a: rules_only(d))]
    rows += variant_rows(
        "rules only, no LLM", items, answers, time.perf_counter() - started, rule_way, splits, title
    )
    print(f"\n## {title}\n")
    print(
        "| variant | P | R | F1 | P (+quality) | R (+quality) | quality acc | effect acc | tags/desc "
        "| s/desc |"
    )
    print("|" + "---|" * 10)
    for row in rows:
        print(
            f"| {row['variant']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
            f"{row['precision_q']:.3f} | {row['recall_q']:.3f} | {row['quality_acc']:.3f} | "
            f"{row['effect_acc']:.3f} | {row['tags_per_desc']:.2f} | {row['s_per_desc']:.2f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="GIQA-Synth descriptions (0: no synth section)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="human fixture (JSONL)")
    parser.add_argument("--human-n", type=int, default=None, help="only the first N fixture items")
    parser.add_argument("--no-human", action="store_true", help="skip the human section")
    parser.add_argument("--no-llm", action="store_true", help="rules-only lines; no server is started")
    parser.add_argument(
        "--variants", choices=("all", "default"), default="all", help="synth: every mode or the default only"
    )
    parser.add_argument("--llm-url", default=None, help="OpenAI-compatible server (default: embedded)")
    parser.add_argument("--dialect", default="json_object")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    synth = synth_items(args.n, args.seed) if args.n > 0 else []
    human = [] if args.no_human else fixture_items(args.fixture)[: args.human_n]
    print(
        f"{len(synth)} GIQA-Synth descriptions (seed {args.seed}, {sum(len(i.truth) for i in synth)} tags); "
        f"{len(human)} human descriptions from {args.fixture.name} ({sum(len(i.truth) for i in human)} tags)"
    )
    server = None
    if not args.no_llm and not args.llm_url:
        from giqa.llm.server import EmbeddedLLMServer

        server = EmbeddedLLMServer().start()
    report: dict[str, Any] = {"n": args.n, "seed": args.seed, "human_n": len(human)}
    try:
        client = None
        if not args.no_llm:
            url = args.llm_url or (server.url if server else "")
            client = OpenAIChatClient(
                url, dialect=args.dialect, model="smollm2", timeout_s=120, max_retries=2
            )
        if synth:
            variants = [("free few-shot", "free"), ("constrained few-shot", "constrained")]
            variants = (variants if args.variants == "all" else []) + [(DEFAULT, "sentences")]
            report["synth"] = section("GIQA-Synth", synth, client, variants)
        if human:
            variants = [(DEFAULT, "sentences")]
            report["human"] = section(f"Human ({args.fixture.name})", human, client, variants)
    finally:
        if server is not None:
            server.stop()
    if args.out:
        args.out.write_text(json.dumps(report | {"predictions": PREDICTIONS}, indent=2))


if __name__ == "__main__":
    main()
