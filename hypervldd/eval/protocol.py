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

__all__ = [
    "PROTOCOL_VERSION",
    "StudentConfig",
    "PixelStudentConfig",
    "EvalProtocol",
    "EvalExtras",
    "SELECTIONS",
    "TRAINABLE",
]

#: Version of the protocol schema *and* semantics. Bump when either changes.
PROTOCOL_VERSION = "1"

GEOMETRIES = ("euclidean", "lorentz", "poincare")
#: A student may also use the Klein model; the protocol's default sweeps stay on GEOMETRIES.
STUDENT_GEOMETRIES = (*GEOMETRIES, "klein")
HEADS = ("linear", "mlp")
TRAINABLE = ("image_head", "text_head", "feature_scale", "temperature", "curvature")
OPTIMIZERS = ("sgd", "adam", "adamw")
SELECTIONS = ("final", "validation", "test")
LR_SOURCES = ("fixed", "learned")
PIXEL_BACKBONES = ("convnet",)  # or "open_clip:<architecture>"
PIXEL_AUGMENT_OPS = ("color", "crop", "flip", "scale")


@dataclass(frozen=True)
class PixelStudentConfig:
    """The image encoder of the pixel student (used only for synthetic *pixels*).

    A synthetic set whose images are pixels is scored by a student that trains an
    image encoder on them (with differentiable augmentation), followed by the same
    image head, lift and loss as the feature student; the text side is unchanged
    (a head on frozen text features). See :mod:`hypervldd.eval.pixel`.

    Attributes:
        backbone: ``"convnet"`` (the small ConvNet of the dataset-distillation
            literature) or ``"open_clip:<architecture>"`` (randomly initialised,
            or from ``checkpoint``).
        checkpoint: local open_clip weights file (``None``: random initialisation).
        width, depth: ConvNet channels and conv-norm-ReLU-pool blocks.
        norm: ConvNet normalisation, ``"instance"`` or ``"none"``.
        train_backbone: fine-tune the image encoder (else only the heads train).
        backbone_lr: learning rate of the image encoder.
        augment: differentiable augmentation applied to every training batch,
            a subset of ``("color", "crop", "flip", "scale")`` (empty: none).
    """

    backbone: str = "convnet"
    checkpoint: str | None = None
    width: int = 64
    depth: int = 3
    norm: str = "instance"
    train_backbone: bool = True
    backbone_lr: float = 0.01
    augment: tuple[str, ...] = PIXEL_AUGMENT_OPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        if self.backbone not in PIXEL_BACKBONES and not (
            isinstance(self.backbone, str)
            and self.backbone.startswith("open_clip:")
            and len(self.backbone) > len("open_clip:")
        ):
            raise ValueError(
                f"pixel.backbone must be 'convnet' or 'open_clip:<architecture>', got "
                f"{self.backbone!r}"
            )
        if self.checkpoint is not None and not self.backbone.startswith("open_clip:"):
            raise ValueError("pixel.checkpoint is only used with an open_clip backbone")
        if int(self.width) < 1 or int(self.depth) < 1:
            raise ValueError(
                f"pixel.width and pixel.depth must be >= 1, got {self.width}, {self.depth}"
            )
        if self.norm not in ("instance", "none"):
            raise ValueError(f"pixel.norm must be 'instance' or 'none', got {self.norm!r}")
        if not (self.backbone_lr > 0):
            raise ValueError(f"pixel.backbone_lr must be > 0, got {self.backbone_lr}")
        bad = sorted(set(self.augment) - set(PIXEL_AUGMENT_OPS))
        if bad:
            raise ValueError(f"pixel.augment has unknown op(s) {bad}; allowed: {PIXEL_AUGMENT_OPS}")


@dataclass(frozen=True)
class StudentConfig:
    """The student: projection heads on frozen features, lifted onto a manifold.

    ``image -> [L2-normalise] -> head -> * feature_scale -> manifold.lift``, same for
    text; logits are ``-distance / temperature``.

    Attributes:
        geometry: ``"euclidean"``, ``"lorentz"``, ``"poincare"`` or ``"klein"``.
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
        if self.geometry not in STUDENT_GEOMETRIES:
            raise ValueError(
                f"student.geometry must be one of {STUDENT_GEOMETRIES}, got {self.geometry!r}"
            )
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
        pixel: the image encoder used when the training images are pixels
            (:class:`PixelStudentConfig`); ignored for feature sets.
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
    pixel: PixelStudentConfig = field(default_factory=PixelStudentConfig)

    def __post_init__(self) -> None:
        if self.version != PROTOCOL_VERSION:
            raise ValueError(
                f"protocol version {self.version!r} is not supported by this hypervldd "
                f"(expected {PROTOCOL_VERSION!r}); results from different protocol versions "
                "are not comparable"
            )
        if not isinstance(self.student, StudentConfig):
            raise TypeError(f"student must be a StudentConfig, got {type(self.student).__name__}")
        if not isinstance(self.pixel, PixelStudentConfig):
            raise TypeError(f"pixel must be a PixelStudentConfig, got {type(self.pixel).__name__}")
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


#: Perturbations of :mod:`hypervldd.eval.robustness`, in report order.
PERTURBATIONS = ("jpeg", "noise", "pgd_image", "pgd_text", "quant_text")


@dataclass(frozen=True)
class EvalExtras:
    """Evaluation beyond recall (``docs/evaluation.md``); every measure is off by default.

    Kept apart from :class:`EvalProtocol` so that a protocol (and every result stored
    with it) is unchanged when no extra is asked for; ``hypervldd compare`` stores this
    block next to the protocol when any measure is on.

    Attributes:
        fidelity: ordering agreement with the full data, after training (students of the
            protocol) and on the data (pair-bridge similarities in ``fidelity_geometries``).
        transfer: recall under the student variants (``transfer_geometries``,
            ``transfer_widths``, ``transfer_heads``); mean excluding the protocol's student.
        robustness: recall drop under ``perturbations`` of the test inputs.
        zero_shot: prompted zero-shot top-1 accuracy on ``zero_shot_labels`` (image
            metadata columns; empty: ``class_name`` if present, else ``group`` and
            ``subgroup``) with prompts ``zero_shot_template``.
        top_k: cut-off of the top-k overlap; kendall: also compute Kendall's tau-b.
        bridge_tau, bridge_radius: temperature and lift radius of the data-level fidelity.
        robustness_images: test images used by robustness (evenly spaced; 0: all).
        robustness_students: how many of the protocol's students are attacked.
        jpeg_quality, noise_sigma, pgd_image_eps, pgd_text_eps, pgd_steps, quant_bits: the
            perturbation settings; seed: seeds noise and PGD starts.
    """

    fidelity: bool = False
    transfer: bool = False
    robustness: bool = False
    zero_shot: bool = False
    top_k: int = 10
    kendall: bool = True
    bridge_tau: float = 0.07
    bridge_radius: float = 1.0
    fidelity_geometries: tuple[str, ...] = GEOMETRIES
    transfer_geometries: tuple[str, ...] = GEOMETRIES
    transfer_widths: tuple[int, ...] = (128,)
    transfer_heads: tuple[str, ...] = ()
    robustness_images: int = 64
    robustness_students: int = 1
    perturbations: tuple[str, ...] = PERTURBATIONS
    jpeg_quality: int = 75
    noise_sigma: float = 0.01
    pgd_image_eps: float = 2.0 / 255.0
    pgd_text_eps: float = 0.05
    pgd_steps: int = 10
    quant_bits: int = 4
    seed: int = 0
    zero_shot_template: str = "a photo of a {class}"
    zero_shot_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fidelity_geometries", "transfer_geometries", "transfer_heads"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "transfer_widths", tuple(int(w) for w in self.transfer_widths))
        object.__setattr__(self, "perturbations", tuple(self.perturbations))
        object.__setattr__(self, "zero_shot_labels", tuple(self.zero_shot_labels))
        for name in ("fidelity_geometries", "transfer_geometries"):
            bad = sorted(set(getattr(self, name)) - set(GEOMETRIES))
            if bad or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty subset of {GEOMETRIES}, got {bad}")
        bad = sorted(set(self.transfer_heads) - set(HEADS))
        if bad:
            raise ValueError(f"transfer_heads must be a subset of {HEADS}, got {bad}")
        if any(w < 1 for w in self.transfer_widths):
            raise ValueError(f"transfer_widths must be >= 1, got {self.transfer_widths}")
        bad = sorted(set(self.perturbations) - set(PERTURBATIONS))
        if bad or not self.perturbations:
            raise ValueError(
                f"perturbations must be a non-empty subset of {PERTURBATIONS}, got {bad}"
            )
        for name in ("top_k", "robustness_students", "pgd_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.robustness_images) < 0:
            raise ValueError(f"robustness_images must be >= 0, got {self.robustness_images}")
        if not (1 <= int(self.jpeg_quality) <= 95):
            raise ValueError(f"jpeg_quality must be in [1, 95], got {self.jpeg_quality}")
        if not (1 <= int(self.quant_bits) <= 16):
            raise ValueError(f"quant_bits must be in [1, 16], got {self.quant_bits}")
        for name in ("bridge_tau", "bridge_radius"):
            if not (getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("noise_sigma", "pgd_image_eps", "pgd_text_eps"):
            if not (getattr(self, name) >= 0):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if "{class}" not in self.zero_shot_template:
            raise ValueError(
                f"zero_shot_template must contain '{{class}}', got {self.zero_shot_template!r}"
            )

    @property
    def any(self) -> bool:
        """Whether any measure is on."""
        return self.fidelity or self.transfer or self.robustness or self.zero_shot

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalExtras:
        """Rebuild from :meth:`to_dict`; unknown keys are refused (named)."""
        return config_from_dict(cls, data)

    def replace(self, **changes: Any) -> EvalExtras:
        """A copy with ``changes`` applied (validated)."""
        return replace(self, **changes)
