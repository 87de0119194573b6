"""A Klein student: the same distances as the Klein manifold, and it trains."""

from __future__ import annotations

import pytest
import torch

from hypervldd.eval import EvalProtocol, Student, StudentConfig, train_student
from hypervldd.manifolds import Klein, Lorentz, conversions

CFG = StudentConfig(geometry="klein", curvature=0.8, width=8)


def _pairs(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    img = torch.randn(n, 6, generator=g)
    return img, img[:, :5] + 0.1 * torch.randn(n, 5, generator=g)  # matched pairs


def test_klein_student_lifts_distances_and_scores() -> None:
    img, txt = _pairs()
    st = Student(6, 5, CFG, torch.Generator().manual_seed(0)).double()
    assert isinstance(st.manifold, Klein)
    v = st.image_tangent(img.double())
    x = st.encode_image(img.double())
    y = st.encode_text(txt.double())
    assert x.shape == (16, 8)
    # the lift keeps dist(origin, point) = |v|, as the other geometries' do
    assert torch.allclose(st.manifold.dist0(x), v.norm(dim=-1), rtol=1e-10)
    d = st.distance(x, y)
    ref = st.manifold.pairwise_dist(x, y)
    assert torch.allclose(d, ref, rtol=1e-8, atol=1e-7)
    # the Lorentz student on the hyperboloid images gives the same distances
    lx, ly = conversions.klein_to_lorentz(x, 0.8), conversions.klein_to_lorentz(y, 0.8)
    assert torch.allclose(d, Lorentz(0.8).pairwise_dist(lx, ly), rtol=1e-8, atol=1e-7)
    # the retrieval score ranks exactly as the distance does
    score = st.retrieval_score(x, y)
    assert torch.equal(score.argsort(dim=1, descending=True), d.argsort(dim=1))
    assert torch.allclose(score, -torch.cosh(0.8**0.5 * d), rtol=1e-10)


def test_klein_student_trains() -> None:
    img, txt = _pairs()
    st = Student(6, 5, CFG, torch.Generator().manual_seed(0))
    protocol = EvalProtocol(student=CFG, epochs=6, batch_size=8, seeds=(0,))
    losses = train_student(st, img, txt, protocol, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]


def test_unknown_geometry_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match=r"student.geometry must be one of .*'klein'"):
        StudentConfig(geometry="beltrami")


def test_cli_geometry_klein_sets_the_protocol_student() -> None:
    from hypervldd.cli import _protocol, build_parser

    args = build_parser().parse_args(
        ["evaluate", "--artifact", "a.safetensors"] + ["--geometry", "klein"]
    )
    assert _protocol(args).student.geometry == "klein"
    args = build_parser().parse_args(["evaluate", "--artifact", "a.safetensors"])
    assert _protocol(args).student.geometry == "lorentz"
