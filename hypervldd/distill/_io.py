"""Atomic file writes and a pickle-free tensor container (safetensors + JSON).

Everything :mod:`hypervldd.distill` writes (artifacts and checkpoints) goes
through :func:`atomic_write_bytes`: the bytes go to a temporary file in the same
directory, are flushed and fsync'ed, and only then renamed over the target with
``os.replace`` (atomic on POSIX). A crash at any point leaves either the old file
or the new one, never a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..data._io import atomic_write_bytes

__all__ = [
    "ArtifactError",
    "atomic_write_bytes",
    "write_container",
    "read_container",
    "tensors_checksum",
    "container_checksum",
]

META_KEY = "hypervldd"
#: What the checksum of a container covers since format version 2 of the artifact and
#: the checkpoint. Version 1 files (no ``covers`` entry) checksummed the tensors only.
CHECKSUM_COVERS = ["manifest", "tensors"]


class ArtifactError(ValueError):
    """A file is not a valid hypervldd artifact or checkpoint (corrupt, truncated, foreign)."""


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over ``(name, dtype, shape, bytes)`` of every tensor, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel() > 0:
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _canonical(manifest: dict[str, Any]) -> bytes:
    """The manifest without its checksum entry as canonical JSON (sorted keys, no spaces).

    Computed from the parsed JSON, so writer and reader hash the same bytes whatever
    the Python types (tuples, int keys) the writer held.
    """
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def container_checksum(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the canonical manifest (less its checksum) and :func:`tensors_checksum`."""
    h = hashlib.sha256()
    h.update(b"hypervldd.container\0")
    h.update(_canonical(manifest))
    h.update(b"\0")
    h.update(tensors_checksum(tensors).encode())
    return h.hexdigest()


def write_container(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]
) -> Path:
    """Atomically write ``tensors`` and a JSON ``manifest`` as one safetensors file.

    The manifest is stored in the safetensors header metadata, so tensors and
    manifest can never go out of sync, and gains ``tensors`` (dtype and shape per
    name) and ``checksum`` (sha256 over the whole manifest and every tensor, see
    :func:`container_checksum`): a change of one bit anywhere is refused on reading.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    manifest = dict(manifest)
    manifest["tensors"] = {
        k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
        for k, v in sorted(tensors.items())
    }
    # Round-trip through JSON first so that the checksum is of what a reader will parse.
    manifest = json.loads(json.dumps(manifest, sort_keys=True, allow_nan=False))
    manifest["checksum"] = {
        "algorithm": "sha256",
        "covers": list(CHECKSUM_COVERS),
        "value": container_checksum(manifest, tensors),
    }
    meta = {META_KEY: json.dumps(manifest, sort_keys=True, allow_nan=False)}
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def _header(raw: bytes, path: Path) -> dict[str, Any]:
    if len(raw) < 8:
        raise ArtifactError(f"{path}: file is {len(raw)} bytes, too short to be safetensors")
    (n,) = struct.unpack("<Q", raw[:8])
    if n == 0 or 8 + n > len(raw):
        raise ArtifactError(
            f"{path}: not a safetensors file or truncated (header claims {n} bytes, file has "
            f"{len(raw) - 8})"
        )
    try:
        header = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: safetensors header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise ArtifactError(f"{path}: safetensors header is not a JSON object")
    return header


def read_manifest(path: str | os.PathLike, *, expect_format: str) -> dict[str, Any]:
    """The JSON manifest of a container, without loading its tensors."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) == 8:
            (n,) = struct.unpack("<Q", head)
            if 0 < n < (1 << 30):
                head += f.read(n)
    return _manifest(_header(head, path), path, expect_format)


def _manifest(header: dict[str, Any], path: Path, expect_format: str) -> dict[str, Any]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or META_KEY not in meta:
        raise ArtifactError(
            f"{path}: a safetensors file without a hypervldd manifest (foreign file?)"
        )
    try:
        manifest = json.loads(meta[META_KEY])
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: the manifest is not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != expect_format:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(f"{path}: expected a {expect_format!r} file, found format {got!r}")
    return manifest


def read_container(
    path: str | os.PathLike, *, expect_format: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a container written by :func:`write_container`.

    Checks, in order: the safetensors framing, the manifest's presence and
    format, that the tensor names, dtypes and shapes match the manifest, and the
    checksum over the manifest and the tensors (a version 1 file, whose checksum
    covers the tensors only, is read with a warning). Never unpickles. Raises
    :class:`ArtifactError` naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    raw = path.read_bytes()
    manifest = _manifest(_header(raw, path), path, expect_format)
    try:
        tensors = st_load(raw)
    except Exception as err:  # safetensors raises its own error type for bad framing
        raise ArtifactError(f"{path}: tensor data is corrupt or truncated ({err})") from err
    declared = manifest.get("tensors")
    if not isinstance(declared, dict):
        raise ArtifactError(f"{path}: manifest has no 'tensors' table")
    if set(declared) != set(tensors):
        raise ArtifactError(
            f"{path}: tensors {sorted(tensors)} do not match the manifest {sorted(declared)}"
        )
    for name, spec in declared.items():
        t = tensors[name]
        if spec.get("dtype") != str(t.dtype).removeprefix("torch.") or spec.get("shape") != list(
            t.shape
        ):
            raise ArtifactError(
                f"{path}: tensor {name!r} is {t.dtype} {list(t.shape)}, manifest says "
                f"{spec.get('dtype')} {spec.get('shape')}"
            )
    _verify_checksum(manifest, tensors, path)
    return tensors, manifest


def _verify_checksum(
    manifest: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path
) -> None:
    checksum = manifest.get("checksum")
    if not isinstance(checksum, dict) or checksum.get("algorithm") != "sha256":
        raise ArtifactError(f"{path}: the manifest has no sha256 checksum entry")
    covers = checksum.get("covers")
    if covers == CHECKSUM_COVERS:
        if checksum.get("value") != container_checksum(manifest, tensors):
            raise ArtifactError(
                f"{path}: checksum mismatch: the file was changed or damaged after it was "
                "written (manifest or tensor data); re-create it"
            )
        return
    if covers is None and manifest.get("format_version") == 1:
        # Version 1 checksummed the tensors only: still readable, the manifest unverified.
        if checksum.get("value") != tensors_checksum(tensors):
            raise ArtifactError(f"{path}: checksum mismatch: the tensor data is corrupt")
        warnings.warn(
            f"{path} was written by an older hypervldd (format version 1): its tensors are "
            "verified but its manifest (method, config, fingerprint, history) is not; "
            "load and save it again to checksum everything",
            stacklevel=4,
        )
        return
    raise ArtifactError(
        f"{path}: checksum entry covers {covers!r} at format version "
        f"{manifest.get('format_version')!r}: not a combination this hypervldd writes "
        f"(version 1: tensors only; later versions: {CHECKSUM_COVERS})"
    )
