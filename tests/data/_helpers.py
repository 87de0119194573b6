"""Test doubles and small file builders for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hypervldd.data import ImageEncoder, ImagePreprocess, TextEncoder, TextPreprocess
from hypervldd.data.emoji import EMOJI_TEST_PATH, NOTO_EMOJI_FONT_PATH
from hypervldd.data.fashion_mnist import FASHION_MNIST_ROOT

needs_emoji = pytest.mark.skipif(
    not (EMOJI_TEST_PATH.is_file() and NOTO_EMOJI_FONT_PATH.is_file()),
    reason="Debian packages unicode-data and fonts-noto-color-emoji not installed",
)
needs_fashion = pytest.mark.skipif(
    not FASHION_MNIST_ROOT.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)


class MeanColourEncoder(ImageEncoder):
    """Test double: a fixed linear map of the per-channel mean and std of the pixels."""

    def __init__(self, seed: int = 0, size: int = 16) -> None:
        g = torch.Generator().manual_seed(seed)
        self.proj = torch.nn.Linear(6, 8)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(8, 6, generator=g))
            self.proj.bias.copy_(torch.randn(8, generator=g))
        self.preprocess = ImagePreprocess(size=size, mean=(0.5,) * 3, std=(0.5,) * 3)
        self.normalize = False
        self.device = torch.device("cpu")
        self.id = "mean-colour"
        self.dim = 8
        self.calls = 0

    def _module(self) -> torch.nn.Module:
        return self.proj

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        stats = torch.cat([pixels.mean(dim=(2, 3)), pixels.std(dim=(2, 3))], dim=1)
        return self.proj(stats)


class HashTextEncoder(TextEncoder):
    """Test double: bag of hashed character trigrams through a fixed linear map."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.proj = torch.nn.Linear(64, 6, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(6, 64, generator=g))
        self.text_preprocess = TextPreprocess()
        self.normalize = True
        self.device = torch.device("cpu")
        self.id = "hash-text"
        self.dim = 6
        self.calls = 0

    def _module(self) -> torch.nn.Module:
        return self.proj

    def _forward(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        bags = torch.zeros(len(texts), 64)
        for k, t in enumerate(texts):
            for j in range(max(len(t) - 2, 1)):
                bags[k, sum(map(ord, t[j : j + 3])) % 64] += 1.0
        return self.proj(bags)


def make_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 20)) -> Path:
    """A small PNG with a colour gradient, so images differ in mean and spread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    ramp = np.linspace(0.5, 1.0, w, dtype=np.float32)[None, :, None]
    arr = (np.asarray(colour, dtype=np.float32)[None, None, :] * ramp).repeat(h, axis=0)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


COLOURS = {
    "red.png": (220, 30, 30),
    "green.png": (30, 200, 40),
    "blue.png": (20, 40, 230),
    "yellow.png": (230, 220, 30),
    "grey.png": (128, 128, 128),
}
