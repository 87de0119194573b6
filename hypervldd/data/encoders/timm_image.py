"""Image encoders from local timm checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .base import ImageEncoder, _set_offline
from .preprocess import ImagePreprocess


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
