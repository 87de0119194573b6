"""The command line: usage errors instead of tracebacks, and the info command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hypervldd.cli import main


def test_info_reports_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend:" in out and "reason:" in out


@pytest.mark.parametrize("argv", [[], ["no-such-command"], ["demo", "--bogus"]])
def test_bad_arguments_give_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_console_entry_point_runs_without_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hypervldd.cli", "frobnicate"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "usage: hypervldd" in out.stderr
    assert "Traceback" not in out.stderr
