"""Image and caption preprocessing, part of every encoder's fingerprint."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize, centre-crop and normalise PIL images into a float32 batch.

    With ``resize="shorter"`` the shorter side is resized to ``round(size / crop_pct)``
    with ``interpolation`` and the centre ``size x size`` is cut out; with
    ``resize="squash"`` the image is resized to ``size x size`` directly (aspect
    ratio not kept, as Hugging Face's ViT/CLIP-style processors with a fixed
    height and width do). Pixels go to [0, 1] and then to ``(x - mean) / std``;
    ``mean = std = 0.5`` maps pixels to [-1, 1].
    """

    size: int = 224
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: Literal["shorter", "squash"] = "shorter"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive int, got {self.size!r}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must lie in (0, 1], got {self.crop_pct!r}")
        if self.interpolation not in _INTERPOLATION:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERPOLATION)}, got {self.interpolation!r}"
            )
        if self.resize not in ("shorter", "squash"):
            raise ValueError(f"resize must be 'shorter' or 'squash', got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(
                f"mean and std must be 3 numbers (std > 0), got {self.mean}, {self.std}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = [float(x) for x in self.mean]
        d["std"] = [float(x) for x in self.std]
        return d

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``B`` PIL images -> ``(B, 3, size, size)`` float32."""
        if isinstance(images, Image.Image):
            images = [images]
        out = np.empty((len(images), self.size, self.size, 3), dtype=np.float32)
        resample = _INTERPOLATION[self.interpolation]
        for k, img in enumerate(images):
            if not isinstance(img, Image.Image):
                raise TypeError(f"images[{k}] must be a PIL image, got {type(img).__name__}")
            img = img.convert("RGB")
            if self.resize == "squash":
                img = img.resize((self.size, self.size), resample)
                out[k] = np.asarray(img, dtype=np.float32)
                continue
            short = round(self.size / self.crop_pct)
            w, h = img.size
            scale = short / min(w, h)
            nw, nh = max(short, round(w * scale)), max(short, round(h * scale))
            img = img.resize((nw, nh), resample)
            left, top = (nw - self.size) // 2, (nh - self.size) // 2
            img = img.crop((left, top, left + self.size, top + self.size))
            out[k] = np.asarray(img, dtype=np.float32)
        x = torch.from_numpy(out).permute(0, 3, 1, 2).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x - mean) / std


_PUNCT = re.compile(r"[^\w\s'-]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextPreprocess:
    """Caption cleaning applied before tokenisation (part of the encoder fingerprint).

    The default leaves captions untouched. :meth:`blip` gives the cleaning of the
    shared benchmark protocol: lower-case, punctuation replaced by spaces,
    whitespace collapsed, at most 30 words.
    """

    lowercase: bool = False
    strip_punctuation: bool = False
    max_words: int | None = None

    @classmethod
    def blip(cls, max_words: int = 30) -> TextPreprocess:
        return cls(lowercase=True, strip_punctuation=True, max_words=max_words)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.lowercase:
            text = text.lower()
        if self.strip_punctuation:
            text = _PUNCT.sub(" ", text)
        text = _SPACE.sub(" ", text).strip()
        if self.max_words is not None:
            text = " ".join(text.split(" ")[: self.max_words])
        return text
