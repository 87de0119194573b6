r"""Full-dataset rank alignment: the synthetic ordering matched to the whole real set.

See ``docs/losses.md`` section 3. For each query ``q`` the target distribution over the
``M`` synthetic keys is ``P_m(q) = sum_n softmax_n(-d(q, y_n)/tau) w_nm`` with ``w`` the
soft assignment of real pairs to synthetic pairs. It is streamed over chunks of the real
set with :func:`hypervldd.kernels.row_stats` (``values = w`` of the chunk) and merged by
log-sum-exp, so the real set never meets an ``N x M`` matrix: memory is
``O(chunk (A + M) + A M)``, time linear in ``N``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .. import kernels
from .._checks import check_finite, validation, validation_enabled
from ..distributed import all_reduce_row_stats, check_group_arg, resolve_group
from ..manifolds import Curvature
from ._common import (
    FeatureScale,
    check_features,
    check_geometry,
    check_pair,
    check_points,
    full_precision,
    lift,
    pairwise_distance,
    reject_lorentz_points,
    split_legacy_real,
)

__all__ = ["FullDatasetRankAlignment", "AlignmentTerms", "full_dataset_targets"]

_GEOMETRIES = ("lorentz", "poincare", "euclidean")


class AlignmentTerms(NamedTuple):
    """Terms of :class:`FullDatasetRankAlignment` (0-d tensors).

    >>> import torch
    >>> from hypervldd.losses import FullDatasetRankAlignment
    >>> from hypervldd.manifolds import Lorentz
    >>> m, g = Lorentz(), torch.Generator().manual_seed(0)
    >>> syn = m.lift(torch.randn(4, 8, generator=g)), m.lift(torch.randn(4, 8, generator=g))
    >>> real = m.lift(torch.randn(32, 8, generator=g)), m.lift(torch.randn(32, 8, generator=g))
    >>> align = FullDatasetRankAlignment(rank_weight=0.1, lift=False)  # takes points
    >>> t = align.terms(*syn, real_image=real[0], real_text=real[1])
    >>> bool(torch.isclose(t.total, t.ranking + 0.1 * t.smooth_rank))
    True
    """

    total: torch.Tensor
    ranking: torch.Tensor
    smooth_rank: torch.Tensor


def _finite_chunk(x: torch.Tensor, name: str) -> torch.Tensor:
    # One reduction instead of a chunk-sized boolean mask: NaN and inf propagate through
    # the sum; only a non-finite sum (or an overflow) pays for the full check and message.
    if validation_enabled() and not bool(torch.isfinite(x.sum())):
        check_finite(x, name)
    return x


@torch.no_grad()
def full_dataset_targets(
    queries: tuple[torch.Tensor, torch.Tensor],
    syn: tuple[torch.Tensor, torch.Tensor],
    real: tuple[torch.Tensor, torch.Tensor],
    *,
    geometry: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    tau: float = 0.07,
    assign_tau: float = 0.07,
    chunk_size: int = 8192,
    process_group: object = None,
    real_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target distributions over the synthetic keys, streamed over the real set.

    Args:
        queries: image queries ``(A, D')`` (image-to-text) and text queries ``(A', D')``.
        syn: synthetic images and texts ``(M, D')``.
        real: real images and texts ``(N, D')`` (may be large; read ``chunk_size`` rows at a
            time and cast to the compute dtype chunk by chunk).
        process_group: with a group (see :func:`hypervldd.distributed.resolve_group`),
            ``real`` is this rank's shard (possibly empty) and the partial statistics of
            every rank are combined by all-reduce (running max, sums of exponentials,
            weighted sums), so every rank gets the targets of the union of the shards;
            ``queries`` and ``syn`` must be the same on every rank.
        real_transform: applied to each chunk ``(image, text)`` after the cast (e.g. the
            lift of Euclidean features), so that the real set is never transformed whole.

    Returns ``(P_i2t (A, M), P_t2i (A', M))``, rows summing to 1, without gradient.

    >>> import torch
    >>> from hypervldd.losses import full_dataset_targets
    >>> from hypervldd.manifolds import Lorentz
    >>> m, g = Lorentz(), torch.Generator().manual_seed(0)
    >>> syn = m.lift(torch.randn(4, 8, generator=g)), m.lift(torch.randn(4, 8, generator=g))
    >>> real = m.lift(torch.randn(32, 8, generator=g)), m.lift(torch.randn(32, 8, generator=g))
    >>> t_img, t_txt = full_dataset_targets(syn, syn, real, chunk_size=8)
    >>> tuple(t_img.shape), bool(torch.allclose(t_img.sum(-1), torch.ones(4), atol=1e-5))
    ((4, 4), True)
    """
    qi, qt = queries
    sx, sy = syn
    rx, ry = real
    dt = qi.dtype
    m = sx.shape[0]
    acc = [qi.new_zeros((qi.shape[0], m)), qt.new_zeros((qt.shape[0], m))]
    lse = [qi.new_full((qi.shape[0],), -math.inf), qt.new_full((qt.shape[0],), -math.inf)]
    for start in range(0, rx.shape[0], max(1, int(chunk_size))):
        cx = _finite_chunk(rx[start : start + chunk_size].to(dt), "real_image")
        cy = _finite_chunk(ry[start : start + chunk_size].to(dt), "real_text")
        if real_transform is not None:
            cx, cy = real_transform(cx, cy)
        # Soft assignment of each real pair of the chunk to the synthetic pairs.
        dpair = kernels.pairwise_dist(cx, sx, geometry, c) + kernels.pairwise_dist(
            cy, sy, geometry, c
        )
        w = torch.softmax(-dpair / assign_tau, dim=1)
        for k, (q, keys) in enumerate(((qi, cy), (qt, cx))):
            st = kernels.row_stats(q, keys, geometry, c, tau, values=w)
            new = torch.logaddexp(lse[k], st.lse)
            # exp(-inf - finite) = 0 on the first chunk: the empty accumulator drops out.
            acc[k] = (
                acc[k] * torch.exp(lse[k] - new)[:, None]
                + st.weighted * torch.exp(st.lse - new)[:, None]
            )
            lse[k] = new
    group = resolve_group(process_group)
    if group is not None:
        # Both directions in one pair of collectives: their rows are stacked.
        a = qi.shape[0]
        _, acc_all = all_reduce_row_stats(torch.cat(lse), torch.cat(acc), group)
        return acc_all[:a], acc_all[a:]
    return acc[0], acc[1]


def _listwise(p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``mean_q KL(P_q || softmax(logits_q))`` with ``0 log 0 = 0``."""
    log_q = torch.log_softmax(logits, dim=1)
    return (torch.xlogy(p, p) - p * log_q).sum(1).mean()


def _pairwise(p: torch.Tensor, logits: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """RankNet: mean Bernoulli KL between ``sigmoid(log P_m - log P_m')`` and
    ``sigmoid(s_m - s_m')`` over ordered pairs ``m != m'``, chunked over queries."""
    a, m = logits.shape
    if m < 2:
        return logits.sum() * 0.0
    log_p = torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))
    off = ~torch.eye(m, dtype=torch.bool, device=logits.device)
    total = logits.new_zeros(())
    for i in range(0, a, chunk):
        s = logits[i : i + chunk]
        lp = log_p[i : i + chunk]
        z = s[:, :, None] - s[:, None, :]
        delta = lp[:, :, None] - lp[:, None, :]
        pi = torch.sigmoid(delta)
        # Entropy of the target from log-sigmoids: exact for saturated pairs.
        ent = -(pi * F.logsigmoid(delta) + (1.0 - pi) * F.logsigmoid(-delta))
        kl = F.softplus(z) - pi * z - ent
        total = total + (kl * off).sum()
    return total / (a * m * (m - 1))


def _smooth_rank(logits: torch.Tensor, t: float) -> torch.Tensor:
    """``mean_i log(1 + sum_{j != i} sigmoid((s_ij - s_ii)/t))`` for the first ``M`` rows.

    Equal to ``log`` of the fused row statistic ``RowStats.smooth_rank`` with positives
    ``arange(M)``; formed here from the logits that the ranking term already holds, with
    ``log1p`` so that a positive far ahead of the others gives an exact small value.
    """
    m = logits.shape[1]
    s = logits[:m]
    diag = s.diagonal()
    sig = torch.sigmoid((s - diag[:, None]) / t)
    off = ~torch.eye(m, dtype=torch.bool, device=s.device)
    return torch.log1p((sig * off).sum(1)).mean()


class FullDatasetRankAlignment(nn.Module):
    """Match the similarity ordering of the synthetic pairs to that of the whole real set.

    Args:
        geometry: ``"lorentz"``, ``"poincare"`` or ``"euclidean"``.
        c: curvature magnitude (``learn_c`` for a bounded learnable one).
        tau: temperature of the relevance distributions.
        assign_tau: temperature of the soft assignment of real to synthetic pairs
            (default ``tau``).
        variant: ``"listwise"`` (KL) or ``"pairwise"`` (RankNet).
        rank_weight: weight of the smooth-rank term; rank_temperature: its ``t``.
        chunk_size: real pairs per streamed chunk (memory ``O(chunk (A + M))``).
        lift: ``True``: every input is a Euclidean feature tensor ``(., D)``, scaled by
            ``feature_scale`` and lifted by ``expmap0`` inside the loss (the real set chunk
            by chunk), as :class:`HyperbolicContrastiveLoss` and :class:`RAHALoss` do.
            ``False``: every input is a point of ``geometry`` already (``(., D+1)`` on
            Lorentz); features passed there are refused with an error. Not given: points,
            with a ``DeprecationWarning`` (the default becomes ``True`` in the next release).
        feature_scale, learn_scale: the scale applied before the lift (``"auto"`` =
            ``1/sqrt(D)``), as in :class:`HyperbolicContrastiveLoss`.
        process_group: ``None`` (default: one process), ``"auto"`` (the default group when
            ``torch.distributed`` runs more than one process), ``"world"`` or a
            ``ProcessGroup``. With a group, ``real_image``/``real_text`` are this rank's
            shard of the real set (any size, also empty) and the synthetic pairs and
            anchors are the same on every rank; the partial statistics are combined by
            all-reduce and every rank returns the loss of the union of the shards, with
            the single-process gradient (see ``docs/distributed.md``).

    Call convention (shared with :class:`RAHALoss`):
    ``loss(syn_image, syn_text, *, real_image, real_text, anchor_image=None,
    anchor_text=None)``: the synthetic pairs (with gradient) positional, the real set by
    keyword. Shapes (``D'`` = ``D`` with ``lift=True``; points with ``lift=False``, ``D' =
    D + 1`` on Lorentz): ``syn_image``, ``syn_text`` ``(M, D')``; ``real_image``,
    ``real_text`` ``(N, D')`` (any ``N``, read chunk by chunk, no gradient); optional extra
    queries ``anchor_image`` ``(A, D')`` and ``anchor_text`` ``(A', D')`` (e.g. a sample of
    real pairs). The queries are the synthetic images (texts) followed by the anchors.
    Returns a 0-d tensor. An all-positional call (the former form) still works for one
    release with a ``DeprecationWarning``.

    Example:
        >>> import torch
        >>> from hypervldd.losses import FullDatasetRankAlignment
        >>> g = torch.Generator().manual_seed(0)
        >>> real_image = torch.randn(500, 16, generator=g)
        >>> real_text = torch.randn(500, 16, generator=g)
        >>> syn_image = torch.randn(10, 16, generator=g, requires_grad=True)
        >>> syn_text = torch.randn(10, 16, generator=g, requires_grad=True)
        >>> align = FullDatasetRankAlignment("lorentz", lift=True, chunk_size=128)
        >>> loss = align(syn_image, syn_text, real_image=real_image, real_text=real_text)
        >>> loss.backward()
        >>> bool(loss > 0), syn_image.grad.shape
        (True, torch.Size([10, 16]))
    """

    def __init__(
        self,
        geometry: str = "lorentz",
        c: float = 1.0,
        *,
        learn_c: bool = False,
        tau: float = 0.07,
        assign_tau: float | None = None,
        variant: str = "listwise",
        rank_weight: float = 0.1,
        rank_temperature: float = 1.0,
        chunk_size: int = 8192,
        lift: bool | None = None,
        feature_scale: float | str = "auto",
        learn_scale: bool = False,
        process_group: object = None,
    ) -> None:
        super().__init__()
        self.process_group = check_group_arg(process_group)
        self.geometry = check_geometry(geometry, _GEOMETRIES)
        self.curvature = Curvature(c, learnable=learn_c)
        for name, v in (("tau", tau), ("rank_temperature", rank_temperature)):
            if not (isinstance(v, (int, float)) and 0.0 < float(v) < math.inf):
                raise ValueError(f"{name} must be a finite float > 0, got {v!r}")
        assign_tau = tau if assign_tau is None else assign_tau
        if not (isinstance(assign_tau, (int, float)) and 0.0 < float(assign_tau) < math.inf):
            raise ValueError(f"assign_tau must be a finite float > 0, got {assign_tau!r}")
        if variant not in ("listwise", "pairwise"):
            raise ValueError(f"variant must be 'listwise' or 'pairwise', got {variant!r}")
        if not (math.isfinite(float(rank_weight)) and float(rank_weight) >= 0):
            raise ValueError(f"rank_weight must be finite and >= 0, got {rank_weight}")
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if lift is None:
            warnings.warn(
                "FullDatasetRankAlignment without lift= takes manifold points, as before;"
                " pass lift=False to keep that, or lift=True to pass Euclidean features as"
                " HyperbolicContrastiveLoss and RAHALoss take them (the default becomes"
                " lift=True in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
            lift = False
        if not isinstance(lift, bool):
            raise TypeError(f"lift must be True, False or None, got {lift!r}")
        self.tau = float(tau)
        self.assign_tau = float(assign_tau)
        self.variant = variant
        self.rank_weight = float(rank_weight)
        self.rank_temperature = float(rank_temperature)
        self.chunk_size = int(chunk_size)
        self.lift = lift
        self.scale = FeatureScale(feature_scale, learnable=learn_scale)

    def extra_repr(self) -> str:
        return (
            f"geometry={self.geometry!r}, tau={self.tau}, assign_tau={self.assign_tau},"
            f" variant={self.variant!r}, rank_weight={self.rank_weight},"
            f" chunk_size={self.chunk_size}, lift={self.lift}"
        )

    def _embed(self, u: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
        """Points of features ``u`` ``(N, D)`` (``lift=True``), or ``u`` itself."""
        if not self.lift:
            return u
        return lift(self.scale(u), self.geometry, torch.as_tensor(c, dtype=u.dtype))

    def terms(
        self,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
        *legacy: torch.Tensor,
        real_image: torch.Tensor | None = None,
        real_text: torch.Tensor | None = None,
        anchor_image: torch.Tensor | None = None,
        anchor_text: torch.Tensor | None = None,
        real_checked: bool = False,
    ) -> AlignmentTerms:
        """All terms; see the class docstring for shapes.

        ``real_checked=True``: the caller validated ``real_image`` and ``real_text`` once
        where they entered (e.g. with :func:`hypervldd._checks.check_points` when caching
        them), so the streaming pass does not re-check them on every call (it was 21% of
        an iteration on emoji). The synthetic points are still checked."""
        order = ("syn_image", "syn_text", "real_image", "real_text", "anchor_image", "anchor_text")
        args = split_legacy_real(
            "FullDatasetRankAlignment",
            legacy,
            {
                "syn_image": syn_image,
                "syn_text": syn_text,
                "real_image": real_image,
                "real_text": real_text,
                "anchor_image": anchor_image,
                "anchor_text": anchor_text,
            },
            order,
        )
        if args["real_image"] is None or args["real_text"] is None:
            raise TypeError(
                "FullDatasetRankAlignment needs the real set by keyword:"
                " loss(syn_image, syn_text, real_image=..., real_text=...)"
            )
        named = {k: args[k] for k in order if args[k] is not None}
        syn_image, syn_text = named["syn_image"], named["syn_text"]
        real_image, real_text = named["real_image"], named["real_text"]
        anchor_image, anchor_text = args["anchor_image"], args["anchor_text"]
        group = resolve_group(self.process_group)
        for name, t in named.items():
            if group is not None and name.startswith("real") and t.dim() == 2 and not len(t):
                continue  # an empty shard of the real set: the other ranks hold the pairs
            # The real set may be huge: its finiteness is checked chunk by chunk while
            # streaming, never with a full-size temporary.
            check_features(t, name, finite=not name.startswith("real"))
        first = "syn_image"
        for name, t in named.items():
            check_pair(named[first], first, t, name)
        if self.geometry == "lorentz" and syn_image.shape[1] < 2 and not self.lift:
            raise ValueError(
                f"syn_image must hold Lorentz points (time + space), got {tuple(syn_image.shape)}"
            )
        for a, b in (("syn_image", "syn_text"), ("real_image", "real_text")):
            if named[a].shape[0] != named[b].shape[0]:
                raise ValueError(
                    f"{a} and {b} must have one row per pair, got {named[a].shape[0]} and"
                    f" {named[b].shape[0]} rows"
                )
        c_check = self.curvature().detach()
        for name, t in named.items():
            if real_checked and name.startswith("real"):
                continue  # validated once where the real set entered
            if self.lift:
                if self.geometry == "lorentz":
                    reject_lorentz_points(
                        t, name, c_check, hint=": with lift=True the loss lifts them itself"
                    )
            else:
                check_points(
                    t,
                    name,
                    self.geometry,
                    c_check.to(t.dtype),
                    hint=": lift them first, or construct the loss with lift=True",
                )
        with full_precision(syn_image, syn_text) as dt:
            c = self.curvature().to(dt)
            if self.geometry == "euclidean":
                c = 1.0  # flat: no curvature in the graph
            sx, sy = self._embed(syn_image.to(dt), c), self._embed(syn_text.to(dt), c)
            qi, qt = sx, sy
            if anchor_image is not None:
                qi = torch.cat([sx, self._embed(anchor_image.to(dt), c)])
            if anchor_text is not None:
                qt = torch.cat([sy, self._embed(anchor_text.to(dt), c)])
            c_const = c.detach() if isinstance(c, torch.Tensor) else c
            transform = None
            if self.lift:

                def transform(x: torch.Tensor, y: torch.Tensor):
                    with torch.no_grad():
                        return self._embed(x, c_const), self._embed(y, c_const)

            with validation(validation_enabled() and not real_checked):
                p_i2t, p_t2i = full_dataset_targets(
                    (qi.detach(), qt.detach()),
                    (sx.detach(), sy.detach()),
                    (real_image, real_text),
                    geometry=self.geometry,
                    c=c_const,
                    tau=self.tau,
                    assign_tau=self.assign_tau,
                    chunk_size=self.chunk_size,
                    process_group=group,
                    real_transform=transform,
                )
            s_i2t = -pairwise_distance(qi, sy, self.geometry, c) / self.tau
            s_t2i = -pairwise_distance(qt, sx, self.geometry, c) / self.tau
            rank_fn = _listwise if self.variant == "listwise" else _pairwise
            ranking = 0.5 * (rank_fn(p_i2t, s_i2t) + rank_fn(p_t2i, s_t2i))
            smooth = 0.5 * (
                _smooth_rank(s_i2t, self.rank_temperature)
                + _smooth_rank(s_t2i, self.rank_temperature)
            )
            total = ranking + self.rank_weight * smooth
        return AlignmentTerms(total, ranking, smooth)

    def forward(
        self,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
        *legacy: torch.Tensor,
        real_image: torch.Tensor | None = None,
        real_text: torch.Tensor | None = None,
        anchor_image: torch.Tensor | None = None,
        anchor_text: torch.Tensor | None = None,
        real_checked: bool = False,
    ) -> torch.Tensor:
        """The alignment loss, a 0-d tensor (see :meth:`terms`)."""
        return self.terms(
            syn_image,
            syn_text,
            *legacy,
            real_image=real_image,
            real_text=real_text,
            anchor_image=anchor_image,
            anchor_text=anchor_text,
            real_checked=real_checked,
        ).total
