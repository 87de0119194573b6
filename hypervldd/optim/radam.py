"""Riemannian Adam and AdamW (decoupled weight decay as a geodesic shrink to the origin)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam as _torch_adam

from ._base import RiemannianOptimizer, gather, pieces, restabilized
from ._common import (
    authoritative,
    authoritative_tangent,
    check_hparams,
    check_stabilize,
    decay_direction,
    retr_transp,
    riemannian_grad,
    shrink_to_origin,
    sq_norm,
    to_param_dtype,
    work_dtype,
)

__all__ = ["RiemannianAdam", "RiemannianAdamW"]


class RiemannianAdam(RiemannianOptimizer):
    r"""Adam on manifolds (Bécigneul & Ganea, ICLR 2019), with geoopt's conventions.

    For a parameter on a manifold with Riemannian gradient ``r`` at ``x``:

    * first moment ``m <- beta1 m + (1 - beta1) r`` (a tangent vector at ``x``);
    * second moment ``v <- beta2 v + (1 - beta2) <r, r>_x``, one scalar per point
      (the manifold's ``component_inner``), since coordinates of a curved point
      have no separate meaning;
    * ``x, m <- retr_transp(x, -lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps), m)``.

    ``weight_decay`` adds ``weight_decay * (-log_x(o))`` to ``r`` (the gradient of
    ``weight_decay * d(x, o)^2 / 2``; Adam's coupled L2). With ``decoupled=True``
    (:class:`RiemannianAdamW`) the point is instead moved the fraction
    ``lr * weight_decay`` of the way along the geodesic to the origin after each
    step, and ``m`` is transported along; in Euclidean space that is AdamW's
    ``x <- (1 - lr * wd) x``.

    Parameters without a manifold, or on a Euclidean one, are updated by
    :func:`torch.optim.adam.adam`: they follow :class:`torch.optim.Adam`
    (:class:`torch.optim.AdamW` when decoupled) exactly.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: ``(beta1, beta2)`` in ``[0, 1)``.
        eps: added to the square root of the second moment.
        weight_decay: decay factor (see above).
        amsgrad: keep the running maximum of the second moment.
        decoupled: AdamW-style decoupled weight decay.
        stabilize: every this many steps re-project manifold parameters and their
            first moments (``None``: never).
        foreach: see :class:`~hypervldd.optim.RiemannianSGD`.

    >>> import torch, geoopt
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.optim import RiemannianAdam
    >>> ball = PoincareBall()
    >>> x = geoopt.ManifoldParameter(torch.tensor([[0.5, 0.0]]), manifold=ball)
    >>> w = torch.nn.Parameter(torch.ones(2))  # ordinary parameters work as in torch.optim.Adam
    >>> opt = RiemannianAdam([x, w], lr=0.1)
    >>> for _ in range(50):
    ...     opt.zero_grad()
    ...     (ball.dist0(x).pow(2).sum() + w.sum()).backward()
    ...     opt.step()
    >>> bool(ball.dist0(x) < 0.1), bool((w < 1).all())
    (True, True)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        decoupled: bool = False,
        stabilize: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_hparams(lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled=decoupled,
            stabilize=check_stabilize(stabilize),
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("stabilize", None)
            group.setdefault("foreach", None)
            group.setdefault("amsgrad", False)
            group.setdefault("decoupled", False)

    def _init_state(self, p: torch.Tensor, second_shape: tuple[int, ...] | None) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if second_shape is None:
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            else:
                state["exp_avg_sq"] = p.new_zeros(second_shape)
            if self._amsgrad(p):
                state["max_exp_avg_sq"] = torch.zeros_like(state["exp_avg_sq"])
        return state

    def _amsgrad(self, p: torch.Tensor) -> bool:
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return bool(group["amsgrad"])
        return False

    def _flat_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        states = [self._init_state(p, None) for p in params]
        for p in params:
            if p.grad.is_sparse:
                raise ValueError("RiemannianAdam does not support sparse gradients")
        beta1, beta2 = group["betas"]
        _torch_adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
            [s["step"] for s in states],
            foreach=group["foreach"],
            decoupled_weight_decay=group["decoupled"],
            amsgrad=group["amsgrad"],
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    def _count_step(self, p: torch.Tensor, m: Any) -> dict[str, Any]:
        # One second-moment scalar per point: the manifold's trailing ``ndim``
        # dimensions collapse to 1 (as component_inner returns them).
        nd = min(max(int(getattr(m, "ndim", 1)), 1), p.dim())
        shape = (*p.shape[: p.dim() - nd], *([1] * nd))
        state = self._init_state(p, shape)
        state["step"] += 1
        return state

    def _update(self, group: dict[str, Any], m: Any, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        amsgrad = group["amsgrad"]
        states = [self.state[p] for p in params]
        wd_t = work_dtype(m, params[0].dtype)
        x = authoritative(m, gather([p.detach() for p in params], wd_t))
        g = gather([p.grad for p in params], wd_t)
        exp_avg = authoritative_tangent(m, x, gather([s["exp_avg"] for s in states], wd_t))
        exp_avg_sq = gather([s["exp_avg_sq"] for s in states], wd_t)
        r = riemannian_grad(m, x, g)
        if wd != 0 and not group["decoupled"]:
            r = r + wd * decay_direction(m, x)
        step = int(states[0]["step"])
        exp_avg = exp_avg.lerp(r, 1.0 - beta1)
        sq = sq_norm(m, x, r).to(exp_avg_sq.dtype)
        exp_avg_sq = exp_avg_sq * beta2 + (1.0 - beta2) * sq
        bias1 = 1.0 - beta1**step
        bias2 = 1.0 - beta2**step
        if amsgrad:
            max_sq = torch.maximum(gather([s["max_exp_avg_sq"] for s in states], wd_t), exp_avg_sq)
            denom = (max_sq / bias2).sqrt() + eps
        else:
            max_sq = None
            denom = (exp_avg_sq / bias2).sqrt() + eps
        direction = exp_avg / denom
        new_x, exp_avg = retr_transp(m, x, -(lr / bias1) * direction, exp_avg, params[0].dtype)
        if wd != 0 and group["decoupled"]:
            new_x, carry = shrink_to_origin(m, new_x, lr * wd)
            exp_avg = carry(exp_avg)
        new_x, exp_avg = restabilized(m, new_x, exp_avg, step, group["stabilize"])

        def scatter(t: torch.Tensor, dsts: list[torch.Tensor]) -> None:
            for dst, piece in zip(dsts, pieces(params, t), strict=True):
                dst.copy_(piece.reshape(dst.shape))

        scatter(to_param_dtype(m, new_x, params[0].dtype), params)
        scatter(exp_avg, [s["exp_avg"] for s in states])
        scatter(exp_avg_sq, [s["exp_avg_sq"] for s in states])
        if max_sq is not None:
            scatter(max_sq, [s["max_exp_avg_sq"] for s in states])


class RiemannianAdamW(RiemannianAdam):
    """:class:`RiemannianAdam` with decoupled weight decay (default ``1e-2``, as AdamW).

    Manifold parameters are moved the fraction ``lr * weight_decay`` of the way
    along the geodesic to the origin after each step; other parameters follow
    :class:`torch.optim.AdamW` exactly.

    >>> import torch, geoopt
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.optim import RiemannianAdamW
    >>> m = Lorentz()
    >>> x = geoopt.ManifoldParameter(m.lift(torch.tensor([[1.0, 0.0]])), manifold=m)
    >>> opt = RiemannianAdamW([x], lr=0.1, weight_decay=0.5)
    >>> x.grad = torch.zeros_like(x)  # decay alone: a geodesic shrink towards the origin
    >>> opt.step()
    >>> bool(m.dist0(x) < 1.0), round(m.inner(x, x).item(), 4)
    (True, -1.0)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        stabilize: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled=True,
            stabilize=stabilize,
            foreach=foreach,
        )
