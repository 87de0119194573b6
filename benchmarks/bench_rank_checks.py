"""Share of rank alignment's step spent re-checking the cached real set.

Usage: .venv/bin/python benchmarks/bench_rank_checks.py [--n 5000] [--m 100] [--d 64]
           [--iters 15] [--out bench_rank_checks]
Writes results/<out>.csv. One thread, float32 Lorentz points (radius up to 2): one
forward + backward of `FullDatasetRankAlignment` over ``n`` real pairs and ``m``
synthetic pairs, with the default checks (every real chunk re-checked on every call)
and with ``real_checked=True`` (checked once by the caller), interleaved, median
seconds and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import environment, write_csv  # noqa: E402

from hypervldd.losses import FullDatasetRankAlignment  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402


def _pts(n: int, d: int) -> torch.Tensor:
    return L.random(n, d + 1, radius=torch.rand(n, dtype=torch.float64) * 2).float()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--out", default="bench_rank_checks")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(environment(), flush=True)
    rx, ry = _pts(args.n, args.d), _pts(args.n, args.d)
    sx, sy = _pts(args.m, args.d).requires_grad_(), _pts(args.m, args.d).requires_grad_()
    loss = FullDatasetRankAlignment()
    once: dict = {"real_checked": True}
    try:
        loss(sx, sy, rx, ry, **once)
    except TypeError:
        once = {}  # a version without real_checked: both rows measure the default
    cases = {"checked_every_call": {}, "checked_once": once}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(args.iters + 2):
        for name, extra in cases.items():
            t0 = time.perf_counter()
            loss(sx, sy, rx, ry, **extra).backward()
            if r >= 2:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["checked_every_call"]
    rows = [
        {"case": k, "n": args.n, "m": args.m, "seconds": f"{v:.5f}", "ratio": f"{v / base:.3f}"}
        for k, v in med.items()
    ]
    for r in rows:
        print(r)
    print("wrote", write_csv(f"{args.out}.csv", rows))


if __name__ == "__main__":
    main()
