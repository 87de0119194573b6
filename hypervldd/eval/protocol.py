"""The evaluation protocol: a versioned, JSON-serialisable config.

VLDD papers differ silently on the student, what is trainable, the learning
rate, the schedule and which checkpoint is reported (most released code reports
the best of several *test-set* evaluations). Here all of it is one object,
:class:`EvalProtocol`, whose ``version`` is checked on load and whose JSON is
stored next to every result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ._config import config_from_dict, config_from_json, config_to_dict, config_to_json

__all__ = ["PROTOCOL_VERSION", "StudentConfig", "EvalProtocol", "SELECTIONS", "TRAINABLE"]

#: Version of the protocol schema *and* semantics. Bump when either changes.
PROTOCOL_VERSION = "1"

GEOMETRIES = ("euclidean", "lorentz", "poincare")
HEADS = ("linear", "mlp")
TRAINABLE = ("image_head", "text_head", "feature_scale", "temperature", "curvature")
OPTIMIZERS = ("sgd", "adam", "adamw")
SELECTIONS = ("final", "validation", "test")
LR_SOURCES = ("fixed", "learned")


@dataclass(frozen=True)
class StudentConfig:
    """The student: projection heads on frozen features, lifted onto a manifold.

    ``image -> [L2-normalise] -> head -> * feature_scale -> manifold.lift``, same for
    text; logits are ``-distance / temperature``.

    Attributes:
        geometry: ``"euclidean"``, ``"lorentz"`` or ``"poincare"``.
        curvature: ``c > 0`` (curvature ``-c``); ignored for Euclidean.
        head: ``"linear"`` or ``"mlp"`` (Linear-GELU-Linear with a residual
            projection and LayerNorm, the VL-Distill text head shape).
        width: output width of both heads (tangent dimension).
        normalize_inputs: L2-normalise the frozen features first, so learning
            rates do not depend on the encoder's feature scale.
        feature_scale: initial scalar multiplying head outputs before the lift
            (the MERU recipe keeps points off a single radius).
        temperature: initial softmax temperature ``tau``.
        clip_norm: tangent vectors longer than this are rescaled to it before the
            lift (feature clipping, Guo et al. CVPR 2022); ``None`` disables it.
    """

    geometry: str = "lorentz"
    curvature: float = 1.0
    head: str = "linear"
    width: int = 512
    normalize_inputs: bool = True
    feature_scale: float = 1.0
    temperature: float = 0.07
    clip_norm: float | None = 2.0

    def __post_init__(self) -> None:
        if self.clip_norm is not None and not (self.clip_norm > 0):
            raise ValueError(f"student.clip_norm must be > 0 or None, got {self.clip_norm}")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"student.geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.head not in HEADS:
            raise ValueError(f"student.head must be one of {HEADS}, got {self.head!r}")
        if not (self.curvature > 0):
            raise ValueError(f"student.curvature must be > 0, got {self.curvature}")
        if int(self.width) < 1:
            raise ValueError(f"student.width must be >= 1, got {self.width}")
        if not (self.feature_scale > 0):
            raise ValueError(f"student.feature_scale must be > 0, got {self.feature_scale}")
        if not (self.temperature > 0):
            raise ValueError(f"student.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class EvalProtocol:
    """How a student is trained on given pairs and scored on a test set.

    Attributes:
        version: protocol version; must equal :data:`PROTOCOL_VERSION`.
        student: the :class:`StudentConfig`.
        trainable: which student parts train, a subset of :data:`TRAINABLE`.
        epochs: training epochs over the training pairs.
        batch_size: pairs per step (clipped to the number of pairs).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr, momentum, weight_decay: optimiser settings (momentum is SGD only).
        lr_decay_epochs, lr_decay_gamma: step schedule; multiply the rate by
            ``gamma`` after each listed epoch.
        lr_source: ``"fixed"`` (use ``lr``) or ``"learned"`` (use the synthetic
            set's learned step sizes where it has them, else ``lr``).
        use_soft_targets: train on a synthetic set's learned similarity when it
            carries one (else identity / same-image targets).
        seeds: student seeds; metrics are reported as mean and std over them.
        selection: checkpoint reported: ``"final"`` (default), ``"validation"``
            (best validation ``mean`` recall; needs validation features) or
            ``"test"`` (best *test* recall: optimistic, only on request, labelled).
        eval_every: epochs between the evaluations that ``"validation"`` and
            ``"test"`` selection choose from (the final epoch is always included).
    """

    version: str = PROTOCOL_VERSION
    student: StudentConfig = field(default_factory=StudentConfig)
    trainable: tuple[str, ...] = ("image_head", "text_head")
    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_epochs: tuple[int, ...] = (50,)
    lr_decay_gamma: float = 0.1
    lr_source: str = "fixed"
    use_soft_targets: bool = True
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    selection: str = "final"
    eval_every: int = 10

    def __post_init__(self) -> None:
        if self.version != PROTOCOL_VERSION:
            raise ValueError(
                f"protocol version {self.version!r} is not supported by this hypervldd "
                f"(expected {PROTOCOL_VERSION!r}); results from different protocol versions "
                "are not comparable"
            )
        if not isinstance(self.student, StudentConfig):
            raise TypeError(f"student must be a StudentConfig, got {type(self.student).__name__}")
        object.__setattr__(self, "trainable", tuple(self.trainable))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "lr_decay_epochs", tuple(int(e) for e in self.lr_decay_epochs))
        bad = sorted(set(self.trainable) - set(TRAINABLE))
        if bad:
            raise ValueError(f"trainable has unknown part(s) {bad}; allowed: {TRAINABLE}")
        if not self.trainable:
            raise ValueError("trainable must name at least one part of the student")
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(
                f"momentum and weight_decay must be >= 0, got {self.momentum}, {self.weight_decay}"
            )
        if not (0 < self.lr_decay_gamma <= 1):
            raise ValueError(f"lr_decay_gamma must be in (0, 1], got {self.lr_decay_gamma}")
        if self.lr_source not in LR_SOURCES:
            raise ValueError(f"lr_source must be one of {LR_SOURCES}, got {self.lr_source!r}")
        if not self.seeds:
            raise ValueError("seeds must name at least one student seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if int(self.eval_every) < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalProtocol:
        """Rebuild from :meth:`to_dict`; unknown keys and other versions are refused."""
        if isinstance(data, dict) and "version" in data and data["version"] != PROTOCOL_VERSION:
            raise ValueError(
                f"protocol version {data['version']!r} is not supported (expected "
                f"{PROTOCOL_VERSION!r})"
            )
        return config_from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> EvalProtocol:
        return config_from_json(cls, text)

    def replace(self, **changes: Any) -> EvalProtocol:
        """A copy with ``changes`` applied (validated)."""
        return replace(self, **changes)

    @property
    def selection_label(self) -> str:
        """Human-readable checkpoint-selection label printed with every result."""
        return {
            "final": "final-epoch",
            "validation": "validation-selected",
            "test": "TEST-SELECTED (optimistic: checkpoint chosen on the test set)",
        }[self.selection]
