"""Process groups: initialisation from ``torchrun``'s environment, rank helpers, guarded calls.

Every collective of the package runs inside :func:`guarded`, which turns the backend's
errors (a peer that exited closes its sockets, which gloo notices at once; a peer that
stopped answering lets the group's timeout expire) into one :class:`DistributedError`
naming the operation, the rank and the timeout. The timeout is set at initialisation
(``HYPERVLDD_DIST_TIMEOUT`` seconds, default 1800 as in torch: long enough for rank 0 to
validate or write while the others wait), so a hung rank ends the others within a bounded
time instead of hanging them for ever.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

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
]

#: Seconds a collective may wait for a peer before it fails (``HYPERVLDD_DIST_TIMEOUT``).
DEFAULT_TIMEOUT = 1800.0
_ENV_TIMEOUT = "HYPERVLDD_DIST_TIMEOUT"
_timeout_s: float | None = None  # the timeout this module initialised the group with


class DistributedError(RuntimeError):
    """A collective failed: a peer rank exited, stopped responding, or the set-up is wrong."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise DistributedError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from err


def _resolve_timeout(timeout: float | None) -> float:
    if timeout is None:
        raw = os.environ.get(_ENV_TIMEOUT)
        if raw:
            try:
                timeout = float(raw)
            except ValueError as err:
                raise DistributedError(
                    f"{_ENV_TIMEOUT} must be a number of seconds, got {raw!r}"
                ) from err
        else:
            timeout = DEFAULT_TIMEOUT
    if not (0.0 < float(timeout) < math.inf):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout}")
    return float(timeout)


def init_from_env(backend: str | None = None, timeout: float | None = None) -> bool:
    """Initialise the default process group from ``torchrun``'s variables if ``WORLD_SIZE > 1``.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    ``backend`` defaults to ``"nccl"`` when CUDA is available (the process then uses the
    GPU ``LOCAL_RANK``), else ``"gloo"``. ``timeout`` (seconds) bounds every collective;
    default ``$HYPERVLDD_DIST_TIMEOUT`` or 1800. Returns whether a group of more than one
    process is active (``False`` for a plain single-process run, which needs nothing).
    An already initialised group is kept as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return False
    if not dist.is_available():
        raise DistributedError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world} but {missing} are not set: launch with torchrun (it sets them)"
        )
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world:
        raise DistributedError(f"RANK must lie in [0, WORLD_SIZE={world}), got {rank}")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    seconds = _resolve_timeout(timeout)
    global _timeout_s
    try:
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=seconds),
        )
    except RuntimeError as err:  # DistStoreError and friends: the rendezvous did not complete
        raise DistributedError(
            f"rank {rank} of {world} could not join the process group at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {seconds:g} s: {err}"
        ) from err
    _timeout_s = seconds
    return True


def shutdown() -> None:
    """Destroy the default process group if one is initialised (idempotent)."""
    global _timeout_s
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _timeout_s = None


def is_distributed() -> bool:
    """Whether a default process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def resolve_group(group: Any) -> Any:
    """The process group a loss or the engine should use, or ``None`` for a local run.

    ``None`` -> ``None`` (no communication: the single-process behaviour). ``"auto"`` -> the
    default group when one of more than one process is initialised, else ``None``.
    ``"world"`` -> the default group (it must be initialised). A ``ProcessGroup`` -> itself.
    A group of one process resolves to ``None``, so a run with one rank is exactly the
    single-process run.
    """
    if group is None:
        return None
    if isinstance(group, str):
        if group == "auto":
            return dist.group.WORLD if is_distributed() else None
        if group == "world":
            if not (dist.is_available() and dist.is_initialized()):
                raise DistributedError(
                    "process_group='world' needs an initialised default group "
                    "(hypervldd.distributed.init_from_env under torchrun)"
                )
            return dist.group.WORLD if dist.get_world_size() > 1 else None
        raise ValueError(
            f"process_group must be None, 'auto', 'world' or a ProcessGroup, got {group!r}"
        )
    if not (dist.is_available() and dist.is_initialized()):
        raise DistributedError("a ProcessGroup was given but torch.distributed is not initialised")
    if not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            "process_group must be None, 'auto', 'world' or a ProcessGroup, got "
            f"{type(group).__name__}"
        )
    return group if dist.get_world_size(group) > 1 else None


def check_group_arg(group: Any, name: str = "process_group") -> Any:
    """Reject a value that :func:`resolve_group` can never accept; returns it unchanged.

    Only the kind of value is checked, not whether a group is initialised yet, so a loss
    may be built before ``init_process_group`` runs.
    """
    if group is None or group in ("auto", "world"):
        return group
    if isinstance(group, str) or not (dist.is_available() and isinstance(group, dist.ProcessGroup)):
        raise ValueError(f"{name} must be None, 'auto', 'world' or a ProcessGroup, got {group!r}")
    return group


def get_rank(group: Any = None) -> int:
    """Rank of this process in ``group`` (default group if ``None``); 0 when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank(group)


def get_world_size(group: Any = None) -> int:
    """Number of processes in ``group`` (default group if ``None``); 1 when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


def is_main_process() -> bool:
    """Whether this is global rank 0 (or the only process): the one that prints and writes."""
    return get_rank() == 0


@contextlib.contextmanager
def guarded(what: str, group: Any = None) -> Iterator[None]:
    """Run collectives, turning a backend failure into a :class:`DistributedError`.

    The message names the operation, this rank, the world size and the timeout, and says
    what usually causes it (a peer rank exited or stopped answering).
    """
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as err:  # DistBackendError, DistNetworkError, gloo/NCCL errors
        rank, world = get_rank(group), get_world_size(group)
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        default = group is None or group is dist.group.WORLD
        limit = (
            f"timeout {_timeout_s:g} s"
            if _timeout_s is not None and default
            else "the group's timeout"
        )
        raise DistributedError(
            f"{what} failed on rank {rank} of {world} ({limit}): a peer rank has "
            f"probably exited or stopped responding; look for the first error in the other "
            f"ranks' output. Backend error: {first}"
        ) from err


def barrier(group: Any = None) -> None:
    """Wait for every rank of ``group`` (no-op when not distributed), bounded by the timeout."""
    if not is_distributed():
        return
    with guarded("barrier", group):
        dist.barrier(group=group)
