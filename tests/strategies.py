"""Hypothesis strategies shared by the test modules (importable because pytest puts tests/ on the path)."""

from hypothesis import strategies as st

from giqa.boxes import Box

coord = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    """Any valid normalized box, zero-area ones and the image edges included."""
    x1, x2 = sorted((draw(coord), draw(coord)))
    y1, y2 = sorted((draw(coord), draw(coord)))
    return Box(x1, y1, x2, y2)
