"""Fixture of the Triton kernel tests: CPU tensors through the Triton ops, run by
Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1 when there is no GPU)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

# The backward ops are never traced with autograd of their own: their opcheck skips the
# (slow, under the interpreter) compiled-autograd check.
BACKWARD_OPCHECK = ("test_schema", "test_faketensor")


@pytest.fixture
def triton_cpu(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Routes CPU tensors of the public API to the Triton ops; yields the op namespace."""
    if not torch.cuda.is_available():
        assert os.environ.get("TRITON_INTERPRET") == "1", "conftest must set TRITON_INTERPRET"
    monkeypatch.setenv("HYPERVLDD_TRITON_ON_CPU", "1")
    import hypervldd.kernels.triton  # noqa: F401  (registers the ops)

    with warnings.catch_warnings():
        # The interpreter evaluates masked-off lanes too (0/0 in padding): numpy warns.
        warnings.simplefilter("ignore", RuntimeWarning)
        yield torch.ops.hypervldd
