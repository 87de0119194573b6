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

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..eval._config import config_to_dict
from ..eval.pixel import OpenCLIPBackbone, PixelStudent, train_pixel_student
from ..eval.protocol import PixelStudentConfig, StudentConfig
from ._io import ArtifactError
from .artifact import SyntheticSet
from .base import RealData
from .engine import EngineConfig
from .experts import (
    ExpertBuffer,
    ExpertConfig,
    ParamLayout,
    _open_buffer,
    _record_experts,
    _side_layouts,
)
from .lora import INITS, add_lora
from .matching import StepLoss
from .pixels import _images_digest, _RealPixels, check_real_images
from .trajectory import (
    MTTDistiller,
    _check_matching_settings,
    _step_batch,
    _step_targets,
    _student_params,
    soft_infonce,
)

__all__ = [
    "MTTPixelsConfig",
    "MTTPixels",
    "adapt_tower",
    "base_tower",
    "build_pixel_expert",
    "pixel_side_names",
    "train_pixel_experts",
    "make_pixel_step_loss",
]


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
        _check_matching_settings(self, "mtt_pixels: ")
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


# -- the adapted student ----------------------------------------------------------------------
def adapt_tower(tower: nn.Module, config: MTTPixelsConfig, generator: torch.Generator) -> list[str]:
    """Give the ``nn.Linear`` layers of ``tower`` named by ``config.lora_targets`` adapters.

    Freezes the rest of the tower. Returns the adapted layers' names.

    Raises:
        ValueError: a pattern of ``lora_targets`` matches no linear layer (the message
            lists the tower's linear layers).

    Example:
        >>> from torch import nn
        >>> tower = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> adapt_tower(tower, MTTPixelsConfig(lora_rank=2, lora_targets=("2",)),
        ...             torch.Generator().manual_seed(0))
        ['2']
    """
    names = [n for n, m in tower.named_modules() if isinstance(m, nn.Linear)]
    for pattern in config.lora_targets:
        if not any(fnmatch(n, pattern) for n in names):
            shown = ", ".join(names[:12]) + (
                f", ... ({len(names)} in all)" if len(names) > 12 else ""
            )
            raise ValueError(
                f"mtt_pixels: lora_targets pattern {pattern!r} matches no nn.Linear layer of "
                f"the image tower; its linear layers are: {shown or 'none'}"
            )
    return add_lora(
        tower,
        int(config.lora_rank),
        scale=config.lora_scale,
        init=config.lora_init,
        train_a=bool(config.lora_train_a),
        train_bias=bool(config.lora_train_bias),
        include=lambda n, _m: any(fnmatch(n, p) for p in config.lora_targets),
        generator=generator,
    )


def _expert_pixel_config(config: MTTPixelsConfig) -> PixelStudentConfig:
    # The frozen tower comes from base_tower (checkpoint read once); every trainable part
    # trains at the experts' rate because the inner loop has one step size per side.
    return replace(
        config.pixel, checkpoint=None, train_backbone=True, backbone_lr=config.experts.lr
    )


def base_tower(config: MTTPixelsConfig) -> OpenCLIPBackbone:
    """The frozen image tower every expert shares: ``pixel.checkpoint``'s weights, or a
    random tower drawn from ``experts.seed``."""
    arch = config.pixel.backbone.split(":", 1)[1]
    gen = torch.Generator().manual_seed(int(config.experts.seed))
    return OpenCLIPBackbone(arch, config.pixel.checkpoint, gen)


def build_pixel_expert(
    image_shape: tuple[int, int, int],
    text_dim: int,
    config: MTTPixelsConfig,
    tower_state: dict[str, torch.Tensor],
    generator: torch.Generator,
    lora_seed: int = 0,
) -> PixelStudent:
    """A fresh pixel student as the experts train it: shared tower, adapters, new heads.

    The heads come from ``generator``, the adapters' ``A`` from
    ``Generator().manual_seed(lora_seed)``, the tower's weights from ``tower_state``
    (:func:`base_tower`'s ``state_dict()``).
    """
    st = PixelStudent(
        image_shape, text_dim, config.student, _expert_pixel_config(config), generator
    )
    st.backbone.load_state_dict(tower_state)
    adapt_tower(st.backbone.visual, config, torch.Generator().manual_seed(int(lora_seed)))
    return st


def pixel_side_names(student: PixelStudent) -> dict[str, list[str]]:
    """Trainable parameters per side: image = tower adapters (and biases) + image head."""
    out = {
        "image": [
            f"backbone.{n}" for n, p in student.backbone.named_parameters() if p.requires_grad
        ]
        + [f"image_head.{n}" for n, p in student.image_head.named_parameters() if p.requires_grad],
        "text": [
            f"text_head.{n}" for n, p in student.text_head.named_parameters() if p.requires_grad
        ],
    }
    for side, names in out.items():
        if not names:
            raise ValueError(f"the pixel student's {side} side has no trainable parameter")
    return out


def _init_state(student: PixelStudent) -> dict[str, torch.Tensor]:
    # Everything but the frozen tower, which the buffer's identity pins by its digest.
    return {
        k: v.detach().clone()
        for k, v in student.state_dict().items()
        if not k.startswith("backbone.") or ".lora_" in k
    }


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        # Raw bytes (any dtype, 0-d included): reshape(-1) makes a 1-d contiguous copy.
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def train_pixel_experts(
    data: RealData,
    images: torch.Tensor,
    config: MTTPixelsConfig,
    directory: str | Path | None = None,
    *,
    progress: bool = False,
) -> ExpertBuffer:
    """Train (or resume) ``config.experts.num_experts`` adapted pixel students on real pixels.

    Args:
        data: validated real data; its captions' text features are the text side.
        images: ``(N_img, C, H, W)`` real pixels in ``[0, 1]`` (one per real image).
        config: the method config (student, pixel encoder, LoRA, expert recipe).
        directory: the buffer directory (experts there with the same identity are kept);
            ``None`` keeps the buffer in memory.
        progress: a tqdm bar over experts.

    Returns:
        An :class:`~hypervldd.distill.experts.ExpertBuffer` whose ``"image"`` side holds
        the adapters and the image head, ``"text"`` the text head.

    Raises:
        ValueError: ``directory`` holds a buffer of other data, images, tower or recipe.
    """
    images = check_real_images(images, data.num_images).float()
    experts = config.experts
    shape = tuple(int(s) for s in images.shape[1:])
    d_t = int(data.pair_text.shape[1])
    tower_state = base_tower(config).state_dict()
    exp = config_to_dict(experts)
    exp.pop("num_experts")  # a buffer may grow; the recipe may not change
    identity = {
        "student": config_to_dict(config.student),
        "experts": exp,
        "pixel": config_to_dict(_expert_pixel_config(config)),
        "lora": {
            k: config_to_dict(config)[k]
            for k in ("lora_rank", "lora_alpha", "lora_targets", "lora_init")
            + ("lora_train_a", "lora_train_bias")
        },
        "tower_sha256": _digest(tower_state),
        "data_fingerprint": data.fingerprint,
        "real_images": _images_digest(images),
        "dims": [*shape, d_t],
        "loss": "symmetric_infonce(-d/tau) on augmented pixels, captions of one image positives",
    }
    proto = experts.protocol(config.student)
    probe = build_pixel_expert(shape, d_t, config, tower_state, torch.Generator().manual_seed(0))
    names = pixel_side_names(probe)
    params = dict(probe.named_parameters())
    layouts = _side_layouts(params, names)
    del probe, params
    buf = _open_buffer(directory, identity, layouts)

    def build(gen: torch.Generator, seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        st = build_pixel_expert(shape, d_t, config, tower_state, gen, lora_seed=seed + 2**40)
        return st, _init_state(st)

    def fit(st: nn.Module, gen: torch.Generator, on_epoch: Callable[[int], None]) -> list[float]:
        return train_pixel_student(
            st,
            images,
            data.pair_text,
            proto,
            gen,
            image_index=data.pair_group,
            group=data.pair_group,
            on_epoch=on_epoch,
        )

    return _record_experts(
        buf, experts, layouts, build, fit, progress=progress, desc="pixel experts"
    )


# -- matching -----------------------------------------------------------------------------------
class _PixelObjective(nn.Module):
    """The experts' loss on (augmented) pixels, for ``functional_call``."""

    def __init__(self, student: PixelStudent) -> None:
        super().__init__()
        self.student = student

    def forward(
        self,
        pixels: torch.Tensor,
        text: torch.Tensor,
        targets: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        st = self.student
        img = st.lift(st.image_tangent(pixels, generator))
        return soft_infonce(st.logits(img, st.encode_text(text)), targets)


def make_pixel_step_loss(
    objective: _PixelObjective,
    layouts: dict[str, ParamLayout],
    step_seeds: Sequence[int],
    *,
    batch: int | None,
    sim_scale: float = 1.0,
) -> StepLoss:
    """The inner loss of step ``i`` on inputs ``(pixels, text[, diag, left, right])``.

    Step ``i``'s mini-batch and augmentation come from
    ``Generator().manual_seed(step_seeds[i])`` (replayed by the recomputation).
    Attention runs on the math SDPA backend: the fused kernels have no double backward.
    """

    def step_loss(
        i: int, params: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        pixels, text = inputs[0], inputs[1]
        m = pixels.shape[0]
        g = torch.Generator().manual_seed(int(step_seeds[i]))
        idx = _step_batch(m, batch, g)
        targets = _step_targets(inputs, idx, sim_scale)
        pd = _student_params(layouts, params)
        with sdpa_kernel([SDPBackend.MATH]):
            return functional_call(objective, pd, (pixels[idx], text[idx], targets, g))

    return step_loss


class MTTPixels(_RealPixels, MTTDistiller):
    """Trajectory matching over synthetic pixels, LoRA on an open_clip image tower.

    ``fit(real, budget, seed, *, real_images, checkpoint_dir=None, resume=False,
    validate=None, progress=False)``: ``real_images (N_img, C, H, W)`` in ``[0, 1]`` are
    the pixels of ``real``'s images. The synthetic set starts from real pairs (their
    pixels, their L2-normalised text features); pixels stay in ``[0, 1]``. Experts go
    to ``buffer_dir`` or ``checkpoint_dir/experts`` (or memory). Checkpoints, resume,
    validation and the NaN stop are the engine's; a checkpoint's identity includes a
    digest of the real images.

    Example:
        >>> MTTPixels({"lora_rank": 4, "lora_targets": ["*mlp*"]}).config.lora_scale
        2.0
    """

    method = "mtt_pixels"
    Config = MTTPixelsConfig
    image_kind = "pixels"

    def _fit(
        self,
        data: RealData,
        budget: int,
        seed: int,
        *,
        real_images: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SyntheticSet:
        images = self._keep_real_images(real_images, data)
        if images.shape[1] != 3:
            raise ValueError(
                f"mtt_pixels: open_clip towers take RGB images, got {images.shape[1]} "
                "channel(s) in real_images"
            )
        return super()._fit(data, budget, seed, **kwargs)

    def _resolved(self) -> dict[str, Any]:
        return {**super()._resolved(), "image_source": "optimised-pixels"}

    def _setup(self, data: RealData, budget: int, gen: torch.Generator) -> None:
        cfg = self.config
        if cfg.similarity_rank:
            with torch.no_grad():  # LoRS: L ~ N(0, 1), R = 0, so S starts at I
                self._learned.sim_left.normal_(generator=gen)
        self._buffer = train_pixel_experts(
            data, self._images, cfg, self._buffer_dir, progress=self._progress
        )
        shape = tuple(int(s) for s in self._images.shape[1:])
        tower = base_tower(cfg).state_dict()
        template = build_pixel_expert(
            shape, int(data.pair_text.shape[1]), cfg, tower, torch.Generator().manual_seed(0)
        )
        # eval(): a tower with dropout would draw from the global RNG, which the
        # recomputation cannot replay.
        template.requires_grad_(False).eval()
        self._objective = _PixelObjective(template)

    def _load_expert_state(self, init_state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self._objective.student.load_state_dict(init_state, strict=False)
        lost = [k for k in missing if not k.startswith("backbone.") or ".lora_" in k]
        if unexpected or lost:
            raise ArtifactError(
                f"expert state does not fit the adapted pixel student (unexpected {unexpected}, "
                f"missing {lost})"
            )

    def _step_loss(self, seeds: list[int]) -> StepLoss:
        cfg = self.config
        rank = int(cfg.similarity_rank)
        return make_pixel_step_loss(
            self._objective,
            self._buffer.layouts,
            seeds,
            batch=cfg.batch_syn,
            sim_scale=float(cfg.similarity_alpha) / rank if rank else 1.0,
        )

    def _constrain(self, image: torch.Tensor, text: torch.Tensor) -> None:
        with torch.no_grad():
            image.clamp_(0.0, 1.0)  # pixels live in [0, 1]
