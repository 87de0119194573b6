"""Stand-in encoders for a recipe's dry run: random, fixed, of the recipe's output widths.

A dry run checks that a recipe runs end to end (data, features of the right widths, every
method's config, the protocol) without the checkpoints it names. The stand-ins are seeded
random maps, so their features carry some of the input's structure (similar images give
similar features) but no semantics: a dry run's recall numbers mean nothing.

* :class:`StandInImageEncoder`: the image at ``size x size`` (default 16), flattened, a fixed
  Gaussian projection to ``dim``, then ``tanh``.
* :class:`StandInTextEncoder`: the mean of fixed Gaussian vectors of the words (a word's
  vector is chosen by a CRC-32 of the word, the same in every process), then ``tanh``.

Both subclass the package's encoder interfaces, so the feature cache keys them by id,
width and weights like any encoder and never confuses them with real ones.

>>> img, txt = StandInImageEncoder(2304), StandInTextEncoder(768)
>>> txt.encode_texts(["a dog", "a dog", "two cats"]).shape
torch.Size([3, 768])
>>> bool((txt.encode_texts(["a dog"]) == txt.encode_texts(["a dog"])).all())
True
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

from ..data import ImageEncoder, ImagePreprocess, TextEncoder, TextPreprocess

__all__ = ["StandInImageEncoder", "StandInTextEncoder"]

#: Rows of the word table; words share rows by hash (enough for a dry run's captions).
_VOCAB = 4096


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int (the output width), got {dim!r}")
    return dim


class StandInImageEncoder(ImageEncoder):
    """A seeded random projection of small images to ``dim`` features (dry runs only).

    Args:
        dim: output width (the width of the encoder it stands in for).
        seed: seed of the projection.
        size: images are resized to ``size x size`` before the projection.
    """

    def __init__(self, dim: int, *, seed: int = 0, size: int = 16) -> None:
        self.dim = _check_dim(dim)
        self.id = f"stand-in-image-{dim}"
        self.device = torch.device("cpu")
        self.normalize = False
        self.preprocess = ImagePreprocess(size=size, resize="squash", interpolation="bilinear")
        gen = torch.Generator().manual_seed(int(seed))
        self._proj = torch.nn.Linear(3 * size * size, dim, bias=False)
        with torch.no_grad():
            self._proj.weight.copy_(
                torch.randn(dim, 3 * size * size, generator=gen) / (3 * size * size) ** 0.5
            )
        self._proj.requires_grad_(False)

    def _module(self) -> torch.nn.Module:
        return self._proj

    def config(self) -> dict[str, Any]:
        return {**super().config(), "stand_in": True}

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self._proj(pixels.flatten(1)))


class StandInTextEncoder(TextEncoder):
    """A seeded random bag-of-words embedding to ``dim`` features (dry runs only).

    Args:
        dim: output width (the width of the encoder it stands in for).
        seed: seed of the word table.
    """

    def __init__(self, dim: int, *, seed: int = 0) -> None:
        self.dim = _check_dim(dim)
        self.id = f"stand-in-text-{dim}"
        self.device = torch.device("cpu")
        self.normalize = False
        self.text_preprocess = TextPreprocess()
        gen = torch.Generator().manual_seed(int(seed) + 1)
        self._table = torch.nn.Embedding(_VOCAB, dim)
        with torch.no_grad():
            self._table.weight.copy_(torch.randn(_VOCAB, dim, generator=gen))
        self._table.requires_grad_(False)

    def _module(self) -> torch.nn.Module:
        return self._table

    def config(self) -> dict[str, Any]:
        return {**super().config(), "stand_in": True}

    def _forward(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            words = t.lower().split() or [""]
            idx = torch.tensor([zlib.crc32(w.encode()) % _VOCAB for w in words])
            rows.append(self._table(idx).mean(dim=0))
        return torch.tanh(torch.stack(rows))
