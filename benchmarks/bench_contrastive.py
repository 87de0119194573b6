"""Fused streaming hyperbolic InfoNCE (forward + backward) vs materialised losses.

Usage: .venv/bin/python benchmarks/bench_contrastive.py [--n 8192] [--d 256] [--reps 3]
           [--keops-reps 1] [--threads 2] [--large 65536] [--out bench_contrastive]
Writes results/<out>.csv and results/<out>.png. "materialised reference" is
the textbook loss on the full N x N logits from pairwise_dist_ref (autograd); the
MERU-style composite uses acosh(clamp(x0 y0^T - xs ys^T)); KeOps (pykeops, when
importable) reduces the same MERU-style logits symbolically (row and column
logsumexp, never N x N) with its own autograd. --large N runs the fused op alone
at N = M = large (the materialised losses would need N^2 floats several times).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import PeakRSS, bar_plot, environment, measure_interleaved, write_csv  # noqa: E402

import hypervldd.kernels as K  # noqa: E402
from hypervldd.kernels import reference as R  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402


def data(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.rand(n, dtype=torch.float64) * 3
    x = L.random(n, d + 1, radius=r, dtype=torch.float64)
    y = L.expmap(x, L.proju(x, 0.3 * torch.randn(n, d + 1, dtype=torch.float64), 1.0), 1.0)
    return x.float(), y.float()


def materialised(x, y, tau=0.07):  # noqa: ANN001, ANN201
    logits = -R.pairwise_dist_ref(x, y) / tau
    t = torch.arange(x.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def meru(x, y, tau=0.07):  # noqa: ANN001, ANN201
    a, b = x[:, 1:], y[:, 1:]
    x0 = torch.sqrt(1 + (a * a).sum(1))
    y0 = torch.sqrt(1 + (b * b).sum(1))
    logits = -torch.acosh(torch.clamp(torch.outer(x0, y0) - a @ b.T, min=1 + 1e-7)) / tau
    t = torch.arange(x.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def keops_loss(x, y, tau=0.07):  # noqa: ANN001, ANN201
    from pykeops.torch import LazyTensor

    a, b = x[:, 1:].contiguous(), y[:, 1:].contiguous()
    x0 = torch.sqrt(1 + (a * a).sum(1, keepdim=True))
    y0 = torch.sqrt(1 + (b * b).sum(1, keepdim=True))
    xi = LazyTensor(torch.cat([x0, a], 1)[:, None, :])
    yj = LazyTensor(torch.cat([y0, -b], 1)[None, :, :])
    z = (xi * yj).sum(-1)  # x0 y0 - xs.ys, the MERU-style inner product
    # acosh(z) = log(z + sqrt(z^2 - 1)); relu guards z slightly below 1 from rounding.
    logits = -((z + (z * z - 1).relu().sqrt()).log()) / tau
    row = logits.logsumexp(dim=1).squeeze(-1)
    col = logits.logsumexp(dim=0).squeeze(-1)
    zpos = torch.clamp(x0[:, 0] * y0[:, 0] - (a * b).sum(1), min=1.0)
    lpos = -torch.acosh(zpos) / tau
    return ((row - lpos).mean() + (col - lpos).mean()) / 2


def step(fn, x, y):  # noqa: ANN001, ANN201
    def run():
        xr = x.detach().requires_grad_()
        yr = y.detach().requires_grad_()
        loss = fn(xr, yr)
        loss.backward()
        return float(loss.detach())

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keops-reps", type=int, default=1, help="0 skips KeOps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large", type=int, default=0)
    ap.add_argument("--out", default="bench_contrastive", help="results/<out>.csv and .png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(environment(), flush=True)
    rows = []
    x, y = data(args.n, args.d)
    with torch.no_grad():
        truth = float(materialised(x.double(), y.double()))
    methods = {
        "materialised reference": lambda a, b: materialised(a, b),
        "fused contrastive_loss": lambda a, b: K.contrastive_loss(a, b, tau=0.07),
        "MERU-style composite": meru,
        "fused contrastive_loss, float64 inputs": lambda a, b: K.contrastive_loss(
            a.double(), b.double(), tau=0.07
        ),
    }
    reps = dict.fromkeys(methods, args.reps)
    if args.keops_reps > 0:
        try:
            import pykeops  # noqa: F401

            methods["KeOps (pykeops) LSE reductions"] = keops_loss
            reps["KeOps (pykeops) LSE reductions"] = args.keops_reps
        except ImportError as err:
            print(f"KeOps skipped: {err}", flush=True)
    base = None
    results = measure_interleaved({k: step(f, x, y) for k, f in methods.items()}, reps)
    for name in methods:
        t, mem, val = results[name]
        base = base or (t, mem)
        row = {
            "method": name,
            "n": args.n,
            "d": args.d,
            "reps": reps[name],
            "median_s_fwd_bwd": f"{t:.3f}",
            "ratio_to_reference": f"{t / base[0]:.3f}",
            "peak_rss_extra_mb": f"{mem:.1f}",
            "mem_ratio_to_reference": f"{mem / max(base[1], 1e-9):.3f}",
            "rel_err_vs_f64": f"{abs(val - truth) / abs(truth):.2e}",
        }
        rows.append(row)
        print(row, flush=True)
    if args.large:
        # One call, no warm-up: at this size a call takes minutes.
        xl, yl = data(args.large, args.d)
        t0 = time.perf_counter()
        with PeakRSS() as peak:
            step(methods["fused contrastive_loss"], xl, yl)()
        t, mem = time.perf_counter() - t0, peak.extra_mb
        row = {
            "method": "fused contrastive_loss",
            "n": args.large,
            "d": args.d,
            "reps": 1,
            "median_s_fwd_bwd": f"{t:.3f}",
            "ratio_to_reference": "",
            "peak_rss_extra_mb": f"{mem:.1f}",
            "mem_ratio_to_reference": "",
            "rel_err_vs_f64": "",
        }
        rows.append(row)
        print(row, flush=True)
    write_csv(f"{args.out}.csv", rows)
    for r in rows:
        r["label"] = f"{r['method']} N={r['n']}"
    bar_plot(
        f"{args.out}.png",
        [r for r in rows if r["ratio_to_reference"]],
        "label",
        "ratio_to_reference",
        f"InfoNCE fwd+bwd N=M={args.n}, D={args.d} (time / materialised); {environment()}",
    )


if __name__ == "__main__":
    main()
