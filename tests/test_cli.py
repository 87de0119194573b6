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


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ('{"covmatch": {}}', "not among ['random']"),
        ('{"random": 3}', "must be a JSON object"),
    ],
)
def test_method_configs_are_checked_before_any_work(
    configs: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import hypervldd.cli as cli

    def no_features(args):  # the check must come before features are prepared
        raise AssertionError("features prepared before --method-configs was checked")

    monkeypatch.setattr(cli, "_features", no_features)
    code = main(["compare", "--methods", "random", "--method-configs", configs])
    assert code == 1
    assert message in capsys.readouterr().err
