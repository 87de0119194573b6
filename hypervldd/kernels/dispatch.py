"""Which implementation runs an op for a given device, and the calls into the Triton ops.

CPU tensors go to the C++ ops (``cpp``), CUDA tensors to the Triton ops (``triton``)
when Triton is installed; otherwise the PyTorch reference (``reference``). Tests send
CPU tensors through the Triton ops under Triton's interpreter with
``HYPERVLDD_TRITON_ON_CPU=1`` (read at every call) together with ``TRITON_INTERPRET=1``.
Importing this module never imports triton.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from .._backend import extension_available

__all__ = ["backend_for", "cpu_backend", "triton_available", "triton_on_cpu"]

MANIFOLD_CODE = {"lorentz": 0, "poincare": 1, "euclidean": 2}


def triton_available() -> bool:
    """True when the ``triton`` package is installed (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def triton_on_cpu() -> bool:
    """True when ``HYPERVLDD_TRITON_ON_CPU=1``: CPU tensors run the Triton kernels in
    Triton's interpreter (which needs ``TRITON_INTERPRET=1`` before triton is imported)."""
    if os.environ.get("HYPERVLDD_TRITON_ON_CPU", "0") in ("", "0"):
        return False
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        raise RuntimeError(
            "HYPERVLDD_TRITON_ON_CPU=1 runs the Triton kernels on CPU tensors, which needs"
            " TRITON_INTERPRET=1 set before triton is imported"
        )
    return True


def backend_for(device: torch.device | str) -> str:
    """The implementation of the fused ops for tensors on ``device``: ``"cpp"`` (the
    compiled C++ kernels), ``"triton"`` (the Triton kernels) or ``"reference"`` (the
    PyTorch reference, also forced by ``HYPERVLDD_BACKEND=reference``).

    >>> backend_for("cpu") in ("cpp", "reference", "triton")
    True
    """
    if not isinstance(device, torch.device):
        device = torch.device(device)
    if device.type == "cpu":
        return cpu_backend()
    if os.environ.get("HYPERVLDD_BACKEND", "").lower() == "reference":
        return "reference"
    if device.type == "cuda":
        return "triton" if triton_available() else "reference"
    return "cpp" if extension_available() else "reference"


def cpu_backend() -> str:
    """:func:`backend_for` of CPU tensors, without building a device (the public ops'
    common call asks this on every call).

    >>> cpu_backend() == backend_for("cpu")
    True
    """
    if os.environ.get("HYPERVLDD_BACKEND", "").lower() == "reference":
        return "reference"
    if triton_on_cpu():
        return "triton"
    return "cpp" if extension_available() else "reference"


def c_tensor(c: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``c`` or ``tau`` as a 0-d tensor of the points' dtype (autograd reaches a tensor)."""
    if isinstance(c, torch.Tensor):
        return c.reshape(()).to(like.dtype)
    return torch.tensor(float(c), dtype=like.dtype, device=like.device)


def triton_pairwise(x: torch.Tensor, y: torch.Tensor, manifold: str, c) -> torch.Tensor:  # noqa: ANN001
    """Validated inputs -> ``hypervldd::triton_pairwise_dist``."""
    from . import triton as _ops  # noqa: F401  (registers the ops; imports triton)

    return torch.ops.hypervldd.triton_pairwise_dist(x, y, c_tensor(c, x), MANIFOLD_CODE[manifold])


def triton_contrastive(x, y, manifold: str, c, tau, positives) -> torch.Tensor:  # noqa: ANN001
    """Validated inputs -> ``hypervldd::triton_contrastive_loss`` (the 0-d loss)."""
    from . import triton as _ops  # noqa: F401

    if positives is None:
        positives = torch.arange(x.shape[0], device=x.device)
    return torch.ops.hypervldd.triton_contrastive_loss(
        x, y, c_tensor(c, x), c_tensor(tau, x), positives, MANIFOLD_CODE[manifold]
    )[0]


def triton_row_stats(x, y, manifold: str, c, tau, values, rank_temperature, positives):  # noqa: ANN001, ANN201
    """Validated inputs -> ``hypervldd::triton_row_stats`` as a ``RowStats``."""
    from . import triton as _ops  # noqa: F401
    from .reference import RowStats

    if positives is None:
        positives = torch.arange(x.shape[0], device=x.device)
    v = values if values is not None else x.new_zeros((y.shape[0], 0))
    rt = float(rank_temperature) if rank_temperature is not None else -1.0
    lse, w, r, _ = torch.ops.hypervldd.triton_row_stats(
        x, y, c_tensor(c, x), c_tensor(tau, x), v, positives, rt, MANIFOLD_CODE[manifold]
    )
    return RowStats(lse, w if values is not None else None, r if rank_temperature else None)
