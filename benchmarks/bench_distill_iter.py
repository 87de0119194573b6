"""Per-iteration time of the gradient distillers on the emoji features, side by side.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_distill_iter.py
           [--methods covmatch raha] [--budget 100] [--iters 30] [--cache-dir DIR]
           [--out bench_distill_iter] [--parts]
Writes results/<out>.csv. One thread. Each method is set up as its engine sets it up
(initial set, optimiser, ``_setup``) on the cached emoji train features, then the
iterations (loss, backward, optimiser step, constraint) run interleaved: one
iteration of each method in turn, ``--iters`` rounds after 3 warm-up rounds; each
figure is the median seconds per iteration and its ratio to the first method's.
The target of issue 19 is RAHA at most 1.5x CovMatch. ``--parts`` also prints the time
spent in each part (the timed functions nest: "backward (all)" includes the online
student's backward, "subspace terms (all)" the subspaces and the Sinkhorn plans).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import environment, write_csv  # noqa: E402

from hypervldd import pipeline  # noqa: E402
from hypervldd.distill import get_distiller  # noqa: E402
from hypervldd.distill.base import prepare_real  # noqa: E402
from hypervldd.distill.engine import random_init  # noqa: E402


def _stepper(method: str, data, budget: int):  # noqa: ANN001, ANN202
    d = get_distiller(method)
    d._group = None
    gen = torch.Generator().manual_seed(0)
    src = random_init(data, budget, gen)
    image, text = d._initial_tensors(data, src)
    image.requires_grad_(True)
    text.requires_grad_(True)
    opt = d._make_opt(image, text)
    d._setup(data, budget, gen)
    state = {"step": 0}

    def one() -> None:
        loss = d._loss(state["step"], image, text, data, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d._constrain(image, text)
        state["step"] += 1

    return one


# Functions timed by --parts, as (module, attribute, label).
_PARTS = (
    ("hypervldd.distill.covmatch", "OnlineStudent.step", "online student step"),
    ("hypervldd.losses.raha", "range_residual_subspaces", "RAHA subspaces"),
    ("hypervldd.losses.raha", "sinkhorn_plan", "RAHA Sinkhorn"),
    ("hypervldd.losses.raha", "RAHALoss._subspace_terms", "RAHA subspace terms (all)"),
    ("hypervldd.kernels", "contrastive_loss", "hITC (contrastive_loss)"),
    ("torch", "Tensor.backward", "backward (all)"),
)


def _time_parts(acc: dict[str, float]) -> None:
    """Wrap each function of _PARTS with a timer adding its seconds to ``acc``."""
    import importlib

    for mod, attr, label in _PARTS:
        owner = importlib.import_module(mod)
        *path, name = attr.split(".")
        for p in path:
            owner = getattr(owner, p)
        fn = getattr(owner, name)

        def timed(*a, _fn=fn, _label=label, **k):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                acc[_label] = acc.get(_label, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["covmatch", "raha"])
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--cache-dir", default=None, help="feature cache folder (default: the user's)")
    ap.add_argument("--out", default="bench_distill_iter")
    ap.add_argument(
        "--parts", action="store_true", help="also print the seconds per part of an iteration"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(environment(), flush=True)
    feats = pipeline.prepare("emoji", splits=("train",), cache_dir=args.cache_dir, progress=False)
    data = prepare_real(feats["train"])
    steps = {m: _stepper(m, data, args.budget) for m in args.methods}
    times: dict[str, list[float]] = {m: [] for m in steps}
    acc: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {m: {} for m in steps}
    if args.parts:
        _time_parts(acc)
    for r in range(args.iters + 3):
        for m, one in steps.items():
            acc.clear()
            t0 = time.perf_counter()
            one()
            if r >= 3:
                times[m].append(time.perf_counter() - t0)
                for k, v in acc.items():
                    parts[m][k] = parts[m].get(k, 0.0) + v
    for m in steps if args.parts else ():
        total = sum(times[m])
        for k, v in sorted(parts[m].items()):
            print(f"{m:10s} {k:28s} {v / args.iters * 1e3:8.1f} ms/iter  {v / total:6.1%}")
    med = {m: statistics.median(v) for m, v in times.items()}
    first = args.methods[0]
    rows = []
    for m in args.methods:
        rows.append(
            {
                "method": m,
                "budget": args.budget,
                "seconds_per_iter": f"{med[m]:.5f}",
                f"ratio_to_{first}": f"{med[m] / med[first]:.3f}",
            }
        )
        print(f"{m:10s} {med[m] * 1e3:8.1f} ms/iter  x{med[m] / med[first]:.2f} {first}")
    print("wrote", write_csv(f"{args.out}.csv", rows))


if __name__ == "__main__":
    main()
