import pytest
from hypothesis import given
from hypothesis import strategies as st

from giqa import grounded_text as gt
from giqa.boxes import Box
from giqa.grid import decode_box
from strategies import boxes

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------------------------ rendering


def test_render_one_and_several_boxes_in_both_forms():
    box = (0.775, 0.075, 0.975, 0.775)
    assert gt.render_mention("candle", [box]) == "[candle](<35, 319>)"
    assert gt.render_mention("candles", [box, (0, 0, 0.1, 0.1)]) == "[candles](<35, 319>, <0, 42>)"
    assert gt.render_mention("candle", [box], form="norm") == "[candle](<0.78, 0.07, 0.97, 0.78>)"


@pytest.mark.parametrize("phrase", ["", "  ", "a [b]", "a\nb", " lead", "trail "])
def test_render_refuses_phrases_it_cannot_write_back(phrase):
    with pytest.raises(ValueError):
        gt.render_mention(phrase, [(0, 0, 1, 1)])


def test_render_refuses_no_boxes_and_unknown_forms():
    with pytest.raises(ValueError, match="no boxes"):
        gt.render_mention("cat", [])
    with pytest.raises(ValueError, match="unknown box form"):
        gt.render_mention("cat", [(0, 0, 1, 1)], form="pixels")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gt.render(["a", 3])  # type: ignore[list-item]


# -------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text", ["", "no mentions here", "[just brackets]", "(<1, 2>) alone", "[]()", "<<>>[[]]"]
)
def test_parse_finds_nothing_in_plain_or_empty_text(text):
    assert gt.parse(text) == []


@pytest.mark.parametrize(
    ("text", "phrase", "box"),
    [
        ("The [red circle](<35, 319>) is blurry.", "red circle", decode_box(35, 319)),
        ("[ red circle ] ( < 35 , 319 > ) is blurry", "red circle", decode_box(35, 319)),  # tokenizer spaces
        ("the[red circle](<35,319>)is", "red circle", decode_box(35, 319)),  # no spaces
        ("[red  circle](<0.1, 0.2, 0.3, 0.4>)", "red circle", Box(0.1, 0.2, 0.3, 0.4)),
        ("[red circle](<0.3, 0.4, 0.1, 0.2>)", "red circle", Box(0.1, 0.2, 0.3, 0.4)),  # crossed corners
        ("[red circle](<35, 319> is blurry", "red circle", decode_box(35, 319)),  # missing ")"
        ("[red circle](35, 319)", "red circle", decode_box(35, 319)),  # missing angle brackets
        ("[red circle](<35.0, 319>)", "red circle", decode_box(35, 319)),
    ],
)
def test_parse_is_lenient(text, phrase, box):
    (mention,) = gt.parse(text)
    assert mention.phrase == phrase
    assert mention.boxes == (box,)


def test_parse_several_boxes_and_spans():
    text = "Both [candles](<33, 354>, <22, 324>) and the [table](<0.10, 0.50, 0.90, 1.00>) matter."
    first, second = gt.parse(text)
    assert first.phrase == "candles" and len(first.boxes) == 2 and first.form == "grid"
    assert second.form == "norm" and second.boxes == (Box(0.1, 0.5, 0.9, 1.0),)
    assert text[first.span[0] : first.span[1]] == "[candles](<33, 354>, <22, 324>)"
    assert text[second.span[0] : second.span[1]] == "[table](<0.10, 0.50, 0.90, 1.00>)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[cat](<400, 3>)", "outside"),
        ("[cat](<1, 2, 3>)", "2 grid indices or 4"),
        ("[cat](<0.1, 0.2, 1.5, 0.4>)", "outside"),
        ("[cat](<1.5, 3>)", "integers"),
        ("[](<1, 3>)", "empty phrase"),
        ("[link](http://example.com)", "no box"),
        ("[cat](<-1, 3>)", "outside"),
    ],
)
def test_unreadable_pieces_are_reported_not_raised(text, reason):
    result = gt.parse_text(text)
    assert result.mentions == []
    assert any(reason in p.reason for p in result.problems), result.problems


def test_one_bad_box_keeps_the_good_ones_of_the_same_mention():
    result = gt.parse_text("[cats](<1, 22>, <999, 3>)")
    (mention,) = result.mentions
    assert mention.boxes == (decode_box(1, 22),)
    assert len(result.problems) == 1


@pytest.mark.parametrize("junk", [None, 42, b"[a](<1, 2>)", ["x"]])
def test_parse_never_raises_on_non_text(junk):
    assert gt.parse(junk) == []  # type: ignore[arg-type]
    assert gt.strip_coordinates(junk) == ""  # type: ignore[arg-type]


def test_objects_flattens_a_phrase_with_several_boxes():
    result = gt.parse_text("[cats](<1, 22>, <40, 62>) and [dog](<0, 0>)")
    assert [p for p, _ in result.objects()] == ["cats", "cats", "dog"]


# ---------------------------------------------------------------------------------------- stripping


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("The [red circle](<35, 319>) is blurry.", "The red circle is blurry."),
        ("[a](<1, 2>), [b](<0.1, 0.2, 0.3, 0.4>)!", "a, b!"),
        ("[cat](<999, 3>) sits", "cat sits"),  # unreadable boxes still stripped
        ("the cat <12, 34> sits", "the cat sits"),  # stray coordinates
        ("the dog (<0.1, 0.2, 0.3, 0.4>). end", "the dog. end"),
        ("See [the docs](http://x) please", "See [the docs](http://x) please"),  # not a grounded mention
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),
    ],
)
def test_strip_coordinates(text, plain):
    assert gt.strip_coordinates(text) == plain


# --------------------------------------------------------------------------------------- properties

phrases = (
    st.text(
        alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=" -'"),
        min_size=1,
        max_size=25,
    )
    .map(lambda s: " ".join(s.split()))
    .filter(bool)
)
plain = st.text(
    alphabet=st.characters(blacklist_characters="[]()<>", blacklist_categories=("Cs",)), max_size=30
)


@st.composite
def documents(draw):
    parts: list[str | gt.Grounded] = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(plain))
        parts.append(gt.Grounded(draw(phrases), draw(st.lists(boxes(), min_size=1, max_size=3))))
    parts.append(draw(plain))
    return parts


@given(documents(), st.sampled_from(gt.BOX_FORMS))
def test_parse_render_round_trip(parts, form):
    text = gt.render(parts, form=form)
    grounded = [p for p in parts if isinstance(p, gt.Grounded)]
    mentions = gt.parse(text)
    assert [m.phrase for m in mentions] == [g.phrase for g in grounded]
    for mention, g in zip(mentions, grounded, strict=True):
        assert mention.boxes == tuple(gt.quantize_box(b, form) for b in g.boxes)
        assert mention.form == form


@given(documents(), st.sampled_from(gt.BOX_FORMS))
def test_strip_render_gives_the_plain_text(parts, form):
    plain_text = "".join(p if isinstance(p, str) else p.phrase for p in parts)
    assert gt.strip_coordinates(gt.render(parts, form=form)) == plain_text


@given(st.text(max_size=200))
def test_parse_and_strip_never_raise(text):
    gt.parse_text(text)
    gt.strip_coordinates(text)
