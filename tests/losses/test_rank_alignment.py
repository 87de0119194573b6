"""Full-dataset rank alignment against its dense definition; streaming invariances."""

from __future__ import annotations

import pytest
import torch

from hypervldd import kernels
from hypervldd._checks import validation
from hypervldd.losses import FullDatasetRankAlignment

from ._dense import LIFT, PDIST

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps


def _points(geometry: str, n: int, d: int = 5, seed: int = 0, scale: float = 0.4, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return LIFT[geometry](torch.randn(n, d, generator=g, dtype=dtype) * scale, 1.0)


def _data(geometry: str, n: int = 40, m: int = 6, a: int = 3, d: int = 5):
    real_x = _points(geometry, n, d, seed=1)
    real_y = _points(geometry, n, d, seed=2)
    syn_x = _points(geometry, m, d, seed=3).requires_grad_()
    syn_y = _points(geometry, m, d, seed=4).requires_grad_()
    anc_x = _points(geometry, a, d, seed=5)
    anc_y = _points(geometry, a, d, seed=6)
    return syn_x, syn_y, real_x, real_y, anc_x, anc_y


def _dense(sx, sy, rx, ry, ax, ay, *, geometry, variant, tau=0.07, atau=0.07, t=1.0, wr=0.1):
    dist = PDIST[geometry]
    with torch.no_grad():
        w = torch.softmax(-(dist(rx, sx.detach(), 1.0) + dist(ry, sy.detach(), 1.0)) / atau, 1)
    qi = torch.cat([sx, ax])
    qt = torch.cat([sy, ay])
    out_rank, out_smooth = [], []
    for q, real_keys, syn_keys in ((qi, ry, sy), (qt, rx, sx)):
        with torch.no_grad():
            p = torch.softmax(-dist(q.detach(), real_keys, 1.0) / tau, 1) @ w  # (A, M), full N
        s = -dist(q, syn_keys, 1.0) / tau
        m = s.shape[1]
        if variant == "listwise":
            logq = torch.log_softmax(s, 1)
            out_rank.append((p * (torch.log(p) - logq)).sum(1).mean())
        else:
            tot = s.new_zeros(())
            for a in range(s.shape[0]):
                for i in range(m):
                    for j in range(m):
                        if i == j:
                            continue
                        pi = p[a, i] / (p[a, i] + p[a, j])
                        sig = torch.sigmoid(s[a, i] - s[a, j])
                        tot = (
                            tot
                            + pi * torch.log(pi / sig)
                            + (1 - pi) * torch.log((1 - pi) / (1 - sig))
                        )
            out_rank.append(tot / (s.shape[0] * m * (m - 1)))
        sm = s[:m]
        r = 1 + torch.stack(
            [
                sum(torch.sigmoid((sm[i, j] - sm[i, i]) / t) for j in range(m) if j != i)
                for i in range(m)
            ]
        )
        out_smooth.append(torch.log(r).mean())
    rank = 0.5 * (out_rank[0] + out_rank[1])
    smooth = 0.5 * (out_smooth[0] + out_smooth[1])
    return rank + wr * smooth, rank, smooth


@pytest.mark.parametrize(
    "geometry,variant",
    [
        ("lorentz", "listwise"),
        ("lorentz", "pairwise"),
        ("poincare", "listwise"),
        ("euclidean", "pairwise"),
    ],
)
def test_equals_dense_definition(geometry: str, variant: str) -> None:
    sx, sy, rx, ry, ax, ay = _data(geometry)
    loss = FullDatasetRankAlignment(geometry, variant=variant, chunk_size=16).double()
    got = loss.terms(sx, sy, rx, ry, ax, ay)
    want = _dense(sx, sy, rx, ry, ax, ay, geometry=geometry, variant=variant)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e7 * EPS64, atol=1e4 * EPS64)
    gg = torch.autograd.grad(got.total, (sx, sy))
    wg = torch.autograd.grad(want[0], (sx, sy))
    for g, w in zip(gg, wg, strict=True):
        assert float(w.abs().max()) > 0
        torch.testing.assert_close(g, w, rtol=EPS64**0.5, atol=1e5 * EPS64)


def test_invariant_to_order_of_the_real_set() -> None:
    sx, sy, rx, ry, ax, ay = _data("lorentz", n=60)
    loss = FullDatasetRankAlignment(chunk_size=7)
    perm = torch.randperm(rx.shape[0])
    a = loss(sx, sy, rx, ry, ax, ay)
    b = loss(sx, sy, rx[perm], ry[perm], ax, ay)
    torch.testing.assert_close(a, b, rtol=100 * torch.finfo(F64).eps, atol=0)
    assert float(a.detach()) > 0


@pytest.mark.parametrize("variant", ["listwise", "pairwise"])
def test_streaming_equals_one_chunk(variant: str) -> None:
    for dtype in (F64, torch.float32):
        sx, sy, rx, ry, ax, ay = _data("lorentz", n=30)
        sx = sx.detach().to(dtype).requires_grad_()
        sy = sy.detach().to(dtype).requires_grad_()
        rx, ry, ax, ay = (t.to(dtype) for t in (rx, ry, ax, ay))
        outs = []
        for chunk in (1, 7, 30):
            loss = FullDatasetRankAlignment(variant=variant, chunk_size=chunk)
            v = loss(sx, sy, rx, ry, ax, ay)
            outs.append((v, *torch.autograd.grad(v, (sx, sy))))
        tol = 200 * torch.finfo(dtype).eps
        for o in outs[1:]:
            for g, w in zip(o, outs[-1], strict=True):
                torch.testing.assert_close(g, w, rtol=tol, atol=tol * float(w.detach().abs().max()))


def test_smooth_rank_is_the_fused_row_statistic() -> None:
    sx, sy, rx, ry, _, _ = _data("lorentz")
    loss = FullDatasetRankAlignment(rank_temperature=0.5)
    got = loss.terms(sx, sy, rx, ry).smooth_rank
    r_i2t = kernels.row_stats(sx, sy, "lorentz", 1.0, 0.07, rank_temperature=0.5).smooth_rank
    r_t2i = kernels.row_stats(sy, sx, "lorentz", 1.0, 0.07, rank_temperature=0.5).smooth_rank
    want = 0.5 * (torch.log(r_i2t).mean() + torch.log(r_t2i).mean())
    torch.testing.assert_close(got, want, rtol=1e6 * EPS64, atol=0)


def test_perfect_synthetic_set_has_small_listwise_loss() -> None:
    # If the synthetic set is the real set, every real pair is its own key: P = Q exactly
    # in the limit of a sharp assignment.
    rx = _points("lorentz", 12, seed=7, scale=1.5)
    ry = _points("lorentz", 12, seed=8, scale=1.5)
    loss = FullDatasetRankAlignment(assign_tau=1e-3, rank_weight=0.0)
    same = loss(rx, ry, rx, ry)
    other = loss(
        _points("lorentz", 12, seed=9, scale=1.5),
        _points("lorentz", 12, seed=10, scale=1.5),
        rx,
        ry,
    )
    assert float(same) < 1e-6 < float(other)


def test_batch_of_one_float32_and_autocast() -> None:
    sx, sy, rx, ry, _, _ = _data("lorentz", m=1)
    loss = FullDatasetRankAlignment(variant="pairwise")
    t = loss.terms(sx, sy, rx, ry)
    assert float(t.ranking.detach()) == pytest.approx(
        0.0, abs=1e4 * EPS64
    )  # one key: nothing to order
    assert float(t.smooth_rank.detach()) == 0.0
    sx, sy, rx, ry, ax, ay = _data("lorentz")
    ref = FullDatasetRankAlignment()(sx, sy, rx, ry, ax, ay)
    f32 = FullDatasetRankAlignment()(*(v.detach().float() for v in (sx, sy, rx, ry, ax, ay)))
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), ref.detach(), rtol=1e3 * EPS32, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ac = FullDatasetRankAlignment()(*(v.detach().float() for v in (sx, sy, rx, ry, ax, ay)))
    assert ac.dtype == torch.float32
    torch.testing.assert_close(ac, f32, rtol=1e2 * EPS32, atol=0)


def test_gradcheck_smooth_rank() -> None:
    sx, sy, rx, ry, _, _ = _data("lorentz", n=4, m=3, d=3)
    loss = FullDatasetRankAlignment()
    # The ranking term has a stop-gradient target; the smooth-rank term is a plain function.
    # Finite differences move the Lorentz points off the hyperboloid: checks off.
    with validation(False):
        assert torch.autograd.gradcheck(
            lambda a, b: loss.terms(a, b, rx, ry).smooth_rank, (sx, sy), fast_mode=True
        )


def test_errors_name_the_argument() -> None:
    sx, sy, rx, ry, _, _ = _data("lorentz")
    loss = FullDatasetRankAlignment()
    with pytest.raises(ValueError, match="syn_text"):
        loss(sx, sy[:3], rx, ry)
    with pytest.raises(ValueError, match="real_text"):
        loss(sx, sy, rx, ry[:, :3])
    bad = rx.clone()
    bad[5, 1] = float("nan")
    with pytest.raises(ValueError, match="real_image must be finite"):
        loss(sx, sy, bad, ry)
    with pytest.raises(ValueError, match="anchor_image"):
        loss(sx, sy, rx, ry, anchor_image=rx[0])
    with pytest.raises(ValueError, match="variant"):
        FullDatasetRankAlignment(variant="pointwise")
    with pytest.raises(ValueError, match="geometry"):
        FullDatasetRankAlignment("cosine")


def test_real_checked_skips_rechecking_the_real_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """With real_checked=True the streaming pass validates nothing of the real set (it was
    checked where it entered); the loss is the same, and the synthetic set is still checked."""
    from hypervldd import _checks
    from hypervldd._checks import validation_enabled

    sx, sy, rx, ry, ax, ay = _data("lorentz", n=40)
    loss = FullDatasetRankAlignment(chunk_size=16, lift=False)
    seen: list[int] = []
    real_rows = {16, 8}  # the chunk sizes of the 40 real rows

    def spy(tensors, manifold, c=1.0):  # noqa: ANN001, ANN202
        if validation_enabled():
            seen.extend(int(t.shape[0]) for t, _ in tensors)
        return check(tensors, manifold, c)

    check = _checks.check_points
    monkeypatch.setattr(_checks, "check_points", spy)
    # The compiled pairwise op applies the same rule itself when asked to.
    from hypervldd.kernels import fused

    op = fused.pairwise_dist_op

    def op_spy(x, y, manifold, c, check_points=False):  # noqa: ANN001, ANN202
        if check_points:
            seen.extend((int(x.shape[0]), int(y.shape[0])))
        return op(x, y, manifold, c, check_points)

    monkeypatch.setattr(fused, "pairwise_dist_op", op_spy)
    want = loss(sx, sy, real_image=rx, real_text=ry, anchor_image=ax, anchor_text=ay)
    assert real_rows & set(seen), "the default path checks the real chunks"
    seen.clear()
    got = loss(
        sx, sy, real_image=rx, real_text=ry, anchor_image=ax, anchor_text=ay, real_checked=True
    )
    assert seen and not (real_rows & set(seen)), f"checked row counts {sorted(set(seen))}"
    assert torch.equal(got, want)
    bad = sy.detach().clone()
    bad[0, 0] = -bad[0, 0]
    with pytest.raises(ValueError, match="syn_text must hold points on the Lorentz model"):
        loss(sx, bad, real_image=rx, real_text=ry, real_checked=True)
