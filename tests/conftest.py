"""Shared test settings: offline, deterministic, IEEE matmul."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# The Triton GPU kernels run in Triton's interpreter on CPU tensors when no GPU is
# present: the variable must be set before triton creates its JIT functions.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

# Distance math is specified in IEEE float32/float64: never TF32.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import geoopt  # noqa: F401,E402  (import once, quietly: it warns about torch.jit.script)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Folders whose tests run many tiny ops: one intra-op thread avoids the
# parallel-region overhead that dominates them on a shared 2-core machine
# (measured 4x to 50x slower per op with two threads), without changing results.
_ONE_THREAD_DIRS = {"eval", "distill", "losses"}


@pytest.fixture(autouse=True)
def _one_thread_for_small_ops(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.path.parent.name not in _ONE_THREAD_DIRS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _private_result_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # compare() caches full-data results; tests must neither read nor fill the user's cache.
    from hypervldd.eval import result_cache

    folder = tmp_path_factory.mktemp("results")
    monkeypatch.setattr(result_cache, "default_results_dir", lambda: folder)


def require_extension() -> None:
    """Skip when the compiled extension is absent, unless CI requires it (then fail)."""
    from hypervldd import backend_info

    info = backend_info()
    if info.extension_loaded:
        return
    if os.environ.get("HYPERVLDD_REQUIRE_EXTENSION"):
        pytest.fail(f"the compiled extension is required here but absent: {info.reason}")
    pytest.skip(f"compiled extension absent: {info.reason}")


# The GPU path is tested without a GPU: say in the summary how many of those tests ran,
# so that a run where they were skipped or deselected shows it.
_GPU_PATH_SUITES = {
    "Triton kernels (interpreter)": lambda nodeid: "/test_triton_" in nodeid,
    "fake-CUDA suite": lambda nodeid: nodeid.startswith("tests/fake_cuda/"),
}


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    outcomes = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    for label, belongs in _GPU_PATH_SUITES.items():
        stats = terminalreporter.stats
        counts = {
            k: sum(1 for r in stats.get(k, []) if belongs(getattr(r, "nodeid", "")))
            for k in outcomes
        }
        shown = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none ran"
        terminalreporter.write_line(f"GPU path without a GPU, {label}: {shown}")
