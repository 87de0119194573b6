"""WordNet mammals: hierarchy embeddings in Poincaré, Lorentz and Euclidean space.

Reproduces the reconstruction experiment of Nickel & Kiela (NeurIPS 2017,
"Poincaré Embeddings for Learning Hierarchical Representations"; ICML 2018,
"Learning Continuous Hierarchies in the Lorentz Model of Hyperbolic Geometry")
on the transitive closure of the hyponyms of ``mammal.n.01``, read from Debian's
``wordnet-base``. Writes ``benchmarks/results/wordnet.csv`` (one row per run) and
``benchmarks/results/wordnet_history.json`` (MAP per evaluated epoch).

Usage::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wordnet.py --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _run(job: dict) -> dict:
    torch.set_num_threads(1)
    from hypervldd.hierarchy import EmbedConfig, train_embedding, transitive_closure

    h = transitive_closure(job["root"])
    cfg = EmbedConfig(
        manifold=job["manifold"],
        dim=job["dim"],
        optimizer=job["optimizer"],
        epochs=job["epochs"],
        batch_size=job["batch_size"],
        negatives=job["negatives"],
        lr=job["lr"],
        burnin_epochs=job["burnin_epochs"],
        eval_every=job["eval_every"],
        seed=job["seed"],
        dtype=torch.float64 if job["dtype"] == "float64" else torch.float32,
    )
    t0 = time.perf_counter()
    tag = f"{job['manifold']}-{job['dim']}"

    def progress(epoch: int, rec: object, loss: float) -> None:
        if rec is not None:
            print(
                f"  {tag} epoch {epoch}: loss {loss:.4f}, MAP {rec.map:.4f}, "
                f"rank {rec.mean_rank:.2f}, {time.perf_counter() - t0:.0f}s",
                flush=True,
            )

    res = train_embedding(h, cfg, progress=progress)
    wall = time.perf_counter() - t0
    row = dict(job)
    row.update(
        nodes=h.num_nodes,
        edges=len(h.edges),
        mean_rank=round(res.final.mean_rank, 3),
        map=round(res.final.map, 4),
        best_map=round(max(m for _, _, m, _ in res.history), 4),
        train_seconds=round(res.train_seconds, 1),
        wall_seconds=round(wall, 1),
    )
    for target in job["targets"]:
        row[f"epochs_to_map_{target}"] = res.first_epoch_reaching(target)
    row["history"] = [(e, round(r, 3), round(m, 4), round(s, 1)) for e, r, m, s in res.history]
    print(
        f"{row['manifold']:>9} d={row['dim']:<3} MAP={row['map']:.4f} rank={row['mean_rank']:.2f} "
        f"train={row['train_seconds']}s",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default="mammal.n.01")
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10])
    ap.add_argument("--manifolds", nargs="+", default=["poincare", "lorentz", "euclidean"])
    ap.add_argument("--optimizer", default="radam", choices=["rsgd", "radam"])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--negatives", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--burnin-epochs", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.85])
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one thread each)")
    ap.add_argument("--out", type=Path, default=RESULTS / "wordnet.csv")
    args = ap.parse_args(argv)

    jobs = [
        dict(
            root=args.root,
            manifold=m,
            dim=d,
            optimizer=args.optimizer,
            epochs=args.epochs,
            batch_size=args.batch_size,
            negatives=args.negatives,
            lr=args.lr,
            burnin_epochs=args.burnin_epochs,
            eval_every=args.eval_every,
            seed=args.seed,
            dtype=args.dtype,
            targets=args.targets,
        )
        for d in args.dims
        for m in args.manifolds
    ]
    if args.jobs > 1:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(_run, jobs, chunksize=1)
    else:
        rows = [_run(j) for j in jobs]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    history = {f"{r['manifold']}-{r['dim']}": r.pop("history") for r in rows}
    for r in rows:
        r.pop("targets")
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    meta = dict(
        command="HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wordnet.py " + " ".join(sys.argv[1:]),
        torch=torch.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        history_columns=["epoch", "mean_rank", "map", "train_seconds"],
        history=history,
    )
    hist_path = args.out.with_name(args.out.stem + "_history.json")
    hist_path.write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.out} and {hist_path}")


if __name__ == "__main__":
    main()
