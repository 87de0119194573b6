"""Warm start: `pipeline.prepare("emoji")` with every feature already cached.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_warm_start.py --cache-dir DIR
           [--out bench_warm_start]
Writes results/<out>.csv: the seconds of the import of hypervldd.pipeline and of one
prepare call (all splits) in this process, and whether every split was a cache hit
(required: fill DIR first, e.g. by running this script once). Time one process per
run; compare runs of the same cache on the same machine, one after the other.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

t_start = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hypervldd import pipeline  # noqa: E402

t_import = time.perf_counter() - t_start

from _common import environment, write_csv  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", required=True, help="feature cache folder")
    ap.add_argument("--out", default="bench_warm_start")
    args = ap.parse_args(argv)
    print(environment(), flush=True)
    t0 = time.perf_counter()
    feats = pipeline.prepare("emoji", cache_dir=args.cache_dir, progress=False)
    sec = time.perf_counter() - t0
    hit = all(
        f.metadata["image_cache_hit"] and f.metadata["text_cache_hit"] for f in feats.values()
    )
    print(f"import {t_import:.2f} s, prepare {sec:.2f} s, every split cached: {hit}")
    row = {"import_seconds": f"{t_import:.3f}", "prepare_seconds": f"{sec:.3f}", "all_cached": hit}
    print("wrote", write_csv(f"{args.out}.csv", [row]))


if __name__ == "__main__":
    main()
