"""Output paths are checked before any work: clear errors naming the argument."""

from __future__ import annotations

import os

import pytest

from hypervldd._paths import OutputPathError, check_output_dir, check_output_file


def test_output_file_rules(tmp_path):
    (tmp_path / "f").write_text("keep me")
    (tmp_path / "d").mkdir()
    assert check_output_file(tmp_path / "new" / "deep" / "x", what="--out") == (
        tmp_path / "new" / "deep" / "x"
    )
    with pytest.raises(OutputPathError, match=r"^--out .*/f already exists; pass --force"):
        check_output_file(tmp_path / "f", what="--out")
    assert check_output_file(tmp_path / "f", what="--out", force=True) == tmp_path / "f"
    with pytest.raises(OutputPathError, match=r"^--out .*/d is a directory; give a file path"):
        check_output_file(tmp_path / "d", what="--out", force=True)
    with pytest.raises(OutputPathError, match=r"^--grid .*/f/sub/g\.png: .*/f is a file, not a"):
        check_output_file(tmp_path / "f" / "sub" / "g.png", what="--grid")
    assert (tmp_path / "f").read_text() == "keep me"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_output_dir_rules(tmp_path):
    (tmp_path / "f").write_text("x")
    assert check_output_dir(tmp_path / "a" / "b", what="--out-dir") == tmp_path / "a" / "b"
    assert check_output_dir(tmp_path, what="--out-dir") == tmp_path
    with pytest.raises(OutputPathError, match=r"^--cache-dir .*/f is a file, not a directory"):
        check_output_dir(tmp_path / "f", what="--cache-dir")
    with pytest.raises(OutputPathError, match=r"^--out-dir .*/f/x: .*/f is a file"):
        check_output_dir(tmp_path / "f" / "x", what="--out-dir")
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directories_are_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="is not writable"):
            check_output_file(ro / "x", what="--out")
        with pytest.raises(OutputPathError, match="is not writable"):
            check_output_dir(ro, what="--out-dir")
    finally:
        ro.chmod(0o755)
