"""Validation recall along one distillation run, and the test recall of the set it keeps.

Command (from the repository root; needs the built-in emoji data, see DEVELOPERS.md):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/validation_curve.py raha 100 50 \
        [--config '{"engine": {"iterations": 600}}'] [--out curve.json]

Distils the whole emoji training split into ``budget`` pairs with ``method`` (its defaults,
plus ``--config``) under ``engine.keep_best`` with a check every ``every`` steps: one student
of the default protocol (seed 0, final epoch) scored on the validation split. Prints (and
writes with ``--out``) one JSON object: the validation mean recall at every check, the step
kept, the validation recall of the kept set under the full default protocol (5 student
seeds; ``kept_validation_mean``, a less noisy figure for choosing between configs), and its
test recall under that protocol. The test split is read only after the run, to score the one
set it returns.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hypervldd.eval import EvalProtocol
from hypervldd.pipeline import distill, evaluate_set, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method")
    ap.add_argument("budget", type=int)
    ap.add_argument("every", type=int, help="steps between validation checks")
    ap.add_argument("--config", type=json.loads, default={}, help="method config (JSON)")
    ap.add_argument("--seed", type=int, default=0, help="distillation seed")
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args()

    torch.set_num_threads(1)
    feats = prepare("emoji", progress=False)
    protocol = EvalProtocol()
    engine = {**args.config.get("engine", {}), "validate_every": args.every, "keep_best": True}
    cfg = {**args.config, "engine": engine}
    t0 = time.perf_counter()
    syn = distill(
        feats["train"], args.method, args.budget, seed=args.seed, config=cfg,
        val=feats["val"], protocol=protocol,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    val_all = evaluate_set(syn, feats["val"], protocol)
    test = evaluate_set(syn, feats["test"], protocol)
    out = {
        "method": args.method,
        "budget": args.budget,
        "seed": args.seed,
        "config": args.config,
        "validate_every": args.every,
        "distil_seconds": round(seconds, 1),
        "validation_mean": [
            [h["step"], round(h["validation"]["mean"], 2)] for h in syn.history if "validation" in h
        ],
        "selected": syn.config["selected"],
        "kept_validation_mean": [round(val_all.mean["mean"], 2), round(val_all.std["mean"], 2)],
        "test_mean": round(test.mean["mean"], 2),
        "test_std": round(test.std["mean"], 2),
    }
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
