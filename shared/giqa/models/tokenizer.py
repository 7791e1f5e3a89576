"""An offline word-level tokenizer for tiny LLaVA models (no hub, nothing downloaded).

Pieces are GPT-2-like: a word, a number or one punctuation character, each optionally with its leading
space, and bare whitespace characters. Decoding concatenates the pieces, so a grounded text survives a
round trip exactly: ``The [red circle](<12, 34>) is blurry.`` decodes as written (no ``[ red circle ]``).
Every grid index 0..399 (with and without a leading space), every punctuation character and two-digit
decimal fractions ("05") are single tokens; ``Yes`` and ``No`` are single tokens for yes/no judges.
Words outside the vocabulary become ``<unk>``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

IMAGE_TOKEN = "<image>"
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, IMAGE_TOKEN)
GRID_CELLS = 400  # the default 20 x 20 grid

# One piece: an optional space then a word, a number or one other visible character; or one whitespace.
PIECE_PATTERN = r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|\s"
_PIECE = re.compile(PIECE_PATTERN)

# Words of quality descriptions, questions and answers beside those of the DES question pool.
_BASE_WORDS = """
a an the this that these those it its is are was were be been being has have had do does did not no yes
and or but so because as of in on at to from by with without for into over under above below near between
left right top bottom middle center centre upper lower front back side corner edge background foreground
image picture photo photograph region area part object objects key main whole overall scene view shot
quality good poor bad fair excellent great high low average acceptable decent fine terrible
sharp sharpness clear clarity blurry blurred blur blurriness focus focused unfocused out soft crisp
noise noisy grain grainy clean smooth detail details detailed texture textures fidelity
exposure exposed overexposed underexposed bright brightness dark darkness dim light lighting lit shadow
shadows highlight highlights contrast washed faded vivid saturated saturation dull colour color colours
colors colorful tone tones hazy haze glare
compression compressed jpeg artifact artifacts artefacts blocking blocky pixelated ringing motion shaky
distortion distortions distorted degradation degraded degrades damage affects affect affected affecting
lowers raises reduces improves hurts helps makes looks look seems appears visible hard easy see seen
what which why how where who whose when much many more most less least very quite slightly somewhat rather
too also only all some each every both one two three several other another there here they their them
red green blue yellow orange purple pink brown black white gray grey cyan magenta
circle circles square squares triangle triangles rectangle rectangles star stars ellipse disk shape shapes
person people man woman child face faces hand hands eye eyes hair body head dog cat bird car cars tree
trees sky cloud clouds building buildings road street water grass flower flowers table chair window door
wall floor text sign plate food cup bottle book phone screen light lamp candle candles animal leaf leaves
mountain sea beach field house boat train bus bike bicycle
large small big tiny little medium long short wide narrow round flat thin thick
USER ASSISTANT Question Answer Describe Assess Is Are Does Do What Which Why How Where The This That
There It Yes No Not Overall However Its
"""


def piece_split(text: str) -> list[str]:
    """The pieces of ``text`` in order; ``"".join(piece_split(t)) == t`` for ASCII text."""
    return _PIECE.findall(text)


def vocabulary(corpus: Iterable[str] = ()) -> list[str]:
    """Special tokens first (ids 0..4), then punctuation, numbers, whitespace and words, without repeats."""
    from giqa.questions import des_questions

    tokens: list[str] = list(SPECIAL_TOKENS)
    tokens += [" ", "\n", "\t", "\r"]
    for ch in string.punctuation:
        tokens += [ch, " " + ch]
    numbers = [str(i) for i in range(GRID_CELLS)] + [f"{i:02d}" for i in range(10)]
    for num in numbers:
        tokens += [num, " " + num]
    words = set(_BASE_WORDS.split())
    for text in [*des_questions("grid"), *des_questions("norm"), *corpus]:
        words.update(p.strip() for p in piece_split(text) if p.strip().isalpha())
    for word in sorted(words):
        for form in dict.fromkeys((word, word.lower(), word.capitalize())):  # a set's order varies by process
            tokens += [form, " " + form]
    seen: set[str] = set()
    return [t for t in tokens if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def build_tokenizer(corpus: Iterable[str] = (), *, model_max_length: int = 2048) -> Any:
    """A ``PreTrainedTokenizerFast`` over :func:`vocabulary`, ``<image>`` an added special token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary(corpus))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=model_max_length,
        padding_side="left",  # generation pads on the left; training code may switch per batch
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer
