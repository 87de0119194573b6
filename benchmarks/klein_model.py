"""The Klein model: float32 accuracy envelope, float64 against mpmath, cost of its kernel path.

1. For each (radius, distance) of the accuracy grid of docs/geometry.md, the worst
   float32 relative error over the four directions against a float64 evaluation of
   the same float32-rounded inputs (projected into the float32 Klein ball, radius ~5.9):
   ``klein_math.dist``, ``klein_math.pairwise_dist``, ``kernels.pairwise_dist(...,
   "klein")``, the float32 Lorentz kernel on the points converted exactly and rounded
   to float32, and the closed form ``acosh((1 - x.y) / sqrt(alpha_x alpha_y))``.
2. float64 ``klein_math.dist`` against mpmath (50 digits) on the same grid (distances
   up to 1, and 10 whose partners lie up to radius 20, projected to 15.9), with the
   conditioning ``eps / min(alpha_x, alpha_y)`` of the Klein coordinates beside it.
3. Time of ``kernels.pairwise_dist`` on float32 Klein points (float64 conversion and
   kernel) against the float32 and float64 Lorentz kernel on the same points,
   interleaved in one process (median and minimum of the rounds), as ratios, on one
   thread: other jobs share the machine, and with two threads single small ops waited
   for a core (an ``isfinite`` of 1024 x 64 took 0.2 s); the minimum is the steadier
   estimate of the cost.

Writes ``benchmarks/results/klein_model.csv`` and prints Markdown tables.

    python benchmarks/klein_model.py
"""

from __future__ import annotations

import csv
import itertools
import os
import statistics
import sys
import time

import mpmath
import torch

from hypervldd.kernels import pairwise_dist
from hypervldd.manifolds import klein_math as km
from hypervldd.manifolds.accuracy import (
    DIRECTIONS,
    DISTANCES,
    RADII,
    envelope,
    klein_pairs,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def _naive(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x2, y2, xy = (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1)
    return torch.acosh(((1 - xy) / torch.sqrt((1 - x2) * (1 - y2))).clamp_min(1.0))


def _lorentz32(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # the cheap alternative: exact conversion, rounded to float32, the float32 Lorentz kernel
    lx = km.to_lorentz(x.double(), 1.0).float()
    ly = km.to_lorentz(y.double(), 1.0).float()
    return pairwise_dist(lx, ly, "lorentz", 1.0).diagonal()


def _mpmath_table() -> dict[tuple[float, str], tuple[float, float]]:
    mpmath.mp.dps = 50
    eps = torch.finfo(torch.float64).eps
    out: dict[tuple[float, str], tuple[float, float]] = {}
    for r, d, direction in itertools.product(RADII, DISTANCES, DIRECTIONS):
        x, y = klein_pairs(r, d, direction, n=1, dim=16)
        got = mpmath.mpf(float(km.dist(x, y, 1.0)[0]))
        xs = [mpmath.mpf(float(v)) for v in x[0]]
        ys = [mpmath.mpf(float(v)) for v in y[0]]
        ax, ay = 1 - sum(a * a for a in xs), 1 - sum(a * a for a in ys)
        dot = sum(a * b for a, b in zip(xs, ys, strict=True))
        exact = mpmath.acosh((1 - dot) / mpmath.sqrt(ax * ay))
        err = float(abs(got - exact) / exact)
        cond = eps / float(min(ax, ay))
        key = (r, "10" if d == 10.0 else "<= 1")
        prev = out.get(key, (0.0, 0.0))
        out[key] = (max(prev[0], err), max(prev[1], cond))
    return out


def _timings(n: int = 1024, dim: int = 64, rounds: int = 15) -> dict[str, tuple[float, float]]:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    r = torch.rand(n, generator=g, dtype=torch.float64) * 5.0
    k = km.random(n, dim, radius=r, dtype=torch.float64, generator=g).float()
    lor32 = km.to_lorentz(k.double(), 1.0).float()
    lor64 = lor32.double()
    cases = {
        "klein (float32 in, float64 kernel)": lambda: pairwise_dist(k, k, "klein", 1.0),
        "lorentz float32": lambda: pairwise_dist(lor32, lor32, "lorentz", 1.0),
        "lorentz float64": lambda: pairwise_dist(lor64, lor64, "lorentz", 1.0),
    }
    for fn in cases.values():
        fn()  # warm up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(v), min(v)) for name, v in times.items()}


def main() -> int:
    torch.manual_seed(0)
    formulas = {
        "klein_math.dist": lambda x, y: km.dist(x, y, 1.0),
        "klein_math.pairwise_dist": lambda x, y: km.pairwise_dist(x, y, 1.0).diagonal(),
        "kernels.pairwise_dist klein": lambda x, y: pairwise_dist(x, y, "klein", 1.0).diagonal(),
        "float32 Lorentz kernel on converted points": _lorentz32,
        "closed-form acosh": _naive,
    }
    rows = []
    print("| formula | worst float32 rel. error on the grid | worst cell (radius, distance) |")
    print("|---|---|---|")
    for name, fn in formulas.items():
        table = envelope("klein", fn)
        worst_cell = max(table, key=table.get)
        print(f"| {name} | {table[worst_cell]:.1e} | {worst_cell} |")
        for (r, d), err in table.items():
            rows.append({"part": "float32", "what": name, "radius": r, "x": d, "value": err})
    print()
    print("| radius | distance | float64 vs mpmath, worst rel. error | eps / min(alpha) |")
    print("|---|---|---|---|")
    for (r, d), (err, cond) in _mpmath_table().items():
        print(f"| {r:g} | {d} | {err:.1e} | {cond:.1e} |")
        rows.append({"part": "float64", "what": "rel_error", "radius": r, "x": d, "value": err})
        rows.append({"part": "float64", "what": "eps/alpha", "radius": r, "x": d, "value": cond})
    print()
    t = _timings()
    med0, min0 = t["lorentz float32"]
    print("| pairwise_dist, N = M = 1024, D = 64, 1 thread | median s | ratio | min s | ratio |")
    print("|---|---|---|---|---|")
    for name, (med, low) in t.items():
        print(f"| {name} | {med:.4f} | {med / med0:.2f} | {low:.4f} | {low / min0:.2f} |")
        rows.append({"part": "time_median", "what": name, "radius": "", "x": "", "value": med})
        rows.append({"part": "time_min", "what": name, "radius": "", "x": "", "value": low})
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "klein_model.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["part", "what", "radius", "x", "value"])
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
