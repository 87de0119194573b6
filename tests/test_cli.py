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


def _paired(seed: int):
    from hypervldd.data import PairedFeatures
    from tests._synth import clustered_features

    fs, _ = clustered_features(n_img=16, caps=2, d_img=6, d_txt=4, seed=seed)
    return PairedFeatures(
        fs.image,
        fs.text,
        fs.txt2img,
        [f"i{k}" for k in range(16)],
        [f"caption {k}" for k in range(32)],
        metadata={"image_encoder": "enc-i", "text_encoder": "enc-t", "split": "train"},
    )


_TINY = '{"epochs": 1, "lr_decay_epochs": [], "student": {"width": 8}}'


def test_evaluate_and_inspect_refuse_an_artifact_of_other_data(
    tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import hypervldd.cli as cli
    from hypervldd.distill import get_distiller

    art = get_distiller("random", {}).fit(_paired(0), 4, seed=0).save(tmp_path / "a.safetensors")
    other = {"train": _paired(1), "val": _paired(2), "test": _paired(3)}
    monkeypatch.setattr(cli, "_features", lambda args, splits=None: other)
    ev = ["evaluate", "--artifact", str(art), "--protocol", _TINY, "--seeds", "1"]
    assert main(ev) == 1
    err = capsys.readouterr().err
    assert "does not match the data given: data fingerprint" in err and "--allow-mismatch" in err
    assert main(["inspect", str(art), "--dataset", "x"]) == 1
    assert "does not match the data given" in capsys.readouterr().err

    with pytest.warns(UserWarning, match="PROVENANCE MISMATCH"):
        assert main([*ev, "--allow-mismatch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("PROVENANCE MISMATCH (--allow-mismatch): data fingerprint")
    assert lines[-1] == lines[0] and any("TR@1" in x for x in lines)
    with pytest.warns(UserWarning, match="PROVENANCE MISMATCH"):
        assert main(["inspect", str(art), "--dataset", "x", "--allow-mismatch"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("PROVENANCE MISMATCH") and lines[-1] == lines[0]

    same = {"train": _paired(0), "val": _paired(2), "test": _paired(3)}
    monkeypatch.setattr(cli, "_features", lambda args, splits=None: same)
    assert main(ev) == 0
    out = capsys.readouterr().out
    assert "TR@1" in out and "MISMATCH" not in out


class _Reached(Exception):
    pass


@pytest.fixture
def no_work(monkeypatch):
    """Make preparing features (the first real work) raise _Reached."""
    import hypervldd.cli as cli

    def reached(args, splits=None):
        raise _Reached

    monkeypatch.setattr(cli, "_features", reached)


def _cases(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("not an artifact")
    (tmp_path / "dir").mkdir()
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "results.json").write_text("{}")
    d = ["distill", "--method", "random", "--budget", "2"]
    return [
        ([*d, "--out", str(f)], "--out .*file.txt already exists; pass --force"),
        ([*d, "--out", str(tmp_path / "dir")], "--out .*dir is a directory"),
        ([*d, "--out", str(f / "x.safetensors")], "--out .*file.txt is a file, not a directory"),
        ([*d, "--out", str(tmp_path / "o"), "--cache-dir", str(f)], "--cache-dir .* is a file"),
        ([*d, "--out", str(tmp_path / "o"), "--checkpoint-dir", str(f)], "--checkpoint-dir"),
        (["prepare", "--cache-dir", str(f)], "--cache-dir .*file.txt is a file, not a directory"),
        (["compare", "--out-dir", str(f)], "--out-dir .*file.txt is a file, not a directory"),
        (["compare", "--out-dir", str(tmp_path / "res")], "already holds results.json"),
        (["inspect", "a", "--dataset", "emoji", "--grid", str(f / "g.png")], "--grid .* is a file"),
        (["inspect", "a", "--dataset", "emoji", "--grid", str(f)], "--grid .* already exists"),
    ]


def test_output_paths_are_refused_before_any_work(
    tmp_path, capsys: pytest.CaptureFixture[str], no_work
) -> None:
    import re

    for argv, message in _cases(tmp_path):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("hypervldd: error: "), err
        assert re.search(message, err), (argv, err)
    assert (tmp_path / "file.txt").read_text() == "not an artifact"


def test_force_lets_the_work_start(tmp_path, no_work) -> None:
    f = tmp_path / "file.txt"
    f.write_text("old")
    argv = ["distill", "--method", "random", "--budget", "2", "--out", str(f)]
    with pytest.raises(_Reached):
        main([*argv, "--force"])


def test_a_new_run_into_another_runs_checkpoint_dir_is_refused_before_work(
    tmp_path, capsys: pytest.CaptureFixture[str], no_work
) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "step_00000005.safetensors").write_bytes(b"an earlier run")
    argv = ["distill", "--method", "covmatch", "--budget", "2", "--out", str(tmp_path / "o")]
    assert main([*argv, "--checkpoint-dir", str(ck)]) == 1
    assert "already holds 1 checkpoint" in capsys.readouterr().err
    with pytest.raises(_Reached):  # resuming it is allowed
        main([*argv, "--checkpoint-dir", str(ck), "--resume"])


@pytest.mark.parametrize(
    "err",
    [
        OSError(28, "No space left on device"),
        IsADirectoryError(21, "Is a directory", "/x"),
        OSError("a message\nover two lines"),
    ],
)
def test_every_oserror_is_a_one_line_error(
    err, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import hypervldd.cli as cli

    def fail(args, splits=None):
        raise err

    monkeypatch.setattr(cli, "_features", fail)
    assert main(["prepare", "--no-progress"]) == 1
    out = capsys.readouterr().err
    assert out.startswith("hypervldd: error: ") and out.count("\n") == 1, out
