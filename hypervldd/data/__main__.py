"""``python -m hypervldd.data``: build a built-in dataset and cache its features, with timings.

Example (renders the emoji once, then encodes every split with EfficientNet-Lite0
and all-MiniLM-L6-v2, then reads everything back from the cache)::

    HF_HUB_OFFLINE=1 python -m hypervldd.data --dataset emoji --cache-dir /tmp/hv
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    os.environ["HF_HUB_OFFLINE"] = "1"
    p = argparse.ArgumentParser(prog="python -m hypervldd.data", description=__doc__)
    p.add_argument("--dataset", choices=("emoji", "fashion-mnist"), default="emoji")
    p.add_argument("--limit", type=int, default=None, help="subset size (default: all)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated split names")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache root (default $HYPERVLDD_CACHE or ~/.cache/hypervldd)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args(argv)

    import torch

    from . import efficientnet_lite0, extract_features, load_dataset, minilm_l6_v2
    from ._io import default_cache_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.cache_dir or default_cache_dir()
    report: dict = {
        "dataset": args.dataset,
        "threads": torch.get_num_threads(),
        "loadavg_start": os.getloadavg(),
    }
    t = time.perf_counter()
    kw = {"limit": args.limit}
    if args.dataset == "emoji":
        kw["cache_dir"] = root
    ds = load_dataset(args.dataset, **kw)
    report["load_seconds"] = round(time.perf_counter() - t, 3)
    report["images"], report["captions"] = ds.num_images, ds.num_captions
    if args.dataset == "emoji":
        report["rendered_now"] = ds.metadata["rendered_now"]
        report["render_seconds"] = round(ds.metadata["render_seconds"], 3)
        report["render_cpu_seconds"] = round(ds.metadata["render_cpu_seconds"], 3)
        report["multi_glyph"] = len(ds.metadata["multi_glyph"])
    t = time.perf_counter()
    ienc, tenc = efficientnet_lite0(), minilm_l6_v2()
    report["encoder_load_seconds"] = round(time.perf_counter() - t, 3)
    for split in args.splits.split(","):
        for attempt in ("first", "second"):
            t = time.perf_counter()
            f = extract_features(
                ds, split, ienc, tenc, root / "features", batch_size=args.batch_size
            )
            report[f"{split}/{attempt}"] = {
                "seconds": round(time.perf_counter() - t, 3),
                "image_seconds": round(f.metadata["image_seconds"], 3),
                "text_seconds": round(f.metadata["text_seconds"], 3),
                "image_cpu_seconds": round(f.metadata["image_cpu_seconds"], 3),
                "text_cpu_seconds": round(f.metadata["text_cpu_seconds"], 3),
                "image_hit": f.metadata["image_cache_hit"],
                "text_hit": f.metadata["text_cache_hit"],
                "shapes": [list(f.image_features.shape), list(f.text_features.shape)],
            }
    report["loadavg_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
