"""Pixel-space distillation: real-image coresets and gradient-based pixel matching.

Synthetic images as pixels (``image_kind == "pixels"``, ``(M, C, H, W)`` in
``[0, 1]``), scored by the pixel student of :mod:`hypervldd.eval.pixel`.

* :func:`coreset_pixels` turns any feature-space set that selected real pairs (a
  coreset; ``source_indices`` are caption-pair indices) into the same pairs with
  the real images' pixels.
* ``pixel_match`` (:class:`PixelMatch`): distribution matching with randomly
  initialised ConvNets (Zhao & Bilen, WACV 2023) under differentiable siamese
  augmentation (Zhao & Bilen, ICML 2021), extended to pairs by a cross-covariance
  term (the CovMatch statistic, Lee & Chung, NeurIPS 2025) between the image
  embeddings and the text embeddings. Each iteration draws a fresh ConvNet
  ``f`` (the pixel student's backbone, random weights) and one augmentation ``A``
  applied to the real batch and to the synthetic set alike, and minimises

      |mean f(A(x_real)) - mean f(A(x_syn))|^2
        + lam * |C(f(A(x_real)), t_real) - C(f(A(x_syn)), t_syn)|_F^2

  over the synthetic pixels ``x_syn`` and texts ``t_syn`` (texts L2-normalised,
  embeddings ``f`` L2-normalised per row so both terms are scale-free). Pixels are
  clamped to ``[0, 1]`` after each step.

Every random draw (initial pairs, real batches, network weights, augmentation)
comes from one generator seeded with the run's seed. The optimisation loop is the
engine's (:class:`~hypervldd.distill.engine.GradientDistiller`): checkpoints, resume,
validation and the NaN stop are shared with the feature methods.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..data.augment import AUGMENT_OPS, DiffAugment
from ..eval.pixel import CLIP_MEAN, CLIP_STD, ConvNet
from .artifact import SyntheticSet
from .base import RealData
from .covmatch import cross_covariance
from .engine import EngineConfig, GradientDistiller

__all__ = [
    "PixelMatchConfig",
    "PixelMatch",
    "coreset_pixels",
    "check_real_images",
    "matching_loss",
]


def check_real_images(real_images: Any, num_images: int) -> torch.Tensor:
    """Validate real pixels: a finite float ``(num_images, C, H, W)`` tensor in ``[0, 1]``."""
    if not isinstance(real_images, torch.Tensor) or real_images.dim() != 4:
        raise ValueError("real_images must be a (N_img, C, H, W) tensor of pixels")
    if not real_images.is_floating_point():
        raise ValueError(f"real_images must be floating point in [0, 1], got {real_images.dtype}")
    if real_images.shape[0] != num_images:
        raise ValueError(
            f"real_images must hold one image per real image ({num_images}), got "
            f"{real_images.shape[0]}"
        )
    if not bool(torch.isfinite(real_images).all()):
        raise ValueError("real_images hold NaN or inf")
    if float(real_images.min()) < 0 or float(real_images.max()) > 1:
        raise ValueError("real_images must lie in [0, 1]")
    return real_images


def _images_digest(images: torch.Tensor) -> dict[str, Any]:
    # Pins the real pixels in a checkpoint's or buffer's identity (features do not).
    raw = images.detach().float().contiguous().numpy().tobytes()
    return {"shape": list(images.shape), "sha256": hashlib.sha256(raw).hexdigest()}


class _RealPixels:
    """What the pixel methods share about the real images their synthetic pixels start from.

    ``_keep_real_images`` validates and keeps them with their digest; the digest joins
    the checkpoint identity and each synthetic pair starts from its real image's pixels.
    Mixed in before the distiller base, whose ``_identity`` and ``_initial_tensors`` it
    extends.
    """

    method: str
    _images: torch.Tensor
    _images_digest: dict[str, Any]

    def _keep_real_images(self, real_images: Any, data: RealData) -> torch.Tensor:
        if real_images is None:
            raise ValueError(f"{self.method} needs real_images (N_img, C, H, W) in [0, 1]")
        self._images = check_real_images(real_images, data.num_images).float()
        self._images_digest = _images_digest(self._images)
        return self._images

    def _identity(self, data: RealData, budget: int, seed: int) -> dict[str, Any]:
        # The real pixels are not in the features' fingerprint: resume must refuse others.
        return {**super()._identity(data, budget, seed), "real_images": self._images_digest}

    def _initial_tensors(
        self, data: RealData, src: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, text = super()._initial_tensors(data, src)  # the texts as every method starts
        return self._images[data.pair_group[src]].clone(), text


def coreset_pixels(synthetic: SyntheticSet, real_images: torch.Tensor, real: Any) -> SyntheticSet:
    """The pairs of a real-pair selection with the real images' pixels.

    Args:
        synthetic: a feature-space set whose ``source_indices`` are caption-pair
            indices into ``real`` (coresets; the initial pairs of gradient methods).
        real_images: ``(N_img, C, H, W)`` pixels of ``real``'s images, in ``[0, 1]``.
        real: the real features the set was selected from (for ``txt2img``).

    Returns:
        A copy with ``image_kind == "pixels"`` and ``config["resolved"]["image_source"]
        == "real-image"``; texts are unchanged.
    """
    from .base import prepare_real

    if synthetic.source_indices is None:
        raise ValueError("the set records no source_indices: it did not select real pairs")
    data = prepare_real(real)
    imgs = check_real_images(real_images, data.num_images)
    idx = synthetic.source_indices
    if int(idx.max()) >= data.num_pairs:
        raise ValueError("source_indices exceed the real pairs: pass the features it came from")
    cfg = dict(synthetic.config)
    cfg["resolved"] = {**dict(cfg.get("resolved", {})), "image_source": "real-image"}
    return SyntheticSet(
        image=imgs[data.pair_group[idx]].float().clone(),
        text=synthetic.text.clone(),
        method=synthetic.method,
        config=cfg,
        image_kind="pixels",
        similarity=synthetic.similarity,
        learned_lrs=dict(synthetic.learned_lrs),
        source_indices=idx.clone(),
        data_fingerprint=synthetic.data_fingerprint,
        encoders=dict(synthetic.encoders),
        seed=synthetic.seed,
        history=list(synthetic.history),
    )


def matching_loss(
    net: torch.nn.Module,
    x_real: torch.Tensor,
    t_real: torch.Tensor,
    x_syn: torch.Tensor,
    t_syn: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """The ``pixel_match`` objective for one network (see the module docstring).

    ``x_* (N, C, H, W)`` standardised (and augmented) pixels, ``t_* (N, D_t)``
    L2-normalised texts. The real side carries no gradient.
    """
    with torch.no_grad():
        h_real = F.normalize(net(x_real), dim=-1)
    h_syn = F.normalize(net(x_syn), dim=-1)
    loss = (h_real.mean(0) - h_syn.mean(0)).pow(2).sum()
    if lam > 0:
        diff = cross_covariance(h_real, t_real) - cross_covariance(h_syn, t_syn)
        loss = loss + lam * diff.pow(2).sum()
    return loss


@dataclass(frozen=True)
class PixelMatchConfig:
    """Settings of ``pixel_match``.

    Attributes:
        lam: weight of the cross-covariance term.
        width, depth: the random ConvNets (as the pixel student's backbone).
        augment: differentiable siamese augmentation (subset of the DSA ops).
        engine: the optimisation (:class:`~hypervldd.distill.engine.EngineConfig`):
            SGD on the pixels and texts at lr 1, momentum 0.5 (DM's), 1,000
            iterations, 128 real pairs per step, a loss record every 50 steps;
            checkpoints, resume and validation as for every gradient method.
            ``normalize_init`` applies to the texts only (pixels stay in ``[0, 1]``).
    """

    lam: float = 1.0
    width: int = 64
    depth: int = 3
    augment: tuple[str, ...] = AUGMENT_OPS
    engine: EngineConfig = field(
        default_factory=lambda: EngineConfig(iterations=1000, real_batch_size=128, log_every=50)
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if int(self.width) < 1 or int(self.depth) < 1:
            raise ValueError(f"width and depth must be >= 1, got {self.width}, {self.depth}")
        bad = sorted(set(self.augment) - set(AUGMENT_OPS))
        if bad:
            raise ValueError(f"augment has unknown op(s) {bad}; allowed: {AUGMENT_OPS}")


class PixelMatch(_RealPixels, GradientDistiller):
    """Random-ConvNet distribution + cross-covariance matching of synthetic pixels.

    ``fit(real, budget, seed, *, real_images, checkpoint_dir=None, resume=False,
    validate=None, progress=False)``; ``real_images`` are the ``(N_img, C, H, W)``
    pixels (in ``[0, 1]``) of ``real``'s images. The engine's loop runs it, so it
    checkpoints, resumes to the identical artifact and stops on NaN like the feature
    methods; the real images' digest is part of a checkpoint's identity.

    Not in the feature-method registry (``available_methods()``), whose methods
    all run on features alone; the pixel comparison of :mod:`hypervldd.pipeline`
    (:data:`PIXEL_METHODS`) uses it.
    """

    method = "pixel_match"
    Config = PixelMatchConfig
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
        self._keep_real_images(real_images, data)
        return super()._fit(data, budget, seed, **kwargs)

    def _resolved(self) -> dict[str, Any]:
        return {"image_source": "optimised-pixels"}

    def _setup(self, data: RealData, budget: int, gen: torch.Generator) -> None:
        shape = tuple(int(s) for s in self._images.shape[1:])
        c = shape[0]
        self._shape = shape
        self._mean = torch.tensor(CLIP_MEAN if c == 3 else [0.5] * c).view(1, c, 1, 1)
        self._std = torch.tensor(CLIP_STD if c == 3 else [0.25] * c).view(1, c, 1, 1)
        self._aug = DiffAugment(ops=self.config.augment) if self.config.augment else None
        self._text_real = F.normalize(data.pair_text, dim=-1)

    def _loss(
        self,
        step: int,
        image: torch.Tensor,
        text: torch.Tensor,
        data: RealData,
        gen: torch.Generator,
    ) -> torch.Tensor:
        cfg = self.config
        net = ConvNet(self._shape, int(cfg.width), int(cfg.depth), "instance", gen)
        net.requires_grad_(False)
        bs = min(int(self.engine.real_batch_size), data.num_pairs)
        idx = torch.randperm(data.num_pairs, generator=gen)[:bs]
        x_real = (self._images[data.pair_group[idx]] - self._mean) / self._std
        xs = (image - self._mean) / self._std
        if self._aug is not None:
            # Siamese: one draw, applied to the real batch and the synthetic set.
            p = self._aug.sample(1, self._shape[1], self._shape[2], gen)
            x_real, xs = self._aug.apply(x_real, p), self._aug.apply(xs, p)
        return matching_loss(net, x_real, self._text_real[idx], xs, text, cfg.lam)

    def _constrain(self, image: torch.Tensor, text: torch.Tensor) -> None:
        with torch.no_grad():
            image.clamp_(0.0, 1.0)  # pixels live in [0, 1]
