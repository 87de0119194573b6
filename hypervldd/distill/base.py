"""The :class:`Distiller` interface and the method registry.

Every method is ``Distiller(config).fit(real, budget, seed) -> SyntheticSet``:
``real`` is anything :func:`hypervldd.eval.as_feature_set` accepts (image
features ``(N_img, D_i)``, text features ``(N_txt, D_t)``, ``txt2img (N_txt,)``),
``budget`` is the number of synthetic pairs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..eval._config import config_from_dict, config_to_dict
from ..eval.features import FeatureSet, as_feature_set
from .artifact import SyntheticSet

__all__ = ["Distiller", "register", "get_distiller", "available_methods", "RealData"]

_REGISTRY: dict[str, type[Distiller]] = {}


@dataclass(frozen=True)
class RealData:
    """Validated real data plus the caption-level pair view methods work on.

    Attributes:
        features: the :class:`FeatureSet`.
        pair_image: ``(N_txt, D_i)`` image feature of each caption pair.
        pair_text: ``(N_txt, D_t)``.
        pair_group: ``(N_txt,)`` image index of each pair (``txt2img``).
        fingerprint: data fingerprint (sha256) recorded in artifacts.
        encoders: encoder ids carried by the input, if any.
    """

    features: FeatureSet
    pair_image: torch.Tensor
    pair_text: torch.Tensor
    pair_group: torch.Tensor
    fingerprint: str
    encoders: dict[str, str]

    @property
    def num_pairs(self) -> int:
        return int(self.pair_text.shape[0])

    @property
    def num_images(self) -> int:
        return self.features.num_images


def prepare_real(real: Any) -> RealData:
    """Validate ``real`` (non-empty, finite, consistent) and build the pair view."""
    fs = as_feature_set(real, "real")
    img, txt = fs.pairs()
    fp = getattr(real, "fingerprint", None)
    fp = fp() if callable(fp) else fp
    enc = getattr(real, "encoders", None)
    meta = getattr(real, "metadata", None)
    if not isinstance(enc, dict) and isinstance(meta, dict):
        # The feature cache of hypervldd.data records encoder ids in its metadata.
        enc = {
            side: str(meta[f"{side}_encoder"])
            for side in ("image", "text")
            if f"{side}_encoder" in meta
        }
    return RealData(
        features=fs,
        pair_image=img.float(),
        pair_text=txt.float(),
        pair_group=fs.txt2img,
        fingerprint=str(fp) if isinstance(fp, str) else fs.fingerprint(),
        encoders=dict(enc) if isinstance(enc, dict) else {},
    )


class Distiller(abc.ABC):
    """Base class: ``fit(real, budget, seed) -> SyntheticSet``.

    Subclasses set ``method`` (the registry name) and ``Config`` (a frozen
    dataclass with the published defaults) and implement :meth:`_fit`.
    ``device_ready`` says that the method runs with its real features on an
    accelerator (checked by the fake-CUDA suite); the pipeline runs the others on the
    CPU.
    """

    method: ClassVar[str] = ""
    Config: ClassVar[type]
    device_ready: ClassVar[bool] = False

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is None:
            config = self.Config(**overrides)
        elif isinstance(config, dict):
            config = config_from_dict(self.Config, {**config, **overrides})
        elif overrides:
            raise ValueError("pass either a config object or keyword overrides, not both")
        if not isinstance(config, self.Config):
            raise TypeError(f"config must be a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        return config_to_dict(self.config)

    def fit(self, real: Any, budget: int, seed: int = 0, **kwargs: Any) -> SyntheticSet:
        """Distil ``real`` into ``budget`` pairs.

        Args:
            real: real features (see :func:`hypervldd.eval.as_feature_set`).
            budget: number of synthetic pairs, ``1 <= budget <= `` the pool size.
            seed: all randomness of the run derives from it.
            **kwargs: method-specific options (e.g. checkpointing for the
                gradient-based methods).
        """
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        data = prepare_real(real)
        pool = self.pool_size(data)
        if budget > pool:
            raise ValueError(
                f"budget={budget} is larger than the {pool} candidate pair(s) this method can "
                f"use ({data.num_images} image(s), {data.num_pairs} caption pair(s))"
            )
        return self._fit(data, budget, seed, **kwargs)

    def pool_size(self, data: RealData) -> int:
        """Largest admissible budget (default: one pair per image)."""
        return data.num_images

    @abc.abstractmethod
    def _fit(self, data: RealData, budget: int, seed: int, **kwargs: Any) -> SyntheticSet:
        raise NotImplementedError


def register(cls: type[Distiller]) -> type[Distiller]:
    """Class decorator adding a method to the registry under ``cls.method``."""
    if not cls.method or cls.method in _REGISTRY:
        raise ValueError(f"method name {cls.method!r} is empty or already registered")
    _REGISTRY[cls.method] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def get_distiller(name: str, config: Any = None, **overrides: Any) -> Distiller:
    """Instantiate a registered method by name."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {available_methods()}")
    return _REGISTRY[name](config, **overrides)
