"""Triton helpers shared by every GPU op: the distance tile and its per-pair math.

One distance tile is ``BM x BN`` pairs (rows of the "owner" side x the "other" side):

1. the GEMM ``g = xs . ys`` by ``tl.dot`` over K-blocks (``tf32x3`` in float32, IEEE in
   float64: plain TF32 breaks the error bound of close pairs, see docs/kernels.md);
2. the per-pair epilogue (:func:`pair_fast`): the log1p argument, the derivative factor
   and the rounding-error bound of the GEMM form (:func:`lorentz_bound`);
3. for the pairs the bound rejects, only in tiles that hold one, the exact slow path in
   float64 from coordinate differences (:func:`slow_tile`): one column of each side per
   step, as ``pair_slow`` / ``pair_slow_grad`` in csrc/include/hyperbolic_math.h.

Row data (computed on the host by :func:`hypervldd.kernels.triton._host.row_data`):
``r0``, ``r1`` in the input dtype (Lorentz: ``X0 = sqrt(1 + c|xs|^2)`` and
``A2 = c|xs|^2``; Poincaré: ``|x|^2`` and ``1 - c|x|^2``; Euclidean: ``|x|^2`` and 0) and
``r64`` in float64 (Lorentz ``c|xs|^2``, Poincaré ``1 - c|x|^2``, Euclidean 1).
Manifold codes: 0 Lorentz, 1 Poincaré, 2 Euclidean.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = [
    "gemm_tile",
    "log1p_pos",
    "lorentz_bound",
    "pair_fast",
    "slow_tile",
    "load_rows",
    "curvature",
    "store_owner_grad",
    "online_lse_step",
]


@triton.jit
def log1p_pos(w):
    """log1p for w >= 0, +inf and NaN (libdevice's is not in the interpreter):
    log(u) * w / (u - 1) with u = 1 + w corrects the rounding of 1 + w."""
    u = 1.0 + w
    r = tl.log(u) * (w / (u - 1.0))
    r = tl.where(u == 1.0, w, r)
    return tl.where(w == float("inf"), w, r)


@triton.jit
def gemm_tile(
    a_ptr, sa0, sa1, offs_a, n_a,
    b_ptr, sb0, sb1, offs_b, n_b,
    D,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """``g[i, j] = a[offs_a[i]] . b[offs_b[j]]`` over the D columns, ``(BM, BN)``."""
    acc = tl.zeros((BM, BN), dtype=a_ptr.dtype.element_ty)
    ma = offs_a[:, None] < n_a
    mb = offs_b[:, None] < n_b
    for k0 in range(0, D, BK):
        ok = k0 + tl.arange(0, BK)
        a = tl.load(a_ptr + offs_a[:, None] * sa0 + ok[None, :] * sa1, ma & (ok[None, :] < D), 0.0)
        b = tl.load(b_ptr + offs_b[:, None] * sb0 + ok[None, :] * sb1, mb & (ok[None, :] < D), 0.0)
        acc += tl.dot(a, tl.trans(b), input_precision=PREC)
    return acc


@triton.jit
def load_rows(r0_ptr, r1_ptr, r64_ptr, offs, n):
    """The per-row data of one side (padding rows read 1, which keeps them finite)."""
    m = offs < n
    return (
        tl.load(r0_ptr + offs, m, 1.0),
        tl.load(r1_ptr + offs, m, 1.0),
        tl.load(r64_ptr + offs, m, 1.0),
    )


@triton.jit
def curvature(c_ptr, x_ptr):
    """The curvature ``c`` (a float64 scalar at ``c_ptr``) and its square root, in the
    dtype of ``x_ptr``'s elements and in float64: ``(c, sc, c64, sc64)``."""
    c64 = tl.load(c_ptr)
    c = c64.to(x_ptr.dtype.element_ty)
    return c, tl.sqrt(c), c64, tl.sqrt(c64)


@triton.jit
def store_owner_grad(gx_ptr, sgx0, sgx1, acc, acc64, sgd_ptr, sgd, offs_a, offs_d, N, D, pid_d):
    """The end of an owner pass: writes the gradient block of the owner rows ``offs_a``
    and columns ``offs_d`` (the fast part ``acc`` plus the exact part ``acc64``) and,
    from column block 0 only, the rows' float64 ``sum_j G d`` (for the gradient of c)."""
    out = acc + acc64.to(acc.dtype)
    mask = (offs_a[:, None] < N) & (offs_d[None, :] < D)
    tl.store(gx_ptr + offs_a[:, None] * sgx0 + offs_d[None, :] * sgx1, out, mask)
    if pid_d == 0:
        tl.store(sgd_ptr + offs_a, sgd, offs_a < N)


@triton.jit
def online_lse_step(mx, sm, n_nan, s, valid):
    """One column tile of the online log-sum-exp of each row of the logits ``s``
    ``(BM, BN)`` (``valid`` masks the tile's edge): the running maximum ``mx`` and sum
    ``sm`` rescaled to the new maximum, and the count of NaN logits per row (a NaN is
    kept out of the sum and turns the row's result into NaN at the end). Also returns
    the tile's weights ``e = exp(s - mx_new)`` and the rescale factor ``alpha`` of the
    earlier sum, for accumulators that follow the same softmax (Inf-CL style)."""
    isnan = valid & (s != s)
    n_nan += tl.sum(isnan.to(tl.int32), 1)
    s_ok = tl.where(valid & (isnan == 0), s, float("-inf"))
    mt = tl.maximum(mx, tl.max(s_ok, 1))
    alpha = tl.where(mt == float("-inf"), 0.0, tl.exp(mx - mt))
    e = tl.where(mt[:, None] == float("-inf"), 0.0, tl.exp(s_ok - mt[:, None]))
    return mt, sm * alpha + tl.sum(e, 1), n_nan, e, alpha


@triton.jit
def lorentz_bound(G, X0, Y0, A2, B2, eps):
    """The Lorentz GEMM-form value ``z = X0 Y0 - 1 - G`` of the scaled points and the
    bound on its rounding error, choosing the better of two exact forms:

    form 1 ``z1 = X0 Y0 - 1 - G``, bound ``4 eps (X0 Y0 + |X||Y|)``;
    form 2 ``z2 = ((A2 + B2 - 2 G) - ((A2 - B2) / (X0 + Y0))^2) / 2``, bound
    ``4 eps (A2 + B2)`` (well conditioned near the origin, where form 1 cancels
    against the 1). Returns ``(z, bound)``; ``G = c xs.ys``, ``A2 = c|xs|^2``.
    """
    p = X0 * Y0
    z1 = (p - 1.0) - G
    e1 = 4.0 * eps * (p + tl.sqrt(A2 * B2))
    t = (A2 - B2) / (X0 + Y0)
    z2 = 0.5 * ((A2 + B2 - 2.0 * G) - t * t)
    e2 = 4.0 * eps * (A2 + B2)
    use2 = e2 < e1
    return tl.where(use2, z2, z1), tl.where(use2, e2, e1)


@triton.jit
def pair_fast(g, r0, r1, q0, q1, c, sc, MAN: tl.constexpr, IS64: tl.constexpr):
    """Per-pair epilogue from the GEMM value ``g`` (rows: r0, r1 ``(BM, 1)``; columns:
    q0, q1 ``(1, BN)``). Returns ``(d, f, ok, sq)``: the distance, the factor ``f``
    with ``d(d)/dx = f dz/dx`` of the GEMM form (as ``pair_epilogue``), whether the
    rounding bound accepts the value (False for NaN), and ``|x - y|^2`` (Poincaré,
    for the gradient). Where ``ok`` is False, d and f are junk."""
    if IS64:
        eps = 2.220446049250313e-16
        tol = 1e-10
        tiny = 2.2250738585072014e-308
    else:
        eps = 1.1920928955078125e-07
        tol = 1e-4
        tiny = 1.17549435082228751e-38
    if MAN == 0:
        z, e = lorentz_bound(c * g, r0, q0, r1, q1, eps)
        # sqrt(z) sqrt(z + 2), not sqrt(z (z + 2)): finite up to the largest finite z.
        root = tl.sqrt(z) * tl.sqrt(z + 2.0)
        d = log1p_pos(z + root) / sc
        f = sc / root
        # + tiny: two origins (bound 0 <= 0 in form 2) have no finite factor.
        ok = e + tiny <= tol * z
        sq = z
    elif MAN == 1:
        sq = (r0 + q0) - 2.0 * g
        q = c * sq / (r1 * q1)
        t = tl.sqrt(q)
        h = tl.sqrt(1.0 + q)
        d = (2.0 / sc) * log1p_pos(t + q / (1.0 + h))
        f = 2.0 * sc / (t * h * r1 * q1)
        # + tiny: a pair of origins (bound 0 <= 0) has no finite factor.
        ok = 4.0 * eps * (r0 + q0) + tiny <= tol * sq
    else:
        sq = (r0 + q0) - 2.0 * g
        d = tl.sqrt(sq)
        f = 1.0 / d
        ok = 4.0 * eps * (r0 + q0) + tiny <= tol * sq
    return d, f, ok, sq


@triton.jit
def _lorentz_far_ww(
    a_ptr, sa0, sa1, offs_a, n_a, b_ptr, sb0, sb1, offs_b, n_b, D, sc64, m, amb, a_le_b
):  # fmt: skip
    """sum_k (m (x_k - y_k) - (a - b) p_k)^2 over the scaled coordinates (p: nearer point)."""
    ww = tl.zeros(m.shape, dtype=tl.float64)
    ma = offs_a < n_a
    mb = offs_b < n_b
    for k in range(0, D):
        xk = sc64 * tl.load(a_ptr + offs_a * sa0 + k * sa1, ma, 0.0).to(tl.float64)[:, None]
        yk = sc64 * tl.load(b_ptr + offs_b * sb0 + k * sb1, mb, 0.0).to(tl.float64)[None, :]
        wk = m * (xk - yk) - amb * tl.where(a_le_b, xk, yk)
        ww += wk * wk
    return ww


@triton.jit
def slow_tile(
    a_ptr, sa0, sa1, offs_a, n_a, ra64,
    b_ptr, sb0, sb1, offs_b, n_b, rb64,
    D, c64, sc64, bad,
    MAN: tl.constexpr,
):  # fmt: skip
    """Exact pairs from coordinate differences, in float64, for the whole tile.

    ``ra64`` ``(BM, 1)``, ``rb64`` ``(1, BN)``: float64 row data. Returns ``(d, A, Ba, Bb)``
    with ``d(d)/da = A (a - b) + Ba a`` and ``d(d)/db = -A (a - b) + Bb b`` (unscaled
    coordinates; the zero subgradient at zero distance). NaN in gives NaN out: no
    clamp turns a NaN into 0. ``bad`` selects the pairs the far-branch loop is run for.
    """
    ma = offs_a < n_a
    mb = offs_b < n_b
    dd = tl.zeros(bad.shape, dtype=tl.float64)
    dsig = tl.zeros(bad.shape, dtype=tl.float64)
    for k in range(0, D):
        xk = tl.load(a_ptr + offs_a * sa0 + k * sa1, ma, 0.0).to(tl.float64)[:, None]
        yk = tl.load(b_ptr + offs_b * sb0 + k * sb1, mb, 0.0).to(tl.float64)[None, :]
        dk = xk - yk
        dd += dk * dk
        dsig += dk * (xk + yk)
    zero = tl.zeros(bad.shape, dtype=tl.float64)
    if MAN == 0:
        a2 = ra64 + zero
        b2 = rb64 + zero
        x0 = tl.sqrt(1.0 + a2)
        y0 = tl.sqrt(1.0 + b2)
        dsig = c64 * dsig
        # Near the origin (a b <= 1, also NaN): the difference form.
        d0 = dsig / (x0 + y0)
        s2 = (c64 * dd - d0 * d0) / 4.0
        far = a2 * b2 > 1.0
        if tl.sum((far & bad).to(tl.int32)) > 0:
            a = tl.sqrt(a2)
            b = tl.sqrt(b2)
            sinh_dr = dsig / (a * y0 + b * x0)
            radial = sinh_dr * sinh_dr / (2.0 * (1.0 + tl.sqrt(1.0 + sinh_dr * sinh_dr)))
            a_le_b = a <= b
            m = tl.where(a_le_b, a, b)
            amb = dsig / (a + b)
            ww = _lorentz_far_ww(
                a_ptr, sa0, sa1, offs_a, n_a, b_ptr, sb0, sb1, offs_b, n_b, D, sc64, m, amb,
                a_le_b,
            )  # fmt: skip
            s2 = tl.where(far, radial + ww / (4.0 * a * b), s2)
        s2 = tl.where(s2 < 0.0, 0.0, s2)  # keeps NaN
        d = 2.0 * log1p_pos(tl.sqrt(s2) + s2 / (1.0 + tl.sqrt(1.0 + s2))) / sc64
        pos = s2 > 0.0
        A = tl.where(pos, sc64 / (2.0 * tl.sqrt(s2 * (1.0 + s2))), 0.0)
        A = tl.where(s2 != s2, s2, A)
        Ba = -A * dsig / (x0 * (x0 + y0))
        Bb = A * dsig / (y0 * (x0 + y0))
    elif MAN == 1:
        q = c64 * dd / (ra64 * rb64)
        t = tl.sqrt(q)
        h = tl.sqrt(1.0 + q)
        d = (2.0 / sc64) * log1p_pos(t + q / (1.0 + h))
        A = tl.where(q > 0.0, 2.0 * sc64 / (t * h * ra64 * rb64), 0.0)
        A = tl.where(q != q, q, A)
        Ba = A * c64 * dd / ra64
        Bb = A * c64 * dd / rb64
    else:
        d = tl.sqrt(dd)
        A = tl.where(dd > 0.0, 1.0 / d, 0.0)
        A = tl.where(dd != dd, dd, A)
        Ba = zero
        Bb = zero
    return d, A, Ba, Bb


@triton.jit
def dist_tile(
    a_ptr, sa0, sa1, offs_a, n_a, ra0, ra1, ra64,
    b_ptr, sb0, sb1, offs_b, n_b, rb0, rb1, rb64,
    D, c, sc, c64, sc64,
    MAN: tl.constexpr, IS64: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Distances of one ``(BM, BN)`` tile with the in-kernel slow path.

    Row data ``ra*`` ``(BM,)``, ``rb*`` ``(BN,)``. Returns ``(d, f, ok, sq, A, Ba, valid)``:
    ``ok`` marks the accepted (fast) pairs, ``A``/``Ba`` (float64) the exact gradient
    coefficients of the others (zero on fast pairs), ``valid`` the in-range pairs."""
    g = gemm_tile(a_ptr, sa0, sa1, offs_a, n_a, b_ptr, sb0, sb1, offs_b, n_b, D, BM, BN, BK, PREC)
    d, f, ok, sq = pair_fast(
        g, ra0[:, None], ra1[:, None], rb0[None, :], rb1[None, :], c, sc, MAN, IS64
    )
    valid = (offs_a[:, None] < n_a) & (offs_b[None, :] < n_b)
    ok = ok & valid
    bad = valid & (ok == 0)
    A = tl.zeros((BM, BN), dtype=tl.float64)
    Ba = tl.zeros((BM, BN), dtype=tl.float64)
    if tl.sum(bad.to(tl.int32)) > 0:
        d64, A, Ba, Bb = slow_tile(
            a_ptr, sa0, sa1, offs_a, n_a, ra64[:, None],
            b_ptr, sb0, sb1, offs_b, n_b, rb64[None, :],
            D, c64, sc64, bad, MAN,
        )  # fmt: skip
        d = tl.where(bad, d64.to(d.dtype), d)
        A = tl.where(bad, A, 0.0)
        Ba = tl.where(bad, Ba, 0.0)
    return d, f, ok, sq, A, Ba, valid


@triton.jit
def grad_tile(
    acc, acc64, G, f, ok, sq, A, Ba, ra0, ra1, rb0, c,
    a_ptr, sa0, sa1, offs_a, n_a, b_ptr, sb0, sb1, offs_b, n_b, offs_d, D,
    MAN: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Adds to the owner rows' gradient block ``acc`` ``(BM, BD)`` (columns ``offs_d``)
    the gradient of ``sum G * d`` over one tile: fast pairs by the GEMM form
    ``a_i R_i - sum_j u_ij b_j`` (``u = G f``), exact pairs in float64 into ``acc64``
    as ``a_i sum_j G (A + Ba) - sum_j G A b_j``."""
    u = tl.where(ok, G * f, 0.0)
    if MAN == 0:
        coef = u * (rb0[None, :] / ra0[:, None])
    elif MAN == 1:
        coef = u * (1.0 + c * sq / ra1[:, None])
    else:
        coef = u
    md = offs_d[None, :] < D
    xa = tl.load(a_ptr + offs_a[:, None] * sa0 + offs_d[None, :] * sa1,
                 (offs_a[:, None] < n_a) & md, 0.0)  # fmt: skip
    yb = tl.load(b_ptr + offs_b[:, None] * sb0 + offs_d[None, :] * sb1,
                 (offs_b[:, None] < n_b) & md, 0.0)  # fmt: skip
    acc += xa * tl.sum(coef, 1)[:, None] - tl.dot(u.to(yb.dtype), yb, input_precision=PREC)
    G64 = G.to(tl.float64)
    WA = tl.where(A != 0.0, G64 * A, 0.0)
    WB = tl.where(Ba != 0.0, G64 * Ba, 0.0)
    if tl.sum(((WA != 0.0) | (WB != 0.0) | (WA != WA) | (WB != WB)).to(tl.int32)) > 0:
        acc64 += xa.to(tl.float64) * tl.sum(WA + WB, 1)[:, None] - tl.dot(
            WA, yb.to(tl.float64), input_precision="ieee"
        )
    return acc, acc64
