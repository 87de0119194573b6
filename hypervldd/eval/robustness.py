"""Robustness: how much test recall drops when the test inputs are perturbed.

Perturbations (all deterministic under a seed):

* image side, on pixels in ``[0, 1]`` re-encoded by the frozen image encoder:
  JPEG compression (:func:`jpeg`, quality 75), additive Gaussian noise
  (:func:`gaussian_noise`, sigma 0.01, clipped to ``[0, 1]``), and PGD
  (:func:`pgd_images`, L_inf ``eps = 2/255``, 10 steps, through the frozen encoder and
  the trained student);
* text side, on the (L2-normalised) frozen text embeddings: PGD (:func:`pgd_text`, L_inf
  ``eps = 0.05``, 10 steps) and uniform 4-bit quantisation (:func:`quantize`).

:func:`robustness` re-encodes the clean images through the same encoder callable (so the
clean and perturbed recalls share one encoding path), scores every perturbation with the
protocol's recall and reports the drop ``clean - perturbed`` of the mean recall
(percentage points) per perturbation and their mean.

The encoder is any differentiable callable ``pixels (B, 3, H, W) in [0, 1] -> (B, D_i)``;
:func:`encoder_pixel_fn` wraps a :class:`hypervldd.data.ImageEncoder` this way.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .metrics import retrieval_metrics
from .protocol import PERTURBATIONS
from .student import Student

__all__ = [
    "PERTURBATIONS",
    "jpeg",
    "gaussian_noise",
    "quantize",
    "pgd_images",
    "pgd_text",
    "image_attack_loss",
    "text_attack_loss",
    "encoder_pixel_fn",
    "encode_pixels",
    "robustness",
    "RobustnessResult",
]


Encoder = Callable[[torch.Tensor], torch.Tensor]


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (N, 3, H, W)")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if bool(images.min() < 0) or bool(images.max() > 1):
        raise ValueError(f"{name} must hold pixels in [0, 1]")
    return images


def jpeg(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """JPEG round trip of ``(N, 3, H, W)`` pixels in ``[0, 1]`` at ``quality`` (Pillow, 4:2:0).

    Pixels are rounded to 8 bits first (part of the perturbation). Deterministic.
    """
    images = _check_images(images)
    if not (isinstance(quality, int) and 1 <= quality <= 95):
        raise ValueError(f"quality must be an int in [1, 95], got {quality!r}")
    u8 = (images.detach() * 255.0).round().clamp(0, 255).to(torch.uint8)
    out = torch.empty_like(images)
    for i in range(images.shape[0]):
        buf = io.BytesIO()
        Image.fromarray(u8[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        out[i] = torch.from_numpy(arr).permute(2, 0, 1).to(images.dtype)
    return out


def gaussian_noise(
    images: torch.Tensor, sigma: float = 0.01, *, generator: torch.Generator
) -> torch.Tensor:
    """``clip(images + sigma * N(0, 1), 0, 1)`` with noise drawn from ``generator``."""
    images = _check_images(images)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite float >= 0, got {sigma}")
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + sigma * noise).clamp(0.0, 1.0)


def quantize(x: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform min-max quantisation of each row of ``x (N, D)`` to ``2**bits`` levels.

    Row ``i`` is mapped to ``lo_i + step_i * round((x - lo_i) / step_i)`` with
    ``step_i = (max_i - min_i) / (2**bits - 1)``, so ``|q - x| <= step_i / 2``.

    Returns:
        ``(quantised (N, D), step (N,))``; a constant row is returned unchanged (step 0).
    """
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an int in [1, 16], got {bits!r}")
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a 2-D floating-point tensor, got {tuple(x.shape)}")
    lo = x.amin(1, keepdim=True)
    step = (x.amax(1, keepdim=True) - lo) / (2**bits - 1)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = lo + safe * torch.round((x - lo) / safe)
    q = torch.where(step > 0, q, x)
    return q, step[:, 0]


def _positive_logsumexp(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``-log sum_{j in pos} softmax(logits)_j`` per row (multi-positive cross-entropy)."""
    masked = logits.masked_fill(~pos, -math.inf)
    return torch.logsumexp(logits, 1) - torch.logsumexp(masked, 1)


def image_attack_loss(
    student: Student, image_features: torch.Tensor, text_points: torch.Tensor, pos: torch.Tensor
) -> torch.Tensor:
    """Per-image loss ``(B,)``: cross-entropy of its ground-truth captions among all captions.

    ``text_points (N_txt, .)`` are the student's caption points; ``pos (B, N_txt)`` marks
    each image's captions. Logits are the student's ``-d / tau``.
    """
    return _positive_logsumexp(
        student.logits(student.encode_image(image_features), text_points), pos
    )


def text_attack_loss(
    student: Student, text_features: torch.Tensor, image_points: torch.Tensor, gt: torch.Tensor
) -> torch.Tensor:
    """Per-caption loss ``(B,)``: cross-entropy of its image among all images."""
    logits = student.logits(image_points, student.encode_text(text_features)).T
    return F.cross_entropy(logits, gt, reduction="none")


def _pgd(
    x0: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    eps: float,
    steps: int,
    alpha: float | None,
    generator: torch.Generator,
    box: tuple[float, float] | None,
) -> torch.Tensor:
    """L_inf PGD ascent on ``loss_fn(x).sum()`` from a random start in the eps-ball."""
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite float >= 0, got {eps}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    alpha = 2.5 * eps / max(steps, 1) if alpha is None else float(alpha)
    x0 = x0.detach()
    delta = (torch.rand(x0.shape, generator=generator, dtype=x0.dtype) * 2.0 - 1.0) * eps

    def project(x: torch.Tensor) -> torch.Tensor:
        x = torch.minimum(torch.maximum(x, x0 - eps), x0 + eps)
        return x.clamp(*box) if box is not None else x

    x = project(x0 + delta)
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(x).sum(), x)
        x = project(x.detach() + alpha * grad.sign())
    return x.detach()


def pgd_images(
    images: torch.Tensor,
    encode: Encoder,
    student: Student,
    text_features: torch.Tensor,
    pos: torch.Tensor,
    *,
    eps: float = 2.0 / 255.0,
    steps: int = 10,
    alpha: float | None = None,
    generator: torch.Generator,
    batch_size: int = 16,
) -> torch.Tensor:
    """Untargeted L_inf PGD on pixels through the frozen encoder and the student.

    Maximises :func:`image_attack_loss` of each image (its captions among all test
    captions); step ``alpha`` (default ``2.5 eps / steps``, Madry et al.), random start in
    the eps-ball drawn from ``generator``, pixels kept in ``[0, 1]``.

    Args:
        images: ``(N, 3, H, W)`` in ``[0, 1]``.
        encode: differentiable ``pixels -> (B, D_i)`` features.
        text_features: all test captions ``(N_txt, D_t)``.
        pos: ``(N, N_txt)`` bool, the captions of each image.

    Returns:
        Perturbed images, ``|x' - x|_inf <= eps``.
    """
    images = _check_images(images)
    with torch.no_grad():
        txt = student.encode_text(text_features.float())
    out = torch.empty_like(images)
    for i in range(0, images.shape[0], batch_size):
        p = pos[i : i + batch_size]
        out[i : i + batch_size] = _pgd(
            images[i : i + batch_size],
            lambda x, p=p: image_attack_loss(student, encode(x), txt, p),
            eps=eps,
            steps=steps,
            alpha=alpha,
            generator=generator,
            box=(0.0, 1.0),
        )
    return out


def pgd_text(
    text_features: torch.Tensor,
    student: Student,
    image_features: torch.Tensor,
    txt2img: torch.Tensor,
    *,
    eps: float = 0.05,
    steps: int = 10,
    alpha: float | None = None,
    generator: torch.Generator,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Untargeted L_inf PGD on L2-normalised text embeddings ``(N_txt, D_t)``.

    The embeddings are normalised first; each caption's :func:`text_attack_loss` (its image
    among all test images) is maximised within ``eps``; no box constraint.
    """
    t0 = F.normalize(text_features.float(), dim=-1)
    with torch.no_grad():
        img = student.encode_image(image_features.float())
    out = torch.empty_like(t0)
    for j in range(0, t0.shape[0], batch_size):
        gt = txt2img[j : j + batch_size]
        out[j : j + batch_size] = _pgd(
            t0[j : j + batch_size],
            lambda t, gt=gt: text_attack_loss(student, t, img, gt),
            eps=eps,
            steps=steps,
            alpha=alpha,
            generator=generator,
            box=None,
        )
    return out


def encode_pixels(encode: Encoder, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """``encode`` applied in batches without gradient, ``(N, D_i)`` float32."""
    with torch.no_grad():
        return torch.cat(
            [encode(images[i : i + batch_size]).float() for i in range(0, len(images), batch_size)]
        )


def encoder_pixel_fn(image_encoder: Any) -> Encoder:
    """A differentiable ``pixels in [0, 1] at the encoder's size -> features`` callable.

    Applies the encoder's mean/std normalisation, its ``_forward`` and its optional L2
    normalisation (the steps of ``ImageEncoder.encode_images`` after resizing), with
    gradients. Images must already be at ``image_encoder.preprocess.size``.
    """
    pre = image_encoder.preprocess
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        feats = image_encoder._forward(((pixels.float() - mean) / std).to(image_encoder.device))
        if image_encoder.normalize:
            feats = F.normalize(feats, dim=-1)
        return feats.float().cpu()

    return encode


@dataclass
class RobustnessResult:
    """Clean and perturbed recall (means over students) and the drops.

    Attributes:
        clean: metrics on the re-encoded clean inputs.
        perturbed: perturbation -> metrics.
        drop: perturbation -> ``clean["mean"] - perturbed["mean"]`` (percentage points).
        mean_drop: mean of ``drop`` over the perturbations.
        per_student: the same numbers per student.
        seconds: perturbation -> wall time.
    """

    clean: dict[str, float]
    perturbed: dict[str, dict[str, float]]
    drop: dict[str, float]
    mean_drop: float
    per_student: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "perturbed": self.perturbed,
            "drop": self.drop,
            "mean_drop": self.mean_drop,
            "per_student": self.per_student,
            "seconds": self.seconds,
        }


def _metrics(
    student: Student, img_feats: torch.Tensor, txt_feats: torch.Tensor, t2i: torch.Tensor
) -> dict[str, float]:
    with torch.no_grad():
        img = student.encode_image(img_feats.float())
        txt = student.encode_text(txt_feats.float())
    return retrieval_metrics(img, txt, t2i, student.retrieval_score)


def _avg(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def robustness(
    students: Sequence[Student],
    images: torch.Tensor,
    encode: Encoder,
    text_features: torch.Tensor,
    txt2img: torch.Tensor,
    *,
    perturbations: Sequence[str] = PERTURBATIONS,
    jpeg_quality: int = 75,
    noise_sigma: float = 0.01,
    image_eps: float = 2.0 / 255.0,
    text_eps: float = 0.05,
    steps: int = 10,
    quant_bits: int = 4,
    seed: int = 0,
    batch_size: int = 16,
) -> RobustnessResult:
    """Recall drop of trained students under each perturbation of the test inputs.

    Args:
        students: trained students (e.g. one per protocol seed); results are averaged.
        images: test images ``(N_img, 3, H, W)`` in ``[0, 1]`` at the encoder's input size.
        encode: differentiable frozen image encoder (see :func:`encoder_pixel_fn`).
        text_features: test caption features ``(N_txt, D_t)``.
        txt2img: ``(N_txt,)`` image index of each caption.
        perturbations: a subset of :data:`PERTURBATIONS`.
        seed: seeds the noise and the PGD random starts (one generator per perturbation
            and student, so results do not depend on which others run).

    Returns:
        A :class:`RobustnessResult`; drops in percentage points of mean recall.
    """
    images = _check_images(images)
    bad = sorted(set(perturbations) - set(PERTURBATIONS))
    if bad or not perturbations:
        raise ValueError(f"perturbations must be a non-empty subset of {PERTURBATIONS}, got {bad}")
    if not students:
        raise ValueError("students must hold at least one trained student")
    t2i = torch.as_tensor(txt2img, dtype=torch.int64)
    if t2i.shape != (text_features.shape[0],):
        raise ValueError(f"txt2img must have shape ({text_features.shape[0]},)")
    pos = t2i[None, :] == torch.arange(images.shape[0])[:, None]
    seconds: dict[str, float] = {}

    def gen(k: int, s: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(seed) * 1_000_003 + 7919 * k + s)

    t0 = time.perf_counter()
    clean_img = encode_pixels(encode, images, batch_size)
    seconds["clean"] = time.perf_counter() - t0
    shared_img: dict[str, torch.Tensor] = {}
    if "jpeg" in perturbations:
        t0 = time.perf_counter()
        shared_img["jpeg"] = encode_pixels(encode, jpeg(images, jpeg_quality), batch_size)
        seconds["jpeg"] = time.perf_counter() - t0
    if "noise" in perturbations:
        t0 = time.perf_counter()
        noisy = gaussian_noise(images, noise_sigma, generator=gen(1, 0))
        shared_img["noise"] = encode_pixels(encode, noisy, batch_size)
        seconds["noise"] = time.perf_counter() - t0
    if "quant_text" in perturbations:
        quant_txt = quantize(F.normalize(text_features.float(), dim=-1), quant_bits)[0]

    rows = []
    for s, student in enumerate(students):
        student.eval()
        row: dict[str, Any] = {"clean": _metrics(student, clean_img, text_features, t2i)}
        for name in perturbations:
            t0 = time.perf_counter()
            if name in shared_img:
                m = _metrics(student, shared_img[name], text_features, t2i)
            elif name == "pgd_image":
                adv = pgd_images(
                    images,
                    encode,
                    student,
                    text_features,
                    pos,
                    eps=image_eps,
                    steps=steps,
                    generator=gen(2, s),
                    batch_size=batch_size,
                )
                m = _metrics(student, encode_pixels(encode, adv, batch_size), text_features, t2i)
            elif name == "pgd_text":
                adv_t = pgd_text(
                    text_features,
                    student,
                    clean_img,
                    t2i,
                    eps=text_eps,
                    steps=steps,
                    generator=gen(3, s),
                )
                m = _metrics(student, clean_img, adv_t, t2i)
            else:  # quant_text
                m = _metrics(student, clean_img, quant_txt, t2i)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            row[name] = m
        row["drop"] = {n: row["clean"]["mean"] - row[n]["mean"] for n in perturbations}
        rows.append(row)
    clean = _avg([r["clean"] for r in rows])
    perturbed = {n: _avg([r[n] for r in rows]) for n in perturbations}
    drop = {n: clean["mean"] - perturbed[n]["mean"] for n in perturbations}
    return RobustnessResult(clean, perturbed, drop, sum(drop.values()) / len(drop), rows, seconds)
