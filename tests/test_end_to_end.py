"""prepare -> distill (two methods) -> evaluate -> inspect through the CLI, on a small emoji slice.

Uses the real offline encoders and the Debian data packages; skipped (with the
reason) where those are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hypervldd.cli import main

EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")

pytestmark = pytest.mark.skipif(
    not (EMOJI_TEST.is_file() and FONT.is_file()),
    reason="Debian packages unicode-data and fonts-noto-color-emoji are not installed",
)

DATA = ["--dataset", "emoji", "--limit", "30", "--no-progress"]
PROTOCOL = '{"epochs": 3, "lr_decay_epochs": [2], "student": {"width": 32}}'


def test_cli_pipeline_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HYPERVLDD_CACHE", str(tmp_path / "cache"))
    cache = ["--cache-dir", str(tmp_path / "features")]

    assert main(["prepare", *DATA, *cache]) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "x 1280" in out and "x 384" in out

    a = tmp_path / "random.safetensors"
    assert (
        main(["distill", *DATA, *cache, "--method", "random", "--budget", "6", "--out", str(a)])
        == 0
    )
    b = tmp_path / "covmatch.safetensors"
    # Validated every 3 steps on the val split; the validation-best set is returned.
    eng = '"iterations": 6, "checkpoint_every": 3, "validate_every": 3, "keep_best": true'
    cfg = '{"engine": {' + eng + '}, "student": {"width": 32}}'
    ck = tmp_path / "ck"
    argv = ["distill", *DATA, *cache, "--method", "covmatch", "--budget", "6", "--config", cfg]
    argv += ["--protocol", PROTOCOL, "--seeds", "1"]
    assert main([*argv, "--checkpoint-dir", str(ck), "--out", str(b)]) == 0
    assert "validation-best step" in capsys.readouterr().out
    assert a.is_file() and b.is_file()

    # Resuming the finished run from its checkpoints gives the same artifact, bit for bit.
    b2 = tmp_path / "covmatch_resumed.safetensors"
    assert main([*argv, "--checkpoint-dir", str(ck), "--resume", "--out", str(b2)]) == 0
    assert b.read_bytes() == b2.read_bytes()
    capsys.readouterr()
    from hypervldd.distill import SyntheticSet

    made = SyntheticSet.load(b)
    checks = [h for h in made.history if "validation" in h]
    assert [h["step"] for h in checks] == [0, 3, 6]
    best = max(checks, key=lambda h: h["validation"]["mean"])  # max keeps the earliest tie
    assert made.config["selected"]["step"] == best["step"]
    assert made.config["selected"]["value"] == best["validation"]["mean"]

    ev = ["evaluate", *DATA, *cache, "--protocol", PROTOCOL, "--seeds", "1"]
    assert main([*ev, "--artifact", str(a)]) == 0
    out = capsys.readouterr().out
    assert "TR@1" in out and "final" in out

    grid = tmp_path / "grid.png"
    assert main(["inspect", str(b), *DATA, *cache, "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert '"method": "covmatch"' in out and "pairs: 6" in out and "text ~" in out
    assert grid.is_file() and grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A truncated artifact is refused with an error message, not a traceback.
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(a.read_bytes()[:100])
    assert main([*ev, "--artifact", str(bad)]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "missing.safetensors")]) == 1
    assert "hypervldd: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--budgets", "ten"])
    assert exc.value.code == 2
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
