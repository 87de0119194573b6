"""Riemannian stochastic gradient descent with momentum and Nesterov momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.sgd import sgd as _torch_sgd

from ._base import RiemannianOptimizer, gather, pieces, restabilized
from ._common import (
    authoritative,
    authoritative_tangent,
    check_hparams,
    check_stabilize,
    decay_direction,
    retr,
    retr_transp,
    riemannian_grad,
    to_param_dtype,
    work_dtype,
)

__all__ = ["RiemannianSGD"]


class RiemannianSGD(RiemannianOptimizer):
    r"""SGD on manifolds: ``x <- exp_x(-lr * d)``, momentum carried by parallel transport.

    For a parameter on a manifold ``M`` (a :class:`geoopt.ManifoldParameter`) with
    Euclidean gradient ``g``:

    1. ``r = egrad2rgrad(x, g) + weight_decay * (-log_x(o))`` (the Riemannian gradient
       of the loss plus ``weight_decay * d(x, o)^2 / 2``, ``o`` the origin);
    2. ``b = momentum * b + (1 - dampening) * r`` (``b = r`` at the first step);
       the direction is ``d = r + momentum * b`` with Nesterov, else ``b``;
    3. ``x, b <- retr_transp(x, -lr * d, b)``: move along the geodesic and transport
       the momentum to the new point.

    Other parameters (no ``manifold`` attribute, or a Euclidean one) are updated
    by :func:`torch.optim.sgd.sgd`, so they follow :class:`torch.optim.SGD` exactly.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (units of the manifold's distance per unit gradient).
        momentum: momentum factor, ``>= 0``.
        dampening: dampening of the momentum.
        weight_decay: L2 penalty factor (``d(x, o)^2 / 2`` on manifolds).
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        stabilize: every this many steps, re-project manifold parameters onto the
            manifold and their momentum onto the tangent space (``None``: never).
        foreach: update all manifold parameters sharing a manifold, dtype, device
            and last dimension as one concatenated tensor, and pass ``foreach`` to
            torch's kernel for the others. ``None``: on for manifold parameters,
            torch's default for the others.

    >>> import torch, geoopt
    >>> from hypervldd.manifolds import Lorentz
    >>> from hypervldd.optim import RiemannianSGD
    >>> m = Lorentz()
    >>> x = geoopt.ManifoldParameter(m.lift(torch.tensor([[1.0, 0.0]])), manifold=m)
    >>> target = m.origin(1, 3)
    >>> opt = RiemannianSGD([x], lr=0.5)
    >>> for _ in range(20):
    ...     opt.zero_grad()
    ...     m.dist(x, target).pow(2).sum().backward()
    ...     opt.step()
    >>> round(m.dist(x, target).item(), 3), round(m.inner(x, x).item(), 4)  # still on the manifold
    (0.0, -1.0)
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        stabilize: int | None = None,
        foreach: bool | None = None,
    ) -> None:
        check_hparams(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening == 0, got momentum={momentum}"
                f" and dampening={dampening}"
            )
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            stabilize=check_stabilize(stabilize),
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("stabilize", None)
            group.setdefault("foreach", None)
            group.setdefault("nesterov", False)

    def _flat_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        bufs = [self.state[p].get("momentum_buffer") for p in params]
        _torch_sgd(
            params,
            [p.grad for p in params],
            bufs,
            has_sparse_grad=any(p.grad.is_sparse for p in params),
            foreach=group["foreach"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=False,
        )
        if group["momentum"] != 0:
            for p, b in zip(params, bufs, strict=True):
                self.state[p]["momentum_buffer"] = b

    def _count_step(self, p: torch.Tensor, m: Any) -> dict[str, Any]:
        state = self.state[p]
        if "step" not in state:
            state["step"] = torch.tensor(0.0)
        state["step"] += 1
        return state

    def _update(self, group: dict[str, Any], m: Any, params: list[torch.Tensor]) -> None:
        momentum, dampening = group["momentum"], group["dampening"]
        lr, wd = group["lr"], group["weight_decay"]
        # One (rows, D) problem per bucket; a lone parameter keeps its own shape.
        wd_t = work_dtype(m, params[0].dtype)
        x = authoritative(m, gather([p.detach() for p in params], wd_t))
        g = gather([p.grad for p in params], wd_t)
        r = riemannian_grad(m, x, g)
        if wd != 0:
            r = r + wd * decay_direction(m, x)
        bufs = [self.state[p].get("momentum_buffer") for p in params]
        if momentum != 0:
            if any(b is None for b in bufs):
                buf = r.clone()
            else:
                buf = authoritative_tangent(m, x, gather(bufs, wd_t))
                buf = momentum * buf + (1.0 - dampening) * r
            d = r + momentum * buf if group["nesterov"] else buf
            new_x, buf = retr_transp(m, x, -lr * d, buf, params[0].dtype)
        else:
            new_x, buf = retr(m, x, -lr * r, params[0].dtype), None
        step = int(self.state[params[0]]["step"])
        new_x, buf = restabilized(m, new_x, buf, step, group["stabilize"])
        new_x = to_param_dtype(m, new_x, params[0].dtype)
        for p, piece in zip(params, pieces(params, new_x), strict=True):
            p.copy_(piece.reshape(p.shape))
        if buf is not None:
            for p, piece in zip(params, pieces(params, buf), strict=True):
                piece = piece.reshape(p.shape).to(p.dtype)
                st = self.state[p]
                if st.get("momentum_buffer") is None:
                    st["momentum_buffer"] = piece.clone()
                else:
                    st["momentum_buffer"].copy_(piece)
