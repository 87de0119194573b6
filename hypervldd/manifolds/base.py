"""The common manifold interface: a thin layer over the pure math modules.

Every class here subclasses :class:`geoopt.Manifold`, so a
:class:`geoopt.ManifoldParameter` built on one of them trains with geoopt's
Riemannian optimisers as well as with :mod:`hypervldd.optim`. Methods validate
their inputs (shapes, NaN/inf, points off the manifold) when
:func:`hypervldd.validation_enabled` is true; the math modules never do, so
layers and kernels call those directly in their hot paths.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

with warnings.catch_warnings():
    # geoopt 0.5 decorates its math with torch.jit.script, deprecated in torch 2.14.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import geoopt

from .._checks import check_finite, check_tensor, validation, validation_enabled
from ..numerics import manifold_rtol
from .curvature import Curvature

__all__ = ["Manifold"]


class Manifold(geoopt.Manifold):
    """Base class: curvature handling, validation and the geoopt hooks.

    Subclasses set ``name``, implement the math methods, and
    :meth:`_residual` (the on-manifold check) and :meth:`_tangent_residual`.

    >>> import torch
    >>> from hypervldd.manifolds import Manifold, Lorentz
    >>> m = Lorentz(c=1.0)
    >>> isinstance(m, Manifold), round(float(m.c), 4)
    (True, 1.0)
    >>> x = m.check_point(m.lift(torch.zeros(2, 3)))  # raises ValueError when off the manifold
    """

    ndim = 1
    reversible = False
    name = "Manifold"
    #: Whether points carry one extra ambient coordinate (Lorentz time).
    extra_dim = 0

    def __init__(
        self,
        c: float = 1.0,
        *,
        learnable: bool = False,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.curvature = Curvature(c, learnable=learnable, bounds=bounds)

    # -- curvature --------------------------------------------------------------
    @property
    def c(self) -> torch.Tensor:
        """Curvature magnitude as a 0-d tensor (curvature ``-c``; ``+c`` on the sphere)."""
        return self.curvature()

    def _c(self, like: torch.Tensor) -> torch.Tensor:
        return self.c.to(dtype=_compute(like), device=like.device)

    # -- validation -------------------------------------------------------------
    def _point(self, x: Any, name: str) -> torch.Tensor:
        x = check_tensor(x, name)
        check_finite(x, name)
        if validation_enabled() and x.numel() > 0:
            # no_grad: a learnable curvature must not pull the check into the graph
            with torch.no_grad():
                ok, reason = self._check_point_on_manifold(
                    x.detach(), atol=0.0, rtol=manifold_rtol(x.dtype)
                )
            if not ok:
                raise ValueError(f"{name} is not on the {self.name} manifold: {reason}")
        return x

    def _vector(self, u: Any, name: str) -> torch.Tensor:
        u = check_tensor(u, name)
        check_finite(u, name)
        return u

    def _same_dim(self, *pairs: tuple[torch.Tensor, str]) -> None:
        dims = {name: t.shape[-1] for t, name in pairs}
        if len(set(dims.values())) > 1:
            raise ValueError(f"last dimensions must match, got {dims}")
        shapes = [t.shape[:-1] for t, _ in pairs]
        try:
            torch.broadcast_shapes(*shapes)
        except RuntimeError as err:
            got = {name: tuple(t.shape) for t, name in pairs}
            raise ValueError(f"batch shapes must broadcast, got {got}") from err

    def check_point(self, x: torch.Tensor, name: str = "x", *, explain: bool | None = None) -> Any:
        """Raise a ``ValueError`` naming ``name`` unless ``x`` is a finite point on the manifold.

        Returns ``x``. Given geoopt's ``explain=`` keyword it is geoopt's shape check
        instead, which raises nothing: ``bool``, or ``(bool, reason)`` when ``explain``.

        >>> import torch
        >>> from hypervldd.manifolds import PoincareBall
        >>> ball = PoincareBall()
        >>> ball.check_point(torch.tensor([0.5, 0.0])).tolist()
        [0.5, 0.0]
        >>> ball.check_point(torch.tensor(0.5), explain=True)  # geoopt's form: no raise
        (False, "'x' on the PoincareBall(c=1) manifold requires more than 1 dim")
        """
        if explain is not None:
            return super().check_point(x, explain=explain)
        with validation(True):
            return self._point(x, name)

    def _check_point_on_manifold(
        self, x: torch.Tensor, *, atol: float = 0.0, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        return self._residual(x, rtol)

    def _check_vector_on_tangent(
        self, x: torch.Tensor, u: torch.Tensor, *, atol: float = 0.0, rtol: float = 1e-5
    ) -> tuple[bool, str | None]:
        return self._tangent_residual(x, u, rtol)

    def _residual(self, x: torch.Tensor, rtol: float) -> tuple[bool, str | None]:
        raise NotImplementedError

    def _tangent_residual(
        self, x: torch.Tensor, u: torch.Tensor, rtol: float
    ) -> tuple[bool, str | None]:
        raise NotImplementedError

    # -- the shared public surface ------------------------------------------------
    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Retraction: the exponential map (exact and cheap on these manifolds)."""
        return self.expmap(x, u)

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.transp(x, self.retr(x, u), v)

    def transp_follow_expmap(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        return self.transp(x, self.expmap(x, u), v)

    def expmap_transp(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.expmap(x, u)
        return y, self.transp(x, y, v)

    def retr_transp(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.expmap_transp(x, u, v)

    def extra_repr(self) -> str:
        return self.curvature.extra_repr()


def _compute(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32
