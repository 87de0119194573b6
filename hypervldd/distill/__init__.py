"""Distillation: methods behind one interface, and the :class:`SyntheticSet` artifact.

``get_distiller(name, **config).fit(real, budget, seed) -> SyntheticSet``;
``SyntheticSet.save(path)`` / ``SyntheticSet.load(path)``.

Methods: ``random``, ``herding``, ``kcenter``, ``forgetting`` (coresets);
``moment_matching``, ``covmatch``, ``raha``, ``rank_align`` and ``mtt``
(trajectory matching, :mod:`.trajectory` on the experts of :mod:`.experts` and the
matching gradient of :mod:`.matching`; over pixels with LoRA on an open_clip tower,
``mtt_pixels`` in :mod:`.trajectory_pixels`, which needs the real images and is not
registered) (gradient-based, on the optimisation
engine of :mod:`.engine`).
"""

from ._io import ArtifactError
from .artifact import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    LowRankSimilarity,
    SyntheticSet,
    read_artifact_manifest,
)
from .base import Distiller, RealData, available_methods, get_distiller, prepare_real, register
from .coreset import (
    Forgetting,
    ForgettingConfig,
    Herding,
    HerdingConfig,
    KCenter,
    KCenterConfig,
    RandomConfig,
    RandomCoreset,
)
from .covmatch import (
    CovMatch,
    CovMatchConfig,
    MomentMatching,
    MomentMatchingConfig,
    cross_covariance,
)
from .engine import DivergenceError, EngineConfig, GradientDistiller, kmeans_init, random_init
from .experts import ExpertBuffer, ExpertConfig, train_experts
from .hyperbolic import RAHAConfig, RAHADistiller, RankAlignConfig, RankAlignDistiller
from .pds import PDS, PDSConfig
from .pixels import PixelMatch, PixelMatchConfig, coreset_pixels
from .provenance import ProvenanceError, check_provenance, provenance_mismatches
from .trajectory import MTTConfig, MTTDistiller
from .trajectory_pixels import MTTPixels, MTTPixelsConfig

__all__ = [
    "PDS",
    "PDSConfig",
    "PixelMatch",
    "PixelMatchConfig",
    "coreset_pixels",
    "ArtifactError",
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "SyntheticSet",
    "LowRankSimilarity",
    "read_artifact_manifest",
    "ProvenanceError",
    "check_provenance",
    "provenance_mismatches",
    "Distiller",
    "RealData",
    "prepare_real",
    "register",
    "get_distiller",
    "available_methods",
    "RandomCoreset",
    "RandomConfig",
    "Herding",
    "HerdingConfig",
    "KCenter",
    "KCenterConfig",
    "Forgetting",
    "ForgettingConfig",
    "GradientDistiller",
    "RAHAConfig",
    "RAHADistiller",
    "RankAlignConfig",
    "RankAlignDistiller",
    "MTTConfig",
    "MTTDistiller",
    "MTTPixels",
    "MTTPixelsConfig",
    "ExpertConfig",
    "ExpertBuffer",
    "train_experts",
    "EngineConfig",
    "DivergenceError",
    "random_init",
    "kmeans_init",
    "CovMatch",
    "CovMatchConfig",
    "MomentMatching",
    "MomentMatchingConfig",
    "cross_covariance",
]
