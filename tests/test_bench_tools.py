"""benchmarks/compare.py on made-up runs and benchmarks/run_all.py's argument handling
(the benchmarks themselves never run in the tests)."""

from __future__ import annotations

import csv
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


def test_compare_reads_seconds_and_slash_ratios_as_costs() -> None:
    for name in ("fused_s", "median_s", "fused/mm", "fused/composite"):
        assert compare.COST.search(name), name
    for name in ("n", "d", "count", "pass", "sizes"):
        assert not compare.COST.search(name), name


def test_bench_sizes_tiny_run_verdicts_and_out(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    sizes = _load("bench_sizes")
    out = tmp_path / "run" / "s"
    sizes.main(["--sizes", "8", "--dims", "4", "--reps", "1", "--threads", "1", "--out", str(out)])
    rows = list(csv.DictReader((tmp_path / "run" / "s.csv").open()))
    assert [(r["op"], r["manifold"], r["pass"]) for r in rows] == [
        (op, man, pas) for op, man in sizes.CASES for pas in sizes.PASSES
    ]
    for r in rows:
        f, c, m = (float(r[k]) for k in ("fused_s", "composite_s", "mm_s"))
        assert f > 0 and c > 0 and m > 0
        assert float(r["fused/composite"]) == pytest.approx(f / c, rel=2e-3, abs=1e-3)
        assert float(r["fused/mm"]) == pytest.approx(f / m, rel=2e-3, abs=1e-3)
    printed = capsys.readouterr().out
    assert printed.count("| pairwise_dist |") == 4 and "of 6 points pass" in printed
    assert f"no point with N >= {sizes.MM_FROM}" in printed
    # An existing CSV is refused before any work unless --force.
    with pytest.raises(SystemExit):
        sizes.parse_args(["--out", str(out)])
    assert "exists" in capsys.readouterr().err
    assert sizes.parse_args(["--out", str(out), "--force"]).path == str(out) + ".csv"
    with pytest.raises(SystemExit):
        sizes.parse_args(["--out", str(tmp_path / "x"), "--sizes", "0"])
    assert "--sizes must be positive" in capsys.readouterr().err
    assert sizes.parse_args(["--quick", "--out", str(tmp_path / "q")]).sizes == [256, 2048]


def test_bench_sizes_targets() -> None:
    sizes = _load("bench_sizes")

    def row(n: int, fused: float, comp: float, mm: float) -> dict:
        return {"n": str(n), "fused_s": str(fused), "composite_s": str(comp), "mm_s": str(mm)}

    assert sizes.verdicts(row(1024, 1.0, 1.0, 0.1)) == (True, None)  # mm target from 2048
    assert sizes.verdicts(row(2048, 1.0, 0.9, 0.8)) == (False, True)  # 1.0 <= 1.3 * 0.8
    assert sizes.verdicts(row(4096, 1.0, 2.0, 0.7)) == (True, False)  # 1.0 > 1.3 * 0.7
