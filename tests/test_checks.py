"""The package's one point rule (hypervldd._checks.check_points) at every entry point."""

from __future__ import annotations

import pytest
import torch

import hypervldd.kernels as K
from hypervldd._checks import check_points, validation
from hypervldd.losses import HyperbolicContrastiveLoss
from hypervldd.manifolds import Lorentz, PoincareBall
from hypervldd.manifolds import lorentz_math as L
from hypervldd.manifolds import poincare_math as P


def _lorentz(n: int = 6, dim: int = 4, dtype=torch.float32, c: float = 1.0) -> torch.Tensor:
    r = torch.linspace(0.0, 5.0, n, dtype=torch.float64)
    return L.random(n, dim + 1, radius=r, c=c, dtype=torch.float64).to(dtype)


def _off_manifold(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Lorentz inputs the kernels used to take silently (they read only the space part)."""
    lower = -x
    rows = torch.randn_like(x)
    rows[:, 0] = rows[:, 0].abs() + 0.1  # upper sheet, but off the hyperboloid
    stale = x.clone()
    stale[2, 0] *= 1.5  # one stale time coordinate
    return {"lower sheet": lower, "random rows": rows, "stale time": stale}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_on_manifold_points_pass(dtype: torch.dtype, c: float) -> None:
    x = _lorentz(dtype=dtype, c=c)
    check_points([(x, "x")], "lorentz", c)
    check_points([(x, "x")], "lorentz", torch.tensor(c, dtype=dtype))
    # A float32 point cast to float64 is still on the manifold under the float64 rule.
    check_points([(x.float().double(), "x")], "lorentz", c)
    b = P.random(6, 4, radius=torch.linspace(0, 8, 6, dtype=torch.float64), c=c).to(dtype)
    check_points([(b, "b"), (b[:2], "b2")], "poincare", c)
    check_points([(torch.randn(3, 2, dtype=dtype) * 1e10, "e")], "euclidean")


@pytest.mark.parametrize("what", ["lower sheet", "random rows", "stale time"])
def test_off_manifold_lorentz_refused_with_its_name(what: str) -> None:
    x = _lorentz()
    bad = _off_manifold(x)[what]
    with pytest.raises(ValueError, match="points_b is not on the Lorentz manifold"):
        check_points([(x, "points_a"), (bad, "points_b")], "lorentz")
    # Mixed dtypes take the per-tensor path: same rule, same message.
    with pytest.raises(ValueError, match="points_b is not on the Lorentz manifold"):
        check_points([(x.double(), "points_a"), (bad, "points_b")], "lorentz")


@pytest.mark.parametrize("manifold", ["lorentz", "poincare", "euclidean"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_refused(manifold: str, value: float) -> None:
    x = _lorentz() if manifold == "lorentz" else torch.zeros(6, 4)
    bad = x.clone()
    bad[3, 1] = value
    with pytest.raises(ValueError, match="y must be finite"):
        check_points([(x, "x"), (bad, "y")], manifold)


def test_poincare_outside_the_ball_refused() -> None:
    x = torch.tensor([[0.6, 0.9], [0.1, 0.0]])
    with pytest.raises(ValueError, match=r"x must lie inside the Poincaré ball.*1\.17"):
        check_points([(x, "x")], "poincare")
    # The curvature is part of the rule: inside at c = 1, outside at c = 4.
    y = torch.tensor([[0.3, 0.4]])
    check_points([(y, "y")], "poincare", 1.0)
    with pytest.raises(ValueError, match="y must lie inside"):
        check_points([(y, "y")], "poincare", torch.tensor(4.0))


def test_validation_off_skips_and_empty_passes() -> None:
    bad = -_lorentz()
    with validation(False):
        check_points([(bad, "x")], "lorentz")
    check_points([(torch.zeros(0, 5), "x")], "lorentz")
    with pytest.raises(ValueError, match="manifold must be one of"):
        check_points([(bad, "x")], "sphere")


def test_one_rule_for_every_entry_point() -> None:
    """Kernels, losses and the manifold refuse the same off-manifold points, naming them."""
    x = _lorentz()
    man = Lorentz()
    loss = HyperbolicContrastiveLoss("lorentz", lift=False)
    for what, bad in _off_manifold(x).items():
        calls = {
            "kernels.pairwise_dist": lambda b=bad: K.pairwise_dist(x, b),
            "kernels.contrastive_loss": lambda b=bad: K.contrastive_loss(x, b),
            "kernels.row_stats": lambda b=bad: K.row_stats(x, b),
            "HyperbolicContrastiveLoss": lambda b=bad: loss(x, b),
            "Lorentz.dist": lambda b=bad: man.dist(x, b),
        }
        for name, call in calls.items():
            with pytest.raises(ValueError, match="not on the Lorentz manifold"):
                call()
                pytest.fail(f"{name} accepted {what}")
    ball = PoincareBall()
    out = torch.tensor([[0.6, 0.9]])
    inside = torch.tensor([[0.1, 0.2]])
    for call in (lambda: K.pairwise_dist(inside, out, "poincare"), lambda: ball.dist(inside, out)):
        with pytest.raises(ValueError, match="c\\|.*\\|\\^2 < 1"):
            call()


def _cases() -> list[tuple[str, torch.Tensor]]:
    x = _lorentz(n=40, dim=6, dtype=torch.float64)
    b = P.random(40, 6, radius=torch.linspace(0, 8, 40, dtype=torch.float64), dtype=torch.float64)
    cases = [("lorentz", x), ("poincare", b), ("euclidean", torch.randn(40, 6) * 1e10)]
    for bad in _off_manifold(x).values():
        cases.append(("lorentz", bad))
    cases.append(("poincare", torch.tensor([[0.6, 0.9], [0.1, 0.0]])))
    for man, t in list(cases[:3]):
        for value in (float("nan"), float("inf"), -float("inf")):
            u = t.clone()
            u[7, 2] = value
            cases.append((man, u))
    return cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_rule_agrees_with_the_pytorch_rule(dtype: torch.dtype) -> None:
    """The compiled pass (CPU fast path) accepts and refuses what the PyTorch form does,
    on contiguous and strided tensors, naming the same tensor."""
    from hypervldd import _checks

    if not K.backend_for("cpu") == "cpp":
        pytest.skip("the compiled extension is not loaded")
    for man, t in _cases():
        t = t.to(dtype)
        for view in (t, t.t().contiguous().t(), t[::2]):
            for c in (1.0, 0.5):
                want = bool(_checks._point_ok(view, man, c))
                got = _checks._compiled_first_bad([(t[:3] * 0 + t[:1], "a"), (view, "b")], man, c)
                ok_first = bool(_checks._point_ok(t[:3] * 0 + t[:1], man, c))
                assert got == (0 if not ok_first else (-1 if want else 1)), (man, dtype, c)


def test_compiled_rule_skips_what_it_cannot_read() -> None:
    """Tensors the compiled pass cannot read go to the PyTorch form (same rule)."""
    from hypervldd import _checks

    x = _lorentz()
    assert _checks._compiled_first_bad([(x[None], "x")], "lorentz", 1.0) is None  # 3-D
    assert _checks._compiled_first_bad([(x.half(), "x")], "lorentz", 1.0) is None
    with pytest.raises(ValueError, match="x is not on the Lorentz manifold"):
        check_points([(-x[None], "x")], "lorentz")
    # Under torch.func the inputs are wrapped: the PyTorch form runs and still refuses.
    with pytest.raises(ValueError, match="y is not on the Lorentz manifold"):
        torch.func.grad(lambda a: K.pairwise_dist(a, -x).sum())(x)


def test_cached_scalar_is_usable_outside_inference_mode() -> None:
    """A float c first seen under inference_mode still works with autograd afterwards."""
    x = _lorentz(n=5, c=0.731)[1:].requires_grad_(True)  # no point at the origin
    with torch.inference_mode():
        K.pairwise_dist(x.detach(), x.detach(), "lorentz", 0.731)
    d = K.pairwise_dist(x, x.detach(), "lorentz", 0.731)
    d.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_learnable_curvature_is_checked_without_a_warning() -> None:
    import warnings

    from hypervldd.manifolds import Lorentz

    c = torch.tensor(1.0, requires_grad=True)  # a curvature the user trains
    x = Lorentz().lift(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_points([(x, "x")], "lorentz", c)
    with pytest.raises(ValueError, match="x"):
        check_points([(x * 2, "x")], "lorentz", c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_rule_on_long_rows(dtype: torch.dtype) -> None:
    """Rows of 21 coordinates: two blocks of the compiled pass's 8 partial sums and a
    tail of 5. A NaN, an inf or a point off the manifold in a block or in the tail is
    refused, in contiguous and strided tensors; valid points pass."""
    from hypervldd import _checks

    if not K.backend_for("cpu") == "cpp":
        pytest.skip("the compiled extension is not loaded")
    good = {
        "lorentz": _lorentz(n=9, dim=20, dtype=dtype),
        "poincare": P.random(9, 21, radius=torch.linspace(0, 6, 9), dtype=torch.float64).to(dtype),
        "euclidean": torch.randn(9, 21, dtype=dtype),
    }
    for man, t in good.items():
        for view in (t, t.t().contiguous().t()):
            assert _checks._compiled_first_bad([(view, "x")], man, 1.0) == -1, man
        for col in (3, 19):
            for value in (float("nan"), float("inf")):
                u = t.clone()
                u[4, col] = value
                for view in (u, u.t().contiguous().t()):
                    assert _checks._compiled_first_bad([(t, "x"), (view, "y")], man, 1.0) == 1
    off = good["lorentz"].clone()
    off[4, 18] += 0.5  # a space coordinate in the tail: the time no longer matches
    assert _checks._compiled_first_bad([(off, "x")], "lorentz", 1.0) == 0
    out = good["poincare"].clone()
    out[4, 17] = 1.0  # outside the unit ball, through a tail coordinate
    assert _checks._compiled_first_bad([(out, "x")], "poincare", 1.0) == 0
