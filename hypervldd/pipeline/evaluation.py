"""``evaluate_set``: a set scored under the protocol, its seeds shared over ranks."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._device import resolve_device


def evaluate_set(
    train: Any,
    test: Any,
    protocol: Any = None,
    *,
    val: Any = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Any:
    """Score a synthetic set (or real features) under ``protocol``; returns the eval Result.

    The feature students train on ``device`` (``None``: CUDA when available); ``progress``
    draws a bar over their epochs."""
    from ..distributed import is_distributed
    from ..eval import EvalProtocol, evaluate

    protocol = protocol or EvalProtocol()
    # Validation features matter only for validation-selected checkpoints.
    if getattr(protocol, "selection", "final") != "validation":
        val = None
    device = resolve_device(device)
    if is_distributed():
        return _evaluate_distributed(train, test, protocol, val, device)
    return evaluate(train, test, protocol, val_features=val, device=device, progress=progress)


def _evaluate_distributed(
    train: Any, test: Any, protocol: Any, val: Any, device: Any = None
) -> Any:
    """Student seeds shared round-robin over the ranks; every rank gets the whole Result.

    Each seed's student depends only on its seed, so the per-seed metrics are those of a
    single-process evaluation; they are reassembled in protocol order.
    """
    import dataclasses

    import torch.distributed as dist

    from ..distributed import get_rank, get_world_size, guarded
    from ..eval import Result, evaluate

    rank, world = get_rank(), get_world_size()
    seeds = list(protocol.seeds)
    mine = seeds[rank::world]
    part = None
    if mine:
        sub = dataclasses.replace(protocol, seeds=tuple(mine))
        part = evaluate(train, test, sub, val_features=val, device=device).to_dict()
    parts: list[Any] = [None] * world
    with guarded("all_gather of evaluation results"):
        dist.all_gather_object(parts, part)
    per_seed: dict[int, tuple[Any, Any, Any]] = {}
    for r, p in enumerate(parts):
        if p is not None:
            for s, row, ep, loss in zip(
                seeds[r::world],
                p["metrics_per_seed"],
                p["selected_epochs"],
                p["train_losses"],
                strict=True,
            ):
                per_seed[s] = (row, ep, loss)
    rows = [per_seed[s][0] for s in seeds]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    std = {k: math.sqrt(sum((r[k] - mean[k]) ** 2 for r in rows) / len(rows)) for k in rows[0]}
    first = next(p for p in parts if p is not None)
    return Result(
        metrics_per_seed=rows,
        mean=mean,
        std=std,
        selection=first["selection"],
        selected_epochs=[per_seed[s][1] for s in seeds],
        protocol=protocol.to_dict(),
        n_train_pairs=first["n_train_pairs"],
        train_storage_floats=first["train_storage_floats"],
        seconds=max(p["seconds"] for p in parts if p is not None),
        train_losses=[per_seed[s][2] for s in seeds],
    )
