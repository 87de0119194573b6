"""Image encoders from local Hugging Face vision models (ViT, CLIP vision, DINOv2, ...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from .base import ImageEncoder, _set_offline
from .preprocess import ImagePreprocess

_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def _preprocess_from_hf(proc: Any) -> ImagePreprocess:
    """Translate a Hugging Face image processor's settings into :class:`ImagePreprocess`."""
    size = dict(getattr(proc, "size", None) or {})
    crop = dict(getattr(proc, "crop_size", None) or {})
    do_crop = bool(getattr(proc, "do_center_crop", False)) and bool(crop)
    interp = _PIL_RESAMPLE.get(int(getattr(proc, "resample", 3)), "bicubic")
    mean = tuple(float(x) for x in getattr(proc, "image_mean", (0.5, 0.5, 0.5)))
    std = tuple(float(x) for x in getattr(proc, "image_std", (0.5, 0.5, 0.5)))
    if not getattr(proc, "do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        out = int(crop.get("height", edge)) if do_crop else edge
        if do_crop and crop.get("height") != crop.get("width"):
            raise ValueError(f"only square crops are supported, got crop_size {crop}")
        return ImagePreprocess(
            size=out, crop_pct=out / edge, interpolation=interp, mean=mean, std=std
        )
    if "height" in size and size.get("height") == size.get("width"):
        edge = int(size["height"])
        if do_crop:
            out = int(crop["height"])
            return ImagePreprocess(
                size=out, crop_pct=out / edge, interpolation=interp, mean=mean, std=std
            )
        return ImagePreprocess(size=edge, interpolation=interp, mean=mean, std=std, resize="squash")
    raise ValueError(f"unsupported image processor size {size}; pass preprocess= explicitly")


class HFImageEncoder(ImageEncoder):
    """A Hugging Face vision model from a local folder (ViT, CLIP vision, DINOv2, ...).

    Args:
        path: folder with ``config.json``, weights and ``preprocessor_config.json``.
        pooling: ``"pooler"`` (the model's ``pooler_output``), ``"cls"`` (first token
            of ``last_hidden_state``) or ``"mean"`` (mean over tokens).
        normalize: L2-normalise the features.
        preprocess: override the preprocessing read from the processor config.
        id: a readable id (default: the folder name).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        pooling: Literal["pooler", "cls", "mean"] = "pooler",
        normalize: bool = False,
        preprocess: ImagePreprocess | None = None,
        id: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        _set_offline()
        if pooling not in ("pooler", "cls", "mean"):
            raise ValueError(f"pooling must be 'pooler', 'cls' or 'mean', got {pooling!r}")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no Hugging Face model folder at {path}: provide a local folder with "
                "config.json, the weights and preprocessor_config.json"
            )
        from transformers import AutoImageProcessor, AutoModel

        if preprocess is None:
            proc = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
            preprocess = _preprocess_from_hf(proc)
        self.preprocess = preprocess
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.id = id or path.name
        with torch.no_grad():
            blank = self.preprocess([Image.new("RGB", (8, 8))]).to(self.device)
            self.dim = int(self._forward(blank).shape[-1])

    def _module(self) -> torch.nn.Module:
        return self.model

    def config(self) -> dict[str, Any]:
        return {**super().config(), "pooling": self.pooling}

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels)
        if self.pooling == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ValueError(f"{self.id} has no pooler_output; use pooling='cls' or 'mean'")
            return pooled.reshape(pooled.shape[0], -1)
        hidden = out.last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)
