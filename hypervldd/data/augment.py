"""Differentiable augmentation of pixel batches (DSA-style), seeded and replayable.

Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021) applies the *same*
randomly drawn transformation to real and synthetic images, so that gradients
flow through the augmentation into the synthetic pixels. Here the random draw and
the application are separate steps:

* :meth:`DiffAugment.sample` draws an :class:`AugmentParams` from an explicit
  ``torch.Generator`` (seeded: the same generator state gives the same params);
* :meth:`DiffAugment.apply` applies given params; it is a differentiable function of
  the pixels, so applying the same params twice replays the transformation exactly
  (the recompute pass of a memory-saving distiller, or a siamese real/synthetic pair).

Operations (DSA's defaults):

* ``"color"``: brightness ``x + (b - 0.5) * brightness`` with ``b ~ U(0, 1)``;
  saturation ``m_c + (x - m_c) * s`` with ``s ~ U(0, saturation)`` and ``m_c`` the
  per-pixel mean over channels; contrast ``m + (x - m) * (c + 0.5)`` with
  ``c ~ U(0, 1)`` and ``m`` the per-image mean;
* ``"crop"``: translation by a whole number of pixels, up to ``translate`` times the
  side (zero padding), the differentiable stand-in for a random crop;
* ``"flip"``: horizontal flip with probability 1/2;
* ``"scale"``: per-axis scaling by ``s ~ U(1/scale, scale)`` about the centre
  (bilinear, zero padding).

The geometric operations are one affine resampling (``grid_sample``), so a shift by
whole pixels and a flip are exact (bilinear weights at pixel centres are 0 or 1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

__all__ = ["AugmentParams", "DiffAugment", "AUGMENT_OPS"]

AUGMENT_OPS = ("color", "crop", "flip", "scale")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of every augmentation parameter, for ``n`` images (or 1, broadcast).

    Attributes:
        flip: ``(n,)`` bool, flip horizontally.
        shift: ``(n, 2)`` int64 ``(dx, dy)`` translation in pixels (right, down).
        scale: ``(n, 2)`` float ``(sx, sy)`` magnification (``> 1`` zooms in).
        brightness: ``(n,)`` float, added to every pixel.
        saturation: ``(n,)`` float, factor on the deviation from the channel mean.
        contrast: ``(n,)`` float, factor on the deviation from the image mean.
    """

    flip: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor
    brightness: torch.Tensor
    saturation: torch.Tensor
    contrast: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.flip.shape[0])

    @classmethod
    def identity(cls, n: int = 1) -> AugmentParams:
        """Parameters that leave images unchanged."""
        return cls(
            flip=torch.zeros(n, dtype=torch.bool),
            shift=torch.zeros(n, 2, dtype=torch.int64),
            scale=torch.ones(n, 2),
            brightness=torch.zeros(n),
            saturation=torch.ones(n),
            contrast=torch.ones(n),
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """The parameters by name (e.g. to store them next to a checkpoint)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class DiffAugment:
    """DSA-style differentiable augmentation.

    Args:
        ops: subset of :data:`AUGMENT_OPS`, applied in the order colour, then one
            affine resampling for crop/flip/scale.
        translate: largest shift as a fraction of the side (DSA: 0.125).
        scale: largest magnification ``> 1``; factors are ``U(1/scale, scale)`` (DSA: 1.2).
        brightness, saturation: ranges of the colour operations (DSA: 1.0, 2.0).
    """

    ops: tuple[str, ...] = AUGMENT_OPS
    translate: float = 0.125
    scale: float = 1.2
    brightness: float = 1.0
    saturation: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        bad = sorted(set(self.ops) - set(AUGMENT_OPS))
        if bad:
            raise ValueError(f"ops has unknown operation(s) {bad}; allowed: {AUGMENT_OPS}")
        if not (0 <= self.translate < 1):
            raise ValueError(f"translate must lie in [0, 1), got {self.translate}")
        if not (self.scale >= 1):
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.brightness < 0 or self.saturation < 0:
            raise ValueError(
                f"brightness and saturation must be >= 0, got {self.brightness}, {self.saturation}"
            )

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> AugmentParams:
        """Draw parameters for ``n`` images of ``height x width`` pixels.

        Every operation draws its numbers whether or not it is enabled, so the
        generator advances by the same amount for any ``ops`` (switching an
        operation off does not change the others' draws).
        """
        if int(n) < 1 or int(height) < 1 or int(width) < 1:
            raise ValueError(f"n, height and width must be >= 1, got {n}, {height}, {width}")
        g = generator
        u_flip = torch.rand(n, generator=g)
        u_shift = torch.rand(n, 2, generator=g)
        u_scale = torch.rand(n, 2, generator=g)
        u_color = torch.rand(n, 3, generator=g)
        out = AugmentParams.identity(n)
        kw = out.tensors()
        if "flip" in self.ops:
            kw["flip"] = u_flip < 0.5
        if "crop" in self.ops:
            lim = torch.tensor([int(self.translate * width), int(self.translate * height)])
            # Integers uniform on [-lim, lim].
            kw["shift"] = (u_shift * (2 * lim + 1)).floor().to(torch.int64) - lim
        if "scale" in self.ops:
            lo = 1.0 / self.scale
            kw["scale"] = lo + u_scale * (self.scale - lo)
        if "color" in self.ops:
            kw["brightness"] = (u_color[:, 0] - 0.5) * self.brightness
            kw["saturation"] = u_color[:, 1] * self.saturation
            kw["contrast"] = u_color[:, 2] + 0.5
        return AugmentParams(**kw)

    def apply(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Augment ``x (N, C, H, W)`` with ``params`` (``n == N`` or ``n == 1``).

        Differentiable in ``x``; the same params give the same output.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
            raise ValueError(
                f"x must be a floating-point (N, C, H, W) tensor, got "
                f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
            )
        n = x.shape[0]
        if params.n not in (1, n):
            raise ValueError(f"params hold {params.n} draws for a batch of {n} images")
        dt, dev = x.dtype, x.device

        def col(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=dev, dtype=dt).view(-1, 1, 1, 1)

        if "color" in self.ops:
            x = x + col(params.brightness)
            if x.shape[1] > 1:
                m = x.mean(1, keepdim=True)
                x = m + (x - m) * col(params.saturation)
            m = x.mean((1, 2, 3), keepdim=True)
            x = m + (x - m) * col(params.contrast)
        if any(op in self.ops for op in ("crop", "flip", "scale")):
            x = self._resample(x, params)
        return x

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        params: AugmentParams | None = None,
    ) -> torch.Tensor:
        """``apply(x, params)``, drawing params from ``generator`` when none are given."""
        if params is None:
            if generator is None:
                raise ValueError("pass a generator (to draw parameters) or params (to replay)")
            params = self.sample(x.shape[0], x.shape[2], x.shape[3], generator)
        return self.apply(x, params)

    @staticmethod
    def _resample(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        n, _, h, w = x.shape
        dt, dev = x.dtype, x.device
        flip = params.flip.to(dev)
        sx = params.scale[:, 0].to(device=dev, dtype=dt)
        sy = params.scale[:, 1].to(device=dev, dtype=dt)
        fx = torch.where(flip, -1.0, 1.0).to(dt)
        # Output pixel u samples input at (f u) / s - 2 shift / side in normalised
        # coordinates (align_corners=False: one pixel is 2 / side wide).
        tx = -2.0 * params.shift[:, 0].to(device=dev, dtype=dt) / w
        ty = -2.0 * params.shift[:, 1].to(device=dev, dtype=dt) / h
        theta = torch.zeros(params.n, 2, 3, dtype=dt, device=dev)
        theta[:, 0, 0] = fx / sx
        theta[:, 0, 2] = tx
        theta[:, 1, 1] = 1.0 / sy
        theta[:, 1, 2] = ty
        theta = theta.expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
