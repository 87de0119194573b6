"""``lorentz_dist_rows``: distance of paired rows, the smallest end-to-end op.

It proves the whole kernel path (schema in csrc/ops.cpp, CPU and CUDA
registrations, fake impl, autograd, reference fallback) and is what the
pairwise kernels use to recompute close pairs.
"""

from __future__ import annotations

import torch

from .._backend import extension_available, warn_if_reference
from .._checks import check_curvature, check_finite, check_tensor
from ..manifolds import lorentz_math
from .reference import lorentz_dist_rows_ref

__all__ = ["lorentz_dist_rows"]

if extension_available():

    @torch.library.register_fake("hypervldd::lorentz_dist_rows")
    def _fake(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
        torch._check(x.dim() == 2, lambda: "x must be 2-D")
        return x.new_empty((x.shape[0],))

    def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        x, y, c = inputs
        ctx.save_for_backward(x, y)
        ctx.c = c

    def _backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN202
        x, y = ctx.saved_tensors
        # The gradient of the shared formula, through the reference's autograd.
        with torch.enable_grad():
            xr = x.detach().requires_grad_(ctx.needs_input_grad[0])
            yr = y.detach().requires_grad_(ctx.needs_input_grad[1])
            d = lorentz_math.dist(xr, yr, ctx.c)
            wrt = [t for t in (xr, yr) if t.requires_grad]
            grads = torch.autograd.grad(d, wrt, grad, allow_unused=True) if wrt else []
        it = iter(grads)
        gx = next(it) if ctx.needs_input_grad[0] else None
        gy = next(it) if ctx.needs_input_grad[1] else None
        return gx, gy, None

    torch.library.register_autograd(
        "hypervldd::lorentz_dist_rows", _backward, setup_context=_setup_context
    )


def lorentz_dist_rows(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Lorentz distance of paired rows, ``(N, D+1), (N, D+1) -> (N,)``.

    Runs the compiled kernel on CPU tensors when available, else (and on a GPU) the
    PyTorch reference; both evaluate the same cancellation-free formula. Half-precision inputs are
    computed in float32.

    >>> import torch
    >>> from hypervldd.kernels import lorentz_dist_rows
    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz()
    >>> x = m.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    >>> y = m.lift(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    >>> [round(v, 4) for v in lorentz_dist_rows(x, y).tolist()]
    [1.0, 0.0]
    """
    check_tensor(x, "x", min_dim=2)
    check_tensor(y, "y", min_dim=2)
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(
            f"x and y must be 2-D with equal shapes (N, D+1), got {tuple(x.shape)}"
            f" and {tuple(y.shape)}"
        )
    if x.shape[1] < 2:
        raise ValueError(f"x must have at least 2 columns (time + space), got {x.shape[1]}")
    if x.device != y.device:
        raise ValueError(f"x and y must be on one device, got {x.device} and {y.device}")
    c = float(check_curvature(float(c) if isinstance(c, (int, float)) else c, "c"))
    check_finite(x, "x")
    check_finite(y, "y")
    dt = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    x, y = x.to(dt), y.to(dt)
    if extension_available() and x.device.type == "cpu":
        return torch.ops.hypervldd.lorentz_dist_rows(x, y, c)
    if x.device.type != "cpu":
        # O(N D) elementwise work: the PyTorch formula is as fast as a kernel on a GPU.
        return lorentz_dist_rows_ref(x, y, c)
    warn_if_reference()
    return lorentz_dist_rows_ref(x, y, c)
