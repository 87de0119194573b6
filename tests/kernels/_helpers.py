"""Point generators and tolerances shared by the kernel tests."""

from __future__ import annotations

import math
import os

import pytest
import torch

from hypervldd import backend_info
from hypervldd.manifolds import lorentz_math as L
from hypervldd.manifolds import poincare_math as P

MANIFOLDS = ("lorentz", "poincare", "euclidean")
DTYPES = (torch.float32, torch.float64)
# Radius 0 and 0.01: every point of the pair near the origin (issue 19's cliff).
RADII = (0.0, 0.01, 0.1, 1.0, 3.0, 5.0, 8.0, 10.0)
DISTANCES = (1e-3, 1e-2, 0.1, 1.0, 10.0)
DIRECTIONS = ("out", "in", "tangential", "random")


def rtol(dtype: torch.dtype) -> float:
    """Envelope of the spec: 1e-3 in float32, 1e-9 in float64 (relative)."""
    return 1e-3 if dtype == torch.float32 else 1e-9


def grad_rtol(dtype: torch.dtype) -> float:
    """Gradients go through one more rounding stage than values: eps ** 0.4."""
    return torch.finfo(dtype).eps ** 0.4


def need_ext() -> None:
    """Skip when the extension is absent, unless HYPERVLDD_REQUIRE_EXTENSION=1 (fail)."""
    info = backend_info()
    if info.extension_loaded:
        return
    if os.environ.get("HYPERVLDD_REQUIRE_EXTENSION") == "1":
        pytest.fail(f"the compiled extension is required but absent: {info.reason}")
    pytest.skip(f"compiled extension absent: {info.reason}")


def points(
    manifold: str,
    n: int,
    dim: int,
    dtype: torch.dtype = torch.float64,
    max_radius: float = 3.0,
    c: float = 1.0,
) -> torch.Tensor:
    """``n`` points at hyperbolic radii uniform in ``[0, max_radius]`` (Euclidean: normal)."""
    r = torch.rand(n, dtype=torch.float64) * max_radius
    if manifold == "lorentz":
        return L.random(n, dim + 1, radius=r, c=c, dtype=torch.float64).to(dtype)
    if manifold == "poincare":
        return P.random(n, dim, radius=r, c=c, dtype=torch.float64).to(dtype)
    return torch.randn(n, dim, dtype=torch.float64).to(dtype)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def envelope_pairs(manifold: str, dim: int = 8, c: float = 1.0):
    """Pairs (x, y) on the accuracy grid, built in float64: x at radius r, y at
    distance d from x, displaced radially outwards, inwards, tangentially or
    randomly. Returns (x, y, labels)."""
    g = torch.Generator().manual_seed(1)
    xs, ys, labels = [], [], []
    sc = math.sqrt(c)
    e1 = torch.zeros(dim, dtype=torch.float64)
    e1[0] = 1.0
    e2 = torch.zeros(dim, dtype=torch.float64)
    e2[1] = 1.0
    for r in RADII:
        for d in DISTANCES:
            for how in DIRECTIONS:
                rnd = _unit(torch.randn(dim, dtype=torch.float64, generator=g))
                if manifold == "lorentz":
                    u = torch.cat([torch.zeros(1, dtype=torch.float64), r * e1])
                    x = L.expmap0(u, c)
                    radial = torch.cat([torch.tensor([math.sinh(sc * r)]), math.cosh(sc * r) * e1])
                    if how == "out":
                        v = radial
                    elif how == "in":
                        v = -radial
                    elif how == "tangential":
                        v = torch.cat([torch.zeros(1, dtype=torch.float64), e2])
                    else:
                        v = L.proju(x, torch.cat([torch.zeros(1, dtype=torch.float64), rnd]), c)
                    v = v / L.norm(v)
                    y = L.expmap(x, d * v, c)
                else:
                    x = P.expmap0(r * e1, c)
                    lam = float(P.lambda_x(x, c))
                    v = {"out": e1, "in": -e1, "tangential": e2, "random": rnd}[how]
                    y = P.expmap(x, (d / lam) * v, c)
                xs.append(x)
                ys.append(y)
                labels.append((r, d, how))
    return torch.stack(xs), torch.stack(ys), labels


def fused_module():  # noqa: ANN201
    """The compiled-op module (skips or fails like :func:`need_ext` when absent)."""
    need_ext()
    from hypervldd.kernels import fused

    return fused
