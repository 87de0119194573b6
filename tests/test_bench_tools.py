"""benchmarks/compare.py on made-up runs and benchmarks/run_all.py's argument handling
(the benchmarks themselves never run in the tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


compare = _load("compare")
run_all = _load("run_all")


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_compare_ratios_and_regressions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, "k.csv", "method,n,seconds,x_mm,count\nfused,128,0.010,1.5,7\nref,128,0.020,3,7\n")
    _write(new, "k.csv", "method,n,seconds,x_mm,count\nfused,128,0.015,1.35,9\nref,128,0.020,3,7\n")
    _write(old, "gone.csv", "a,t_ms\nx,1\n")
    _write(new, "extra.csv", "a,t_ms\nx,1\n")
    rows, notes = compare.compare(old, new, 1.25)
    by = {(r["row"], r["figure"]): r for r in rows}
    fused = by[("method=fused", "seconds")]
    assert fused["ratio"] == pytest.approx(1.5) and fused["verdict"] == "REGRESSION"
    assert by[("method=fused", "x_mm")]["ratio"] == pytest.approx(0.9)
    assert by[("method=fused", "x_mm")]["verdict"] == ""  # 0.9 is inside 1 / 1.25
    assert by[("method=fused", "count")]["verdict"] == ""  # not a cost: no verdict
    assert by[("method=ref", "seconds")]["ratio"] == pytest.approx(1.0)
    # n is numeric in every row, so it is a figure, not part of the key
    assert ("method=fused", "n") in by
    assert "only in OLD: gone.csv" in notes and "only in NEW: extra.csv" in notes
    assert compare.main([str(old), str(new)]) == 0
    assert compare.main([str(old), str(new), "--fail-on-regression"]) == 1
    assert compare.main([str(old), str(new), "--threshold", "2", "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert "x1.500 REGRESSION" in out and "regression(s) past x1.25" in out


def test_compare_better_and_bad_arguments(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, "a.csv", "case,time_us\nsmall,100\nsmall,50\n")
    _write(new, "a.csv", "case,time_us\nsmall,40\nsmall,50\n")
    rows, _ = compare.compare(old, new, 1.25)
    # repeated keys are matched by occurrence
    assert [r["verdict"] for r in rows] == ["better", ""]
    with pytest.raises(SystemExit, match="not a folder"):
        compare.compare(old / "nope", new, 1.25)
    with pytest.raises(SystemExit, match="threshold"):
        compare.compare(old, new, 0.9)


def test_run_all_refuses_a_non_empty_out_without_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "bench_cliff.csv").write_text("x\n1\n")
    with pytest.raises(SystemExit, match="not empty.*--force"):
        run_all.main(["--out", str(out), "--dry-run"])
    assert (out / "bench_cliff.csv").read_text() == "x\n1\n"  # untouched
    assert run_all.main(["--out", str(out), "--force", "--dry-run"]) == 0
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(SystemExit, match="not a folder"):
        run_all.main(["--out", str(afile), "--dry-run"])


def test_run_all_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        run_all.parse_args([])  # --out is required
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.main(["--out", str(tmp_path / "r"), "--only", "nope", "--dry-run"])
    assert (
        run_all.main(["--out", str(tmp_path / "r"), "--only", "cliff", "rowstats", "--dry-run"])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "bench_cliff.py --quick" in lines[0]
    assert "bench_rowstats.py --n 512" in lines[1]
    assert not (tmp_path / "r").exists()  # a dry run creates nothing
    assert run_all.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert "wordnet.py" in listed and all(b.name in listed for b in run_all.QUICK)
    # Every benchmark script is either in the quick suite or listed with a reason.
    scripts = {p.name for p in BENCH.glob("*.py")} - {"_common.py", "run_all.py", "compare.py"}
    covered = {b.script for b in run_all.QUICK} | set(run_all.NOT_QUICK)
    assert scripts == covered
