"""The student of the evaluation protocol: projection heads on frozen features.

This module is self-contained on purpose (a Linear/MLP head, ``manifold.lift``,
and a symmetric InfoNCE over ``-pairwise_dist / tau``): the shared heads of
:mod:`hypervldd.nn` and the fused losses of :mod:`hypervldd.losses` are being
written concurrently. The seam for them is :attr:`Student.distance` (any
``(x (N, .), y (M, .)) -> (N, M)`` distance) and the ``loss_fn`` argument of
:func:`train_student`.

Everything random (head initialisation, batch order) draws from an explicit
``torch.Generator``, so a seed reproduces a student bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import has_values, validation
from ..manifolds import get_manifold
from .protocol import EvalProtocol, StudentConfig

__all__ = [
    "ProjectionHead",
    "Student",
    "symmetric_infonce",
    "batch_targets",
    "train_student",
    "make_optimizer",
]


# Floor under acosh(1 + .) and sqrt(.) arguments: a finite gradient at zero distance.
_FLOOR = 1e-12


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        if t.device == generator.device:
            t.uniform_(-bound, bound, generator=generator)
        else:  # a CPU generator fills a GPU tensor: the same draws, made where it lives
            draw = torch.empty(t.shape, dtype=t.dtype, device=generator.device)
            t.copy_(draw.uniform_(-bound, bound, generator=generator))


def _linear(
    d_in: int, d_out: int, generator: torch.Generator, device: torch.device | None = None
) -> nn.Linear:
    # PyTorch's default Linear init (uniform +-1/sqrt(fan_in)) drawn from our generator.
    layer = nn.Linear(d_in, d_out, device=device)
    bound = 1.0 / math.sqrt(d_in)
    _uniform_(layer.weight, bound, generator)
    _uniform_(layer.bias, bound, generator)
    return layer


class ProjectionHead(nn.Module):
    """``(N, d_in) -> (N, width)``: Linear, or the residual MLP of VL-Distill.

    The MLP is ``p = Linear(x); LayerNorm(p + Linear(GELU(p)))`` (no dropout, so
    training is deterministic).
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        kind: str,
        generator: torch.Generator,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.proj = _linear(d_in, width, generator, device)
        if kind == "mlp":
            self.fc = _linear(width, width, generator, device)
            self.norm = nn.LayerNorm(width, device=device)
        elif kind != "linear":
            raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.proj(x)
        if self.kind == "mlp":
            p = self.norm(p + self.fc(F.gelu(p)))
        return p


class Student(nn.Module):
    """Two projection heads, a feature scale, a temperature, and a manifold.

    Args:
        image_dim, text_dim: widths of the frozen image and text features.
        config: the :class:`StudentConfig`.
        generator: source of the initial weights.
        trainable: parts that receive gradients (see ``EvalProtocol.trainable``).
        device: where the parameters live (default: the CPU). The weights are drawn
            from ``generator`` wherever it lives, so a seed gives the same student on
            every device.
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        config: StudentConfig,
        generator: torch.Generator,
        trainable: tuple[str, ...] = ("image_head", "text_head"),
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        device = torch.device(device) if device is not None else None
        self.config = config
        self.image_head = ProjectionHead(image_dim, config.width, config.head, generator, device)
        self.text_head = ProjectionHead(text_dim, config.width, config.head, generator, device)
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.feature_scale), device=device))
        self.log_tau = nn.Parameter(torch.tensor(math.log(config.temperature), device=device))
        # built in place rather than moved: Module.to cannot move a traced (fake) parameter
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self.manifold = get_manifold(
                config.geometry, config.curvature, learnable="curvature" in trainable
            )
        self.image_head.requires_grad_("image_head" in trainable)
        self.text_head.requires_grad_("text_head" in trainable)
        self.log_scale.requires_grad_("feature_scale" in trainable)
        self.log_tau.requires_grad_("temperature" in trainable)

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.log_scale.dtype)
        return F.normalize(x, dim=-1) if self.config.normalize_inputs else x

    def _clip(self, v: torch.Tensor) -> torch.Tensor:
        # Feature clipping (Guo et al., CVPR 2022): rescale tangent vectors longer than
        # clip_norm. Without it the Poincare student is driven to the boundary in a few
        # SGD steps, where all distances blow up alike and the loss stalls at log(B).
        r = self.config.clip_norm
        if r is None:
            return v
        n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        return v * (r / n.clamp_min(r))

    def image_tangent(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled, clipped head output before the lift, ``(N, width)``."""
        return self._clip(self.image_head(self._prep(x)) * self.log_scale.exp())

    def text_tangent(self, t: torch.Tensor) -> torch.Tensor:
        """Scaled, clipped head output before the lift, ``(N, width)``."""
        return self._clip(self.text_head(self._prep(t)) * self.log_scale.exp())

    def lift(self, v: torch.Tensor) -> torch.Tensor:
        """Tangent vectors ``(N, width)`` -> points, with ``dist(origin, point) = |v|``.

        The Lorentz lift already has this property; the Poincare ball's metric is
        ``2x`` Euclidean at the origin, so its tangent vectors are halved first.
        Temperatures and ``clip_norm`` then mean the same in every geometry.
        """
        if self.config.geometry == "poincare":
            v = 0.5 * v
        with validation(False):
            return self.manifold.lift(v)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Image features ``(N, D_i)`` -> points ``(N, width [+1 for Lorentz])``."""
        return self.lift(self.image_tangent(x))

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        """Text features ``(N, D_t)`` -> points ``(N, width [+1 for Lorentz])``."""
        return self.lift(self.text_tangent(t))

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Geodesic distances ``(N, M)`` between points (the training path).

        Closed GEMM forms evaluated in float64: at training batch sizes this costs
        little, and float64 keeps the cancellation of the GEMM form (which the
        precision-first reference path of :mod:`hypervldd.manifolds` repairs pair by
        pair, far too slowly for a training loop) below 1e-8 relative for points of
        radius up to about 5. A tiny floor under ``acosh``/``sqrt`` keeps the
        gradient finite at zero distance. The result is cast back to ``x.dtype``.
        """
        dt = x.dtype
        x, y = x.double(), y.double()
        geo = self.config.geometry
        if geo == "lorentz":
            c = self.manifold.c.double()
            z = c * (torch.outer(x[:, 0], y[:, 0]) - x[:, 1:] @ y[:, 1:].T)
            return (torch.acosh(z.clamp_min(1.0 + _FLOOR)) / c.sqrt()).to(dt)
        if geo == "klein":
            c = self.manifold.c.double()
            z = _klein_cosh(x, y, c)
            return (torch.acosh(z.clamp_min(1.0 + _FLOOR)) / c.sqrt()).to(dt)
        x2, y2 = (x * x).sum(-1), (y * y).sum(-1)
        sq = (x2[:, None] + y2[None, :] - 2.0 * (x @ y.T)).clamp_min(0)
        if geo == "euclidean":
            return sq.clamp_min(_FLOOR).sqrt().to(dt)
        c = self.manifold.c.double()
        den = torch.outer(1.0 - c * x2, 1.0 - c * y2).clamp_min(_FLOOR)
        z = 1.0 + 2.0 * c * sq / den
        return (torch.acosh(z.clamp_min(1.0 + _FLOOR)) / c.sqrt()).to(dt)

    def logits(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        """``-d(img_i, txt_j) / tau``, ``(N, M)``."""
        return -self.distance(img, txt) / self.tau

    @torch.no_grad()
    def retrieval_score(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        """A similarity ``(N, M)``, strictly decreasing in the distance, in float64.

        Cheaper than the distance (one GEMM, no acosh/asinh) and exact for ranking:
        Lorentz ``<x, y>_L``; Poincaré ``-|x-y|^2 / ((1-c|x|^2)(1-c|y|^2))``;
        Klein ``-cosh(sqrt(c) d)``; Euclidean ``-|x-y|^2``.
        """
        x, y = img.double(), txt.double()
        geo = self.config.geometry
        if geo == "lorentz":
            return x[:, 1:] @ y[:, 1:].T - torch.outer(x[:, 0], y[:, 0])
        if geo == "klein":
            return -_klein_cosh(x, y, self.manifold.c.detach().to(dtype=x.dtype, device=x.device))
        x2, y2 = (x * x).sum(-1), (y * y).sum(-1)
        sq = (x2[:, None] + y2[None, :] - 2.0 * (x @ y.T)).clamp_min(0)
        if geo == "euclidean":
            return -sq
        c = self.manifold.c.detach().to(dtype=x.dtype, device=x.device)  # no host read-back
        return -sq / torch.outer(1.0 - c * x2, 1.0 - c * y2)


def _klein_cosh(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``cosh(sqrt(c) d) = (1 - c x.y) / sqrt((1 - c|x|^2)(1 - c|y|^2))`` for Klein points.

    The hyperboloid's GEMM form in Klein coordinates (its Lorentz factors are
    ``1 / sqrt(1 - c|x|^2)``); the callers run it in float64, as the other geometries.
    """
    gx = torch.rsqrt((1.0 - c * (x * x).sum(-1)).clamp_min(_FLOOR))
    gy = torch.rsqrt((1.0 - c * (y * y).sum(-1)).clamp_min(_FLOOR))
    return torch.outer(gx, gy) * (1.0 - c * (x @ y.T))


def symmetric_infonce(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over logits ``(B, B)`` with soft ``targets (B, B)``.

    ``targets=None`` means the identity. Targets are normalised per row for
    image->text and per column for text->image, so a multi-positive mask (several
    captions of one image) or a learned similarity both work.
    """
    if targets is None:
        labels = torch.arange(logits.shape[0], device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    t = targets.to(logits.dtype).clamp_min(0)
    row = t / t.sum(1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny)
    col = t / t.sum(0, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny)
    i2t = -(row * F.log_softmax(logits, 1)).sum(1).mean()
    t2i = -(col * F.log_softmax(logits, 0)).sum(0).mean()
    return 0.5 * (i2t + t2i)


def batch_targets(
    idx: torch.Tensor, *, similarity: torch.Tensor | None, group: torch.Tensor | None
) -> torch.Tensor | None:
    """Targets ``(B, B)`` of the pairs ``idx``: learned similarity, same-group mask, or None."""
    if similarity is not None:
        return similarity[idx][:, idx]
    if group is not None:
        g = group[idx]
        # Traced (fake) tensors cannot answer the branch: take the general mask there.
        if not has_values(g) or bool((g[:, None] == g[None, :]).sum() > g.shape[0]):
            return (g[:, None] == g[None, :]).float()
    return None


def make_optimizer(params: list[dict], protocol: EvalProtocol) -> torch.optim.Optimizer:
    """The protocol's optimiser over parameter groups (each may carry its own ``lr``)."""
    if protocol.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay
        )
    cls = torch.optim.Adam if protocol.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=protocol.lr, weight_decay=protocol.weight_decay)


def _param_groups(
    student: nn.Module,
    protocol: EvalProtocol,
    lr_image: float | None,
    lr_text: float | None,
    *,
    backbone: nn.Module | None = None,
    backbone_lr: float = 0.0,
    what: str = "student",
) -> list[dict]:
    """Optimiser groups: ``backbone`` (at ``backbone_lr``), image head, text head, the rest."""
    bb = [] if backbone is None else [p for p in backbone.parameters() if p.requires_grad]
    img = [p for p in student.image_head.parameters() if p.requires_grad]
    txt = [p for p in student.text_head.parameters() if p.requires_grad]
    seen = {id(p) for p in bb + img + txt}
    rest = [p for p in student.parameters() if p.requires_grad and id(p) not in seen]
    groups = []
    if bb:
        groups.append({"params": bb, "lr": float(backbone_lr)})
    if img:
        groups.append({"params": img, "lr": lr_image if lr_image is not None else protocol.lr})
    if txt:
        groups.append({"params": txt, "lr": lr_text if lr_text is not None else protocol.lr})
    if rest:
        groups.append({"params": rest, "lr": protocol.lr})
    if not groups:
        raise ValueError(f"the {what} has no trainable parameters under this protocol")
    return groups


def _train_epochs(
    student: nn.Module,
    groups: list[dict],
    m: int,
    protocol: EvalProtocol,
    generator: torch.Generator,
    batch_loss: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    *,
    similarity: torch.Tensor | None,
    group: torch.Tensor | None,
    on_epoch: Callable[[int], None] | None,
    what: str = "student",
    hint: str = "lower the learning rate",
) -> list[float]:
    """The protocol's training loop over ``m`` pairs (shared by every student kind).

    Per epoch: the step schedule, one ``randperm`` of the pairs from ``generator``,
    then per batch of pair indices ``idx (B,)`` the loss ``batch_loss(idx, targets)``
    (``targets`` from :func:`batch_targets`) and one optimiser step over ``groups``.

    Returns:
        The mean training loss of each epoch.
    """
    bs = min(int(protocol.batch_size), m)
    opt = make_optimizer(groups, protocol)
    base = [g["lr"] for g in opt.param_groups]
    losses: list[float] = []
    student.train()
    for epoch in range(protocol.epochs):
        factor = protocol.lr_decay_gamma ** sum(epoch >= e for e in protocol.lr_decay_epochs)
        for g, lr0 in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr0 * factor
        perm = torch.randperm(m, generator=generator)
        # The epoch's loss is summed where it is computed and read once per epoch: a
        # per-step float() or isfinite() would stall a GPU at every step.
        total, n = None, 0
        for i in range(0, m, bs):
            idx = perm[i : i + bs]
            if idx.shape[0] < 2 and m >= 2:
                continue  # a contrastive step needs at least one negative
            loss = batch_loss(idx, batch_targets(idx, similarity=similarity, group=group))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            part = loss.detach().double() * idx.shape[0]
            total = part if total is None else total + part
            n += idx.shape[0]
        mean = float("nan")  # traced (fake) tensors have no value to report
        if total is None:
            mean = 0.0
        elif has_values(total):
            mean = float(total) / max(n, 1)
            if not math.isfinite(mean):
                raise FloatingPointError(
                    f"{what} loss became {mean} at epoch {epoch + 1}; {hint} "
                    "or check the training pairs"
                )
        losses.append(mean)
        if on_epoch is not None:
            on_epoch(epoch + 1)
    student.eval()
    return losses


def train_student(
    student: Student,
    image: torch.Tensor,
    text: torch.Tensor,
    protocol: EvalProtocol,
    generator: torch.Generator,
    *,
    similarity: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    lr_image: float | None = None,
    lr_text: float | None = None,
    on_epoch: Callable[[int], None] | None = None,
    loss_fn: Callable[[Student, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    | None = None,
) -> list[float]:
    """Train ``student`` on pairs ``(image[i], text[i])`` for ``protocol.epochs``.

    Args:
        image, text: training pairs ``(M, D_i)`` and ``(M, D_t)``.
        similarity: optional learned soft targets ``(M, M)``.
        group: optional ``(M,)`` ids; pairs sharing an id are mutual positives
            (several captions of one image).
        lr_image, lr_text: per-head learning rates (learned step sizes).
        on_epoch: called with the 1-based epoch number after every epoch.
        loss_fn: replaces the built-in loss; ``loss_fn(student, img, txt, targets)``.

    Returns:
        The mean training loss of each epoch.

    Raises:
        FloatingPointError: if the loss becomes NaN or inf.
    """
    m = image.shape[0]
    if text.shape[0] != m:
        raise ValueError(
            f"image and text must hold the same number of pairs, got {m} and {text.shape[0]}"
        )

    def batch_loss(idx: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        if loss_fn is not None:
            return loss_fn(student, image[idx], text[idx], targets)
        img = student.encode_image(image[idx])
        txt = student.encode_text(text[idx])
        return symmetric_infonce(student.logits(img, txt), targets)

    return _train_epochs(
        student,
        _param_groups(student, protocol, lr_image, lr_text),
        m,
        protocol,
        generator,
        batch_loss,
        similarity=similarity,
        group=group,
        on_epoch=on_epoch,
    )
