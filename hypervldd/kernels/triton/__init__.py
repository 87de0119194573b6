"""The GPU kernels, written in Triton (imported only when a GPU op is first needed).

Each op is a ``torch.library.triton_op`` in the ``hypervldd`` namespace (so
``torch.compile`` traces into the kernels and ``opcheck`` covers them):
``triton_pairwise_dist``, ``triton_contrastive_loss``, ``triton_row_stats`` and their
backwards. Under ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors (the tests).
See docs/kernels.md.
"""

from __future__ import annotations

from . import contrastive, pairwise, row_stats  # noqa: F401  (registers the ops)

__all__ = ["contrastive", "pairwise", "row_stats"]
