"""Time and peak memory per step of the losses (CPU).

Cases (each runs in a fresh subprocess so that its peak memory is its own):

* ``hitc``: hyperbolic contrastive loss, fused streaming op vs the dense reference path
  (``use_fused=False``), forward + backward, D = 256.
* ``raha``: one RAHA step at b = 64, d = 2304: corrected (QR subspaces) vs faithful (d x d
  SVD), and the subspace solvers alone.
* ``align``: full-dataset rank alignment against real sets of 10k, 100k and 1M pairs
  (D = 256, 100 synthetic pairs), forward + backward.

Peak memory is the growth of the process's peak resident set during the measured step,
above what the inputs (including the real set) already occupy. Usage::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/losses.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results", "losses.csv")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _lorentz_points(n: int, d: int, scale: float, seed: int, chunk: int = 65536) -> torch.Tensor:
    """Random lifted features, built chunk by chunk (no full-size temporaries)."""
    from hypervldd.manifolds import lorentz_math

    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, d + 1)
    for i in range(0, n, chunk):
        u = torch.randn(min(chunk, n - i), d, generator=g) * scale
        out[i : i + u.shape[0]] = lorentz_math.expmap0(torch.nn.functional.pad(u, (1, 0)), 1.0)
    return out


def _time(step, reps: int) -> tuple[float, float]:
    """(peak MB growth of the first call, median seconds over ``reps`` calls)."""
    base = _peak_mb()
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    mem = _peak_mb() - base
    times = [first]
    for _ in range(reps - 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    return mem, times[len(times) // 2]


def case_hitc(variant: str, n: int, reps: int) -> dict:
    from hypervldd.losses import HyperbolicContrastiveLoss

    g = torch.Generator().manual_seed(0)
    img = torch.randn(n, 256, generator=g).requires_grad_()
    txt = torch.randn(n, 256, generator=g).requires_grad_()
    loss_fn = HyperbolicContrastiveLoss("lorentz", use_fused=(variant == "fused"))
    loss_fn(img[:8], txt[:8]).backward()  # warm-up: one-time library allocations

    def step() -> None:
        loss_fn(img, txt).backward()

    mem, t = _time(step, reps)
    return {"size": f"N={n},D=256", "time_s": t, "peak_mem_mb": mem}


def case_raha(variant: str, reps: int) -> dict:
    from hypervldd.losses import RAHALoss, range_residual_subspaces

    b, d = 64, 2304
    g = torch.Generator().manual_seed(0)
    ln = torch.nn.functional.layer_norm
    ri, rt = ln(torch.randn(b, d, generator=g), (d,)), ln(torch.randn(b, d, generator=g), (d,))
    si = ln(torch.randn(b, d, generator=g), (d,)).requires_grad_()
    st = ln(torch.randn(b, d, generator=g), (d,)).requires_grad_()
    if variant.startswith("solver-"):
        solver = variant.split("-", 1)[1]

        def step() -> None:
            range_residual_subspaces(ri, rt, 0.95, solver=solver)

        range_residual_subspaces(ri[:8, :16], rt[:8, :16], 0.95, solver=solver)  # warm-up

    else:
        loss_fn = {
            "corrected-qr": RAHALoss(),
            "corrected-svd": RAHALoss(solver="svd"),
            "faithful-svd": RAHALoss(faithful=True),
            "faithful-qr": RAHALoss(faithful=True, solver="qr"),
        }[variant]
        loss_fn(si[:8, :16], st[:8, :16], real_image=ri[:8, :16], real_text=rt[:8, :16]).backward()

        def step() -> None:
            loss_fn(si, st, real_image=ri, real_text=rt).backward()

    mem, t = _time(step, reps)
    return {"size": f"b={b},d={d}", "time_s": t, "peak_mem_mb": mem}


def case_align(variant: str, n: int, reps: int) -> dict:
    from hypervldd.losses import FullDatasetRankAlignment

    d, m = 256, 100
    real_x = _lorentz_points(n, d, 0.1, seed=1)
    real_y = _lorentz_points(n, d, 0.1, seed=2)
    syn_x = _lorentz_points(m, d, 0.1, seed=3).requires_grad_()
    syn_y = _lorentz_points(m, d, 0.1, seed=4).requires_grad_()
    loss_fn = FullDatasetRankAlignment(variant=variant, chunk_size=8192, lift=False)
    loss_fn(syn_x[:8], syn_y[:8], real_image=real_x[:64], real_text=real_y[:64]).backward()

    def step() -> None:
        loss_fn(syn_x, syn_y, real_image=real_x, real_text=real_y).backward()

    mem, t = _time(step, reps)
    return {"size": f"N={n},M={m},D={d}", "time_s": t, "peak_mem_mb": mem}


def equivalence(out: str) -> None:
    """QR subspaces vs the d x d SVD's at b = 64, d = 2304: relative projector differences."""
    from hypervldd.losses import range_residual_subspaces

    b, d = 64, 2304
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(b, 8, generator=g)
    ri = shared @ torch.randn(8, d, generator=g) + torch.randn(b, d, generator=g)
    rt = shared @ torch.randn(8, d, generator=g) + torch.randn(b, d, generator=g)
    rows = []
    for eta in (0.95, 0.999):  # each d x d SVD takes a minute or more on two busy cores
        q = range_residual_subspaces(ri, rt, eta, solver="qr")
        s = range_residual_subspaces(ri, rt, eta, solver="svd")
        diff = [
            float(torch.linalg.matrix_norm(a @ a.T - e @ e.T) / torch.linalg.matrix_norm(e @ e.T))
            for a, e in ((q.u, s.u), (q.v, s.v))
        ]
        n = q.singular_values.numel()
        sv = float((q.singular_values - s.singular_values[:n]).abs().max() / s.singular_values[0])
        rows.append(
            {
                "eta": eta,
                "k_qr": q.rank,
                "k_svd": s.rank,
                "proj_rel_diff_image": f"{diff[0]:.3g}",
                "proj_rel_diff_text": f"{diff[1]:.3g}",
                "singular_value_rel_diff": f"{sv:.3g}",
            }
        )
        print(rows[-1], flush=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _cases(quick: bool) -> list[tuple[str, str, dict]]:
    cases: list[tuple[str, str, dict]] = []
    for n in (1024,) if quick else (1024, 4096):
        for v in ("fused", "reference"):
            cases.append(("hitc", v, {"n": n, "reps": 3}))
    for v in ("solver-qr", "solver-svd"):
        cases.append(("raha", v, {"reps": 3 if v == "solver-qr" else 1}))
    raha_variants = ("corrected-qr", "faithful-svd", "faithful-qr", "corrected-svd")
    for v in raha_variants[:1] if quick else raha_variants:
        cases.append(("raha", v, {"reps": 3 if v.endswith("qr") else 1}))
    sizes = (10_000,) if quick else (10_000, 100_000, 1_000_000)
    for n in sizes:
        cases.append(("align", "listwise", {"n": n, "reps": 2 if n <= 100_000 else 1}))
    for n in () if quick else (10_000, 100_000):
        cases.append(("align", "pairwise", {"n": n, "reps": 1}))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument(
        "--equivalence",
        action="store_true",
        help="compare QR and d x d SVD subspaces at b=64, d=2304 (results/losses_equivalence.csv)",
    )
    args = parser.parse_args()
    if args.equivalence:
        equivalence(os.path.join(HERE, "results", "losses_equivalence.csv"))
        return
    if args.case:  # child process: run one case, print one JSON line
        name, variant, kw = json.loads(args.case)
        fn = {"hitc": case_hitc, "raha": case_raha, "align": case_align}[name]
        torch.manual_seed(0)
        print(json.dumps(fn(variant, **kw)))
        return
    from hypervldd import backend_info

    rows = []
    for name, variant, kw in _cases(args.quick):
        cmd = [sys.executable, __file__, "--case", json.dumps([name, variant, kw])]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            raise SystemExit(f"case {name}/{variant} failed")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        row = {
            "benchmark": name,
            "variant": variant,
            "size": out["size"],
            "time_s": f"{out['time_s']:.4g}",
            "peak_mem_mb": f"{out['peak_mem_mb']:.1f}",
            "threads": torch.get_num_threads(),
            "backend": backend_info().backend,
            "torch": torch.__version__,
        }
        rows.append(row)
        print(",".join(str(v) for v in row.values()), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
