"""float32 precision of distance formulas on the accuracy grid of docs/geometry.md.

For each (radius, distance), the worst relative error over the four directions
(radial out, radial in, tangential, random) of a float32 evaluation against a
float64 evaluation of the same float32-rounded inputs. Compares the library's
pointwise and pairwise distances with the naive GEMM forms, Lorentz and
Poincaré, and writes ``benchmarks/results/geometry_precision.csv`` plus a
Markdown table on stdout (pasted into docs/geometry.md).

    python benchmarks/geometry_precision.py
"""

from __future__ import annotations

import csv
import os
import sys

import torch

from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm
from hypervldd.manifolds.accuracy import (
    DISTANCES,
    RADII,
    envelope,
    naive_lorentz_dist,
    naive_poincare_dist,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    torch.manual_seed(0)
    formulas = {
        ("lorentz", "library dist"): lambda x, y: lm.dist(x, y, 1.0),
        ("lorentz", "library pairwise_dist"): lambda x, y: lm.pairwise_dist(x, y, 1.0).diagonal(),
        ("lorentz", "naive GEMM acosh"): naive_lorentz_dist,
        ("poincare", "library dist"): lambda x, y: pm.dist(x, y, 1.0),
        ("poincare", "library pairwise_dist"): lambda x, y: pm.pairwise_dist(x, y, 1.0).diagonal(),
        ("poincare", "naive GEMM acosh"): naive_poincare_dist,
    }
    rows = []
    for (manifold, name), fn in formulas.items():
        table = envelope(manifold, fn)
        for (r, d), err in table.items():
            rows.append(
                {
                    "manifold": manifold,
                    "formula": name,
                    "radius": r,
                    "distance": d,
                    "max_rel_error": f"{err:.3g}",
                }
            )
    out = os.path.join(HERE, "results", "geometry_precision.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # Markdown: one row per (manifold, formula, radius), one column per distance.
    head = "| model | formula | radius | " + " | ".join(f"d={d:g}" for d in DISTANCES) + " |"
    print(head)
    print("|" + "---|" * (3 + len(DISTANCES)))
    for manifold, name in formulas:
        for r in RADII:
            cells = [
                next(
                    x["max_rel_error"]
                    for x in rows
                    if x["manifold"] == manifold
                    and x["formula"] == name
                    and x["radius"] == r
                    and x["distance"] == d
                )
                for d in DISTANCES
            ]
            print(f"| {manifold} | {name} | {r:g} | " + " | ".join(cells) + " |")
    worst = {
        (m, n): max(
            float(x["max_rel_error"]) for x in rows if x["manifold"] == m and x["formula"] == n
        )
        for (m, n) in formulas
    }
    print()
    for (m, n), v in worst.items():
        print(f"worst {m:8s} {n:22s} {v:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
