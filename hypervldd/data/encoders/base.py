"""The encoder interface: ``FrozenEncoder``, ``ImageEncoder``, ``TextEncoder``, the fingerprint.

Also what every loader shares: the offline switch and the weights digest.
"""

from __future__ import annotations

import hashlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import torch
from PIL import Image

from .._io import sha256_json
from .preprocess import ImagePreprocess, TextPreprocess

# Bumped when the encoding code changes in a way that changes features.
_ENCODER_VERSION = 1


def _set_offline() -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; when it was imported
    # before this call, its constant is set too, so no later lookup tries the network.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None and hasattr(hub, "HF_HUB_OFFLINE"):
        hub.HF_HUB_OFFLINE = True


def state_dict_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict: names, dtypes, shapes and raw bytes."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # A uint8 view gives the raw bytes of any dtype (bfloat16 has no numpy type).
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class FrozenEncoder(ABC):
    """A frozen feature extractor: ``id``, ``dim``, ``modality`` and a fingerprint."""

    id: str
    dim: int
    modality: Literal["image", "text"]
    device: torch.device

    _weights_digest: str | None = None

    @abstractmethod
    def _module(self) -> torch.nn.Module:
        """The module whose state dict defines the weights."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything besides the weights that changes the features (JSON-able)."""

    def weights_digest(self) -> str:
        """SHA-256 of the weights (computed once, then remembered)."""
        if self._weights_digest is None:
            self._weights_digest = state_dict_digest(self._module())
        return self._weights_digest

    def fingerprint(self) -> str:
        """Hash of class, id, dim, weights and :meth:`config`."""
        return sha256_json(
            {
                "v": _ENCODER_VERSION,
                "class": type(self).__name__,
                "id": self.id,
                "dim": self.dim,
                "modality": self.modality,
                "weights": self.weights_digest(),
                "config": self.config(),
            }
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, dim={self.dim}, device={self.device})"


class ImageEncoder(FrozenEncoder):
    """Images -> features. Subclasses implement :meth:`_forward` on a pixel batch."""

    modality: Literal["image", "text"] = "image"
    preprocess: ImagePreprocess
    normalize: bool

    @abstractmethod
    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` preprocessed pixels on ``device`` -> ``(B, dim)``."""

    def config(self) -> dict[str, Any]:
        return {"preprocess": self.preprocess.to_dict(), "normalize": self.normalize}

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """Encode ``B`` PIL images, or an already preprocessed ``(B, 3, S, S)`` batch.

        Returns:
            ``(B, dim)`` float32 on the CPU (L2-normalised rows if ``normalize``).
        """
        if isinstance(images, torch.Tensor):
            s = self.preprocess.size
            if images.dim() != 4 or images.shape[1] != 3 or images.shape[2:] != (s, s):
                raise ValueError(
                    f"images must have shape (B, 3, {s}, {s}) when given as a tensor, "
                    f"got {tuple(images.shape)}"
                )
            pixels = images.to(torch.float32)
        else:
            pixels = self.preprocess(images)
        if pixels.shape[0] == 0:
            return torch.empty(0, self.dim)
        feats = self._forward(pixels.to(self.device)).float()
        if feats.shape != (pixels.shape[0], self.dim):
            raise RuntimeError(
                f"{self.id} returned shape {tuple(feats.shape)}, expected "
                f"({pixels.shape[0]}, {self.dim})"
            )
        if self.normalize:
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.cpu()


class TextEncoder(FrozenEncoder):
    """Texts -> features. Subclasses implement :meth:`_forward` on cleaned strings."""

    modality: Literal["image", "text"] = "text"
    text_preprocess: TextPreprocess
    normalize: bool

    @abstractmethod
    def _forward(self, texts: list[str]) -> torch.Tensor:
        """``B`` cleaned strings -> ``(B, dim)``."""

    def config(self) -> dict[str, Any]:
        return {"text_preprocess": self.text_preprocess.to_dict(), "normalize": self.normalize}

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode ``B`` strings.

        Returns:
            ``(B, dim)`` float32 on the CPU (L2-normalised rows if ``normalize``).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, got a single str")
        cleaned = [self.text_preprocess(t) for t in texts]
        if not cleaned:
            return torch.empty(0, self.dim)
        feats = self._forward(cleaned).float()
        if feats.shape != (len(cleaned), self.dim):
            raise RuntimeError(
                f"{self.id} returned shape {tuple(feats.shape)}, expected "
                f"({len(cleaned)}, {self.dim})"
            )
        if self.normalize:
            feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.cpu()
