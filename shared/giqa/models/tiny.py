"""Tiny LLaVA and LLaVA-NeXT models built from configs, for tests and CPU experiments (no hub).

``build_tiny_llava(out_dir)`` writes a checkpoint folder that ``from_pretrained(out_dir)`` loads offline:
the model (random weights, seeded), an offline word-level tokenizer (:mod:`giqa.models.tokenizer`), the
CLIP (or LLaVA-NeXT) image processor and the processor with a LLaVA-1.5 chat template
(``USER: <image>\\n... ASSISTANT:``). The number of ``<image>`` tokens the processor inserts equals the
vision tower's patch count (the CLS token is dropped by the "default" feature strategy).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from giqa.models.tokenizer import GRID_CELLS, IMAGE_TOKEN, build_tokenizer

GRID_SIDE = int(GRID_CELLS**0.5)  # the default 20 x 20 grid
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]  # CLIP's statistics
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

Arch = Literal["llava", "llava_next"]

# LLaVA-1.5's conversation format: images first in the user turn, then text; the answer follows "ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] if message['content'] is string "
    "else message['content'][0]['text'] }} "
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] if part['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ ' ' }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava15_prompt(question: str) -> str:
    """The LLaVA-1.5 prompt for one image and one question (what :data:`CHAT_TEMPLATE` renders)."""
    return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT:"


def build_tiny_llava(
    out_dir: str | Path,
    *,
    arch: Arch = "llava",
    image_size: int = 64,
    patch_size: int = 16,
    seed: int = 0,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    text_hidden: int = 64,
    text_layers: int = 2,
    heads: int = 4,
    corpus: Iterable[str] = (),
    spatial_init: bool = True,
) -> Path:
    """Build, save and return a tiny LLaVA (``arch="llava"``) or LLaVA-NeXT (``"llava_next"``) folder.

    ``corpus``: extra texts whose words join the tokenizer's vocabulary (e.g. a training set's answers).
    The same arguments and seed give the same weights.

    ``spatial_init`` (default on): the embeddings of the grid-index tokens (both spellings, ``"65"`` and
    ``" 65"``, input and output side) start from a 2-D sinusoidal code of (row, column) at the random init's
    spread, so nearby cells start out alike instead of as 400 unrelated classes; the vision tower's patch
    position embeddings start from the same kind of code at the spread of the patch embedding's output (see
    :func:`init_spatial_embeddings`). Training is free to move both.
    """
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig

    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    if arch not in ("llava", "llava_next"):
        raise ValueError(f"unknown arch {arch!r}; expected 'llava' or 'llava_next'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus)
    tokenizer.chat_template = CHAT_TEMPLATE
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 2,
        num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_hidden // 16),
        projection_dim=vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 2,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    patches = (image_size // patch_size) ** 2
    torch.manual_seed(seed)
    model, processor = (_llava if arch == "llava" else _llava_next)(
        vision, text, tokenizer, image_token_id, image_size, patch_size, patches
    )
    if spatial_init:
        init_spatial_embeddings(model, tokenizer, image_size // patch_size)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def spatial_code(rows: Any, cols: Any, dim: int, *, extent: float) -> Any:
    """Unit-variance 2-D sinusoidal codes of positions ``(rows, cols)`` (tensors, in units of ``extent``).

    Half the channels encode the row, half the column, each as sines and cosines at geometric frequencies
    (cycles per image side); positions are taken at cell centres.
    """
    import math

    import torch

    quarter = max(1, dim // 4)
    # from half a cycle per side (smooth: near cells alike) to extent/2 cycles (adjacent cells told apart)
    freqs = 2 ** torch.linspace(-1.0, math.log2(max(1.0, extent / 2)), quarter)
    parts = []
    for pos in (rows, cols):
        angle = 2 * math.pi * (pos.float()[:, None] + 0.5) / extent * freqs[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    code = torch.cat(parts, dim=1)
    code = torch.nn.functional.pad(code, (0, dim - code.shape[1])) if code.shape[1] < dim else code[:, :dim]
    return code / code.std().clamp_min(1e-6)


def init_spatial_embeddings(model: Any, tokenizer: Any, patch_grid: int, grid: int = GRID_SIDE) -> None:
    """Give grid-index tokens and patch positions a shared 2-D code (see :func:`build_tiny_llava`)."""
    import torch

    cells = torch.arange(grid * grid)
    ids_plain = tokenizer.convert_tokens_to_ids([str(int(k)) for k in cells])
    ids_space = tokenizer.convert_tokens_to_ids([" " + str(int(k)) for k in cells])
    with torch.no_grad():
        for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            code = spatial_code(cells // grid, cells % grid, weight.shape[1], extent=grid) * weight.std()
            weight[torch.as_tensor(ids_plain)] = code
            weight[torch.as_tensor(ids_space)] = code
        name = _vision_position_name(model)
        position = model.get_parameter(name)
        # CLIP's init gives positions a spread of 0.02 while a 16x16x3 patch projects to ~0.5: the sum is
        # layer-normed, so where a patch sits was ~2% of its token and trained models kept it there (measured:
        # 0.39 against 21 in token norm after 1,800 steps). At the patch output's spread it starts salient.
        conv = model.get_parameter(name.replace("position_embedding", "patch_embedding"))
        patch_spread = float(conv.std()) * conv[0].numel() ** 0.5
        patches = torch.arange(patch_grid * patch_grid)
        code = spatial_code(patches // patch_grid, patches % patch_grid, position.shape[1], extent=patch_grid)
        position[1 : 1 + len(patches)] = code * patch_spread  # row 0 is CLIP's CLS position


def _vision_position_name(model: Any) -> str:
    """The CLIP vision tower's position-embedding parameter (its module path moves between versions)."""
    for name, _ in model.named_parameters():
        if "vision_tower" in name and name.endswith("embeddings.position_embedding.weight"):
            return name
    raise ValueError("the model has no CLIP vision position embedding")


def _llava(
    vision: Any, text: Any, tokenizer: Any, image_token_id: int, size: int, patch: int, patches: int
) -> Any:
    import transformers
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    # Without torchvision transformers falls back to the PIL processor anyway; naming it avoids the warning.
    clip_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor

    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=patches,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        # the whole image squeezed to size x size, never center-cropped: a crop would cut off the edges of a
        # non-square photo while the grid of the answer's boxes spans the whole image
        image_processor=_clip_processor(clip_cls, size, crop=False),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    return model, processor


def _llava_next(
    vision: Any, text: Any, tokenizer: Any, image_token_id: int, size: int, patch: int, patches: int
) -> Any:
    import transformers
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

    next_cls = (
        getattr(transformers, "LlavaNextImageProcessorPil", None) or transformers.LlavaNextImageProcessor
    )

    # AnyRes tiles: the base view plus at most two tiles, so images stay a few dozen tokens.
    pinpoints = [[size, size], [size, 2 * size], [2 * size, size]]
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_grid_pinpoints=pinpoints,
        image_seq_length=patches,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    model = LlavaNextForConditionalGeneration(config).eval()
    image_processor = _clip_processor(next_cls, size, image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    return model, processor


def _clip_processor(cls: Any, size: int, *, crop: bool = True, **extra: Any) -> Any:
    """CLIP's statistics; ``crop``: resize the short side and center-crop (LLaVA-NeXT's base view), else
    resize the whole image to size x size (LLaVA: the grid of the answer's boxes spans the whole image)."""
    shape = {"size": {"shortest_edge": size}, "crop_size": {"height": size, "width": size}}
    if not crop:
        shape = {"size": {"height": size, "width": size}}
    return cls(do_center_crop=crop, image_mean=CLIP_MEAN, image_std=CLIP_STD, **shape, **extra)
