"""Robustness: perturbations, PGD and the recall-drop report (tiny encoder, tiny student)."""

import pytest
import torch

from hypervldd.eval import StudentConfig
from hypervldd.eval.robustness import (
    gaussian_noise,
    image_attack_loss,
    jpeg,
    pgd_images,
    pgd_text,
    quantize,
    robustness,
    text_attack_loss,
)
from hypervldd.eval.student import Student

H = 8  # image side of the tiny encoder


def _setup(n_img=12, caps=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth random images (a low-resolution pattern upsampled) in [0.1, 0.9].
    low = torch.rand(n_img, 3, 2, 2, generator=g)
    images = 0.1 + 0.8 * torch.nn.functional.interpolate(low, size=(H, H), mode="bilinear")
    w = torch.randn(3 * H * H, 16, generator=g) / 8.0

    def encode(x):
        return torch.tanh(x.flatten(1) @ w)

    t2i = torch.arange(n_img).repeat_interleave(caps)
    with torch.no_grad():
        text = encode(images)[t2i] @ torch.randn(16, 10, generator=g) + 0.05 * torch.randn(
            len(t2i), 10, generator=g
        )
    student = Student(16, 10, StudentConfig(width=8), torch.Generator().manual_seed(1)).eval()
    return images, encode, text, t2i, student


def test_quantisation_error_is_bounded_by_half_a_step():
    x = torch.randn(50, 33, generator=torch.Generator().manual_seed(0))
    for bits in (1, 2, 4, 8):
        q, step = quantize(x, bits)
        assert bool(((q - x).abs() <= step[:, None] / 2 + 1e-6).all())
        assert max(len(torch.unique(r)) for r in q) <= 2**bits
        assert torch.allclose(step, (x.amax(1) - x.amin(1)) / (2**bits - 1))
    const = torch.full((2, 5), 0.3)
    assert torch.equal(quantize(const, 4)[0], const)
    with pytest.raises(ValueError, match="bits"):
        quantize(x, 0)


def test_jpeg_and_noise_are_deterministic_and_bounded():
    images = _setup()[0]
    j1, j2 = jpeg(images, 75), jpeg(images, 75)
    assert torch.equal(j1, j2) and j1.shape == images.shape
    assert 0 < float((j1 - images).abs().mean()) < 0.05  # lossy but close on smooth images
    assert not torch.equal(jpeg(images, 10), j1)
    n1 = gaussian_noise(images, 0.01, generator=torch.Generator().manual_seed(5))
    n2 = gaussian_noise(images, 0.01, generator=torch.Generator().manual_seed(5))
    n3 = gaussian_noise(images, 0.01, generator=torch.Generator().manual_seed(6))
    assert torch.equal(n1, n2) and not torch.equal(n1, n3)
    assert float((n1 - images).std()) == pytest.approx(0.01, rel=0.1)
    assert float(n1.min()) >= 0 and float(n1.max()) <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jpeg(images * 2, 75)


def test_pgd_images_increases_loss_and_respects_eps():
    images, encode, text, t2i, student = _setup()
    pos = t2i[None, :] == torch.arange(len(images))[:, None]
    eps = 2.0 / 255.0
    adv = pgd_images(
        images, encode, student, text, pos, eps=eps, generator=torch.Generator().manual_seed(0)
    )
    assert float((adv - images).abs().max()) <= eps + 1e-7
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        txt = student.encode_text(text)
        clean = image_attack_loss(student, encode(images), txt, pos)
        attacked = image_attack_loss(student, encode(adv), txt, pos)
    assert float(attacked.sum()) > float(clean.sum())
    again = pgd_images(
        images, encode, student, text, pos, eps=eps, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(adv, again)


def test_pgd_text_increases_loss_and_respects_eps():
    images, encode, text, t2i, student = _setup()
    feats = encode(images).detach()
    adv = pgd_text(text, student, feats, t2i, eps=0.05, generator=torch.Generator().manual_seed(0))
    t0 = torch.nn.functional.normalize(text, dim=-1)
    assert float((adv - t0).abs().max()) <= 0.05 + 1e-7
    with torch.no_grad():
        img = student.encode_image(feats)
        clean = text_attack_loss(student, t0, img, t2i).sum()
        attacked = text_attack_loss(student, adv, img, t2i).sum()
    assert float(attacked) > float(clean)


def test_robustness_report_is_consistent_and_deterministic():
    images, encode, text, t2i, student = _setup()
    kw = {"batch_size": 5, "seed": 3}
    r1 = robustness([student], images, encode, text, t2i, **kw)
    r2 = robustness([student], images, encode, text, t2i, **kw)
    assert r1.to_dict()["drop"] == r2.to_dict()["drop"]
    assert set(r1.drop) == {"jpeg", "noise", "pgd_image", "pgd_text", "quant_text"}
    assert r1.mean_drop == pytest.approx(sum(r1.drop.values()) / 5)
    for name, d in r1.drop.items():
        assert d == pytest.approx(r1.clean["mean"] - r1.perturbed[name]["mean"])
    # The attack targets the ranking: it cannot do better than the clean inputs here.
    assert r1.drop["pgd_image"] >= 0 and r1.drop["pgd_text"] >= 0
    # Zero budgets leave the inputs unchanged: no drop.
    r0 = robustness(
        [student],
        images,
        encode,
        text,
        t2i,
        perturbations=("pgd_image", "pgd_text"),
        image_eps=0.0,
        text_eps=0.0,
    )
    assert r0.drop == {"pgd_image": 0.0, "pgd_text": 0.0}
    with pytest.raises(ValueError, match="perturbations"):
        robustness([student], images, encode, text, t2i, perturbations=("blur",))
