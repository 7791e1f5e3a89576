"""Clauses of a description and the rule reading of Stage 1: which object each quality phrase is about.

Human descriptions pack several statements into one sentence ("The red circle is blurry, the blue square is
sharp", "the face is in focus while the hair is soft", "the cup, the spoon and the saucer are all sharp").
A sentence is cut into segments at commas, semicolons, colons, dashes and clause words ("while", "but",
"whereas", "although", "which", ...; "and"/"or" only when a verb follows, so "dark and noisy" stays whole).
Each segment's subject phrases (noun chunks before its verb, not after a preposition) take the quality
phrase that follows them; then segments are linked: list items wait for the predicate that names them all,
a predicate without a subject ("..., overexposed") goes to the subject before it, a relative clause
("..., which is noisy") to the last noun before it, and "no noise in the shadows" tags the shadows.
Pure rules, no parser (decided: the embedded 135M model cannot be relied on for this, and a parser would be
a new dependency); the LLM's tags are checked against and completed by this reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from giqa.pipeline import lexicon

TOKEN = re.compile(r"[\w][\w'-]*|[^\w\s]")
SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
STARTERS = frozenset(
    {"the", "a", "an", "his", "her", "its", "their", "this", "these", "those", "some", "my", "our", "your"}
)
VERBS = frozenset(
    """
    is are was were be been being looks look looked appears appear seems seem remains remain stays stay
    has have had shows show showed contains contain lacks lack becomes become gets get got turns turn
    suffers suffer affects affect hurts hurt create creates makes make making loses lose drops drop r
    isn't aren't wasn't weren't doesn't don't it's there's that's here's
    """.split()
)
STOP = VERBS | frozenset(
    """
    which that who while but and or because although though so as rendered can could would will should
    does do did not also very quite rather slightly somewhat noticeably a an the bit lot reduces reduce too
    where whereas however yet since especially only just even there it they he she we you i them him
    no nothing none
    """.split()
)
PREPOSITIONS = frozenset(
    {"in", "on", "at", "with", "behind", "near", "of", "under", "over", "beside", "next", "above", "below",
     "across", "along", "around", "against", "inside", "outside", "between", "wearing", "holding", "from",
     "through", "into", "onto", "within", "beneath", "underneath", "by", "toward", "towards", "like",
     # participles that attach a modifier the same way ("the pedestrians crossing the road")
     "sitting", "standing", "walking", "running", "crossing", "lying", "hanging", "carrying", "playing",
     "riding", "parked", "covered", "facing", "leaning", "flying", "swimming"}
)  # fmt: skip
# A chunk of only these names a place, not an object ("the bottom left", "the centre").
POSITION = frozenset(
    {"left", "right", "top", "bottom", "centre", "center", "middle", "corner", "side", "upper", "lower",
     "edge", "edges", "part", "half", "area"}
)  # fmt: skip
# A prepositional tail of only these adds no object to a phrase ("red star on the right").
_TAIL_POSITION = POSITION | {"foreground", "background", "distance", "front", "back", "the", "a", "far"}
_CLAUSE_WORDS = frozenset(
    {"while", "whereas", "but", "however", "although", "though", "yet", "because", "so"}
)
_RELATIVE = frozenset({"which", "who", "where"})
_LIST_WORDS = frozenset({"and", "or"})
_PUNCT = frozenset(",;:()[]—–-")  # noqa: RUF001 (dashes are clause marks in human text)
_LEAD = frozenset({"especially", "only", "also", "then", "even", "just", "plus", "except", "and", "or"})


@dataclass(frozen=True, slots=True)
class Chunk:
    """A noun chunk: ``start:end`` the bare form ("red star"), ``long_end`` with its modifier ("bird on the
    branch"), ``attr`` a quality phrase right before it ("the blurry car")."""

    start: int
    end: int
    long_end: int
    after_preposition: bool
    before_verb: bool
    attr: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    start: int
    end: int
    joined_by: str  # the mark or word before it: "", ",", ";", "and", "while", "which", ...
    chunks: tuple[Chunk, ...]
    qualities: tuple[tuple[int, int], ...]  # maximal quality phrases, in text order
    has_verb: bool

    @property
    def subjects(self) -> list[Chunk]:
        return [c for c in self.chunks if not c.after_preposition and c.before_verb]


@dataclass(frozen=True, slots=True)
class RulePair:
    """One object with what its clause says about it: spans into the description."""

    phrase: tuple[int, int]
    quality: tuple[int, int]
    clause: tuple[int, int]  # the text both come from (the unit one Stage-1 request is about)
    head: tuple[int, int]  # the bare noun chunk inside ``phrase`` ("bird" of "bird on the branch")


def sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in SENTENCE.finditer(text) if m.group(0).strip()]


def _tokens(text: str, start: int, end: int) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start() + start, m.end() + start) for m in TOKEN.finditer(text[start:end])]


def _verb_follows(tokens: list[tuple[str, int, int]], index: int) -> bool:
    """Whether a verb comes before the next punctuation mark: "and" then starts a clause of its own."""
    for word, _s, _e in tokens[index + 1 :]:
        if word in _PUNCT or word.lower() in _CLAUSE_WORDS:
            return False
        if word.lower() in VERBS:
            return True
    return False


def _boundaries(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """(segment start, segment end, what joined it) for one sentence."""
    tokens = _tokens(text, start, end)
    out: list[tuple[int, int, str]] = []
    seg_start, joined = start, ""
    for index, (word, s, e) in enumerate(tokens):
        low = word.lower()
        cut = (
            word in _PUNCT
            or low in _CLAUSE_WORDS
            or low in _RELATIVE
            or (low == "that" and index + 1 < len(tokens) and tokens[index + 1][0].lower() in VERBS)
            or (low in _LIST_WORDS and _verb_follows(tokens, index))
        )
        if not cut:
            continue
        out.append((seg_start, s, joined))
        seg_start, joined = e, (low if low.isalpha() else word)
    out.append((seg_start, end, joined))
    return [(s, e, j) for s, e, j in out if text[s:e].strip(" .!?")]


def _chunks(text: str, start: int, end: int, quality_at: dict[int, int], max_words: int) -> list[Chunk]:
    """Noun chunks of one segment: after a determiner, or the segment's first word ("Sky is noisy")."""
    tokens = _tokens(text, start, end)
    first_verb = next((t[1] for t in tokens if t[0].lower() in VERBS), end)
    lead = 0
    while lead < len(tokens) and tokens[lead][0].lower() in _LEAD:
        lead += 1
    found: list[Chunk] = []
    index = 0
    while index < len(tokens):
        origin, low = index, tokens[index][0].lower()
        index += 1
        at = origin + 1 if low in STARTERS else origin if origin == lead and not low.endswith("ly") else -1
        if at < 0 or at >= len(tokens):
            continue
        attr = None
        if tokens[at][1] in quality_at:  # "the blurry car": the quality words are not part of the name
            attr = (tokens[at][1], quality_at[tokens[at][1]])
            while at < len(tokens) and tokens[at][1] < attr[1]:
                at += 1
        raw: list[tuple[str, int, int]] = []
        for token in tokens[at:]:
            word = token[0].lower()
            if not token[0][0].isalnum() or word in STOP or word in STARTERS or token[1] in quality_at:
                break
            raw.append(token)
            if len(raw) >= max_words:
                break
        chunk = list(raw)
        cut = next((k for k, t in enumerate(chunk) if k > 0 and t[0].lower() in PREPOSITIONS), None)
        chunk = chunk[:cut] if cut is not None else chunk
        while chunk and chunk[-1][0].lower() in PREPOSITIONS:
            chunk.pop()
        if not chunk:
            continue
        # The long form runs on through prepositional modifiers up to the verb or the segment's end.
        longer = list(raw)
        for token in tokens[at + len(raw) :]:
            word = token[0].lower()
            if (
                not token[0][0].isalnum()
                or (word in STOP and word not in STARTERS)
                or word in _RELATIVE
                or word in _LIST_WORDS
                or token[1] in quality_at
                or len(longer) >= max_words
            ):
                break
            longer.append(token)
        while longer and longer[-1][0].lower() in PREPOSITIONS | STARTERS:
            longer.pop()
        tail = lexicon.words(text[chunk[-1][2] : longer[-1][2]]) if longer else []
        useful_tail = any(w not in _TAIL_POSITION and w not in PREPOSITIONS for w in tail)
        before = tokens[origin - 1][0].lower() if origin >= 1 else ""
        found.append(
            Chunk(
                start=chunk[0][1],
                end=chunk[-1][2],
                long_end=longer[-1][2] if useful_tail else chunk[-1][2],
                after_preposition=before in PREPOSITIONS,
                before_verb=chunk[0][1] < first_verb,
                attr=attr,
            )
        )
        index = max(index, tokens.index(chunk[-1]) + 1)
    return found


def segments(text: str, start: int, end: int, max_words: int = 8) -> list[Segment]:
    """The segments of one sentence ``text[start:end]`` with their chunks and quality phrases."""
    out = []
    for s, e, joined in _boundaries(text, start, end):
        piece = text[s:e]
        qualities: list[tuple[int, int]] = []
        for qs, qe, _w in lexicon.quality_phrases(piece):
            if qualities and qs + s < qualities[-1][1]:
                qualities[-1] = (qualities[-1][0], max(qualities[-1][1], qe + s))
            else:
                qualities.append((qs + s, qe + s))
        quality_at = dict(qualities)
        for qs, qe, _w in lexicon.quality_words(piece):  # a word inside a phrase ends a chunk too
            quality_at.setdefault(qs + s, qe + s)
        chunks = _chunks(text, s, e, quality_at, max_words)
        has_verb = any(t[0].lower() in VERBS for t in _tokens(text, s, e))
        out.append(Segment(s, e, joined, tuple(chunks), tuple(qualities), has_verb))
    return out


def _is_position(text: str, chunk: Chunk) -> bool:
    return all(w in _TAIL_POSITION for w in lexicon.words(text[chunk.start : chunk.end]))


def _phrase_span(chunk: Chunk, quality: tuple[int, int]) -> tuple[int, int]:
    start = chunk.attr[0] if chunk.attr and chunk.attr != quality else chunk.start
    return start, chunk.long_end


def rule_pairs(text: str, max_words: int = 8) -> list[RulePair]:
    """Every (object, quality) the clause rules read in ``text``, whole-image ones included (the caller
    drops those with the reason), in text order of the sentences."""
    pairs: list[RulePair] = []
    for s_start, s_end in sentences(text):
        pairs.extend(_Reading(text).sentence(s_start, s_end, max_words))
    return pairs


class _Reading:
    """One sentence's pairing, segment by segment (the state the linking rules need)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pairs: list[RulePair] = []
        self.tagged: dict[Chunk, tuple[int, int]] = {}

    def add(self, chunk: Chunk, quality: tuple[int, int], clause_start: int, clause_end: int) -> None:
        if chunk not in self.tagged:
            self.tagged[chunk] = quality
            clause = (min(clause_start, chunk.start), max(clause_end, quality[1]))
            self.pairs.append(
                RulePair(_phrase_span(chunk, quality), quality, clause, (chunk.start, chunk.end))
            )

    def sentence(self, s_start: int, s_end: int, max_words: int) -> list[RulePair]:
        add, tagged = self.add, self.tagged
        pending: list[tuple[Chunk, int]] = []  # list items waiting for their predicate (chunk, seg start)
        previous: Segment | None = None  # the last segment that says something (a verb or a quality)
        last: Segment | None = None
        for seg in segments(self.text, s_start, s_end, max_words):
            subjects = seg.subjects
            if seg.joined_by in _RELATIVE or seg.joined_by == "that":
                # "the star in the top right, which looks fuzzy": the last noun before it that is not a place
                named = [c for c in last.chunks if not _is_position(self.text, c)] if last else []
                if seg.qualities and last is not None and named:
                    add(named[-1], seg.qualities[0], last.start, seg.end)
                    pending = [(c, w) for c, w in pending if c is not named[-1]]
                continue  # a relative clause without quality words leaves the pending items waiting
            last = seg
            if subjects and seg.qualities:
                for k, subject in enumerate(subjects):
                    limit = subjects[k + 1].start if k + 1 < len(subjects) else seg.end
                    after = [q for q in seg.qualities if subject.end <= q[0] < limit]
                    before = [q for q in seg.qualities if q[1] <= subject.start]
                    quality = after[0] if after else subject.attr or (before[-1] if before else None)
                    if quality is not None:
                        add(subject, quality, seg.start, seg.end)
                if pending and seg.joined_by in _LIST_WORDS and subjects[0] in tagged:
                    for chunk, where in pending:  # "the cup, the spoon and the saucer are sharp"
                        add(chunk, tagged[subjects[0]], where, seg.end)
                pending = []
            elif subjects and not seg.has_verb:
                pending.extend((c, seg.start) for c in subjects)
            elif subjects:
                pending = []
            elif seg.qualities:
                first = seg.qualities[0]
                named = [c for c in seg.chunks if not c.after_preposition and c.end <= first[0]]
                objects = [c for c in seg.chunks if c.start >= first[1]]
                if pending:  # "his hands, which are moving, show some motion blur"
                    for chunk, where in pending:
                        add(chunk, first, where, seg.end)
                    pending = []
                elif named:  # "making the upper corner look overexposed"
                    add(named[-1], first, seg.start, seg.end)
                elif objects:  # "no noise in the shadows", "there is a lot of grain in the sky"
                    add(objects[0], first, seg.start, seg.end)
                elif previous is not None and previous.subjects and previous.subjects[-1] not in tagged:
                    add(previous.subjects[-1], first, previous.start, seg.end)  # "the moon is X, overexposed"
            if seg.qualities or seg.has_verb:
                previous = seg
        if pending and previous is not None:  # "the photo is blurry, especially the car on the left"
            said = [q for c, q in tagged.items() if previous.start <= c.start < previous.end]
            for chunk, _where in pending if said else []:
                add(chunk, said[0], previous.start, s_end)
        return sorted(self.pairs, key=lambda p: p.phrase)
