"""The float64 linear algebra of one RAHA step, and the alternatives that were timed.

Usage: .venv/bin/python benchmarks/bench_raha_linalg.py [--b 256] [--d 512] [--k 32]
           [--reps 15] [--out bench_raha_linalg] [--force]
Writes results/<out>.csv (an existing file only with ``--force``). One thread. The
inputs of ``losses.raha.range_residual_subspaces`` at the emoji shapes (b real pairs,
width d, float64, centred): ``geqrf`` of the (d, b) transposes (two per step), ``eigh``
of the b x b Gram matrix of the R factors' product (one per step), and what could replace
them: ``eigvalsh`` (values only), the SVD of the b x b product, float32 ``geqrf``, and
LAPACK's partial eigensolver for the top ``k`` pairs (``scipy.linalg.eigh`` with
``subset_by_index`` and driver ``evr``, when scipy is installed). Median seconds of
interleaved calls; read the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import environment, measure_interleaved, write_csv  # noqa: E402


def _methods(b: int, d: int, k: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, d, dtype=torch.float64, generator=g)
    y = 0.1 * x @ torch.randn(d, d, dtype=torch.float64, generator=g)
    y = y + torch.randn(b, d, dtype=torch.float64, generator=g)
    xc, yc = x - x.mean(0), y - y.mean(0)
    ax, _ = torch.geqrf(xc.T)
    ay, _ = torch.geqrf(yc.T)
    r = min(b, d)
    m = ax[:r].triu() @ ay[:r].triu().T
    gram = m @ m.T
    fns = {
        "geqrf float64 (d, b)": lambda: torch.geqrf(xc.T),
        "eigh float64 (b, b)": lambda: torch.linalg.eigh(gram),
        "eigvalsh float64 (b, b)": lambda: torch.linalg.eigvalsh(gram),
        "svd float64 (b, b)": lambda: torch.linalg.svd(m),
        "geqrf float32 (d, b)": lambda: torch.geqrf(xc.T.float()),
    }
    try:
        import scipy.linalg as sl
    except ImportError:
        return fns
    gn = gram.numpy()
    top = [gn.shape[0] - k, gn.shape[0] - 1]
    fns[f"scipy eigh evr top {k}"] = lambda: sl.eigh(
        gn, subset_by_index=top, driver="evr", check_finite=False
    )
    return fns


def run(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(1)
    res = measure_interleaved(_methods(args.b, args.d, args.k), args.reps)
    rows = []
    for name, (sec, _, _) in res.items():
        rows.append({"method": name, "b": args.b, "d": args.d, "seconds": f"{sec:.5f}"})
        print(f"{name:28s} {sec * 1e3:7.2f} ms")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--b", type=int, default=256)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--out", default="bench_raha_linalg")
    ap.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    args = ap.parse_args(argv)
    if min(args.b, args.d, args.reps) < 1 or not 1 <= args.k <= min(args.b, args.d):
        ap.error("--b, --d and --reps must be positive and 1 <= --k <= min(b, d)")
    target = os.path.join(_common.RESULTS, f"{args.out}.csv")
    if os.path.exists(target) and not args.force:
        ap.error(f"{target} exists; pass --force to overwrite it")
    print(environment(), flush=True)
    print("wrote", write_csv(f"{args.out}.csv", run(args)))


if __name__ == "__main__":
    main()
