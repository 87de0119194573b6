"""Dtype-aware tolerances and small numerically careful scalar functions.

Every tolerance in the package is derived here from ``torch.finfo`` so that no
literal below machine epsilon can slip in (in float32, ``1 + 1e-8 == 1``).

The helpers ``sinhc``, ``asinhc`` and ``artanhc`` evaluate ``f(x)/x`` with a
Taylor branch near zero, using the "double where" pattern: the branch that is
not selected is fed a harmless input, so neither the value nor the gradient of
the discarded branch can produce a NaN.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "eps",
    "tiny",
    "compute_dtype",
    "ball_margin",
    "max_radius",
    "manifold_rtol",
    "sinhc",
    "asinhc",
    "artanhc",
    "sinc",
    "cosh_minus_one_to_dist",
    "pow2_scale",
]


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of ``dtype`` (the gap between 1 and the next float)."""
    return torch.finfo(dtype).eps


def tiny(dtype: torch.dtype) -> float:
    """Smallest positive normal number of ``dtype``."""
    return torch.finfo(dtype).tiny


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """Dtype in which distance math runs for these inputs.

    float64 stays float64; every other floating dtype (float32, float16, bfloat16)
    computes in float32. Distance math never runs in reduced precision: a bf16
    Lorentz inner product cannot resolve distances below about 4 at radius 5.
    """
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
            return torch.float64
    return torch.float32


def ball_margin(dtype: torch.dtype) -> float:
    """Distance ``1 - sqrt(c)|x|`` kept from the Poincaré boundary by ``projx``.

    128 ulps of 1: about 1.5e-5 in float32 (hyperbolic radius 11.8 at c = 1)
    and 2.8e-14 in float64 (radius 31.9). Far enough that ``1 - c|x|^2`` is
    still resolved to a few parts in 1e3 in the input dtype, close enough that
    the accuracy grid up to radius 10 is representable in float32.
    """
    return 128.0 * eps(dtype)


def max_radius(dtype: torch.dtype) -> float:
    """Largest hyperbolic radius (times sqrt(c)) that ``expmap0`` produces.

    Lorentz coordinates grow like ``exp(r) / 2`` and their squares must stay
    finite, so ``r`` is capped at ``0.45 * log(finfo.max)``: 39.9 in float32,
    319 in float64. Beyond that a point is numerically meaningless anyway.
    """
    return 0.45 * math.log(torch.finfo(dtype).max)


def manifold_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance of the on-manifold checks.

    ``eps ** 0.4``: 1.7e-3 in float32, 5.6e-7 in float64. Loose enough that a
    float32 point cast to float64 is still accepted, tight enough to catch a
    point that was never on the manifold.
    """
    return eps(dtype) ** 0.4


def _series_threshold(dtype: torch.dtype) -> float:
    # Below this |x| the 3-term Taylor series is exact to machine precision
    # (the first dropped term is O(x^6) ~ eps).
    return eps(dtype) ** (1.0 / 6.0)


def sinhc(x: torch.Tensor) -> torch.Tensor:
    """``sinh(x) / x``, equal to 1 at 0, smooth, with finite gradients."""
    t = _series_threshold(x.dtype)
    small = x.abs() < t
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    series = 1.0 + x2 / 6.0 + x2 * x2 / 120.0
    return torch.where(small, series, torch.sinh(xs) / xs)


def sinc(x: torch.Tensor) -> torch.Tensor:
    """``sin(x) / x`` (unnormalised), equal to 1 at 0, with finite gradients."""
    t = _series_threshold(x.dtype)
    small = x.abs() < t
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    series = 1.0 - x2 / 6.0 + x2 * x2 / 120.0
    return torch.where(small, series, torch.sin(xs) / xs)


def asinhc(x: torch.Tensor) -> torch.Tensor:
    """``asinh(x) / x``, equal to 1 at 0, with finite gradients."""
    t = _series_threshold(x.dtype)
    small = x.abs() < t
    xs = torch.where(small, torch.ones_like(x), x)
    x2 = x * x
    series = 1.0 - x2 / 6.0 + 3.0 * x2 * x2 / 40.0
    return torch.where(small, series, torch.asinh(xs) / xs)


def artanhc(x: torch.Tensor) -> torch.Tensor:
    """``artanh(x) / x`` for ``|x| < 1``, equal to 1 at 0, finite gradients."""
    t = _series_threshold(x.dtype)
    small = x.abs() < t
    xs = torch.where(small, torch.full_like(x, 0.5), x)
    x2 = x * x
    series = 1.0 + x2 / 3.0 + x2 * x2 / 5.0
    return torch.where(small, series, torch.atanh(xs) / xs)


def cosh_minus_one_to_dist(z: torch.Tensor) -> torch.Tensor:
    """``acosh(1 + z)`` for ``z >= 0`` written as ``2 asinh(sqrt(z / 2))``.

    The asinh form is exact for small ``z`` (no ``1 + z`` rounding) but its
    gradient through ``sqrt`` is infinite at 0. Callers that need a defined
    gradient at zero distance should compute ``sqrt(z / 2)`` directly as a norm.
    """
    return 2.0 * torch.asinh(torch.sqrt(z.clamp_min(0) / 2.0))


def pow2_scale(u: torch.Tensor) -> torch.Tensor:
    """A power of two ``k`` per vector (last dim) with ``max|k u|`` about ``[1, 2)``. ``(..., 1)``.

    Multiplying by ``k`` is exact, so ``|k u| / k`` is the norm of ``u`` without the
    overflow of ``|u|^2`` (a float32 vector of norm 1e20 has ``|u|^2 = inf``). ``k``
    is detached: it is a change of units, not a function to differentiate.

    >>> pow2_scale(torch.tensor([[3e30, 4e30]])).log2()
    tensor([[-101.]])
    """
    with torch.no_grad():
        m = u.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
        return torch.exp2(-torch.floor(torch.log2(m)))
