"""Checks of output paths, made before any work starts.

A run that encodes a dataset for minutes and then fails to write its result
because ``--out`` names a directory, or ``--cache-dir`` a file, loses that work;
one that silently replaces a file the user meant to keep loses the file. These
helpers refuse such paths up front with a one-line message naming the argument.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["OutputPathError", "check_output_file", "check_output_dir"]


class OutputPathError(ValueError):
    """An output path that cannot or must not be written (names the argument)."""


def _check_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory."""
    parent = path.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"{what} {path}: {parent} is a file, not a directory")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: the directory {parent} is not writable")


def check_output_file(path: str | os.PathLike, *, what: str, force: bool = False) -> Path:
    """Refuse a file path that cannot be written, or that exists unless ``force``.

    Args:
        path: the file to be written.
        what: the argument's name in messages (e.g. ``"--out"``).
        force: allow replacing an existing regular file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: ``path`` is a directory, lies under a file or an unwritable
            directory, or exists and ``force`` is false.

    Example:
        >>> check_output_file("/tmp/no-such-dir-x/set.safetensors", what="--out").name
        'set.safetensors'
    """
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {p} is a directory; give a file path")
    _check_parent(p, what)
    if p.exists() or p.is_symlink():
        if not force:
            raise OutputPathError(f"{what} {p} already exists; pass --force to replace it")
        if not p.is_file():
            raise OutputPathError(f"{what} {p} exists and is not a regular file")
    return p


def check_output_dir(path: str | os.PathLike, *, what: str) -> Path:
    """Refuse a directory path that is a file or cannot be created or written.

    Example:
        >>> check_output_dir("/tmp", what="--out-dir").name
        'tmp'
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise OutputPathError(f"{what} {p} is a file, not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputPathError(f"{what} {p} is not writable")
        return p
    _check_parent(p, what)
    return p
