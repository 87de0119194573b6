"""Python face of the compiled ops: dispatch, fake impls, autograd, reference fallback.

Every op has one semantics in three places: the C++/CUDA kernel
(``torch.ops.hypervldd.*``), its registered fake (meta) impl so that
``torch.compile`` and export can trace it, and a pure-PyTorch reference in
:mod:`.reference` that is the test oracle and the fallback when the extension
is absent.
"""

from .rows import lorentz_dist_rows

__all__ = ["lorentz_dist_rows"]
