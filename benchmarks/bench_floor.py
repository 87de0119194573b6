"""The floor under "fused <= 1.3x torch.mm": torch.mm plus one elementwise pass.

Usage: .venv/bin/python benchmarks/bench_floor.py [--n 2048] [--dims 64 256 512]
           [--reps 9] [--quick] [--out bench_floor] [--force]
Writes results/<out>.csv (an existing file only with ``--force``). One thread,
float32, (N, D) x (D, N). Methods: ``torch.mm`` alone, and ``torch.mm`` followed by one
in-place pass of PyTorch's own vectorised kernel over its N x N output: ``add_``
(a bare pass), ``sqrt_``, ``exp_``, ``log1p_`` (after ``abs_``, so that the argument is
valid). A pairwise distance needs a square root and a logarithm per output; where one
such pass alone costs more than 1.3x the GEMM, no distance op reaches 1.3x
``torch.mm``, fused or not. Timed interleaved round-robin in one process
(``_common.measure_interleaved``); read the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import environment, measure_interleaved, write_csv  # noqa: E402

PASSES = ("add_", "sqrt_", "exp_", "log1p_")


def _methods(n: int, d: int) -> dict:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g) / d**0.5
    b = torch.randn(n, d, generator=g) / d**0.5
    fns = {"mm": lambda: a @ b.T}
    fns["mm + add_"] = lambda: (a @ b.T).add_(1.0)
    fns["mm + sqrt_"] = lambda: (a @ b.T).abs_().sqrt_()
    fns["mm + exp_"] = lambda: (a @ b.T).exp_()
    fns["mm + log1p_"] = lambda: (a @ b.T).abs_().log1p_()
    return fns


def run(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for d in args.dims:
        res = measure_interleaved(_methods(args.n, d), args.reps)
        mm = res["mm"][0]
        for name, (sec, _, _) in res.items():
            rows.append(
                {
                    "method": name,
                    "n": args.n,
                    "d": d,
                    "seconds": f"{sec:.5f}",
                    "ratio_to_mm": f"{sec / mm:.3f}",
                }
            )
        print(
            f"N = {args.n}, D = {d}: torch.mm {mm * 1e3:.2f} ms; "
            + ", ".join(f"{k} {v[0] / mm:.2f}x" for k, v in res.items() if k != "mm")
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="N = 512, D = 64, 3 reps")
    ap.add_argument("--out", default="bench_floor")
    ap.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.dims, args.reps = 512, [64], 3
    if args.n < 1 or args.reps < 1 or any(d < 1 for d in args.dims):
        ap.error("--n, --dims and --reps must be positive")
    target = os.path.join(_common.RESULTS, f"{args.out}.csv")
    if os.path.exists(target) and not args.force:
        ap.error(f"{target} exists; pass --force to overwrite it")
    print(environment(), flush=True)
    print("wrote", write_csv(f"{args.out}.csv", run(args)))


if __name__ == "__main__":
    main()
