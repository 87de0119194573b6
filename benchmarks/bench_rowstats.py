"""Streaming row statistics (LSE, softmax-weighted values, smooth rank), fwd + bwd.

Usage: .venv/bin/python benchmarks/bench_rowstats.py [--n 4096] [--d 256] [--k 16] [--reps 3]
           [--threads 2] [--out bench_rowstats]
Writes results/<out>.csv and results/<out>.png against the materialised
computation on the full N x M logits (pairwise_dist_ref + softmax @ v + sigmoids),
forward + backward, in the same process on the same inputs.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import bar_plot, environment, measure_interleaved, write_csv  # noqa: E402

import hypervldd.kernels as K  # noqa: E402
from hypervldd.kernels import reference as R  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402


def materialised(x, y, v, tau=0.1, t=0.05):  # noqa: ANN001, ANN201
    s = -R.pairwise_dist_ref(x, y) / tau
    n = s.shape[0]
    lse = torch.logsumexp(s, 1)
    w = torch.softmax(s, 1) @ v
    sp = s.diagonal()
    rank = 1 + torch.sigmoid((s - sp[:, None]) / t).sum(1) - 0.5  # the j = i term is 1/2
    return lse.sum() + w.sum() + rank.sum() / n


def fused(x, y, v, tau=0.1, t=0.05):  # noqa: ANN001, ANN201
    st = K.row_stats(x, y, tau=tau, values=v, rank_temperature=t)
    return st.lse.sum() + st.weighted.sum() + st.smooth_rank.sum() / x.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_rowstats", help="results/<out>.csv and .png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(environment(), flush=True)
    n, d = args.n, args.d
    x = L.random(n, d + 1, radius=torch.rand(n) * 3).float()
    y = L.random(n, d + 1, radius=torch.rand(n) * 3).float()
    v = torch.randn(n, args.k)
    with torch.no_grad():
        truth = float(materialised(x.double(), y.double(), v.double()))
    rows, base = [], None
    cases = (
        ("materialised reference", materialised, torch.float32),
        ("fused row_stats", fused, torch.float32),
        ("fused row_stats, float64 inputs", fused, torch.float64),
    )
    runs = {}
    for name, fn, dt in cases:

        def run(fn=fn, dt=dt):  # noqa: ANN001, ANN202
            xr, yr, vr = (t.detach().to(dt).requires_grad_() for t in (x, y, v))
            out = fn(xr, yr, vr)
            out.backward()
            return float(out.detach())

        runs[name] = run
    results = measure_interleaved(runs, args.reps)
    for name in runs:
        t, mem, val = results[name]
        base = base or (t, mem)
        row = {
            "method": name,
            "n": n,
            "d": d,
            "k": args.k,
            "median_s_fwd_bwd": f"{t:.3f}",
            "ratio_to_reference": f"{t / base[0]:.3f}",
            "peak_rss_extra_mb": f"{mem:.1f}",
            "mem_ratio_to_reference": f"{mem / max(base[1], 1e-9):.3f}",
            "rel_err_vs_f64": f"{abs(val - truth) / abs(truth):.2e}",
        }
        rows.append(row)
        print(row, flush=True)
    write_csv(f"{args.out}.csv", rows)
    bar_plot(
        f"{args.out}.png",
        rows,
        "method",
        "ratio_to_reference",
        f"row_stats fwd+bwd N=M={n}, D={d}, K={args.k} (time / materialised); {environment()}",
    )


if __name__ == "__main__":
    main()
