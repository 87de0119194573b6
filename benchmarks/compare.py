"""Compare two benchmark runs: the ratio NEW / OLD of every figure, regressions flagged.

Usage: .venv/bin/python benchmarks/compare.py OLD_DIR NEW_DIR [--threshold 1.25]
           [--fail-on-regression]
OLD_DIR and NEW_DIR are folders written by benchmarks/run_all.py (or any folders of
CSV files). Rows of a CSV present in both runs are matched by their text columns
(method, size, manifold, ...); every numeric column present in both is a figure.
A figure whose name says it is a cost (time, seconds, ms, us, memory, MB, a ratio
to a baseline, an error) regresses when NEW / OLD exceeds the threshold; other
figures are printed without a verdict. Times of one run are only comparable as
ratios: compare ratio columns (e.g. ``x_mm``, ``ratio_to_typical``) across machines.
Exit status 1 with ``--fail-on-regression`` when anything regressed.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from pathlib import Path

#: Column names that are costs (higher is worse).
#: ``_s$``: seconds (``fused_s``); ``/``: a ratio of two costs (``fused/mm``).
COST = re.compile(
    r"(sec|second|time|_ms|^ms|_us|^us|_s$|mem|_mb|^mb|ratio|/|x_mm|_x$|err|slow)", re.I
)


def _num(v: str) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_rows(path: Path) -> tuple[list[str], dict[tuple[str, ...], dict[str, float]]]:
    """(figure columns, {row key: {column: value}}) of one CSV file.

    The key is the row's text columns plus, for repeated keys, an occurrence index."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return [], {}
    cols = list(rows[0])
    numeric = [c for c in cols if all(_num(r[c]) is not None for r in rows if r[c] != "")]
    text = [c for c in cols if c not in numeric]
    out: dict[tuple[str, ...], dict[str, float]] = {}
    for r in rows:
        key = tuple(f"{c}={r[c]}" for c in text)
        k, i = key, 1
        while k in out:
            i += 1
            k = (*key, f"#{i}")
        out[k] = {c: v for c in numeric if (v := _num(r[c])) is not None}
    return numeric, out


def compare(old: Path, new: Path, threshold: float) -> tuple[list[dict], list[str]]:
    """Rows ``{file, row, figure, old, new, ratio, verdict}`` and notes on unmatched files."""
    if not old.is_dir():
        raise SystemExit(f"OLD {old} is not a folder")
    if not new.is_dir():
        raise SystemExit(f"NEW {new} is not a folder")
    if not threshold > 1.0:
        raise SystemExit(f"--threshold must be > 1, got {threshold}")
    names_old = {p.name for p in old.glob("*.csv")}
    names_new = {p.name for p in new.glob("*.csv")}
    notes = [f"only in OLD: {n}" for n in sorted(names_old - names_new)]
    notes += [f"only in NEW: {n}" for n in sorted(names_new - names_old)]
    out = []
    for name in sorted(names_old & names_new):
        _, rows_old = read_rows(old / name)
        _, rows_new = read_rows(new / name)
        for key in rows_old:
            if key not in rows_new:
                notes.append(f"{name}: row {', '.join(key)} only in OLD")
                continue
            for col, a in rows_old[key].items():
                b = rows_new[key].get(col)
                if b is None:
                    continue
                ratio = b / a if a != 0 else (1.0 if b == 0 else math.inf)
                verdict = ""
                if COST.search(col):
                    if ratio > threshold:
                        verdict = "REGRESSION"
                    elif ratio < 1.0 / threshold:
                        verdict = "better"
                out.append(
                    {
                        "file": name,
                        "row": ", ".join(key),
                        "figure": col,
                        "old": a,
                        "new": b,
                        "ratio": ratio,
                        "verdict": verdict,
                    }
                )
    return out, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="the recorded run")
    ap.add_argument("new", type=Path, help="the run to check")
    ap.add_argument("--threshold", type=float, default=1.25, help="NEW / OLD that regresses")
    ap.add_argument("--fail-on-regression", action="store_true", help="exit 1 on a regression")
    args = ap.parse_args(argv)
    rows, notes = compare(args.old, args.new, args.threshold)
    for r in rows:
        print(
            f"{r['file']:28s} {r['row'][:70]:70s} {r['figure']:18s}"
            f" {r['old']:12.6g} -> {r['new']:12.6g}  x{r['ratio']:.3f} {r['verdict']}"
        )
    for n in notes:
        print("note:", n)
    bad = [r for r in rows if r["verdict"] == "REGRESSION"]
    print(
        f"{len(rows)} figures compared, {len(bad)} regression(s) past x{args.threshold:g}"
        f", {sum(r['verdict'] == 'better' for r in rows)} better"
    )
    return 1 if bad and args.fail_on_regression else 0


if __name__ == "__main__":
    sys.exit(main())
