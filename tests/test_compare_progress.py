"""`compare` and `evaluate` on the command line say what they are doing, unless
``--no-progress``: a line per stage and a progress bar over the students' epochs."""

from __future__ import annotations

import pytest

from hypervldd.cli import main
from tests.test_cli import _TINY, _paired


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    import hypervldd.cli as cli

    feats = {"train": _paired(0), "val": _paired(2), "test": _paired(3)}
    monkeypatch.setattr(cli, "_features", lambda args, splits=None: feats)


def _compare(*extra: str) -> list[str]:
    return [
        "compare",
        "--methods",
        "random",
        "--budgets",
        "4",
        "--protocol",
        _TINY,
        "--seeds",
        "2",
        "--no-reference-cache",
        *extra,
    ]


def test_compare_reports_each_stage_while_it_runs(tiny, capsys: pytest.CaptureFixture) -> None:
    assert main(_compare()) == 0
    err = capsys.readouterr().err
    stages = [
        "full data: scoring the whole training split (16 images) as the reference ...",
        "evaluate (2 students)",  # the bar of the full-data students
        "full data: mean recall",
        "random @ 4: distilling ...",
        "random @ 4: evaluating (2 students) ...",
        "random @ 4: mean recall",
    ]
    at = [err.find(s) for s in stages]
    assert all(i >= 0 for i in at), (stages, err)
    assert at == sorted(at), err  # announced in the order the work happens
    assert "2/2" in err  # 2 students x 1 epoch, the bar's final count


def test_no_progress_silences_compare_and_evaluate(
    tiny, tmp_path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_compare("--no-progress")) == 0
    out = capsys.readouterr()
    assert out.err == "" and "random" in out.out  # the table still goes to stdout

    from hypervldd.distill import get_distiller

    art = get_distiller("random", {}).fit(_paired(0), 4, seed=0).save(tmp_path / "a.safetensors")
    ev = ["evaluate", "--artifact", str(art), "--protocol", _TINY, "--seeds", "2"]
    assert main([*ev, "--no-progress"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "TR@1" in out.out
    assert main(ev) == 0
    assert "evaluate (2 students)" in capsys.readouterr().err


def test_compare_announces_the_full_data_students_of_the_extras(tmp_path) -> None:
    from hypervldd.eval import EvalProtocol
    from hypervldd.eval.protocol import EvalExtras
    from hypervldd.pipeline import compare

    feats = {"train": _paired(0), "test": _paired(3)}
    proto = EvalProtocol(epochs=1, lr_decay_epochs=(), seeds=(0, 1), batch_size=16)
    lines: list[str] = []
    extras = EvalExtras(fidelity=True, top_k=2, kendall=False)
    compare(
        feats, ["random"], [4], protocol=proto, extras=extras, log=lines.append, cache_dir=tmp_path
    )
    announce = "beyond recall: training the 2 full-data students ..."
    assert lines.count(announce) == 1  # trained once, shared by every row
    i = lines.index(announce)
    assert lines[i - 1] == "random @ 4: evaluating (2 students) ..."
    assert lines[i + 1].startswith("  beyond recall:")
