"""Every size a user trains with: the fused ops against the PyTorch composite and torch.mm.

Usage: .venv/bin/python benchmarks/bench_sizes.py [--sizes 128 256 ... 4096]
           [--dims 64 256 512] [--reps 5] [--threads T] [--quick] [--force]
           [--out bench_sizes]
Writes one CSV row per case: op, manifold, n, d, pass, fused_s, composite_s, mm_s,
fused/composite, fused/mm, and prints a markdown table with the verdict of issue 19's
two targets at each point: fused <= composite everywhere, and fused <= 1.3x torch.mm
from N = 2048 on.

Cases, float32, N = M, inputs at hyperbolic radius uniform in [0, 3]:

* ``pairwise_dist`` (Lorentz, Poincaré), forward and forward + backward (the sum of the
  N x M output as the loss): the fused op; the composite of the same maths in plain
  PyTorch (one GEMM and an elementwise ``acosh``); ``torch.mm`` of the (N, D) x (D, M)
  shapes (forward + backward: with its backward).
* ``contrastive_loss`` (Lorentz, tau = 0.07), forward and forward + backward: the fused
  streaming loss; the materialised composite InfoNCE (the same GEMM + ``acosh`` logits,
  N x M, cross-entropy over rows and columns); ``torch.mm`` as above.

The three methods of a case are timed interleaved, round-robin, in this one process
(``_common.measure_interleaved``: one warm-up call each, then the median of ``--reps``),
so that a change of machine load hits them alike: read the ratios, not the seconds.
``--threads`` sets torch's thread count (default: torch's own).

``--out NAME`` writes NAME.csv into the results folder (``benchmarks/results``, or the
run folder of ``run_all.py``); ``--out DIR/NAME`` writes DIR/NAME.csv relative to the
current directory. An existing file is refused before any measurement unless
``--force`` is given; the file is written whole at the end (a stopped run leaves none).
``--quick`` measures N in {256, 2048}, D = 64 with 3 repetitions (``make bench``).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import environment, measure_interleaved  # noqa: E402

import hypervldd.kernels as K  # noqa: E402
from hypervldd.manifolds import lorentz_math as L  # noqa: E402
from hypervldd.manifolds import poincare_math as P  # noqa: E402

SIZES = (128, 256, 512, 1024, 2048, 4096)
DIMS = (64, 256, 512)
QUICK_SIZES, QUICK_DIMS, QUICK_REPS = (256, 2048), (64,), 3
#: Issue 19's targets: fused <= composite everywhere; fused <= MM_LIMIT x mm from MM_FROM.
MM_LIMIT, MM_FROM = 1.3, 2048
TAU = 0.07
#: The clamp of the usual composite (MERU's): keeps acosh's derivative finite at z = 1.
ACOSH_MIN = 1 + 1e-7
CASES = (
    ("pairwise_dist", "lorentz"),
    ("pairwise_dist", "poincare"),
    ("contrastive_loss", "lorentz"),
)
PASSES = ("fwd", "fwd+bwd")


def points(man: str, n: int, d: int, seed: int) -> torch.Tensor:
    """(n, d + 1) Lorentz or (n, d) Poincaré float32 points, radius uniform in [0, 3]."""
    g = torch.Generator().manual_seed(seed)
    r = 3.0 * torch.rand(n, dtype=torch.float64, generator=g)
    if man == "lorentz":
        return L.random(n, d + 1, radius=r, dtype=torch.float64, generator=g).float()
    return P.random(n, d, radius=r, dtype=torch.float64, generator=g).float()


def composite_dist(x: torch.Tensor, y: torch.Tensor, man: str) -> torch.Tensor:
    """(N, M) distances in plain PyTorch: one GEMM and elementwise acosh (curvature -1)."""
    if man == "lorentz":
        xs, ys = x[:, 1:], y[:, 1:]
        inner = torch.outer(x[:, 0], y[:, 0]) - xs @ ys.T
        return torch.acosh(inner.clamp_min(ACOSH_MIN))
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    sq = (xx[:, None] + yy[None, :] - 2 * x @ y.T).clamp_min(0)
    den = (1 - xx)[:, None] * (1 - yy)[None, :]
    return torch.acosh((1 + 2 * sq / den).clamp_min(ACOSH_MIN))


def composite_infonce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE of ``K.contrastive_loss`` on materialised N x M logits."""
    logits = composite_dist(x, y, "lorentz") / -TAU
    t = torch.arange(x.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def _methods(op: str, man: str, n: int, d: int, backward: bool) -> dict:
    """{fused, composite, mm}: callables of one case (grads reset on every call)."""
    x, y = points(man, n, d, 1), points(man, n, d, 2)
    # torch.mm gets the (N, D) x (D, M) product the distances are built on.
    a = (x[:, 1:] if man == "lorentz" else x).contiguous()
    b = (y[:, 1:] if man == "lorentz" else y).contiguous()
    if op == "pairwise_dist":
        fns = {
            "fused": lambda p, q: K.pairwise_dist(p, q, man),
            "composite": lambda p, q: composite_dist(p, q, man),
        }
    else:
        fns = {
            "fused": lambda p, q: K.contrastive_loss(p, q, "lorentz", 1.0, TAU),
            "composite": composite_infonce,
        }
    fns["mm"] = lambda p, q: p @ q.T
    ins = {"fused": (x, y), "composite": (x, y), "mm": (a, b)}
    if not backward:
        return {k: (lambda f=f, p=ins[k]: f(*p)) for k, f in fns.items()}

    def step(f, p: torch.Tensor, q: torch.Tensor):  # noqa: ANN001, ANN202
        p, q = p.clone().requires_grad_(), q.clone().requires_grad_()

        def run() -> torch.Tensor:
            p.grad = q.grad = None
            out = f(p, q).sum()
            out.backward()
            return out.detach()

        return run

    return {k: step(f, *ins[k]) for k, f in fns.items()}


def measure_case(op: str, man: str, n: int, d: int, pas: str, reps: int) -> dict:
    """One CSV row: the medians of the three methods, timed interleaved."""
    res = measure_interleaved(_methods(op, man, n, d, pas == "fwd+bwd"), reps)
    fused, comp, mm = (res[k][0] for k in ("fused", "composite", "mm"))
    return {
        "op": op,
        "manifold": man,
        "n": n,
        "d": d,
        "pass": pas,
        "fused_s": f"{fused:.4e}",
        "composite_s": f"{comp:.4e}",
        "mm_s": f"{mm:.4e}",
        "fused/composite": f"{fused / comp:.3f}",
        "fused/mm": f"{fused / mm:.3f}",
    }


def verdicts(row: dict) -> tuple[bool, bool | None]:
    """(fused <= composite, fused <= MM_LIMIT x mm or None below N = MM_FROM) of a row."""
    fused = float(row["fused_s"])
    vs_comp = fused <= float(row["composite_s"])
    vs_mm = fused <= MM_LIMIT * float(row["mm_s"]) if int(row["n"]) >= MM_FROM else None
    return vs_comp, vs_mm


def markdown(rows: list[dict]) -> str:
    """The table of every case with both verdicts, and a count of each target's passes."""
    mark = {True: "pass", False: "**FAIL**", None: "–"}
    lines = [
        f"| op | manifold | pass | N | D | fused (ms) | composite (ms) | mm (ms) |"
        f" fused/composite | fused/mm | fused <= composite | fused <= {MM_LIMIT}x mm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally = {"comp": [0, 0], "mm": [0, 0]}
    for r in rows:
        vc, vm = verdicts(r)
        tally["comp"][0] += vc
        tally["comp"][1] += 1
        if vm is not None:
            tally["mm"][0] += vm
            tally["mm"][1] += 1
        ms = [f"{float(r[k]) * 1e3:.2f}" for k in ("fused_s", "composite_s", "mm_s")]
        lines.append(
            f"| {r['op']} | {r['manifold']} | {r['pass']} | {r['n']} | {r['d']} | "
            + " | ".join(ms)
            + f" | {r['fused/composite']} | {r['fused/mm']} | {mark[vc]} | {mark[vm]} |"
        )
    c, m = tally["comp"], tally["mm"]
    lines += [
        "",
        f"fused <= composite: {c[0]} of {c[1]} points pass.",
        f"fused <= {MM_LIMIT}x torch.mm from N = {MM_FROM}: "
        + (f"{m[0]} of {m[1]} points pass." if m[1] else f"no point with N >= {MM_FROM}."),
    ]
    return "\n".join(lines)


def out_path(out: str) -> str:
    """NAME -> <results folder>/NAME.csv; DIR/NAME -> DIR/NAME.csv (relative to here)."""
    name = out if out.endswith(".csv") else f"{out}.csv"
    if os.path.dirname(name):
        return os.path.abspath(name)
    return os.path.join(_common.RESULTS, name)


def _positive_ints(ap: argparse.ArgumentParser, flag: str, values: list[int]) -> None:
    bad = [v for v in values if v < 1]
    if bad:
        ap.error(f"{flag} must be positive integers, got {bad}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="N = M values")
    ap.add_argument("--dims", type=int, nargs="+", default=list(DIMS), help="D values")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per method (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="N in {256, 2048}, D = 64, 3 reps")
    ap.add_argument("--out", default="bench_sizes", help="NAME or DIR/NAME (writes .csv)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.reps = list(QUICK_SIZES), list(QUICK_DIMS), QUICK_REPS
    _positive_ints(ap, "--sizes", args.sizes)
    _positive_ints(ap, "--dims", args.dims)
    _positive_ints(ap, "--reps", [args.reps])
    if args.threads is not None:
        _positive_ints(ap, "--threads", [args.threads])
    args.path = out_path(args.out)
    if os.path.isdir(args.path):
        ap.error(f"--out {args.out}: {args.path} is a folder, expected a file name")
    if os.path.exists(args.path) and not args.force:
        ap.error(f"--out {args.out}: {args.path} exists; choose another name or pass --force")
    return args


def write_rows(path: str, rows: list[dict]) -> None:
    """Write the CSV through a temporary file, so that the file is whole or absent."""
    import csv

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.partial"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Fail on an unwritable folder now, not after the measurements.
    os.makedirs(os.path.dirname(args.path), exist_ok=True)
    if not os.access(os.path.dirname(args.path), os.W_OK):
        raise SystemExit(f"--out {args.out}: cannot write into {os.path.dirname(args.path)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(environment(), flush=True)
    rows = []
    for n in args.sizes:
        for d in args.dims:
            for op, man in CASES:
                for pas in PASSES:
                    row = measure_case(op, man, n, d, pas, args.reps)
                    rows.append(row)
                    print(
                        f"{op:16s} {man:8s} {pas:7s} N={n:5d} D={d:4d}  fused/composite"
                        f" {row['fused/composite']}  fused/mm {row['fused/mm']}",
                        flush=True,
                    )
    write_rows(args.path, rows)
    print(f"\n{environment()}\n\n{markdown(rows)}\n\nwrote {args.path}", flush=True)


if __name__ == "__main__":
    main()
