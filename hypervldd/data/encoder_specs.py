"""Encoders named by a string (what ``--image-encoder`` / ``--text-encoder`` take).

=============================  ==============================================
``efficientnet-lite0``         the built-in image encoder
``minilm-l6-v2``               the built-in text encoder
``open_clip:ARCH``             a tower of an open_clip model; weights from a
                               local file (``open_clip_checkpoint``)
``timm:NAME``                  a timm image model; weights from a local file
                               or hub-layout folder (``timm_checkpoint``)
``hf:FOLDER``                  a local transformers folder (image: a vision
                               model with its processor; text: any encoder)
                               or a sentence-transformers folder (its pooling,
                               normalisation and length are read from it)
=============================  ==============================================

Nothing downloads: every file is local, and a missing one is named in the error.
:func:`third_party_progress` switches off the progress bars of transformers,
huggingface_hub and datasets (e.g. "Loading weights") for ``--no-progress``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ENCODER_KINDS",
    "build_encoder_pair",
    "load_sentence_transformer",
    "third_party_progress",
]

#: Spelled out in errors and ``--help``.
ENCODER_KINDS = (
    "efficientnet-lite0 / minilm-l6-v2, open_clip:ARCH (with an open_clip checkpoint), "
    "timm:NAME (image; with a timm checkpoint) or hf:FOLDER (a local transformers or "
    "sentence-transformers folder)"
)


@contextlib.contextmanager
def third_party_progress(enabled: bool) -> Iterator[None]:
    """Within the block, third-party progress bars are on (``True``) or off (``False``).

    The previous state of each library is restored on exit.

    >>> with third_party_progress(False):
    ...     pass
    """
    undo: list[Any] = []
    if not enabled:
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as tlog

            if tlog.is_progress_bar_enabled():
                tlog.disable_progress_bar()
                undo.append(tlog.enable_progress_bar)
        with contextlib.suppress(ImportError):
            from huggingface_hub.utils import (
                are_progress_bars_disabled,
                disable_progress_bars,
                enable_progress_bars,
            )

            if not are_progress_bars_disabled():
                disable_progress_bars()
                undo.append(enable_progress_bars)
        with contextlib.suppress(ImportError):
            import datasets

            if datasets.is_progress_bar_enabled():
                datasets.disable_progress_bars()
                undo.append(datasets.enable_progress_bars)
    try:
        yield
    finally:
        for fn in undo:
            fn()


def load_sentence_transformer(path: str | os.PathLike, **kwargs: Any) -> Any:
    """A text encoder from a local folder, sentence-transformers layout or plain transformers.

    In a sentence-transformers folder (``modules.json``), the pooling (``cls`` or
    ``mean``) comes from its ``Pooling`` module, L2 normalisation from the presence
    of a ``Normalize`` module, and the token limit from
    ``sentence_bert_config.json``; the transformer must sit at the folder's root
    (the usual layout). Other folders get mean pooling and normalisation.
    ``kwargs`` override (see :class:`~hypervldd.data.encoders.HFTextEncoder`).

    Example::

        enc = load_sentence_transformer("/models/all-mpnet-base-v2")
    """
    from .encoders import HFTextEncoder

    root = Path(path)
    settings: dict[str, Any] = {}
    modules_file = root / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        types = [str(m.get("type", "")) for m in modules]
        settings["normalize"] = any(t.endswith(".Normalize") for t in types)
        for m in modules:
            if str(m.get("type", "")).endswith(".Pooling"):
                cfg_file = root / str(m.get("path", "")) / "config.json"
                cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
                if cfg.get("pooling_mode_cls_token"):
                    settings["pooling"] = "cls"
                elif cfg.get("pooling_mode_mean_tokens", True):
                    settings["pooling"] = "mean"
                else:
                    modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_") and v)
                    raise ValueError(
                        f"text encoder {root}: pooling {modes} is not supported (cls or mean)"
                    )
        bert_cfg = root / "sentence_bert_config.json"
        if bert_cfg.is_file():
            length = json.loads(bert_cfg.read_text()).get("max_seq_length")
            if isinstance(length, int) and length >= 2:
                settings["max_length"] = length
    settings.update(kwargs)
    settings.setdefault("id", f"hf:{root.name}")
    return HFTextEncoder(root, **settings)


def _one(
    side: str,
    spec: str,
    *,
    open_clip_checkpoint: str | os.PathLike | None,
    timm_checkpoint: str | os.PathLike | None,
    clip_cache: dict[str, tuple[Any, Any]],
    device: Any = "cpu",
) -> Any:
    from . import encoders

    arg = f"{side}_encoder"
    if spec.startswith("open_clip:"):
        arch = spec.split(":", 1)[1]
        if open_clip_checkpoint is None:
            raise ValueError(
                f"{arg} {spec}: needs a local checkpoint file (--open-clip-checkpoint); "
                "nothing is downloaded at run time"
            )
        if arch not in clip_cache:
            clip_cache[arch] = encoders.load_open_clip(arch, open_clip_checkpoint, device=device)
        return clip_cache[arch][0 if side == "image" else 1]
    if spec.startswith("timm:"):
        if side != "image":
            raise ValueError(f"{arg} must be a text encoder; timm:NAME models are image encoders")
        if timm_checkpoint is None:
            raise ValueError(
                f"{arg} {spec}: needs a local checkpoint (--timm-checkpoint: a state-dict file "
                "or a folder with config.json + model.safetensors); nothing is downloaded"
            )
        return encoders.TimmImageEncoder(spec.split(":", 1)[1], timm_checkpoint, device=device)
    if spec.startswith("hf:"):
        folder = Path(spec[3:])
        if side == "image":
            return encoders.HFImageEncoder(folder, id=f"hf:{folder.name}", device=device)
        return load_sentence_transformer(folder, device=device)
    if side == "image" and spec == "efficientnet-lite0":
        return encoders.efficientnet_lite0(device=device)
    if side == "text" and spec == "minilm-l6-v2":
        return encoders.minilm_l6_v2(device=device)
    raise ValueError(f"{arg} must be {ENCODER_KINDS}; got {spec!r}")


def build_encoder_pair(
    image: str,
    text: str,
    *,
    open_clip_checkpoint: str | os.PathLike | None = None,
    timm_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    device: Any = "cpu",
) -> tuple[Any, Any]:
    """``(image_encoder, text_encoder)`` for two encoder strings (see the module table),
    on ``device``.

    Both ``open_clip:ARCH`` sides share one model. ``progress=False`` silences the
    loading bars of the libraries below.

    Example::

        img, txt = build_encoder_pair("timm:resnet50", "hf:/models/all-mpnet-base-v2",
                                      timm_checkpoint="/models/resnet50.safetensors")
    """
    cache: dict[str, tuple[Any, Any]] = {}
    kw = {
        "open_clip_checkpoint": open_clip_checkpoint,
        "timm_checkpoint": timm_checkpoint,
        "clip_cache": cache,
        "device": device,
    }
    with third_party_progress(progress):
        return _one("image", image, **kw), _one("text", text, **kw)
