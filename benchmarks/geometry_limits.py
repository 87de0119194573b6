"""Largest radius and distance each manifold function supports, per dtype.

For x at hyperbolic radius r (c = 1) and y = exp_x(d w), w a unit tangent vector
in one of four directions (radial out, radial in, tangential, random), built in
float64 and rounded to the dtype (within its radius cap), each function is
checked as in tests/manifolds/test_limit_sweep.py:

- ``dist``: finite; relative error against a float64 evaluation of the same
  rounded inputs below the envelope (1e-3 float32, 1e-9 float64; or 1e-5 absolute);
- ``pairwise_dist``: the same for the fused kernel (``hypervldd.kernels``);
- ``expmap/logmap``: both finite and ``expmap(x, logmap(x, y))`` on the manifold;
- ``transp``: ``P(log_x y) = -log_y x`` to 1e-3 relative (evaluated in float64);
- ``sgd step``: one RiemannianSGD step (lr 1, momentum 0.5, Euclidean gradient of
  norm 30) gives a finite point on the manifold.

A radius is supported when every distance on the grid (0 to twice the cap) and
every direction passes at it and at every smaller grid radius (y anywhere up
to the cap); the largest distance is the largest one tested within it. Writes
``benchmarks/results/geometry_limits.csv`` and a Markdown table on stdout.

    python benchmarks/geometry_limits.py
"""

from __future__ import annotations

import csv
import os
import sys
import warnings

import torch

import hypervldd.kernels as K
from hypervldd.manifolds.accuracy import limit_pair
from hypervldd.manifolds.accuracy import radius_cap as cap
from hypervldd.optim import RiemannianSGD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import geoopt

F32, F64 = torch.float32, torch.float64
DIRECTIONS = ("out", "in", "tangential", "random")
FUNCTIONS = ("dist", "pairwise_dist", "expmap/logmap", "transp", "sgd step")


def checks(
    model: str, dtype: torch.dtype, r: float, d: float, direction: str
) -> tuple[dict[str, bool], float]:
    man, x, y = limit_pair(model, dtype, r, d, direction)
    tol = 1e-3 if dtype == F32 else 1e-9
    truth = man.dist(x.double(), y.double())

    def close(v: torch.Tensor) -> bool:
        err = (v.double() - truth).abs()
        return bool(torch.isfinite(v).all()) and bool(((err / truth) < tol) | (err < 1e-5))

    out = {"dist": close(man.dist(x, y)), "pairwise_dist": close(K.pairwise_dist(x, y, model))}
    try:
        v = man.logmap(x, y)
        z = man.expmap(x, v)
        man.check_point(z, "z")
        out["expmap/logmap"] = bool(torch.isfinite(v).all())
    except ValueError:
        out["expmap/logmap"] = False
    v64 = man.logmap(x.double(), y.double())
    t = man.transp(x.double(), y.double(), v64)
    back = -man.logmap(y.double(), x.double())
    n = float(back.norm())
    out["transp"] = bool(torch.isfinite(t).all()) and (
        n == 0 or float((t - back).norm()) / n < 1e-3
    )
    p = geoopt.ManifoldParameter(x.clone(), manifold=man)
    g = (y - x).double()
    if model == "lorentz":
        g[..., 0] = 0.0
    p.grad = (-30.0 * g / g.norm().clamp_min(1e-300)).to(dtype)
    RiemannianSGD([p], lr=1.0, momentum=0.5).step()
    try:
        man.check_point(p.detach(), "p")
        out["sgd step"] = True
    except ValueError:
        out["sgd step"] = False
    return out, float(truth)


def main() -> int:
    rows = []
    for model in ("lorentz", "poincare"):
        for dtype in (F32, F64):
            rc = cap(model, dtype)
            radii = [float(v) for v in torch.linspace(0.0, rc, 25)]
            dists = [0.0, 1e-3, 0.1, 1.0] + [float(v) for v in torch.linspace(2.0, 2 * rc, 12)]
            best = {f: 0.0 for f in FUNCTIONS}
            far = {f: 0.0 for f in FUNCTIONS}
            alive = set(FUNCTIONS)
            for r in radii:
                ok = dict.fromkeys(FUNCTIONS, True)
                dmax = 0.0
                for d in dists:
                    for direction in DIRECTIONS:
                        res, dist = checks(model, dtype, r, d, direction)
                        dmax = max(dmax, dist)
                        for f, good in res.items():
                            ok[f] = ok[f] and good
                for f in list(alive):
                    if ok[f]:
                        best[f], far[f] = r, max(far[f], dmax)
                    else:
                        alive.discard(f)
            for f in FUNCTIONS:
                rows.append(
                    dict(
                        model=model,
                        dtype=str(dtype).replace("torch.", ""),
                        function=f,
                        radius_cap=round(rc, 2),
                        largest_radius=round(best[f], 2),
                        largest_distance=round(far[f], 2),
                    )
                )
    os.makedirs("benchmarks/results", exist_ok=True)
    with open("benchmarks/results/geometry_limits.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print("| model | dtype | function | radius cap | largest radius of x | largest distance |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
