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
comes from one generator seeded with the run's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.augment import AUGMENT_OPS, DiffAugment
from ..eval.pixel import CLIP_MEAN, CLIP_STD, ConvNet
from .artifact import SyntheticSet
from .base import Distiller, RealData
from .covmatch import cross_covariance
from .engine import DivergenceError, random_init

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
        iterations: optimisation steps.
        real_batch_size: real pairs per step.
        lr_image, lr_text, momentum: SGD on the pixels and texts (DM: lr 1, momentum 0.5).
        lam: weight of the cross-covariance term.
        width, depth: the random ConvNets (as the pixel student's backbone).
        augment: differentiable siamese augmentation (subset of the DSA ops).
        log_every: steps between loss records in the history.
    """

    iterations: int = 1000
    real_batch_size: int = 128
    lr_image: float = 1.0
    lr_text: float = 1.0
    momentum: float = 0.5
    lam: float = 1.0
    width: int = 64
    depth: int = 3
    augment: tuple[str, ...] = AUGMENT_OPS
    log_every: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        if int(self.iterations) < 1 or int(self.real_batch_size) < 2:
            raise ValueError(
                f"iterations must be >= 1 and real_batch_size >= 2, got {self.iterations}, "
                f"{self.real_batch_size}"
            )
        if not (self.lr_image > 0 and self.lr_text > 0) or self.momentum < 0 or self.lam < 0:
            raise ValueError("lr_image, lr_text must be > 0; momentum and lam >= 0")
        if int(self.width) < 1 or int(self.depth) < 1 or int(self.log_every) < 1:
            raise ValueError("width, depth and log_every must be >= 1")
        bad = sorted(set(self.augment) - set(AUGMENT_OPS))
        if bad:
            raise ValueError(f"augment has unknown op(s) {bad}; allowed: {AUGMENT_OPS}")


class PixelMatch(Distiller):
    """Random-ConvNet distribution + cross-covariance matching of synthetic pixels.

    ``fit(real, budget, seed, *, real_images, progress=False)``; ``real_images`` are
    the ``(N_img, C, H, W)`` pixels (in ``[0, 1]``) of ``real``'s images.

    Not in the feature-method registry (``available_methods()``), whose methods
    all run on features alone; the pixel comparison of :mod:`hypervldd.pipeline`
    (:data:`PIXEL_METHODS`) uses it.
    """

    method = "pixel_match"
    Config = PixelMatchConfig

    def _fit(
        self,
        data: RealData,
        budget: int,
        seed: int,
        *,
        real_images: torch.Tensor | None = None,
        progress: bool = False,
    ) -> SyntheticSet:
        if real_images is None:
            raise ValueError("pixel_match needs real_images (N_img, C, H, W) in [0, 1]")
        imgs = check_real_images(real_images, data.num_images).float()
        cfg = self.config
        gen = torch.Generator().manual_seed(seed)
        src = random_init(data, budget, gen)
        x_syn = imgs[data.pair_group[src]].clone().requires_grad_(True)
        t_syn = F.normalize(data.pair_text[src], dim=-1).clone().requires_grad_(True)
        t_real_all = F.normalize(data.pair_text, dim=-1)
        opt = torch.optim.SGD(
            [{"params": [x_syn], "lr": cfg.lr_image}, {"params": [t_syn], "lr": cfg.lr_text}],
            lr=cfg.lr_image,
            momentum=cfg.momentum,
        )
        shape = tuple(int(s) for s in imgs.shape[1:])
        c = shape[0]
        mean = torch.tensor(CLIP_MEAN if c == 3 else [0.5] * c).view(1, c, 1, 1)
        std = torch.tensor(CLIP_STD if c == 3 else [0.25] * c).view(1, c, 1, 1)
        aug = DiffAugment(ops=cfg.augment) if cfg.augment else None
        bs = min(int(cfg.real_batch_size), data.num_pairs)
        history: list[dict[str, Any]] = []
        bar = tqdm(total=cfg.iterations, disable=not progress, desc=self.method)
        try:
            for step in range(1, int(cfg.iterations) + 1):
                net = ConvNet(shape, int(cfg.width), int(cfg.depth), "instance", gen)
                net.requires_grad_(False)
                idx = torch.randperm(data.num_pairs, generator=gen)[:bs]
                x_real = (imgs[data.pair_group[idx]] - mean) / std
                xs = (x_syn - mean) / std
                if aug is not None:
                    # Siamese: one draw, applied to the real batch and the synthetic set.
                    p = aug.sample(1, shape[1], shape[2], gen)
                    x_real, xs = aug.apply(x_real, p), aug.apply(xs, p)
                loss = matching_loss(net, x_real, t_real_all[idx], xs, t_syn, cfg.lam)
                if not bool(torch.isfinite(loss)):
                    raise DivergenceError(
                        f"pixel_match: the loss became non-finite at step {step}; lower "
                        "lr_image / lr_text"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x_syn.clamp_(0.0, 1.0)
                if step % cfg.log_every == 0 or step == cfg.iterations:
                    history.append({"step": step, "loss": float(loss.detach())})
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                bar.update(1)
        finally:
            bar.close()
        if not bool(torch.isfinite(t_syn).all()):
            raise DivergenceError("pixel_match: the synthetic text became NaN/inf")
        return SyntheticSet(
            image=x_syn.detach().clone(),
            text=t_syn.detach().clone(),
            method=self.method,
            config={**self.config_dict(), "resolved": {"image_source": "optimised-pixels"}},
            image_kind="pixels",
            source_indices=src.clone(),
            data_fingerprint=data.fingerprint,
            encoders=data.encoders,
            seed=seed,
            history=history,
        )
