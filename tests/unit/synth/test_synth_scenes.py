"""Scenes: deterministic, boxes true to the pixels, every claimed degradation visible, hard case as built.

Visibility is measured with scikit-image (blur_effect) and plain statistics written here, not with the
generator's own ``measure`` module, so a bug there cannot hide a bug in the pixels. A local degradation
follows its object's shape, so its statistics are taken on the object's pixels (the generator's blend
weight of at least one half), not on its box.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from skimage.measure import blur_effect

from giqa.boxes import from_pixels
from giqa.synth import DEGRADATION_KINDS, SynthConfig, degradation_region, generate_scene, render_scene
from giqa.synth.scene import object_weight, plan_scene

pytestmark = pytest.mark.unit


def _png(image) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64) / 255.0
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _blockiness(luma: np.ndarray, on: np.ndarray) -> float:
    """Jumps across 8-pixel borders (counted from the patch corner) over jumps inside blocks, for the
    jumps that touch a pixel of ``on``."""
    dx, dy = np.abs(np.diff(luma, axis=1)), np.abs(np.diff(luma, axis=0))
    ox, oy = on[:, 1:] | on[:, :-1], on[1:] | on[:-1]
    bx = np.broadcast_to(np.arange(dx.shape[1]) % 8 == 7, dx.shape)
    by = np.broadcast_to((np.arange(dy.shape[0]) % 8 == 7)[:, None], dy.shape)
    inside = np.concatenate([dx[~bx & ox], dy[~by & oy]]).mean()
    across = np.concatenate([dx[bx & ox], dy[by & oy]]).mean()
    return float((across + 1e-4) / (inside + 1e-4))


def _grain(luma: np.ndarray, on: np.ndarray) -> float:
    """Robust sigma (MAD) of the jumps between horizontal neighbours that both lie in ``on``."""
    jumps = np.diff(luma, axis=1)[on[:, 1:] & on[:, :-1]]
    return float(1.4826 * np.median(np.abs(jumps - np.median(jumps))) / np.sqrt(2.0))


def _weights(r, config: SynthConfig | None = None) -> dict[int, tuple[tuple[int, int, int, int], np.ndarray]]:  # noqa: ANN001
    """Each object's degradation region and blend weight, from the scene's plan."""
    plan = plan_scene(r.seed, r.index, config or SynthConfig())
    return {o.id: object_weight(o, r.width, r.height) for o in plan.objects}


def test_same_seed_same_bytes_and_record_in_any_order() -> None:
    forward = [generate_scene(5, i) for i in range(6)]
    backward = [generate_scene(5, i) for i in reversed(range(6))][::-1]
    for (img_a, rec_a), (img_b, rec_b) in zip(forward, backward, strict=True):
        assert _png(img_a) == _png(img_b)
        assert rec_a.model_dump_json() == rec_b.model_dump_json()


def test_different_seed_or_index_differs() -> None:
    img, rec = generate_scene(5, 0)
    other_img, other = generate_scene(6, 0)
    next_img, nxt = generate_scene(5, 1)
    assert _png(img) != _png(other_img) and _png(img) != _png(next_img)
    assert rec.description != other.description or rec.objects != other.objects
    assert rec.id != other.id != nxt.id


def test_record_metadata(sample: list, sample_seed: int) -> None:
    ids = {s.record.id for s in sample}
    assert len(ids) == len(sample)
    for i, s in enumerate(sample):
        r = s.record
        assert (r.seed, r.index) == (sample_seed, i)
        assert s.image.size == (r.width, r.height) == (128, 128)
        assert s.image.mode == "RGB"
        assert r.image == f"images/{r.id}.png"
        assert [o.id for o in r.objects] == list(range(len(r.objects)))
        assert 2 <= len(r.objects) <= 5


def test_boxes_inside_the_image_and_consistent_with_pixels(sample: list) -> None:
    for s in sample:
        r = s.record
        for o in r.objects:
            x1, y1, x2, y2 = o.box_px
            assert 0 <= x1 < x2 <= r.width and 0 <= y1 < y2 <= r.height
            assert all(0.0 <= v <= 1.0 for v in o.box)
            assert o.box == from_pixels(o.box_px, r.width, r.height).as_list()


def test_boxes_are_tight_around_the_object_in_the_clean_render(sample: list) -> None:
    """In the clean render, the pixels of the object's colour around it span its box to within 2 pixels
    (edge pixels are anti-aliased blends: at a star's tip the mostly-covered ones stop short)."""
    from giqa.synth.config import COLOURS

    for s in sample[:60]:
        r = s.record
        clean = np.asarray(render_scene(r.seed, r.index, degrade=False)).astype(int)
        for o in r.objects:
            x1, y1, x2, y2 = degradation_region(o.box_px, r.width, r.height)
            close = np.abs(clean[y1:y2, x1:x2] - np.array(COLOURS[o.colour])).sum(axis=-1) < 90
            rows, cols = np.flatnonzero(close.any(axis=1)), np.flatnonzero(close.any(axis=0))
            found = (x1 + cols[0], y1 + rows[0], x1 + cols[-1] + 1, y1 + rows[-1] + 1)
            bx1, by1, bx2, by2 = o.box_px
            assert bx1 <= found[0] <= bx1 + 2 and by1 <= found[1] <= by1 + 2, (r.id, o.id, found, o.box_px)
            assert bx2 - 2 <= found[2] <= bx2 and by2 - 2 <= found[3] <= by2, (r.id, o.id, found, o.box_px)


def test_objects_do_not_share_degradation_regions(sample: list) -> None:
    for s in sample:
        r = s.record
        regions = [degradation_region(o.box_px, r.width, r.height) for o in r.objects]
        for i, a in enumerate(regions):
            for b in regions[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def _visible(kind: str, clean: np.ndarray, degraded: np.ndarray, on: np.ndarray) -> tuple[bool, float, float]:
    """Whether ``degraded`` shows ``kind`` against ``clean`` on the object's pixels ``on``."""
    a, b = _luma(clean), _luma(degraded)
    if kind in ("blur", "motion_blur"):
        # blur_effect reads the whole crop: outside the object nothing changed, so what moves it is the
        # object's own edges. Per colour channel (an orange shape on a grey of the same brightness has no
        # luma edges; a darkened one gains luma edges), with the re-blur filter no longer than a third of
        # the region (small objects at 64 px)
        h = max(3, min(11, min(a.shape) // 3))
        planes = [(a, b)] + [(clean[..., c], degraded[..., c]) for c in range(3)]
        gain = max(blur_effect(after, h_size=h) - blur_effect(before, h_size=h) for before, after in planes)
        return gain > 0.03, 0.0, gain
    if kind == "noise":
        before, after = _grain(a, on), _grain(b, on)
        return after > before + 0.02, before, after
    if kind == "low_light":
        before, after = a[on].mean(), b[on].mean()
        return after < before - 0.08, before, after
    if kind == "overexposure":
        before, after = a[on].mean(), b[on].mean()
        return after > before + 0.08, before, after
    if kind == "low_contrast":
        before = a[on].std() + clean[on].std(axis=0).mean() / 255
        after = b[on].std() + degraded[on].std(axis=0).mean() / 255
        return after < 0.8 * before, before, after
    before, after = _blockiness(a, on), _blockiness(b, on)
    return after > 1.2 * before, before, after


def _check_visibility(scenes: list[tuple], config: SynthConfig | None = None) -> set[str]:
    seen: set[str] = set()
    for pixels, r in scenes:
        # the render with the whole-image degradation but no local one isolates each object's damage
        base = np.asarray(render_scene(r.seed, r.index, config, degrade=False, global_=True))
        weights = _weights(r, config)
        for o in r.objects:
            (x1, y1, x2, y2), weight = weights[o.id]
            for d in o.degradations[:1]:  # a second degradation may mask the first one's statistic
                crops = base[y1:y2, x1:x2], pixels[y1:y2, x1:x2]
                ok, before, after = _visible(d.kind, *crops, weight >= 0.5)
                assert ok, f"{r.id} object {o.id} {d.kind} {d.severity}: {before:.3f} -> {after:.3f}"
                seen.add(d.kind)
    return seen


def test_every_degraded_object_is_measurably_different_from_its_clean_render(sample: list) -> None:
    seen = _check_visibility([(s.pixels, s.record) for s in sample[:120]])
    assert seen == set(DEGRADATION_KINDS)


def test_degradations_stay_visible_in_a_64_pixel_world() -> None:
    """Tiny-model tests use 64-pixel benches: kernels shrink with the image, damage must still show."""
    config = SynthConfig(width=64, height=64)
    scenes = [generate_scene(3, i, config) for i in range(120)]
    seen = _check_visibility([(np.asarray(img), r) for img, r in scenes], config)
    assert seen == set(DEGRADATION_KINDS)


def test_local_degradations_change_only_the_objects_feathered_shapes(sample: list) -> None:
    """Against the render without local degradations, the only pixels that change are those the degraded
    objects' blend weights reach; inside each object's shape some do change. Every kind is seen."""
    seen: set[str] = set()
    for s in sample[:120]:
        r = s.record
        base = np.asarray(render_scene(r.seed, r.index, degrade=False, global_=True))
        reach = np.zeros((r.height, r.width), dtype=bool)
        for o_id, ((x1, y1, x2, y2), weight) in _weights(r).items():
            obj = r.objects[o_id]
            if not obj.degradations:
                continue
            reach[y1:y2, x1:x2] |= weight > 0
            on = weight >= 0.5
            assert (base[y1:y2, x1:x2][on] != s.pixels[y1:y2, x1:x2][on]).any(), (r.id, o_id)
            seen.update(d.kind for d in obj.degradations)
        changed = (base != s.pixels).any(axis=-1)
        assert not (changed & ~reach).any(), (r.id, np.argwhere(changed & ~reach)[:5])
    assert seen == set(DEGRADATION_KINDS)


def test_no_rectangle_around_round_objects(sample: list) -> None:
    """A degraded circle's or ring's box corners lie off the shape and stay as in the clean render, and
    so does the middle of a ring's hole: the degradation follows the shape, not the box."""
    checked = 0
    for s in sample:
        r = s.record
        base = np.asarray(render_scene(r.seed, r.index, degrade=False, global_=True))
        for o in r.objects:
            if o.category not in ("circle", "ring") or not o.degradations:
                continue
            x1, y1, x2, y2 = o.box_px
            spots = [(y1, x1), (y1, x2 - 1), (y2 - 1, x1), (y2 - 1, x2 - 1)]
            if o.category == "ring" and x2 - x1 >= 20:
                spots.append(((y1 + y2) // 2, (x1 + x2) // 2))
            for y, x in spots:
                assert np.array_equal(base[y, x], s.pixels[y, x]), (r.id, o.id, o.category, (x, y))
            checked += 1
    assert checked >= 20


def test_clean_objects_are_untouched_without_a_global_degradation(sample: list) -> None:
    checked = 0
    for s in sample[:80]:
        r = s.record
        if r.global_degradations:
            continue
        clean = np.asarray(render_scene(r.seed, r.index, degrade=False))
        for o in r.objects:
            x1, y1, x2, y2 = degradation_region(o.box_px, r.width, r.height)
            same = np.array_equal(clean[y1:y2, x1:x2], s.pixels[y1:y2, x1:x2])
            assert same == (not o.degradations), (r.id, o.id)
            checked += 1
    assert checked > 100


def test_global_degradations_are_mild_and_change_the_whole_image(sample: list) -> None:
    with_global = [s for s in sample if s.record.global_degradations]
    assert 10 <= len(with_global) <= 60  # p = 0.15 of 200
    for s in with_global[:10]:
        r = s.record
        no_global = np.asarray(render_scene(r.seed, r.index, degrade=True, global_=False)).astype(int)
        diff = np.abs(no_global - s.pixels.astype(int)).sum(axis=-1) > 0
        assert diff.mean() > 0.5
        assert all(d.severity <= 0.3 for d in r.global_degradations)


def test_hard_case_has_two_look_alikes_only_one_degraded(sample: list) -> None:
    hard = [s.record for s in sample if s.record.hard_case]
    assert 25 <= len(hard) <= 80  # p = 0.25 of 200
    for r in hard:
        twins = [o for o in r.objects if o.role.startswith("twin")]
        assert len(twins) == 2
        a, b = twins
        assert a.phrase == b.phrase and a.category == b.category and a.colour == b.colour
        assert sorted(o.role for o in twins) == ["twin_clean", "twin_degraded"]
        degraded = next(o for o in twins if o.role == "twin_degraded")
        clean = next(o for o in twins if o.role == "twin_clean")
        assert degraded.degradations and not clean.degradations
        assert degraded.mentioned and not clean.mentioned
        # no other object shares their phrase
        assert sum(o.phrase == a.phrase for o in r.objects) == 2
    for s in sample:
        if not s.record.hard_case:
            phrases = [o.phrase for o in s.record.objects]
            assert len(set(phrases)) == len(phrases)
            assert not any(o.role.startswith("twin") for o in s.record.objects)


def test_roles_agree_with_degradations(sample: list) -> None:
    for s in sample:
        for o in s.record.objects:
            assert bool(o.degradations) == (o.role in ("degraded", "twin_degraded")), (s.record.id, o)
            assert all(0.0 < d.severity <= 1.0 for d in o.degradations)


def test_clean_scenes_exist_and_say_so(sample: list) -> None:
    clean = [s.record for s in sample if not any(o.degradations for o in s.record.objects)]
    assert clean, "p_clean_scene should give some scenes with nothing degraded"
    for r in clean:
        assert r.verdict in ("good", "fair")
        assert r.verdict == ("fair" if r.global_degradations else "good")


def test_render_scene_matches_generate_scene() -> None:
    image, _ = generate_scene(9, 4)
    assert _png(render_scene(9, 4)) == _png(image)


def test_config_changes_the_world_but_stays_deterministic() -> None:
    config = SynthConfig(width=96, height=96, p_hard_case=1.0, p_global_degradation=0.0)
    img1, rec1 = generate_scene(2, 3, config)
    img2, rec2 = generate_scene(2, 3, config)
    assert _png(img1) == _png(img2) and rec1 == rec2
    assert rec1.hard_case and img1.size == (96, 96)
