"""Which kernel backend is active, and why.

The compiled extension ``hypervldd._C`` registers its ops in
``torch.ops.hypervldd`` when imported. If it is missing or fails to load, the
package runs on its PyTorch reference and warns once, at the first use of a
kernel-backed function. ``HYPERVLDD_BACKEND=reference`` forces the reference.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

import torch  # noqa: F401  (loads libc10 and libtorch before the extension)

__all__ = ["BackendInfo", "backend_info", "extension_available", "warn_if_reference"]


@dataclass(frozen=True)
class BackendInfo:
    """Active backend: ``"cpp"`` (C++, plus CUDA when compiled) or ``"reference"``.

    >>> import hypervldd
    >>> info = hypervldd.backend_info()
    >>> info.backend in ("cpp", "reference"), info.as_dict()["backend"] == info.backend
    (True, True)
    """

    backend: str
    extension_loaded: bool
    cuda_compiled: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _load() -> BackendInfo:
    if os.environ.get("HYPERVLDD_BACKEND", "").lower() == "reference":
        return BackendInfo("reference", False, False, "HYPERVLDD_BACKEND=reference is set")
    import importlib.util

    if importlib.util.find_spec("hypervldd._C") is None:
        return BackendInfo(
            "reference",
            False,
            False,
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
            False,
            f"the compiled extension hypervldd._C could not be imported ({err}); "
            "reinstall with `pip install --no-build-isolation -e .` and read the build log",
        )
    cuda = bool(_C.cuda_compiled())
    what = "C++ (CPU) and CUDA kernels" if cuda else "C++ (CPU) kernels; CUDA was not compiled"
    return BackendInfo("cpp", True, cuda, f"hypervldd._C loaded: {what}")


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
