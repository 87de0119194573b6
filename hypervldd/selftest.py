"""Check the installed kernels against the float64 reference on every device present.

Run after installing on a new machine::

    python -m hypervldd.selftest        # or: hypervldd selftest

On the CPU and on each CUDA device (when available), every public op of
:mod:`hypervldd.kernels` (``pairwise_dist`` for Lorentz, Poincaré and Euclidean,
``contrastive_loss``, ``row_stats``), forward and backward, runs in float32 on a few
point sets, among them close pairs far from the origin (the hard case: the GEMM form
cancels there and the exact path must take over). Each result is compared with
:mod:`hypervldd.kernels.reference` evaluated in float64 on the CPU from the same
float32 inputs. A table is printed (op, device, backend, max relative error,
tolerance, pass/fail); the exit status is 1 when any check fails. It takes a few
seconds on a CPU.

Tolerances: forward values within the float32 envelope of ``docs/kernels.md``
(``1e-3`` relative, per element); gradients within ``eps ** 0.4`` of float32
(``1.7e-3``) relative to the largest gradient entry, as in the kernel tests.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import kernels
from ._device import resolve_device
from .kernels import backend_for
from .kernels import reference as ref
from .manifolds import lorentz_math, poincare_math

__all__ = ["Check", "run_checks", "devices_present", "format_table", "main"]

FWD_TOL = 1e-3
BWD_TOL = torch.finfo(torch.float32).eps ** 0.4
# Large enough that no case saturates its softmaxes (a saturated loss has gradients of
# 1e-30 whose float32 rounding says nothing about the kernel).
_TAU = 0.5
_C = 1.0


@dataclass(frozen=True)
class Check:
    """One row of the table: ``error`` is the max relative error (``nan`` if it raised)."""

    op: str
    case: str
    device: str
    backend: str
    error: float
    tol: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.error <= self.tol  # NaN fails


def devices_present() -> list[torch.device]:
    """The CPU, then each visible CUDA device."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return found


def _backend_label(device: torch.device) -> str:
    """Which implementation serves ``device`` (``"cpp"``, ``"triton"`` or ``"reference"``)."""
    return backend_for(device)


# -- point sets (float64, on the CPU) ---------------------------------------------------
def _spread(manifold: str, n: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    r = 3.0 * torch.rand(n, dtype=torch.float64, generator=gen)
    if manifold == "lorentz":
        return lorentz_math.random(n, dim + 1, radius=r, c=_C, dtype=torch.float64, generator=gen)
    if manifold == "poincare":
        return poincare_math.random(n, dim, radius=r, c=_C, dtype=torch.float64, generator=gen)
    return torch.randn(n, dim, dtype=torch.float64, generator=gen)


def _step(manifold: str, x: torch.Tensor, size: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Move each point of ``x`` by geodesic length ``size`` in a random direction."""
    v = torch.randn(x.shape, dtype=torch.float64, generator=gen)
    if manifold == "lorentz":
        v = lorentz_math.proju(x, v, _C)
        return lorentz_math.expmap(x, size * v / lorentz_math.norm(v, keepdim=True), _C)
    v = v / v.norm(dim=-1, keepdim=True)
    if manifold == "poincare":
        return poincare_math.expmap(x, size * v / poincare_math.lambda_x(x, _C), _C)
    return x + size * v


def _close_far(
    manifold: str, n: int, dim: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A cluster of ``n`` pairs 8 from the origin (100 for Euclidean): every point within
    0.05 of the centre, each ``y_i`` at 1e-3 .. 1e-2 from ``x_i``. Every pair cancels in
    the GEMM form, and the logits stay far from saturation."""
    width = dim + 1 if manifold == "lorentz" else dim
    if manifold == "lorentz":
        centre = lorentz_math.random(1, width, radius=8.0, c=_C, dtype=torch.float64, generator=gen)
    elif manifold == "poincare":
        centre = poincare_math.random(
            1, width, radius=8.0, c=_C, dtype=torch.float64, generator=gen
        )
    else:
        centre = torch.full((1, width), 100.0 / math.sqrt(width), dtype=torch.float64)
    spread = 0.05 * torch.rand(n, 1, dtype=torch.float64, generator=gen)
    x = _step(manifold, centre.expand(n, width), spread, gen)
    return x, _step(manifold, x, torch.logspace(-3, -2, n, dtype=torch.float64)[:, None], gen)


def _cases(manifold: str) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("spread 33x17 D=8", _spread(manifold, 33, 8, gen), _spread(manifold, 17, 8, gen)),
        ("one row 1x5 D=1", _spread(manifold, 1, 1, gen), _spread(manifold, 5, 1, gen)),
    ]
    x, y = _close_far(manifold, 24, 16, gen)
    cases.append(("close pairs far out, 24x24 D=16", x, y))
    # float32 inputs are what the op sees; the reference reads the same values in float64
    return [(name, a.float(), b.float()) for name, a, b in cases]


# -- errors -------------------------------------------------------------------------------
def _elementwise(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double().cpu(), want.detach().double()
    tiny = torch.finfo(torch.float64).tiny
    return float(((got - want).abs() / want.abs().clamp_min(tiny)).max())


def _normwise(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> float:
    # One scale for all the gradients of a check: a gradient that cancels to ~0 (x's in
    # a 1-D case) is measured against the size of the others, not against itself.
    got = torch.cat([g.detach().double().cpu().reshape(-1) for g in got])
    want = torch.cat([w.detach().double().reshape(-1) for w in want])
    scale = float(want.abs().max().clamp_min(torch.finfo(torch.float64).tiny))
    return float((got - want).abs().max()) / scale


def _grads(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> list[torch.Tensor]:
    x = x.detach().requires_grad_(True)
    y = y.detach().requires_grad_(True)
    return list(torch.autograd.grad(fn(x, y), (x, y)))


def _ops(manifold: str, m: int, k: int) -> dict[str, tuple[Callable, Callable]]:
    """``name -> (op(x, y) on the device, the same in the reference)``, each a tensor."""
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(m, k, dtype=torch.float64, generator=gen)

    # The weighted mean is scaled by its largest entry: it sums values of both signs, so
    # an entry near zero has no relative accuracy to speak of.
    def stats_op(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v = values.to(device=x.device, dtype=x.dtype)
        st = kernels.row_stats(x, y, manifold, _C, _TAU, v, 0.5, _positives(x, m))
        w = st.weighted / values.abs().max().to(st.weighted)
        return torch.cat([st.lse, w.reshape(-1) + 2.0, st.smooth_rank])

    def stats_ref(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        st = ref.row_stats_ref(x, y, manifold, _C, _TAU, values, 0.5, _positives(x, m))
        w = st.weighted / values.abs().max()
        return torch.cat([st.lse, w.reshape(-1) + 2.0, st.smooth_rank])

    return {
        "pairwise_dist": (
            lambda x, y: kernels.pairwise_dist(x, y, manifold, _C),
            lambda x, y: ref.pairwise_dist_ref(x, y, manifold, _C),
        ),
        "contrastive_loss": (
            lambda x, y: kernels.contrastive_loss(x, y, manifold, _C, _TAU, _positives(x, m)),
            lambda x, y: ref.contrastive_loss_ref(x, y, manifold, _C, _TAU, _positives(x, m)),
        ),
        "row_stats": (stats_op, stats_ref),
    }


def _positives(x: torch.Tensor, m: int) -> torch.Tensor:
    return torch.arange(x.shape[0], device=x.device) % m


def _scalarise(out: torch.Tensor) -> torch.Tensor:
    # A fixed weighting of every output entry, of both signs: one backward covers them all.
    flat = out.reshape(-1)
    w = torch.cos(torch.arange(flat.numel(), dtype=flat.dtype, device=flat.device))
    return (flat * w).sum()


def run_checks(devices: Sequence[str | torch.device] | None = None) -> list[Check]:
    """Every op, forward and backward, on every device and case (see the module docstring).

    ``devices``: ``None`` for :func:`devices_present`, else ``"cpu"``/``"cuda"``/``"cuda:N"``
    (each checked to exist). Returns one :class:`Check` per op, direction, case and device.
    """
    if devices is None:
        devices = devices_present()
    else:
        devices = [resolve_device(d, name="device") for d in devices]
    out: list[Check] = []
    for device in devices:
        label = _backend_label(device)
        for manifold in kernels.MANIFOLDS:
            for case, x32, y32 in _cases(manifold):
                x64, y64 = x32.double(), y32.double()
                ops = _ops(manifold, y32.shape[0], 3)
                xd, yd = x32.to(device), y32.to(device)
                for name, (op, oracle) in ops.items():
                    title = f"{name}[{manifold}]"
                    for direction in ("forward", "backward"):
                        tol = FWD_TOL if direction == "forward" else BWD_TOL
                        try:
                            if direction == "forward":
                                err = _elementwise(op(xd, yd), oracle(x64, y64))
                            else:
                                got = _grads(lambda a, b, f=op: _scalarise(f(a, b)), xd, yd)
                                want = _grads(lambda a, b, f=oracle: _scalarise(f(a, b)), x64, y64)
                                err = _normwise(got, want)
                            note = ""
                        except Exception as exc:  # a crash is a failure, reported in the row
                            err, note = math.nan, f"{type(exc).__name__}: {exc}"[:120]
                        out.append(
                            Check(f"{title} {direction}", case, str(device), label, err, tol, note)
                        )
    return out


def format_table(checks: Sequence[Check]) -> str:
    """The checks as an aligned text table, one row per check, and a summary line."""
    head = ("op", "case", "device", "backend", "max rel err", "tolerance", "result")
    rows = [
        (
            c.op,
            c.case,
            c.device,
            c.backend,
            f"{c.error:.2e}",
            f"{c.tol:.1e}",
            "pass" if c.passed else f"FAIL {c.note}".rstrip(),
        )
        for c in checks
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]

    def line(r: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]

    failed = sum(not c.passed for c in checks)
    summary = f"{len(checks) - failed} of {len(checks)} checks passed"
    return "\n".join([line(head), *(line(r) for r in rows), summary])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks, print the table; 0 when all pass, 1 otherwise.

    Example::

        >>> from hypervldd.selftest import main
        >>> main(["--device", "cpu"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(
        prog="hypervldd selftest",
        description="Check every kernel against the float64 reference on each device.",
    )
    parser.add_argument(
        "--device",
        action="append",
        default=None,
        help="check only this device: cpu, cuda or cuda:N (repeatable); "
        "default: the CPU and every CUDA device",
    )
    args = parser.parse_args(argv)
    try:
        checks = run_checks(args.device)
    except ValueError as err:  # a device this machine does not have
        parser.error(str(err))
    print(format_table(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
