"""How many independent items the emoji splits hold.

Command (from the repository root; needs the Debian ``unicode-data`` package):

    .venv/bin/python benchmarks/split_variants.py

The emoji splits keep the skin-tone variants of one emoji together (a *variant group*), so
a split's images are not independent test items: a group of 26 variants moves 26 images
at once. Prints, per split, the images, the variant groups, the largest group sizes and
the effective number of independent items ``n^2 / sum(size^2)`` (``n`` if every group has
one image; the number of groups if they all have the same size).
"""

from __future__ import annotations

import json
from collections import Counter

from hypervldd.data.emoji import emoji_splits, parse_emoji_test


def main() -> None:
    records = parse_emoji_test()
    splits = emoji_splits(records)
    out = {}
    for name in sorted(set(splits)):
        groups = Counter(
            (r.group, r.subgroup, r.base_name) for r, s in zip(records, splits, strict=True)
            if s == name
        )  # fmt: skip
        sizes = sorted(groups.values(), reverse=True)
        n = sum(sizes)
        out[name] = {
            "images": n,
            "variant_groups": len(sizes),
            "largest": sizes[:4],
            "effective_items": round(n * n / sum(v * v for v in sizes)),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
