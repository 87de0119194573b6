"""PDS on the feature protocol and a small pixel-protocol run, on the emoji slice of the demo.

Command (about 10 minutes on the shared 2-core machine)::

    .venv/bin/python benchmarks/pds_pixels.py

Setting (the same slice as the demo table of docs/results.md): the built-in ``emoji``
dataset with ``limit=600`` (train 488 images / 2,440 captions, test 53 / 265),
EfficientNet-Lite0 image and all-MiniLM-L6-v2 text features, 100 synthetic pairs,
3 student seeds, final-epoch checkpoints, one distillation seed (0).

* Feature protocol: the default ``EvalProtocol`` (Lorentz heads, 100 epochs);
  methods ``random`` and ``pds`` (defaults).
* Pixel protocol: images resized to 32x32; the pixel student (ConvNet width 32,
  depth 3, DSA augmentation, backbone lr 0.01) under the default schedule;
  methods ``random`` (real images of the random pairs), ``pds`` (nearest real
  image of each prototype) and ``pixel_match`` (300 iterations).

No full-data rows: the feature one is in docs/results.md (same slice and protocol);
the pixel one (2,440 pairs x 100 epochs of ConvNet training per seed) costs too much
on this machine.

Writes ``benchmarks/results/pds_pixels.csv`` and prints both tables.

The pixel full-data reference alone, one student seed (about 15 minutes)::

    .venv/bin/python benchmarks/pds_pixels.py --pixel-full-data

writes ``benchmarks/results/pds_pixels_full.csv``.
"""

from __future__ import annotations

import csv
import os
import sys
import time

import torch

from hypervldd.eval import EvalProtocol
from hypervldd.eval.protocol import PixelStudentConfig
from hypervldd.pipeline import compare, compare_pixels, prepare

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def pixel_full_data() -> None:
    from hypervldd import data
    from hypervldd.pipeline import evaluate_set, pixel_split

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    feats = prepare("emoji", splits=("train", "test"), limit=600, progress=False)
    ds = data.load_emoji(limit=600, progress=False)
    train, test = (pixel_split(ds, feats[s], 32) for s in ("train", "test"))
    proto = EvalProtocol(seeds=(0,), pixel=PixelStudentConfig(width=32, depth=3))
    res = evaluate_set(train, test, proto)
    print(res.summary())
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "pds_pixels_full.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "method", "pairs", "seeds", "metric", "value"])
        for k, v in res.mean.items():
            w.writerow(["pixels-32", "full data", train.text.shape[0], 1, k, f"{v:.2f}"])
    print(f"total {time.perf_counter() - t0:.0f} s")


def main() -> None:
    if "--pixel-full-data" in sys.argv[1:]:
        pixel_full_data()
        return
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    feats = prepare("emoji", splits=("train", "test"), limit=600, progress=False)
    seeds = (0, 1, 2)
    feat_proto = EvalProtocol(seeds=seeds)
    res_f = compare(
        feats, ["random", "pds"], [100], protocol=feat_proto, references=False, log=print
    )
    print(res_f.markdown())
    pix_proto = EvalProtocol(seeds=seeds, pixel=PixelStudentConfig(width=32, depth=3))
    from hypervldd import data

    ds = data.load_emoji(limit=600, progress=False)
    res_p = compare_pixels(
        ds,
        feats,
        ["random", "pds", "pixel_match"],
        [100],
        image_size=32,
        protocol=pix_proto,
        references=False,
        method_configs={"pixel_match": {"engine": {"iterations": 300}, "width": 32}},
        log=print,
    )
    print(res_p.markdown())
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "pds_pixels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["protocol", "method", "pairs", "storage_floats", "mean", "std", "distil_s"])
        for name, res in (("features", res_f), ("pixels-32", res_p)):
            for r in res.rows:
                w.writerow(
                    [
                        name,
                        r.method,
                        r.budget if r.budget is not None else "all",
                        r.storage_floats if r.storage_floats is not None else "",
                        f"{r.metrics_mean['mean']:.2f}",
                        f"{r.metrics_std['mean']:.2f}",
                        f"{r.distill_seconds:.1f}",
                    ]
                )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
