"""Every script in examples/ runs in its smoke mode (a few steps on tiny data).

All scripts run in one subprocess (with a timeout) so that torch and open_clip are
imported once; each run is isolated by ``runpy`` and its failure is reported on its own.
The CLIP example runs once per geometry: the switch is its point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

RUNS = {
    "hitc_training_loop.py": [["--smoke"]],
    "rank_alignment_dropin.py": [["--smoke"]],
    "hyperbolic_clip.py": [
        ["--smoke", "--geometry", g] for g in ("euclidean", "lorentz", "poincare")
    ],
    "distill_from_python.py": [["--smoke"]],
    "poincare_wordnet.py": [["--smoke"]],
}

DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for name, runs in json.loads(sys.argv[1]).items():
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            for run in runs:
                sys.argv = [name, *run]
                runpy.run_path(name, run_name="__main__")
        results[name] = {"ok": True, "out": out.getvalue()}
    except BaseException:
        results[name] = {"ok": False, "out": out.getvalue() + traceback.format_exc()}
print("@@RESULTS@@" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("examples")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), HYPERVLDD_CACHE=str(tmp))
    runs = {str(EXAMPLES / name): args for name, args in RUNS.items()}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(runs)],
        capture_output=True,
        text=True,
        timeout=480,
        env=env,
        cwd=tmp,
    )
    assert "@@RESULTS@@" in proc.stdout, f"the driver failed:\n{proc.stderr[-3000:]}"
    results = json.loads(proc.stdout.split("@@RESULTS@@", 1)[1])
    return {Path(k).name: v for k, v in results.items()}


def test_every_example_is_run_and_short() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(RUNS)
    for name in scripts:
        assert len((EXAMPLES / name).read_text().splitlines()) < 100, name


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs_in_smoke_mode(name: str, outputs: dict[str, dict]) -> None:
    assert outputs[name]["ok"], f"{name} failed:\n{outputs[name]['out'][-3000:]}"
    out = outputs[name]["out"]
    if name == "hitc_training_loop.py":
        first, last = (float(w) for w in out.split("first loss ")[1].split()[:4:3])
        assert last < first  # the heads learn
    elif name == "hyperbolic_clip.py":
        # The geometry switch changes the points: D + 1 coordinates on the hyperboloid.
        assert "point shape (16, 32)" in out and "point shape (16, 33)" in out
        assert out.count("step") >= 6
    elif name == "rank_alignment_dropin.py":
        assert "rank alignment" in out
    elif name == "distill_from_python.py":
        assert "| herding | 6 |" in out and "nearest real captions" in out
    elif name == "poincare_wordnet.py":
        mean_rank = float(out.split("mean rank ")[1].split(",")[0])
        assert 1.0 <= mean_rank < 5.0  # 40 nodes: a random embedding ranks about 20
