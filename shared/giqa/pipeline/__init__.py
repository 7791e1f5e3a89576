"""The annotation pipeline's stage functions (paper §3.2, DESIGN §3.5); pure over the model ports."""

from giqa.pipeline.fuse import FuseError, fuse, fuse_traced
from giqa.pipeline.merge import MergeStep, merge_boxes, merge_boxes_traced
from giqa.pipeline.refine import RefineConfig, RefinedTag, refine_tag

__all__ = [
    "FuseError",
    "MergeStep",
    "RefineConfig",
    "RefinedTag",
    "fuse",
    "fuse_traced",
    "merge_boxes",
    "merge_boxes_traced",
    "refine_tag",
]
