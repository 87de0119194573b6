"""The :class:`SyntheticSet` artifact every distillation method returns.

On disk: one safetensors file whose header metadata holds a JSON manifest
(format ``hypervldd.synthetic_set``, version, method, config, data fingerprint,
encoders, package versions, budget, seed, history, tensor table, sha256
checksum over the manifest and the tensors). Written atomically; loading validates
the schema, shapes, dtypes and checksum and never unpickles.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._io import ArtifactError, read_container, read_manifest, write_container

__all__ = [
    "SyntheticSet",
    "LowRankSimilarity",
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "read_artifact_manifest",
]

ARTIFACT_FORMAT = "hypervldd.synthetic_set"
#: Version 2: the checksum covers the manifest too. Version 1 files still load (their
#: tensors verified, their manifest not, with a warning).
ARTIFACT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_IMAGE_KINDS = ("features", "pixels")
_REQUIRED = {
    "format": str,
    "format_version": int,
    "method": str,
    "config": dict,
    "budget": dict,
    "data_fingerprint": str,
    "encoders": dict,
    "versions": dict,
    "image_kind": str,
    "history": list,
}
#: Fields the container adds on save (checked by :meth:`SyntheticSet.load`).
_CONTAINER = {"tensors": dict, "checksum": dict}


@dataclass(frozen=True)
class LowRankSimilarity:
    """Learned soft similarity ``S = diag(diag) + scale * left @ right.T`` (LoRS form).

    ``diag (M,)``, ``left (M, r)``, ``right (M, r)``; stores ``M (2r + 1)`` floats.
    """

    diag: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    scale: float = 1.0

    def matrix(self) -> torch.Tensor:
        """The dense ``(M, M)`` similarity."""
        return torch.diag(self.diag) + self.scale * (self.left @ self.right.T)


def _versions() -> dict[str, str]:
    import safetensors

    from .. import __version__

    return {
        "hypervldd": __version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


@dataclass
class SyntheticSet:
    """A distilled (or selected) set of image-text pairs, with provenance.

    Attributes:
        image: ``(M, D_i)`` image features, or ``(M, C, H, W)`` pixels.
        text: ``(M, D_t)`` text embeddings.
        method: the method's registry name (e.g. ``"herding"``).
        config: the method's config as a JSON-ready dict.
        image_kind: ``"features"`` or ``"pixels"``.
        similarity: optional learned soft similarity, dense ``(M, M)`` or
            :class:`LowRankSimilarity`.
        learned_lrs: optional learned step sizes, e.g. ``{"image": 0-d, "text": 0-d}``.
        source_indices: optional ``(M,)`` int64 caption-pair indices into the real
            data the pairs came from (coresets, initialisation).
        data_fingerprint: fingerprint of the real features used.
        encoders: encoder ids, e.g. ``{"image": "...", "text": "..."}``.
        seed: the seed of the run.
        history: JSON-ready records of the run (losses, validation metrics).
    """

    image: torch.Tensor
    text: torch.Tensor
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    image_kind: str = "features"
    similarity: torch.Tensor | LowRankSimilarity | None = None
    learned_lrs: dict[str, torch.Tensor] = field(default_factory=dict)
    source_indices: torch.Tensor | None = None
    data_fingerprint: str = ""
    encoders: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    # -- checks -------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field if shapes, dtypes or values are wrong."""
        for t, name in ((self.image, "image"), (self.text, "text")):
            if not isinstance(t, torch.Tensor) or t.dtype not in _FLOAT_DTYPES:
                raise ValueError(f"{name} must be a floating-point tensor")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} holds NaN or inf")
        if self.image_kind not in _IMAGE_KINDS:
            raise ValueError(f"image_kind must be one of {_IMAGE_KINDS}, got {self.image_kind!r}")
        want = 2 if self.image_kind == "features" else 4
        if self.image.dim() != want:
            raise ValueError(
                f"image must be {want}-D for image_kind={self.image_kind!r}, got shape "
                f"{tuple(self.image.shape)}"
            )
        if self.text.dim() != 2:
            raise ValueError(f"text must be 2-D (M, D_t), got shape {tuple(self.text.shape)}")
        m = self.image.shape[0]
        if m == 0 or self.text.shape[0] != m:
            raise ValueError(
                f"image and text must hold the same positive number of pairs, got {m} and "
                f"{self.text.shape[0]}"
            )
        if isinstance(self.similarity, torch.Tensor):
            if self.similarity.shape != (m, m):
                raise ValueError(
                    f"similarity must be ({m}, {m}), got {tuple(self.similarity.shape)}"
                )
        elif isinstance(self.similarity, LowRankSimilarity):
            s = self.similarity
            if (
                s.diag.shape != (m,)
                or s.left.dim() != 2
                or s.left.shape[0] != m
                or (s.right.shape != s.left.shape)
            ):
                raise ValueError(
                    f"low-rank similarity must have diag ({m},), left and right (M, r); got "
                    f"{tuple(s.diag.shape)}, {tuple(s.left.shape)}, {tuple(s.right.shape)}"
                )
        elif self.similarity is not None:
            raise ValueError("similarity must be a tensor, a LowRankSimilarity or None")
        for k, v in self.learned_lrs.items():
            if not isinstance(v, torch.Tensor) or v.numel() != 1 or v.dtype not in _FLOAT_DTYPES:
                raise ValueError(f"learned_lrs[{k!r}] must be a one-element float tensor")
        if self.source_indices is not None and (
            self.source_indices.dtype != torch.int64 or self.source_indices.shape != (m,)
        ):
            raise ValueError(f"source_indices must be int64 of shape ({m},)")

    # -- budget -------------------------------------------------------------------
    @property
    def num_pairs(self) -> int:
        return int(self.image.shape[0])

    def storage_floats(self) -> int:
        """Floats a student needs from this set: pairs, similarity and learned rates.

        ``source_indices`` are provenance, not training data, and are not counted.
        """
        n = self.image.numel() + self.text.numel()
        if isinstance(self.similarity, torch.Tensor):
            n += self.similarity.numel()
        elif isinstance(self.similarity, LowRankSimilarity):
            s = self.similarity
            n += s.diag.numel() + s.left.numel() + s.right.numel() + 1
        n += sum(v.numel() for v in self.learned_lrs.values())
        return int(n)

    def similarity_matrix(self) -> torch.Tensor | None:
        """The learned similarity as a dense ``(M, M)`` tensor, or ``None``."""
        if isinstance(self.similarity, LowRankSimilarity):
            return self.similarity.matrix()
        return self.similarity

    # -- persistence --------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {"image": self.image, "text": self.text}
        if isinstance(self.similarity, torch.Tensor):
            out["similarity"] = self.similarity
        elif isinstance(self.similarity, LowRankSimilarity):
            out["similarity.diag"] = self.similarity.diag
            out["similarity.left"] = self.similarity.left
            out["similarity.right"] = self.similarity.right
        for k, v in self.learned_lrs.items():
            out[f"lr.{k}"] = v.reshape(())
        if self.source_indices is not None:
            out["source_indices"] = self.source_indices
        return out

    def manifest(self) -> dict[str, Any]:
        """The JSON manifest (without the tensor table and checksum added on save)."""
        sim = None
        if isinstance(self.similarity, LowRankSimilarity):
            sim = {"kind": "low_rank", "scale": float(self.similarity.scale)}
        elif isinstance(self.similarity, torch.Tensor):
            sim = {"kind": "dense"}
        return {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "method": self.method,
            "config": self.config,
            "image_kind": self.image_kind,
            "similarity": sim,
            "budget": {"pairs": self.num_pairs, "storage_floats": self.storage_floats()},
            "data_fingerprint": self.data_fingerprint,
            "encoders": dict(self.encoders),
            "versions": _versions(),
            "seed": self.seed,
            "history": self.history,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (conventionally ``*.safetensors``)."""
        self.validate()
        try:
            json.dumps(self.config, allow_nan=False)
            json.dumps(self.history, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"config and history must be JSON-serialisable ({err})") from err
        return write_container(path, self._tensors(), self.manifest())

    @classmethod
    def load(cls, path: str | os.PathLike) -> SyntheticSet:
        """Read and verify an artifact; raises :class:`ArtifactError` if it is not valid."""
        tensors, m = read_container(path, expect_format=ARTIFACT_FORMAT)
        for key, typ in _CONTAINER.items():
            if not isinstance(m.get(key), typ):
                raise ArtifactError(f"{path}: manifest field {key!r} missing or not {typ.__name__}")
        return cls.from_parts(tensors, m, where=str(path))

    @classmethod
    def from_parts(
        cls, tensors: dict[str, torch.Tensor], m: dict[str, Any], *, where: str = "artifact"
    ) -> SyntheticSet:
        """Rebuild from the tensors and the manifest of :meth:`save`, checking both.

        ``where`` names the source in errors (a path, or the checkpoint that embeds
        the set). Raises :class:`ArtifactError` if the parts do not form a valid set.
        """
        path = where
        for key, typ in _REQUIRED.items():
            if not isinstance(m.get(key), typ):
                raise ArtifactError(f"{path}: manifest field {key!r} missing or not {typ.__name__}")
        if m["format_version"] not in _READABLE_VERSIONS:
            raise ArtifactError(
                f"{path}: artifact format version {m['format_version']} is not supported "
                f"(this hypervldd reads versions {list(_READABLE_VERSIONS)})"
            )
        allowed = {
            "image",
            "text",
            "similarity",
            "similarity.diag",
            "similarity.left",
            "similarity.right",
            "source_indices",
        }
        unknown = [k for k in tensors if k not in allowed and not k.startswith("lr.")]
        if unknown or "image" not in tensors or "text" not in tensors:
            raise ArtifactError(f"{path}: unexpected tensor set {sorted(tensors)}")
        sim_meta = m.get("similarity")
        sim: torch.Tensor | LowRankSimilarity | None = None
        if sim_meta is not None:
            kind = sim_meta.get("kind") if isinstance(sim_meta, dict) else None
            if kind == "dense" and "similarity" in tensors:
                sim = tensors["similarity"]
            elif kind == "low_rank" and all(
                f"similarity.{p}" in tensors for p in ("diag", "left", "right")
            ):
                sim = LowRankSimilarity(
                    tensors["similarity.diag"],
                    tensors["similarity.left"],
                    tensors["similarity.right"],
                    float(sim_meta.get("scale", 1.0)),
                )
            else:
                raise ArtifactError(f"{path}: similarity entry {sim_meta!r} does not match tensors")
        elif any(k.startswith("similarity") for k in tensors):
            raise ArtifactError(f"{path}: similarity tensors present but not declared")
        try:
            out = cls(
                image=tensors["image"],
                text=tensors["text"],
                method=m["method"],
                config=m["config"],
                image_kind=m["image_kind"],
                similarity=sim,
                learned_lrs={k[3:]: v for k, v in tensors.items() if k.startswith("lr.")},
                source_indices=tensors.get("source_indices"),
                data_fingerprint=m["data_fingerprint"],
                encoders=m["encoders"],
                seed=m.get("seed"),
                history=m["history"],
            )
        except ValueError as err:
            raise ArtifactError(f"{path}: invalid synthetic set ({err})") from err
        if (
            m["budget"].get("pairs") != out.num_pairs
            or m["budget"].get("storage_floats") != out.storage_floats()
        ):
            raise ArtifactError(f"{path}: budget {m['budget']} does not match the stored tensors")
        return out


def read_artifact_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an artifact without loading its tensors (no checksum check)."""
    return read_manifest(path, expect_format=ARTIFACT_FORMAT)
