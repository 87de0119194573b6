r"""Hyperbolic contrastive loss (hITC) and the entailment-cone term.

See ``docs/losses.md`` section 1 for the formulas. The single- and multi-positive
InfoNCE over geodesic distances runs on :func:`hypervldd.kernels.contrastive_loss`
(streaming, never ``N x M``); the comparison geometries (cosine, Euclidean) and
``use_fused=False`` use a dense evaluation of the same definition.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import kernels
from .._checks import validation_enabled
from ..distributed import all_gather_rows, check_group_arg, gather_sizes, get_rank, resolve_group
from ..manifolds import Curvature, conversions, lorentz_math
from ._common import (
    FeatureScale,
    Temperature,
    check_features,
    check_geometry,
    check_pair,
    full_precision,
    lift,
    pairwise_distance,
)

__all__ = [
    "HyperbolicContrastiveLoss",
    "EntailmentConeLoss",
    "half_aperture",
    "exterior_angle",
    "dense_contrastive_loss",
]


def _check_text_to_image(t2i: object, m: int, n: int, device: torch.device) -> torch.Tensor:
    if not isinstance(t2i, torch.Tensor) or t2i.dtype not in (torch.int32, torch.int64):
        raise TypeError("text_to_image must be an integer tensor of shape (M,)")
    if t2i.shape != (m,):
        raise ValueError(
            f"text_to_image must have shape ({m},) (one entry per caption), got {tuple(t2i.shape)}"
        )
    if t2i.device != device:
        raise ValueError(f"text_to_image is on {t2i.device} but the features are on {device}")
    if validation_enabled() and bool(((t2i < 0) | (t2i >= n)).any()):
        raise ValueError(f"text_to_image must hold image indices in [0, {n})")
    return t2i.long()


def dense_contrastive_loss(logits: torch.Tensor, text_to_image: torch.Tensor | None = None):
    """Symmetric InfoNCE from a dense logit matrix ``(N images, M texts)``. 0-d tensor.

    With ``text_to_image`` ``(M,)``: ``(1/2M) sum_j [-log softmax_i(l_.j)[t(j)]
    - log softmax_j'(l_t(j),.)[j]]``; without it ``M = N`` and ``t(j) = j``.

    >>> import math, torch
    >>> from hypervldd.losses import dense_contrastive_loss
    >>> round(float(dense_contrastive_loss(torch.zeros(4, 4))), 4) == round(math.log(4), 4)
    True
    """
    n, m = logits.shape
    t = torch.arange(m, device=logits.device) if text_to_image is None else text_to_image
    cols = torch.arange(m, device=logits.device)
    t2i = -torch.log_softmax(logits, dim=0)[t, cols]
    i2t = -torch.log_softmax(logits, dim=1)[t, cols]
    return (t2i.sum() + i2t.sum()) / (2 * m)


def _gather_batch(
    image: torch.Tensor, text: torch.Tensor, t2i: torch.Tensor | None, group: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The global batch: every rank's rows in rank order, caption indices made global."""
    local = torch.arange(text.shape[0], device=image.device) if t2i is None else t2i
    offset = sum(gather_sizes(image.shape[0], group, image.device)[: get_rank(group)])
    all_t2i = all_gather_rows(local + offset, group)
    return all_gather_rows(image, group), all_gather_rows(text, group), all_t2i


class HyperbolicContrastiveLoss(nn.Module):
    """hITC: symmetric InfoNCE over logits ``-d(image_i, text_j) / tau``.

    Args:
        geometry: ``"lorentz"``, ``"poincare"``, ``"euclidean"`` or ``"cosine"``.
        c: curvature magnitude (curvature ``-c``); ``learn_c`` makes it a bounded parameter
            (``c_bounds``, default ``(c/10, 10c)``).
        tau: temperature; ``learn_tau`` learns it (clamped at ``tau_min``).
        feature_scale: ``"auto"`` (``1/sqrt(D)``) or a float, applied per modality before the
            lift; ``learn_scale`` learns a positive factor on it (one per modality).
        lift: lift Euclidean features by ``expmap0`` (``True``) or take points directly.
        entail_weight: weight of :class:`EntailmentConeLoss` (hyperbolic geometries only).
        entail_min_radius: the cone's ``K``.
        use_fused: use :func:`hypervldd.kernels.contrastive_loss` (else a dense evaluation).
        process_group: ``None`` (default: one process), ``"auto"``, ``"world"`` or a
            ``ProcessGroup``: each rank passes its own images, captions and (local)
            ``text_to_image``; the features are gathered with an autograd-aware all-gather
            and every rank returns the loss of the global batch (gradients as under DDP,
            see ``docs/distributed.md``).

    Shapes: ``image`` ``(N, D)``, ``text`` ``(M, D)`` features (with ``lift=False``:
    points, ``(., D+1)`` on Lorentz); ``text_to_image`` ``(M,)`` long, the image of each
    caption (default ``j -> j``, needs ``M = N``). Returns a 0-d tensor, float32 unless an
    input is float64.

    >>> import torch
    >>> from hypervldd.losses import HyperbolicContrastiveLoss
    >>> g = torch.Generator().manual_seed(0)
    >>> image, text = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    >>> loss_fn = HyperbolicContrastiveLoss("lorentz", learn_tau=True)
    >>> loss = loss_fn(image, text)  # Euclidean features, lifted inside
    >>> loss.dim(), bool(loss > 0), len(list(loss_fn.parameters()))  # learn_tau: one parameter
    (0, True, 1)
    """

    def __init__(
        self,
        geometry: str = "lorentz",
        c: float = 1.0,
        *,
        learn_c: bool = False,
        c_bounds: tuple[float, float] | None = None,
        tau: float = 0.07,
        learn_tau: bool = False,
        tau_min: float = 0.01,
        feature_scale: float | str = "auto",
        learn_scale: bool = False,
        lift: bool = True,
        entail_weight: float = 0.0,
        entail_min_radius: float = 0.1,
        use_fused: bool = True,
        process_group: object = None,
    ) -> None:
        super().__init__()
        self.process_group = check_group_arg(process_group)
        self.geometry = check_geometry(geometry)
        self.curvature = Curvature(c, learnable=learn_c, bounds=c_bounds)
        self.temperature = Temperature(tau, learnable=learn_tau, tau_min=tau_min)
        self.image_scale = FeatureScale(feature_scale, learnable=learn_scale)
        self.text_scale = FeatureScale(feature_scale, learnable=learn_scale)
        self.lift = bool(lift)
        self.use_fused = bool(use_fused)
        if not (float(entail_weight) >= 0.0 and math.isfinite(float(entail_weight))):
            raise ValueError(f"entail_weight must be finite and >= 0, got {entail_weight}")
        self.entail_weight = float(entail_weight)
        if self.entail_weight > 0 and self.geometry not in ("lorentz", "poincare"):
            raise ValueError(
                f"entail_weight > 0 needs a hyperbolic geometry, got geometry={self.geometry!r}"
            )
        self.entailment = EntailmentConeLoss(self.geometry, min_radius=entail_min_radius)

    def embed(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points of ``image`` and ``text`` (features scaled and lifted, or passed through)."""
        c = self.curvature().to(image.dtype)
        if not self.lift:
            return image, text
        if self.geometry == "cosine":
            return lift(image, "cosine", c), lift(text, "cosine", c)
        x = lift(self.image_scale(image), self.geometry, c)
        y = lift(self.text_scale(text), self.geometry, c)
        return x, y

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        text_to_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss for ``image`` ``(N, D)``, ``text`` ``(M, D)``. 0-d tensor."""
        image = check_features(image, "image")
        text = check_features(text, "text")
        check_pair(image, "image", text, "text")
        n, m = image.shape[0], text.shape[0]
        if text_to_image is None:
            if n != m:
                raise ValueError(
                    f"image has {n} rows and text {m}: pass text_to_image (M,) to say which"
                    " image each caption belongs to"
                )
        else:
            text_to_image = _check_text_to_image(text_to_image, m, n, image.device)
        group = resolve_group(self.process_group)
        if group is not None:
            image, text, text_to_image = _gather_batch(image, text, text_to_image, group)
            m = text.shape[0]
        with full_precision(image, text) as dt:
            x, y = self.embed(image.to(dt), text.to(dt))
            c = self.curvature().to(dt)
            tau = self.temperature().to(dt)
            if self.geometry == "cosine":
                loss = dense_contrastive_loss(x @ y.T / tau, text_to_image)
            elif self.use_fused and self.geometry != "euclidean":
                # Rows are captions: the kernel's positives map each row to one column,
                # which is exactly "the image of caption j".
                loss = kernels.contrastive_loss(y, x, self.geometry, c, tau, text_to_image)
            else:
                d = pairwise_distance(x, y, self.geometry, c)
                loss = dense_contrastive_loss(-d / tau, text_to_image)
            if self.entail_weight > 0:
                idx = torch.arange(m, device=x.device) if text_to_image is None else text_to_image
                loss = loss + self.entail_weight * self.entailment(y, x[idx], c)
        return loss


def half_aperture(
    x: torch.Tensor, c: float | torch.Tensor, min_radius: float = 0.1
) -> torch.Tensor:
    r"""Half-aperture of the entailment cone at Lorentz points ``x`` ``(..., D+1)``. ``(...,)``.

    :math:`\operatorname{asin}(\min(1, 2K / |X_s|))` with ``X = sqrt(c) x`` (Ganea et al.'s
    cone, whose Poincaré form ``K (1 - |p|^2)/|p|`` equals ``2K/|X_s|``). The argument is
    kept ``<= 1 - eps`` so that the gradient of ``asin`` stays finite; near the origin the
    cone is a half-space.

    >>> import math, torch
    >>> from hypervldd.losses import half_aperture
    >>> from hypervldd.manifolds import Lorentz
    >>> x = Lorentz().lift(torch.tensor([[0.1, 0.0], [3.0, 0.0]]))
    >>> a = half_aperture(x, 1.0)  # wide near the origin, narrow far out
    >>> tuple(a.shape), bool(a[0] > a[1]), bool(a[0] <= math.pi / 2)
    ((2,), True, True)
    """
    sc = torch.as_tensor(c, dtype=x.dtype, device=x.device).sqrt()
    r = torch.linalg.vector_norm(sc * x[..., 1:], dim=-1)
    one = 1.0 - torch.finfo(x.dtype).eps
    arg = 2.0 * min_radius / r.clamp_min(2.0 * min_radius / one)
    return torch.asin(arg.clamp(max=one))


def exterior_angle(x: torch.Tensor, y: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    r"""Exterior angle at ``x`` of the triangle origin–``x``–``y`` (Lorentz points). ``(...,)``.

    From the hyperbolic law of cosines with ``r_x = d(o, x)``, ``r_y = d(o, y)``,
    ``e = d(x, y)`` (all times ``sqrt(c)``):
    ``cos ext = (cosh r_y - cosh r_x cosh e) / (sinh r_x sinh e)``, with
    ``cosh e = 1 + 2 sinh^2(e/2)`` and ``sinh e = 2 sinh(e/2) cosh(e/2)`` from the
    cancellation-free half-distance. 0 when ``y`` lies on the geodesic ray from the origin
    through ``x``, ``pi`` when it lies back towards the origin.

    >>> import math, torch
    >>> from hypervldd.losses import exterior_angle
    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz()
    >>> x = m.lift(torch.tensor([1.0, 0.0]))
    >>> float(exterior_angle(x, m.lift(torch.tensor([2.0, 0.0])), 1.0)) < 0.01  # straight on
    True
    >>> bool(exterior_angle(x, m.lift(torch.tensor([1.0, 1.0])), 1.0) > math.pi / 4)
    True
    """
    sc = torch.as_tensor(c, dtype=x.dtype, device=x.device).sqrt()
    a2 = (sc * x[..., 1:]).pow(2).sum(-1)
    b2 = (sc * y[..., 1:]).pow(2).sum(-1)
    s = lorentz_math.sinh_half_dist(x, y, c)
    cosh_e = 1.0 + 2.0 * s * s
    sinh_e = 2.0 * s * torch.sqrt(1.0 + s * s)
    num = torch.sqrt(1.0 + b2) - torch.sqrt(1.0 + a2) * cosh_e
    # sqrt with a zero gradient at 0 (x at the origin), so the masked branch below cannot
    # send 0 * inf = NaN back through it.
    pos = a2 > 0
    den = torch.where(pos, torch.sqrt(torch.where(pos, a2, torch.ones_like(a2))), 0.0) * sinh_e
    tiny = torch.finfo(x.dtype).tiny
    one = 1.0 - torch.finfo(x.dtype).eps
    # den = 0 only at the origin or for y = x, where the angle is undefined: report pi/2.
    safe = den > tiny
    cos = torch.where(safe, num / torch.where(safe, den, torch.ones_like(den)), 0.0)
    return torch.acos(cos.clamp(-one, one))


class EntailmentConeLoss(nn.Module):
    """``mean relu(ext(general, specific) - aper(general))``: ``specific`` in ``general``'s cone.

    For captions entailing images call ``loss(text_points, image_points, c)`` with paired rows
    ``(N, D')``. Lorentz points, or Poincaré points (mapped to the hyperboloid first: the
    angles are isometry invariant). Returns a 0-d tensor.

    >>> import torch
    >>> from hypervldd.losses import EntailmentConeLoss
    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz()
    >>> text = m.lift(torch.tensor([[0.5, 0.0]]))  # general, near the origin
    >>> inside, outside = m.lift(torch.tensor([[2.0, 0.0]])), m.lift(torch.tensor([[0.0, 2.0]]))
    >>> cone = EntailmentConeLoss("lorentz")
    >>> float(cone(text, inside)), bool(cone(text, outside) > 0)
    (0.0, True)
    """

    def __init__(self, geometry: str = "lorentz", *, min_radius: float = 0.1) -> None:
        super().__init__()
        self.geometry = check_geometry(geometry)
        if not (0.0 < float(min_radius) < math.inf):
            raise ValueError(f"min_radius must be finite and > 0, got {min_radius}")
        self.min_radius = float(min_radius)

    def forward(
        self, general: torch.Tensor, specific: torch.Tensor, c: float | torch.Tensor = 1.0
    ) -> torch.Tensor:
        if general.shape != specific.shape:
            raise ValueError(
                f"general and specific must be paired rows of one shape, got"
                f" {tuple(general.shape)} and {tuple(specific.shape)}"
            )
        if self.geometry == "poincare":
            general = conversions.poincare_to_lorentz(general, c)
            specific = conversions.poincare_to_lorentz(specific, c)
        elif self.geometry != "lorentz":
            raise ValueError(f"entailment cones need a hyperbolic geometry, got {self.geometry!r}")
        ext = exterior_angle(general, specific, c)
        aper = half_aperture(general, c, self.min_radius)
        return torch.relu(ext - aper).mean()
