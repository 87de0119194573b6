"""Prototype-guided data synthesis (PDS; Choi, Mo, Chae, ICLR 2026, arXiv 2602.19756).

A learning-free method on the joint embeddings of the real pairs:

1. **Filter**: drop the ``drop_fraction`` (default 20%) of caption pairs whose
   image-text cosine is lowest (ties: the lower pair index goes first).
2. **Cluster per modality**: mini-batch k-means (Sculley, WWW 2010) with
   ``K = budget`` on the kept image embeddings and, separately, on the kept text
   embeddings; each is the best (lowest inertia on an initialisation sample) of
   ``n_init`` k-means++ seedings, then ``max_iter`` mini-batch updates of
   ``batch_size`` points, as scikit-learn's ``MiniBatchKMeans``.
3. **Match clusters across modalities**: the co-occurrence matrix
   ``C[i, j] = #{kept pairs with image in cluster i and text in cluster j}`` and
   the one-to-one assignment maximising ``sum C[i, pi(i)]`` (Hungarian;
   ``scipy.optimize.linear_sum_assignment`` when scipy is installed, else the
   shortest-augmenting-path implementation of this module, same optimum).
4. **Prototypes**: for each matched ``(i, j)`` the mean image and mean text
   embedding of the pairs the two clusters *share*. A matched pair of clusters
   that shares no pair ("pairless") takes the two cluster means at small budgets
   and is discarded at large ones, as the reference code and the paper do
   (``pairless="auto"``: cluster means below 300 pairs, else drop; a dropped
   prototype leaves the set smaller than the budget, recorded in the history).
   Prototypes are then ordered by decreasing image-text cosine, as the reference
   code does.
5. **Text** is the text prototype itself (an embedding); the nearest real caption
   pair to it is kept for display (``source_indices``, and ``history``).
6. **Images**: the image prototype itself (``image_output="features"``, the
   feature protocol), or pixels (``"pixels"``): a user-provided decoder (an unCLIP
   pipeline, see :mod:`.decoders`) or, without one, the nearest real image. The
   source is recorded as ``config["resolved"]["image_source"]``.

The image-text cosine needs a joint embedding (CLIP in the paper). With
separately trained encoders of different widths (``alignment="auto"`` picks
``"linear"``), image features are first mapped to the text space by ridge
regression fitted on all real pairs; this is the package's extension, recorded
as ``resolved.alignment``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .artifact import SyntheticSet
from .base import Distiller, RealData, register
from .decoders import FEATURE_PROTOTYPE, ImageDecoder, NearestRealImageDecoder

__all__ = [
    "PDSConfig",
    "PDS",
    "minibatch_kmeans",
    "max_cooccurrence_assignment",
    "linear_assignment",
    "PAIRLESS_POLICIES",
    "drop_lowest",
]

PAIRLESS_POLICIES = ("auto", "centroids", "drop")
ALIGNMENTS = ("auto", "joint", "linear")
IMAGE_OUTPUTS = ("features", "pixels")
#: Below this budget, pairless clusters fall back to cluster means (reference code).
PAIRLESS_AUTO_LIMIT = 300


@dataclass(frozen=True)
class PDSConfig:
    """PDS settings (published defaults where the paper or code states them).

    Attributes:
        drop_fraction: fraction of caption pairs with the lowest image-text cosine
            removed before clustering (``rm_ratio``, 0.2).
        normalize: L2-normalise embeddings before everything (cosine geometry);
            prototypes are means of the normalised embeddings.
        n_init: k-means++ seedings tried per modality (20).
        batch_size: mini-batch size of k-means (scikit-learn's default; the
            reference code uses 10000, which costs about 10x more on a CPU; clipped
            to the number of kept pairs).
        max_iter: mini-batch updates per modality.
        init_size: points the seedings are compared on (default ``3 * batch_size``,
            at least ``3 * K``; clipped to the data).
        pairless: ``"auto"``, ``"centroids"`` or ``"drop"`` (see the module doc).
        sort: order prototypes by decreasing image-text cosine.
        alignment: ``"auto"``, ``"joint"`` (image and text share one space: same
            width) or ``"linear"`` (ridge map from image to text space, for the cosine).
        ridge: ridge penalty of the linear alignment, as a fraction of
            ``trace(X^T X)`` of the image features ``X``.
        image_output: ``"features"`` (image prototypes) or ``"pixels"`` (a decoder,
            else the nearest real image; needs ``real_images`` at fit time).
    """

    drop_fraction: float = 0.2
    normalize: bool = True
    n_init: int = 20
    batch_size: int = 1024
    max_iter: int = 100
    init_size: int | None = None
    pairless: str = "auto"
    sort: bool = True
    alignment: str = "auto"
    ridge: float = 1e-3
    image_output: str = "features"

    def __post_init__(self) -> None:
        if not (0.0 <= self.drop_fraction < 1.0):
            raise ValueError(f"drop_fraction must lie in [0, 1), got {self.drop_fraction}")
        for name in ("n_init", "batch_size", "max_iter"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.init_size is not None and int(self.init_size) < 1:
            raise ValueError(f"init_size must be >= 1 or None, got {self.init_size}")
        if self.pairless not in PAIRLESS_POLICIES:
            raise ValueError(f"pairless must be one of {PAIRLESS_POLICIES}, got {self.pairless!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if not (self.ridge > 0):
            raise ValueError(f"ridge must be > 0, got {self.ridge}")
        if self.image_output not in IMAGE_OUTPUTS:
            raise ValueError(
                f"image_output must be one of {IMAGE_OUTPUTS}, got {self.image_output!r}"
            )


# -- filtering -----------------------------------------------------------------------
def drop_lowest(score: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices (ascending) kept after removing the ``floor(fraction * N)`` lowest scores.

    Ties are broken by index: among equal scores the lower index is dropped first.
    """
    if score.dim() != 1:
        raise ValueError(f"score must be 1-D, got shape {tuple(score.shape)}")
    if not (0.0 <= fraction < 1.0):
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    n_drop = int(fraction * score.shape[0])
    order = torch.sort(score, stable=True).indices  # ascending
    return torch.sort(order[n_drop:]).values


# -- k-means -------------------------------------------------------------------------
def _sq_dists(x: torch.Tensor, c: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Squared distances ``(N, K)`` (clamped at 0), chunked over rows."""
    c2 = (c * c).sum(1)
    out = []
    for i in range(0, x.shape[0], chunk):
        xi = x[i : i + chunk]
        out.append(((xi * xi).sum(1, keepdim=True) + c2[None, :] - 2.0 * xi @ c.T).clamp_min(0))
    return torch.cat(out)


def _nearest(x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = _sq_dists(x, c)
    best, lab = d.min(1)
    return lab, best


def _kmeans_pp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, SODA 2007): ``(k, D)`` centres."""
    n = x.shape[0]
    x2 = (x * x).sum(1)
    first = int(torch.randint(n, (1,), generator=gen))
    chosen = [first]
    # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one matrix-vector product per new centre.
    d2 = (x2 + x2[first] - 2.0 * (x @ x[first])).clamp_min(0)
    for _ in range(1, k):
        total = float(d2.sum())
        if not (total > 0):
            raise ValueError(
                f"k-means needs at least K={k} distinct points, but only {len(chosen)} are "
                "distinct; lower the budget"
            )
        i = int(torch.multinomial(d2 / total, 1, generator=gen))
        chosen.append(i)
        d2 = torch.minimum(d2, (x2 + x2[i] - 2.0 * (x @ x[i])).clamp_min(0))
    return x[torch.tensor(chosen)].clone()


def minibatch_kmeans(
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    *,
    n_init: int = 20,
    batch_size: int = 1024,
    max_iter: int = 100,
    init_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch k-means of ``x (N, D)`` into ``k`` clusters.

    The best of ``n_init`` k-means++ seedings (inertia on one random sample of
    ``init_size`` points, default ``3 * batch_size``), then ``max_iter`` updates:
    each draws ``batch_size`` points, assigns them to the nearest centre and moves
    every centre to the running mean of all points it has been assigned so far
    (per-centre rate ``1 / count``, Sculley 2010). Distances are computed in
    float32 (the clustering only needs the nearest centre); running means are
    accumulated in float64. All draws come from ``generator``.

    Returns:
        ``centres (k, D)`` (float64) and ``labels (N,)`` (int64), the nearest centre
        of every point.

    Raises:
        ValueError: if ``x`` has fewer than ``k`` distinct points.
    """
    if x.dim() != 2 or x.shape[0] < k or k < 1:
        raise ValueError(f"need a 2-D x with at least k={k} rows, got {tuple(x.shape)}")
    x = x.float()
    n = x.shape[0]
    bs = min(int(batch_size), n)
    size = int(init_size) if init_size is not None else 3 * bs
    size = min(n, max(size, 3 * k))
    sample = x[torch.randperm(n, generator=generator)[:size]]
    best, best_inertia = None, float("inf")
    for _ in range(int(n_init)):
        try:
            c = _kmeans_pp(sample, k, generator)
        except ValueError:
            # The sample may hold fewer distinct points than the data.
            c = _kmeans_pp(x, k, generator)
        inertia = float(_nearest(sample, c)[1].double().sum())
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    assert best is not None
    cent = best.double()
    counts = torch.zeros(k, dtype=torch.float64)
    for _ in range(int(max_iter)):
        idx = torch.randint(n, (bs,), generator=generator)
        xb = x[idx]
        lab, _ = _nearest(xb, cent.float())
        nb = torch.bincount(lab, minlength=k).double()
        sums = torch.zeros_like(cent).index_add_(0, lab, xb.double())
        hit = nb > 0
        counts_new = counts + nb
        cent[hit] = (cent[hit] * counts[hit, None] + sums[hit]) / counts_new[hit, None]
        counts = counts_new
    labels, _ = _nearest(x, cent.float())
    return cent, labels


# -- assignment -------------------------------------------------------------------------
def _hungarian_min(cost: np.ndarray) -> np.ndarray:
    """Column assigned to each row minimising the total cost; ``cost (n, m)``, ``n <= m``.

    Shortest augmenting paths with row/column potentials (Kuhn-Munkres in the
    ``O(n^2 m)`` form); the inner scan over columns is vectorised.
    """
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: row (1-based) matched to column j
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0 != 0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    col = np.empty(n, dtype=np.int64)
    for j in range(1, m + 1):
        if p[j] > 0:
            col[p[j] - 1] = j - 1
    return col


def linear_assignment(
    score: torch.Tensor, maximize: bool = True, use_scipy: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal one-to-one assignment of a square or wide ``score (n, m)``, ``n <= m``.

    Returns ``(rows, cols)`` (int64, rows ``0..n-1``) maximising (or minimising)
    ``score[rows, cols].sum()``. Uses ``scipy.optimize.linear_sum_assignment`` when
    available (``use_scipy=None``), else this module's Hungarian implementation.
    """
    s = score.detach().double().cpu().numpy()
    if s.ndim != 2 or s.shape[0] > s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"score must be (n, m) with 1 <= n <= m, got {tuple(s.shape)}")
    if not np.isfinite(s).all():
        raise ValueError("score must be finite")
    if use_scipy is None:
        try:
            import scipy.optimize  # noqa: F401

            use_scipy = True
        except ImportError:
            use_scipy = False
    if use_scipy:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(s, maximize=maximize)
    else:
        rows = np.arange(s.shape[0])
        cols = _hungarian_min(-s if maximize else s)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def max_cooccurrence_assignment(
    image_labels: torch.Tensor, text_labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Co-occurrence ``C (k, k)`` and the assignment maximising ``sum_i C[i, cols[i]]``.

    ``C[i, j]`` counts pairs whose image is in cluster ``i`` and text in cluster ``j``.
    Returns ``(C, rows, cols)``.
    """
    c = torch.zeros(k, k, dtype=torch.int64)
    c.index_put_((image_labels, text_labels), torch.ones_like(image_labels), accumulate=True)
    rows, cols = linear_assignment(c, maximize=True)
    return c, rows, cols


def _brute_force_assignment(score: torch.Tensor) -> float:
    """Best total of a square ``score`` over all permutations (tests; tiny n only)."""
    n = score.shape[0]
    return max(
        float(sum(score[i, p[i]] for i in range(n))) for p in itertools.permutations(range(n))
    )


# -- the method -------------------------------------------------------------------------
@register
class PDS(Distiller):
    """Prototype-guided data synthesis (see the module docstring).

    ``fit(real, budget, seed, *, real_images=None, decoder=None, captions=None)``:

    * ``real_images``: ``(N_img, C, H, W)`` pixels of the real images (``image_output
      = "pixels"`` without a decoder: the nearest real image of each prototype).
    * ``decoder``: an :class:`~.decoders.ImageDecoder` (e.g. an unCLIP pipeline)
      turning image prototypes into pixels (``image_output = "pixels"``).
    * ``captions``: the ``N_pairs`` caption strings of the real pairs; the nearest
      caption of each text prototype is the decoder's prompt.
    """

    method = "pds"
    Config = PDSConfig

    def pool_size(self, data: RealData) -> int:
        # K clusters need K kept pairs.
        return data.num_pairs - int(self.config.drop_fraction * data.num_pairs)

    def _fit(
        self,
        data: RealData,
        budget: int,
        seed: int,
        *,
        real_images: torch.Tensor | None = None,
        decoder: ImageDecoder | None = None,
        captions: Sequence[str] | None = None,
    ) -> SyntheticSet:
        cfg = self.config
        pixels = cfg.image_output == "pixels"
        if decoder is not None and not pixels:
            raise ValueError("a decoder produces pixels: set image_output='pixels'")
        if pixels and decoder is None and real_images is None:
            raise ValueError(
                "image_output='pixels' needs a decoder or real_images (N_img, C, H, W) for "
                "the nearest-real-image fallback"
            )
        if real_images is not None:
            if not isinstance(real_images, torch.Tensor) or real_images.dim() != 4:
                raise ValueError("real_images must be a (N_img, C, H, W) tensor")
            if real_images.shape[0] != data.num_images:
                raise ValueError(
                    f"real_images must hold one image per real image ({data.num_images}), "
                    f"got {real_images.shape[0]}"
                )
        if captions is not None and len(captions) != data.num_pairs:
            raise ValueError(
                f"captions must hold one string per caption pair ({data.num_pairs}), got "
                f"{len(captions)}"
            )
        gen = torch.Generator().manual_seed(seed)
        img, txt = data.pair_image.double(), data.pair_text.double()
        if cfg.normalize:
            img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)

        # 1. Filter by image-text cosine.
        alignment = cfg.alignment
        if alignment == "auto":
            alignment = "joint" if img.shape[1] == txt.shape[1] else "linear"
        project = self._aligner(img, txt, alignment)
        cos = F.cosine_similarity(project(img), txt, dim=-1)
        n = data.num_pairs
        n_drop = int(cfg.drop_fraction * n)
        kept = drop_lowest(cos, cfg.drop_fraction)
        ki, kt = img[kept], txt[kept]

        # 2. Cluster each modality.
        kw = {
            "n_init": cfg.n_init,
            "batch_size": cfg.batch_size,
            "max_iter": cfg.max_iter,
            "init_size": cfg.init_size,
        }
        cent_i, lab_i = minibatch_kmeans(ki, budget, gen, **kw)
        cent_t, lab_t = minibatch_kmeans(kt, budget, gen, **kw)

        # 3. Match clusters.
        cooc, rows, cols = max_cooccurrence_assignment(lab_i, lab_t, budget)

        # 4. Prototypes.
        policy = cfg.pairless
        if policy == "auto":
            policy = "centroids" if budget < PAIRLESS_AUTO_LIMIT else "drop"
        protos_i, protos_t, pairless = [], [], 0
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            shared = (lab_i == i) & (lab_t == j)
            if bool(shared.any()):
                protos_i.append(ki[shared].mean(0))
                protos_t.append(kt[shared].mean(0))
                continue
            pairless += 1
            if policy == "drop":
                continue
            protos_i.append(_cluster_mean(ki, lab_i, i, cent_i))
            protos_t.append(_cluster_mean(kt, lab_t, j, cent_t))
        if not protos_i:
            raise ValueError(
                "every matched cluster pair is pairless and pairless='drop': no prototype left"
            )
        p_img, p_txt = torch.stack(protos_i), torch.stack(protos_t)
        score = F.cosine_similarity(project(p_img), p_txt, dim=-1)
        if cfg.sort:
            perm = torch.sort(-score, stable=True).indices
            p_img, p_txt, score = p_img[perm], p_txt[perm], score[perm]

        # 5. Nearest real caption pair (for display) and nearest real image.
        near_cap = (F.normalize(p_txt, dim=-1) @ F.normalize(txt, dim=-1).T).argmax(1)
        img_feats = data.features.image.double()
        near_img = (F.normalize(p_img, dim=-1) @ F.normalize(img_feats, dim=-1).T).argmax(1)

        # 6. Images.
        resolved: dict[str, Any] = {
            "alignment": alignment,
            "pairless": policy,
            "image_source": FEATURE_PROTOTYPE,
        }
        image = p_img.float()
        kind = "features"
        if pixels:
            prompts = [captions[int(c)] for c in near_cap] if captions is not None else None
            if decoder is None:
                assert real_images is not None
                decoder = NearestRealImageDecoder(real_images, data.features.image)
            image = decoder(p_img.float(), prompts, gen)
            kind = "pixels"
            resolved["image_source"] = decoder.name
            resolved["decoder"] = decoder.describe()
        info = {
            "pds": {
                "pairs": n,
                "dropped_pairs": n_drop,
                "kept_pairs": int(kept.shape[0]),
                "cooccurrence_matched": int(cooc[rows, cols].sum()),
                "pairless": pairless,
                "prototypes": int(p_img.shape[0]),
                "prototype_cosine": [round(float(s), 6) for s in score],
                "nearest_caption_pair": [int(c) for c in near_cap],
                "nearest_image": [int(c) for c in near_img],
            }
        }
        return SyntheticSet(
            image=image,
            text=p_txt.float(),
            method=self.method,
            config={**self.config_dict(), "resolved": resolved},
            image_kind=kind,
            source_indices=near_cap.to(torch.int64),
            data_fingerprint=data.fingerprint,
            encoders=data.encoders,
            seed=seed,
            history=[info],
        )

    def _aligner(self, img: torch.Tensor, txt: torch.Tensor, alignment: str) -> Any:
        if alignment == "joint":
            if img.shape[1] != txt.shape[1]:
                raise ValueError(
                    f"alignment='joint' needs image and text features of one width, got "
                    f"{img.shape[1]} and {txt.shape[1]}; use alignment='linear'"
                )
            return lambda z: z
        # Ridge regression image -> text on all pairs: W = (X^T X + l I)^-1 X^T Y.
        d = img.shape[1]
        # The floor keeps the system solvable when the features are all zero.
        lam = float(self.config.ridge) * float((img * img).sum(1).mean())
        lam = max(lam, torch.finfo(img.dtype).eps)
        gram = img.T @ img + lam * img.shape[0] * torch.eye(d, dtype=img.dtype)
        w = torch.linalg.solve(gram, img.T @ txt)
        return lambda z: z @ w


def _cluster_mean(
    x: torch.Tensor, labels: torch.Tensor, k: int, centres: torch.Tensor
) -> torch.Tensor:
    members = labels == k
    return x[members].mean(0) if bool(members.any()) else centres[k]
