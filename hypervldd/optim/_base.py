"""What the Riemannian optimisers share: the step loop, the buckets, gathering and scattering.

A step splits each group's parameters into flat ones (torch's own kernel) and
manifold ones; manifold parameters that share a manifold, dtype, device and last
dimension are updated together as one ``(rows, D)`` tensor (:func:`gather`), and
the result is cut back into the parameters' own shapes (:func:`pieces`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._common import bucket_key, no_validation, rows, split_params


class RiemannianOptimizer(torch.optim.Optimizer):
    """The step loop of :class:`~hypervldd.optim.RiemannianSGD` and ``RiemannianAdam``.

    Subclasses give ``_flat_step(group, params)`` (torch's kernel on the flat
    parameters), ``_count_step(p, m)`` (the parameter's state, its ``"step"`` counter
    advanced) and ``_update(group, m, params)`` (one bucket of manifold parameters).
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one optimisation step; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            flat, curved = split_params(group["params"])
            if flat:
                self._flat_step(group, flat)
            if curved:
                with no_validation():
                    self._curved_step(group, curved)
        return loss

    def _flat_step(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def _count_step(self, p: torch.Tensor, m: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, group: dict[str, Any], m: Any, params: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def _curved_step(self, group: dict[str, Any], pairs: list[tuple[torch.Tensor, Any]]) -> None:
        use_foreach = group["foreach"] is not False
        buckets: dict[Any, list[tuple[torch.Tensor, Any]]] = {}
        for p, m in pairs:
            state = self._count_step(p, m)
            key = bucket_key(m, p, int(state["step"])) if use_foreach else None
            if key is None:
                self._update(group, m, [p])
            else:
                buckets.setdefault(key, []).append((p, m))
        for members in buckets.values():
            self._update(group, members[0][1], [p for p, _ in members])


def gather(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """One tensor per parameter as one plain ``(rows, D)`` tensor in ``dtype``.

    A lone tensor keeps its own shape (and, when ``dtype`` is its own, its storage).
    """
    if len(tensors) == 1:
        return tensors[0].as_subclass(torch.Tensor).to(dtype)
    return torch.cat([rows(t) for t in tensors]).as_subclass(torch.Tensor).to(dtype)


def pieces(params: list[torch.Tensor], t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` (as :func:`gather` made it) cut into one piece per parameter (not reshaped)."""
    if len(params) == 1:
        return [t]
    return list(t.split([p.numel() // p.shape[-1] for p in params]))


def restabilized(
    m: Any, x: torch.Tensor, u: torch.Tensor | None, step: int, every: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every ``every`` steps, ``x`` projected onto the manifold and ``u`` onto its tangent space."""
    if every is None or step % every != 0:
        return x, u
    x = m.projx(x)
    return x, None if u is None else m.proju(x, u)
