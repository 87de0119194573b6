"""Small file helpers shared by the data layer: hashing, atomic writes, cache roots.

Every file the data layer writes goes through :func:`atomic_write_bytes` or
:func:`atomic_path`: the content is written to a temporary file in the target
directory and moved into place with ``os.replace``, so a reader sees either the
old file, the new file, or nothing, never a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "default_cache_dir",
    "sha256_file",
    "sha256_json",
    "atomic_write_bytes",
    "atomic_path",
]

_CHUNK = 1 << 20
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_cache_dir() -> Path:
    """Root of every on-disk cache: ``$HYPERVLDD_CACHE`` or ``~/.cache/hypervldd``."""
    env = os.environ.get("HYPERVLDD_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/hypervldd").expanduser()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: object) -> str:
    """Hex SHA-256 of a canonical JSON encoding (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    The caller writes the temporary file (by any library that takes a path); the
    move happens only when the block exits without an exception, after an fsync,
    so a crash or an error never leaves a truncated ``path`` behind. The file gets
    mode ``0o666 & ~umask``, as ``open(path, "w")`` would give it (not mkstemp's 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        # mkstemp creates 0600; the final file gets the mode any other tool would give it
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        # make the rename itself durable (not possible on every platform)
        with contextlib.suppress(OSError):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        # After a successful replace the temporary name no longer exists.
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``); returns it."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
