"""Distil seconds of rank_align against CovMatch at its defaults, in one process.

Command (from the repository root; needs the built-in emoji data, see DEVELOPERS.md):

    OMP_NUM_THREADS=1 python benchmarks/rank_align_distil_time.py NAME \
        [--budget 100] [--rounds 1] \
        [--rank-align-config '{"embedding": "trajectory", "experts": 3}']

Distils the emoji training split into ``budget`` pairs with CovMatch at its defaults, with
``rank_align`` under ``--rank-align-config`` (its defaults plus that) and with ``rank_align`` at
its defaults, back to back in one process, ``rounds`` times with the order rotated each
round (the machine is shared: only ratios measured together compare). Nothing is scored.
Writes ``benchmarks/results/rank_align_ablation/NAME.json`` (refuses to overwrite it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from hypervldd.pipeline import distill, prepare

OUT = Path(__file__).resolve().parent / "results" / "rank_align_ablation"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rank-align-config", type=json.loads, default={})
    args = ap.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    out = OUT / f"{args.name}.json"
    if out.exists():
        raise SystemExit(f"{out} exists: choose another NAME or remove it first")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    train = prepare("emoji", progress=False)["train"]
    runs = [
        ("covmatch", "covmatch", {}),
        ("rank_align_config", "rank_align", args.rank_align_config),
        ("rank_align_default", "rank_align", {}),
    ]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for r in range(args.rounds):
        for name, method, cfg in runs[r % 3 :] + runs[: r % 3]:
            t0 = time.perf_counter()
            distill(train, method, args.budget, seed=0, config=cfg)
            seconds[name].append(round(time.perf_counter() - t0, 1))
            print(name, seconds[name][-1], flush=True)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    record = {
        "name": args.name,
        "budget": args.budget,
        "rank_align_config": args.rank_align_config,
        "seconds": seconds,
        "median_seconds": med,
        "rank_align_config_over_covmatch": round(med["rank_align_config"] / med["covmatch"], 3),
        "rank_align_default_over_covmatch": round(med["rank_align_default"] / med["covmatch"], 3),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "command": "OMP_NUM_THREADS=1 python benchmarks/rank_align_distil_time.py "
        + f"{args.name} --budget {args.budget} --rounds {args.rounds}"
        + f" --rank-align-config '{json.dumps(args.rank_align_config)}'",
    }
    text = json.dumps(record)
    print(text)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
