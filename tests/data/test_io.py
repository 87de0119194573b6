"""The data layer's file helpers: atomic writes respect the umask."""

from __future__ import annotations

import os
import stat

import pytest

from hypervldd.data._io import atomic_path, atomic_write_bytes


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one after."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mask):
    umask(mask)
    a = atomic_write_bytes(tmp_path / "a.bin", b"x")
    with atomic_path(tmp_path / "sub" / "b.png") as tmp:
        tmp.write_bytes(b"y")
    want = 0o666 & ~mask
    for p in (a, tmp_path / "sub" / "b.png"):
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))
    # reading the umask must not change it
    assert os.umask(mask) == mask


def test_overwriting_a_file_gives_it_the_umask_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
