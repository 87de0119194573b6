"""Scale-out on ``torch.distributed``: process groups, sharding, collectives.

A base layer like :mod:`hypervldd.numerics`: it imports only torch, so the losses,
the distillation engine and the command line can all use it. See ``docs/distributed.md``.

* :func:`init_from_env` starts the default group under ``torchrun`` (gloo on CPU, NCCL on
  GPUs) with a bounded timeout; :func:`resolve_group` turns ``None`` / ``"auto"`` /
  ``"world"`` / a ``ProcessGroup`` into the group to use (``None``: single process).
* :func:`shard_range` / :func:`shard_rows`: contiguous shards of the real data by rank.
* :func:`all_gather_rows` (autograd-aware, ranks may hold different row counts),
  :func:`all_reduce_row_stats` (running max, sums of exponentials and weighted sums of
  partial row statistics combined into those of the union), :func:`all_reduce_mean_`,
  :func:`broadcast_`, :func:`broadcast_module_`, :func:`broadcast_object`.
* Every collective raises :class:`DistributedError` with the operation, rank and timeout
  when a peer rank dies or stops answering.
"""

from ._group import (
    DEFAULT_TIMEOUT,
    DistributedError,
    barrier,
    check_group_arg,
    get_rank,
    get_world_size,
    guarded,
    init_from_env,
    is_distributed,
    is_main_process,
    resolve_group,
    shutdown,
)
from .collectives import (
    all_gather_rows,
    all_reduce_mean_,
    all_reduce_row_stats,
    broadcast_,
    broadcast_module_,
    broadcast_object,
    gather_sizes,
    shard_range,
    shard_rows,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DistributedError",
    "init_from_env",
    "shutdown",
    "is_distributed",
    "resolve_group",
    "check_group_arg",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "barrier",
    "guarded",
    "shard_range",
    "shard_rows",
    "gather_sizes",
    "all_gather_rows",
    "all_reduce_mean_",
    "all_reduce_row_stats",
    "broadcast_",
    "broadcast_module_",
    "broadcast_object",
]
