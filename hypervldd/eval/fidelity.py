"""Distillation fidelity: does a small training set preserve the full data's orderings?

Two measures, both comparing two orderings of the *same* real test candidates for the
*same* real test queries (image queries over all test captions, caption queries over all
test images), row by row, with Spearman's rho, Kendall's tau-b and the top-k overlap:

* :func:`trained_fidelity` (after training): the orderings given by a student trained on
  the synthetic set and by one trained on the full data (same protocol, same seed), so the
  answer is "would a model trained on the distilled set retrieve *like* a model trained on
  everything", not only "as well".
* :func:`data_fidelity` (without training): the orderings that the pairs themselves induce
  through their soft assignments (:func:`bridge_scores`), in a given geometry, with the
  distance and ``softmax(-d / tau)`` weights of the rank-aware losses
  (:mod:`hypervldd.losses.rank_alignment`).

See ``docs/evaluation.md`` ("Distillation fidelity") for the definitions and costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .. import kernels
from .._checks import validation
from ..manifolds import get_manifold
from .evaluate import as_train_pairs, train_students
from .features import FeatureSet, as_feature_set
from .protocol import EvalProtocol
from .student import Student

__all__ = [
    "spearman",
    "kendall_tau",
    "topk_overlap",
    "ordering_agreement",
    "student_scores",
    "trained_fidelity",
    "lift_features",
    "bridge_scores",
    "data_fidelity",
    "FidelityResult",
]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for t, name in ((a, "a"), (b, "b")):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {type(t).__name__}")
    if a.shape != b.shape or a.dim() not in (1, 2) or a.shape[-1] < 2:
        raise ValueError(
            f"a and b must have the same shape (n,) or (rows, n) with n >= 2 items, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    if bool(torch.isnan(a).any()) or bool(torch.isnan(b).any()):
        raise ValueError("a and b must not contain NaN (an ordering of NaN is undefined)")
    a2 = a.detach().double().reshape(-1, a.shape[-1])
    b2 = b.detach().double().reshape(-1, b.shape[-1])
    return a2, b2


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Row-wise 0-based ranks, ties sharing their average rank, ``(R, n)`` float64."""
    x = x.contiguous()
    s = torch.sort(x, dim=1).values.contiguous()
    lo = torch.searchsorted(s, x, right=False)
    hi = torch.searchsorted(s, x, right=True)
    return (lo + hi - 1).double() * 0.5


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = torch.sqrt((a * a).sum(1) * (b * b).sum(1))
    # A constant row has no ordering: its correlation is undefined and reported as 0.
    ok = den > 0
    return torch.where(ok, (a * b).sum(1) / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rho between the orderings ``a`` and ``b``, per row.

    Args:
        a, b: scores ``(n,)`` or ``(rows, n)`` (higher = earlier in the ordering).

    Returns:
        ``(rows,)`` float64 (a 0-d tensor for 1-D inputs) in ``[-1, 1]``: the Pearson
        correlation of the average ranks (ties share their mean rank). A row in which
        either input is constant has no ordering; its value is defined as 0.
    """
    a2, b2 = _check_pair(a, b)
    out = _pearson_rows(_average_ranks(a2), _average_ranks(b2))
    return out[0] if a.dim() == 1 else out


def _min_ranks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise 0-based minimum ranks (ties share the smallest) and tie-group sizes."""
    x = x.contiguous()
    s = torch.sort(x, dim=1).values.contiguous()
    lo = torch.searchsorted(s, x, right=False)
    return lo, torch.searchsorted(s, x, right=True) - lo


def _tied_pairs(counts: torch.Tensor) -> torch.Tensor:
    """``sum_groups t (t - 1) / 2`` from each item's tie-group size, per row (int64)."""
    return (counts - 1).sum(1) // 2


def _inversions(y: torch.Tensor) -> torch.Tensor:
    """Per row of ``y (R, n)`` (integers in ``[0, n)``), ``#{i < j : y_i > y_j}``.

    A Fenwick tree per row, updated one column at a time for all rows at once:
    ``O(R n log n)`` work in ``O(n log n)`` vector operations.
    """
    r, n = y.shape
    rows = torch.arange(r)
    tree = torch.zeros(r, n + 2, dtype=torch.int64)  # column n + 1 absorbs out-of-range updates
    inv = torch.zeros(r, dtype=torch.int64)
    steps = max(1, int(n).bit_length())
    for j in range(n):
        v = y[:, j] + 1
        i, seen = v.clone(), torch.zeros(r, dtype=torch.int64)
        for _ in range(steps):  # prefix count of values <= y_j (tree[:, 0] stays 0)
            seen += tree[rows, i]
            i = i - (i & -i)
        inv += j - seen
        i = v
        for _ in range(steps):
            tree[rows, i] += 1
            i = torch.clamp(i + (i & -i), max=n + 1)
    return inv


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-b between the orderings ``a`` and ``b``, per row.

    ``tau_b = (n_c - n_d) / sqrt((n_0 - n_a)(n_0 - n_b))``: concordant minus discordant
    pairs over the pairs not tied in ``a`` and not tied in ``b`` (``n_0 = n (n - 1) / 2``;
    scipy's ``kendalltau`` variant ``"b"``). Knight's algorithm: sort by ``(a, b)``, then
    ``n_c - n_d = n_0 - n_a - n_b + n_ab - 2 * inversions(b)``. A row with either input
    constant is defined as 0.

    Cost: ``O(rows * n log n)`` time, ``O(rows * n)`` memory.

    Args:
        a, b: scores ``(n,)`` or ``(rows, n)``.

    Returns:
        ``(rows,)`` float64 (0-d for 1-D inputs) in ``[-1, 1]``.
    """
    a2, b2 = _check_pair(a, b)
    n = a2.shape[1]
    ra, ca = _min_ranks(a2)
    rb, cb = _min_ranks(b2)
    _, cab = _min_ranks((ra * n + rb).double())
    order = torch.argsort(ra * n + rb, dim=1)
    inv = _inversions(rb.gather(1, order))
    n0 = n * (n - 1) // 2
    na, nb, nab = _tied_pairs(ca), _tied_pairs(cb), _tied_pairs(cab)
    num = (n0 - na - nb + nab - 2 * inv).double()
    den = torch.sqrt((n0 - na).double() * (n0 - nb).double())
    out = torch.where(den > 0, num / den.clamp_min(1.0), 0.0)
    return out[0] if a.dim() == 1 else out


def topk_overlap(a: torch.Tensor, b: torch.Tensor, k: int = 10) -> torch.Tensor:
    """``|top_k(a) & top_k(b)| / k`` per row, in ``[0, 1]`` (float64).

    Ties at the k-th place are broken by ``torch.topk`` (deterministic on CPU). ``k`` is
    clipped to the number of items.
    """
    a2, b2 = _check_pair(a, b)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), a2.shape[1])
    ia = torch.topk(a2, k, dim=1).indices
    ib = torch.topk(b2, k, dim=1).indices
    hit = (ia[:, :, None] == ib[:, None, :]).any(2).sum(1)
    out = hit.double() / k
    return out[0] if a.dim() == 1 else out


def ordering_agreement(
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    *,
    k: int = 10,
    kendall: bool = True,
    max_queries: int | None = None,
) -> dict[str, float]:
    """Agreement of two score matrices ``(N_img, N_txt)`` in both retrieval directions.

    Image queries rank the columns (captions) of their row; caption queries rank the rows
    (images) of their column. For each direction and measure the value is the mean over
    queries; ``"spearman"``, ``"kendall"`` and ``f"top{k}"`` are the means of the two
    directions, ``"i2t_*"``/``"t2i_*"`` the directions themselves.

    Args:
        scores_a, scores_b: similarities of the same images x captions.
        k: the top-k overlap cut-off.
        kendall: also compute Kendall's tau-b (``O(queries * n^2)``).
        max_queries: use only the first ``max_queries`` queries of each direction.
    """
    if scores_a.dim() != 2:
        raise ValueError(f"scores_a must be 2-D (N_img, N_txt), got {tuple(scores_a.shape)}")
    out: dict[str, float] = {}
    for name, sa, sb in (("i2t", scores_a, scores_b), ("t2i", scores_a.T, scores_b.T)):
        if max_queries is not None:
            sa, sb = sa[: int(max_queries)], sb[: int(max_queries)]
        out[f"{name}_spearman"] = float(spearman(sa, sb).mean())
        if kendall:
            out[f"{name}_kendall"] = float(kendall_tau(sa, sb).mean())
        out[f"{name}_top{k}"] = float(topk_overlap(sa, sb, k).mean())
    keys = ["spearman"] + (["kendall"] if kendall else []) + [f"top{k}"]
    for key in keys:
        out[key] = 0.5 * (out[f"i2t_{key}"] + out[f"t2i_{key}"])
    return out


@torch.no_grad()
def student_scores(student: Student, test: Any) -> torch.Tensor:
    """The student's retrieval similarities ``(N_img, N_txt)`` on ``test`` (float64)."""
    fs = as_feature_set(test, "test")
    student.eval()
    img = student.encode_image(fs.image.float())
    txt = student.encode_text(fs.text.float())
    return student.retrieval_score(img, txt)


@dataclass
class FidelityResult:
    """Agreement values (mean over seeds or geometries) and the per-item values."""

    mean: dict[str, float]
    per_item: dict[str, dict[str, float]]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "per_item": self.per_item, "seconds": self.seconds}


def _mean_dicts(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


def trained_fidelity(
    synthetic: Any,
    reference: Any,
    test: Any,
    protocol: EvalProtocol | None = None,
    *,
    k: int = 10,
    kendall: bool = True,
    max_queries: int | None = None,
    reference_students: Sequence[Student] | None = None,
) -> FidelityResult:
    """Ordering agreement of students trained on ``synthetic`` and on ``reference`` data.

    For each protocol seed ``s``, a student is trained on each training set (final epoch,
    the initialisation and batch order of seed ``s``); both score the same test set and
    :func:`ordering_agreement` compares their score matrices. Reported: the mean over seeds.

    Args:
        synthetic: the distilled set (anything :func:`as_train_pairs` accepts).
        reference: usually the full real training features.
        test: test features (:class:`FeatureSet` or adaptable).
        protocol: the evaluation protocol (default ``EvalProtocol()``).
        k, kendall, max_queries: see :func:`ordering_agreement`.
        reference_students: already trained reference students (one per seed, same
            order), to share them between several synthetic sets.
    """
    t0 = time.perf_counter()
    protocol = protocol or EvalProtocol()
    fs = as_feature_set(test, "test")
    dims = (fs.image.shape[1], fs.text.shape[1])
    syn = train_students(synthetic, protocol, dims=dims)
    ref = (
        list(reference_students)
        if reference_students is not None
        else train_students(reference, protocol, dims=dims)
    )
    if len(ref) != len(syn):
        raise ValueError(
            f"reference_students must hold one student per protocol seed ({len(syn)}), "
            f"got {len(ref)}"
        )
    per_seed = {}
    for seed, s_syn, s_ref in zip(protocol.seeds, syn, ref, strict=True):
        per_seed[f"seed{seed}"] = ordering_agreement(
            student_scores(s_syn, fs),
            student_scores(s_ref, fs),
            k=k,
            kendall=kendall,
            max_queries=max_queries,
        )
    return FidelityResult(_mean_dicts(list(per_seed.values())), per_seed, time.perf_counter() - t0)


def lift_features(
    x: torch.Tensor, geometry: str, *, curvature: float = 1.0, radius: float = 1.0
) -> torch.Tensor:
    """Frozen features ``(N, D)`` -> points at geodesic distance ``radius`` from the origin.

    ``lift(radius * x / |x|)`` with the student's convention (the Poincaré tangent vector
    is halved so that ``dist(origin, point) = radius`` in every geometry). Returns float64
    points ``(N, D)`` (``(N, D + 1)`` on Lorentz).
    """
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a finite float > 0, got {radius}")
    v = float(radius) * F.normalize(x.double(), dim=-1)
    if geometry == "poincare":
        v = 0.5 * v
    with validation(False):
        return get_manifold(geometry, curvature).lift(v)


def _soft_assign(
    q: torch.Tensor, keys: torch.Tensor, geometry: str, c: float, tau: float
) -> torch.Tensor:
    return torch.softmax(-kernels.pairwise_dist(q, keys, geometry, c) / tau, dim=1)


@torch.no_grad()
def bridge_scores(
    query_image: torch.Tensor,
    cand_text: torch.Tensor,
    pair_image: torch.Tensor,
    pair_text: torch.Tensor,
    *,
    geometry: str = "lorentz",
    curvature: float = 1.0,
    tau: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Cross-modal similarity that a set of pairs induces, without training, ``(Q, C)``.

    ``R(q, t) = sum_m a_m(q) b_m(t)`` with ``a(q) = softmax_m(-d(q, x_m) / tau)`` (the soft
    assignment of an image to the pairs' images) and ``b(t) = softmax_m(-d(t, y_m) / tau)``
    (of a caption to the pairs' captions): the probability that ``q`` and ``t`` are assigned
    to the same pair. ``d`` is the geodesic distance of ``geometry`` (the fused
    ``kernels.pairwise_dist`` the rank-aware losses use).

    Args:
        query_image: lifted image points ``(Q, D_i')``.
        cand_text: lifted caption points ``(C, D_t')``.
        pair_image, pair_text: lifted pairs ``(M, D_i')`` and ``(M, D_t')``.
        chunk: candidates per block (memory ``O(Q M + chunk M)``).
    """
    if pair_image.shape[0] != pair_text.shape[0]:
        raise ValueError(
            f"pair_image and pair_text must hold the same number of pairs, got "
            f"{pair_image.shape[0]} and {pair_text.shape[0]}"
        )
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a finite float > 0, got {tau}")
    a = _soft_assign(query_image, pair_image, geometry, curvature, tau)
    out = torch.empty(query_image.shape[0], cand_text.shape[0], dtype=a.dtype)
    for j in range(0, cand_text.shape[0], max(1, int(chunk))):
        b = _soft_assign(cand_text[j : j + chunk], pair_text, geometry, curvature, tau)
        out[:, j : j + b.shape[0]] = a @ b.T
    return out


def _lifted_pairs(obj: Any, geometry: str, c: float, r: float) -> tuple[torch.Tensor, ...]:
    pairs = as_train_pairs(obj)
    return (
        lift_features(pairs.image, geometry, curvature=c, radius=r),
        lift_features(pairs.text, geometry, curvature=c, radius=r),
    )


def data_fidelity(
    synthetic: Any,
    reference: Any,
    test: Any,
    *,
    geometries: Sequence[str] = ("euclidean", "lorentz", "poincare"),
    curvature: float = 1.0,
    radius: float = 1.0,
    tau: float = 0.07,
    k: int = 10,
    kendall: bool = True,
    max_queries: int | None = None,
) -> FidelityResult:
    """Ordering agreement of the bridge similarities of ``synthetic`` and ``reference`` pairs.

    In each geometry, all features are lifted with :func:`lift_features` (L2-normalised,
    radius ``radius``), :func:`bridge_scores` gives the test images x test captions
    similarity induced by the synthetic pairs and by the reference pairs (usually every
    caption-level pair of the full training split), and :func:`ordering_agreement` compares
    them. ``per_item`` holds each geometry; ``mean`` the mean over geometries. Identical
    sets give exactly 1.
    """
    t0 = time.perf_counter()
    fs: FeatureSet = as_feature_set(test, "test")
    per_geo = {}
    for geo in geometries:
        q = lift_features(fs.image, geo, curvature=curvature, radius=radius)
        t = lift_features(fs.text, geo, curvature=curvature, radius=radius)
        sx, sy = _lifted_pairs(synthetic, geo, curvature, radius)
        rx, ry = _lifted_pairs(reference, geo, curvature, radius)
        if sx.shape[1] != q.shape[1] or sy.shape[1] != t.shape[1]:
            raise ValueError("synthetic and test features have different widths")
        if rx.shape[1] != q.shape[1] or ry.shape[1] != t.shape[1]:
            raise ValueError("reference and test features have different widths")
        kw = {"geometry": geo, "curvature": curvature, "tau": tau}
        per_geo[geo] = ordering_agreement(
            bridge_scores(q, t, sx, sy, **kw),
            bridge_scores(q, t, rx, ry, **kw),
            k=k,
            kendall=kendall,
            max_queries=max_queries,
        )
    if not per_geo:
        raise ValueError("geometries must name at least one geometry")
    return FidelityResult(_mean_dicts(list(per_geo.values())), per_geo, time.perf_counter() - t0)
