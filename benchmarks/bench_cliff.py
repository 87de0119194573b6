"""Near-origin inputs against typical ones: the cost of the fused ops and their slow path.

Usage: .venv/bin/python benchmarks/bench_cliff.py [--n 1024] [--d 64] [--reps 7]
           [--threads 1] [--out bench_cliff]
Writes results/<out>.csv. For Lorentz and Poincaré, float32, N = M: "typical" points
at hyperbolic radius uniform in [0, 3], "near origin" at radius uniform in [0, 0.05]
(every pair closer than 0.1). Times are medians of interleaved repetitions (typical,
near origin, typical, ...) of `kernels.pairwise_dist` (forward) and
`kernels.contrastive_loss` (forward + backward) in one process; the ratio
near-origin / typical is what to read (the target of issue 19 is at most 1.5).
slow_frac is the fraction of pairs the compiled op sends to its float64 slow path
(from the mask of `pairwise_dist_factor`).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import environment, measure_interleaved, write_csv  # noqa: E402

import hypervldd.kernels as K  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402
from hypervldd.manifolds import poincare_math as P  # noqa: E402

CODES = {"lorentz": 0, "poincare": 1}


def _points(man: str, n: int, d: int, max_radius: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, dtype=torch.float64, generator=g) * max_radius
    torch.manual_seed(seed)
    if man == "lorentz":
        return L.random(n, d + 1, radius=r, dtype=torch.float64).float()
    return P.random(n, d, radius=r, dtype=torch.float64).float()


def slow_fraction(x: torch.Tensor, y: torch.Tensor, man: str) -> float:
    """Fraction of pairs the compiled op recomputes in float64 (nan without it)."""
    try:
        op = torch.ops.hypervldd.pairwise_dist_factor
    except (AttributeError, RuntimeError):
        return float("nan")
    _, _, bad = op(x, y, torch.tensor(1.0), CODES[man])
    return float(bad.float().mean())


def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    for man in ("lorentz", "poincare"):
        inputs = {
            "typical": [_points(man, args.n, args.d, 3.0, s) for s in (1, 2)],
            "near_origin": [_points(man, args.n, args.d, 0.05, s) for s in (3, 4)],
        }
        for op in ("pairwise_dist", "contrastive_loss"):
            fns = {}
            for case, (x, y) in inputs.items():
                if op == "pairwise_dist":
                    fns[case] = lambda x=x, y=y, man=man: K.pairwise_dist(x, y, man)
                else:
                    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()

                    def step(xr=xr, yr=yr, man=man):
                        loss = K.contrastive_loss(xr, yr, man)
                        loss.backward()
                        return loss

                    fns[case] = step
            res = measure_interleaved(fns, args.reps)
            t_typ, t_near = res["typical"][0], res["near_origin"][0]
            for case, (x, y) in inputs.items():
                rows.append(
                    {
                        "manifold": man,
                        "op": op,
                        "inputs": case,
                        "n": args.n,
                        "d": args.d,
                        "seconds": f"{res[case][0]:.6f}",
                        "ratio_to_typical": f"{res[case][0] / t_typ:.3f}",
                        "slow_frac": f"{slow_fraction(x, y, man):.4f}",
                    }
                )
            print(
                f"{man:9s} {op:17s} typical {t_typ * 1e3:8.2f} ms  near origin"
                f" {t_near * 1e3:8.2f} ms  ratio {t_near / t_typ:.2f}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="N = 256, 3 repetitions")
    ap.add_argument("--out", default="bench_cliff")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.reps = 256, 3
    torch.set_num_threads(args.threads)
    print(environment(), flush=True)
    rows = run(args)
    print("wrote", write_csv(f"{args.out}.csv", rows))


if __name__ == "__main__":
    main()
