"""Riemannian SGD / Adam / AdamW: Euclidean parity with torch, manifold behaviour, robustness."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch

from hypervldd.manifolds import Lorentz, PoincareBall, Sphere
from hypervldd.manifolds import lorentz_math as lm
from hypervldd.optim import RiemannianAdam, RiemannianAdamW, RiemannianSGD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import geoopt


def _model(seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(
        dtype
    )


def _loss(model: torch.nn.Module, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + step)
    dtype = next(model.parameters()).dtype
    x = torch.randn(16, 4, generator=g, dtype=dtype)
    y = torch.randn(16, 2, generator=g, dtype=dtype)
    return ((model(x) - y) ** 2).mean()


PARITY = [
    (RiemannianSGD, torch.optim.SGD, dict(lr=0.1)),
    (RiemannianSGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (RiemannianSGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (RiemannianSGD, torch.optim.SGD, dict(lr=0.05, momentum=0.5, dampening=0.3)),
    (RiemannianAdam, torch.optim.Adam, dict(lr=0.01)),
    (RiemannianAdam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (RiemannianAdamW, torch.optim.AdamW, dict(lr=0.01)),
    (RiemannianAdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3, betas=(0.8, 0.99))),
]


@pytest.mark.parametrize("ours_cls,torch_cls,kw", PARITY)
@pytest.mark.parametrize("foreach", [False, True])
def test_euclidean_parameters_follow_torch_exactly(ours_cls, torch_cls, kw, foreach):
    a, b = _model(), _model()
    opt_a = ours_cls(a.parameters(), foreach=foreach, **kw)
    opt_b = torch_cls(b.parameters(), foreach=foreach, **kw)
    for step in range(12):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _loss(model, step).backward()
            opt.step()
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb), f"step {step}: trajectories differ"


def test_euclidean_manifold_parameter_follows_torch():
    """A ManifoldParameter on a Euclidean manifold is a plain parameter to the optimiser."""
    torch.manual_seed(0)
    x0 = torch.randn(5, 3, dtype=torch.float64)
    target = torch.randn(5, 3, dtype=torch.float64)
    p = geoopt.ManifoldParameter(x0.clone(), manifold=geoopt.Euclidean(ndim=1))
    q = torch.nn.Parameter(x0.clone())
    oa = RiemannianAdam([p], lr=0.05, weight_decay=0.01)
    ob = torch.optim.Adam([q], lr=0.05, weight_decay=0.01)
    for _ in range(10):
        for t, o in ((p, oa), (q, ob)):
            o.zero_grad()
            ((t - target) ** 2).sum().backward()
            o.step()
    assert torch.equal(p.data, q.data)


def _manifolds():
    return [
        ("lorentz", Lorentz(1.0)),
        ("lorentz_c2", Lorentz(2.0)),
        ("poincare", PoincareBall(1.0)),
        ("geoopt_lorentz", geoopt.Lorentz()),
        ("geoopt_poincare", geoopt.PoincareBall()),
    ]


def _points(m, n=6, d=4, seed=0, scale=0.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, d, dtype=dtype, generator=g) * scale
    if isinstance(m, (Lorentz, geoopt.Lorentz)):
        return m.projx(torch.nn.functional.pad(v, (1, 0)))
    return m.expmap0(v)


def _dist(m, x, y):
    return m.dist(x, y)


OPTS = [
    (RiemannianSGD, dict(lr=0.2)),
    (RiemannianSGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-4)),
    (RiemannianAdam, dict(lr=0.1)),
    (RiemannianAdamW, dict(lr=0.1, weight_decay=1e-4)),
]


@pytest.mark.parametrize("name,m", _manifolds())
@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_converges_and_never_mutates_grad(name, m, opt_cls, kw):
    x0 = _points(m, seed=1)
    target = _points(m, seed=2)
    p = geoopt.ManifoldParameter(x0.clone(), manifold=m)
    opt = opt_cls([p], **kw)
    start = float(_dist(m, p, target).pow(2).sum().detach())
    for _ in range(60):
        opt.zero_grad()
        loss = _dist(m, p, target).pow(2).sum()
        loss.backward()
        g = p.grad.clone()
        opt.step()
        assert torch.equal(p.grad, g), "p.grad was modified by the optimiser"
    final = float(_dist(m, p, target).pow(2).sum().detach())
    assert final < 1e-2 * start, (start, final)
    _assert_on_manifold(m, p.detach())


def _assert_on_manifold(m, x):
    tol = 1e3 * torch.finfo(x.dtype).eps
    if isinstance(m, (Lorentz, geoopt.Lorentz)):
        c = float(m.c) if isinstance(m, Lorentz) else 1.0 / float(m.k)
        res = (c * lm.inner(x, x) + 1.0).abs() / (c * (x * x).sum(-1) + 1.0)
        assert float(res.max()) < tol
    else:
        c = float(m.c)
        assert float((c * (x * x).sum(-1)).max()) < 1.0


def test_one_sgd_step_is_the_exponential_map():
    m = Lorentz(1.5)
    x = _points(m)
    g = torch.randn_like(x)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    p.grad = g.clone()
    RiemannianSGD([p], lr=0.3).step()
    expected = lm.expmap(x, -0.3 * lm.egrad2rgrad(x, g, 1.5), 1.5)
    tol = 64 * torch.finfo(torch.float64).eps
    assert torch.allclose(p.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_foreach_matches_per_tensor_loop(opt_cls, kw):
    m = Lorentz(1.0)
    shapes = [(3, 5), (4, 5), (2, 2, 5)]
    results = []
    for foreach in (False, True):
        ps = [
            geoopt.ManifoldParameter(
                lm.projx(
                    torch.randn(*s, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
                    * 0.3,
                    1.0,
                ),
                manifold=m,
            )
            for i, s in enumerate(shapes)
        ]
        opt = opt_cls(ps, foreach=foreach, **kw)
        for step in range(5):
            opt.zero_grad()
            loss = sum((lm.dist0(p, 1.0) - 1.0 - 0.1 * step).pow(2).sum() for p in ps)
            loss.backward()
            opt.step()
        results.append([p.detach().clone() for p in ps])
    tol = 1e3 * torch.finfo(torch.float64).eps
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name,m", _manifolds() + [("sphere", Sphere(1.0))])
@pytest.mark.parametrize("opt_cls,kw", OPTS[:3])
def test_zero_gradient_is_a_fixed_point_without_nan(name, m, opt_cls, kw):
    kw = {k: v for k, v in kw.items() if k != "weight_decay"}
    x0 = _points(m, d=3) if not isinstance(m, Sphere) else m.projx(torch.randn(4, 3).double())
    # Include the origin, where tangent-vector norms are exactly zero.
    x0[0] = m.origin(x0.shape[-1], dtype=torch.float64)
    p = geoopt.ManifoldParameter(x0.clone(), manifold=m)
    opt = opt_cls([p], **kw)
    for _ in range(3):
        p.grad = torch.zeros_like(p)
        opt.step()
    assert torch.isfinite(p).all()
    assert torch.allclose(p.data, x0, atol=1e-12, rtol=0)
    for v in opt.state[p].values():
        if torch.is_tensor(v):
            assert torch.isfinite(v).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adamw_decay_is_a_geodesic_shrink_to_the_origin(dtype):
    m = PoincareBall(1.0)
    x = m.random(5, 3, radius=2.0, dtype=dtype)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    lr, wd = 0.1, 0.5
    opt = RiemannianAdamW([p], lr=lr, weight_decay=wd)
    p.grad = torch.zeros_like(p)
    opt.step()
    r0 = m.dist0(x)
    r1 = m.dist0(p.detach())
    rtol = 100 * torch.finfo(dtype).eps ** 0.5
    assert torch.allclose(r1, (1 - lr * wd) * r0, rtol=rtol)
    # Direction unchanged: still on the same ray.
    cos = torch.nn.functional.cosine_similarity(p.detach(), x, dim=-1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=rtol)


def test_stabilize_reprojects_onto_the_manifold():
    m = Lorentz(1.0)
    x = _points(m)
    bad = x.clone()
    bad[:, 0] += 0.5  # off the hyperboloid: wrong time coordinate
    p = geoopt.ManifoldParameter(bad, manifold=m)
    opt = RiemannianSGD([p], lr=1e-3, stabilize=1)
    p.grad = torch.zeros_like(p)
    opt.step()
    res = (lm.inner(p.detach(), p.detach()) + 1.0).abs().max()
    assert float(res) < 1e3 * torch.finfo(torch.float64).eps


def _train(opt, p, m, target, steps):
    for _ in range(steps):
        opt.zero_grad()
        m.dist(p, target).pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_state_dict_round_trip_and_deepcopy(opt_cls, kw):
    m = Lorentz(1.0)
    target = _points(m, seed=3)
    p = geoopt.ManifoldParameter(_points(m, seed=4), manifold=m)
    w = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = opt_cls([p, w], **kw)

    def step_all(opt, p, w, n):
        for _ in range(n):
            opt.zero_grad()
            (m.dist(p, target).pow(2).sum() + (w**2).sum()).backward()
            opt.step()

    step_all(opt, p, w, 4)
    # Save through a real serialisation, restore into fresh objects.
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    p2 = geoopt.ManifoldParameter(p.detach().clone(), manifold=m)
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = opt_cls([p2, w2], **kw)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    # And a deep copy of the whole training state.
    p3, w3, opt3 = copy.deepcopy((p, w, opt))
    assert isinstance(p3, geoopt.ManifoldParameter)
    step_all(opt, p, w, 4)
    step_all(opt2, p2, w2, 4)
    step_all(opt3, p3, w3, 4)
    assert torch.equal(p.data, p2.data) and torch.equal(w.data, w2.data)
    assert torch.equal(p.data, p3.data) and torch.equal(w.data, w3.data)


def test_float32_far_points_stay_finite_with_adam():
    m = Lorentz(1.0)
    x = m.random(8, 6, radius=torch.linspace(0.5, 12.0, 8), dtype=torch.float32)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    target = m.random(8, 6, radius=1.0, dtype=torch.float32)
    opt = RiemannianAdam([p], lr=0.2, stabilize=10)
    _train(opt, p, m, target, 60)
    assert torch.isfinite(p).all()
    with torch.no_grad():
        assert float(m.dist(p, target).max()) < float(m.dist(x, target).max())


def test_sparse_gradient_on_a_manifold_parameter_raises():
    m = PoincareBall(1.0)
    p = geoopt.ManifoldParameter(torch.zeros(4, 2), manifold=m)
    p.grad = torch.zeros(4, 2).to_sparse()
    with pytest.raises(ValueError, match="sparse"):
        RiemannianSGD([p], lr=0.1).step()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda ps: RiemannianSGD(ps, lr=-1.0), "lr"),
        (lambda ps: RiemannianSGD(ps, lr=0.1, nesterov=True), "nesterov"),
        (lambda ps: RiemannianSGD(ps, lr=0.1, stabilize=0), "stabilize"),
        (lambda ps: RiemannianAdam(ps, betas=(0.9, 1.0)), "beta2"),
        (lambda ps: RiemannianAdam(ps, betas=(0.9,)), "betas"),
        (lambda ps: RiemannianAdamW(ps, weight_decay=float("nan")), "weight_decay"),
        (lambda ps: RiemannianAdam(ps, eps=-1e-8), "eps"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize("opt_cls,kw", OPTS)
def test_grad_untouched_on_geoopt_lorentz(opt_cls, kw):
    """geoopt's Lorentz egrad2rgrad flips the time sign in place; p.grad must survive."""
    m = geoopt.Lorentz()
    x = _points(m)
    g = torch.randn_like(x)
    p = geoopt.ManifoldParameter(x.clone(), manifold=m)
    p.grad = g.clone()
    opt_cls([p], **kw).step()
    assert torch.equal(p.grad, g)
