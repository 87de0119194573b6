"""`hypervldd selftest`: the table on the CPU, a failure when an op is wrong, the labels."""

from __future__ import annotations

import pytest
import torch

import hypervldd
from hypervldd import cli, kernels, selftest

OPS = ("pairwise_dist", "contrastive_loss", "row_stats")


def test_selftest_passes_on_the_cpu_and_prints_every_op(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["selftest", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = out[0].split()
    assert head[:2] == ["op", "case"] and "backend" in head and "tolerance" in head
    rows = out[1:-1]
    label = selftest._backend_label(torch.device("cpu"))
    for op in OPS:
        for manifold in kernels.MANIFOLDS:
            for direction in ("forward", "backward"):
                mine = [r for r in rows if r.startswith(f"{op}[{manifold}] {direction} ")]
                assert len(mine) == 3, (op, manifold, direction)  # three point sets
                assert any("close pairs far out" in r for r in mine)
                for r in mine:
                    cells = r.split()
                    assert cells[-1] == "pass" and "cpu" in cells and label in cells
                    error, tol = float(cells[-3]), float(cells[-2])
                    assert 0.0 <= error <= tol
    n = len(OPS) * len(kernels.MANIFOLDS) * 2 * 3
    assert out[-1] == f"{n} of {n} checks passed"


def test_selftest_fails_when_an_op_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    right = kernels.pairwise_dist

    def wrong(x, y, manifold="lorentz", c=1.0):  # noqa: ANN001, ANN202
        d = right(x, y, manifold, c)
        return d * 1.01 if manifold == "poincare" else d  # 1% off: ten times the envelope

    monkeypatch.setattr(kernels, "pairwise_dist", wrong)
    monkeypatch.setattr(kernels, "MANIFOLDS", ("poincare",))  # a shorter run
    checks = selftest.run_checks(["cpu"])
    failed = [c for c in checks if not c.passed]
    assert {c.op for c in failed} == {
        "pairwise_dist[poincare] forward",
        "pairwise_dist[poincare] backward",
    }
    assert len(failed) == 6  # both directions on each of the three point sets
    for c in failed:
        assert c.error == pytest.approx(0.01, rel=1e-2)
    monkeypatch.setattr(selftest, "run_checks", lambda devices: checks)
    assert selftest.main(["--device", "cpu"]) == 1


def test_a_crashing_op_is_a_failure_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("no kernel image is available")

    monkeypatch.setattr(kernels, "row_stats", broken)
    monkeypatch.setattr(kernels, "MANIFOLDS", ("euclidean",))
    checks = selftest.run_checks(["cpu"])
    bad = [c for c in checks if not c.passed]
    assert bad and all(c.op.startswith("row_stats[euclidean]") for c in bad)
    assert "no kernel image" in selftest.format_table(bad)
    assert all(c.error != c.error for c in bad)  # NaN


def test_backend_label(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    info = hypervldd.backend_info()
    assert selftest._backend_label(torch.device("cpu")) == (
        "cpp" if info.extension_loaded else "reference"
    )
    gpu = "triton" if importlib.util.find_spec("triton") else "reference"
    assert selftest._backend_label(torch.device("cuda", 0)) == gpu
    monkeypatch.setenv("HYPERVLDD_BACKEND", "reference")
    assert selftest._backend_label(torch.device("cuda", 0)) == "reference"


def test_selftest_refuses_a_device_this_machine_lacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        selftest.main(["--device", "cuda:1"])
    assert exc.value.code == 2
    assert "device='cuda:1' asks for CUDA, but no CUDA device" in capsys.readouterr().err
    assert selftest.devices_present() == [torch.device("cpu")]
