"""Hierarchy embeddings trained with the Poincaré/Lorentz-embedding loss.

The loss of Nickel & Kiela (NeurIPS 2017, eq. 6; ICML 2018) is a softmax over
negative distances: for a related pair ``(u, v)`` and ``K`` sampled nodes
``v'_k`` unrelated to ``u``,

.. math::

    \\ell(u, v) = -\\log \\frac{e^{-d(u, v)}}{e^{-d(u, v)} + \\sum_k e^{-d(u, v'_k)}}.

Negatives are drawn uniformly; draws that happen to be related to ``u`` (or ``u``
itself) are masked out of the softmax rather than re-drawn, which keeps the
sampling vectorised. Training starts with a *burn-in*: a few epochs at a
reduced learning rate so that the initial, nearly coincident points find an
angular layout before they move outwards.

Each node is a point of a :class:`~hypervldd.manifolds.PoincareBall`,
:class:`~hypervldd.manifolds.Lorentz` or :class:`~hypervldd.manifolds.Euclidean`
stored in a :class:`geoopt.ManifoldParameter` and trained with
:class:`hypervldd.optim.RiemannianAdam` (default: large batches, few epochs) or
:class:`hypervldd.optim.RiemannianSGD` (the optimiser both papers use, with small
batches and many more epochs).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._checks import validation
from ..manifolds import Euclidean, Lorentz, PoincareBall, flat_math, lorentz_math, poincare_math
from ..optim import RiemannianAdam, RiemannianSGD
from .metrics import Reconstruction, adjacency, reconstruction
from .wordnet import Hierarchy

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import geoopt

__all__ = ["EmbedConfig", "EmbedResult", "HierarchyEmbedding", "train_embedding"]

_MANIFOLDS = {"poincare": PoincareBall, "lorentz": Lorentz, "euclidean": Euclidean}


@dataclass
class EmbedConfig:
    """Hyper-parameters of :func:`train_embedding`.

    Attributes:
        manifold: ``"poincare"``, ``"lorentz"`` or ``"euclidean"``.
        optimizer: ``"radam"`` (:class:`~hypervldd.optim.RiemannianAdam`, the
            default) or ``"rsgd"`` (:class:`~hypervldd.optim.RiemannianSGD`, the
            papers' choice, which needs small batches and many more epochs).
        dim: embedding dimension ``D`` (Lorentz points have ``D + 1`` coordinates).
        epochs: passes over the (symmetrised) closure edges, burn-in included.
        batch_size: related pairs per step.
        negatives: sampled negatives per pair.
        lr: learning rate. The loss is summed over the batch, so for SGD ``lr``
            is the step per pair; Adam's steps are scale-free (at most about ``lr``).
        burnin_epochs: epochs at ``lr * burnin_factor`` at the start.
        burnin_factor: learning-rate factor of the burn-in.
        init_scale: initial coordinates are uniform in ``[-init_scale, init_scale]``.
        eval_every: evaluate reconstruction every this many epochs (0: only at the end).
        seed: seed of the initialisation and the sampling.
        dtype: float32 or float64.
    """

    manifold: str = "poincare"
    optimizer: str = "radam"
    dim: int = 10
    epochs: int = 50
    batch_size: int = 512
    negatives: int = 50
    lr: float = 0.1
    burnin_epochs: int = 5
    burnin_factor: float = 0.1
    init_scale: float = 1e-3
    eval_every: int = 0
    seed: int = 0
    dtype: torch.dtype = torch.float32

    def validate(self) -> None:
        if self.manifold not in _MANIFOLDS:
            raise ValueError(f"manifold must be one of {sorted(_MANIFOLDS)}, got {self.manifold!r}")
        if self.optimizer not in ("rsgd", "radam"):
            raise ValueError(f"optimizer must be 'rsgd' or 'radam', got {self.optimizer!r}")
        for name in ("dim", "epochs", "batch_size", "negatives"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("burnin_epochs", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        for name in ("lr", "burnin_factor", "init_scale"):
            v = getattr(self, name)
            if not (0.0 < float(v) < math.inf):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")


@dataclass
class EmbedResult:
    """Outcome of :func:`train_embedding`.

    Attributes:
        model: the trained :class:`HierarchyEmbedding`.
        final: reconstruction after the last epoch.
        history: ``(epoch, mean_rank, map, seconds)`` at each evaluation.
        train_seconds: wall-clock training time, evaluations excluded.
    """

    model: HierarchyEmbedding
    final: Reconstruction
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    train_seconds: float = 0.0

    def first_epoch_reaching(self, target_map: float) -> int | None:
        """First evaluated epoch whose MAP is at least ``target_map`` (``None``: never)."""
        for epoch, _, m, _ in self.history:
            if m >= target_map:
                return epoch
        return None


class HierarchyEmbedding(torch.nn.Module):
    """One point per node on a manifold, with the distance the loss needs.

    Args:
        num_nodes: number of nodes ``N``.
        dim: dimension ``D``.
        manifold: ``"poincare"``, ``"lorentz"`` or ``"euclidean"``.
        init_scale: half-width of the uniform initialisation near the origin.
        dtype: parameter dtype.
        generator: random generator of the initialisation.
    """

    def __init__(
        self,
        num_nodes: int,
        dim: int,
        manifold: str = "poincare",
        *,
        init_scale: float = 1e-3,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if manifold not in _MANIFOLDS:
            raise ValueError(f"manifold must be one of {sorted(_MANIFOLDS)}, got {manifold!r}")
        self.kind = manifold
        self.manifold = _MANIFOLDS[manifold](1.0)
        v = (torch.rand(num_nodes, dim, dtype=dtype, generator=generator) * 2 - 1) * init_scale
        with validation(False):
            x = self.manifold.lift(v)
        self.weight = geoopt.ManifoldParameter(x.to(dtype), manifold=self.manifold)

    def dist(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Distances between points ``u (..., P)`` and ``v (..., P)`` (broadcasting), ``(...)``."""
        if self.kind == "poincare":
            return poincare_math.dist(u, v, 1.0)
        if self.kind == "lorentz":
            return lorentz_math.dist(u, v, 1.0)
        return flat_math.euclidean_dist(u, v)

    def forward(self, anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Distances ``(B, C)`` from node ``anchors (B,)`` to node ``candidates (B, C)``."""
        u = self.weight[anchors].unsqueeze(1)
        v = self.weight[candidates]
        return self.dist(u, v)

    @torch.no_grad()
    def distance_matrix(self) -> torch.Tensor:
        """All-pairs distances ``(N, N)``, accurate for close pairs (reference path)."""
        w = self.weight.detach().as_subclass(torch.Tensor)
        if self.kind == "poincare":
            return poincare_math.pairwise_dist(w, w, 1.0)
        if self.kind == "lorentz":
            return lorentz_math.pairwise_dist(w, w, 1.0)
        return flat_math.euclidean_pairwise_dist(w, w)


def _loss(dists: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed softmax loss; column 0 holds the positive, masked negatives drop out."""
    logits = (-dists).masked_fill(mask, float("-inf"))
    return torch.nn.functional.cross_entropy(
        logits, torch.zeros(len(logits), dtype=torch.long), reduction="sum"
    )


def train_embedding(
    hierarchy: Hierarchy,
    config: EmbedConfig | None = None,
    *,
    progress: Callable[[int, Reconstruction | None, float], None] | None = None,
) -> EmbedResult:
    """Embed a transitive closure and evaluate its reconstruction.

    Args:
        hierarchy: the closure (:func:`~hypervldd.hierarchy.transitive_closure`).
        config: hyper-parameters (defaults: :class:`EmbedConfig`).
        progress: called as ``progress(epoch, reconstruction_or_None, mean_loss)``
            after every epoch.

    Returns:
        The trained model, its final reconstruction and the evaluation history.
    """
    cfg = config or EmbedConfig()
    cfg.validate()
    n = hierarchy.num_nodes
    if n < 2 or not hierarchy.edges:
        raise ValueError(f"hierarchy must have at least 2 nodes and one edge, got {n} nodes")
    gen = torch.Generator().manual_seed(cfg.seed)
    model = HierarchyEmbedding(
        n, cfg.dim, cfg.manifold, init_scale=cfg.init_scale, dtype=cfg.dtype, generator=gen
    )
    adj = adjacency(n, hierarchy.edges)
    e = torch.as_tensor(hierarchy.edges, dtype=torch.long)
    pairs = torch.cat([e, e.flip(1)])  # symmetric: both endpoints act as anchors
    if cfg.optimizer == "rsgd":
        opt: torch.optim.Optimizer = RiemannianSGD(model.parameters(), lr=cfg.lr)
    else:
        opt = RiemannianAdam(model.parameters(), lr=cfg.lr)
    history: list[tuple[int, float, float, float]] = []
    train_seconds = 0.0
    final: Reconstruction | None = None
    for epoch in range(1, cfg.epochs + 1):
        lr = cfg.lr * (cfg.burnin_factor if epoch <= cfg.burnin_epochs else 1.0)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        perm = torch.randperm(len(pairs), generator=gen)
        total = 0.0
        for i in range(0, len(pairs), cfg.batch_size):
            batch = pairs[perm[i : i + cfg.batch_size]]
            u, v = batch[:, 0], batch[:, 1]
            negs = torch.randint(0, n, (len(batch), cfg.negatives), generator=gen)
            cand = torch.cat([v.unsqueeze(1), negs], dim=1)
            mask = adj[u.unsqueeze(1), negs] | (negs == u.unsqueeze(1))
            mask = torch.cat([torch.zeros_like(mask[:, :1]), mask], dim=1)
            opt.zero_grad(set_to_none=True)
            loss = _loss(model(u, cand), mask)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        train_seconds += time.perf_counter() - t0
        rec = None
        if (cfg.eval_every and epoch % cfg.eval_every == 0) or epoch == cfg.epochs:
            rec = reconstruction(model.distance_matrix(), adj)
            history.append((epoch, rec.mean_rank, rec.map, train_seconds))
            final = rec
        if progress is not None:
            progress(epoch, rec, total / len(pairs))
    assert final is not None
    return EmbedResult(model, final, history, train_seconds)
