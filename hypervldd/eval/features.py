"""Paired image-text features: the plain-tensor input of evaluation and distillation.

A :class:`FeatureSet` holds image features ``(N_img, D_i)``, text features
``(N_txt, D_t)`` and the caption -> image index ``txt2img`` ``(N_txt,)``: caption
``t`` describes image ``txt2img[t]``. Training pairs are caption-level pairs
``(image[txt2img[t]], text[t])``. :func:`as_feature_set` adapts tuples and
duck-typed objects (such as the feature cache of :mod:`hypervldd.data`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_finite, check_tensor, has_values

__all__ = ["FeatureSet", "as_feature_set", "tensor_digest"]

_IMAGE_NAMES = ("image", "images", "image_features", "img", "image_feats")
_TEXT_NAMES = ("text", "texts", "text_features", "txt", "text_feats")
_INDEX_NAMES = ("txt2img", "caption_to_image", "text_to_image", "txt_to_img")


@dataclass(frozen=True)
class FeatureSet:
    """Image features ``(N_img, D_i)``, text features ``(N_txt, D_t)``, ``txt2img (N_txt,)``.

    Validated on construction: 2-D floating-point features, finite, a non-empty
    set, an int64 index in range, and (unless ``allow_uncaptioned``) every image
    described by at least one caption.
    """

    image: torch.Tensor
    text: torch.Tensor
    txt2img: torch.Tensor
    allow_uncaptioned: bool = False

    def __post_init__(self) -> None:
        img = check_tensor(self.image, "image", min_dim=2)
        txt = check_tensor(self.text, "text", min_dim=2)
        if img.dim() != 2 or txt.dim() != 2:
            raise ValueError(
                f"image and text features must be 2-D (N, D), got image {tuple(img.shape)} "
                f"and text {tuple(txt.shape)}"
            )
        if img.shape[0] == 0 or txt.shape[0] == 0:
            raise ValueError(
                f"features must not be empty, got {img.shape[0]} image(s) and "
                f"{txt.shape[0]} caption(s)"
            )
        idx = self.txt2img
        if not isinstance(idx, torch.Tensor):
            idx = torch.as_tensor(idx)
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.dim() != 1:
            raise TypeError(
                f"txt2img must be a 1-D integer tensor, got dtype {idx.dtype} shape "
                f"{tuple(idx.shape)}"
            )
        idx = idx.to(torch.int64)
        if idx.shape[0] != txt.shape[0]:
            raise ValueError(
                f"txt2img must have one entry per caption ({txt.shape[0]}), got {idx.shape[0]}"
            )
        # traced (fake) tensors have no values to range-check
        if has_values(idx) and (int(idx.min()) < 0 or int(idx.max()) >= img.shape[0]):
            raise ValueError(
                f"txt2img values must lie in [0, {img.shape[0]}), got range "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        check_finite(img, "image")
        check_finite(txt, "text")
        if not self.allow_uncaptioned and has_values(idx):
            counts = torch.bincount(idx, minlength=img.shape[0])
            if bool((counts == 0).any()):
                n = int((counts == 0).sum())
                raise ValueError(
                    f"{n} image(s) have no caption in txt2img; image->text recall is undefined "
                    "for them (pass allow_uncaptioned=True to keep them as distractors)"
                )
        object.__setattr__(self, "txt2img", idx)

    @property
    def num_images(self) -> int:
        return int(self.image.shape[0])

    @property
    def num_captions(self) -> int:
        return int(self.text.shape[0])

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption-level training pairs ``(image[txt2img] (N_txt, D_i), text (N_txt, D_t))``."""
        return self.image[self.txt2img], self.text

    def fingerprint(self) -> str:
        """sha256 over the three tensors (dtype, shape and bytes)."""
        h = hashlib.sha256()
        for name, t in (("image", self.image), ("text", self.text), ("txt2img", self.txt2img)):
            h.update(name.encode())
            h.update(tensor_digest(t).encode())
        return h.hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and raw bytes (CPU, contiguous)."""
    h = hashlib.sha256()
    t = t.detach().to("cpu").contiguous()
    h.update(str(t.dtype).encode())
    h.update(str(tuple(t.shape)).encode())
    if t.numel() > 0:
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _pick(obj: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def as_feature_set(obj: Any, name: str = "features") -> FeatureSet:
    """Adapt ``obj`` to a :class:`FeatureSet`.

    Accepts a :class:`FeatureSet`, a tuple ``(image, text, txt2img)``, or any
    object or dict with image/text/index attributes (``image``/``image_features``,
    ``text``/``text_features``, ``txt2img``/``caption_to_image``).
    """
    if isinstance(obj, FeatureSet):
        return obj
    if isinstance(obj, (tuple, list)):
        if len(obj) != 3:
            raise ValueError(
                f"{name} as a tuple must be (image, text, txt2img), got {len(obj)} item(s)"
            )
        return FeatureSet(*obj)
    img, txt, idx = _pick(obj, _IMAGE_NAMES), _pick(obj, _TEXT_NAMES), _pick(obj, _INDEX_NAMES)
    if img is None or txt is None or idx is None:
        raise TypeError(
            f"{name} must be a FeatureSet, an (image, text, txt2img) tuple, or an object with "
            f"image/text features and a txt2img index; got {type(obj).__name__}"
        )
    return FeatureSet(torch.as_tensor(img), torch.as_tensor(txt), torch.as_tensor(idx))
