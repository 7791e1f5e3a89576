"""Description quality and yes/no accuracy (DESIGN §3.4): BLEU@4 and Acc(Y).

BLEU@4 compares texts with their coordinates stripped (``[phrase](<a, b>)`` becomes ``phrase``) on both
sides, so grounding is not double-counted and the box form (grid or normalized) does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import sacrebleu

from giqa.grounded_text import normalize_whitespace, strip_coordinates

YesNo = Literal["yes", "no"]

# "Standalone" = not part of a longer word: "no" in "not", "none", "know" or "no_entry" does not count.
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def plain_text(text: str) -> str:
    """A grounded text as the words a reader sees: coordinates stripped, whitespace collapsed."""
    return normalize_whitespace(strip_coordinates(text))


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float | None:
    """Corpus BLEU-4 (sacrebleu defaults: 13a tokenization, case-sensitive, exp smoothing), 0–100.

    Coordinates are stripped from both sides first. ``None`` when there is no pair to score.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        return None
    hyps = [plain_text(h) for h in hypotheses]
    refs = [plain_text(r) for r in references]
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def yes_no_word(text: str) -> YesNo | None:
    """The first standalone "yes" or "no" of a text, lower-cased; ``None`` when there is none.

    "Yes, but no..." is "yes"; "Not really" has none; "NO." is "no".
    """
    if not isinstance(text, str):
        return None
    match = _YES_NO.search(text)
    return match.group(1).lower() if match else None  # type: ignore[return-value]


def yes_no_correct(response: str, answer: str) -> bool:
    """Acc(Y) for one item: the response's first yes/no word equals the answer's; no word is wrong."""
    expected = yes_no_word(answer)
    if expected is None:
        raise ValueError(f"a yes/no answer must contain 'yes' or 'no', got {answer!r}")
    return yes_no_word(response) == expected
