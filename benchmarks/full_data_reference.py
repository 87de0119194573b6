"""The full-data reference row of docs/results.md: students trained on every real pair.

Command (from the repository root; needs the built-in emoji data):

    .venv/bin/python benchmarks/full_data_reference.py --seeds 1 --threads 1

Whole ``emoji`` set, the default ``EvalProtocol`` restricted to the first ``--seeds`` student
seeds, with ``--threads`` intra-op threads (one thread was about 10x faster than two on cores
shared with other jobs). Prints the result summary and the wall time.
"""

import argparse
import time

from hypervldd.eval import EvalProtocol, evaluate
from hypervldd.pipeline import prepare

parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, default=5)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
feats = prepare("emoji", progress=False)
protocol = EvalProtocol(seeds=tuple(range(args.seeds)))
t0 = time.perf_counter()
result = evaluate(feats["train"], feats["test"], protocol, num_threads=args.threads)
print(result.summary())
print(f"{time.perf_counter() - t0:.0f} s")
