"""How much the evaluation slows down when a second process keeps one core busy.

Command (from the repository root; needs the built-in emoji data):

    .venv/bin/python benchmarks/bench_eval_busy.py

In one process, interleaved over ``--rounds`` rounds, each workload runs once with the
machine as it is ("quiet") and once beside a busy process (a one-thread Python spin loop,
started for the measurement and stopped after it; it inherits this process's priority):

* ``torch.mm``: float32 ``N x N @ N x N`` (``--mm-n``), repeated, torch's default threads;
* the evaluation as it runs now: the students of ``--seeds`` seeds trained together
  (``evaluate()`` defaults: one worker thread per core, one intra-op thread each);
* the students one after another with one thread (``workers=1, num_threads=1``: how sets up
  to 4,096 pairs were evaluated before);
* with ``--old``, also the students one after another with torch's default (two) intra-op
  threads (how a set larger than 4,096 pairs was evaluated before; very slow under load).

The evaluation trains on the first ``--pairs`` caption pairs of the emoji train split for
``--epochs`` epochs and scores the test split. Prints each workload's median time in both
conditions and the slowdown (busy / quiet); writes ``results/bench_eval_busy.csv``
(``--out`` to change the folder).
"""

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time

import torch

from hypervldd.eval import EvalProtocol, evaluate
from hypervldd.eval.evaluate import TrainPairs, as_train_pairs
from hypervldd.pipeline import prepare

parser = argparse.ArgumentParser()
parser.add_argument("--pairs", type=int, default=2048)
parser.add_argument("--seeds", type=int, default=4)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--mm-n", type=int, default=1024)
parser.add_argument("--mm-reps", type=int, default=20)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--old", action="store_true", help="add the two-thread evaluation")
parser.add_argument(
    "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
)
args = parser.parse_args()

feats = prepare("emoji", progress=False)
full = as_train_pairs(feats["train"])  # every caption pair; captions of an image are positives
n = args.pairs
pairs = TrainPairs(full.image[:n], full.text[:n], group=full.group[:n])
protocol = EvalProtocol(
    seeds=tuple(range(args.seeds)), epochs=args.epochs, lr_decay_epochs=(args.epochs // 2,)
)
a = torch.randn(args.mm_n, args.mm_n)
b = torch.randn(args.mm_n, args.mm_n)


def mm() -> None:
    for _ in range(args.mm_reps):
        torch.mm(a, b)


def eval_now() -> None:
    evaluate(pairs, feats["test"], protocol)


def eval_one_thread() -> None:
    evaluate(pairs, feats["test"], protocol, workers=1, num_threads=1)


def eval_before() -> None:
    evaluate(pairs, feats["test"], protocol, workers=1, num_threads=None)


workloads = {
    "torch.mm (default threads)": mm,
    "evaluation, students together (now)": eval_now,
    "evaluation, one after another on 1 thread": eval_one_thread,
}
if args.old:
    workloads["evaluation, one after another on 2 threads (before)"] = eval_before
times = {(w, c): [] for w in workloads for c in ("quiet", "busy")}
eval_now()  # the first optimiser of a process imports part of torch._dynamo: not timed
print(
    f"torch threads {torch.get_num_threads()}; {args.pairs} pairs, {args.seeds} seeds x "
    f"{args.epochs} epochs; load average {os.getloadavg()[0]:.1f}",
    flush=True,
)
for r in range(args.rounds):
    for cond in ("quiet", "busy") if r % 2 == 0 else ("busy", "quiet"):
        spin = None
        if cond == "busy":
            spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for name, fn in workloads.items():
                t0 = time.perf_counter()
                fn()
                times[(name, cond)].append(time.perf_counter() - t0)
                print(
                    f"round {r + 1} {cond:5s} {name}: {times[(name, cond)][-1]:.2f} s", flush=True
                )
        finally:
            if spin is not None:
                spin.kill()
                spin.wait()
rows = []
for name in workloads:
    q = statistics.median(times[(name, "quiet")])
    b_ = statistics.median(times[(name, "busy")])
    rows.append([name, f"{q:.3f}", f"{b_:.3f}", f"{b_ / q:.2f}"])
    print(f"{name}: quiet {q:.2f} s, busy {b_:.2f} s, slowdown {b_ / q:.2f}x")
print(f"load average at the end {os.getloadavg()[0]:.1f}")
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "bench_eval_busy.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["workload", "quiet_seconds", "busy_seconds", "slowdown"])
    w.writerows(rows)
