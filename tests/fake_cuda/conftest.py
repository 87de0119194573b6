"""The fake-CUDA suite: the public API on device ``cuda`` under ``FakeTensorMode``.

Fake tensors carry a device, a shape and a dtype but no values, so this runs on a
machine without a GPU and raises ``Expected all tensors to be on the same device``
exactly where a real GPU would: every tensor the package creates beside a CUDA
input without ``device=`` is caught. Values are never checked here (there are
none); the CPU suites check them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

CUDA = torch.device("cuda", 0)


@pytest.fixture
def fake() -> Iterator[FakeTensorMode]:
    """A fake mode in which every new tensor is fake; real tensors may not enter."""
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        yield mode


def on_cuda(t: torch.Tensor) -> bool:
    return t.device.type == "cuda"
