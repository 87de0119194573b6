"""Input validation shared by every layer of the package.

All checks raise ``ValueError`` (or ``TypeError`` for wrong types) with a message
that names the argument and states what was expected. Data-dependent checks
(NaN/inf, on-manifold residuals, the sign of a curvature tensor) need a host
sync; they can be switched off globally for compiled or performance-critical
code with :func:`set_validation` or the :func:`validation` context manager.

Tensors without values (fake tensors under ``FakeTensorMode``, meta tensors) pass
the data-dependent checks unchecked: there is nothing to read, and reading would
raise inside the tracer. Shape, dtype and device checks still run on them, so a
device mix-up is still caught. On a real GPU every data-dependent check is a host
sync (a few microseconds plus a pipeline stall); hot loops turn validation off.
See ``docs/geometry.md`` (Validation).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch
from torch._subclasses.fake_tensor import FakeTensor

from .numerics import manifold_rtol

__all__ = [
    "set_validation",
    "validation",
    "validation_enabled",
    "check_tensor",
    "check_finite",
    "check_curvature",
    "check_last_dim",
    "check_same_device",
    "has_values",
]


class _State(threading.local):
    # A class default: a missing thread-local attribute would raise and catch an
    # AttributeError on every call (measured: +6 us around a 60 us op at N = 8).
    enabled = True


_state = _State()


def _fake_mode_active() -> bool:
    return torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None


def has_values(*tensors: torch.Tensor) -> bool:
    """Whether the values of ``tensors`` can be read on the host.

    ``False`` for fake and meta tensors and while a ``FakeTensorMode`` is active
    (every tensor made there is fake), ``True`` for CPU and real CUDA tensors.
    """
    if _fake_mode_active():
        return False
    return not any(t.is_meta or isinstance(t, FakeTensor) for t in tensors)


def validation_enabled() -> bool:
    """Whether data-dependent input checks run (default: ``True``).

    ``False`` while compiling and under an active ``FakeTensorMode``, whatever
    :func:`set_validation` says: no values exist there to be checked.

    >>> import hypervldd
    >>> hypervldd.validation_enabled()
    True
    """
    if torch.compiler.is_compiling() or _fake_mode_active():
        return False
    return _state.enabled


def set_validation(enabled: bool) -> None:
    """Turn data-dependent input checks on or off for this thread.

    >>> import hypervldd
    >>> hypervldd.set_validation(False)
    >>> hypervldd.validation_enabled()
    False
    >>> hypervldd.set_validation(True)
    """
    _state.enabled = bool(enabled)


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager that sets :func:`validation_enabled` within its block.

    >>> import torch, hypervldd
    >>> m = hypervldd.Lorentz()
    >>> off = torch.tensor([[1.0, 1.0]])  # not on the hyperboloid
    >>> with hypervldd.validation(False):  # no check, no host sync
    ...     d = m.dist(off, off)
    >>> hypervldd.validation_enabled()
    True
    """
    # The thread's own setting, not validation_enabled(): leaving a block entered
    # under a fake mode or while compiling must not switch validation off for good.
    previous = _state.enabled
    set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def check_tensor(x: object, name: str, *, min_dim: int = 1) -> torch.Tensor:
    """Require a floating-point tensor with at least ``min_dim`` dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}"
        )
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``x`` holds NaN or inf (skipped when validation is off)."""
    if not (validation_enabled() and x.numel() > 0 and has_values(x)):
        return x
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} must be finite, but it holds {n_nan} NaN and {n_inf} inf value(s)"
        )
    return x


def check_curvature(c: float | torch.Tensor, name: str = "c") -> float | torch.Tensor:
    """Require a curvature magnitude ``c > 0`` (curvature ``-c``), finite."""
    if isinstance(c, torch.Tensor):
        if not c.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {c.dtype}")
        if validation_enabled() and c.numel() > 0 and has_values(c):
            if not bool(torch.isfinite(c).all()) or not bool((c > 0).all()):
                raise ValueError(
                    f"{name} must be a finite positive curvature magnitude (curvature -{name}),"
                    f" got {c.detach().flatten()[:4].tolist()}"
                )
        return c
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise TypeError(f"{name} must be a float or a tensor, got {type(c).__name__}")
    c = float(c)
    if not (c > 0) or c == float("inf"):
        raise ValueError(
            f"{name} must be a finite positive curvature magnitude (curvature -{name}), got {c}"
        )
    return c


def check_last_dim(tensors: Sequence[tuple[torch.Tensor, str]], expected: int | None = None) -> int:
    """Require every tensor's last dimension to agree (and equal ``expected``)."""
    dims = {name: t.shape[-1] for t, name in tensors}
    values = set(dims.values())
    if expected is not None and values != {expected}:
        raise ValueError(f"expected last dimension {expected}, got {dims}")
    if len(values) > 1:
        raise ValueError(f"last dimensions must match, got {dims}")
    return values.pop()


def check_same_device(tensors: Sequence[tuple[torch.Tensor, str]]) -> torch.device:
    """Require all tensors on one device."""
    devices = {name: t.device for t, name in tensors}
    if len(set(devices.values())) > 1:
        raise ValueError(f"all inputs must be on one device, got {devices}")
    return next(iter(devices.values()))


__all__ += ["check_points", "POINT_MANIFOLDS"]

#: Manifolds whose point rule :func:`check_points` knows.
POINT_MANIFOLDS = ("lorentz", "poincare", "euclidean")


def _point_ok(x: torch.Tensor, manifold: str, c: float | torch.Tensor) -> torch.Tensor:
    """0-d flag of the point rule over all rows, computed in ``x``'s dtype (no float64
    copy) with few small ops: at small N the cost is per op, not per element.

    NaN anywhere makes the flag false (NaN compares false); so does inf, through the
    strict comparisons (``inf < inf`` is false).
    """
    if manifold == "euclidean":
        return torch.isfinite(x).all()
    # |x|^2 over all coordinates; not vecdot: autocast would run it in bfloat16.
    sq = (x * x).sum(-1)
    if manifold == "poincare":
        return (sq * c < 1.0).all()
    x0 = x[..., 0]
    mink = torch.addcmul(sq, x0, x0, value=-2.0)  # <x, x>_L
    # |c <x, x>_L + 1| < rtol (c |x|^2 + 1): the residual of Lorentz.check_point.
    res = (mink * c).add_(1.0).abs_()
    scale = (sq * c).add_(1.0).mul_(manifold_rtol(x.dtype))
    return ((res < scale) & (x0 > 0)).all()


def _point_error(x: torch.Tensor, name: str, manifold: str, c: torch.Tensor) -> ValueError:
    """The message for a tensor that broke the rule (only built on failure)."""
    if not bool(torch.isfinite(x).all()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        return ValueError(
            f"{name} must be finite, but it holds {n_nan} NaN and {n_inf} inf value(s)"
        )
    cf = float(c)
    if manifold == "poincare":
        worst = float((cf * (x.double() ** 2).sum(-1)).max())
        return ValueError(
            f"{name} must lie inside the Poincaré ball c|{name}|^2 < 1 (c = {cf:.6g}),"
            f" got c|{name}|^2 up to {worst:.6g}; project it with PoincareBall.projx"
        )
    x64 = x.double()
    if bool((x64[..., 0] <= 0).any()):
        return ValueError(
            f"{name} is not on the Lorentz manifold: time coordinate {name}[..., 0] must be"
            " positive (upper sheet); re-derive it with Lorentz.projx"
        )
    n2 = (x64[..., 1:] ** 2).sum(-1)
    t2 = x64[..., 0] ** 2
    worst = float(((cf * (n2 - t2) + 1.0).abs() / (cf * (n2 + t2) + 1.0)).max())
    return ValueError(
        f"{name} is not on the Lorentz manifold (c = {cf:.6g}): relative residual of"
        f" c<{name},{name}>_L + 1 is {worst:.3g} > {manifold_rtol(x.dtype):.3g};"
        " re-derive the time coordinate with Lorentz.projx"
    )


_MAN_CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}
_FAST_DTYPES = (torch.float32, torch.float64)
_RTOLS = (manifold_rtol(torch.float32), manifold_rtol(torch.float64))
_first_bad = None  # hypervldd._C.first_bad_points once the extension is known to load


def _compiled_first_bad(
    tensors: Sequence[tuple[torch.Tensor, str]], manifold: str, c: float | torch.Tensor
) -> int | None:
    """The rule in one compiled pass (index of the first bad tensor, -1 if none), or
    ``None`` when these tensors need the PyTorch form (no extension, not 2-D float CPU
    tensors, tensors wrapped by torch.func). Same rule, evaluated in float64: at the
    sizes of a training step the PyTorch form's small ops cost as much as the op they
    guard (issue 19)."""
    global _first_bad
    if _first_bad is None:
        from ._backend import extension_available

        if not extension_available():
            return None
        from . import _C

        _first_bad = _C.first_bad_points
    if not op_reads_values(*(t for t, _ in tensors)):
        return None
    # detach: a learnable curvature would warn on every call (tensor with grad to scalar)
    cv = float(c.detach()) if isinstance(c, torch.Tensor) else float(c)
    return _first_bad([t for t, _ in tensors], _MAN_CODE[manifold], cv, *_RTOLS)


def op_reads_values(*tensors: torch.Tensor) -> bool:
    """Whether a compiled CPU op can apply the point rule to ``tensors`` itself: 2-D
    float32/float64 CPU tensors with values, not wrapped by torch.func (the cases
    :func:`check_points` sends to its compiled pass)."""
    for t in tensors:
        if (
            t.device.type != "cpu"
            or t.dtype not in _FAST_DTYPES
            or t.dim() != 2
            or isinstance(t, FakeTensor)
            or torch._C._functorch.is_functorch_wrapped_tensor(t)
        ):
            return False
    return True


__all__ += ["op_reads_values"]


def check_points(
    tensors: Sequence[tuple[torch.Tensor, str]],
    manifold: str,
    c: float | torch.Tensor = 1.0,
) -> None:
    """Require every tensor to hold finite points of ``manifold`` (one rule for the package).

    The rule: Euclidean, finite; Poincaré, ``c|x|^2 < 1``; Lorentz, time ``x[..., 0] > 0``
    and ``|c<x, x>_L + 1| <= manifold_rtol(dtype) * (c|x|^2 + 1)`` (``|x|^2`` over all
    coordinates; ``manifold_rtol`` is ``eps ** 0.4``). ``tensors`` are ``(..., D)`` points
    (Lorentz: ``D + 1`` coordinates, time first) with their argument names; ``c`` is the
    curvature magnitude (a float or a 0-d tensor, checked by the caller). One fused
    reduction per tensor and a single host sync for all of them; nothing when
    validation is off. Raises a ``ValueError`` naming the first offending argument.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [2.0, 3.0 ** 0.5]])
        >>> check_points([(x, "x")], "lorentz")
        >>> check_points([(-x, "y")], "lorentz")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: y is not on the Lorentz manifold: time coordinate y[..., 0] must be ...
    """
    if manifold not in POINT_MANIFOLDS:
        raise ValueError(f"manifold must be one of {POINT_MANIFOLDS}, got {manifold!r}")
    if not validation_enabled():
        return
    tensors = [(t, n) for t, n in tensors if t.numel() > 0]
    if not tensors:
        return
    bad = _compiled_first_bad(tensors, manifold, c)
    if bad is not None:
        if bad >= 0:
            t, name = tensors[bad]
            cf = c.detach() if isinstance(c, torch.Tensor) else torch.tensor(c)
            raise _point_error(t.detach(), name, manifold, cf)
        return
    # Detached inputs: no graph is recorded, so no no_grad context (it costs per call).
    ts = [t.detach() for t, _ in tensors]
    cc = c.detach() if isinstance(c, torch.Tensor) else c
    t0 = ts[0]
    # One pass over all rows at once (same dtype, 2-D, same width): the cost of these
    # checks at small N is the number of ops, not their size.
    if len(ts) == 1:
        ok = _point_ok(t0, manifold, cc)
    elif all(t.dim() == 2 and t.dtype == t0.dtype and t.shape[1] == t0.shape[1] for t in ts):
        ok = _point_ok(torch.cat(ts), manifold, cc)
    else:
        ok = torch.stack([_point_ok(t, manifold, cc) for t in ts]).all()
    if bool(ok):
        return
    cf = cc if isinstance(cc, torch.Tensor) else torch.tensor(cc)
    for t, (_, name) in zip(ts, tensors, strict=True):
        if not bool(_point_ok(t, manifold, cc)):
            raise _point_error(t, name, manifold, cf)
    raise AssertionError("unreachable: the joint check failed but no tensor did")
