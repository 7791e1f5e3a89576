"""The GIQA-Bench metrics (DESIGN §3.4): pure functions over parsed items; no network, no judge calls.

- :mod:`giqa.metrics.text`: BLEU@4 (coordinates stripped) and the yes/no word of Acc(Y);
- :mod:`giqa.metrics.grounding`: mIoU and Tag-Recall with one-to-one Hungarian matching, and their null rules;
- :mod:`giqa.metrics.scores`: LLM-Score, Acc(Y), Acc(W), Acc(Total) from per-item results;
- :mod:`giqa.metrics.similarity`: the phrase-similarity port and its all-MiniLM-L6-v2 implementation.
"""

from giqa.metrics.grounding import (
    IOU_THRESHOLD,
    SIMILARITY_THRESHOLD,
    BoxMatch,
    SplitGrounding,
    TagMatch,
    match_boxes,
    match_tags,
    split_grounding,
)
from giqa.metrics.scores import acc_total, acc_w, acc_y, llm_score
from giqa.metrics.similarity import MiniLMSimilarity, PhraseSimilarity
from giqa.metrics.text import bleu4, plain_text, yes_no_correct, yes_no_word

__all__ = [
    "IOU_THRESHOLD",
    "SIMILARITY_THRESHOLD",
    "BoxMatch",
    "MiniLMSimilarity",
    "PhraseSimilarity",
    "SplitGrounding",
    "TagMatch",
    "acc_total",
    "acc_w",
    "acc_y",
    "bleu4",
    "llm_score",
    "match_boxes",
    "match_tags",
    "plain_text",
    "split_grounding",
    "yes_no_correct",
    "yes_no_word",
]
