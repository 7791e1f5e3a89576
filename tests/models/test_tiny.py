"""Tiny LLaVA / LLaVA-NeXT: built from configs, saved, reloaded offline, generating; the tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from giqa.models.tokenizer import build_tokenizer, piece_split

pytestmark = pytest.mark.models

GROUNDED = (
    "USER: <image>\nIs the [red circle](<35, 319>) blurry? ASSISTANT: Yes. "
    "The [sky](<0.05, 0.10, 0.95, 0.30>) is noisy."
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer()


def test_grounded_text_round_trips_exactly(tokenizer: Any) -> None:
    ids = tokenizer(GROUNDED)["input_ids"]
    assert tokenizer.decode(ids) == GROUNDED
    assert tokenizer.unk_token_id not in ids


@pytest.mark.parametrize("index", [0, 7, 35, 199, 319, 399])
def test_every_grid_index_is_one_token(tokenizer: Any, index: int) -> None:
    for text in (str(index), f" {index}"):
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def test_all_400_indices_have_their_own_tokens(tokenizer: Any) -> None:
    ids = {tokenizer.convert_tokens_to_ids(str(i)) for i in range(400)}
    assert len(ids) == 400 and tokenizer.unk_token_id not in ids


def test_punctuation_yes_no_and_image_token(tokenizer: Any) -> None:
    tokens = tokenizer.convert_ids_to_tokens(
        tokenizer("[a](<1, 2>), Yes No", add_special_tokens=False)["input_ids"]
    )
    assert tokens == ["[", "a", "]", "(", "<", "1", ",", " 2", ">", ")", ",", " Yes", " No"]
    assert len(tokenizer("<image><image>", add_special_tokens=False)["input_ids"]) == 2


def test_corpus_words_join_the_vocabulary() -> None:
    tok = build_tokenizer(["The zebra is crisp."])
    assert tok.unk_token_id not in tok(" zebra", add_special_tokens=False)["input_ids"]
    assert piece_split("a  b\n") == ["a", " ", " b", "\n"]


@pytest.mark.parametrize("arch", ["llava", "llava_next"])
def test_build_save_reload_generate(tmp_path: Path, arch: str) -> None:
    from giqa.models.llava import build_prompt, detect_arch
    from giqa.models.tiny import build_tiny_llava
    from giqa.predict.local import TransformersVLM

    path = build_tiny_llava(tmp_path / arch, arch=arch, seed=3)  # type: ignore[arg-type]
    assert detect_arch(path) == arch
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == arch
    vlm = TransformersVLM(path)
    assert build_prompt(vlm.processor, "Is it blurry?") == "USER: <image>\nIs it blurry? ASSISTANT:"
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    # the processor inserts as many <image> tokens as the vision tower yields features
    inputs = vlm.processor(images=[image], text=[build_prompt(vlm.processor, "x")], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == vlm.model.config.image_token_id).sum())
    if arch == "llava":
        assert n_image_tokens == (64 // 16) ** 2
    vlm.model(**inputs)  # a mismatch between tokens and features would raise here
    answers = vlm.answer_batch(
        [(image, "Is it blurry?"), (image.resize((96, 48)), "Assess the quality.")], max_new_tokens=8
    )
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    # left padding: a batched answer equals the same question answered alone
    assert vlm.answer(image.resize((96, 48)), "Assess the quality.", max_new_tokens=8) == answers[1]


def test_same_seed_same_weights(tmp_path: Path) -> None:
    from giqa.models.tiny import build_tiny_llava

    a = build_tiny_llava(tmp_path / "a", seed=1)
    b = build_tiny_llava(tmp_path / "b", seed=1)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    from giqa.models.tiny import build_tiny_llava

    with pytest.raises(ValueError, match="multiple"):
        build_tiny_llava(tmp_path, image_size=50, patch_size=16)
    with pytest.raises(ValueError, match="arch"):
        build_tiny_llava(tmp_path, arch="blip")  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["llava", "llava_next"])
def test_spatial_init_gives_grid_tokens_and_patches_a_shared_smooth_code(tmp_path: Path, arch: str) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from giqa.models.tiny import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "m", arch=arch, image_size=64, patch_size=8, text_hidden=64)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)

    def vec(weight: Any, token: str) -> Any:
        return weight[tok.convert_tokens_to_ids(token)]

    cos = torch.nn.functional.cosine_similarity
    for param in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        weight = param.detach()
        assert torch.equal(vec(weight, "65"), vec(weight, " 65"))  # both spellings of a cell start alike
        near = [cos(vec(weight, "65"), vec(weight, t), dim=0) for t in ("66", "85", "64", "45")]
        far = [cos(vec(weight, "65"), vec(weight, t), dim=0) for t in ("399", "380", "19")]
        assert min(near) > 0.5 > 0.2 > max(far)
        assert abs(float(vec(weight, "65").std()) - float(weight.std())) < 0.01  # the random init's spread
        assert not torch.equal(vec(weight, "65"), vec(weight, "66"))  # adjacent cells still told apart
    params = dict(model.named_parameters())
    position = next(p for n, p in params.items() if n.endswith("position_embedding.weight")).detach()
    # 8x8 patches: patch 0 (row 0, col 0) is near patch 1 and far from patch 63 (the opposite corner)
    assert cos(position[1], position[2], dim=0) > 0.4 > cos(position[1], position[64], dim=0)
    # at the spread of a patch's projection (8x8x3 inputs at CLIP's 0.02 init), not CLIP's 0.02: where a patch
    # sits must not drown in what it shows once the two are summed and layer-normed
    conv = next(p for n, p in model.named_parameters() if n.endswith("patch_embedding.weight")).detach()
    assert float(position[1:].std()) == pytest.approx(float(conv.std()) * (3 * 8 * 8) ** 0.5, rel=0.05)
    assert float(position[1:].std()) > 10 * float(position[0].std())  # CLS keeps CLIP's init


def test_spatial_init_off_leaves_the_random_init(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from giqa.models.tiny import build_tiny_llava

    folder = build_tiny_llava(tmp_path / "m", spatial_init=False)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    emb = model.get_input_embeddings().weight
    a, b = (emb[tok.convert_tokens_to_ids(t)] for t in ("65", " 65"))
    assert not torch.equal(a, b)


def test_llava_processor_sees_the_whole_non_square_image(tmp_path: Path) -> None:
    """No center crop: a mark at the right edge of a wide photo must reach the model (the boxes' grid spans
    the whole image)."""
    from transformers import AutoProcessor

    from giqa.models.tiny import build_tiny_llava

    processor = AutoProcessor.from_pretrained(build_tiny_llava(tmp_path / "m", image_size=64, patch_size=8))
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, -30:] = (255, 0, 0)  # the rightmost tenth is red
    pixels = processor.image_processor(images=[Image.fromarray(wide)], return_tensors="pt")["pixel_values"][0]
    assert tuple(pixels.shape) == (3, 64, 64)
    red = pixels[0] > pixels[1] + 1.0  # red channel well above green, after CLIP normalisation
    assert red[:, -4:].all() and not red[:, :50].any()


def test_a_center_cropping_llava_processor_is_made_to_see_the_whole_image(tmp_path: Path) -> None:
    """A LLaVA-1.5 checkpoint ships CLIP's "short side + center crop": loaded for predict (and for training)
    it must show the whole photo, with the same pixel size and image-token count; a NeXT one is untouched."""
    import transformers
    from transformers import AutoProcessor

    from giqa.models.llava import load_llava, whole_image_view
    from giqa.models.tiny import CLIP_MEAN, CLIP_STD, build_tiny_llava

    folder = build_tiny_llava(tmp_path / "m", image_size=64, patch_size=8)
    processor = AutoProcessor.from_pretrained(folder)
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    processor.image_processor = cls(
        do_center_crop=True,
        size={"shortest_edge": 64},
        crop_size={"height": 64, "width": 64},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor.save_pretrained(folder)  # now like a real LLaVA-1.5 checkpoint
    wide = np.zeros((100, 300, 3), dtype=np.uint8)
    wide[:, -30:] = (255, 0, 0)  # the rightmost tenth is red

    def red_right_edge(proc: Any) -> bool:
        pixels = proc.image_processor(images=[Image.fromarray(wide)], return_tensors="pt")["pixel_values"][0]
        assert tuple(pixels.shape) == (3, 64, 64)
        return bool((pixels[0, :, -4:] > pixels[1, :, -4:] + 1.0).all())

    assert not red_right_edge(AutoProcessor.from_pretrained(folder))  # the crop cuts the red edge off
    _model, loaded, _arch = load_llava(folder)
    assert red_right_edge(loaded)
    ids = loaded(images=[Image.fromarray(wide)], text=["USER: <image>\nhi ASSISTANT:"], return_tensors="pt")
    assert int((ids["input_ids"] == loaded.tokenizer.convert_tokens_to_ids("<image>")).sum()) == 64
    # saved again (a training checkpoint) it keeps the whole view
    loaded.save_pretrained(tmp_path / "saved")
    assert red_right_edge(AutoProcessor.from_pretrained(tmp_path / "saved"))

    class NextLike:
        image_processor = type(
            "IP",
            (),
            {
                "do_center_crop": True,
                "crop_size": {"height": 8, "width": 8},
                "image_grid_pinpoints": [[8, 16]],
                "size": {"shortest_edge": 8},
            },
        )()

    nxt = whole_image_view(NextLike())
    assert nxt.image_processor.do_center_crop and nxt.image_processor.size == {"shortest_edge": 8}
