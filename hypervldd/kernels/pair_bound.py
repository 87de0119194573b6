"""A pure-PyTorch mirror of the Triton per-pair epilogue (``pair_fast`` in
``hypervldd/kernels/triton/_tile.py``): the distance from a given GEMM value and the
error bound that accepts it.

The tests feed it GEMM values computed at the precision the GPU's ``tl.dot`` uses
(emulated TF32x3, or plain TF32) and check that the accepted pairs stay inside the
accuracy envelope; it also gives the slow-path fraction of a set of pairs. Keep it in
step with the jit helper: same operations, same order.
"""

from __future__ import annotations

import torch

__all__ = ["epilogue", "round_to_tf32", "tf32x3_gemm", "tf32_gemm"]

_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def _log1p_pos(w: torch.Tensor) -> torch.Tensor:
    u = 1.0 + w
    r = torch.log(u) * (w / (u - 1.0))
    r = torch.where(u == 1.0, w, r)
    return torch.where(w == float("inf"), w, r)


def epilogue(
    g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, manifold: str, c: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d, ok)`` ``(N, M)`` from the GEMM values ``g`` ``(N, M)`` of the GEMM operands
    of ``x`` ``(N, D')`` and ``y`` ``(M, D')`` (Lorentz: the space parts), in ``g``'s dtype.

    >>> x = torch.tensor([[1.0, 0.0], [1.5430806, 1.1752012]])
    >>> d, ok = epilogue(x[:, 1:] @ x[:, 1:].T, x, x, "lorentz")
    >>> round(float(d[0, 1]), 4), bool(ok[0, 1]), bool(ok[0, 0])
    (1.0, True, False)
    """
    dt = g.dtype
    eps = torch.finfo(dt).eps
    tol = _TOL[dt]
    tiny = torch.finfo(dt).tiny
    if manifold == "lorentz":
        xs, ys = x[:, 1:].double(), y[:, 1:].double()
        a2 = (c * (xs * xs).sum(1)).to(dt)[:, None]
        b2 = (c * (ys * ys).sum(1)).to(dt)[None, :]
        x0 = torch.sqrt(1.0 + c * (xs * xs).sum(1)).to(dt)[:, None]
        y0 = torch.sqrt(1.0 + c * (ys * ys).sum(1)).to(dt)[None, :]
        G = torch.tensor(c, dtype=dt) * g
        p = x0 * y0
        z1 = (p - 1.0) - G
        e1 = 4.0 * eps * (p + torch.sqrt(a2 * b2))
        t = (a2 - b2) / (x0 + y0)
        z2 = 0.5 * ((a2 + b2 - 2.0 * G) - t * t)
        e2 = 4.0 * eps * (a2 + b2)
        use2 = e2 < e1
        z = torch.where(use2, z2, z1)
        e = torch.where(use2, e2, e1)
        root = torch.sqrt(z) * torch.sqrt(z + 2.0)
        d = _log1p_pos(z + root) / torch.sqrt(torch.tensor(c, dtype=dt))
        return d, e + tiny <= tol * z
    xd, yd = x.double(), y.double()
    r0 = (xd * xd).sum(1).to(dt)[:, None]
    q0 = (yd * yd).sum(1).to(dt)[None, :]
    sq = (r0 + q0) - 2.0 * g
    ok = 4.0 * eps * (r0 + q0) + tiny <= tol * sq
    if manifold == "euclidean":
        return torch.sqrt(sq), ok
    r1 = (1.0 - c * (xd * xd).sum(1)).to(dt)[:, None]
    q1 = (1.0 - c * (yd * yd).sum(1)).to(dt)[None, :]
    q = c * sq / (r1 * q1)
    h = torch.sqrt(1.0 + q)
    sc = torch.sqrt(torch.tensor(c, dtype=dt))
    return (2.0 / sc) * _log1p_pos(torch.sqrt(q) + q / (1.0 + h)), ok


def round_to_tf32(a: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32 (10 explicit mantissa bits), to nearest with ties away
    from zero on the bit pattern, as the hardware's ``cvt.rna.tf32.f32`` conversion."""
    bits = a.contiguous().view(torch.int32)
    rounded = (bits + 0x1000) & ~0x1FFF
    return torch.where(torch.isfinite(a), rounded.view(torch.float32), a)


def tf32x3_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` as the GPU's ``tl.dot(..., input_precision="tf32x3")``: each float32
    operand split into ``hi = tf32(a)`` and ``lo = tf32(a - hi)``; the products
    ``hi.hi' + hi.lo' + lo.hi'`` (each exact in float32) accumulated in float32."""
    ah = round_to_tf32(a)
    al = round_to_tf32(a - ah)
    bh = round_to_tf32(b)
    bl = round_to_tf32(b - bh)
    # Small terms first, as the hardware sequence adds the corrections before hi.hi.
    return (al @ bh.T + ah @ bl.T) + ah @ bh.T


def tf32_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` with plain TF32 inputs (one product, 10-bit mantissa)."""
    return round_to_tf32(a) @ round_to_tf32(b).T
