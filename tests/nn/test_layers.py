"""Hyperbolic layers: manifold constraints, dtypes, gradcheck, geometry and learning."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from hypervldd import validation
from hypervldd.manifolds import Lorentz, PoincareBall
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.manifolds import poincare_math as pm
from hypervldd.nn import (
    DistanceSimilarity,
    ExpMapHead,
    LorentzLinear,
    LorentzMidpoint,
    LorentzMLR,
    MobiusLinear,
    PoincareLinear,
    PoincareMidpoint,
    PoincareMLR,
    lorentz_midpoint,
    lorentz_mlr_logits,
    poincare_midpoint,
)

DTYPES = [torch.float32, torch.float64]


def _tol(dtype: torch.dtype, k: float = 64.0) -> float:
    return k * torch.finfo(dtype).eps


def lorentz_residual(x: torch.Tensor, c: float) -> float:
    """Relative residual of ``c <x, x>_L + 1`` (scaled by the size of the terms)."""
    x = x.double()
    return float(((c * lm.inner(x, x) + 1.0).abs() / (c * (x * x).sum(-1) + 1.0)).max())


def assert_on(m, y: torch.Tensor) -> None:
    y = y.detach()
    c = float(m.c.detach())
    if isinstance(m, Lorentz):
        assert float(y[..., 0].min()) > 0
        assert lorentz_residual(y, c) < _tol(y.dtype)
    elif isinstance(m, PoincareBall):
        assert float((c * (y.double() ** 2).sum(-1)).max()) < 1.0
    assert torch.isfinite(y).all()


def lorentz_points(n, d, dtype, c=1.0, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, dtype=dtype, generator=g) * scale
    return lm.expmap0(torch.nn.functional.pad(v, (1, 0)), c)


def ball_points(n, d, dtype, c=1.0, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return pm.expmap0(torch.randn(n, d, dtype=dtype, generator=g) * scale, c)


# -- constraints and dtypes ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
def test_expmap_head_outputs_and_radius_spread(dtype, geometry):
    torch.manual_seed(0)
    head = ExpMapHead(16, 8, geometry, c=1.5).to(dtype)
    # Inputs with a wide spread of norms, as real features have.
    x = torch.randn(256, 16, dtype=dtype) * torch.logspace(-1, 1, 256, dtype=dtype)[:, None]
    y = head(x)
    assert y.dtype == dtype
    assert y.shape == (256, 9 if geometry == "lorentz" else 8)
    assert_on(head.manifold, y)
    if geometry != "euclidean":
        r = head.manifold.dist0(y.detach()).double()
        # Radius proportional to the feature norm (no saturation onto one shell):
        # |u| on the hyperboloid, 2|u| on the ball (conformal factor 2 at the origin).
        k = 2.0 if geometry == "poincare" else 1.0
        expected = k * torch.linalg.vector_norm(head.tangent(x).detach().double(), dim=-1)
        ok = expected < 8.0
        assert int(ok.sum()) > 200
        # float32 loses ~eps / (1 - |x|) near the ball's boundary: 1e-3 at radius 8.
        rtol = 1e-3 if dtype == torch.float32 else 1e-10
        assert torch.allclose(r[ok], expected[ok], rtol=rtol)
        assert float((r.std() / r.mean()).detach()) > 0.3


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_expmap_head_calibrate_sets_median_radius(geometry):
    torch.manual_seed(1)
    head = ExpMapHead(32, 16, geometry, c=2.0)
    x = torch.randn(512, 32) * 5
    head.calibrate_(x, radius=2.0)
    r = head.manifold.dist0(head(x).detach()).double()
    assert abs(float(r.median().detach()) - 2.0) < 0.05


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_lorentz_linear_on_manifold(dtype, c):
    torch.manual_seed(0)
    layer = LorentzLinear(6, 4, c=c).to(dtype)
    with torch.no_grad():
        layer.linear.weight.normal_(0, 3.0)  # far from the origin on purpose
    x = lorentz_points(32, 6, dtype, c, scale=2.0)
    y = layer(x)
    assert y.shape == (32, 5) and y.dtype == dtype
    assert_on(layer.manifold, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [PoincareLinear, MobiusLinear])
def test_poincare_linears_on_manifold(dtype, cls):
    torch.manual_seed(0)
    layer = cls(6, 4, c=1.3).to(dtype)
    for p in layer.parameters():
        with torch.no_grad():
            p.normal_(0, 2.0)  # large weights push outputs to the boundary
    x = ball_points(64, 6, dtype, 1.3, scale=3.0)
    y = layer(x)
    assert y.shape == (64, 4) and y.dtype == dtype
    assert_on(layer.manifold, y)
    # Zero input is not a special case (Möbius matvec of 0 is 0).
    assert torch.isfinite(layer(torch.zeros(2, 6, dtype=dtype))).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_midpoints_on_manifold_and_geodesic_midpoint(dtype):
    c = 0.7
    x = lorentz_points(2, 3, dtype, c, seed=3, scale=2.5)
    mid = lorentz_midpoint(x, c)
    assert_on(Lorentz(c), mid)
    d = lm.dist(x[0], x[1], c)
    tol = 1e3 * torch.finfo(dtype).eps
    assert torch.allclose(lm.dist(mid, x[0], c), d / 2, rtol=tol, atol=tol)
    assert torch.allclose(lm.dist(mid, x[1], c), d / 2, rtol=tol, atol=tol)
    p = ball_points(2, 3, dtype, c, seed=3, scale=2.5)
    pmid = poincare_midpoint(p, c)
    assert_on(PoincareBall(c), pmid)
    dp = pm.dist(p[0], p[1], c)
    assert torch.allclose(pm.dist(pmid, p[0], c), dp / 2, rtol=10 * tol, atol=10 * tol)
    # Batched pooling with weights: a one-hot weight returns that point.
    pts = ball_points(10, 3, dtype, c, seed=4).reshape(2, 5, 3)
    w = torch.zeros(2, 5, dtype=dtype)
    w[:, 2] = 1.0
    pooled = PoincareMidpoint(c=c)(pts, w)
    assert torch.allclose(pooled, pts[:, 2], atol=10 * tol)


def test_midpoint_rejects_bad_weights_and_dims():
    x = lorentz_points(4, 3, torch.float64)
    with pytest.raises(ValueError, match="weights"):
        lorentz_midpoint(x, 1.0, torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="weights"):
        lorentz_midpoint(x, 1.0, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="dim"):
        lorentz_midpoint(x, 1.0, dim=-1)


# -- MLR geometry and precision -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a", [0.0, 2.0, 10.0, -10.0])
@pytest.mark.parametrize("c", [1.0, 2.0])
def test_lorentz_mlr_is_norm_times_signed_distance(dtype, a, c):
    """On the axis of z, the signed distance to the hyperplane at offset a is t - a.

    HyperbolicCV's beta = sqrt(|w_s|^2 - w_t^2) is 0 at sqrt(c) a = 10 in float32;
    here the logit stays accurate to float32 precision there.
    """
    ts = torch.tensor([a - 3, a - 0.5, a, a + 1e-3, a + 0.5, a + 3], dtype=dtype)
    u = torch.zeros(6, 4, dtype=dtype)
    u[:, 2] = ts  # the tangent norm at the origin is the distance from it
    x = lm.expmap0(u, c)
    z = torch.tensor([[0.0, 2.0, 0.0]], dtype=dtype)
    logits = lorentz_mlr_logits(x, z, torch.tensor([a], dtype=dtype), torch.tensor(c, dtype=dtype))
    expected = 2.0 * (ts - a)
    assert torch.allclose(logits[:, 0], expected, rtol=0, atol=_tol(dtype, 1e2) * max(1, abs(a)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_poincare_mlr_is_twice_norm_times_signed_distance(dtype):
    """r = 0, z = |z| e1: the gyroplane is {x1 = 0}, half the distance to the mirror image."""
    c = 1.7
    mlr = PoincareMLR(3, 1, c=c).to(dtype)
    with torch.no_grad():
        mlr.z.copy_(torch.tensor([[1.5, 0.0, 0.0]]))
    x = ball_points(20, 3, dtype, c, seed=5, scale=2.0)
    mirror = x * torch.tensor([-1.0, 1.0, 1.0], dtype=dtype)
    signed = torch.sign(x[:, 0]) * pm.dist(x, mirror, c) / 2
    assert torch.allclose(mlr(x)[:, 0], 2 * 1.5 * signed, rtol=_tol(dtype, 1e3), atol=_tol(dtype))


# -- gradcheck ----------------------------------------------------------------------------


def _gradcheck(layer, x):
    # Finite differences step off the hyperboloid; the on-manifold input check
    # would (rightly) reject those points, so it is off here.
    with validation(False):
        _gradcheck_impl(layer, x)


def _gradcheck_impl(layer, x):
    layer = layer.double()
    x = x.double().detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,), eps=1e-6, atol=1e-7)
    # Parameter gradients (curvature, scale, weights) through a functional call.
    named = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    if not named:
        return
    names = [n for n, _ in named]
    values = tuple(p.detach().clone().requires_grad_(True) for _, p in named)

    def g(*vals):
        return functional_call(layer, dict(zip(names, vals, strict=True)), (x.detach(),))

    assert torch.autograd.gradcheck(g, values, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "make,inp",
    [
        (lambda: ExpMapHead(4, 3, "lorentz", c=1.3), lambda: torch.randn(5, 4)),
        (lambda: ExpMapHead(4, 3, "poincare", c=0.8), lambda: torch.randn(5, 4)),
        (
            lambda: LorentzLinear(3, 2, c=1.2, learn_c=True),
            lambda: lorentz_points(4, 3, torch.float64, 1.2),
        ),
        (
            lambda: LorentzMLR(3, 4, c=0.9, learn_c=True),
            lambda: lorentz_points(5, 3, torch.float64, 0.9),
        ),
        (
            lambda: PoincareLinear(3, 2, c=1.1, learn_c=True),
            lambda: ball_points(4, 3, torch.float64, 1.1),
        ),
        (
            lambda: MobiusLinear(3, 2, c=0.7, learn_c=True),
            lambda: ball_points(4, 3, torch.float64, 0.7),
        ),
        (
            lambda: PoincareMLR(3, 4, c=1.4, learn_c=True),
            lambda: ball_points(5, 3, torch.float64, 1.4),
        ),
        (
            lambda: LorentzMidpoint(c=1.0),
            lambda: lorentz_points(6, 3, torch.float64).reshape(2, 3, 4),
        ),
        (
            lambda: PoincareMidpoint(c=1.0),
            lambda: ball_points(6, 3, torch.float64).reshape(2, 3, 3),
        ),
    ],
)
def test_gradcheck_float64(make, inp):
    torch.manual_seed(0)
    layer = make()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith(".a") or name == "a" or name == "r":
                p.uniform_(-0.5, 0.5)  # non-zero offsets exercise every branch
    _gradcheck(layer, inp())


def test_gradcheck_distance_similarity():
    torch.manual_seed(0)
    sim = DistanceSimilarity("lorentz", c=1.0, tau=0.1).double()
    x = lorentz_points(3, 2, torch.float64, seed=1).requires_grad_(True)
    y = lorentz_points(4, 2, torch.float64, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: sim(a, b), (x, y), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
def test_similarity_zero_distance_has_finite_gradient(geometry):
    sim = DistanceSimilarity(geometry, tau=0.5)
    pts = lorentz_points if geometry == "lorentz" else ball_points
    x = pts(3, 4, torch.float32).requires_grad_(True)
    logits = sim(x, x.detach())
    assert torch.allclose(logits.diagonal(), torch.zeros(3))
    logits.sum().backward()
    assert torch.isfinite(x.grad).all()


# -- learning a fixed problem -------------------------------------------------------------


def _fit(model, loss_fn, steps, lr=0.05):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    return float(loss_fn().detach())


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
def test_expmap_head_learns_a_teacher(geometry):
    torch.manual_seed(0)
    teacher = ExpMapHead(6, 3, geometry, learn_c=False)
    student = ExpMapHead(6, 3, geometry, learn_c=False)
    x = torch.randn(32, 6)
    with torch.no_grad():
        target = teacher(x)
    m = student.manifold

    def loss():
        return m.dist(student(x), target).pow(2).mean()

    start = float(loss().detach())
    assert _fit(student, loss, 80) < 1e-3 * start


@pytest.mark.parametrize(
    "cls,points,ratio",
    [
        (LorentzLinear, lorentz_points, 0.01),
        # The HNN++ layer's sinh/asinh make its loss landscape the slowest to descend.
        (PoincareLinear, ball_points, 0.15),
        (MobiusLinear, ball_points, 0.01),
    ],
)
def test_hyperbolic_linear_learns_a_teacher(cls, points, ratio):
    torch.manual_seed(0)
    teacher, student = cls(4, 3), cls(4, 3)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = points(32, 4, torch.float32, seed=7)
    with torch.no_grad():
        target = teacher(x)
    m = student.manifold

    def loss():
        return m.dist(student(x), target).pow(2).mean()

    start = float(loss().detach())
    assert _fit(student, loss, 80) < ratio * start


@pytest.mark.parametrize("cls,points", [(LorentzMLR, lorentz_points), (PoincareMLR, ball_points)])
def test_mlr_learns_to_classify(cls, points):
    torch.manual_seed(0)
    k, d, n = 3, 2, 30
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = torch.arange(k).repeat_interleave(n)
    v = centers[labels] + 0.4 * torch.randn(k * n, d)
    x = (
        lm.expmap0(torch.nn.functional.pad(v, (1, 0)), 1.0)
        if cls is LorentzMLR
        else pm.expmap0(v, 1.0)
    )
    model = cls(d, k)

    def loss():
        return torch.nn.functional.cross_entropy(model(x), labels)

    final = _fit(model, loss, 100, lr=0.1)
    acc = float((model(x).argmax(-1) == labels).float().mean())
    assert final < 0.25 and acc > 0.95


@pytest.mark.parametrize("geometry", ["lorentz", "poincare", "euclidean"])
def test_similarity_head_learns_pairs(geometry):
    torch.manual_seed(0)
    head_a, head_b = ExpMapHead(8, 4, geometry), ExpMapHead(8, 4, geometry)
    sim = DistanceSimilarity(head_a.manifold, tau=0.2)
    head_b.manifold = head_a.manifold
    x = torch.randn(16, 8)
    y = x + 0.1 * torch.randn(16, 8)
    model = torch.nn.ModuleList([head_a, head_b, sim])
    target = torch.arange(16)

    def loss():
        return torch.nn.functional.cross_entropy(sim(head_a(x), head_b(y)), target)

    start = float(loss().detach())
    final = _fit(model, loss, 60)
    assert final < 0.1 and final < start


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
def test_weighted_midpoint_pooling_learns_weights(geometry):
    torch.manual_seed(0)
    pts = (
        lorentz_points(5, 3, torch.float64)
        if geometry == "lorentz"
        else ball_points(5, 3, torch.float64)
    )
    pool = LorentzMidpoint() if geometry == "lorentz" else PoincareMidpoint()
    m = pool.manifold
    w_true = torch.tensor([0.1, 0.5, 0.2, 0.1, 0.1], dtype=torch.float64)
    target = pool(pts, w_true)
    logits = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    holder = torch.nn.ParameterList([logits])

    def loss():
        return m.dist(pool(pts, torch.softmax(logits, 0)), target).pow(2)

    assert _fit(holder, loss, 100, lr=0.1) < 1e-4


# -- argument checking --------------------------------------------------------------------


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="in_features"):
        ExpMapHead(0, 3)
    with pytest.raises(ValueError, match="manifold"):
        ExpMapHead(3, 3, "hyperbolic")
    with pytest.raises(ValueError, match="x"):
        ExpMapHead(3, 2)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="x"):
        ExpMapHead(3, 2)(torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="x"):
        LorentzLinear(3, 2)(torch.randn(4, 3))  # not 3 + 1 coordinates
    with pytest.raises(TypeError, match="manifold"):
        LorentzLinear(3, 2, PoincareBall(1.0))
    with pytest.raises(ValueError, match="x is not on the Lorentz"):
        LorentzMLR(2, 3)(torch.tensor([[1.0, 3.0, 0.0]]))
    with pytest.raises(ValueError, match="x is not on the PoincareBall"):
        PoincareMLR(2, 3)(torch.tensor([[2.0, 0.0]]))
    with pytest.raises(ValueError, match="tau"):
        DistanceSimilarity(tau=0.0)
    with pytest.raises(ValueError, match="radius"):
        ExpMapHead(3, 2).calibrate_(torch.randn(4, 3), radius=-1.0)
