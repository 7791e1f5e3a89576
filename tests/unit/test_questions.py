import pytest

from giqa.questions import DES_QUESTION_POOL_SIZE, des_questions, draw_des_question

pytestmark = pytest.mark.unit


def test_pool_has_15_distinct_questions_that_state_the_position_format():
    for form, marker in (("grid", "0 to 399"), ("norm", "normalized")):
        pool = des_questions(form)
        assert len(pool) == DES_QUESTION_POOL_SIZE == 15
        assert len(set(pool)) == 15
        assert all(marker in q and "[object]" in q for q in pool)
    assert "0 to 99" in des_questions("grid", n=10, m=10)[0]
    with pytest.raises(ValueError):
        des_questions("pixels")


def test_draw_is_seeded_and_order_independent():
    keys = [f"s{i}" for i in range(300)]
    first = [draw_des_question(k, seed=1) for k in keys]
    assert first == [draw_des_question(k, seed=1) for k in keys]
    assert [draw_des_question(k, seed=1) for k in reversed(keys)] == first[::-1]
    assert first != [draw_des_question(k, seed=2) for k in keys]
    assert set(first) == set(des_questions())  # 300 draws reach every question
