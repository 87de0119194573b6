"""Pairwise hyperbolic distance: fused op vs reference, MERU-style composite, geoopt, mm.

Usage: .venv/bin/python benchmarks/bench_pairwise.py [--n 4096] [--d 512] [--reps 5]
           [--threads 2] [--out bench_pairwise]
Writes results/<out>.csv and results/<out>.png. Ratios are against a bare
torch.mm of the same shapes (the GEMM floor) measured in the same process; every
method runs on the same float32 inputs. geoopt's broadcasting distance needs
N x M x D memory and runs only when N <= --geoopt-max. KeOps has no row: it
computes reductions, not an N x M output (it is in bench_contrastive.py).
Precision: max relative error against the float64 difference form of the same
inputs (first 128 rows); "f64" rows run the op on float64 inputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import bar_plot, environment, max_rel_err, measure_interleaved, write_csv  # noqa: E402

import hypervldd.kernels as K  # noqa: E402
from hypervldd.kernels import reference as R  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402
from hypervldd.manifolds import poincare_math as P  # noqa: E402


def run_manifold(man: str, args: argparse.Namespace) -> list[dict]:
    n, d = args.n, args.d
    rows: list[dict] = []
    r = torch.rand(n, dtype=torch.float64) * args.max_radius
    r2 = torch.rand(n, dtype=torch.float64) * args.max_radius
    if man == "lorentz":
        x = L.random(n, d + 1, radius=r, dtype=torch.float64).float()
        y = L.random(n, d + 1, radius=r2, dtype=torch.float64).float()
        a, b = x[:, 1:].contiguous(), y[:, 1:].contiguous()
    elif man == "poincare":
        x = P.random(n, d, radius=r, dtype=torch.float64).float()
        y = P.random(n, d, radius=r2, dtype=torch.float64).float()
        a, b = x, y
    else:
        x, y = torch.randn(n, d), torch.randn(n, d)
        a, b = x, y
    # float64 truth on a row subset (the reference in float64: GEMM values accepted
    # only within 1e-10 of their error bound, the rest from differences).
    sub = min(n, 128)
    truth = R.pairwise_dist_ref(x[:sub].double(), y.double(), man)
    count = [0]
    R.pairwise_dist_ref(x, y, man, slow_count=count)
    slow_frac = count[0] / (n * n)

    def meru():
        if man == "lorentz":
            x0 = torch.sqrt(1 + (a * a).sum(1))
            y0 = torch.sqrt(1 + (b * b).sum(1))
            return torch.acosh(torch.clamp(torch.outer(x0, y0) - a @ b.T, min=1 + 1e-7))
        if man == "poincare":
            sq = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)
            den = (1 - (a * a).sum(1))[:, None] * (1 - (b * b).sum(1))[None, :]
            return torch.acosh(1 + 2 * sq / den)
        return torch.cdist(a, b)

    x64, y64 = x.double(), y.double()
    methods = {
        "torch.mm (GEMM floor)": lambda: a @ b.T,
        "fused pairwise_dist": lambda: K.pairwise_dist(x, y, man),
        "reference pairwise_dist_ref": lambda: R.pairwise_dist_ref(x, y, man),
        ("torch.cdist" if man == "euclidean" else "MERU-style composite"): meru,
    }
    if man != "euclidean" and n <= args.geoopt_max:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import geoopt

        gm = geoopt.Lorentz(k=1.0) if man == "lorentz" else geoopt.PoincareBall(c=1.0)
        methods["geoopt broadcast"] = lambda: gm.dist(x[:, None], y[None])
    methods["fused pairwise_dist, float64 inputs"] = lambda: K.pairwise_dist(x64, y64, man)
    base = None
    results = measure_interleaved(methods, args.reps)
    for name in methods:
        t, mem, out = results[name]
        err = max_rel_err(out[:sub], truth) if name != "torch.mm (GEMM floor)" else ""
        base = base or t
        row = {
            "manifold": man,
            "method": name,
            "n": n,
            "m": n,
            "d": d,
            "dtype": "float64" if "float64" in name else "float32",
            "median_s": f"{t:.4f}",
            "ratio_to_mm": f"{t / base:.3f}",
            "peak_rss_extra_mb": f"{mem:.1f}",
            "max_rel_err_vs_f64": f"{err:.2e}" if err != "" else "",
            "slow_path_fraction": f"{slow_frac:.2e}" if "fused" in name else "",
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_pairwise", help="results/<out>.csv and .png")
    ap.add_argument("--max-radius", type=float, default=3.0)
    ap.add_argument("--geoopt-max", type=int, default=1024, help="largest N for broadcasting")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, d = args.n, args.d
    rows = []
    print(environment(), K.__name__, flush=True)
    for man in ("lorentz", "poincare", "euclidean"):
        rows += run_manifold(man, args)
    write_csv(f"{args.out}.csv", rows)
    for r in rows:
        r["label"] = f"{r['manifold']}: {r['method']}"
    bar_plot(
        f"{args.out}.png",
        rows,
        "label",
        "ratio_to_mm",
        f"pairwise distance N=M={n}, D={d}, float32 (time / torch.mm); {environment()}",
    )


if __name__ == "__main__":
    main()
