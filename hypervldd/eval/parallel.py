"""Students of several seeds trained at once, one per worker thread.

A student's training is a long chain of small ops (a ``(128, D) @ (D, 512)`` GEMM per head
and a float64 ``128 x 128`` distance per step): one intra-op thread runs them nearly as
fast as two, and loses badly when an OpenMP team waits for a core another process holds.
Seeds, on the other hand, are independent. So the cores go to seeds: ``workers`` threads
each train whole students with ``threads`` intra-op threads, never more than the threads
torch may use in this process (``workers * threads <= torch.get_num_threads()``).

Results do not depend on the worker count or on scheduling: a seed's student is built and
trained from its own generator only, with one intra-op thread in every case, and the results
come back in protocol seed order. Seeds are handed out one at a time as workers free up, so
a worker slowed by a busy core simply trains fewer of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import torch

from .._checks import set_validation, validation_enabled

__all__ = ["SeedPlan", "plan_seeds", "map_seeds", "Cancelled"]

T = TypeVar("T")


class Cancelled(RuntimeError):
    """Raised inside a worker when the evaluation it belongs to was stopped."""


class SeedPlan:
    """How the seeds of one evaluation run: ``workers`` threads of ``threads`` intra-op
    threads each (``threads=None``: torch's setting left alone; only with one worker)."""

    __slots__ = ("workers", "threads")

    def __init__(self, workers: int, threads: int | None) -> None:
        self.workers = int(workers)
        self.threads = None if threads is None else int(threads)

    def __repr__(self) -> str:
        return f"SeedPlan(workers={self.workers}, threads={self.threads})"


def plan_seeds(
    n_seeds: int,
    *,
    num_threads: int | str | None = "auto",
    workers: int | str = "auto",
    small: bool = True,
    device: torch.device | None = None,
) -> SeedPlan:
    """Workers and intra-op threads per worker for ``n_seeds`` students.

    Args:
        n_seeds: students to train (one per protocol seed).
        num_threads: intra-op threads per worker. ``"auto"``: one (the cores go to seeds),
            except for a single student on a large set, which keeps torch's setting;
            ``None``: torch's setting, left alone (one worker unless ``workers`` says
            otherwise); an int: that many.
        workers: ``"auto"``: as many as the seeds and the thread budget allow on the CPU,
            one on other devices (their streams serialise the work anyway); an int >= 1.
        small: whether the training set is small (see ``SMALL_TRAIN_SET``).
        device: where the students train (``None``: the CPU).

    The budget is ``torch.get_num_threads()`` of the calling thread: the cores torch may use
    here (``OMP_NUM_THREADS``, ``torch.set_num_threads`` and torchrun's one thread per rank
    all lower it).

    Raises:
        ValueError: bad values, or ``workers * num_threads`` above the budget.

    >>> plan_seeds(5, num_threads=1, workers=1)
    SeedPlan(workers=1, threads=1)
    """
    if not (isinstance(workers, int) or workers == "auto") or isinstance(workers, bool):
        raise ValueError(f"workers must be 'auto' or an int >= 1, got {workers!r}")
    if isinstance(workers, int) and workers < 1:
        raise ValueError(f"workers must be 'auto' or an int >= 1, got {workers!r}")
    if num_threads is not None and num_threads != "auto":
        if isinstance(num_threads, (str, bool)) or int(num_threads) < 1:
            raise ValueError(
                f"num_threads must be 'auto', None or an int >= 1, got {num_threads!r}"
            )
    on_cpu = device is None or torch.device(device).type == "cpu"
    budget = max(1, torch.get_num_threads())
    threads: int | None
    if num_threads == "auto":
        threads = 1 if small or (on_cpu and n_seeds > 1) else None
    else:
        threads = None if num_threads is None else int(num_threads)
    if workers == "auto":
        if not on_cpu or num_threads is None:
            n = 1
        else:
            n = max(1, min(n_seeds, budget // (threads or budget)))
    else:
        n = min(int(workers), max(1, n_seeds))
    if n > 1:
        if threads is None:
            threads = max(1, budget // n)
        if n * threads > budget:
            raise ValueError(
                f"workers x num_threads = {n} x {threads} exceeds the {budget} thread(s) torch "
                "may use here (torch.get_num_threads()): lower workers or num_threads"
            )
    return SeedPlan(n, threads)


def map_seeds(
    fn: Callable[[int, threading.Event], T], seeds: Sequence[int], plan: SeedPlan
) -> list[T]:
    """``[fn(seed, stop) for seed in seeds]``, run by ``plan.workers`` threads.

    ``stop`` is set when the evaluation is abandoned (an error in another seed, or an
    interrupt of the caller); ``fn`` should check it between epochs and raise
    :class:`Cancelled`. With one worker ``fn`` runs in the calling thread, under the
    caller's thread setting. Each worker thread runs with ``plan.threads`` intra-op
    threads and the caller's grad mode and validation setting (both are per thread).

    Returns:
        The results in the order of ``seeds``, whatever order they finished in.

    Raises:
        The first exception of a seed, in seed order among those that failed.
    """
    stop = threading.Event()
    if plan.workers <= 1 or len(seeds) <= 1:
        return [fn(int(s), stop) for s in seeds]
    grad, checks = torch.is_grad_enabled(), validation_enabled()
    caller_threads = torch.get_num_threads()

    def start() -> None:
        torch.set_num_threads(int(plan.threads or 1))
        torch.set_grad_enabled(grad)
        set_validation(checks)

    pool = ThreadPoolExecutor(max_workers=plan.workers, initializer=start)
    futures: list[Future] = []
    try:
        futures = [pool.submit(fn, int(s), stop) for s in seeds]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            stop.set()  # the other seeds stop at their next epoch
            wait(futures)
        errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None and not isinstance(e, Cancelled)), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]
    except BaseException:
        stop.set()  # an interrupt of the caller: the workers stop at their next epoch
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        # The OpenMP/MKL setting may be process-wide on some builds: give the caller its own.
        torch.set_num_threads(caller_threads)
