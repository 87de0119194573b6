"""Which kernel backend is active, and why.

The compiled extension ``hypervldd._C`` registers its ops in
``torch.ops.hypervldd`` when imported. If it is missing or fails to load, the
package runs on its PyTorch reference and warns once, at the first use of a
kernel-backed function. ``HYPERVLDD_BACKEND=reference`` forces the reference.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import asdict, dataclass

import torch  # noqa: F401  (loads libc10 and libtorch before the extension)

__all__ = ["BackendInfo", "backend_info", "extension_available", "warn_if_reference"]


@dataclass(frozen=True)
class BackendInfo:
    """Active CPU backend: ``"cpp"`` (the C++ kernels) or ``"reference"``; ``gpu``: what
    runs CUDA tensors, ``"triton"`` (the Triton kernels, when triton is installed) or
    ``"reference"`` (see ``hypervldd.kernels.backend_for``).

    >>> import hypervldd
    >>> info = hypervldd.backend_info()
    >>> info.backend in ("cpp", "reference"), info.as_dict()["backend"] == info.backend
    (True, True)
    """

    backend: str
    extension_loaded: bool
    gpu: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _gpu() -> str:
    if os.environ.get("HYPERVLDD_BACKEND", "").lower() == "reference":
        return "reference"
    return "triton" if importlib.util.find_spec("triton") is not None else "reference"


def _load() -> BackendInfo:
    gpu = _gpu()
    if os.environ.get("HYPERVLDD_BACKEND", "").lower() == "reference":
        return BackendInfo("reference", False, gpu, "HYPERVLDD_BACKEND=reference is set")
    import importlib.util

    if importlib.util.find_spec("hypervldd._C") is None:
        return BackendInfo(
            "reference",
            False,
            gpu,
            "the compiled extension hypervldd._C was not built (the install found no working"
            " compiler, or the build failed: see the pip log); reinstall with"
            " `pip install --no-build-isolation -e .` to build it",
        )
    try:
        from . import _C  # noqa: F401  (registers torch.ops.hypervldd.*)
    except ImportError as err:
        return BackendInfo(
            "reference",
            False,
            gpu,
            f"the compiled extension hypervldd._C could not be imported ({err}); "
            "reinstall with `pip install --no-build-isolation -e .` and read the build log",
        )
    what = "Triton kernels" if gpu == "triton" else "the PyTorch reference (triton is absent)"
    return BackendInfo("cpp", True, gpu, f"hypervldd._C loaded (C++ CPU kernels); GPU: {what}")


_INFO = _load()
_warned = False


def backend_info() -> BackendInfo:
    """The active kernel backend and the reason it was chosen.

    >>> import hypervldd
    >>> info = hypervldd.backend_info()
    >>> info.backend == ("cpp" if info.extension_loaded else "reference")
    True
    """
    return _INFO


def extension_available() -> bool:
    """True when the compiled ops are registered."""
    return _INFO.extension_loaded


def warn_if_reference() -> None:
    """Warn (once per process) that the PyTorch reference is standing in for the kernels."""
    global _warned
    if not _INFO.extension_loaded and not _warned:
        _warned = True
        warnings.warn(
            f"hypervldd is running on its PyTorch reference: {_INFO.reason}",
            RuntimeWarning,
            stacklevel=3,
        )
