"""hITC and the entailment cone against dense float64 definitions."""

from __future__ import annotations

import math

import pytest
import torch

from hypervldd.losses import (
    EntailmentConeLoss,
    HyperbolicContrastiveLoss,
    exterior_angle,
    half_aperture,
)

from ._dense import LIFT, PDIST, info_nce, lorentz_lift

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps


def _feats(n: int, m: int, d: int = 6, dtype=F64):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(n, d, generator=g, dtype=dtype),
        torch.randn(m, d, generator=g, dtype=dtype),
    )


def _dense_loss(img, txt, geometry, c, tau, t2i=None, alpha_img=None, alpha_txt=None):
    if geometry == "cosine":
        x = img / img.norm(dim=-1, keepdim=True)
        y = txt / txt.norm(dim=-1, keepdim=True)
        return info_nce(x @ y.T / tau, t2i)
    d = img.shape[1]
    ai = 1 / math.sqrt(d) if alpha_img is None else alpha_img
    at = 1 / math.sqrt(d) if alpha_txt is None else alpha_txt
    x = LIFT[geometry](img * ai, c)
    y = LIFT[geometry](txt * at, c)
    return info_nce(-PDIST[geometry](x, y, c) / tau, t2i)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean", "cosine"])
@pytest.mark.parametrize("multi", [False, True])
def test_value_and_gradient_match_dense(geometry: str, multi: bool) -> None:
    n, m = (5, 9) if multi else (6, 6)
    img, txt = _feats(n, m)
    t2i = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 0]) if multi else None
    img.requires_grad_()
    txt.requires_grad_()
    loss_fn = HyperbolicContrastiveLoss(geometry, c=0.75, tau=0.2).double()
    got = loss_fn(img, txt, t2i)
    gi, gt = torch.autograd.grad(got, (img, txt))
    want = _dense_loss(img, txt, geometry, 0.75, 0.2, t2i)
    wi, wt = torch.autograd.grad(want, (img, txt))
    tol = 1e3 * torch.finfo(F64).eps
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(gi, wi, rtol=1e4 * torch.finfo(F64).eps, atol=tol)
    torch.testing.assert_close(gt, wt, rtol=1e4 * torch.finfo(F64).eps, atol=tol)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_learnable_tau_curvature_and_scale_gradients(geometry: str) -> None:
    img, txt = _feats(6, 6)
    loss_fn = HyperbolicContrastiveLoss(
        geometry, c=1.25, learn_c=True, tau=0.1, learn_tau=True, learn_scale=True
    ).double()
    got = loss_fn(img, txt)
    params = dict(loss_fn.named_parameters())
    assert set(params) == {
        "curvature.raw",
        "temperature.logit_scale",
        "image_scale.log_alpha",
        "text_scale.log_alpha",
    }
    grads = torch.autograd.grad(got, list(params.values()))
    # Dense: the same parametrisations, differentiated by autograd.
    raw = params["curvature.raw"].detach().clone().requires_grad_()
    ls = params["temperature.logit_scale"].detach().clone().requires_grad_()
    la = params["image_scale.log_alpha"].detach().clone().requires_grad_()
    lt = params["text_scale.log_alpha"].detach().clone().requires_grad_()
    lo, hi = math.log(0.125), math.log(12.5)
    c = torch.exp(lo + (hi - lo) * torch.sigmoid(raw))
    want = _dense_loss(
        img, txt, geometry, c, torch.exp(-ls), None,
        torch.exp(la) / math.sqrt(6), torch.exp(lt) / math.sqrt(6),
    )  # fmt: skip
    wgrads = torch.autograd.grad(want, [raw, ls, la, lt])
    torch.testing.assert_close(got, want, rtol=1e4 * EPS64, atol=1e4 * EPS64)
    for g, w in zip(grads, wgrads, strict=True):
        assert float(w.abs()) > 1e-6  # every parameter actually receives a gradient
        torch.testing.assert_close(g, w, rtol=1e7 * EPS64, atol=1e4 * EPS64)


def test_fused_equals_dense_path() -> None:
    img, txt = _feats(7, 7, dtype=torch.float32)
    fused = HyperbolicContrastiveLoss("lorentz", use_fused=True)(img, txt)
    dense = HyperbolicContrastiveLoss("lorentz", use_fused=False)(img, txt)
    torch.testing.assert_close(fused, dense, rtol=100 * torch.finfo(torch.float32).eps, atol=0)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_gradcheck(geometry: str) -> None:
    img, txt = _feats(4, 6, d=3)
    t2i = torch.tensor([0, 1, 2, 3, 0, 1])
    loss_fn = HyperbolicContrastiveLoss(geometry, tau=0.3, entail_weight=0.5).double()
    img.requires_grad_()
    txt.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, t2i), (img, txt))


def test_float32_close_to_float64_and_autocast_stays_float32() -> None:
    img, txt = _feats(8, 8)
    loss_fn = HyperbolicContrastiveLoss("lorentz")
    ref = loss_fn(img, txt)
    f32 = loss_fn(img.float(), txt.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), ref, rtol=1e2 * EPS32, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ac = loss_fn(img.float(), txt.float())
        acb = loss_fn(img.bfloat16(), txt.bfloat16())
    assert ac.dtype == torch.float32 and acb.dtype == torch.float32
    torch.testing.assert_close(ac, f32, rtol=10 * torch.finfo(torch.float32).eps, atol=0)
    # bf16 inputs are rounded once, then computed in float32.
    want = loss_fn(img.bfloat16().float(), txt.bfloat16().float())
    torch.testing.assert_close(acb, want, rtol=10 * torch.finfo(torch.float32).eps, atol=0)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean", "cosine"])
def test_batch_of_one_is_zero_with_finite_gradient(geometry: str) -> None:
    img, txt = _feats(1, 1)
    img.requires_grad_()
    loss = HyperbolicContrastiveLoss(geometry)(img, txt)
    (g,) = torch.autograd.grad(loss, img)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e4 * EPS64)
    assert bool(torch.isfinite(g).all())


def test_identical_image_and_text_give_finite_gradients() -> None:
    img, _ = _feats(5, 5)
    for geometry in ("lorentz", "poincare", "euclidean"):
        x = img.clone().requires_grad_()
        loss = HyperbolicContrastiveLoss(
            geometry, entail_weight=0.2 if geometry != "euclidean" else 0.0
        )(x, x.detach().clone())
        (g,) = torch.autograd.grad(loss, x)
        assert bool(torch.isfinite(g).all()), geometry
    # A zero feature lifts to the origin, where the cone and the angle are degenerate.
    zero = torch.zeros(3, 6, dtype=F64, requires_grad=True)
    for geometry in ("lorentz", "poincare"):
        loss = HyperbolicContrastiveLoss(geometry, entail_weight=1.0)(img[:3], zero)
        (g,) = torch.autograd.grad(loss, zero)
        assert bool(torch.isfinite(loss)) and bool(torch.isfinite(g).all()), geometry


def test_errors_name_the_argument() -> None:
    loss_fn = HyperbolicContrastiveLoss()
    img, txt = _feats(4, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="image"):
        loss_fn(img[0], txt)
    with pytest.raises(ValueError, match="text"):
        loss_fn(img, txt[:, :3])
    bad = txt.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="text must be finite"):
        loss_fn(img, bad)
    with pytest.raises(ValueError, match="text_to_image"):
        loss_fn(img, torch.randn(6, 6))
    with pytest.raises(ValueError, match="text_to_image"):
        loss_fn(img, torch.randn(6, 6), torch.tensor([0, 1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match="text_to_image"):
        loss_fn(img, torch.randn(6, 6), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="text_to_image"):
        loss_fn(img, torch.randn(6, 6), torch.zeros(6))
    with pytest.raises(ValueError, match="geometry"):
        HyperbolicContrastiveLoss("klein")
    with pytest.raises(ValueError, match="entail_weight"):
        HyperbolicContrastiveLoss("cosine", entail_weight=0.1)
    with pytest.raises(ValueError, match="tau"):
        HyperbolicContrastiveLoss(tau=-1.0)


def _dense_cone(x, y, c, k=0.1):
    """Half-aperture and exterior angle from the raw Lorentz formulas (float64)."""
    cc = torch.as_tensor(c, dtype=x.dtype)
    xs_norm = (cc.sqrt() * x[:, 1:]).norm(dim=-1)
    aper = torch.asin((2 * k / xs_norm).clamp(max=1.0))
    inner = cc * ((x[:, 1:] * y[:, 1:]).sum(-1) - x[:, 0] * y[:, 0])
    num = cc.sqrt() * y[:, 0] + cc.sqrt() * x[:, 0] * inner
    den = xs_norm * torch.sqrt(inner**2 - 1)
    return aper, torch.acos((num / den).clamp(-1, 1))


def test_cone_angles_match_the_formulas() -> None:
    g = torch.Generator().manual_seed(3)
    c = 0.8
    x = lorentz_lift(torch.randn(20, 4, generator=g, dtype=F64), c)
    y = lorentz_lift(torch.randn(20, 4, generator=g, dtype=F64), c)
    aper, ext = _dense_cone(x, y, c)
    torch.testing.assert_close(half_aperture(x, c), aper, rtol=1e6 * EPS64, atol=1e4 * EPS64)
    torch.testing.assert_close(exterior_angle(x, y, c), ext, rtol=1e7 * EPS64, atol=1e7 * EPS64)


def test_cone_geometry() -> None:
    c = 1.0
    u = torch.tensor([[0.6, 0.8, 0.0]], dtype=F64)
    x = lorentz_lift(u * 1.0, c)
    outward = lorentz_lift(u * 2.0, c)  # same ray, further out: inside the cone
    inward = lorentz_lift(u * 0.5, c)  # towards the origin: outside
    assert float(exterior_angle(x, outward, c)) == pytest.approx(0.0, abs=1e-6)
    assert float(exterior_angle(x, inward, c)) == pytest.approx(math.pi, abs=1e-6)
    cone = EntailmentConeLoss("lorentz")
    assert float(cone(x, outward, c)) == 0.0
    assert float(cone(x, inward, c)) > 1.0
    # The Poincaré variant agrees with the Lorentz one on mapped points.
    from hypervldd.manifolds import conversions

    pcone = EntailmentConeLoss("poincare")
    px, pin = conversions.lorentz_to_poincare(x, c), conversions.lorentz_to_poincare(inward, c)
    assert float(pcone(px, pin, c)) == pytest.approx(float(cone(x, inward, c)), rel=1e-9)


def test_temperature_and_feature_scale_parametrisations() -> None:
    from hypervldd.losses import FeatureScale, Temperature

    t = Temperature(0.07, learnable=True, tau_min=0.05)
    with torch.no_grad():
        t.logit_scale.fill_(10.0)  # an optimiser overshooting: tau would be 4.5e-5
    assert float(t().detach()) == pytest.approx(0.05)
    assert float(Temperature(0.2)()) == pytest.approx(0.2, rel=EPS64)
    with pytest.raises(ValueError, match="tau_min"):
        Temperature(0.07, tau_min=0.0)
    with pytest.raises(ValueError, match="tau must be >= tau_min"):
        Temperature(0.01, learnable=True, tau_min=0.05)
    s = FeatureScale()
    u = torch.ones(2, 16)
    torch.testing.assert_close(s(u), u / 4.0)
    torch.testing.assert_close(FeatureScale(0.5)(u), u * 0.5)
    with pytest.raises(ValueError, match="feature_scale"):
        FeatureScale(-1.0)
    with pytest.raises(TypeError, match="feature_scale"):
        FeatureScale("half")
