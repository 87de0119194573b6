"""The fused kernels on a GPU against the plain PyTorch ways of computing the same thing.

Command (one H100, under 5 minutes; the time budget skips what would exceed it)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu.py --out benchmarks/results/gpu.csv

Cases, float32, TF32 off everywhere (``torch.backends.cuda.matmul.allow_tf32 = False``):

* ``pairwise_dist`` (Lorentz, ``N = M`` in 1024, 8192, 32768; ``D`` = 64, 512):
  ``hypervldd`` (:func:`hypervldd.kernels.pairwise_dist`), ``torch.mm`` (the bare GEMM of
  the space parts, a floor no distance can beat) and ``composite`` (the MERU-style
  distance: GEMM, outer product of the times, clamp and ``acosh`` as separate torch ops);
* ``contrastive_loss`` forward + backward (Lorentz, ``D = 256``, ``N = M`` up to 262,144):
  ``hypervldd`` (:func:`hypervldd.kernels.contrastive_loss`, streaming) and
  ``materialised`` (the composite's ``N x M`` logits + two cross-entropies), skipped with a
  note where its ``N x M`` buffers would not fit in the device's free memory.

Each case: warm-up calls, then CUDA-event timing of ``--reps`` calls (median), and
``torch.cuda.max_memory_allocated`` above the inputs during one call. Data-dependent
input checks are off (``hypervldd.validation(False)``): they are host syncs that the
training loops turn off too. Results go to ``--out`` (CSV); an existing file is kept
unless ``--force``. ``--smoke`` runs tiny sizes on the CPU (wall-clock timing, no memory
figure) so that the tests exercise this script.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import hypervldd  # noqa: E402
from hypervldd import kernels  # noqa: E402
from hypervldd._device import resolve_device  # noqa: E402
from hypervldd.selftest import _backend_label  # noqa: E402

FIELDS = [
    "op",
    "variant",
    "n",
    "m",
    "d",
    "dtype",
    "device",
    "backend",
    "median_ms",
    "reps",
    "max_memory_mb",
    "status",
    "note",
]
FULL = {
    "pairwise": [(n, d) for n in (1024, 8192, 32768) for d in (64, 512)],
    "loss": [(n, 256) for n in (4096, 32768, 131072, 262144)],
}
SMOKE = {"pairwise": [(16, 4), (33, 8)], "loss": [(16, 4), (64, 8)]}
_TAU = 0.07


def _points(n: int, d: int, device: torch.device, seed: int) -> torch.Tensor:
    """``n`` Lorentz points ``(n, d + 1)`` at radii up to 2 (typical contrastive features)."""
    g = torch.Generator(device=device).manual_seed(seed)
    v = torch.randn(n, d, device=device, generator=g)
    v = v / v.norm(dim=-1, keepdim=True) * 2.0 * torch.rand(n, 1, device=device, generator=g)
    r = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    xs = torch.sinh(r) / r * v
    return torch.cat([torch.sqrt(1.0 + (xs * xs).sum(-1, keepdim=True)), xs], dim=-1)


def composite_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MERU-style Lorentz distance (c = 1) as separate torch ops, ``(N, M)``."""
    xs, ys = x[:, 1:], y[:, 1:]
    xt = torch.sqrt(1.0 + (xs * xs).sum(-1))
    yt = torch.sqrt(1.0 + (ys * ys).sum(-1))
    inner = xs @ ys.T - torch.outer(xt, yt)
    return torch.acosh(torch.clamp(-inner, min=1.0 + 1e-7))


def materialised_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE from the full ``N x M`` logits (what the fused loss streams)."""
    logits = -composite_dist(x, y) / _TAU
    labels = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


class Timer:
    """Median time of ``reps`` calls after ``warmup`` calls; peak memory of one call."""

    def __init__(self, device: torch.device, warmup: int, reps: int) -> None:
        self.device, self.warmup, self.reps = device, warmup, reps

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, fn: Callable[[], object]) -> tuple[float, float | None]:
        """``(median milliseconds, peak MB above the inputs or None on the CPU)``."""
        for _ in range(self.warmup):
            fn()
        self._sync()
        peak = None
        if self.device.type == "cuda":
            base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            fn()
            self._sync()
            peak = (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        times = []
        for _ in range(self.reps):
            if self.device.type == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times), peak


def _free_bytes(device: torch.device, limit_gb: float | None) -> float:
    if limit_gb is not None:
        return limit_gb * 2**30
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    return math.inf


def _cases(sizes: dict[str, list[tuple[int, int]]]) -> list[tuple[str, str, int, int]]:
    out = []
    for n, d in sizes["pairwise"]:
        out += [("pairwise_dist", v, n, d) for v in ("hypervldd", "torch.mm", "composite")]
    for n, d in sizes["loss"]:
        out += [("contrastive_loss", v, n, d) for v in ("hypervldd", "materialised")]
    return out


def _work(op: str, variant: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], object]:
    if op == "pairwise_dist":
        if variant == "hypervldd":
            return lambda: kernels.pairwise_dist(x, y, "lorentz", 1.0)
        if variant == "torch.mm":
            xs, ys = x[:, 1:].contiguous(), y[:, 1:].contiguous()
            return lambda: xs @ ys.T
        return lambda: composite_dist(x, y)
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)

    def step() -> None:
        xg.grad = yg.grad = None
        if variant == "hypervldd":
            loss = kernels.contrastive_loss(xg, yg, "lorentz", 1.0, _TAU)
        else:
            loss = materialised_loss(xg, yg)
        loss.backward()

    return step


def _materialised_bytes(n: int) -> float:
    # logits, their softmax in each direction and the gradient: four N x N float32 buffers
    return 4.0 * n * n * 4


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    device = resolve_device(args.device, name="--device")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("benchmarks/gpu.py needs a CUDA device (--smoke runs tiny sizes on cpu)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sizes = SMOKE if args.smoke else FULL
    timer = Timer(device, args.warmup, args.reps)
    free = _free_bytes(device, args.memory_limit_gb)
    label = _backend_label(device)
    started = time.monotonic()
    last_ms: dict[tuple[str, str], tuple[int, float]] = {}
    rows: list[dict[str, object]] = []
    for op, variant, n, d in _cases(sizes):
        row: dict[str, object] = {
            "op": op,
            "variant": variant,
            "n": n,
            "m": n,
            "d": d,
            "dtype": "float32",
            "device": str(device),
            "backend": label if variant == "hypervldd" else "torch",
            "median_ms": "",
            "reps": args.reps,
            "max_memory_mb": "",
            "status": "skipped",
            "note": "",
        }
        rows.append(row)
        if variant == "materialised" and _materialised_bytes(n) > free:
            row["note"] = (
                f"N x N buffers need ~{_materialised_bytes(n) / 2**30:.3g} GiB, "
                f"{free / 2**30:.3g} GiB free"
            )
            continue
        left = args.budget_s - (time.monotonic() - started)
        prev = last_ms.get((op, variant))
        if prev is not None:  # quadratic in N: predict this size from the previous one
            calls = args.warmup + args.reps + 1
            guess = prev[1] * (n / prev[0]) ** 2 * calls / 1e3
            if guess > left:
                row["note"] = f"time budget: ~{guess:.0f} s predicted, {left:.0f} s left"
                continue
        if left <= 0:
            row["note"] = "time budget exhausted"
            continue
        x = _points(n, d, device, seed=1)
        y = _points(n, d, device, seed=2)
        try:
            with hypervldd.validation(False):
                ms, peak = timer.run(_work(op, variant, x, y))
        except torch.OutOfMemoryError as err:
            row["note"] = f"out of memory: {str(err).splitlines()[0][:80]}"
            continue
        finally:
            del x, y
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row.update(median_ms=f"{ms:.4g}", status="ok")
        if peak is not None:
            row["max_memory_mb"] = f"{peak:.1f}"
        last_ms[(op, variant)] = (n, ms)
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu.csv"))
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--device", default=None, help="cuda or cuda:N (default: cuda if present)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, runs on the CPU")
    p.add_argument("--reps", type=int, default=5, help="timed calls per case (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case first")
    p.add_argument(
        "--budget-s", type=float, default=240.0, help="skip cases predicted to end past this"
    )
    p.add_argument(
        "--memory-limit-gb",
        type=float,
        default=None,
        help="memory the materialised loss may use (default: the device's free memory)",
    )
    args = p.parse_args(argv)
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    if args.smoke and args.device is None:
        args.device = "cpu"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:  # checked before any work
        print(f"gpu.py: {out} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"gpu.py: the folder of --out does not exist: {out.parent}", file=sys.stderr)
        return 2
    rows = run(args)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)  # never a half-written CSV under the final name
    for r in rows:
        print(
            f"{r['op']:<17} {r['variant']:<13} N={r['n']:<7} D={r['d']:<4} "
            f"{r['median_ms'] or '-':>10} ms {r['max_memory_mb'] or '-':>10} MB  "
            f"{r['status']} {r['note']}"
        )
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
