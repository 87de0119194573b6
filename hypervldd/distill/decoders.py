"""Image decoders: from an image *embedding* to pixels, for prototype synthesis.

PDS (Choi, Mo, Chae, ICLR 2026) turns each image prototype (a point of CLIP
image-embedding space) into an image with an unCLIP pipeline (Stable unCLIP,
conditioned on CLIP-L image embeddings, prompted with the nearest real
caption). Such a pipeline is large and is never downloaded here: the user
provides it locally. Without one, an image prototype is represented by

* the feature prototype itself (feature protocol; no decoder involved), or
* the nearest real image (pixel protocol): :class:`NearestRealImageDecoder`.

Every decoder has a ``name`` and a JSON-ready :meth:`ImageDecoder.describe`,
recorded in the artifact's config (``resolved.image_source`` /
``resolved.decoder``), so a manifest always says where its pixels came from.

Pixels are ``(M, C, H, W)`` float32 in ``[0, 1]``.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ImageDecoder",
    "NearestRealImageDecoder",
    "CallableDecoder",
    "UnCLIPDecoder",
    "FEATURE_PROTOTYPE",
]

#: Label of a synthetic set whose images are the feature prototypes themselves.
FEATURE_PROTOTYPE = "feature-prototype"


class ImageDecoder(abc.ABC):
    """Maps image embeddings ``(M, D)`` (and optional prompts) to pixels ``(M, C, H, W)``."""

    name: str = ""

    def describe(self) -> dict[str, Any]:
        """JSON-ready description recorded in the artifact (no weights, no secrets)."""
        return {"name": self.name}

    @abc.abstractmethod
    def decode(
        self,
        embeddings: torch.Tensor,
        prompts: Sequence[str] | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Pixels ``(M, C, H, W)`` in ``[0, 1]`` for ``embeddings (M, D)``.

        Args:
            embeddings: image prototypes, in the space of the real image features.
            prompts: ``M`` captions (the nearest real caption of each text prototype),
                or ``None`` when no caption strings are available.
            generator: source of any randomness (sampling noise).
        """

    def __call__(
        self,
        embeddings: torch.Tensor,
        prompts: Sequence[str] | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
            raise ValueError("embeddings must be a 2-D (M, D) tensor")
        if prompts is not None and len(prompts) != embeddings.shape[0]:
            raise ValueError(
                f"prompts must hold one caption per embedding ({embeddings.shape[0]}), got "
                f"{len(prompts)}"
            )
        out = self.decode(embeddings, prompts, generator)
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise ValueError(f"decoder {self.name!r} must return (M, C, H, W) pixels")
        if out.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"decoder {self.name!r} returned {out.shape[0]} images for "
                f"{embeddings.shape[0]} embeddings"
            )
        out = out.float()
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"decoder {self.name!r} returned NaN or inf pixels")
        return out.clamp(0.0, 1.0)


class NearestRealImageDecoder(ImageDecoder):
    """The real image whose feature is nearest (cosine) to each embedding.

    Args:
        images: real pixels ``(N_img, C, H, W)`` in ``[0, 1]``.
        features: their features ``(N_img, D)`` (the space of the embeddings).
    """

    name = "nearest-real-image"

    def __init__(self, images: torch.Tensor, features: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError("images must be (N_img, C, H, W) pixels")
        if not isinstance(features, torch.Tensor) or features.dim() != 2:
            raise ValueError("features must be (N_img, D)")
        if images.shape[0] != features.shape[0]:
            raise ValueError(
                f"images and features must describe the same images, got {images.shape[0]} "
                f"and {features.shape[0]}"
            )
        self.images = images
        self.features = F.normalize(features.float(), dim=-1)
        self.last_indices: torch.Tensor | None = None

    def nearest(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Index ``(M,)`` of the nearest real image to each embedding."""
        if embeddings.shape[1] != self.features.shape[1]:
            raise ValueError(
                f"embeddings are {embeddings.shape[1]}-d but the real image features are "
                f"{self.features.shape[1]}-d"
            )
        return (F.normalize(embeddings.float(), dim=-1) @ self.features.T).argmax(1)

    def decode(
        self,
        embeddings: torch.Tensor,
        prompts: Sequence[str] | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        idx = self.nearest(embeddings)
        self.last_indices = idx
        return self.images[idx].clone()


class CallableDecoder(ImageDecoder):
    """Wraps ``fn(embeddings, prompts, generator) -> (M, C, H, W)`` as a decoder."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor, Sequence[str] | None, torch.Generator], torch.Tensor],
        name: str = "callable",
        info: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.name = str(name)
        self.info = dict(info or {})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.info}

    def decode(
        self,
        embeddings: torch.Tensor,
        prompts: Sequence[str] | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        return self.fn(embeddings, prompts, generator)


class UnCLIPDecoder(ImageDecoder):
    """An unCLIP pipeline the user provides (Stable unCLIP, as PDS uses).

    ``pipeline`` is either a loaded pipeline object (called as
    ``pipeline(prompt=..., image_embeds=..., negative_prompt=..., num_inference_steps=...,
    guidance_scale=..., noise_level=..., generator=...)`` and returning an object
    with ``.images``, a list of PIL images, as diffusers'
    ``StableUnCLIPImg2ImgPipeline`` does), or a local directory loaded with
    diffusers' ``from_pretrained(..., local_files_only=True)``. Nothing is
    downloaded. PDS's settings are the defaults: 100 steps, guidance 5, noise
    level 10, negative prompt ``"text, watermark"``, output resized to 224.

    The embeddings must be in the space the pipeline is conditioned on (CLIP-L
    image embeddings for ``stable-diffusion-2-1-unclip-small``): features of any
    other encoder are refused by the pipeline's own shape check.
    """

    name = "unclip"

    def __init__(
        self,
        pipeline: Any,
        *,
        steps: int = 100,
        guidance_scale: float = 5.0,
        noise_level: int = 10,
        negative_prompt: str = "text, watermark",
        image_size: int = 224,
    ) -> None:
        self.source = None
        if isinstance(pipeline, (str, os.PathLike)):
            path = Path(pipeline)
            if not path.is_dir():
                raise FileNotFoundError(
                    f"unCLIP pipeline directory not found: {path} (provide a local copy; "
                    "nothing is downloaded)"
                )
            try:
                from diffusers import StableUnCLIPImg2ImgPipeline
            except ImportError as err:
                raise ImportError(
                    "loading an unCLIP pipeline from a directory needs the diffusers package"
                ) from err
            self.source = str(path)
            pipeline = StableUnCLIPImg2ImgPipeline.from_pretrained(str(path), local_files_only=True)
        if not callable(pipeline):
            raise TypeError("pipeline must be callable (a loaded unCLIP pipeline) or a directory")
        if int(steps) < 1 or not (guidance_scale >= 0) or int(noise_level) < 0:
            raise ValueError("steps must be >= 1, guidance_scale >= 0 and noise_level >= 0")
        if int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        self.pipeline = pipeline
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.noise_level = int(noise_level)
        self.negative_prompt = str(negative_prompt)
        self.image_size = int(image_size)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pipeline": type(self.pipeline).__name__,
            "source": self.source,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "noise_level": self.noise_level,
            "negative_prompt": self.negative_prompt,
            "image_size": self.image_size,
        }

    def decode(
        self,
        embeddings: torch.Tensor,
        prompts: Sequence[str] | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        from PIL import Image

        out = []
        for k in range(embeddings.shape[0]):
            res = self.pipeline(
                prompt="" if prompts is None else str(prompts[k]),
                image_embeds=embeddings[k : k + 1],
                negative_prompt=self.negative_prompt,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                noise_level=self.noise_level,
                generator=generator,
            )
            img = res.images[0]
            if not isinstance(img, Image.Image):
                raise TypeError("the unCLIP pipeline must return PIL images in .images")
            img = img.convert("RGB").resize(
                (self.image_size, self.image_size), Image.Resampling.BICUBIC
            )
            arr = np.asarray(img, dtype=np.float32) / 255.0
            out.append(torch.from_numpy(arr).permute(2, 0, 1))
        return torch.stack(out)
