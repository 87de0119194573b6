"""The float32 epilogue of the C++ CPU kernels in isolation: nanoseconds per pair.

Usage: .venv/bin/python benchmarks/bench_epilogue.py [--n 2048] [--dims 64 256 512]
           [--reps 9] [--threads 1] [--lib PATH] [--skip-ops] [--skip-pass]
           [--out bench_epilogue] [--force]

For each manifold (Lorentz, Poincaré) and D, float32, N = M = ``--n``, inputs at
hyperbolic radius uniform in [0, 3] (as ``bench_sizes.py``), two measurements:

* the ops: the raw forward op ``torch.ops.hypervldd.pairwise_dist``, the raw factor op
  of the backward ``torch.ops.hypervldd.pairwise_dist_factor`` (distances, factors and
  the mask) and ``torch.mm`` of the same (N, D) x (D, M) shapes, timed interleaved in
  this one process (``_common.measure_interleaved``, median of ``--reps``). The raw ops
  skip the Python side, so ``(op - mm) / (N M)`` is the epilogue's cost per pair plus
  the op's own overheads (per-row data, the factor op's extra outputs); at high machine
  load the difference drowns in the GEMM's variation.
* the fast pass alone (``benchmarks/epilogue_pass.cpp``, compiled here with ``c++``
  against ``csrc/cpu/epilogue.h``): the same GEMM values and per-row data through GCC's
  vectorisation of ``pair_epilogue`` (the float32 loop before the AVX2 intrinsics) and
  through the intrinsics of ``csrc/cpu/epilogue_avx2.h``, interleaved in one process,
  median per pair over ``--reps`` runs of all N rows, forward (distances) and factor
  pass (distances, factors, mask), plus the largest relative difference of the two.

One CSV row per case. ``--lib PATH`` loads the ops from another build of the extension
(e.g. a copy of the previous ``hypervldd/_C*.so``) without importing the package, so
that two builds can be measured back to back by alternating processes. Read the
ratios: other jobs may share the cores. ``--out NAME`` writes NAME.csv into
``benchmarks/results`` (``--out DIR/NAME``: DIR/NAME.csv relative to the current
directory); an existing file is refused before any measurement unless ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import _common  # noqa: E402
from _common import environment, measure_interleaved  # noqa: E402

MANIFOLDS = {"lorentz": 0, "poincare": 1}


def points(man: str, n: int, d: int, seed: int) -> torch.Tensor:
    """(n, d + 1) Lorentz or (n, d) Poincaré float32 points (c = 1), hyperbolic radius
    uniform in [0, 3], uniform directions; built here so that ``--lib`` needs no package."""
    g = torch.Generator().manual_seed(seed)
    r = 3.0 * torch.rand(n, 1, dtype=torch.float64, generator=g)
    u = torch.randn(n, d, dtype=torch.float64, generator=g)
    u = u / u.norm(dim=1, keepdim=True)
    if man == "lorentz":
        return torch.cat([torch.cosh(r), torch.sinh(r) * u], dim=1).float()
    return (torch.tanh(r / 2) * u).float()


def default_lib() -> str | None:
    """The package's compiled extension, or None when it was installed without one."""
    found = sorted(glob.glob(os.path.join(ROOT, "hypervldd", "_C*.so")))
    return found[0] if found else None


def time_ops(x: torch.Tensor, y: torch.Tensor, man: str, reps: int) -> dict:
    c = torch.tensor(1.0, dtype=torch.float32)
    code = MANIFOLDS[man]
    a = x[:, 1:] if man == "lorentz" else x
    bt = (y[:, 1:] if man == "lorentz" else y).t()
    ops = torch.ops.hypervldd
    res = measure_interleaved(
        {
            "fwd": lambda: ops.pairwise_dist(x, y, c, code),
            "factor": lambda: ops.pairwise_dist_factor(x, y, c, code),
            "mm": lambda: torch.mm(a, bt),
        },
        reps,
    )
    fwd, fac, mm = (res[k][0] for k in ("fwd", "factor", "mm"))
    pairs = x.shape[0] * y.shape[0]
    return {
        "fwd_s": f"{fwd:.6f}",
        "factor_s": f"{fac:.6f}",
        "mm_s": f"{mm:.6f}",
        "fwd_ns_per_pair": f"{(fwd - mm) / pairs * 1e9:.2f}",
        "factor_ns_per_pair": f"{(fac - mm) / pairs * 1e9:.2f}",
        "fwd/mm": f"{fwd / mm:.2f}",
        "factor/mm": f"{fac / mm:.2f}",
    }


def build_pass(folder: str) -> str:
    """Compile benchmarks/epilogue_pass.cpp into folder; returns the executable."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise SystemExit("no C++ compiler (c++ or $CXX) to build epilogue_pass.cpp")
    exe = os.path.join(folder, "epilogue_pass")
    inc = [f"-I{os.path.join(ROOT, 'csrc', d)}" for d in ("include", "cpu")]
    src = os.path.join(HERE, "epilogue_pass.cpp")
    subprocess.run([cxx, "-O3", "-std=c++17", *inc, src, "-o", exe], check=True)
    return exe


def time_pass(exe: str, folder: str, x: torch.Tensor, y: torch.Tensor, man: str, reps: int) -> dict:
    """The fast pass alone on this case's GEMM values and per-row data (c = 1)."""
    if man == "lorentz":
        xs, ys = x[:, 1:].double(), y[:, 1:].double()
        n2x, n2y = (xs * xs).sum(1), (ys * ys).sum(1)
        r0, r1, q0, q1 = (n2x + 1).sqrt(), n2x.sqrt(), (n2y + 1).sqrt(), n2y.sqrt()
        g, scale = x[:, 1:] @ y[:, 1:].t(), 1.0
    else:
        n2x, n2y = (x.double() ** 2).sum(1), (y.double() ** 2).sum(1)
        r0, r1, q0, q1 = n2x, 1 - n2x, n2y, 1 - n2y
        g, scale = x @ y.t(), 2.0
    path = os.path.join(folder, "case.bin")
    with open(path, "wb") as f:
        head = torch.tensor([MANIFOLDS[man], x.shape[0], y.shape[0]], dtype=torch.int64)
        f.write(head.numpy().tobytes())
        f.write(torch.tensor([1.0, 1.0, scale], dtype=torch.float32).numpy().tobytes())
        for t in (g, r0, r1, q0, q1):
            f.write(t.float().contiguous().numpy().tobytes())
    out = subprocess.run([exe, path, str(reps)], capture_output=True, text=True)
    if out.returncode != 0:  # e.g. a CPU without AVX2: nothing to compare
        print(f"# fast pass not timed: {out.stderr.strip()}")
        return {}
    fo, fn, ao, an, dd, df, bo, bn = out.stdout.split()
    return {
        "pass_fwd_old_ns": fo,
        "pass_fwd_new_ns": fn,
        "pass_factor_old_ns": ao,
        "pass_factor_new_ns": an,
        "pass_fwd_speedup": f"{float(fo) / float(fn):.2f}",
        "pass_factor_speedup": f"{float(ao) / float(an):.2f}",
        "pass_max_rel_diff_d": dd,
        "pass_max_rel_diff_f": df,
        "pass_rejected_old": bo,
        "pass_rejected_new": bn,
    }


def out_path(out: str) -> str:
    """NAME -> <results folder>/NAME.csv; DIR/NAME -> DIR/NAME.csv (relative to here)."""
    name = out if out.endswith(".csv") else f"{out}.csv"
    return name if os.path.dirname(name) else os.path.join(_common.RESULTS, name)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="N = M (default 2048)")
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--manifolds", nargs="+", default=list(MANIFOLDS), choices=list(MANIFOLDS))
    ap.add_argument("--reps", type=int, default=9, help="timed repetitions per method")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--lib", default=None, help="the extension to load (default: the package's)")
    ap.add_argument("--skip-ops", action="store_true", help="time the fast pass only")
    ap.add_argument("--skip-pass", action="store_true", help="time the raw ops only")
    ap.add_argument("--out", default="bench_epilogue", help="NAME or DIR/NAME (writes .csv)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    args = ap.parse_args(argv)
    for name in ("n", "reps", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if any(d < 1 for d in args.dims):
        ap.error(f"--dims must be positive integers, got {args.dims}")
    if args.skip_ops and args.skip_pass:
        ap.error("--skip-ops and --skip-pass together leave nothing to measure")
    if args.lib is not None and not os.path.isfile(args.lib):
        ap.error(f"--lib {args.lib}: no such file, expected a compiled hypervldd extension")
    args.path = out_path(args.out)
    if os.path.isdir(args.path):
        ap.error(f"--out {args.out}: {args.path} is a folder, expected a file name")
    if os.path.exists(args.path) and not args.force:
        ap.error(f"--out {args.out}: {args.path} exists; choose another name or pass --force")
    folder = os.path.dirname(args.path) or "."
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        ap.error(f"--out {args.out}: cannot write into {folder}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    lib = None if args.skip_ops else (args.lib or default_lib())
    if lib is None and not args.skip_ops:
        print("# no compiled extension hypervldd/_C*.so: timing the fast pass only")
        args.skip_ops = True
    if lib is not None:
        torch.ops.load_library(lib)
    print(f"# {environment()}; extension {lib}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        exe = None if args.skip_pass else build_pass(tmp)
        for man in args.manifolds:
            for d in args.dims:
                x, y = points(man, args.n, d, 0), points(man, args.n, d, 1)
                row = {"manifold": man, "n": args.n, "d": d}
                if not args.skip_ops:
                    row.update(time_ops(x, y, man, args.reps))
                if exe is not None:
                    row.update(time_pass(exe, tmp, x, y, man, args.reps))
                rows.append(row)
                print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    with open(args.path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
