"""Shared pieces of the losses: input checks, lifts, temperature and feature scale.

Distance math runs in float32 or float64 with autocast switched off: a loss called
under ``torch.autocast`` upcasts its half-precision inputs and returns a float32
value (see ``docs/losses.md``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from .. import _checks, kernels
from .._checks import check_finite, check_tensor, validation_enabled
from ..manifolds import flat_math, lorentz_math, poincare_math
from ..numerics import compute_dtype

__all__ = [
    "GEOMETRIES",
    "check_geometry",
    "check_features",
    "check_pair",
    "check_points",
    "reject_lorentz_points",
    "split_legacy_real",
    "full_precision",
    "lift",
    "pairwise_distance",
    "FeatureScale",
    "Temperature",
]

#: Geometries of the contrastive losses; ``"cosine"`` is the CLIP baseline.
GEOMETRIES = ("lorentz", "poincare", "euclidean", "cosine")


def check_geometry(geometry: str, allowed: tuple[str, ...] = GEOMETRIES) -> str:
    """Lower-cased ``geometry`` if it is one of ``allowed``, else a ``ValueError``."""
    if not isinstance(geometry, str) or geometry.lower() not in allowed:
        raise ValueError(f"geometry must be one of {allowed}, got {geometry!r}")
    return geometry.lower()


def check_features(
    x: object, name: str, *, dim: int | None = None, finite: bool = True
) -> torch.Tensor:
    """Require a finite floating 2-D tensor ``(N, D)`` with ``N >= 1`` (and ``D == dim``)."""
    x = check_tensor(x, name, min_dim=2)
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {tuple(x.shape)}")
    if finite:
        check_finite(x, name)
    return x


def check_pair(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Require two feature tensors to agree in their number of columns and device."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of columns, got"
            f" {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"{a_name} is on {a.device} but {b_name} is on {b.device}")


def _point_tolerance(x: torch.Tensor) -> float:
    # Points made in float32 and cast up keep their float32 rounding: the tolerance never
    # drops below float32's; Euclidean features miss the constraint by O(1), not by this.
    eps = max(torch.finfo(x.dtype).eps, torch.finfo(torch.float32).eps)
    return 4.0 * math.sqrt(eps)


def _lorentz_gap(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``|x_0 - sqrt(1/c + |x_s|^2)| / sqrt(1/c + |x_s|^2)`` per row ``(N,)`` (no grad)."""
    with torch.no_grad():
        t = lorentz_math.time_from_space(x[:, 1:], c).squeeze(-1)
        return (x[:, 0] - t).abs() / t


def check_points(
    x: torch.Tensor, name: str, geometry: str, c: float | torch.Tensor, *, hint: str = ""
) -> None:
    """Require points of ``geometry`` (not Euclidean features), else a ``ValueError``.

    Lorentz ``(N, D+1)``: the time coordinate equals ``sqrt(1/c + |x_s|^2)`` (relative
    tolerance ``4 sqrt(eps)``, float32's at least); Poincaré: ``c |x|^2 < 1`` (up to
    rounding). Flat points are any features: nothing to check. Skipped when validation is
    off (``hypervldd.set_validation(False)``).
    """
    if not validation_enabled() or geometry not in ("lorentz", "poincare") or not len(x):
        return
    if geometry == "lorentz" and x.shape[1] < 2:
        raise ValueError(
            f"{name} must hold Lorentz points (time, space) with D+1 >= 2 columns, got"
            f" shape {tuple(x.shape)}{hint}"
        )
    # Acceptance is the package's one point rule (every entry point agrees on which
    # points are on the manifold); below, only the message of a rejection is built.
    try:
        _checks.check_points([(x, name)], geometry, c)
        return
    except ValueError as err:
        shared = err
    tol = _point_tolerance(x)
    if geometry == "lorentz":
        gap = _lorentz_gap(x, c)
        bad = gap > tol  # NaN rows pass here: the finiteness checks name them
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} must hold points on the Lorentz model (time = sqrt(1/c + |x_s|^2)),"
                f" but row {i} has time {float(x[i, 0]):.6g} where its space part needs"
                f" {float(lorentz_math.time_from_space(x[i, 1:], c)):.6g}: these look like"
                f" Euclidean features{hint}"
            )
    else:
        with torch.no_grad():
            r2 = torch.as_tensor(c, dtype=x.dtype, device=x.device) * (x * x).sum(-1)
        bad = r2 > 1.0 + tol
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} must hold points of the Poincaré ball (c |x|^2 < 1), but row {i} has"
                f" c |x|^2 = {float(r2[i]):.6g}: these look like Euclidean features{hint}"
            )
    raise ValueError(f"{shared}{hint}") from None


def reject_lorentz_points(
    u: torch.Tensor, name: str, c: float | torch.Tensor, *, hint: str = ""
) -> None:
    """``ValueError`` if Euclidean features ``u`` ``(N, D)`` are Lorentz points already.

    Every row on the hyperboloid of curvature ``-c`` (to ``4 sqrt(eps)``) cannot happen by
    chance for features; lifting such rows again would put them on a wrong, far-out point.
    """
    if not validation_enabled() or u.shape[1] < 2 or not len(u):
        return
    if bool((u[:, 0] > 0).all()) and bool((_lorentz_gap(u, c) <= _point_tolerance(u)).all()):
        raise ValueError(
            f"{name} must hold Euclidean features (D columns), but every row is a Lorentz"
            f" point already (time = sqrt(1/c + |x_s|^2)){hint}"
        )


def split_legacy_real(
    owner: str,
    legacy: tuple[torch.Tensor, ...],
    named: dict[str, torch.Tensor | None],
    old_order: tuple[str, ...],
) -> dict[str, torch.Tensor | None]:
    """Map a deprecated all-positional call onto the keyword form, with a warning.

    ``named`` holds the arguments as bound by the new signature (``syn_image``,
    ``syn_text`` positional, the rest keyword-only); ``legacy`` the extra positionals of an
    old call, whose full positional order was ``old_order``.
    """
    if not legacy:
        return named
    if len(legacy) > len(old_order) - 2 or any(
        named.get(k) is not None
        for k in old_order[: 2 + len(legacy)]
        if k not in ("syn_image", "syn_text")
    ):
        raise TypeError(
            f"{owner} takes (syn_image, syn_text, *, real_image, real_text, ...): pass the real"
            f" set by keyword, got {2 + len(legacy)} positional arguments"
        )
    warnings.warn(
        f"{owner} called with {', '.join(old_order[: 2 + len(legacy)])} positionally: the"
        f" convention is now {owner}(syn_image, syn_text, *, real_image=..., real_text=...)"
        " for every rank-aware loss; the positional form is removed in the next release",
        DeprecationWarning,
        stacklevel=3,
    )
    out = dict(named)
    values = (named["syn_image"], named["syn_text"], *legacy)
    for k, v in zip(old_order[: len(values)], values, strict=True):
        out[k] = v
    return out


@contextlib.contextmanager
def full_precision(*tensors: torch.Tensor) -> Iterator[torch.dtype]:
    """Switch autocast off and yield the compute dtype (float64 if any input is, else float32)."""
    device = tensors[0].device.type if tensors else "cpu"
    with torch.autocast(device_type=device, enabled=False):
        yield compute_dtype(*tensors)


def lift(u: torch.Tensor, geometry: str, c: torch.Tensor) -> torch.Tensor:
    """Euclidean features ``(N, D)`` to points: Lorentz ``(N, D+1)``, Poincaré/flat ``(N, D)``.

    The exponential map at the origin; ``"cosine"`` normalises to the unit sphere.
    """
    if geometry == "lorentz":
        return lorentz_math.expmap0(nn.functional.pad(u, (1, 0)), c)
    if geometry == "poincare":
        return poincare_math.expmap0(u, c)
    if geometry == "cosine":
        return nn.functional.normalize(u, dim=-1, eps=torch.finfo(u.dtype).tiny ** 0.5)
    return u


def pairwise_distance(
    x: torch.Tensor, y: torch.Tensor, geometry: str, c: float | torch.Tensor
) -> torch.Tensor:
    """All-pairs distances ``(N, M)`` with gradient: the fused kernel for the hyperbolic
    geometries, ``torch.cdist`` on direct differences for the flat comparison geometry
    (which has no curvature to differentiate)."""
    if geometry == "euclidean":
        return flat_math.euclidean_pairwise_dist(x, y)
    return kernels.pairwise_dist(x, y, geometry, c)


class FeatureScale(nn.Module):
    """Multiplicative feature scale applied before a lift: ``alpha = exp(log_alpha) * base``.

    ``base`` is ``1/sqrt(D)`` with ``scale="auto"`` (``D`` read from the input at each call,
    so the module needs no dimension at construction), else the given positive float.
    ``log_alpha`` starts at 0 and is a parameter with ``learnable=True``: the scale stays
    positive whatever the optimiser does. Without it the radii of lifted LayerNorm-style
    features (norm ``sqrt(D)``) would all be about ``sqrt(D)``: far out, on one sphere.

    >>> import torch
    >>> from hypervldd.losses import FeatureScale
    >>> scale = FeatureScale("auto")  # 1 / sqrt(D)
    >>> scale(torch.ones(2, 16))[0, 0].item()
    0.25
    """

    def __init__(self, scale: float | str = "auto", *, learnable: bool = False) -> None:
        super().__init__()
        if scale != "auto":
            if isinstance(scale, bool) or not isinstance(scale, (int, float)):
                raise TypeError(f"feature_scale must be 'auto' or a float, got {scale!r}")
            if not (0.0 < float(scale) < math.inf):
                raise ValueError(f"feature_scale must be finite and > 0, got {scale}")
        self.scale = scale
        self.learnable = bool(learnable)
        init = torch.zeros(())
        if self.learnable:
            self.log_alpha = nn.Parameter(init)
        else:
            self.register_buffer("log_alpha", init)

    def alpha(self, dim: int, like: torch.Tensor) -> torch.Tensor:
        """The scale for ``dim``-dimensional features, a 0-d tensor in ``like``'s dtype."""
        base = 1.0 / math.sqrt(dim) if self.scale == "auto" else float(self.scale)
        return torch.exp(self.log_alpha.to(like.dtype)) * base

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``alpha * u`` for ``u`` ``(..., D)``."""
        return u * self.alpha(u.shape[-1], u)

    def extra_repr(self) -> str:
        return f"scale={self.scale!r}, learnable={self.learnable}"


class Temperature(nn.Module):
    """Softmax temperature ``tau``, fixed or learnable, bounded below by ``tau_min``.

    Stored as the logit scale ``log(1/tau)`` (CLIP's parametrisation); the forward pass
    clamps it at ``log(1/tau_min)`` so that the logits cannot blow up (the gradient is 0
    while the bound is active, as in CLIP).

    >>> from hypervldd.losses import Temperature
    >>> tau = Temperature(0.07, learnable=True)
    >>> round(tau().item(), 4), len(list(tau.parameters()))  # hand these to the optimiser
    (0.07, 1)
    """

    def __init__(self, tau: float = 0.07, *, learnable: bool = False, tau_min: float = 0.01):
        super().__init__()
        for name, v in (("tau", tau), ("tau_min", tau_min)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(v).__name__}")
            if not (0.0 < float(v) < math.inf):
                raise ValueError(f"{name} must be finite and > 0, got {v}")
        if learnable and float(tau) < float(tau_min):
            raise ValueError(f"tau must be >= tau_min, got tau={tau} and tau_min={tau_min}")
        self.learnable = bool(learnable)
        self.tau_min = float(tau_min)
        if self.learnable:
            self.logit_scale = nn.Parameter(torch.tensor(-math.log(float(tau))))
        else:
            # float64 so that a fixed tau is exact to the compute dtype of float64 inputs;
            # it is cast to the compute dtype at each call.
            self.register_buffer(
                "logit_scale", torch.tensor(-math.log(float(tau)), dtype=torch.float64)
            )

    def forward(self) -> torch.Tensor:
        """``tau`` as a 0-d tensor."""
        s = self.logit_scale
        if self.learnable:
            s = s.clamp(max=-math.log(self.tau_min))
        return torch.exp(-s)

    def extra_repr(self) -> str:
        return f"tau={float(self().detach()):.4g}, learnable={self.learnable}"
