"""Shared machinery of the Riemannian optimisers.

A parameter is *on a manifold* when it carries a ``manifold`` attribute, as
:class:`geoopt.ManifoldParameter` does (with a hypervldd manifold or one of
geoopt's). Parameters without one, and parameters on a Euclidean manifold, are
handed to ``torch.optim``'s own functional kernels, so their trajectory is
exactly that of :class:`torch.optim.SGD`, :class:`~torch.optim.Adam` or
:class:`~torch.optim.AdamW` with the same hyper-parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .._checks import validation
from ..manifolds import Euclidean, Lorentz, PoincareBall
from ..manifolds import lorentz_math as _lm
from ..manifolds.base import Manifold as _OurManifold
from ..numerics import max_radius

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import geoopt

__all__ = [
    "manifold_of",
    "is_flat",
    "riemannian_grad",
    "shrink_to_origin",
    "decay_direction",
    "transport",
    "retr_transp",
    "retr",
    "to_param_dtype",
]


def manifold_of(p: torch.Tensor) -> geoopt.Manifold | None:
    """The manifold a parameter lives on, or ``None`` for an ordinary tensor.

    >>> import torch, geoopt
    >>> from hypervldd.manifolds import PoincareBall
    >>> from hypervldd.optim import manifold_of
    >>> p = geoopt.ManifoldParameter(torch.zeros(2), manifold=PoincareBall())
    >>> type(manifold_of(p)).__name__, manifold_of(torch.zeros(2))
    ('PoincareBall', None)
    """
    m = getattr(p, "manifold", None)
    if m is None:
        return None
    if not isinstance(m, geoopt.Manifold):
        raise TypeError(
            f"parameter of shape {tuple(p.shape)} has a manifold attribute of type "
            f"{type(m).__name__}, expected a geoopt.Manifold (or a hypervldd manifold)"
        )
    return m


def is_flat(m: geoopt.Manifold | None) -> bool:
    """Whether updates on ``m`` are plain Euclidean ones (handled by torch's kernels)."""
    return m is None or isinstance(m, (Euclidean, geoopt.Euclidean))


def sq_norm(m: geoopt.Manifold, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Riemannian squared norm ``<u, u>_x`` of a tangent vector, one value per point.

    On the hyperboloid ``<u, u>_L = |u_s|^2 - u_0^2`` is a difference of two numbers
    of size ``x_0^2 |u|^2`` far from the origin: in float32 at radius 12 it comes out
    negative or zero, and Adam then divides by ``eps``. With ``u_0 = x_s.u_s / x_0``
    (tangency) it equals ``|u_perp|^2 + (x_hat.u_s)^2 / (c x_0^2)``, a sum of two
    non-negative terms (``u_perp`` the part of ``u_s`` orthogonal to ``x_s``).
    Other manifolds use their ``component_inner``, clamped at 0.
    """
    if isinstance(m, Lorentz) and u.dim() > 0:
        c = m._c(u)
        xs, us = x[..., 1:], u[..., 1:]
        xn = torch.linalg.vector_norm(xs, dim=-1, keepdim=True)
        xhat = xs / torch.where(xn > 0, xn, torch.ones_like(xn))
        along = (xhat * us).sum(-1, keepdim=True)
        perp = us - along * xhat
        x0 = torch.sqrt(1.0 / c + xn * xn)
        return (perp * perp).sum(-1, keepdim=True) + along * along / (c * x0 * x0)
    return m.component_inner(x, u).clamp_min(0.0)


def riemannian_grad(m: geoopt.Manifold, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Riemannian gradient of ``p`` without touching ``g``.

    geoopt's Lorentz ``egrad2rgrad`` flips the sign of the time component of its
    argument in place, which would corrupt ``p.grad``; its manifolds therefore
    receive a copy. Ours never write to their inputs.
    """
    if isinstance(m, _OurManifold):
        return m.egrad2rgrad(p, g)
    return m.egrad2rgrad(p, g.clone())


def _origin_like(m: geoopt.Manifold, p: torch.Tensor) -> torch.Tensor:
    try:
        o = m.origin(*p.shape, dtype=p.dtype, device=p.device)
    except (AttributeError, NotImplementedError, TypeError) as err:
        raise ValueError(
            f"weight_decay on a {type(m).__name__} parameter needs manifold.origin(); "
            "set weight_decay=0 for this parameter group"
        ) from err
    return o.as_subclass(torch.Tensor) if isinstance(o, torch.Tensor) else o


def decay_direction(m: geoopt.Manifold, p: torch.Tensor) -> torch.Tensor:
    """Riemannian gradient of ``d(p, o)^2 / 2``: ``-log_p(o)``, the manifold's L2 penalty.

    In Euclidean space this is ``p`` itself, so ``grad + weight_decay * decay_direction``
    is torch's coupled L2 weight decay carried over to the manifold.
    """
    o = _origin_like(m, p)
    return -m.logmap(p, o)


def shrink_to_origin(
    m: geoopt.Manifold, p: torch.Tensor, fraction: float
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Move ``p`` the given fraction of the way along the geodesic to the origin.

    The decoupled weight decay of AdamW on a manifold: ``exp_p(f log_p(o))``, which
    is ``(1 - f) p`` in Euclidean space. Returns the new point and a function
    that parallel-transports tangent vectors from ``p`` to it.
    """
    o = _origin_like(m, p)
    new = m.expmap(p, fraction * m.logmap(p, o))
    return new, lambda v: transport(m, p, new, v)


def transport(
    m: geoopt.Manifold, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Parallel transport of ``v`` from ``x`` to ``y``, robust near the ball's boundary.

    The Poincaré gyration divides by ``1 - 2c<x, y> + c^2|x|^2|y|^2``, about
    ``(1 - c|x|^2)^2`` for close points: ~1e-9 at the float32 projection margin,
    where float32 cancels to 0 and the transported momentum overflows. For
    float32 points on the ball the transport is therefore evaluated in float64.
    """
    if isinstance(m, PoincareBall) and v.dtype != torch.float64:
        return m.transp(x.double(), y.double(), v.double()).to(v.dtype)
    return m.transp(x, y, v)


def retr_transp(
    m: geoopt.Manifold,
    x: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Retract ``x`` along ``u`` and transport ``v`` to the new point (see :func:`transport`).

    ``dtype``: the parameter's dtype when the update runs in a wider one; on the
    Lorentz model the new point is then kept within that dtype's radius cap
    (:func:`_capped_retr`) and ``v`` is transported to the capped point.
    """
    if isinstance(m, PoincareBall):
        y = m.retr(x, u)
        y, v2 = y, transport(m, x, y, v)
    elif _needs_cap(m, x, dtype):
        y = _capped_retr(m, x, u, dtype)
        v2 = m.transp(x, y, v)
    else:
        y, v2 = m.retr_transp(x, u, v)
    return _keep_still(x, u, v, y, v2)


def retr(
    m: geoopt.Manifold, x: torch.Tensor, u: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Retract ``x`` along ``u``; points with a zero step stay exactly where they are."""
    y = _capped_retr(m, x, u, dtype) if _needs_cap(m, x, dtype) else m.retr(x, u)
    return _keep_still(x, u, None, y, None)[0]


def _needs_cap(m: geoopt.Manifold, x: torch.Tensor, dtype: torch.dtype | None) -> bool:
    return isinstance(m, Lorentz) and dtype is not None and dtype != x.dtype


def _capped_retr(
    m: geoopt.Manifold, x: torch.Tensor, u: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    # expmap caps at the radius of the work dtype (319 in float64); a float32
    # parameter can hold only 39.9, and a point past it becomes inf when cast.
    return _lm.clip_radius(m.retr(x, u), m._c(x), max_radius(dtype))


def _keep_still(
    x: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor | None,
    y: torch.Tensor,
    v2: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    # geoopt's Lorentz expmap floors |u| at 1e-4, so a zero step still scales x
    # by cosh(1e-4) and walks it off the hyperboloid; a point whose step is
    # exactly zero (zero gradient, no momentum) keeps its coordinates instead.
    if x.dim() == 0 or u.shape != x.shape:
        return y, v2
    still = (u == 0).all(dim=-1, keepdim=True)
    y = torch.where(still, x.to(y.dtype), y)
    if v is not None and v2 is not None:
        v2 = torch.where(still, v.to(v2.dtype), v2)
    return y, v2


def bucket_key(m: geoopt.Manifold, p: torch.Tensor, step: int) -> tuple[Any, ...] | None:
    """Key under which parameters can be updated together as one ``(rows, D)`` tensor.

    Only manifolds acting row-wise on the last dimension (``ndim <= 1``) qualify;
    the step count is part of the key because bias corrections depend on it.
    """
    if getattr(m, "ndim", 1) > 1 or p.dim() == 0:
        return None
    return (id(m), p.dtype, p.device, p.shape[-1], step)


def work_dtype(m: geoopt.Manifold, dtype: torch.dtype) -> torch.dtype:
    """Dtype in which a manifold update runs.

    Updates on hypervldd's hyperbolic manifolds run in float64 for lower-precision
    parameters: far from the origin the ambient coordinates of tangent vectors are
    ``x_0`` times larger than their norms, and the float32 transport of Adam's
    first moment (``v + c<y, v>_L / (1 - c<x, y>_L) (x + y)``) cancels to garbage
    at radius ~10. The cost is one elementwise float64 pass over the parameters;
    the result is rounded once when written back.
    """
    if isinstance(m, (Lorentz, PoincareBall)) and dtype != torch.float64:
        return torch.float64
    return dtype


def authoritative(m: geoopt.Manifold, x: torch.Tensor) -> torch.Tensor:
    """The point the update starts from: on hypervldd's Lorentz model, time re-derived.

    The space part is authoritative in this package. A float32 time coordinate at
    radius 12 carries an absolute error of ~5e-3, so ``<x, x>_L`` is off by
    hundreds and the tangent projection of the gradient collapses to zero; the
    re-derived time (in the float64 working dtype) puts ``x`` back on the manifold.
    """
    return m.projx(x) if isinstance(m, Lorentz) else x


def authoritative_tangent(m: geoopt.Manifold, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A stored tangent vector (momentum) at ``x``, time component re-derived on Lorentz.

    Far from the origin a unit tangent vector has ambient coordinates of size
    ``x_0``; stored in float32, its time component is off by ``eps x_0``, and the
    tangent projection ``u + c<x, u>_L x`` would turn that into an error of
    Riemannian size ``eps x_0^2`` (hundreds at radius 12). Re-deriving
    ``u_0 = x_s . u_s / x_0`` from tangency keeps the error at ``eps``.
    """
    if isinstance(m, Lorentz) and u.dim() > 0:
        xs, us = x[..., 1:], u[..., 1:]
        u0 = (xs * us).sum(-1, keepdim=True) / x[..., :1]
        return torch.cat([u0, us], dim=-1)
    return u


def to_param_dtype(m: geoopt.Manifold, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The updated point ``x`` (work dtype) as a valid point of the parameter's ``dtype``.

    The update runs in float64 (:func:`work_dtype`); rounding its result is not
    enough. A float64 point inside the ball can round onto the float32 boundary
    ``c|x|^2 = 1`` (where ``dist`` raises), so Poincaré points are projected after
    the cast. A Lorentz point may lie up to the float64 radius cap (319), far past
    float32's (39.9, whose coordinates already reach 1e17), so it is clipped to the
    parameter dtype's cap first and its time coordinate re-derived after the cast.
    """
    if isinstance(m, Lorentz):
        c = m._c(x)
        x = _lm.clip_radius(x, c, max_radius(dtype)).to(dtype)
        return m.projx(x)
    if isinstance(m, PoincareBall):
        return m.projx(x.to(dtype))
    return x.to(dtype)


def rows(t: torch.Tensor) -> torch.Tensor:
    """View (or copy) of ``t`` as ``(rows, last_dim)``."""
    return t.reshape(-1, t.shape[-1])


def no_validation() -> Any:
    """Context in which hypervldd manifolds skip their data-dependent input checks.

    The optimiser only feeds them points it produced itself; the checks would cost
    a host synchronisation per call.
    """
    return validation(False)


def check_hparams(**kwargs: float) -> None:
    """Raise a ``ValueError`` naming the first invalid hyper-parameter.

    ``beta1``/``beta2`` must lie in ``[0, 1)``; everything else must be finite and ``>= 0``.
    """
    for name, value in kwargs.items():
        value = float(value)
        if name in ("beta1", "beta2"):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        elif not (0.0 <= value < float("inf")):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def check_stabilize(stabilize: int | None) -> int | None:
    if stabilize is None:
        return None
    if isinstance(stabilize, bool) or not isinstance(stabilize, int) or stabilize < 1:
        raise ValueError(f"stabilize must be None or a positive int (steps), got {stabilize!r}")
    return stabilize


def split_params(
    params: Iterable[torch.Tensor],
) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, geoopt.Manifold]]]:
    """Split parameters with a gradient into flat ones and ``(param, manifold)`` pairs."""
    flat: list[torch.Tensor] = []
    curved: list[tuple[torch.Tensor, geoopt.Manifold]] = []
    for p in params:
        if p.grad is None:
            continue
        m = manifold_of(p)
        if is_flat(m):
            flat.append(p)
        else:
            if p.grad.is_sparse:
                raise ValueError(
                    f"sparse gradients are not supported for manifold parameters (shape "
                    f"{tuple(p.shape)}); build the embedding with sparse=False"
                )
            curved.append((p, m))
    return flat, curved
