"""torch.distributed with the gloo backend: 2 and 3 CPU processes on this machine.

Each test spawns one group of processes (about 3-5 s of start-up each) and runs several
checks in it; the process bodies are in ``_workers.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import socket

import pytest
import torch
import torch.multiprocessing as mp

from hypervldd import distributed as hd
from hypervldd.distill import SyntheticSet
from hypervldd.pipeline import distill

from .._synth import clustered_features
from . import _workers

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

# A tiny deterministic rank-alignment run: 6 steps, checkpoints at steps 3 and 6.
_CFG = {
    "experts": 1,
    "expert_epochs": 1,
    "anchors": 8,
    "student": {"width": 16},
    "engine": {"iterations": 6, "checkpoint_every": 3, "real_batch_size": 16},
}
_DEAD_RANK_TIMEOUT = 15.0
# Seconds past a timeout that still prove "failed, not hung" (the default timeout is
# 1800 s); wide, because these bounds time work on a machine other jobs may load.
_NOT_A_HANG = 60.0
# CovMatch: the online student's real batch (16 pairs) is split over the ranks.
_ONLINE = {
    "embedding": "online",
    "reset_every": 3,
    "anchors": 8,
    "student": {"width": 16},
    "engine": {"iterations": 5, "real_batch_size": 16},
}
# Rank alignment over a pool of 2 experts x 2 epoch snapshots.
_TRAJECTORY = {
    "embedding": "trajectory",
    "experts": 2,
    "expert_epochs": 2,
    "anchors": 8,
    "student": {"width": 16},
    "engine": {"iterations": 5, "real_batch_size": 16},
}

_COVMATCH = {
    "student": {"width": 16},
    "reset_every": 3,
    "engine": {"iterations": 5, "real_batch_size": 16},
}


def _spawn(fn, args: tuple, nprocs: int) -> None:  # noqa: ANN001
    """Start ``nprocs`` workers from a fork server that has imported the package once.

    A plain spawn re-imports torch and the package in every process (5-10 s each on a
    loaded machine); the fork server pays for it once per test session, and it only
    imports (it never runs torch ops, so no thread pool exists to break by forking).
    """
    # torch._dynamo: the first call of a custom op imports it (about 6 s on a loaded machine)
    multiprocessing.set_forkserver_preload(
        [_workers.__name__, "torch._dynamo", "hypervldd.losses", "hypervldd.pipeline"]
    )
    mp.start_processes(fn, args=args, nprocs=nprocs, start_method="forkserver")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_shard_range_partitions_in_rank_order() -> None:
    for n in (0, 1, 2, 7, 23):
        for world in (1, 2, 3):
            parts = [hd.shard_range(n, r, world) for r in range(world)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank"):
        hd.shard_range(5, 2, 2)


def test_single_process_needs_no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert hd.init_from_env() is False
    assert hd.resolve_group("auto") is None and hd.resolve_group(None) is None
    assert hd.get_rank() == 0 and hd.get_world_size() == 1 and hd.is_main_process()
    with pytest.raises(hd.DistributedError, match="not set"):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        hd.init_from_env()
    with pytest.raises(ValueError, match="process_group"):
        hd.resolve_group("everyone")
    from hypervldd.losses import FullDatasetRankAlignment, HyperbolicContrastiveLoss, RAHALoss

    for cls in (FullDatasetRankAlignment, HyperbolicContrastiveLoss, RAHALoss):
        with pytest.raises(ValueError, match="process_group"):
            cls(process_group="everyone")
        # a loss may be built before the process group is initialised
        assert cls(process_group="world").process_group == "world"


def _check_loss_report(path) -> None:  # noqa: ANN001
    report = json.loads(path.read_text())
    expected = {"row_stats", "hitc", "raha", "listwise_loss", "pairwise_grad_text", "tiny_loss"}
    assert expected <= set(report)
    # float64 throughout: every error is a few ulps of the value's scale
    assert max(report.values()) < 1e3 * torch.finfo(torch.float64).eps


def test_three_ranks_losses_equal_single_process(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "report.json"
    _spawn(_workers.losses_worker, (3, _free_port(), str(out)), 3)
    _check_loss_report(out)
    # a rank that is alive but stops answering: the others fail after the 2 s timeout
    hang = json.loads((tmp_path / "hang.json").read_text())
    assert hang["message"] is not None, "the collective did not time out"
    assert "rank 0 of 3" in hang["message"]
    # At least the timeout (it waited), and far below the 1800 s default (it did not
    # hang); the upper bound is loose so that a loaded machine's scheduling cannot fail it.
    assert 1.5 < hang["seconds"] < _NOT_A_HANG


def test_two_ranks_losses_distil_resume_and_fail_fast(tmp_path, one_thread) -> None:  # noqa: ANN001
    """With 2 ranks: the loss checks, distillation, resume, and a rank that exits."""
    real, _ = clustered_features(n_img=30, caps=2, d_img=12, d_txt=8, k=4)
    # one process, no checkpoints (they do not change the result)
    ref_cfg = dict(_CFG, engine=dict(_CFG["engine"], checkpoint_every=0))
    ref = distill(real, "rank_align", 5, seed=3, config=ref_cfg)
    ref_cm = distill(real, "covmatch", 5, seed=3, config=_COVMATCH)
    ref_online = distill(real, "rank_align", 5, seed=3, config=_ONLINE)
    ref_trajectory = distill(real, "rank_align", 5, seed=3, config=_TRAJECTORY)
    cfg = dict(
        _CFG,
        _timeout=_DEAD_RANK_TIMEOUT,
        _covmatch=_COVMATCH,
        _online=_ONLINE,
        _trajectory=_TRAJECTORY,
    )
    _spawn(_workers.engine_worker, (2, _free_port(), str(tmp_path), cfg), 2)
    _check_loss_report(tmp_path / "report.json")

    # rank 0 alone wrote the artifact; it equals the single-process one
    assert not (tmp_path / "dist_rank1.safetensors").exists()
    two = SyntheticSet.load(tmp_path / "dist_rank0.safetensors")
    tol = 1e3 * torch.finfo(torch.float32).eps
    for a, b in ((two.image, ref.image), (two.text, ref.text)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    assert two.history[-1]["step"] == 6
    assert two.history[-1]["loss"] == pytest.approx(ref.history[-1]["loss"], rel=tol)
    assert torch.equal(two.source_indices, ref.source_indices)
    # the optimisation moved the set away from its initial real pairs
    start = torch.nn.functional.normalize(real.pairs()[0][ref.source_indices], dim=-1)
    assert (ref.image - start).abs().max() > 1e-3

    # CovMatch with the online student's batch split over 2 ranks equals 1 rank
    cm = SyntheticSet.load(tmp_path / "covmatch.safetensors")
    torch.testing.assert_close(cm.image, ref_cm.image, rtol=tol, atol=tol)
    torch.testing.assert_close(cm.text, ref_cm.text, rtol=tol, atol=tol)
    start_cm = torch.nn.functional.normalize(real.pairs()[1][ref_cm.source_indices], dim=-1)
    assert (ref_cm.text - start_cm).abs().max() > 1e-3

    # rank alignment with the online student: each rank encodes its shard of the real set
    # in the moving embedding, and the result is the single-process one
    ra = SyntheticSet.load(tmp_path / "rank_align_online.safetensors")
    torch.testing.assert_close(ra.image, ref_online.image, rtol=tol, atol=tol)
    torch.testing.assert_close(ra.text, ref_online.text, rtol=tol, atol=tol)
    start_ra = torch.nn.functional.normalize(real.pairs()[0][ref_online.source_indices], dim=-1)
    assert (ref_online.image - start_ra).abs().max() > 1e-3

    # rank alignment over the snapshot pool: each rank caches its shard's points of every
    # snapshot and draws the same snapshots; the result is the single-process one
    tr = SyntheticSet.load(tmp_path / "rank_align_trajectory.safetensors")
    torch.testing.assert_close(tr.image, ref_trajectory.image, rtol=tol, atol=tol)
    torch.testing.assert_close(tr.text, ref_trajectory.text, rtol=tol, atol=tol)
    assert not torch.allclose(ref_trajectory.image, ref_online.image)

    # keep_best: rank 0 validated, both ranks returned the set of the step the
    # single-process run keeps
    one_best = _workers._keep_best(_COVMATCH)
    assert one_best.config["selected"]["step"] == 2
    for r in (0, 1):
        kept = SyntheticSet.load(tmp_path / f"covmatch_best_rank{r}.safetensors")
        assert kept.config["selected"] == one_best.config["selected"]
        torch.testing.assert_close(kept.image, one_best.image, rtol=tol, atol=tol)
        torch.testing.assert_close(kept.text, one_best.text, rtol=tol, atol=tol)

    # a run resumed from the step-3 checkpoint under 2 ranks gives the same artifact
    resumed = SyntheticSet.load(tmp_path / "resumed.safetensors")
    assert torch.equal(resumed.image, two.image) and torch.equal(resumed.text, two.text)

    # the checkpoints hold only replicated state: one process resumes the 2-rank run
    (tmp_path / "ck" / "step_00000006.safetensors").unlink()
    one = distill(
        real, "rank_align", 5, seed=3, config=_CFG, checkpoint_dir=tmp_path / "ck", resume=True
    )
    torch.testing.assert_close(one.image, ref.image, rtol=tol, atol=tol)
    torch.testing.assert_close(one.text, ref.text, rtol=tol, atol=tol)

    # rank 1 exited: rank 0's next collective failed with a clear error, in bounded time
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert failure["message"] is not None, "the collective did not fail"
    assert "rank 0 of 2" in failure["message"] and "exited" in failure["message"]
    assert failure["seconds"] < _DEAD_RANK_TIMEOUT + _NOT_A_HANG
