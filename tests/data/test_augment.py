"""DSA-style differentiable augmentation: known answers, seeding, replay, gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hypervldd.data.augment import AUGMENT_OPS, AugmentParams, DiffAugment


def _with(params: AugmentParams, **kw: torch.Tensor) -> AugmentParams:
    return dataclasses.replace(params, **kw)


def _img(n: int = 2, c: int = 3, h: int = 6, w: int = 5, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, c, h, w, generator=g, dtype=dtype)


def test_identity_params_leave_images_unchanged():
    x = _img()
    out = DiffAugment().apply(x, AugmentParams.identity(x.shape[0]))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-6)


def test_integer_shift_moves_pixels_and_pads_with_zeros():
    x = _img(1, 1, 4, 5)
    p = _with(AugmentParams.identity(1), shift=torch.tensor([[2, -1]]))
    out = DiffAugment(ops=("crop",)).apply(x, p)
    want = torch.zeros_like(x)
    # (dx, dy) = (2, -1): right by two, up by one.
    want[..., 0:3, 2:5] = x[..., 1:4, 0:3]
    torch.testing.assert_close(out, want, rtol=0, atol=1e-6)


def test_flip_reverses_columns_exactly():
    x = _img()
    p = _with(AugmentParams.identity(2), flip=torch.tensor([True, False]))
    out = DiffAugment(ops=("flip",)).apply(x, p)
    torch.testing.assert_close(out[0], x[0].flip(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=1e-6)


def test_scale_two_zooms_on_the_centre():
    # A 4x4 image magnified x2: output pixel i samples input coordinate
    # (i - 1.5) / 2 + 1.5 = 0.75, 1.25, 1.75, 2.25; the profile (0, 1, 1, 0) is then
    # bilinear-interpolated to (0.75, 1, 1, 0.75) along each axis.
    x = torch.zeros(1, 1, 4, 4)
    x[..., 1:3, 1:3] = 1.0
    p = _with(AugmentParams.identity(1), scale=torch.tensor([[2.0, 2.0]]))
    out = DiffAugment(ops=("scale",)).apply(x, p)
    prof = torch.tensor([0.75, 1.0, 1.0, 0.75])
    torch.testing.assert_close(out[0, 0], torch.outer(prof, prof), rtol=0, atol=1e-6)
    p = _with(p, scale=torch.tensor([[0.5, 0.5]]))  # zoom out: the border goes to zero
    out = DiffAugment(ops=("scale",)).apply(torch.ones(1, 1, 8, 8), p)
    assert float(out[0, 0, 0, 0]) == 0.0 and float(out[0, 0, 4, 4]) == 1.0


def test_colour_operations_known_answers():
    x = _img(1)
    aug = DiffAugment(ops=("color",))
    ident = AugmentParams.identity(1)
    out = aug.apply(x, _with(ident, brightness=torch.tensor([0.25])))
    torch.testing.assert_close(out, x + 0.25)
    # Saturation 0: every channel becomes the per-pixel channel mean.
    out = aug.apply(x, _with(ident, saturation=torch.tensor([0.0])))
    torch.testing.assert_close(out, x.mean(1, keepdim=True).expand_as(x))
    # Contrast 0: every pixel becomes the image mean.
    out = aug.apply(x, _with(ident, contrast=torch.tensor([0.0])))
    torch.testing.assert_close(out, x.mean().expand_as(x))


def test_seeded_sampling_is_deterministic_and_replayable():
    aug = DiffAugment()
    x = _img(4, 3, 16, 16)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = aug(x, generator=g1), aug(x, generator=g2)
    assert torch.equal(a, b)
    g3 = torch.Generator().manual_seed(8)
    assert not torch.equal(a, aug(x, generator=g3))
    # Replay: the same params object reproduces the draw bit for bit.
    p = aug.sample(4, 16, 16, torch.Generator().manual_seed(7))
    assert torch.equal(aug.apply(x, p), a)
    assert torch.equal(aug.apply(x, p), aug.apply(x.clone(), p))


def test_sampling_consumes_the_same_randomness_for_any_ops():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    pa = DiffAugment(ops=AUGMENT_OPS).sample(5, 16, 16, g1)
    pb = DiffAugment(ops=("flip",)).sample(5, 16, 16, g2)
    assert torch.equal(pa.flip, pb.flip)
    assert torch.equal(g1.get_state(), g2.get_state())
    assert torch.equal(pb.shift, torch.zeros(5, 2, dtype=torch.int64))


def test_sampled_ranges():
    p = DiffAugment(translate=0.125, scale=1.2).sample(2000, 16, 24, torch.Generator())
    assert int(p.shift[:, 0].abs().max()) == 3 and int(p.shift[:, 1].abs().max()) == 2
    assert float(p.scale.min()) >= 1 / 1.2 and float(p.scale.max()) <= 1.2
    assert 0.4 < float(p.flip.float().mean()) < 0.6
    assert float(p.contrast.min()) >= 0.5 and float(p.contrast.max()) <= 1.5


def test_one_draw_broadcasts_to_the_batch():
    aug = DiffAugment()
    x = _img(3, 3, 8, 8)
    p1 = aug.sample(1, 8, 8, torch.Generator().manual_seed(2))
    rep = AugmentParams(**{k: v.expand(3, *v.shape[1:]) for k, v in p1.tensors().items()})
    torch.testing.assert_close(aug.apply(x, p1), aug.apply(x, rep))


def test_gradcheck_float64():
    aug = DiffAugment()
    p = aug.sample(2, 5, 5, torch.Generator().manual_seed(4))
    # Non-integer scales make the resampling a genuine bilinear blend.
    p = _with(p, scale=torch.tensor([[1.13, 0.91], [0.87, 1.07]]))
    x = _img(2, 3, 5, 5, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: aug.apply(t, p), (x,))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="ops"):
        DiffAugment(ops=("rotate",))
    with pytest.raises(ValueError, match="translate"):
        DiffAugment(translate=1.5)
    with pytest.raises(ValueError, match="scale"):
        DiffAugment(scale=0.5)
    with pytest.raises(ValueError, match="N, C, H, W"):
        DiffAugment().apply(torch.zeros(3, 4), AugmentParams.identity(1))
    with pytest.raises(ValueError, match="draws"):
        DiffAugment().apply(_img(3), AugmentParams.identity(2))
    with pytest.raises(ValueError, match="generator"):
        DiffAugment()(_img())
