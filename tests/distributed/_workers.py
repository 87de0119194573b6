"""Process bodies of the distributed tests (spawned with torch.multiprocessing, gloo).

Each worker checks its results against a single-process evaluation of the same inputs,
computed in the same process, and raises on a mismatch (the parent then fails with the
worker's traceback). Workers group several checks so that each test pays for one spawn.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import torch

from hypervldd import distributed as hd
from hypervldd.manifolds import lorentz_math

TIMEOUT = 20.0  # seconds: generous on a loaded machine, still bounded


def init(rank: int, world: int, port: int, timeout: float = TIMEOUT) -> None:
    """Join a gloo group of ``world`` processes through torchrun-style variables."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    assert hd.init_from_env("gloo", timeout=timeout)
    assert hd.get_world_size() == world and hd.get_rank() == rank


def _close(a: torch.Tensor, b: torch.Tensor, what: str, factor: float = 1e3) -> float:
    """Assert ``a ~ b`` relative to ``b``'s scale with a tolerance from the dtype's eps."""
    eps = torch.finfo(b.dtype).eps
    scale = float(b.abs().max()) if b.numel() else 1.0
    err = float((a - b).abs().max()) if b.numel() else 0.0
    assert err <= factor * eps * max(scale, 1.0), f"{what}: max error {err:.3g} (scale {scale:.3g})"
    return err


def _points(n: int, d: int, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    u = 0.7 * torch.randn(n, d, generator=gen, dtype=dtype)
    return lorentz_math.expmap0(torch.nn.functional.pad(u, (1, 0)), 1.0)


def _rank_align_check(rank: int, world: int, n_real: int, variant: str) -> dict[str, float]:
    """Loss and gradients of the full-dataset rank alignment over sharded real pairs."""
    from hypervldd.losses import FullDatasetRankAlignment

    dt = torch.float64
    g = torch.Generator().manual_seed(11)
    rx, ry = _points(n_real, 4, g, dt), _points(n_real, 4, g, dt)
    sx0, sy0 = _points(6, 4, g, dt), _points(6, 4, g, dt)
    ax, ay = _points(3, 4, g, dt), _points(3, 4, g, dt)
    kw = {"tau": 0.2, "variant": variant, "chunk_size": 4, "rank_weight": 0.3}
    # single process, whole real set
    sx, sy = sx0.clone().requires_grad_(True), sy0.clone().requires_grad_(True)
    ref = FullDatasetRankAlignment("lorentz", lift=False, **kw)(
        sx, sy, real_image=rx, real_text=ry, anchor_image=ax, anchor_text=ay
    )
    ref.backward()
    ref_grads = (sx.grad.clone(), sy.grad.clone())
    # this rank's shard
    lo, hi = hd.shard_range(n_real, rank, world)
    sx, sy = sx0.clone().requires_grad_(True), sy0.clone().requires_grad_(True)
    loss = FullDatasetRankAlignment("lorentz", lift=False, process_group="world", **kw)(
        sx, sy, real_image=rx[lo:hi], real_text=ry[lo:hi], anchor_image=ax, anchor_text=ay
    )
    loss.backward()
    errs = {"loss": _close(loss.detach(), ref.detach(), f"{variant} loss, n={n_real}")}
    # The synthetic pairs are replicated: each rank holds the full gradient, and the
    # DDP-style mean over ranks leaves it unchanged.
    grads = [sx.grad, sy.grad]
    hd.all_reduce_mean_(grads, torch.distributed.group.WORLD)
    for name, a, b in zip(("image", "text"), grads, ref_grads, strict=True):
        errs[f"grad_{name}"] = _close(a, b, f"{variant} grad {name}, n={n_real}")
    assert float(ref.detach()) > 0  # a non-trivial value was compared
    return errs


def _row_stats_check(rank: int, world: int) -> float:
    """all_reduce_row_stats of shard statistics equals row_stats over all keys."""
    from hypervldd import kernels

    dt = torch.float64
    g = torch.Generator().manual_seed(3)
    q, keys = _points(5, 3, g, dt), _points(13, 3, g, dt)
    values = torch.rand(13, 4, generator=g, dtype=dt)
    full = kernels.row_stats(q, keys, "lorentz", 1.0, 0.1, values=values)
    lo, hi = hd.shard_range(13, rank, world)
    part = kernels.row_stats(q, keys[lo:hi], "lorentz", 1.0, 0.1, values=values[lo:hi])
    lse, w = hd.all_reduce_row_stats(part.lse, part.weighted, torch.distributed.group.WORLD)
    return max(_close(lse, full.lse, "lse"), _close(w, full.weighted, "weighted"))


def _hitc_check(rank: int, world: int) -> float:
    """hITC over gathered features equals the loss of the concatenated batch."""
    from hypervldd.losses import HyperbolicContrastiveLoss

    dt = torch.float64
    g = torch.Generator().manual_seed(5)
    sizes = [3 + r for r in range(world)]  # uneven shards: 3, 4, 5 images
    imgs = [torch.randn(n, 6, generator=g, dtype=dt) for n in sizes]
    t2i = [torch.arange(n).repeat_interleave(2) for n in sizes]  # two captions per image
    txts = [torch.randn(len(t), 6, generator=g, dtype=dt) for t in t2i]
    offsets = [sum(sizes[:r]) for r in range(world)]
    kw = {"learn_tau": True, "entail_weight": 0.2}
    ref_mod = HyperbolicContrastiveLoss("lorentz", **kw)
    img = torch.cat(imgs).requires_grad_(True)
    txt = torch.cat(txts).requires_grad_(True)
    ref = ref_mod(img, txt, torch.cat([t + o for t, o in zip(t2i, offsets, strict=True)]))
    ref.backward()
    mod = HyperbolicContrastiveLoss("lorentz", process_group="world", **kw)
    li = imgs[rank].clone().requires_grad_(True)
    lt = txts[rank].clone().requires_grad_(True)
    loss = mod(li, lt, t2i[rank])
    loss.backward()
    err = _close(loss.detach(), ref.detach(), "hITC loss")
    # Rows of this rank: world_size times their single-process gradient (DDP convention).
    ci = slice(offsets[rank], offsets[rank] + sizes[rank])
    ct = slice(2 * offsets[rank], 2 * (offsets[rank] + sizes[rank]))
    err = max(err, _close(li.grad / world, img.grad[ci], "hITC image grad"))
    err = max(err, _close(lt.grad / world, txt.grad[ct], "hITC text grad"))
    # A replicated parameter (the temperature): the mean over ranks is the exact gradient.
    tg = [mod.temperature.logit_scale.grad.clone()]
    hd.all_reduce_mean_(tg, torch.distributed.group.WORLD)
    return max(err, _close(tg[0], ref_mod.temperature.logit_scale.grad, "hITC tau grad"))


def _raha_check(rank: int, world: int) -> float:
    """RAHA over gathered real and synthetic batches equals single-process RAHA."""
    from hypervldd.losses import RAHALoss

    dt = torch.float64
    g = torch.Generator().manual_seed(9)
    ri, rt = torch.randn(10, 8, generator=g, dtype=dt), torch.randn(10, 8, generator=g, dtype=dt)
    si0, st0 = torch.randn(7, 8, generator=g, dtype=dt), torch.randn(7, 8, generator=g, dtype=dt)
    si, st = si0.clone().requires_grad_(True), st0.clone().requires_grad_(True)
    ref = RAHALoss(eta=0.9)(si, st, real_image=ri, real_text=rt)
    ref.backward()
    rlo, rhi = hd.shard_range(10, rank, world)
    slo, shi = hd.shard_range(7, rank, world)
    li, lt = si0[slo:shi].clone().requires_grad_(True), st0[slo:shi].clone().requires_grad_(True)
    loss = RAHALoss(eta=0.9, process_group="world")(
        li, lt, real_image=ri[rlo:rhi], real_text=rt[rlo:rhi]
    )
    loss.backward()
    err = _close(loss.detach(), ref.detach(), "RAHA loss")
    err = max(err, _close(li.grad / world, si.grad[slo:shi], "RAHA image grad"))
    return max(err, _close(lt.grad / world, st.grad[slo:shi], "RAHA text grad"))


def losses_worker(rank: int, world: int, port: int, out: str) -> None:
    """Every loss-level check for one world size; rank 0 reports the largest errors."""
    init(rank, world, port)
    _loss_checks(rank, world, out)
    _hang_check(rank, world, Path(out).with_name("hang.json"))
    hd.shutdown()


def _hang_check(rank: int, world: int, out: Path, timeout: float = 2.0) -> None:
    """The last rank stays alive but never joins: the others fail after ``timeout`` s."""
    group = torch.distributed.new_group(timeout=timedelta(seconds=timeout))
    if rank == world - 1:
        time.sleep(timeout + 2.0)
        return
    t0 = time.perf_counter()
    message = None
    try:
        with hd.guarded("all_reduce on a short-timeout group", group):
            torch.distributed.all_reduce(torch.ones(2), group=group)
    except hd.DistributedError as err:
        message = str(err)
    if rank == 0:
        out.write_text(json.dumps({"message": message, "seconds": time.perf_counter() - t0}))


def _loss_checks(rank: int, world: int, out: str) -> None:
    report = {"row_stats": _row_stats_check(rank, world)}
    for variant in ("listwise", "pairwise"):
        report.update(
            {f"{variant}_{k}": v for k, v in _rank_align_check(rank, world, 23, variant).items()}
        )
    # fewer real pairs than ranks: some shards are empty
    report.update(
        {f"tiny_{k}": v for k, v in _rank_align_check(rank, world, world - 1, "listwise").items()}
    )
    report["hitc"] = _hitc_check(rank, world)
    report["raha"] = _raha_check(rank, world)
    # all_gather_rows keeps rank order with uneven (and empty) shards
    x = torch.full((rank, 2), float(rank))
    got = hd.all_gather_rows(x, torch.distributed.group.WORLD)
    want = torch.cat([torch.full((r, 2), float(r)) for r in range(world)])
    assert torch.equal(got, want), "all_gather_rows lost the rank order"
    hd.barrier()
    if rank == 0:
        Path(out).write_text(json.dumps(report))


def _distil(
    method_cfg: dict,
    ckdir: str | None,
    resume: bool,
    out: str | None = None,
    method: str = "rank_align",
):
    from hypervldd.pipeline import distill

    from .._synth import clustered_features

    real, _ = clustered_features(n_img=30, caps=2, d_img=12, d_txt=8, k=4)
    return distill(
        real,
        method,
        5,
        seed=3,
        config=method_cfg,
        out=out,
        checkpoint_dir=ckdir,
        resume=resume,
    )


def peak_at_step_2(syn, step: int) -> dict[str, float]:
    """A validator whose score peaks at step 2; only rank 0 may call it."""
    if torch.distributed.is_initialized():
        assert torch.distributed.get_rank() == 0, "a rank other than 0 validated"
    return {"mean": -abs(step - 2.0)}


def _keep_best(method_cfg: dict):
    from hypervldd.distill import get_distiller

    from .._synth import clustered_features

    real, _ = clustered_features(n_img=30, caps=2, d_img=12, d_txt=8, k=4)
    eng = dict(method_cfg["engine"], validate_every=1, keep_best=True)
    distiller = get_distiller("covmatch", dict(method_cfg, engine=eng))
    return distiller.fit(real, 5, 3, validate=peak_at_step_2)


def engine_worker(rank: int, world: int, port: int, tmp: str, cfg: dict) -> None:
    """The loss checks, then distil with ``world`` ranks, resume, and lose a rank.

    Rank 0 saves the loss report (``report.json``), the distributed artifacts
    (``dist_rank0.safetensors``, ``resumed.safetensors``) and the failure report
    (``failure.json``) for the parent to compare.
    """
    tmpdir = Path(tmp)
    init(rank, world, port, timeout=cfg.pop("_timeout"))
    cm_cfg = cfg.pop("_covmatch")
    cm = _distil(cm_cfg, None, False, method="covmatch")
    if rank == 0:
        cm.save(tmpdir / "covmatch.safetensors")
    # keep_best: rank 0 alone validates; every rank keeps the same set
    best = _keep_best(cm_cfg)
    best.save(tmpdir / f"covmatch_best_rank{rank}.safetensors")
    # rank alignment in the online student's moving embedding: sharded full passes
    online = _distil(cfg.pop("_online"), None, False)
    if rank == 0:
        online.save(tmpdir / "rank_align_online.safetensors")
    # rank alignment over a pool of expert snapshots: sharded cached points, same draws
    trajectory = _distil(cfg.pop("_trajectory"), None, False)
    if rank == 0:
        trajectory.save(tmpdir / "rank_align_trajectory.safetensors")
    _loss_checks(rank, world, str(tmpdir / "report.json"))
    ck = tmpdir / "ck"
    syn = _distil(cfg, str(ck), False, out=str(tmpdir / f"dist_rank{rank}.safetensors"))
    hd.barrier()
    if rank == 0:
        # Lose the last checkpoint: the resumed run restarts from the one before it.
        newest = sorted(ck.glob("step_*.safetensors"))
        assert len(newest) == 2, newest
        newest[-1].unlink()
    hd.barrier()
    again = _distil(cfg, str(ck), True)
    assert torch.equal(again.image, syn.image) and torch.equal(again.text, syn.text)
    assert again.history == syn.history
    if rank == 0:
        again.save(tmpdir / "resumed.safetensors")
    hd.barrier()
    if rank != 0:
        return  # exits without another collective: rank 0 must fail, not hang
    t0 = time.perf_counter()
    try:
        hd.all_reduce_mean_([torch.ones(3)], torch.distributed.group.WORLD)
        message = None
    except hd.DistributedError as err:
        message = str(err)
    report = {"message": message, "seconds": time.perf_counter() - t0}
    (tmpdir / "failure.json").write_text(json.dumps(report))
