"""Host-side preparation shared by the Triton ops: row data, block configurations.

Everything here is tensor arithmetic without a host sync (no ``.item()``, no branch on a
tensor value), so the ops trace under FakeTensorMode and ``torch.compile``.
"""

from __future__ import annotations

import os

import torch
import triton
from torch._subclasses.fake_tensor import is_fake
from torch.library import triton_op, wrap_triton

__all__ = [
    "GEMM_OPERAND_OFFSET",
    "MANIFOLD_CODE",
    "interpreting",
    "operand",
    "precision",
    "row_data",
    "tile_configs",
    "block_d",
    "gpu_op",
    "launch",
]

MANIFOLD_CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
# Lorentz points are (time, space): the GEMM reads the space part only.
GEMM_OPERAND_OFFSET = {0: 1, 1: 0, 2: 0}


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def precision(dtype: torch.dtype) -> str:
    """The ``tl.dot`` input precision: three TF32 products (float32-accurate) in float32,
    IEEE in float64. Plain TF32 (one product, 10-bit mantissa) breaks the error bound."""
    return "tf32x3" if dtype == torch.float32 else "ieee"


def tile_configs() -> list[triton.Config]:
    """Autotune candidates. Under the interpreter one config (each program costs numpy
    calls, so few large tiles are fastest); on a GPU, tiles for sm_80 / sm_90 (A100 /
    H100: 64-128 wide tiles, 4-8 warps, 2-4 stages of software pipelining)."""
    if interpreting():
        return [triton.Config({"BM": 32, "BN": 32, "BK": 32}, num_warps=1, num_stages=1)]
    out = []
    for bm, bn, bk, warps, stages in (
        (64, 64, 32, 4, 3),
        (128, 64, 32, 8, 3),
        (64, 128, 32, 8, 3),
        (128, 128, 32, 8, 2),
        (64, 64, 64, 4, 4),
        (32, 64, 32, 4, 2),
    ):
        out.append(
            triton.Config({"BM": bm, "BN": bn, "BK": bk}, num_warps=warps, num_stages=stages)
        )
    return out


def block_d(d: int) -> int:
    """Width of the gradient column blocks (a power of two, at least 16 for ``tl.dot``)."""
    return max(16, min(64, triton.next_power_of_2(max(int(d), 1))))


def operand(x: torch.Tensor, man: int) -> torch.Tensor:
    """The GEMM operand of ``x``: the space part for Lorentz (a view), else ``x``."""
    off = GEMM_OPERAND_OFFSET[man]
    return x[:, off:] if off else x


def row_data(
    x: torch.Tensor, c64: torch.Tensor, man: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(r0, r1, r64)`` of the points ``x`` ``(N, D')`` for the epilogue (see _tile.py).

    Norms are accumulated in float64 and rounded once: the bound of the GEMM form
    assumes row data accurate to the last bit."""
    a = operand(x, man).double()
    n2 = (a * a).sum(1)
    if man == 0:
        a2 = c64 * n2
        return torch.sqrt(1.0 + a2).to(x.dtype), a2.to(x.dtype), a2.contiguous()
    if man == 1:
        alpha = 1.0 - c64 * n2
        return n2.to(x.dtype), alpha.to(x.dtype), alpha.contiguous()
    return n2.to(x.dtype), torch.zeros_like(n2, dtype=x.dtype), torch.ones_like(n2)


def c_scalar(c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``c`` (or ``tau``) as a one-element float64 tensor on the points' device.

    A copy into a new tensor rather than ``.to``: a ``c`` that lives on the CPU (a loss
    module's curvature beside CUDA points) would otherwise be constant-folded on the real
    device when traced with fake tensors."""
    return like.new_empty(1, dtype=torch.float64).copy_(c.reshape(1))


def gpu_op(name: str):  # noqa: ANN201
    """Registers ``fn`` as ``torch.library.triton_op(name)`` (torch.compile traces into
    its kernels). Under the interpreter torch cannot trace an interpreted kernel (it
    would run it on fake tensors), so there the op is an opaque ``custom_op`` with the
    same body, whose fake impl is the body with the launches skipped (:func:`launch`)."""

    def deco(fn):  # noqa: ANN001, ANN202
        if interpreting():
            op = torch.library.custom_op(name, mutates_args=())(fn)
            op.register_fake(fn)
            return op
        return triton_op(name, mutates_args=())(fn)

    return deco


def launch(kernel, grid, *args, **kwargs) -> None:  # noqa: ANN001
    """``wrap_triton(kernel)[grid](*args, **kwargs)``; skipped for fake tensors under the
    interpreter (the fake impl only needs the output shapes)."""
    if interpreting() and any(isinstance(a, torch.Tensor) and is_fake(a) for a in args):
        return
    wrap_triton(kernel)[grid](*args, **kwargs)
