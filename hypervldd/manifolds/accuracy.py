"""The accuracy envelope: point pairs at a prescribed radius, distance and direction.

The accuracy envelope (docs/architecture.md) is stated on the grid radius {0.1, 1, 3, 5, 8, 10}
x distance {1e-3, 1e-2, 0.1, 1, 10} x direction {radial out, radial in,
tangential, random}: a float32 distance must be within 1e-3 relative of a
float64 evaluation of the same (float32-rounded) inputs. This module builds
those pairs exactly (in float64, by walking along geodesics) and measures any
distance function on them; the tests, ``benchmarks/geometry_precision.py`` and
``hypervldd demo`` use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import conversions
from . import lorentz_math as lm
from . import poincare_math as pm

RADII = (0.1, 1.0, 3.0, 5.0, 8.0, 10.0)
DISTANCES = (1e-3, 1e-2, 0.1, 1.0, 10.0)
DIRECTIONS = ("radial_out", "radial_in", "tangential", "random")

__all__ = [
    "RADII",
    "DISTANCES",
    "DIRECTIONS",
    "lorentz_pairs",
    "poincare_pairs",
    "klein_pairs",
    "relative_error",
    "envelope",
    "naive_lorentz_dist",
    "naive_poincare_dist",
    "radius_cap",
    "limit_pair",
]


def lorentz_pairs(
    radius: float,
    distance: float,
    direction: str,
    *,
    n: int = 8,
    dim: int = 64,
    c: float = 1.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` float64 Lorentz pairs with ``d(o, x) = radius`` and ``d(x, y) = distance``."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    u = torch.randn(n, dim, generator=g, dtype=f64)
    u = u / u.norm(dim=-1, keepdim=True)
    x = lm.expmap0(torch.nn.functional.pad(u * radius / math.sqrt(c), (1, 0)), c)
    if direction == "radial_out":
        v = u
    elif direction == "radial_in":
        v = -u
    elif direction == "tangential":
        h = torch.randn(n, dim, generator=g, dtype=f64)
        h = h - (h * u).sum(-1, keepdim=True) * u
        v = h / h.norm(dim=-1, keepdim=True)
    elif direction == "random":
        h = torch.randn(n, dim, generator=g, dtype=f64)
        v = h / h.norm(dim=-1, keepdim=True)
    else:
        raise ValueError(direction)
    # Move the unit direction from the origin to x, then walk `distance` along it.
    t = lm.transp0(x, torch.nn.functional.pad(v, (1, 0)), c)
    t = t / lm.norm(t, keepdim=True)
    y = lm.expmap(x, t * distance, c)
    return x, y


def poincare_pairs(
    radius: float, distance: float, direction: str, **kw: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same pairs mapped isometrically to the Poincaré ball."""
    c = float(kw.get("c", 1.0))
    x, y = lorentz_pairs(radius, distance, direction, **kw)
    return conversions.lorentz_to_poincare(x, c), conversions.lorentz_to_poincare(y, c)


def klein_pairs(
    radius: float, distance: float, direction: str, **kw: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same pairs mapped isometrically to the Klein model.

    Projected into the float64 ball: beyond radius about 15.9 a Klein point rounds
    onto the boundary (radius-20 partners of the grid do).
    """
    from . import klein_math as km

    c = float(kw.get("c", 1.0))
    x, y = lorentz_pairs(radius, distance, direction, **kw)
    return km.from_lorentz(x, c), km.from_lorentz(y, c)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst relative error of ``got`` against ``ref`` over pairs with ``ref > 0``."""
    got, ref = got.double(), ref.double()
    pos = ref > 0
    if not bool(pos.any()):
        return 0.0
    return float(((got - ref).abs() / ref)[pos].max())


def naive_lorentz_dist(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """The GEMM form ``acosh(-c <x, y>_L) / sqrt(c)`` (MERU / geoopt style), for comparison."""
    x, y = lm.projx(x, c), lm.projx(y, c)
    return torch.acosh((-c * lm.inner(x, y)).clamp_min(1.0)) / c**0.5


def naive_poincare_dist(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """The GEMM form ``acosh(1 + 2c(|x|^2 + |y|^2 - 2x.y) / ((1-c|x|^2)(1-c|y|^2)))``."""
    x2, y2, xy = (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)
    sq = (x2 + y2 - 2 * xy).clamp_min(0)
    return torch.acosh(1 + 2 * c * sq / ((1 - c * x2) * (1 - c * y2))) / c**0.5


def envelope(
    manifold: str,
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    n: int = 8,
    dim: int = 64,
) -> dict[tuple[float, float], float]:
    """Worst float32 relative error of ``fn`` per (radius, distance), over all directions.

    ``fn(x, y)`` maps float32 pairs ``(n, ...)`` to ``(n,)`` distances; the
    reference is the library distance evaluated in float64 on the same rounded
    inputs. Poincaré and Klein inputs are projected into the float32 ball first
    (partners at radius 20 round onto the boundary; Klein points beyond radius
    about 5.9 do).
    """
    from . import klein_math as km

    ref_fn = {"lorentz": lm.dist, "poincare": pm.dist, "klein": km.dist}[manifold]
    make = {"lorentz": lorentz_pairs, "poincare": poincare_pairs, "klein": klein_pairs}[manifold]
    table: dict[tuple[float, float], float] = {}
    for r in RADII:
        for d in DISTANCES:
            worst = 0.0
            for direction in DIRECTIONS:
                x, y = make(r, d, direction, n=n, dim=dim)
                x32, y32 = x.float(), y.float()
                if manifold != "lorentz":
                    x32, y32 = pm.projx(x32, 1.0), pm.projx(y32, 1.0)
                ref = ref_fn(x32.double(), y32.double(), 1.0)
                worst = max(worst, relative_error(fn(x32, y32), ref))
            table[(r, d)] = worst
    return table


def radius_cap(model: str, dtype: torch.dtype) -> float:
    """The largest hyperbolic radius a point of ``model`` (``"lorentz"``, ``"poincare"`` or
    ``"klein"``, c = 1) can have in ``dtype``: the Lorentz radius cap, or the ball's boundary
    margin (reached at half the radius in the Klein model)."""
    from ..numerics import ball_margin, max_radius

    if model == "lorentz":
        return max_radius(dtype)
    if model == "klein":
        return math.atanh(1.0 - ball_margin(dtype))
    return 2.0 * math.atanh(1.0 - ball_margin(dtype))


def limit_pair(
    model: str, dtype: torch.dtype, r: float, d: float, direction: str, seed: int = 0
) -> tuple[object, torch.Tensor, torch.Tensor]:
    """``(manifold, x, y)`` with ``x`` at radius ``r`` and ``y = exp_x(d w)`` (c = 1).

    ``w`` is a unit tangent vector: radially ``"out"`` or ``"in"``, ``"tangential"`` or
    ``"random"``; built in float64 in 5 dimensions, then cast to ``dtype`` (Lorentz points
    clipped to the dtype's radius cap, their time re-derived). The pairs of the limit
    sweep (tests/manifolds/test_limit_sweep.py) and of benchmarks/geometry_limits.py.
    """
    from .lorentz import Lorentz
    from .poincare import PoincareBall

    f64 = torch.float64
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(2, 6, generator=g, dtype=f64)
    e1 = e[0] / e[0].norm()
    e2 = e[1] - (e[1] @ e1) * e1
    e2 = e2 / e2.norm()
    w = {"out": e1, "in": -e1, "tangential": e2}.get(direction)
    if w is None:
        w = torch.randn(6, generator=g, dtype=f64)
        w = w / w.norm()
    if model == "klein":
        from . import klein_math as km
        from .klein import Klein

        man = Klein(1.0)
        x = lm.expmap0(torch.cat([torch.zeros(1, dtype=f64), r * e1])[None], 1.0)
        u = lm.transp0(x, torch.cat([torch.zeros(1, dtype=f64), w])[None], 1.0)
        y = lm.expmap(x, d * u, 1.0)
        return (
            man,
            man.projx(km.from_lorentz(x, 1.0).to(dtype)),
            man.projx(km.from_lorentz(y, 1.0).to(dtype)),
        )
    if model == "lorentz":
        man = Lorentz(1.0)
        x = lm.expmap0(torch.cat([torch.zeros(1, dtype=f64), r * e1])[None], 1.0)
        u = lm.transp0(x, torch.cat([torch.zeros(1, dtype=f64), w])[None], 1.0)  # unit, at x
        y = man.expmap(x, d * u)
        cap = radius_cap(model, dtype)
        x, y = (man.projx(lm.clip_radius(t, 1.0, cap).to(dtype)) for t in (x, y))
        return man, x, y
    man = PoincareBall(1.0)
    x = man.projx((math.tanh(r / 2) * e1)[None])
    y = man.expmap(x, d * w[None] / man.lambda_x(x, keepdim=True))
    return man, man.projx(x.to(dtype)), man.projx(y.to(dtype))
