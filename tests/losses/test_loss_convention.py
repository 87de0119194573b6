"""One calling convention for the rank-aware losses, and clear errors for the other kind."""

from __future__ import annotations

import doctest
import warnings

import pytest
import torch

from hypervldd.losses import FullDatasetRankAlignment, RAHALoss, raha, rank_alignment
from hypervldd.manifolds import lorentz_math, poincare_math

F64 = torch.float64


def _features(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, d, generator=g, dtype=F64)


def _lift(u: torch.Tensor, geometry: str) -> torch.Tensor:
    u = u / u.shape[1] ** 0.5  # the losses' default feature scale, 1/sqrt(D)
    if geometry == "lorentz":
        return lorentz_math.expmap0(torch.nn.functional.pad(u, (1, 0)), 1.0)
    return poincare_math.expmap0(u, 1.0)


def test_raha_keyword_call_equals_the_deprecated_positional_one() -> None:
    ri, rt, si, st = (_features(12, 6, s) for s in range(4))
    loss = RAHALoss(eta=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = loss(si, st, real_image=ri, real_text=rt)
    with pytest.warns(DeprecationWarning, match="real_image=.*real_text="):
        old = loss(ri, rt, si, st)
    assert torch.equal(new, old)
    # The order matters: swapping real and synthetic gives another value.
    assert not torch.allclose(new, loss(ri, rt, real_image=si, real_text=st))


def test_rank_alignment_keyword_call_equals_the_deprecated_positional_one() -> None:
    sx, sy, rx, ry, ax, ay = (
        _lift(_features(n, 5, s), "lorentz") for s, n in enumerate((6, 6, 40, 40, 3, 3))
    )
    loss = FullDatasetRankAlignment(lift=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = loss(sx, sy, real_image=rx, real_text=ry, anchor_image=ax, anchor_text=ay)
    with pytest.warns(DeprecationWarning, match="positionally"):
        old = loss(sx, sy, rx, ry, ax, ay)
    assert torch.equal(new, old)


def test_missing_or_doubled_real_set_is_a_type_error() -> None:
    si, st = _features(6, 5, 0), _features(6, 5, 1)
    with pytest.raises(TypeError, match="real_image=.*real_text="):
        RAHALoss()(si, st)
    with pytest.raises(TypeError, match="by keyword"):
        FullDatasetRankAlignment(lift=True)(si, st, si, real_image=si, real_text=st)


def test_lift_default_warns_and_explicit_lift_does_not() -> None:
    with pytest.warns(DeprecationWarning, match="lift=True"):
        assert FullDatasetRankAlignment().lift is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FullDatasetRankAlignment(lift=False)
        FullDatasetRankAlignment(lift=True)
    with pytest.raises(TypeError, match="lift"):
        FullDatasetRankAlignment(lift="yes")


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_lift_true_on_features_equals_lift_false_on_their_points(geometry: str) -> None:
    sx0, sy0 = _features(6, 5, 0), _features(6, 5, 1)
    rx, ry, ax, ay = (_features(n, 5, s) for s, n in ((2, 30), (3, 30), (4, 4), (5, 4)))
    kw = {"chunk_size": 7, "rank_weight": 0.3, "tau": 0.2}
    sx, sy = sx0.clone().requires_grad_(), sy0.clone().requires_grad_()
    a = FullDatasetRankAlignment(geometry, lift=True, **kw)(
        sx, sy, real_image=rx, real_text=ry, anchor_image=ax, anchor_text=ay
    )
    a.backward()
    px, py = sx0.clone().requires_grad_(), sy0.clone().requires_grad_()
    b = FullDatasetRankAlignment(geometry, lift=False, **kw)(
        _lift(px, geometry),
        _lift(py, geometry),
        real_image=_lift(rx, geometry),
        real_text=_lift(ry, geometry),
        anchor_image=_lift(ax, geometry),
        anchor_text=_lift(ay, geometry),
    )
    b.backward()
    eps = torch.finfo(F64).eps
    assert a.item() > 0
    torch.testing.assert_close(a, b, rtol=1e3 * eps, atol=1e3 * eps)
    torch.testing.assert_close(sx.grad, px.grad, rtol=1e5 * eps, atol=1e5 * eps)
    torch.testing.assert_close(sy.grad, py.grad, rtol=1e5 * eps, atol=1e5 * eps)


def test_features_where_lorentz_points_are_expected_name_the_argument() -> None:
    pts = [_lift(_features(n, 5, s), "lorentz") for s, n in enumerate((6, 6, 20, 20))]
    loss = FullDatasetRankAlignment("lorentz", lift=False)
    # Six-column Euclidean features: the right width, but the time coordinate is wrong.
    feats = _features(20, 6, 9)
    with pytest.raises(ValueError, match=r"real_text must hold points on the Lorentz.*row 0"):
        loss(pts[0], pts[1], real_image=pts[2], real_text=feats)
    with pytest.raises(ValueError, match=r"syn_image .*lift=True"):
        loss(feats[:6], pts[1], real_image=pts[2], real_text=pts[3])
    # One bad row among good ones is found and named.
    bad = pts[2].clone()
    bad[7, 0] += 0.5
    with pytest.raises(ValueError, match="row 7"):
        loss(pts[0], pts[1], real_image=bad, real_text=pts[3])
    # float32 rounding of genuine points is accepted.
    p32 = [p.float() for p in pts]
    assert torch.isfinite(loss(p32[0], p32[1], real_image=p32[2], real_text=p32[3]))


def test_features_outside_the_poincare_ball_are_refused() -> None:
    loss = FullDatasetRankAlignment("poincare", lift=False)
    pts = [_lift(_features(n, 5, s), "poincare") for s, n in enumerate((6, 6, 20, 20))]
    feats = _features(6, 5, 7, scale=3.0)
    with pytest.raises(ValueError, match=r"syn_text must hold points of the Poincaré ball"):
        loss(pts[0], feats, real_image=pts[2], real_text=pts[3])


def test_points_where_features_are_expected_are_refused() -> None:
    feats = [_features(n, 5, s) for s, n in enumerate((6, 6, 20, 20))]
    pts = _lift(_features(6, 5, 8), "lorentz")  # (6, 6): Lorentz points
    wide = [torch.nn.functional.pad(f, (1, 0)) for f in feats]  # widths match the points
    with pytest.raises(ValueError, match=r"syn_image must hold Euclidean features.*lifts"):
        RAHALoss()(pts, wide[1], real_image=wide[2], real_text=wide[3])
    with pytest.raises(ValueError, match=r"syn_text must hold Euclidean features.*lift=True"):
        FullDatasetRankAlignment(lift=True)(wide[0], pts, real_image=wide[2], real_text=wide[3])


@pytest.mark.parametrize("obj", [FullDatasetRankAlignment, RAHALoss])
def test_docstring_example_runs(obj) -> None:
    module = rank_alignment if obj is FullDatasetRankAlignment else raha
    tests = [
        t
        for t in doctest.DocTestFinder().find(obj, module=module)
        if t.name.endswith(obj.__name__) and t.examples
    ]
    assert tests, f"{obj.__name__} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
    assert runner.tries >= 5
