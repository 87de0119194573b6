r"""Isometries between the Lorentz, Poincaré and Klein models of curvature ``-c``.

============================  ==================================================
Lorentz -> Poincaré           ``p = x_s / (1 + sqrt(c) x_0)``
Poincaré -> Lorentz           ``x = ((1 + c|p|^2) / sqrt(c), 2 p) / (1 - c|p|^2)``
Lorentz -> Klein              ``k = x_s / (sqrt(c) x_0)``
Klein -> Lorentz              ``x_0 = 1 / (sqrt(c) sqrt(1 - c|k|^2))``, ``x_s = sqrt(c) x_0 k``
Poincaré -> Klein             ``k = 2 p / (1 + c|p|^2)``
Klein -> Poincaré             ``p = k / (1 + sqrt(1 - c|k|^2))``
============================  ==================================================

Lorentz time coordinates are re-derived from the space part, as everywhere in
the package; ``1 - c|p|^2`` is taken from :func:`.poincare_math.alpha`.

Arguments are validated as the manifolds validate theirs: ``c`` finite and
positive, points floating and finite, Poincaré and Klein points strictly inside
the ball ``c|p|^2 < 1`` (a boundary point has no Lorentz image: it would come
out inf). The data-dependent checks follow :func:`hypervldd.validation`.
"""

from __future__ import annotations

import torch

from .._checks import check_curvature, check_finite, check_tensor, validation_enabled
from . import lorentz_math as lm
from . import poincare_math as pm

__all__ = [
    "lorentz_to_poincare",
    "poincare_to_lorentz",
    "lorentz_to_klein",
    "klein_to_lorentz",
    "poincare_to_klein",
    "klein_to_poincare",
]


def _check(x: object, name: str, c: float | torch.Tensor, *, ball: bool, min_dim: int = 1):
    """Validate a point tensor ``x`` and the curvature ``c``; return them."""
    c = check_curvature(c, "c")
    x = check_tensor(x, name)
    if x.shape[-1] < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} coordinates in its last dimension,"
            f" got shape {tuple(x.shape)}"
        )
    check_finite(x, name)
    if ball and validation_enabled() and x.numel() > 0:
        with torch.no_grad():
            a = pm.alpha(x.detach(), c.detach() if isinstance(c, torch.Tensor) else c)
        if bool((a <= 0).any()):
            worst = float((1.0 - a).max())
            raise ValueError(
                f"{name} must lie strictly inside the ball c|{name}|^2 < 1, got c|{name}|^2 up"
                f" to {worst:.6g}; project it with PoincareBall.projx"
            )
    return x, c


def _sqrt_c(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if isinstance(c, torch.Tensor):
        return c.to(dtype=like.dtype, device=like.device).unsqueeze(-1).sqrt()
    return torch.tensor(float(c), dtype=like.dtype, device=like.device).sqrt()


def lorentz_to_poincare(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Lorentz ``(..., D+1)`` to Poincaré ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz, lorentz_to_poincare, poincare_to_lorentz
    >>> x = Lorentz().lift(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    >>> p = lorentz_to_poincare(x, 1.0)
    >>> back = poincare_to_lorentz(p, 1.0)
    >>> tuple(p.shape), bool((p.norm(dim=-1) < 1).all()), torch.allclose(back, x, atol=1e-5)
    ((4, 3), True, True)
    """
    x, c = _check(x, "x", c, ball=False, min_dim=2)
    xs = x[..., 1:]
    x0 = lm.time_from_space(xs, c)
    return pm.projx(xs / (1.0 + _sqrt_c(c, x) * x0), c)


def poincare_to_lorentz(p: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Poincaré ``(..., D)`` to Lorentz ``(..., D+1)``.

    >>> import torch
    >>> from hypervldd.manifolds import Lorentz, poincare_to_lorentz
    >>> x = poincare_to_lorentz(torch.tensor([[0.5, 0.0]]), 1.0)  # (1, 2) -> (1, 3)
    >>> [round(v, 4) for v in x[0].tolist()], round(float(Lorentz().inner(x, x)), 4)
    ([1.6667, 1.3333, 0.0], -1.0)
    """
    p, c = _check(p, "p", c, ball=True)
    a = pm.alpha(p, c)
    xs = 2.0 * p / a
    return torch.cat([lm.time_from_space(xs, c), xs], dim=-1)


def lorentz_to_klein(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Lorentz ``(..., D+1)`` to Klein ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import lorentz_to_klein, poincare_to_lorentz
    >>> k = lorentz_to_klein(poincare_to_lorentz(torch.tensor([[0.5, 0.0]]), 1.0), 1.0)
    >>> [round(v, 4) for v in k[0].tolist()]  # 2p / (1 + |p|^2)
    [0.8, 0.0]
    """
    x, c = _check(x, "x", c, ball=False, min_dim=2)
    xs = x[..., 1:]
    return xs / (_sqrt_c(c, x) * lm.time_from_space(xs, c))


def klein_to_lorentz(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Klein ``(..., D)`` (with ``c|k|^2 < 1``) to Lorentz ``(..., D+1)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_to_lorentz
    >>> x = klein_to_lorentz(torch.tensor([[0.8, 0.0]]), 1.0)
    >>> [round(v, 4) for v in x[0].tolist()]
    [1.6667, 1.3333, 0.0]
    """
    k, c = _check(k, "k", c, ball=True)
    sc = _sqrt_c(c, k)
    a = pm.alpha(k, c)  # 1 - c|k|^2, accumulated in float64
    x0 = 1.0 / (sc * torch.sqrt(a))
    xs = sc * x0 * k
    return torch.cat([lm.time_from_space(xs, c), xs], dim=-1)


def poincare_to_klein(p: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Poincaré ``(..., D)`` to Klein ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import poincare_to_klein
    >>> [round(v, 4) for v in poincare_to_klein(torch.tensor([[0.5, 0.0]]), 1.0)[0].tolist()]
    [0.8, 0.0]
    """
    p, c = _check(p, "p", c, ball=True)
    cb = _sqrt_c(c, p) ** 2
    return 2.0 * p / (1.0 + cb * (p * p).sum(-1, keepdim=True))


def klein_to_poincare(k: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Klein ``(..., D)`` to Poincaré ``(..., D)``.

    >>> import torch
    >>> from hypervldd.manifolds import klein_to_poincare
    >>> [round(v, 4) for v in klein_to_poincare(torch.tensor([[0.8, 0.0]]), 1.0)[0].tolist()]
    [0.5, 0.0]
    """
    k, c = _check(k, "k", c, ball=True)
    return pm.projx(k / (1.0 + torch.sqrt(pm.alpha(k, c))), c)
