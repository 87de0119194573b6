r"""RAHA: Rank-Aware Hyperbolic Alignment (arXiv 2606.29464), with documented corrections.

The equations follow the released reference code (``docs/losses.md`` section 2). The
reference has three modelling defects; ``faithful=True`` reproduces them, the default
corrects each one behind its own flag:

* ``scaled_lift``: the reference lifts features of norm ~48 with a clamped norm, so
  every point lands at radius 12.56; the correction scales features (``1/sqrt(d)``,
  optionally learnable) and uses the exact exponential map.
* ``shared_anchors``: the reference's KL cost compares the ``l``-th synthetic column
  with the ``l``-th real column (unrelated samples); the correction evaluates both
  relevance distributions over the same keys, the real batch.
* ``single_temperature``: the reference divides the relevance logits by the temperature
  twice; the correction divides once.

``solver="qr"`` (default) finds the range/residual subspaces from ``b x b`` problems
instead of the reference's ``d x d`` SVD (``solver="svd"``, used by ``faithful``); both
give the same subspaces.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .. import kernels
from .._checks import has_values
from ..distributed import all_gather_rows, check_group_arg, resolve_group
from ..manifolds import lorentz_math
from ..numerics import max_radius, pow2_scale
from ._common import (
    FeatureScale,
    check_features,
    check_pair,
    full_precision,
    reject_lorentz_points,
    split_legacy_real,
)

__all__ = [
    "RAHALoss",
    "RAHATerms",
    "Subspaces",
    "adaptive_rank",
    "range_residual_subspaces",
    "sinkhorn_plan",
    "ot_relevance_matching",
    "reference_lift",
]

#: The reference clamps ``sqrt(c)|x|`` to this before ``sinh`` (``sinh`` of it is 2^15).
_REFERENCE_MAX_NORM = math.asinh(2.0**15)
_REFERENCE_MIN_NORM = 1e-8


class Subspaces(NamedTuple):
    """Range bases of the real cross-covariance.

    ``u`` ``(d, k)`` image-side and ``v`` ``(d, k)`` text-side orthonormal bases of the
    range, ``singular_values`` ``(r,)`` of ``C_r`` (descending), ``rank`` ``k``.

    >>> import torch
    >>> from hypervldd.losses import range_residual_subspaces
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(20, 6, generator=g), torch.randn(20, 5, generator=g)
    >>> s = range_residual_subspaces(x, y)
    >>> tuple(s.u.shape)[0], tuple(s.v.shape)[0], s.rank >= 1
    (6, 5, True)
    """

    u: torch.Tensor
    v: torch.Tensor
    singular_values: torch.Tensor
    rank: int


class RAHATerms(NamedTuple):
    """All terms of the RAHA objective (0-d tensors) and the adaptive rank ``k``.

    >>> import torch
    >>> from hypervldd.losses import RAHALoss
    >>> g = torch.Generator().manual_seed(0)
    >>> real = {"real_image": torch.randn(32, 8, generator=g), "real_text": torch.randn(32, 8)}
    >>> syn = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    >>> terms = RAHALoss(max_rank=3).terms(*syn, **real)
    >>> 1 <= terms.rank <= 3, terms.total.dim()
    (True, 0)
    """

    total: torch.Tensor
    hitc: torch.Tensor
    range_match: torch.Tensor
    expand: torch.Tensor
    residual_match: torch.Tensor
    compress: torch.Tensor
    rank: int


def reference_lift(u: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""The reference code's lift, ``(N, d) -> (N, d+1)`` Lorentz points.

    ``r = clamp(sqrt(c)|u|, 1e-8, asinh(2^15))``, space part ``sinh(r)/r * u`` (the clamped
    ``r`` also divides, so for ``|u| > 11.09`` every point lands at one radius), time from
    space. Kept only to reproduce the reference (``scaled_lift=False``).

    >>> import torch
    >>> from hypervldd.losses import reference_lift
    >>> from hypervldd.manifolds import Lorentz
    >>> x = reference_lift(torch.randn(3, 4), 1.0)
    >>> tuple(x.shape), bool(torch.allclose(Lorentz().inner(x, x), -torch.ones(3), atol=1e-4))
    ((3, 5), True)
    """
    sc = torch.as_tensor(c, dtype=u.dtype, device=u.device).sqrt()
    r = (sc * torch.linalg.vector_norm(u, dim=-1, keepdim=True)).clamp(
        _REFERENCE_MIN_NORM, _REFERENCE_MAX_NORM
    )
    xs = torch.sinh(r) / r * u
    return torch.cat([lorentz_math.time_from_space(xs, c), xs], dim=-1)


def adaptive_rank(singular_values: torch.Tensor, eta: float, max_rank: int | None = None) -> int:
    """Smallest ``k >= 1`` whose top-``k`` squared singular values hold a fraction ``eta``.

    0 when all singular values are 0 (no coupling to keep). The comparison allows
    ``r * eps`` of relative rounding (``r`` values), so ``eta = 1`` gives the numerical rank
    instead of counting rounding noise.

    >>> import torch
    >>> from hypervldd.losses import adaptive_rank
    >>> adaptive_rank(torch.tensor([3.0, 1.0, 0.1]), eta=0.85)  # 9 / 10.01 >= 0.85
    1
    >>> adaptive_rank(torch.tensor([3.0, 1.0, 0.1]), eta=0.95)
    2
    """
    e = singular_values.detach().to(torch.float64) ** 2
    total = float(e.sum())
    if not (total > 0.0):
        return 0
    tol = e.numel() * torch.finfo(singular_values.dtype).eps * total
    cum = torch.cumsum(e, 0)
    k = int((cum < eta * total - tol).sum()) + 1
    k = min(k, e.numel())
    if max_rank is not None:
        k = min(k, int(max_rank))
    return k


@torch.no_grad()
def range_residual_subspaces(
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float = 0.95,
    *,
    solver: str = "qr",
    max_rank: int | None = None,
) -> Subspaces:
    """Range subspaces of the centred cross-covariance of ``x``, ``y`` ``(b, d)``.

    ``C = (1/(b-1)) (x - mean x)^T (y - mean y)``. ``solver="svd"`` takes the float64 SVD
    of the ``d x d`` matrix (the reference); ``solver="qr"`` uses that ``C`` has rank
    ``<= b - 1``: thin QR of the centred ``x^T`` and ``y^T`` (``d x b``) and the singular
    pairs of the ``b x b`` product of their ``R`` factors (from ``eigh`` of its Gram matrix,
    or its SVD when a kept singular value is below 1e-3 of the largest), ``O(d b^2)``
    instead of ``O(d^3)``. Computed in float64 without gradient; the bases are returned in
    float64.

    >>> import torch
    >>> from hypervldd.losses import range_residual_subspaces
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(50, 2, generator=g)  # a 2-d shared signal
    >>> x, y = z @ torch.randn(2, 6, generator=g), z @ torch.randn(2, 5, generator=g)
    >>> s = range_residual_subspaces(x, y, eta=0.999)  # rank 2 holds all of it
    >>> u = s.u[:, : s.rank]
    >>> s.rank, bool(torch.allclose(u.T @ u, torch.eye(s.rank, dtype=u.dtype), atol=1e-6))
    (2, True)
    """
    if solver not in ("qr", "svd"):
        raise ValueError(f"solver must be 'qr' or 'svd', got {solver!r}")
    b, d = x.shape
    xc, yc = x.to(torch.float64), y.to(torch.float64)
    xc, yc = xc - xc.mean(0, keepdim=True), yc - yc.mean(0, keepdim=True)
    norm = float(max(b - 1, 1))
    if solver == "svd":
        cov = xc.T @ yc / norm
        u, s, vh = torch.linalg.svd(cov, full_matrices=False)
        v = vh.T
        k = adaptive_rank(s, eta, max_rank)
        return Subspaces(u[:, :k], v[:, :k], s, k)
    if not has_values(xc, yc):
        # Fake and meta tensors (tracing, the fake-CUDA suite): geqrf and ormqr have no
        # meta kernels; the same bases from the explicit Q.
        qx, rx = torch.linalg.qr(xc.T)
        qy, ry = torch.linalg.qr(yc.T)
        us, s, vsh = torch.linalg.svd(rx @ ry.T / norm)
        k = adaptive_rank(s, eta, max_rank)
        return Subspaces((qx @ us)[:, :k], (qy @ vsh.T)[:, :k], s, k)
    # Householder QR without forming Q (geqrf): only the k kept columns of the bases
    # are ever needed, and applying Q to them (ormqr) costs O(d b k) where forming Q
    # cost O(d b^2) (issue 19: the subspaces were a quarter of a RAHA step).
    ax, tx = torch.geqrf(xc.T)
    ay, ty = torch.geqrf(yc.T)
    dy = y.shape[1]  # image and text widths may differ
    r_x, r_y = min(b, d), min(b, dy)
    s, us, vs, k = _kept_singular_pairs(ax[:r_x].triu() @ ay[:r_y].triu().T / norm, eta, max_rank)
    u, v = xc.new_zeros(d, k), yc.new_zeros(dy, k)
    if k > 0:
        u[:r_x], v[:r_y] = us, vs
        u, v = torch.ormqr(ax, tx, u), torch.ormqr(ay, ty, v)
    return Subspaces(u, v, s, k)


#: The kept singular vectors come from the Gram matrix's eigenvectors only while the
#: smallest kept singular value is at least this fraction of the largest: their pairing
#: error then stays under about ``eps / _GRAM_MIN_RATIO^2`` = 1e6 eps.
_GRAM_MIN_RATIO = 1e-3


def _kept_singular_pairs(
    m: torch.Tensor, eta: float, max_rank: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Singular values ``(min(p, q),)`` of ``m`` ``(p, q)`` (descending), its top ``k``
    left ``(p, k)`` and right ``(q, k)`` singular vectors, and ``k`` (:func:`adaptive_rank`).

    From ``eigh`` of the smaller Gram matrix (``m m^T`` or ``m^T m``), about half the cost of
    the SVD at ``p = q = 256``; the other side's vectors are ``m^T w / s``. The singular
    values are the norms ``|m^T w|``, not square roots of the eigenvalues: those lose all
    digits below ``sqrt(eps) s_1``, the norms keep an absolute error of about ``eps s_1``,
    as the SVD's. Where a kept singular value is small beside the largest (below
    ``_GRAM_MIN_RATIO s_1``) the squared conditioning would show in the vectors: the SVD
    of ``m`` is taken instead.
    """
    left = m.shape[0] <= m.shape[1]
    a = m if left else m.T
    _, w = torch.linalg.eigh(a @ a.T)
    w = w.flip(-1)  # eigh sorts ascending
    other = a.T @ w
    s, order = torch.linalg.vector_norm(other, dim=0).sort(descending=True)
    k = adaptive_rank(s, eta, max_rank)
    if k == 0:
        return s, m.new_zeros(m.shape[0], 0), m.new_zeros(m.shape[1], 0), 0
    if not bool(s[k - 1] >= _GRAM_MIN_RATIO * s[0]):
        us, s, vsh = torch.linalg.svd(m)
        k = adaptive_rank(s, eta, max_rank)
        return s, us[:, :k], vsh[:k].T, k
    kept = order[:k]
    wk, ok = w[:, kept], other[:, kept] / s[:k]
    return (s, wk, ok, k) if left else (s, ok, wk, k)


#: Largest spread of the row-shifted log-kernel ``-cost/(mean eps)`` run in the scaling
#: domain: its kernel entries stay normal float64 numbers (above ``exp(-708)``), so each
#: keeps full relative precision.
_SCALING_MAX_SPREAD = -math.log(torch.finfo(torch.float64).tiny)


@torch.no_grad()
def sinkhorn_plan(cost: torch.Tensor, eps: float = 0.05, iters: int = 20) -> torch.Tensor:
    """Entropic OT plan ``(n, m)`` with uniform marginals for ``cost`` ``(n, m)``, sum 1.

    The cost is divided by its mean (guarded against 0), then ``iters`` Sinkhorn rounds
    ``u = a / (K v)``, ``v = b / (K^T u)`` with ``K = exp(-cost / (mean eps))``, in float64
    (the kernel underflows float32 for ``eps = 0.05``; each row of ``K`` is scaled to a
    maximum of 1, which the first ``u`` absorbs). Where a kernel entry would fall below
    float64's normal range (a row spread of ``cost / (mean eps)`` over 708), or a scaling
    leaves that range, the same rounds run in the log domain
    (``logsumexp`` of the dual potentials), which is exact for any spread but costs an
    ``exp`` of the whole matrix per half-round instead of a matrix-vector product.
    Without gradient: the plan is a constant weighting of the cost. A batch of costs
    ``(..., n, m)`` gives one plan per matrix, each as if computed alone (one pass of
    small ops for all of them: RAHA solves its four plans at once). Returned in
    ``cost.dtype``.

    >>> import torch
    >>> from hypervldd.losses import sinkhorn_plan
    >>> cost = torch.rand(4, 3, generator=torch.Generator().manual_seed(0))
    >>> plan = sinkhorn_plan(cost, iters=200)
    >>> tuple(plan.shape), round(float(plan.sum()), 4), [round(v, 3) for v in plan.sum(1).tolist()]
    ((4, 3), 1.0, [0.25, 0.25, 0.25, 0.25])
    """
    mean = cost.mean((-2, -1), keepdim=True).clamp_min(torch.finfo(cost.dtype).tiny)
    log_k = -(cost / mean) / eps
    if has_values(log_k):
        # Each row shifted to a maximum of 0: the spread is then at most the row's range.
        shifted = log_k.to(torch.float64)
        shifted = shifted - shifted.amax(-1, keepdim=True)
        plan, ok = _sinkhorn_scaling(shifted, int(iters))
        if bool(ok & (shifted.amin() >= -_SCALING_MAX_SPREAD)):  # one host read per call
            return plan.to(cost.dtype)
    return _sinkhorn_log(log_k, int(iters))


def _sinkhorn_scaling(log_k: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sinkhorn rounds on the kernel ``exp(log_k)`` ``(..., n, m)``: the plan (sum 1), and
    whether the final scalings are normal floats (finite and not below ``tiny``, where
    they would lose relative precision), a 0-d bool tensor."""
    n, m = log_k.shape[-2:]
    k = log_k.exp()
    kt = k.transpose(-2, -1)
    # Scalings as row vectors (..., 1, n): a batch of (1 x m) @ (m x n) products runs
    # faster on the CPU than the same batch of matrix-vector products (measured).
    # Starting from v = 1, as the log-domain rounds start from g = 0 (the same iterates).
    v = k.new_ones(log_k.shape[:-2] + (1, m))
    u = k.new_ones(log_k.shape[:-2] + (1, n))
    uk = v
    for _ in range(iters):
        u = (1.0 / n) / (v @ kt)
        uk = u @ k
        v = (1.0 / m) / uk
    # The plan's total mass sum_j v_j (u K)_j from the last product (1 up to rounding),
    # divided out of u: two passes over the n x m matrix instead of four.
    total = (v * uk).sum(-1, keepdim=True)
    plan = (u / total).transpose(-2, -1) * k * v
    # Entries stay finite when u and v are normal floats whose product does not
    # overflow (every kernel entry is at most 1): checked on the scalings only.
    tiny, big = torch.finfo(k.dtype).tiny, torch.finfo(k.dtype).max
    lo = torch.minimum(u.amin(), v.amin())
    hi = u.amax() * v.amax() / total.amin()
    return plan, (lo >= tiny) & (hi <= big) & (total.amin() > 0)


def _sinkhorn_log(log_k: torch.Tensor, iters: int) -> torch.Tensor:
    """The rounds of :func:`_sinkhorn_scaling` on the dual potentials ``f = log u``,
    ``g = log v``: exact for any spread of ``log_k`` ``(..., n, m)``."""
    n, m = log_k.shape[-2:]
    f = log_k.new_zeros(log_k.shape[:-1])
    g = log_k.new_zeros(log_k.shape[:-2] + (m,))
    log_a, log_b = -math.log(n), -math.log(m)
    for _ in range(iters):
        f = log_a - torch.logsumexp(log_k + g[..., None, :], dim=-1)
        g = log_b - torch.logsumexp(log_k + f[..., :, None], dim=-2)
    log_t = f[..., :, None] + log_k + g[..., None, :]
    return torch.exp(log_t - torch.logsumexp(log_t.flatten(-2), -1)[..., None, None])


def ot_relevance_matching(
    real_logits: torch.Tensor,
    syn_logits: torch.Tensor,
    *,
    tau_t: float,
    extra_temperature: float = 1.0,
    eps: float = 0.05,
    iters: int = 20,
) -> torch.Tensor:
    """``tau_t^2 sum_ij T_ij KL(Q_i || P_j)`` for row distributions over one key set. 0-d.

    ``real_logits`` ``(B, K)`` give ``P = softmax_row(real_logits / extra_temperature)``
    (detached), ``syn_logits`` ``(B', K)`` give ``Q`` likewise; ``T`` is the Sinkhorn plan
    of the cost (no gradient). Invariant to permutations of the rows of either input.

    >>> import torch
    >>> from hypervldd.losses import ot_relevance_matching
    >>> logits = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    >>> abs(float(ot_relevance_matching(logits, logits, tau_t=1.0))) < 0.05  # same rows: small
    True
    """
    cost = _relevance_cost(real_logits, syn_logits, extra_temperature)
    plan = sinkhorn_plan(cost.detach(), eps, iters)
    return tau_t**2 * (plan * cost).sum()


def _relevance_cost(
    real_logits: torch.Tensor, syn_logits: torch.Tensor, extra_temperature: float
) -> torch.Tensor:
    """``KL(Q_i || P_j)`` ``(B', B)`` of :func:`ot_relevance_matching` (gradient through Q)."""
    if real_logits.shape[1] != syn_logits.shape[1]:
        raise ValueError(
            f"real_logits and syn_logits must share the key dimension, got"
            f" {tuple(real_logits.shape)} and {tuple(syn_logits.shape)}"
        )
    log_p = torch.log_softmax(real_logits.detach() / extra_temperature, dim=1)
    log_q = torch.log_softmax(syn_logits / extra_temperature, dim=1)
    q = log_q.exp()
    return ((q * log_q).sum(1, keepdim=True) - q @ log_p.T).clamp_min(0)


class RAHALoss(nn.Module):
    """Rank-Aware Hyperbolic Alignment loss for vision-language dataset distillation.

    Args:
        c: curvature magnitude of the Lorentz model (fixed, as in the reference).
        tau: hITC temperature. tau_relevance: relevance temperature ``tau_r``.
        eta: energy fraction of the adaptive rank. max_rank: optional cap on ``k``.
        sinkhorn_eps, sinkhorn_iters: entropic OT settings.
        lambda_range, lambda_residual, lambda_comp: weights (0.8, 0.4, 0.1).
        faithful: reproduce the reference's defects (sets the four flags below to their
            reference values unless they are given explicitly).
        scaled_lift: scale features before an exact lift (else the reference's clamped lift
            with scale 1).
        shared_anchors: KL over the real batch's keys (else column-by-index).
        single_temperature: divide the relevance logits by ``tau_r`` once (else twice).
        solver: ``"qr"`` (``b x b`` problems) or ``"svd"`` (``d x d`` SVD).
        feature_scale, learn_scale: the scale of ``scaled_lift`` (``"auto"`` = ``1/sqrt(d)``).
        process_group: ``None`` (default: one process), ``"auto"``, ``"world"`` or a
            ``ProcessGroup``: each rank passes its shard of the real and of the synthetic
            batch; both are gathered (the synthetic rows with an autograd-aware
            all-gather) and every rank returns the loss of the global batches (gradients
            as under DDP, see ``docs/distributed.md``).

    Call convention (shared with :class:`FullDatasetRankAlignment`):
    ``loss(syn_image, syn_text, *, real_image, real_text)``: the synthetic pairs (with
    gradient) first and positional, the real pairs by keyword. Shapes: ``syn_image``,
    ``syn_text`` ``(B', d)``, ``real_image``, ``real_text`` ``(B, d)`` (no gradient is taken
    through them), all **Euclidean features**: the loss lifts them itself (Lorentz points
    are refused with an error). ``forward`` returns the total (0-d); :meth:`terms` returns
    every term. The former order ``loss(real_image, real_text, syn_image, syn_text)``, all
    positional, still works for one release with a ``DeprecationWarning``.

    Example:
        >>> import torch
        >>> from hypervldd.losses import RAHALoss
        >>> g = torch.Generator().manual_seed(0)
        >>> real_image = torch.randn(32, 16, generator=g)
        >>> real_text = torch.randn(32, 16, generator=g)
        >>> syn_image = torch.randn(8, 16, generator=g, requires_grad=True)
        >>> syn_text = torch.randn(8, 16, generator=g, requires_grad=True)
        >>> loss = RAHALoss()(syn_image, syn_text, real_image=real_image, real_text=real_text)
        >>> loss.backward()
        >>> bool(torch.isfinite(loss)), syn_image.grad.shape
        (True, torch.Size([8, 16]))
    """

    def __init__(
        self,
        c: float = 1.0,
        *,
        tau: float = 0.07,
        tau_relevance: float = 0.07,
        eta: float = 0.95,
        max_rank: int | None = None,
        sinkhorn_eps: float = 0.05,
        sinkhorn_iters: int = 20,
        lambda_range: float = 0.8,
        lambda_residual: float = 0.4,
        lambda_comp: float = 0.1,
        faithful: bool = False,
        scaled_lift: bool | None = None,
        shared_anchors: bool | None = None,
        single_temperature: bool | None = None,
        solver: str | None = None,
        feature_scale: float | str = "auto",
        learn_scale: bool = False,
        process_group: object = None,
    ) -> None:
        super().__init__()
        self.process_group = check_group_arg(process_group)
        for name, v in (
            ("c", c),
            ("tau", tau),
            ("tau_relevance", tau_relevance),
            ("sinkhorn_eps", sinkhorn_eps),
        ):
            if not (isinstance(v, (int, float)) and 0.0 < float(v) < math.inf):
                raise ValueError(f"{name} must be a finite float > 0, got {v!r}")
        if not (0.0 < float(eta) <= 1.0):
            raise ValueError(f"eta must lie in (0, 1], got {eta}")
        if max_rank is not None and int(max_rank) < 1:
            raise ValueError(f"max_rank must be >= 1 or None, got {max_rank}")
        if int(sinkhorn_iters) < 1:
            raise ValueError(f"sinkhorn_iters must be >= 1, got {sinkhorn_iters}")
        for name, v in (
            ("lambda_range", lambda_range),
            ("lambda_residual", lambda_residual),
            ("lambda_comp", lambda_comp),
        ):
            if not (math.isfinite(float(v)) and float(v) >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        self.c = float(c)
        self.tau = float(tau)
        self.tau_relevance = float(tau_relevance)
        self.eta = float(eta)
        self.max_rank = None if max_rank is None else int(max_rank)
        self.sinkhorn_eps = float(sinkhorn_eps)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.lambda_range = float(lambda_range)
        self.lambda_residual = float(lambda_residual)
        self.lambda_comp = float(lambda_comp)
        self.faithful = bool(faithful)
        fix = not self.faithful
        self.scaled_lift = fix if scaled_lift is None else bool(scaled_lift)
        self.shared_anchors = fix if shared_anchors is None else bool(shared_anchors)
        self.single_temperature = fix if single_temperature is None else bool(single_temperature)
        solver = ("qr" if fix else "svd") if solver is None else solver
        if solver not in ("qr", "svd"):
            raise ValueError(f"solver must be 'qr' or 'svd', got {solver!r}")
        self.solver = solver
        self.scale = FeatureScale(feature_scale, learnable=learn_scale)

    def extra_repr(self) -> str:
        return (
            f"faithful={self.faithful}, scaled_lift={self.scaled_lift},"
            f" shared_anchors={self.shared_anchors},"
            f" single_temperature={self.single_temperature}, solver={self.solver!r}"
        )

    # -- steps ----------------------------------------------------------------------
    def lift(self, u: torch.Tensor) -> torch.Tensor:
        """Lorentz points ``(N, d+1)`` of features ``u`` ``(N, d)``."""
        if self.scaled_lift:
            return lorentz_math.expmap0(nn.functional.pad(self.scale(u), (1, 0)), self.c)
        return reference_lift(u, self.c)

    def tangent(self, points: torch.Tensor) -> torch.Tensor:
        """Tangent features at the origin ``(N, d)`` (space part of ``log_0``)."""
        return lorentz_math.logmap0(points, self.c)[..., 1:]

    def lifted_tangent(self, u: torch.Tensor) -> torch.Tensor:
        """``tangent(lift(u))`` ``(N, d)`` of features ``u`` ``(N, d)``.

        With ``scaled_lift`` the exact ``log_0(exp_0(v))`` is ``v`` itself, ``v = alpha u``,
        except where ``exp_0`` caps the radius ``sqrt(c)|v|`` at ``max_radius`` (then
        ``v`` shortened to that radius): computed so, without the round trip through
        the hyperboloid (a dozen passes over every feature matrix, issue 19). The
        reference's clamped lift keeps the round trip.
        """
        if not self.scaled_lift:
            return self.tangent(self.lift(u))
        v = self.scale(u)
        sc = math.sqrt(self.c)
        k = pow2_scale(v)  # the norm without the overflow of |v|^2
        n = torch.linalg.vector_norm(v * k, dim=-1, keepdim=True) / k
        rmax = max_radius(v.dtype)
        over = sc * n > rmax
        return torch.where(over, v * (rmax / (sc * torch.where(over, n, 1.0))), v)

    def _costs(self, qr, kr, qs, ks) -> list[torch.Tensor]:
        """The image-to-text and text-to-image relevance costs of ``D(S_r, S_s)``.

        ``qr, kr`` are the real image/text coordinates (range or residual), ``qs, ks`` the
        synthetic ones; logits are inner products divided by ``tau_r``.
        """
        t = self.tau_relevance
        extra = 1.0 if self.single_temperature else self.tau_relevance
        if self.shared_anchors:
            # Every distribution is over the real batch's keys. The text-to-image real
            # logits are the transpose of the image-to-text ones: one B x B product.
            s_r = qr @ kr.T / t
            return [
                _relevance_cost(s_r, qs @ kr.T / t, extra),
                _relevance_cost(s_r.T, ks @ qr.T / t, extra),
            ]
        s_r = qr @ kr.T / t
        s_s = qs @ ks.T / t
        return [_relevance_cost(s_r, s_s, extra), _relevance_cost(s_r.T, s_s.T, extra)]

    def _matches(self, costs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``tau_r^2 sum T * cost`` of each cost (as :func:`ot_relevance_matching`), the
        Sinkhorn plans of same-shaped costs solved as one batch."""
        eps, iters = self.sinkhorn_eps, self.sinkhorn_iters
        if all(c.shape == costs[0].shape for c in costs):
            stacked = torch.stack(costs)
            plans = sinkhorn_plan(stacked.detach(), eps, iters)
            return list(self.tau_relevance**2 * (plans * stacked).sum((-2, -1)))
        return [
            self.tau_relevance**2 * (sinkhorn_plan(c.detach(), eps, iters) * c).sum() for c in costs
        ]

    def forward(
        self,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
        *legacy: torch.Tensor,
        real_image: torch.Tensor | None = None,
        real_text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The total loss, a 0-d tensor (see :meth:`terms`)."""
        return self.terms(
            syn_image, syn_text, *legacy, real_image=real_image, real_text=real_text
        ).total

    def terms(
        self,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
        *legacy: torch.Tensor,
        real_image: torch.Tensor | None = None,
        real_text: torch.Tensor | None = None,
    ) -> RAHATerms:
        """Every term of the objective; see the class docstring for shapes."""
        a = split_legacy_real(
            "RAHALoss",
            legacy,
            {
                "syn_image": syn_image,
                "syn_text": syn_text,
                "real_image": real_image,
                "real_text": real_text,
            },
            ("real_image", "real_text", "syn_image", "syn_text"),
        )
        syn_image, syn_text = a["syn_image"], a["syn_text"]
        real_image, real_text = a["real_image"], a["real_text"]
        if real_image is None or real_text is None:
            raise TypeError(
                "RAHALoss needs the real batch by keyword:"
                " loss(syn_image, syn_text, real_image=..., real_text=...)"
            )
        real_image = check_features(real_image, "real_image")
        real_text = check_features(real_text, "real_text")
        syn_image = check_features(syn_image, "syn_image")
        syn_text = check_features(syn_text, "syn_text")
        check_pair(real_image, "real_image", real_text, "real_text")
        check_pair(real_image, "real_image", syn_image, "syn_image")
        check_pair(syn_image, "syn_image", syn_text, "syn_text")
        hint = ": RAHALoss takes Euclidean features and lifts them itself"
        for t, tn in (
            (syn_image, "syn_image"),
            (syn_text, "syn_text"),
            (real_image, "real_image"),
            (real_text, "real_text"),
        ):
            reject_lorentz_points(t, tn, self.c, hint=hint)
        for a, an, b, bn in (
            (real_image, "real_image", real_text, "real_text"),
            (syn_image, "syn_image", syn_text, "syn_text"),
        ):
            if a.shape[0] != b.shape[0]:
                raise ValueError(
                    f"{an} and {bn} must have one row per pair, got"
                    f" {a.shape[0]} and {b.shape[0]} rows"
                )
        group = resolve_group(self.process_group)
        if group is not None:
            real_image = all_gather_rows(real_image.detach(), group)
            real_text = all_gather_rows(real_text.detach(), group)
            syn_image = all_gather_rows(syn_image, group)
            syn_text = all_gather_rows(syn_text, group)
        with full_precision(real_image, real_text, syn_image, syn_text) as dt:
            ri, rt = real_image.detach().to(dt), real_text.detach().to(dt)
            si, st = syn_image.to(dt), syn_text.to(dt)
            xs_pts, ys_pts = self.lift(si), self.lift(st)
            hitc = kernels.contrastive_loss(xs_pts, ys_pts, "lorentz", self.c, self.tau)
            xs, ys = self.lifted_tangent(si), self.lifted_tangent(st)
            with torch.no_grad():
                xr, yr = self.lifted_tangent(ri), self.lifted_tangent(rt)
            return self._subspace_terms(xr, yr, xs, ys, hitc)

    def _subspace_terms(self, xr, yr, xs, ys, hitc) -> RAHATerms:
        dt = xs.dtype
        zero = hitc * 0.0
        if not self.shared_anchors and xr.shape[0] != xs.shape[0]:
            # The column-by-index cost needs square matrices of one size: the reference
            # truncates both batches to b = min(B, B').
            b = min(xr.shape[0], xs.shape[0])
            xr, yr, xs, ys = xr[:b], yr[:b], xs[:b], ys[:b]
        sub = range_residual_subspaces(xr, yr, self.eta, solver=self.solver, max_rank=self.max_rank)
        k = sub.rank
        if k == 0:
            # No cross-modal coupling in the real batch (one pair, or constant features):
            # there is no range to match and no residual to compare it with.
            return RAHATerms(hitc, hitc, zero, zero, zero, zero, 0)
        u, v = sub.u.to(dt), sub.v.to(dt)
        d = xr.shape[1]
        # Range coordinates and residual parts (never a d x d projector).
        ar, br, as_, bs = xr @ u, yr @ v, xs @ u, ys @ v
        xr_perp, yr_perp = xr - ar @ u.T, yr - br @ v.T
        xs_perp, ys_perp = xs - as_ @ u.T, ys - bs @ v.T
        # The four Sinkhorn plans (range and residual, both directions) in one batch.
        m = self._matches(
            self._costs(ar, br, as_, bs) + self._costs(xr_perp, yr_perp, xs_perp, ys_perp)
        )
        range_match, residual_match = 0.5 * (m[0] + m[1]), 0.5 * (m[2] + m[3])

        # Regularisers on the cross-covariances, through b x b and k x k products only.
        def centred(t: torch.Tensor) -> torch.Tensor:
            return t - t.mean(0, keepdim=True)

        nr = float(max(xr.shape[0] - 1, 1))
        ns = float(max(xs.shape[0] - 1, 1))
        with torch.no_grad():
            cr_range = (centred(xr) @ u).T @ (centred(yr) @ v) / nr
            e_real = cr_range.pow(2).mean()
        cs_range = (centred(xs) @ u).T @ (centred(ys) @ v) / ns
        e_syn = cs_range.pow(2).mean()
        tiny = torch.finfo(dt).tiny
        expand = torch.relu(e_real - e_syn) / e_real.clamp_min(tiny)
        xs_c, ys_c = centred(xs), centred(ys)
        px = xs_c - (xs_c @ u) @ u.T
        py = ys_c - (ys_c @ v) @ v.T
        perp_sq = ((px @ px.T) * (py @ py.T)).sum().clamp_min(0) / ns**2
        perp_mean = perp_sq / float(d) ** 2
        rho = perp_mean / e_syn.clamp_min(tiny)
        compress = rho + torch.relu(rho - 1.0)
        total = (
            hitc
            + self.lambda_range * (range_match + expand)
            + self.lambda_residual * residual_match
            + self.lambda_comp * compress
        )
        return RAHATerms(total, hitc, range_match, expand, residual_match, compress, k)
