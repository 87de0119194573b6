"""The public pairwise_dist's common call: plain CPU float tensors and a float c go
straight to the compiled op (which applies the point rule itself); everything else takes
the checked path, with the same results and the same errors."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K
from hypervldd import _checks
from hypervldd.kernels import api, reference

from ._helpers import MANIFOLDS, need_ext, points


@pytest.fixture
def spy_checked_path(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records every call of the argument checks that only the checked path runs."""
    calls: list = []
    real = api._prepare

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_prepare", spy)
    return calls


@pytest.mark.parametrize("manifold", MANIFOLDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_common_call_skips_the_python_checks_and_equals_the_checked_path(
    manifold: str, dtype: torch.dtype, spy_checked_path: list
) -> None:
    need_ext()
    x, y = points(manifold, 6, 4, dtype), points(manifold, 5, 4, dtype)
    fast = K.pairwise_dist(x, y, manifold, 1.0)
    assert spy_checked_path == []  # no Python checks: the op applied the point rule
    # A tensor c takes the checked path: same values, bit for bit.
    checked = K.pairwise_dist(x, y, manifold, torch.tensor(1.0, dtype=dtype))
    assert len(spy_checked_path) == 1
    assert fast.dtype == dtype and torch.equal(fast, checked)
    want = reference.pairwise_dist_ref(x.double(), y.double(), manifold, 1.0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fast.double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    "case",
    ["int c", "upper-case name", "mixed dtypes", "half", "parameter", "klein"],
)
def test_other_calls_take_the_checked_path(case: str, spy_checked_path: list) -> None:
    need_ext()
    x, y = points("lorentz", 4, 3, torch.float32), points("lorentz", 3, 3, torch.float32)
    args = {
        "int c": (x, y, "lorentz", 1),
        "upper-case name": (x, y, "Lorentz", 1.0),
        "mixed dtypes": (x, y.double(), "lorentz", 1.0),
        "half": (x.half(), y, "lorentz", 1.0),
        "parameter": (torch.nn.Parameter(x), y, "lorentz", 1.0),
    }
    if case == "klein":
        xk = torch.tensor([[0.1, 0.2], [0.0, -0.3]])
        out = K.pairwise_dist(xk, xk, "klein", 1.0)
        assert torch.allclose(out.diagonal(), torch.zeros(2), atol=1e-6)
        return
    x_, y_, man, c = args[case]
    out = K.pairwise_dist(x_, y_, man, c)
    # A parameter is a tensor subclass with values: the common call takes it.
    assert len(spy_checked_path) == (0 if case == "parameter" else 1)
    want = reference.pairwise_dist_ref(x.double(), y.double(), "lorentz", 1.0)
    torch.testing.assert_close(out.double(), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("manifold", ["lorentz", "poincare"])
def test_common_call_refusal_raises_the_rules_full_message(manifold: str) -> None:
    need_ext()
    x, y = points(manifold, 4, 3, torch.float32), points(manifold, 3, 3, torch.float32)
    bad = y.clone()
    bad[1, 0] = float("inf")
    with pytest.raises(ValueError, match="y must be finite, but it holds 0 NaN and 1 inf"):
        K.pairwise_dist(x, bad, manifold, 1.0)
    with _checks.validation(False):  # unchecked: inf in, no check, no error
        out = K.pairwise_dist(x, bad, manifold, 1.0)
    assert out.shape == (4, 3) and torch.isfinite(out[:, 0]).all()


def test_common_call_reads_the_backend_environment_on_every_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need_ext()
    x, y = points("poincare", 4, 3, torch.float32), points("poincare", 3, 3, torch.float32)
    seen: list = []
    real = reference.pairwise_dist_ref

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(api.ref, "pairwise_dist_ref", spy)
    K.pairwise_dist(x, y, "poincare", 1.0)
    assert seen == []
    monkeypatch.setenv("HYPERVLDD_BACKEND", "reference")
    K.pairwise_dist(x, y, "poincare", 1.0)
    assert seen == [1]
