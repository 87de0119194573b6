"""Image-text retrieval recall (BLIP ``itm_eval`` semantics), chunked.

Definitions (``K`` in ``ks``; all values in percent):

* **TR@K** (image -> text): for each image, rank all captions by score; the
  image's rank is the best (smallest) rank among its ground-truth captions. A hit
  when that rank is ``< K`` (0-based).
* **IR@K** (text -> image): for each caption, the rank of its single image.
* **mean**: the average of the six recalls TR@1/5/10 and IR@1/5/10 (``r_mean``).

Ties are broken **pessimistically**: a ground-truth item's 0-based rank is the
number of *non*-ground-truth candidates scoring greater than *or equal to* it.
A collapsed model (all scores equal) therefore gets zero recall instead of a
perfect score. With continuous scores ties do not occur and this matches BLIP
and torchmetrics. Unlike BLIP, no top-128 sparsification is applied (it does not
change R@1/5/10).

Scores are similarities (higher = closer), e.g. the negative distance or any
strictly decreasing function of it. The score matrix is never materialised
whole: queries are processed in chunks of at most ``max_chunk_elements``
entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = [
    "DEFAULT_KS",
    "retrieval_metrics",
    "retrieval_metrics_from_scores",
    "text_ranks",
    "image_ranks",
]

DEFAULT_KS = (1, 5, 10)
_DEFAULT_CHUNK = 1 << 24

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_scores(s: torch.Tensor, where: str) -> None:
    if bool(torch.isnan(s).any()):
        raise ValueError(f"{where}: scores contain NaN; ranking is undefined")


def image_ranks(
    image: torch.Tensor,
    text: torch.Tensor,
    txt2img: torch.Tensor,
    score: ScoreFn,
    *,
    max_chunk_elements: int = _DEFAULT_CHUNK,
) -> torch.Tensor:
    """0-based rank of each image's best ground-truth caption, ``(N_img,)`` int64.

    ``score(image_chunk (B, .), text (N_txt, .)) -> (B, N_txt)`` similarities.
    """
    n_img, n_txt = image.shape[0], text.shape[0]
    chunk = max(1, int(max_chunk_elements) // max(1, n_txt))
    out = torch.empty(n_img, dtype=torch.int64)
    idx = txt2img.to(torch.int64).cpu()
    for i in range(0, n_img, chunk):
        s = score(image[i : i + chunk], text).cpu()
        _check_scores(s, "image->text")
        ids = torch.arange(i, i + s.shape[0])
        gt = idx[None, :] == ids[:, None]  # (B, N_txt)
        best = torch.where(gt, s, torch.full_like(s, -torch.inf)).amax(1)
        out[i : i + s.shape[0]] = ((s >= best[:, None]) & ~gt).sum(1)
        # An image with no caption can never be hit.
        out[i : i + s.shape[0]][~gt.any(1)] = n_txt
    return out


def text_ranks(
    image: torch.Tensor,
    text: torch.Tensor,
    txt2img: torch.Tensor,
    score: ScoreFn,
    *,
    max_chunk_elements: int = _DEFAULT_CHUNK,
) -> torch.Tensor:
    """0-based rank of each caption's image among all images, ``(N_txt,)`` int64."""
    n_img, n_txt = image.shape[0], text.shape[0]
    chunk = max(1, int(max_chunk_elements) // max(1, n_img))
    out = torch.empty(n_txt, dtype=torch.int64)
    idx = txt2img.to(torch.int64).cpu()
    for j in range(0, n_txt, chunk):
        s = score(image, text[j : j + chunk]).cpu().T  # (B, N_img)
        _check_scores(s, "text->image")
        gt_idx = idx[j : j + s.shape[0]]
        gt_score = s.gather(1, gt_idx[:, None])
        # The ground truth itself is counted by >=, hence the -1.
        out[j : j + s.shape[0]] = (s >= gt_score).sum(1) - 1
    return out


def _recalls(ranks: torch.Tensor, ks: Sequence[int], prefix: str) -> dict[str, float]:
    return {f"{prefix}@{k}": 100.0 * float((ranks < k).double().mean()) for k in ks}


def retrieval_metrics(
    image: torch.Tensor,
    text: torch.Tensor,
    txt2img: torch.Tensor,
    score: ScoreFn,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    max_chunk_elements: int = _DEFAULT_CHUNK,
) -> dict[str, float]:
    """TR@K, IR@K (percent) and their ``mean`` for embedded images and captions.

    Args:
        image: embedded images ``(N_img, ...)`` (anything ``score`` accepts).
        text: embedded captions ``(N_txt, ...)``.
        txt2img: ``(N_txt,)`` index of each caption's image.
        score: ``score(a (B, .), b (C, .)) -> (B, C)`` similarity of images ``a`` to
            captions ``b`` (higher = closer; a monotone surrogate of -distance).
        ks: recall cut-offs.
        max_chunk_elements: largest score block held at once.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if txt2img.shape != (text.shape[0],):
        raise ValueError(f"txt2img must have shape ({text.shape[0]},), got {tuple(txt2img.shape)}")
    tr = image_ranks(image, text, txt2img, score, max_chunk_elements=max_chunk_elements)
    ir = text_ranks(image, text, txt2img, score, max_chunk_elements=max_chunk_elements)
    out = {**_recalls(tr, ks, "TR"), **_recalls(ir, ks, "IR")}
    out["mean"] = sum(out.values()) / len(out)
    return out


def retrieval_metrics_from_scores(
    scores: torch.Tensor, txt2img: torch.Tensor, *, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """The same metrics from a dense score matrix ``(N_img, N_txt)`` (small problems)."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (N_img, N_txt), got shape {tuple(scores.shape)}")
    rows = torch.arange(scores.shape[0])[:, None]
    cols = torch.arange(scores.shape[1])

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return scores[a[:, 0].long()][:, b[:, 0].long()]

    return retrieval_metrics(rows.float(), cols[:, None].float(), txt2img, score, ks=ks)
