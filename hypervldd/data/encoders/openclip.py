"""Both towers of an open_clip model from a local checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .base import ImageEncoder, TextEncoder, _set_offline, state_dict_digest
from .preprocess import ImagePreprocess, TextPreprocess


class _OpenCLIPShared:
    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str, digest: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.digest = digest


class OpenCLIPImageEncoder(ImageEncoder):
    """The image tower of an open_clip model (see :func:`load_open_clip`)."""

    def __init__(
        self,
        shared: _OpenCLIPShared,
        preprocess: ImagePreprocess,
        normalize: bool,
        dim: int,
        device: torch.device,
    ) -> None:
        self._shared = shared
        self.preprocess = preprocess
        self.normalize = normalize
        self.dim = dim
        self.device = device
        self.id = f"open_clip:{shared.name}:image"
        self._weights_digest = shared.digest

    def _module(self) -> torch.nn.Module:
        return self._shared.model

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._shared.model.encode_image(pixels)


class OpenCLIPTextEncoder(TextEncoder):
    """The text tower of an open_clip model (see :func:`load_open_clip`)."""

    def __init__(
        self,
        shared: _OpenCLIPShared,
        text_preprocess: TextPreprocess,
        normalize: bool,
        dim: int,
        device: torch.device,
    ) -> None:
        self._shared = shared
        self.text_preprocess = text_preprocess
        self.normalize = normalize
        self.dim = dim
        self.device = device
        self.id = f"open_clip:{shared.name}:text"
        self._weights_digest = shared.digest

    def _module(self) -> torch.nn.Module:
        return self._shared.model

    def config(self) -> dict[str, Any]:
        tok = self._shared.tokenizer
        return {
            **super().config(),
            "tokenizer": type(tok).__name__,
            "context_length": getattr(tok, "context_length", None),
        }

    def _forward(self, texts: list[str]) -> torch.Tensor:
        tokens = self._shared.tokenizer(texts).to(self.device)
        return self._shared.model.encode_text(tokens)


def load_open_clip(
    model_name: str,
    checkpoint: str | os.PathLike,
    *,
    normalize: bool = True,
    text_preprocess: TextPreprocess | None = None,
    device: str | torch.device = "cpu",
) -> tuple[OpenCLIPImageEncoder, OpenCLIPTextEncoder]:
    """Both towers of an open_clip model, weights from a local checkpoint file.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``), e.g.
            ``"ViT-B-32"``.
        checkpoint: a local checkpoint file for that architecture
            (``open_clip_pytorch_model.bin``, ``.safetensors`` or ``.pt``).
        normalize: L2-normalise both towers' outputs (as CLIP compares them).

    Returns:
        ``(image_encoder, text_encoder)`` sharing one model; dims are the joint
        embedding size.
    """
    _set_offline()
    import open_clip

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"open_clip checkpoint not found at {path}: provide a local weights file for "
            f"{model_name!r} (e.g. open_clip_pytorch_model.bin or open_clip_model.safetensors "
            "copied from a machine with network access); nothing is downloaded"
        )
    if model_name not in open_clip.list_models():
        raise ValueError(
            f"model_name must be an open_clip architecture "
            f"(open_clip.list_models()), got {model_name!r}"
        )
    model = open_clip.create_model(model_name, pretrained=str(path), device="cpu")
    tokenizer = open_clip.get_tokenizer(model_name)
    dev = torch.device(device)
    model = model.eval().requires_grad_(False).to(dev)
    cfg = getattr(model.visual, "preprocess_cfg", {})
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = int(size[-1] if isinstance(size, (tuple, list)) else size)
    if cfg.get("resize_mode", "shortest") not in ("shortest",):
        raise ValueError(
            f"open_clip resize_mode {cfg.get('resize_mode')!r} is not supported; "
            "pass a model that uses 'shortest'"
        )
    pre = ImagePreprocess(
        size=size,
        crop_pct=1.0,
        interpolation=str(cfg.get("interpolation", "bicubic")),
        mean=tuple(float(x) for x in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(float(x) for x in cfg.get("std", open_clip.OPENAI_DATASET_STD)),
    )
    with torch.no_grad():
        dim = int(model.encode_text(tokenizer(["x"]).to(dev)).shape[-1])
    shared = _OpenCLIPShared(model, tokenizer, model_name, state_dict_digest(model))
    return (
        OpenCLIPImageEncoder(shared, pre, bool(normalize), dim, dev),
        OpenCLIPTextEncoder(shared, text_preprocess or TextPreprocess(), bool(normalize), dim, dev),
    )
