"""Python face of the compiled ops: dispatch, fake impls, autograd, reference fallback.

Every op has one semantics in four places: the C++ CPU kernel
(``torch.ops.hypervldd.*``) with its registered fake (meta) impl so that
``torch.compile`` and export can trace it, the Triton GPU kernel in :mod:`.triton`
(registered with ``torch.library.triton_op``; CUDA tensors go there), and a
pure-PyTorch reference in :mod:`.reference` that is the test oracle and the fallback
when neither applies (:func:`backend_for` says which one serves a device).

Public ops: :func:`pairwise_dist`, :func:`contrastive_loss`, :func:`row_stats`
(and the paired-row :func:`lorentz_dist_rows`). See ``docs/kernels.md``.
"""

from .._backend import extension_available

if extension_available():
    # Registers the fake impls and autograd of the compiled ops, and defines the
    # streaming ops, before anyone calls them (opcheck, torch.compile, export).
    from . import fused  # noqa: F401

from .api import MANIFOLDS, RowStats, contrastive_loss, pairwise_dist, row_stats
from .dispatch import backend_for
from .reference import contrastive_loss_ref, pairwise_dist_ref, row_stats_ref
from .rows import lorentz_dist_rows

__all__ = [
    "backend_for",
    "MANIFOLDS",
    "RowStats",
    "pairwise_dist",
    "contrastive_loss",
    "row_stats",
    "pairwise_dist_ref",
    "contrastive_loss_ref",
    "row_stats_ref",
    "lorentz_dist_rows",
]
