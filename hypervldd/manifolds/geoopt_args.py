"""geoopt's calling conventions on this package's classes: ``dim=``, sizes, ManifoldTensor results.

geoopt methods take ``dim=`` (the axis holding a point's coordinates) and build points
from a ``*size`` that may be ints or one tuple, returning :class:`geoopt.ManifoldTensor`.
The math modules here always work on the last axis, so :func:`along_dim` moves the
named axis last, calls the method, and moves it back: one rule for every method instead
of a ``dim`` threaded through each formula.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from .base import geoopt

__all__ = ["along_dim", "last_dim", "manifold_tensor", "point_size"]

F = TypeVar("F", bound=Callable[..., Any])


def last_dim(dim: Any, x: torch.Tensor) -> int | None:
    """Check ``dim`` against ``x``; ``None`` when it is the last axis, else its negative index.

    >>> import torch
    >>> from hypervldd.manifolds.geoopt_args import last_dim
    >>> last_dim(1, torch.zeros(4, 3)), last_dim(0, torch.zeros(4, 3))
    (None, -2)
    """
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int (the axis of the coordinates), got {dim!r}")
    n = x.dim()
    if not -n <= dim < n:
        raise ValueError(
            f"dim must be in [{-n}, {n - 1}] for a tensor of shape {tuple(x.shape)}, got {dim}"
        )
    d = dim - n if dim >= 0 else dim
    return None if d == -1 else d


def along_dim(*moved: str, reduces: bool = False) -> Callable[[F], F]:
    """Give a last-axis method geoopt's ``dim=``: the named tensor arguments are moved.

    The decorated method declares ``dim: int = -1`` itself (so its signature is geoopt's)
    and is always called with ``dim=-1``. The first tensor named in ``moved`` fixes the rank;
    arguments of lower rank (scalars, a ``t`` without the coordinate axis) stay as they
    are. ``reduces``: the result lost the coordinate axis unless ``keepdim=True``.

    >>> import torch
    >>> from hypervldd.manifolds import PoincareBall
    >>> ball = PoincareBall()
    >>> x = ball.random(4, 3, dtype=torch.float64)
    >>> torch.allclose(ball.dist0(x.T, dim=0), ball.dist0(x))
    True
    """

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            dim = kwargs.get("dim", -1)
            if dim == -1 and not isinstance(dim, bool):
                return fn(self, *args, **kwargs)
            bound = sig.bind(self, *args, **kwargs)
            arguments = bound.arguments
            tensors = [arguments.get(n) for n in moved]
            ref = next((t for t in tensors if isinstance(t, torch.Tensor)), None)
            if ref is None:
                raise TypeError(f"{moved[0]} must be a torch.Tensor, got {tensors[0]!r}")
            d = last_dim(dim, ref)
            arguments["dim"] = -1
            if d is None:
                return fn(*bound.args, **bound.kwargs)
            for name in moved:
                t = arguments.get(name)
                if isinstance(t, torch.Tensor) and t.dim() >= -d:
                    arguments[name] = t.movedim(d, -1)
            out = fn(*bound.args, **bound.kwargs)
            if reduces and not arguments.get("keepdim", False):
                return out
            if isinstance(out, tuple):
                return tuple(o.movedim(-1, d) for o in out)
            return out.movedim(-1, d)

        return method  # type: ignore[return-value]

    return wrap


def point_size(size: tuple, name: str = "size") -> tuple[int, ...]:
    """geoopt's ``*size``: ints, or one tuple / list / ``torch.Size``; at least one axis.

    >>> from hypervldd.manifolds.geoopt_args import point_size
    >>> point_size((2, 3)), point_size(((2, 3),))
    ((2, 3), (2, 3))
    """
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    if not size:
        # geoopt fails here too (IndexError or a shape error): a point of these 1-d
        # manifolds needs a coordinate axis, so there is no shape-() point to return.
        raise ValueError(
            f"{name} must include the coordinate axis (e.g. (N, D) or (D,)), got an empty size"
        )
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size):
        raise ValueError(f"{name} must be non-negative ints, got {size!r}")
    return tuple(size)


def manifold_tensor(x: torch.Tensor, manifold: Any) -> geoopt.ManifoldTensor:
    """Wrap points as geoopt does for ``origin`` / ``random``: ``.manifold`` is set.

    Tensors of another subclass (fake tensors while tracing) and calls inside
    ``torch.compile`` come back unwrapped: a subclass cannot be re-wrapped, and a
    compiled graph has no use for the attribute.

    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz()
    >>> type(m.origin(3)).__name__, m.origin(3).manifold is m
    ('ManifoldTensor', True)
    """
    if type(x) is not torch.Tensor or torch.compiler.is_compiling():
        return x
    return geoopt.ManifoldTensor(x, manifold=manifold)
