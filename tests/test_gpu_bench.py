"""benchmarks/gpu.py --smoke: the GPU benchmark's code runs on the CPU at tiny sizes."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_run_writes_every_case(gpu_bench, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "gpu.csv"
    # a memory limit between the two materialised sizes: the larger one is skipped
    argv = ["--smoke", "--out", str(out), "--reps", "2", "--warmup", "1"]
    assert gpu_bench.main([*argv, "--memory-limit-gb", "4e-5"]) == 0
    rows = _rows(out)
    assert list(rows[0]) == gpu_bench.FIELDS
    got = {(r["op"], r["variant"], int(r["n"])) for r in rows}
    for n, _ in gpu_bench.SMOKE["pairwise"]:
        for v in ("hypervldd", "torch.mm", "composite"):
            assert ("pairwise_dist", v, n) in got
    for n, _ in gpu_bench.SMOKE["loss"]:
        assert ("contrastive_loss", "hypervldd", n) in got
    by = {(r["op"], r["variant"], int(r["n"])): r for r in rows}
    assert by[("contrastive_loss", "materialised", 16)]["status"] == "ok"
    skipped = by[("contrastive_loss", "materialised", 64)]
    assert skipped["status"] == "skipped" and "N x N buffers need" in skipped["note"]
    for r in rows:
        assert r["device"] == "cpu" and r["dtype"] == "float32"
        if r["status"] == "ok":
            assert float(r["median_ms"]) > 0 and r["max_memory_mb"] == ""
    hv = by[("pairwise_dist", "hypervldd", 16)]
    assert hv["backend"] not in ("", "torch")


def test_existing_results_are_kept_without_force(gpu_bench, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "gpu.csv"
    out.write_text("precious\n")
    assert gpu_bench.main(["--smoke", "--out", str(out)]) == 2
    assert out.read_text() == "precious\n"
    assert "pass --force" in capsys.readouterr().err
    assert gpu_bench.main(["--smoke", "--out", str(tmp_path / "no" / "x.csv")]) == 2


def test_time_budget_skips_what_would_not_fit(gpu_bench, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "gpu.csv"
    assert gpu_bench.main(["--smoke", "--out", str(out), "--budget-s", "0"]) == 0
    rows = _rows(out)
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert all("time budget" in r["note"] or "N x N" in r["note"] for r in rows)


def test_full_mode_needs_a_gpu(gpu_bench, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        gpu_bench.main(["--out", str(tmp_path / "gpu.csv"), "--device", "cpu"])
    assert not (tmp_path / "gpu.csv").exists()
    assert max(n for n, _ in gpu_bench.FULL["loss"]) == 262144
    assert {n for n, _ in gpu_bench.FULL["pairwise"]} == {1024, 8192, 32768}
