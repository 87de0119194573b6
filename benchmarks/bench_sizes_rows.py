"""Selected rows of the size grid, for before/after runs of one kernel across two checkouts.

Usage: .venv/bin/python benchmarks/bench_sizes_rows.py --out FILE.csv [--tree DIR]
           [--op contrastive_loss] [--manifold lorentz] [--sizes 128 256 512 1024]
           [--dims 64 256 512] [--reps 9] [--threads T] [--force]

Measures the rows of ``bench_sizes.py`` for one op (``bench_sizes.measure_case``: the fused
op, the composite and ``torch.mm`` timed interleaved in this process, median of ``--reps``)
and writes them as CSV (the columns of ``bench_sizes.py``). ``--tree DIR`` imports
``hypervldd`` and ``bench_sizes`` from the checkout ``DIR`` (default: this one), so that
two checkouts run the same cases back to back, e.g. alternating::

    for r in 1 2; do for t in ../main .; do
      .venv/bin/python benchmarks/bench_sizes_rows.py --tree $t --threads 1 \\
          --out /tmp/ab/$(basename $(realpath $t))_$r.csv --force
    done; done

Read the ratios (fused/composite, fused/mm) of each run, not the seconds. An existing
``--out`` file is refused before any measurement unless ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--tree", default=here, help="checkout whose hypervldd is measured")
    ap.add_argument("--op", default="contrastive_loss", help="contrastive_loss or pairwise_dist")
    ap.add_argument("--manifold", default="lorentz")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 256, 512])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--force", action="store_true", help="overwrite an existing --out")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.force:
        sys.exit(f"{a.out} exists: pass --force to overwrite it")
    tree = os.path.abspath(a.tree)
    sys.path[:0] = [tree, os.path.join(tree, "benchmarks")]
    import bench_sizes as B
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for n in a.sizes:
        for d in a.dims:
            for pas in B.PASSES:
                r = B.measure_case(a.op, a.manifold, n, d, pas, a.reps)
                rows.append(r)
                print(n, d, pas, r["fused/composite"], r["fused/mm"], flush=True)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
