"""Shared helpers of the kernel benchmarks: timing, peak memory, precision, output."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable

import torch

# benchmarks/run_all.py points this at the folder of one run.
RESULTS = os.environ.get("HYPERVLDD_BENCH_RESULTS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results"
)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class PeakRSS:
    """Peak resident set above the level at entry, sampled every 2 ms in a thread."""

    def __enter__(self) -> PeakRSS:
        self.base = rss_bytes()
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(fn: Callable[[], object], reps: int = 3) -> tuple[float, float]:
    """(median seconds over ``reps`` after one warm-up, peak extra RSS in MB of one call).

    The result of the memory-measured call is kept in ``measure.last``."""
    fn()
    with PeakRSS() as mem:
        measure.last = fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), mem.extra_mb


def measure_interleaved(fns: dict, reps: int | dict) -> dict[str, tuple[float, float, object]]:
    """{name: (median seconds, peak extra RSS MB, result)} with the timed repetitions
    interleaved round-robin over the methods, so that a change of machine load (other jobs
    share these cores) hits every method alike. One warm-up call each first."""
    reps = reps if isinstance(reps, dict) else dict.fromkeys(fns, reps)
    out, times = {}, {k: [] for k in fns}
    for name, fn in fns.items():
        fn()
        with PeakRSS() as mem:
            res = fn()
        out[name] = (mem.extra_mb, res)
    for r in range(max(reps.values())):
        for name, fn in fns.items():
            if r < reps[name]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {k: (statistics.median(times[k]), out[k][0], out[k][1]) for k in fns}


def max_rel_err(got: torch.Tensor, truth: torch.Tensor) -> float:
    got, truth = got.double(), truth.double()
    pos = truth > 0
    return float(((got - truth).abs()[pos] / truth[pos]).max()) if pos.any() else 0.0


def environment() -> str:
    load = os.getloadavg()[0]
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()},"
        f" load average {load:.1f}"
    )


def write_csv(name: str, rows: list[dict]) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def bar_plot(name: str, rows: list[dict], label: str, value: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = os.path.join(RESULTS, name)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    ax.barh([r[label] for r in rows], [float(r[value]) for r in rows])
    ax.set_xlabel(value)
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
