"""Shared test settings: offline, deterministic, IEEE matmul."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Distance math is specified in IEEE float32/float64: never TF32.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import geoopt  # noqa: F401,E402  (import once, quietly: it warns about torch.jit.script)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def require_extension() -> None:
    """Skip when the compiled extension is absent, unless CI requires it (then fail)."""
    from hypervldd import backend_info

    info = backend_info()
    if info.extension_loaded:
        return
    if os.environ.get("HYPERVLDD_REQUIRE_EXTENSION"):
        pytest.fail(f"the compiled extension is required here but absent: {info.reason}")
    pytest.skip(f"compiled extension absent: {info.reason}")
