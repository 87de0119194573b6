"""RAHA: faithful and corrected settings against a step-by-step dense re-derivation."""

from __future__ import annotations

import math

import pytest
import torch

from hypervldd.losses import (
    RAHALoss,
    adaptive_rank,
    ot_relevance_matching,
    range_residual_subspaces,
    reference_lift,
    sinkhorn_plan,
)

from ._dense import info_nce, lorentz_lift, lorentz_pdist

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps


def _batch(b: int, d: int, scale: float = 1.0, seed: int = 0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(b, 3, generator=g, dtype=dtype)
    mix_x = torch.randn(3, d, generator=g, dtype=dtype)
    mix_y = torch.randn(3, d, generator=g, dtype=dtype)
    # Image and text share a low-rank signal plus noise: a real coupling with a range.
    x = shared @ mix_x + 0.3 * torch.randn(b, d, generator=g, dtype=dtype)
    y = shared @ mix_y + 0.3 * torch.randn(b, d, generator=g, dtype=dtype)
    return scale * x, scale * y


def _dense_raha(
    ri,
    rt,
    si,
    st,
    *,
    faithful: bool,
    c=1.0,
    tau=0.07,
    tr=0.07,
    eta=0.95,
    eps=0.05,
    iters=20,
    lam=(0.8, 0.4, 0.1),
):
    """Every step written out with explicit d x d matrices, float64."""
    d = ri.shape[1]
    if faithful:
        b = min(ri.shape[0], si.shape[0])
        ri, rt = ri[:b], rt[:b]

        def lift(u):
            r = (math.sqrt(c) * u.norm(dim=-1, keepdim=True)).clamp(1e-8, math.asinh(2.0**15))
            xs = torch.sinh(r) / r * u
            return torch.cat([torch.sqrt(1 / c + (xs * xs).sum(-1, keepdim=True)), xs], -1)
    else:

        def lift(u):
            return lorentz_lift(u / math.sqrt(d), c)

    def log0(p):
        xs = p[:, 1:]
        n = math.sqrt(c) * xs.norm(dim=-1, keepdim=True)
        return torch.asinh(n) * xs / n

    xs_p, ys_p = lift(si), lift(st)
    hitc = info_nce(-lorentz_pdist(xs_p, ys_p, c) / tau)
    if faithful:
        xs_p, ys_p = xs_p[:b], ys_p[:b]
    xs, ys = log0(xs_p), log0(ys_p)
    xr, yr = log0(lift(ri)).detach(), log0(lift(rt)).detach()

    def cov(x, y):
        return (x - x.mean(0)).T @ (y - y.mean(0)) / (x.shape[0] - 1)

    cr, cs = cov(xr, yr), cov(xs, ys)
    u, s, vh = torch.linalg.svd(cr)
    e = s**2
    k = int(torch.nonzero(torch.cumsum(e, 0) / e.sum() >= eta - 1e-12)[0]) + 1
    uk, vk = u[:, :k], vh.T[:, :k]
    pu = torch.eye(d, dtype=F64) - uk @ uk.T
    pv = torch.eye(d, dtype=F64) - vk @ vk.T

    def sinkhorn(m):
        m = m / m.mean()
        kk = torch.exp(-m / eps)
        a = torch.full((m.shape[0],), 1 / m.shape[0], dtype=F64)
        bb = torch.full((m.shape[1],), 1 / m.shape[1], dtype=F64)
        vv = torch.ones(m.shape[1], dtype=F64)
        for _ in range(iters):
            uu = a / (kk @ vv)
            vv = bb / (kk.T @ uu)
        t = uu[:, None] * kk * vv[None, :]
        return t / t.sum()

    tt = tr if faithful else 1.0

    def ell(sr, ss):
        logp = torch.log_softmax(sr.detach() / tt, 1)
        logq = torch.log_softmax(ss / tt, 1)
        q = logq.exp()
        # m[i, j] = sum_l q_il (log q_il - log p_jl), by broadcasting.
        m = (q[:, None, :] * (logq[:, None, :] - logp[None, :, :])).sum(-1).clamp_min(0)
        return tr**2 * (sinkhorn(m.detach()) * m).sum()

    def match(qr, kr, qs, ks):
        if faithful:
            sr, ss = qr @ kr.T / tr, qs @ ks.T / tr
            return 0.5 * (ell(sr, ss) + ell(sr.T, ss.T))
        return 0.5 * (ell(qr @ kr.T / tr, qs @ kr.T / tr) + ell(kr @ qr.T / tr, ks @ qr.T / tr))

    range_m = match(xr @ uk, yr @ vk, xs @ uk, ys @ vk)
    resid_m = match(xr @ pu, yr @ pv, xs @ pu, ys @ pv)
    er = ((uk.T @ cr @ vk) ** 2).mean()
    es = ((uk.T @ cs @ vk) ** 2).mean()
    expand = torch.relu(er - es) / er
    rho = ((pu @ cs @ pv) ** 2).mean() / es
    comp = rho + torch.relu(rho - 1)
    total = hitc + lam[0] * (range_m + expand) + lam[1] * resid_m + lam[2] * comp
    return dict(
        total=total,
        hitc=hitc,
        range_match=range_m,
        expand=expand,
        residual_match=resid_m,
        compress=comp,
        rank=k,
    )


@pytest.mark.parametrize("faithful", [True, False])
def test_matches_step_by_step_dense_rederivation(faithful: bool) -> None:
    b, d = 10, 16
    ri, rt = _batch(b, d, scale=2.0, seed=1)
    si, st = _batch(b + 2, d, scale=2.0, seed=2)
    si.requires_grad_()
    st.requires_grad_()
    got = RAHALoss(faithful=faithful).terms(ri, rt, si, st)
    want = _dense_raha(ri, rt, si, st, faithful=faithful)
    assert got.rank == want["rank"] and got.rank >= 1
    for name in ("hitc", "range_match", "expand", "residual_match", "compress", "total"):
        torch.testing.assert_close(
            getattr(got, name), want[name], rtol=EPS64**0.4, atol=1e6 * EPS64, msg=name
        )
    g = torch.autograd.grad(got.total, (si, st))
    w = torch.autograd.grad(want["total"], (si, st))
    for a, e in zip(g, w, strict=True):
        torch.testing.assert_close(a, e, rtol=EPS64**0.4, atol=1e7 * EPS64)


def test_qr_subspaces_equal_svd_subspaces() -> None:
    b, d = 24, 300
    x, y = _batch(b, d, seed=4)
    for eta in (0.5, 0.95, 0.999):
        q = range_residual_subspaces(x, y, eta, solver="qr")
        s = range_residual_subspaces(x, y, eta, solver="svd")
        assert q.rank == s.rank
        n = min(q.singular_values.numel(), s.singular_values.numel())
        top = float(s.singular_values[0])
        torch.testing.assert_close(
            q.singular_values[:n], s.singular_values[:n], rtol=0, atol=1e6 * EPS64 * top
        )
        for a, e in ((q.u, s.u), (q.v, s.v)):
            pa, pe = a @ a.T, e @ e.T  # projectors: unique, unlike sign-ambiguous bases
            assert float((pa - pe).norm() / pe.norm()) < 1e-5


def test_adaptive_rank() -> None:
    g = torch.Generator().manual_seed(5)
    b, d = 16, 64
    t = torch.randn(b, 1, generator=g, dtype=F64)
    x = t @ torch.randn(1, d, generator=g, dtype=F64)
    y = -2.0 * t @ torch.randn(1, d, generator=g, dtype=F64)
    for eta in (0.5, 0.95, 1.0):
        assert range_residual_subspaces(x, y, eta).rank == 1  # rank-1 coupling
    xn = torch.randn(b, d, generator=g, dtype=F64)
    yn = torch.randn(b, d, generator=g, dtype=F64)
    # White noise: centring leaves rank b - 1, and with eta near 1 every direction counts.
    assert range_residual_subspaces(xn, yn, 0.999999).rank == b - 1
    assert range_residual_subspaces(xn, yn, 1.0, solver="svd").rank == b - 1
    assert range_residual_subspaces(xn, yn, 0.5).rank < b - 1
    assert range_residual_subspaces(xn, yn, 0.999999, max_rank=3).rank == 3
    assert adaptive_rank(torch.zeros(5, dtype=F64), 0.95) == 0
    assert adaptive_rank(torch.tensor([3.0, 4.0], dtype=F64), 9 / 25) == 1
    assert adaptive_rank(torch.tensor([3.0, 4.0], dtype=F64), 9 / 25 + 1e-3) == 2


def test_ot_matching_invariant_to_permuting_synthetic_rows() -> None:
    g = torch.Generator().manual_seed(6)
    real = torch.randn(9, 7, generator=g, dtype=F64)
    syn = torch.randn(9, 7, generator=g, dtype=F64)
    perm = torch.randperm(9, generator=g)
    a = ot_relevance_matching(real, syn, tau_t=0.07)
    b = ot_relevance_matching(real, syn[perm], tau_t=0.07)
    torch.testing.assert_close(a, b, rtol=1e4 * EPS64, atol=0)


def test_shared_anchors_make_the_loss_invariant_to_synthetic_order() -> None:
    b, d = 12, 20
    ri, rt = _batch(b, d, seed=7)
    si, st = _batch(b, d, seed=8)
    perm = torch.randperm(b)
    fixed = RAHALoss()
    a, p = fixed.terms(ri, rt, si, st), fixed.terms(ri, rt, si[perm], st[perm])
    for name in ("range_match", "residual_match", "total"):
        torch.testing.assert_close(getattr(a, name), getattr(p, name), rtol=1e6 * EPS64, atol=0)
    # The reference's column-by-index cost is not invariant: that is the defect corrected.
    ref = RAHALoss(faithful=True)
    fa, fp = ref.terms(ri, rt, si, st), ref.terms(ri, rt, si[perm], st[perm])
    assert abs(float(fa.range_match - fp.range_match)) > 1e-3 * abs(float(fa.range_match))
    # A synthetic batch that is a permutation of the real one is (nearly) a perfect match
    # for the corrected cost, but not for the reference's.
    same = fixed.terms(ri, rt, ri[perm], rt[perm])
    other = fixed.terms(ri, rt, si, st)
    assert float(same.range_match) < 0.1 * float(other.range_match)
    ref_same = ref.terms(ri, rt, ri[perm], rt[perm])
    assert float(ref_same.range_match) > 10 * float(same.range_match)


def test_scaled_lift_lets_radii_vary() -> None:
    g = torch.Generator().manual_seed(9)
    d = 2304
    # LayerNorm output has norm exactly sqrt(d) = 48: one radius, 12.56, for every point.
    ln = torch.nn.functional.layer_norm(torch.randn(8, d, generator=g, dtype=F64), (d,))
    radii = torch.asinh(reference_lift(ln, 1.0)[:, 1:].norm(dim=-1))
    assert float(radii.max() - radii.min()) < 1e-5
    assert float(radii.mean()) == pytest.approx(12.56, abs=0.01)
    # With a learned LayerNorm gain the norms spread by +-20 %, but the clamped lift maps
    # them to radii log(norm) + const: the tangent features are nearly normalised.
    u = ln * torch.linspace(0.8, 1.2, 8, dtype=F64)[:, None]
    ref_pts = reference_lift(u, 1.0)
    radii = torch.asinh(ref_pts[:, 1:].norm(dim=-1))
    tangent = RAHALoss(faithful=True).tangent(ref_pts)
    torch.testing.assert_close(tangent, radii[:, None] * u / u.norm(dim=-1, keepdim=True))
    spread_ref = float((radii.max() - radii.min()) / radii.mean())
    assert spread_ref < 0.04
    fixed = RAHALoss()
    r2 = torch.asinh(fixed.lift(u)[:, 1:].norm(dim=-1))
    spread_fixed = float((r2.max() - r2.min()) / r2.mean())
    assert spread_fixed > 0.35  # radii follow the feature norms (0.8 to 1.2)
    torch.testing.assert_close(fixed.tangent(fixed.lift(u)), u / math.sqrt(d))


def test_single_temperature_changes_only_the_effective_temperature() -> None:
    b, d = 10, 12
    ri, rt = _batch(b, d, seed=10)
    si, st = _batch(b, d, seed=11)
    single = RAHALoss().terms(ri, rt, si, st)
    double = RAHALoss(single_temperature=False).terms(ri, rt, si, st)
    assert single.rank == double.rank
    torch.testing.assert_close(single.hitc, double.hitc)
    torch.testing.assert_close(single.expand, double.expand)
    assert abs(float(single.range_match - double.range_match)) > 1e-6
    # Double division by 0.07 makes the relevance rows nearly one-hot.
    logits = torch.randn(6, 6, dtype=F64) * 2
    p_double = torch.softmax(logits / 0.07 / 0.07, 1)
    p_single = torch.softmax(logits / 0.07, 1)
    assert float(p_double.max(1).values.min()) > float(p_single.max(1).values.min())


def test_gradcheck_on_the_smooth_terms() -> None:
    b, d = 5, 4
    ri, rt = _batch(b, d, seed=12)
    si, st = _batch(b, d, seed=13)
    si.requires_grad_()
    st.requires_grad_()
    loss = RAHALoss(eta=0.7)

    def f(a, c):
        t = loss.terms(ri, rt, a, c)
        # The OT terms use a constant plan by design; these three are true functions.
        return t.hitc + t.expand + t.compress

    assert torch.autograd.gradcheck(f, (si, st), fast_mode=True)


def test_batch_of_one_float32_and_autocast() -> None:
    ri, rt = _batch(1, 8, seed=14, dtype=torch.float32)
    si, st = _batch(1, 8, seed=15, dtype=torch.float32)
    si.requires_grad_()
    t = RAHALoss().terms(ri, rt, si, st)
    assert t.rank == 0 and float(t.range_match.detach()) == 0.0
    (g,) = torch.autograd.grad(t.total, si, allow_unused=True)
    assert g is None or bool(torch.isfinite(g).all())
    ri, rt = _batch(8, 8, seed=16)
    si, st = _batch(1, 8, seed=17)
    one = RAHALoss().terms(ri, rt, si.float(), st.float())
    assert all(bool(torch.isfinite(v)) for v in one[:6])
    si, st = _batch(8, 8, seed=17)
    ref = RAHALoss().terms(ri, rt, si, st)
    f32 = RAHALoss().terms(ri.float(), rt.float(), si.float(), st.float())
    assert f32.total.dtype == torch.float32 and f32.rank == ref.rank
    torch.testing.assert_close(f32.total.double(), ref.total, rtol=1e3 * EPS32, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ac = RAHALoss().terms(ri.float(), rt.float(), si.float(), st.float())
    assert ac.total.dtype == torch.float32
    torch.testing.assert_close(ac.total, f32.total, rtol=1e2 * EPS32, atol=0)


def test_errors_name_the_argument() -> None:
    ri, rt = _batch(4, 6, dtype=torch.float32)
    loss = RAHALoss()
    with pytest.raises(ValueError, match="real_text"):
        loss(ri, rt[:3], ri, rt)
    with pytest.raises(ValueError, match="syn_image"):
        loss(ri, rt, ri[:, :5], rt)
    bad = rt.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="syn_text must be finite"):
        loss(ri, rt, ri, bad)
    with pytest.raises(ValueError, match="real_image"):
        loss(ri[0], rt, ri, rt)
    with pytest.raises(ValueError, match="eta"):
        RAHALoss(eta=1.5)
    with pytest.raises(ValueError, match="solver"):
        RAHALoss(solver="eig")


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_batched_sinkhorn_plans_equal_one_by_one(dtype: torch.dtype) -> None:
    """RAHA solves its four plans as one batch: each equals the plan solved alone."""
    from hypervldd.losses import sinkhorn_plan

    g = torch.Generator().manual_seed(7)
    costs = torch.rand(4, 9, 13, generator=g, dtype=F64).to(dtype) * torch.tensor(
        [1.0, 3.0, 0.2, 50.0], dtype=dtype
    ).view(4, 1, 1)
    batched = sinkhorn_plan(costs, eps=0.05, iters=20)
    eps = torch.finfo(dtype).eps
    for i in range(4):
        alone = sinkhorn_plan(costs[i], eps=0.05, iters=20)
        torch.testing.assert_close(batched[i], alone, rtol=64 * eps, atol=64 * eps * 1e-2)
        assert abs(float(batched[i].sum()) - 1.0) < 64 * eps


@pytest.mark.parametrize(("b", "dx", "dy"), [(40, 6, 6), (40, 6, 5), (12, 30, 7), (12, 9, 30)])
def test_qr_subspaces_with_other_widths(b: int, dx: int, dy: int) -> None:
    """b > d (R factors d x b, Q d x d) and image and text widths that differ: the
    bases still match the SVD's."""
    x, _ = _batch(b, dx, seed=8)
    _, y = _batch(b, dy, seed=8)
    q = range_residual_subspaces(x, y, 0.999, solver="qr")
    s = range_residual_subspaces(x, y, 0.999, solver="svd")
    assert q.rank == s.rank and q.u.shape == s.u.shape and q.v.shape == s.v.shape
    assert q.u.shape == (dx, q.rank) and q.v.shape == (dy, q.rank)
    for a, e in ((q.u, s.u), (q.v, s.v)):
        assert float((a @ a.T - e @ e.T).norm() / (e @ e.T).norm()) < 1e-8


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sinkhorn_scaling_rounds_equal_log_domain_rounds(dtype: torch.dtype) -> None:
    """The plan comes from float64 kernel-domain rounds; the log-domain rounds (the
    fallback) take the same iterates, so after 20 rounds (not converged) they agree."""
    from hypervldd.losses.raha import _sinkhorn_log

    g = torch.Generator().manual_seed(11)
    costs = torch.rand(3, 7, 12, generator=g, dtype=F64) ** 3 * torch.tensor(
        [1.0, 8.0, 0.01], dtype=F64
    ).view(3, 1, 1)
    costs = costs.to(dtype)
    plan = sinkhorn_plan(costs, eps=0.05, iters=20)
    assert plan.dtype == dtype
    log_k = -(costs / costs.mean((-2, -1), keepdim=True)) / 0.05
    want = _sinkhorn_log(log_k.double(), 20)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(plan.double(), want, rtol=64 * eps, atol=64 * EPS64)
    # Not yet converged (the rows off their marginal after the last column update): the
    # equality is of the iterates, not only of the fixed point.
    assert float((want.sum(-1) - 1.0 / 7).abs().max()) > 1e3 * EPS64


def test_sinkhorn_kernel_domain_holds_a_wide_spread(monkeypatch) -> None:
    """A row spread of the log-kernel of about 600 (kernel entries near 1e-260) still runs
    in the kernel domain, and equals the log-domain rounds."""
    from hypervldd.losses import raha

    g = torch.Generator().manual_seed(14)
    cost = torch.rand(6, 30, generator=g, dtype=F64)
    cost[:, 4] = 1e3
    log_k = -(cost / cost.mean()) / 0.05
    spread = float((log_k.amax(-1, keepdim=True) - log_k).max())
    assert 400 < spread < 700
    want = raha._sinkhorn_log(log_k, 20)

    def refuse(*args: object) -> None:
        raise AssertionError("the log domain ran")

    monkeypatch.setattr(raha, "_sinkhorn_log", refuse)
    plan = sinkhorn_plan(cost, eps=0.05, iters=20)
    torch.testing.assert_close(plan, want, rtol=64 * EPS64, atol=64 * EPS64)
    torch.testing.assert_close(plan.sum(0), torch.full((30,), 1 / 30, dtype=F64))


def test_sinkhorn_falls_back_to_the_log_domain_beyond_float64() -> None:
    """A kernel spread beyond float64 (one column of costs about 60x the mean, with eps =
    0.05 a log-kernel of -1200) breaks the kernel-domain rounds; the plan then comes from
    the log domain: finite, that column still gets its marginal mass."""
    from hypervldd.losses.raha import _sinkhorn_log, _sinkhorn_scaling

    g = torch.Generator().manual_seed(12)
    cost = torch.rand(6, 60, generator=g, dtype=F64)
    cost[:, 2] = 1e4
    log_k = -(cost / cost.mean()) / 0.05
    assert float(log_k.min()) < -1000
    raw, ok = _sinkhorn_scaling(log_k - log_k.amax(-1, keepdim=True), 50)
    # The kernel-domain rounds alone fail here, and say so.
    assert not bool(torch.isfinite(raw).all()) and not bool(ok)
    plan = sinkhorn_plan(cost, eps=0.05, iters=50)
    torch.testing.assert_close(plan, _sinkhorn_log(log_k, 50), rtol=0, atol=0)
    torch.testing.assert_close(plan.sum(0), torch.full((60,), 1 / 60, dtype=F64))
    torch.testing.assert_close(plan.sum(1), torch.full((6,), 1 / 6, dtype=F64))
    nan_cost = cost.clone()
    nan_cost[1, 1] = float("nan")
    assert bool(torch.isnan(sinkhorn_plan(nan_cost)).all())  # NaN in, NaN out


def test_subspaces_from_the_gram_matrix_and_the_svd_fallback(monkeypatch) -> None:
    """The QR solver's kept pairs come from eigh of a b x b Gram matrix; a kept singular
    value below 1e-3 of the largest (its pairing would carry the squared conditioning)
    takes the SVD instead. Either way the bases and values are the d x d SVD's."""
    g = torch.Generator().manual_seed(13)
    b, d = 30, 40
    z = torch.linalg.qr(torch.randn(b, 4, generator=g, dtype=F64))[0]
    x = z @ torch.randn(4, d, generator=g, dtype=F64)
    y = (z * torch.tensor([1.0, 0.3, 1e-2, 1e-5], dtype=F64)) @ torch.randn(
        4, d, generator=g, dtype=F64
    )
    svd_calls = []
    real_svd = torch.linalg.svd
    monkeypatch.setattr(
        torch.linalg, "svd", lambda *a, **k: svd_calls.append(1) or real_svd(*a, **k)
    )
    for eta, ratio_small in ((0.99, False), (1.0 - 1e-12, True)):
        svd_calls.clear()
        q = range_residual_subspaces(x, y, eta, solver="qr")
        assert len(svd_calls) == int(ratio_small)  # the fallback only for the tiny pair
        s = range_residual_subspaces(x, y, eta, solver="svd")
        assert q.rank == s.rank == (4 if ratio_small else 2)
        top = float(s.singular_values[0])
        n = q.singular_values.numel()
        torch.testing.assert_close(
            q.singular_values, s.singular_values[:n], rtol=0, atol=1e6 * EPS64 * top
        )
        for a, e in ((q.u, s.u), (q.v, s.v)):
            assert float((a @ a.T - e @ e.T).norm() / (e @ e.T).norm()) < 1e-8
            torch.testing.assert_close(a.T @ a, torch.eye(q.rank, dtype=F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_lifted_tangent_equals_the_round_trip_through_the_hyperboloid(dtype) -> None:
    """tangent(lift(u)) without the round trip: the same values and gradients, the radius
    cap of exp_0 included (rows far beyond max_radius), zero rows included; the reference's
    clamped lift keeps the round trip."""
    g = torch.Generator().manual_seed(15)
    d = 16
    radii = torch.tensor([0.0, 1e-6, 0.3, 3.0, 30.0, 400.0, 1e25], dtype=F64)
    dirs = torch.nn.functional.normalize(torch.randn(7, d, generator=g, dtype=F64), dim=1)
    u = (dirs * radii[:, None] * math.sqrt(d) / 0.5).to(dtype)  # c = 0.25: sqrt(c) = 0.5
    # (The reference's lift overflows float32 at norm 1e25: that row only for the exact lift.)
    for loss, rows in ((RAHALoss(c=0.25), u), (RAHALoss(c=0.25, faithful=True), u[:-1])):
        a = rows.clone().requires_grad_()
        b = rows.clone().requires_grad_()
        got = loss.lifted_tangent(a)
        want = loss.tangent(loss.lift(b))
        assert bool(torch.isfinite(got).all())
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(got, want, rtol=64 * eps, atol=64 * eps)
        w = torch.randn(got.shape, generator=g, dtype=F64).to(dtype)
        (ga,) = torch.autograd.grad((got * w).sum(), a)
        (gb,) = torch.autograd.grad((want * w).sum(), b)
        torch.testing.assert_close(ga, gb, rtol=1e3 * eps, atol=1e3 * eps * float(ga.abs().max()))
    # The cap: radius sqrt(c)|v| is max_radius(dtype) for the rows beyond it.
    from hypervldd.numerics import max_radius

    r = 0.5 * RAHALoss(c=0.25).lifted_tangent(u).double().norm(dim=1)
    torch.testing.assert_close(r[-1].item(), max_radius(dtype), rtol=1e-5, atol=0)
