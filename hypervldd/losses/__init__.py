"""Losses: hyperbolic contrastive (hITC), RAHA, and full-dataset rank alignment.

Every loss is an ``nn.Module`` returning a 0-d tensor; the math is in ``docs/losses.md``.
Streaming parts run on :mod:`hypervldd.kernels` (``contrastive_loss``, ``row_stats``,
``pairwise_dist``).
"""

from ._common import GEOMETRIES, FeatureScale, Temperature
from .contrastive import (
    EntailmentConeLoss,
    HyperbolicContrastiveLoss,
    dense_contrastive_loss,
    exterior_angle,
    half_aperture,
)
from .raha import (
    RAHALoss,
    RAHATerms,
    Subspaces,
    adaptive_rank,
    ot_relevance_matching,
    range_residual_subspaces,
    reference_lift,
    sinkhorn_plan,
)
from .rank_alignment import AlignmentTerms, FullDatasetRankAlignment, full_dataset_targets

__all__ = [
    "GEOMETRIES",
    "FeatureScale",
    "Temperature",
    "HyperbolicContrastiveLoss",
    "EntailmentConeLoss",
    "dense_contrastive_loss",
    "half_aperture",
    "exterior_angle",
    "RAHALoss",
    "RAHATerms",
    "Subspaces",
    "adaptive_rank",
    "range_residual_subspaces",
    "sinkhorn_plan",
    "ot_relevance_matching",
    "reference_lift",
    "FullDatasetRankAlignment",
    "AlignmentTerms",
    "full_dataset_targets",
]
