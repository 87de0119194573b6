"""Run every quick benchmark into one folder (``make bench``); compare runs with compare.py.

Usage: .venv/bin/python benchmarks/run_all.py --out DIR [--force] [--only NAME ...]
           [--list] [--dry-run] [--timeout 300]
Each benchmark runs in its own subprocess in its quick mode, one after the other,
writing its CSV into DIR (the kernel benchmarks through HYPERVLDD_BENCH_RESULTS, the
others through their own --out) and its output into DIR/<name>.log. DIR/manifest.json
records the commands, their exit codes and durations, and the environment. The whole
quick suite took under 3 minutes at load 12 on 2 cores. Benchmarks that need data sets or long
training (WordNet, the distillation and evaluation studies) have no quick mode here:
``--list`` names them with the reason, and they are never run by this script.

DIR must not exist or be empty; with ``--force`` the files of an earlier run are
overwritten. Then: ``benchmarks/compare.py OLD_DIR NEW_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_RESULTS = "HYPERVLDD_BENCH_RESULTS"


@dataclass(frozen=True)
class Bench:
    """One quick benchmark: its script and arguments (``{out}`` is the run folder)."""

    name: str
    script: str
    args: tuple[str, ...]


QUICK: tuple[Bench, ...] = (
    Bench("cliff", "bench_cliff.py", ("--quick", "--out", "bench_cliff")),
    Bench("overhead", "bench_overhead.py", ("--quick", "--out", "bench_overhead")),
    Bench(
        "rank_checks",
        "bench_rank_checks.py",
        ("--n", "2000", "--iters", "5", "--out", "bench_rank_checks"),
    ),
    Bench(
        "pairwise",
        "bench_pairwise.py",
        ("--n", "512", "--d", "64", "--reps", "3", "--threads", "1", "--out", "bench_pairwise"),
    ),
    Bench(
        "contrastive",
        "bench_contrastive.py",
        ("--n", "512", "--d", "64", "--reps", "3", "--threads", "1", "--out", "bench_contrastive"),
    ),
    Bench(
        "rowstats",
        "bench_rowstats.py",
        ("--n", "512", "--d", "64", "--reps", "3", "--threads", "1", "--out", "bench_rowstats"),
    ),
    Bench("threads", "bench_threads.py", ("--quick", "--out", "bench_threads")),
    # --force: this script has already refused a non-empty folder unless told to overwrite.
    Bench("sizes", "bench_sizes.py", ("--quick", "--force", "--out", "bench_sizes")),
    Bench(
        "epilogue",
        "bench_epilogue.py",
        ("--n", "512", "--dims", "64", "--reps", "3", "--out", "bench_epilogue"),
    ),
    Bench("floor", "bench_floor.py", ("--quick", "--out", "bench_floor")),
    Bench(
        "raha_linalg",
        "bench_raha_linalg.py",
        ("--b", "64", "--d", "128", "--k", "8", "--reps", "3", "--out", "bench_raha_linalg"),
    ),
)

#: Benchmarks without a quick mode that fits the 10 minutes, with the reason.
NOT_QUICK: dict[str, str] = {
    "bench_warm_start.py": "times prepare on the cached emoji features (needs the cache)",
    "bench_distill_iter.py": "needs the cached emoji features (run prepare first)",
    "bench_sizes_rows.py": "rows of bench_sizes.py for before/after runs of two checkouts",
    "losses.py": "its --quick mode alone ran past 5 minutes at load 12 on 2 cores",
    "wordnet.py": "trains hierarchy embeddings for minutes and needs the wordnet-base data",
    "full_data_reference.py": "trains 5 students x 100 epochs on emoji",
    "bench_eval_busy.py": "trains students on emoji beside a busy process (minutes)",
    "eval_extras.py": "distils and evaluates on emoji and fashion-mnist",
    "mtt_emoji.py": "trajectory matching on emoji (minutes)",
    "pds_pixels.py": "pixel distillation on emoji (minutes)",
    "split_variants.py": "evaluation study over several splits",
    "validation_curve.py": "distillation with validation every few steps",
    "expert_init_overlap.py": "trains experts on emoji",
    "distributed_scaling.py": "starts several torch.distributed worlds",
    "lora_memory.py": "builds the encoders (needs their local weights)",
    "geometry_precision.py": "writes into benchmarks/results only (no --out)",
    "geometry_limits.py": "writes into benchmarks/results only (no --out)",
    "klein_model.py": "writes into benchmarks/results only (no --out)",
    "loss_graph_breaks.py": "compiles every loss with torch.compile (minutes on 2 cores)",
    "gpu.py": "needs a CUDA device (its --smoke mode is a test)",
    "rank_align_ablation.py": "one distillation and evaluation on emoji per cell (minutes)",
    "rank_align_distil_time.py": "distils emoji three times at 100 pairs (tens of minutes)",
    "write_karpathy_fashion_mnist.py": "writes a dataset (a tool, not a measurement)",
}


def _check_out(out: Path, force: bool) -> None:
    """Refuse a non-empty folder without --force, before any benchmark runs."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SystemExit(
            f"--out {out} is not empty (an earlier run?): choose another folder, or pass"
            " --force to overwrite its files"
        )


def select(only: list[str] | None) -> list[Bench]:
    """The quick benchmarks named in ``only`` (all when None), in suite order."""
    if not only:
        return list(QUICK)
    known = {b.name for b in QUICK}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; known: {sorted(known)}")
    return [b for b in QUICK if b.name in only]


def command(b: Bench, out: Path) -> list[str]:
    """The subprocess command of one benchmark."""
    args = [a.replace("{out}", str(out)) for a in b.args]
    return [sys.executable, str(HERE / b.script), *args]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for this run's results (required)")
    ap.add_argument("--force", action="store_true", help="overwrite the files of a non-empty --out")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per benchmark")
    args = ap.parse_args(argv)
    if not args.list and args.out is None:
        ap.error("--out DIR is required (the folder this run writes into)")
    if not args.timeout > 0:
        ap.error(f"--timeout must be > 0, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    benches = select(args.only)
    if args.list:
        for b in QUICK:
            print(f"{b.name:12s} {b.script} {' '.join(b.args)}")
        for script, why in NOT_QUICK.items():
            print(f"{'(not run)':12s} {script}: {why}")
        return 0
    out = args.out.resolve()
    _check_out(out, args.force)
    if args.dry_run:
        for b in benches:
            print(" ".join(command(b, out)))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, ENV_RESULTS: str(out), "HF_HUB_OFFLINE": "1"}
    runs, failed = [], []
    for b in benches:
        cmd = command(b, out)
        print(f"[{b.name}] {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        with open(out / f"{b.name}.log", "w") as log:
            try:
                rc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=args.timeout
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        sec = time.perf_counter() - t0
        print(f"[{b.name}] exit {rc} after {sec:.0f} s", flush=True)
        runs.append({"name": b.name, "command": cmd, "exit": rc, "seconds": round(sec, 1)})
        if rc != 0:
            failed.append(b.name)
    manifest = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "load_average_at_end": os.getloadavg()[0],
        "runs": runs,
        "not_run": NOT_QUICK,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if failed:
        print(f"failed: {failed} (see {out}/<name>.log)")
        return 1
    print(f"all {len(runs)} benchmarks done; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
