"""Input validation shared by every layer of the package.

All checks raise ``ValueError`` (or ``TypeError`` for wrong types) with a message
that names the argument and states what was expected. Data-dependent checks
(NaN/inf, on-manifold residuals, the sign of a curvature tensor) need a host
sync; they can be switched off globally for compiled or performance-critical
code with :func:`set_validation` or the :func:`validation` context manager.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch

__all__ = [
    "set_validation",
    "validation",
    "validation_enabled",
    "check_tensor",
    "check_finite",
    "check_curvature",
    "check_last_dim",
    "check_same_device",
]

_state = threading.local()


def validation_enabled() -> bool:
    """Whether data-dependent input checks run (default: ``True``).

    >>> import hypervldd
    >>> hypervldd.validation_enabled()
    True
    """
    if torch.compiler.is_compiling():
        return False
    return getattr(_state, "enabled", True)


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
    previous = validation_enabled()
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
    if validation_enabled() and x.numel() > 0 and not bool(torch.isfinite(x).all()):
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
        if validation_enabled() and c.numel() > 0:
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
