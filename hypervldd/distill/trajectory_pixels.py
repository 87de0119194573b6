"""Trajectory matching over synthetic pixels with LoRA on an open_clip image tower (``mtt_pixels``).

VL-Distill (Wu, Zhang, Deng, Russakovsky, TMLR 2024) matches the trajectories of a
low-rank adapter of the image encoder when the encoder is a ViT. Here the student is
the pixel student of :mod:`hypervldd.eval.pixel` (``pixels -> standardise -> [augment]
-> open_clip image tower -> image head``; the text side a head on frozen text features)
with LoRA adapters (:mod:`.lora`) on the tower's ``nn.Linear`` layers:

1. **Experts** train the adapters and both heads on the real pixels (plain SGD at
   ``experts.lr`` for everything, since the inner loop has one step size per side; the
   tower's own weights stay frozen and are the same for every expert: the checkpoint's,
   or a random tower drawn from ``experts.seed``). The buffer (:class:`.experts.ExpertBuffer`)
   stores per epoch the *image* side (adapters, trained biases, image head) and the
   *text* side (text head), and per expert the initial state without the frozen tower.
2. **Matching** starts the student at an expert's epoch ``e``, takes ``syn_steps`` SGD
   steps of the experts' loss on the synthetic pixels through the adapted tower (with the
   experts' augmentation, replayed in the recomputation), and minimises the normalised
   distance to epoch ``e + expert_epochs`` (:mod:`.matching`: exact gradient, activation
   memory constant in ``syn_steps``). Pixels are clamped to ``[0, 1]`` after each step.

Like ``pixel_match`` it needs the real images (``fit(real, budget, seed, real_images=...)``)
and is therefore not in the feature-method registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..eval.protocol import PixelStudentConfig, StudentConfig
from .engine import EngineConfig
from .experts import ExpertConfig
from .lora import INITS

__all__ = ["MTTPixelsConfig"]


@dataclass(frozen=True)
class MTTPixelsConfig:
    """Settings of ``mtt_pixels`` (VL-Distill's settings where the paper gives them).

    Attributes:
        syn_steps, expert_epochs, max_start_epoch, batch_syn, lr_init, lr_lr,
        normalization, similarity_rank, similarity_alpha, lr_similarity, gradient,
        buffer_dir: as :class:`hypervldd.distill.trajectory.MTTConfig`.
        lora_rank: rank of the adapters of the tower's linear layers, clipped to
            ``min(in, out)`` per layer (a huge rank is full rank).
        lora_alpha: the adapters' multiplier is ``lora_alpha / lora_rank`` (LoRA's
            convention; the default 8 / 8 = 1 leaves the step sizes as they are).
        lora_targets: ``fnmatch`` patterns of the tower's ``nn.Linear`` layer names
            (``"*"``: all of them; ``"*mlp*"``: the MLPs of an open_clip ViT;
            ``"*attn*"``: the attention output projections). Each pattern must
            match at least one layer.
        lora_init, lora_train_a, lora_train_bias: see :class:`hypervldd.distill.lora.LoRA`.
        pixel: the pixel student's image encoder; its backbone must be
            ``"open_clip:<architecture>"`` (with ``checkpoint``, a local weights
            file, or randomly initialised). Its ``augment`` is the experts' and the
            inner loop's augmentation; ``backbone_lr`` and ``train_backbone`` are not
            used (the adapters train at ``experts.lr``).
        student: the heads, manifold and temperature (the evaluation protocol's).
        experts: the expert recipe; ``experts.lora_rank`` must stay 0 here (it adapts
            heads on features; the heads train in full).
        engine: SGD with momentum 0.5 on the pixels and texts, lr 1000 each, 2000
            iterations (the paper's Flickr settings, for its unnormalised inputs: not
            tuned here).
    """

    syn_steps: int = 8
    expert_epochs: int = 1
    max_start_epoch: int = 2
    batch_syn: int | None = None
    lr_init: float | None = None
    lr_lr: float = 1e-2
    normalization: str = "per_modality"
    similarity_rank: int = 0
    similarity_alpha: float = 1.0
    lr_similarity: float = 0.01
    gradient: str = "recompute"
    buffer_dir: str | None = None
    lora_rank: int = 8
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("*",)
    lora_init: str = "kaiming"
    lora_train_a: bool = True
    lora_train_bias: bool = False
    pixel: PixelStudentConfig = field(
        default_factory=lambda: PixelStudentConfig(backbone="open_clip:ViT-B-32")
    )
    student: StudentConfig = field(default_factory=StudentConfig)
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    engine: EngineConfig = field(
        default_factory=lambda: EngineConfig(
            iterations=2000, optimizer="sgd", momentum=0.5, lr_image=1000.0, lr_text=1000.0
        )
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        for name in ("syn_steps", "expert_epochs", "max_start_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"mtt_pixels: {name} must be >= 1, got {getattr(self, name)}")
        if self.max_start_epoch - 1 + self.expert_epochs > self.experts.epochs:
            raise ValueError(
                f"mtt_pixels: max_start_epoch - 1 + expert_epochs = "
                f"{self.max_start_epoch - 1 + self.expert_epochs} exceeds experts.epochs = "
                f"{self.experts.epochs}: the target epoch would not exist"
            )
        if self.batch_syn is not None and int(self.batch_syn) < 2:
            raise ValueError(f"mtt_pixels: batch_syn must be >= 2 or None, got {self.batch_syn}")
        if self.lr_init is not None and not (self.lr_init > 0):
            raise ValueError(f"mtt_pixels: lr_init must be > 0, got {self.lr_init}")
        if not (self.lr_lr >= 0) or not (self.lr_similarity >= 0):
            raise ValueError("mtt_pixels: lr_lr and lr_similarity must be >= 0")
        if self.normalization not in ("per_modality", "merged"):
            raise ValueError(
                "mtt_pixels: normalization must be 'per_modality' or 'merged', got "
                f"{self.normalization!r}"
            )
        if int(self.similarity_rank) < 0 or not math.isfinite(self.similarity_alpha):
            raise ValueError("mtt_pixels: similarity_rank must be >= 0 and similarity_alpha finite")
        if self.gradient not in ("recompute", "unroll"):
            raise ValueError(
                f"mtt_pixels: gradient must be 'recompute' or 'unroll', got {self.gradient!r}"
            )
        if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int):
            raise ValueError(f"mtt_pixels: lora_rank must be an int >= 1, got {self.lora_rank!r}")
        if self.lora_rank < 1:
            raise ValueError(f"mtt_pixels: lora_rank must be >= 1, got {self.lora_rank}")
        if not math.isfinite(self.lora_alpha) or self.lora_alpha == 0:
            raise ValueError(
                f"mtt_pixels: lora_alpha must be finite and non-zero, got {self.lora_alpha}"
            )
        if not self.lora_targets or not all(isinstance(t, str) and t for t in self.lora_targets):
            raise ValueError(
                "mtt_pixels: lora_targets must be a non-empty list of layer-name patterns "
                f"(e.g. ['*'] or ['*mlp*']), got {list(self.lora_targets)!r}"
            )
        if self.lora_init not in INITS:
            raise ValueError(
                f"mtt_pixels: lora_init must be one of {INITS}, got {self.lora_init!r}"
            )
        if not self.pixel.backbone.startswith("open_clip:"):
            raise ValueError(
                "mtt_pixels adapts an open_clip image tower with LoRA: pixel.backbone must be "
                f"'open_clip:<architecture>', got {self.pixel.backbone!r}"
            )
        if int(self.experts.lora_rank) != 0:
            raise ValueError(
                "mtt_pixels: experts.lora_rank adapts heads on features and must be 0 here "
                "(the heads train in full); set lora_rank for the image tower's adapters"
            )

    @property
    def lora_scale(self) -> float:
        """The adapters' multiplier ``lora_alpha / lora_rank``."""
        return float(self.lora_alpha) / int(self.lora_rank)
