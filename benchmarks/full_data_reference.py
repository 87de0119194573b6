"""The full-data reference row of docs/results.md: students trained on every real pair.

Commands (from the repository root; need the built-in emoji data):

    .venv/bin/python benchmarks/full_data_reference.py
    .venv/bin/python benchmarks/full_data_reference.py --compare --epochs 2 --rounds 2

Whole ``emoji`` set, the default ``EvalProtocol`` restricted to the first ``--seeds`` student
seeds (and to ``--epochs`` epochs, with the learning-rate decay at half of them). The first
form runs the evaluation as ``compare`` does (students trained together, one worker thread
per core) with a progress bar, and prints the result summary and the wall time.

``--compare`` times, interleaved in one process, the students trained one after another
with one thread (how this script ran before), optionally (``--with-default-threads``) one
after another with torch's default threads (how ``evaluate()`` ran a set this large before),
and trained together (now); it checks that every variant gives the same per-seed metrics
bit for bit and prints the time of each, its ratio to the new way and the CPU time the
process spent on it (user + system, all threads: the work, whatever the load). Results go to
``results/full_data_reference.csv`` (``--out`` to change).
"""

import argparse
import csv
import os
import resource
import statistics
import time

import torch

from hypervldd.eval import EvalProtocol, evaluate
from hypervldd.pipeline import prepare

parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, default=5)
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument(
    "--threads", default="auto", help="intra-op threads per worker ('auto', or an int)"
)
parser.add_argument("--workers", default="auto", help="worker threads ('auto', or an int)")
parser.add_argument("--compare", action="store_true", help="old vs new, interleaved")
parser.add_argument("--with-default-threads", action="store_true")
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--no-progress", action="store_true")
parser.add_argument(
    "--out",
    default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
    help="folder of full_data_reference.csv (with --compare)",
)
args = parser.parse_args()


def _count(v: str):  # noqa: ANN202
    return v if v == "auto" else int(v)


feats = prepare("emoji", progress=not args.no_progress)
protocol = EvalProtocol(
    seeds=tuple(range(args.seeds)), epochs=args.epochs, lr_decay_epochs=(args.epochs // 2,)
)
if not args.compare:
    t0 = time.perf_counter()
    result = evaluate(
        feats["train"],
        feats["test"],
        protocol,
        num_threads=_count(args.threads),
        workers=_count(args.workers),
        progress=not args.no_progress,
    )
    print(result.summary())
    print(f"{time.perf_counter() - t0:.0f} s")
    raise SystemExit(0)

variants = {
    "one after another, 1 thread (before)": dict(workers=1, num_threads=1),
    "together (now)": dict(),
}
if args.with_default_threads:
    variants["one after another, torch default threads (evaluate() before)"] = dict(
        workers=1, num_threads=None
    )
times: dict[str, list[float]] = {k: [] for k in variants}
cpu: dict[str, list[float]] = {k: [] for k in variants}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


per_seed: dict[str, list] = {}
print(
    f"emoji train: {feats['train'].num_images} images; {args.seeds} seeds x {args.epochs} "
    f"epochs; torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
)
for r in range(args.rounds):
    order = list(variants) if r % 2 == 0 else list(reversed(variants))
    for name in order:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        res = evaluate(
            feats["train"],
            feats["test"],
            protocol,
            progress=not args.no_progress,
            **variants[name],
        )
        times[name].append(time.perf_counter() - t0)
        cpu[name].append(_cpu_seconds() - c0)
        got = (res.metrics_per_seed, res.train_losses)
        if per_seed.setdefault("first", got) != got:
            raise SystemExit(f"{name}: results differ from the first variant's")
        print(
            f"round {r + 1} {name}: {times[name][-1]:.1f} s (CPU {cpu[name][-1]:.1f} s)",
            flush=True,
        )
new = statistics.median(times["together (now)"])
rows = []
for name, ts in times.items():
    med, c = statistics.median(ts), statistics.median(cpu[name])
    rows.append([name, args.seeds, args.epochs, f"{med:.2f}", f"{med / new:.2f}", f"{c:.2f}"])
    print(f"{name}: median {med:.1f} s, {med / new:.2f}x the new time; CPU {c:.1f} s")
print("per-seed metrics and losses identical in every variant")
print(f"load average at the end {os.getloadavg()[0]:.1f}")
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "full_data_reference.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["variant", "seeds", "epochs", "median_seconds", "ratio_to_new", "cpu_seconds"])
    w.writerows(rows)
