"""Weak scaling of the distributed full-dataset rank alignment on CPU processes (gloo).

Every rank holds ``--per-rank`` real pairs (so the real set grows with the number of
ranks), the ``M`` synthetic pairs and ``A`` anchors are replicated; one step is the
forward and backward of :class:`~hypervldd.losses.FullDatasetRankAlignment` with the
process group (the partial row statistics of the shards are combined by all-reduce) plus
the all-reduce of the synthetic gradients, as in the distillation engine. Perfect weak
scaling keeps the time per step constant while the real set grows ``W`` times.

Command (from the repository root; about 2 minutes on 2 cores)::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/distributed_scaling.py

Options: ``--worlds 1,2,3``, ``--per-rank 8192``, ``--m 100``, ``--anchors 256``,
``--dim 64``, ``--reps 5``. Each rank runs one intra-op thread. Results go to
``benchmarks/results/distributed_scaling.csv`` and are printed as a Markdown table; the
columns are the median step time (wall), the median CPU time of one rank's step
(process time: what the rank computes, whatever the cores are shared with), the median
time of the step's collectives alone (measured separately with the same shapes), the
payload all-reduced per step (the formula of ``docs/distributed.md``), and the
weak-scaling efficiency ``t(1) / t(W)`` of the wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import sys
import tempfile
import time

import torch
import torch.multiprocessing as mp

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def payload_floats(m: int, anchors: int, d_image: int, d_text: int) -> int:
    """Floats all-reduced per step: row statistics of both directions + synthetic grads."""
    queries = 2 * (m + anchors)  # image->text and text->image queries
    return queries + queries * (m + 1) + m * (d_image + d_text) + 1


def _worker(rank: int, world: int, port: int, args: dict, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    from hypervldd import distributed as hd
    from hypervldd.losses import FullDatasetRankAlignment
    from hypervldd.manifolds import lorentz_math

    group = None
    if world > 1:
        hd.init_from_env("gloo", timeout=600)
        group = torch.distributed.group.WORLD
    n, m, a, d = args["per_rank"], args["m"], args["anchors"], args["dim"]

    def lift(u: torch.Tensor) -> torch.Tensor:
        return lorentz_math.expmap0(torch.nn.functional.pad(u, (1, 0)), 1.0)

    g_real = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard
    real_i = lift(0.5 * torch.randn(n, d, generator=g_real))
    real_t = lift(0.5 * torch.randn(n, d, generator=g_real))
    g = torch.Generator().manual_seed(0)  # replicated synthetic set and anchors
    syn_i = (0.5 * torch.randn(m, d, generator=g)).requires_grad_(True)
    syn_t = (0.5 * torch.randn(m, d, generator=g)).requires_grad_(True)
    anc = (lift(0.5 * torch.randn(a, d, generator=g)), lift(0.5 * torch.randn(a, d, generator=g)))
    loss_fn = FullDatasetRankAlignment("lorentz", lift=False, process_group=group)

    def step() -> None:
        syn_i.grad = syn_t.grad = None
        loss = loss_fn(
            lift(syn_i),
            lift(syn_t),
            real_image=real_i,
            real_text=real_t,
            anchor_image=anc[0],
            anchor_text=anc[1],
        )
        loss.backward()
        if group is not None:
            hd.all_reduce_mean_([syn_i.grad, syn_t.grad], group)

    def comm() -> None:
        if group is None:
            return
        q = 2 * (m + a)
        hd.all_reduce_row_stats(torch.zeros(q), torch.zeros(q, m), group)
        hd.all_reduce_mean_([torch.zeros(m, d), torch.zeros(m, d)], group)

    times: dict[str, list[float]] = {"step": [], "comm": [], "cpu": []}
    for name, fn in (("step", step), ("comm", comm)):
        fn()  # warm-up
        for _ in range(args["reps"]):
            if group is not None:
                hd.barrier(group)  # start every rank's step together
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            if name == "step":
                times["cpu"].append(time.process_time() - c0)
    if rank == 0:
        with open(out, "w") as f:
            json.dump({k: statistics.median(v) for k, v in times.items()}, f)
    if group is not None:
        hd.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", default="1,2,3")
    p.add_argument("--per-rank", type=int, default=8192)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--anchors", type=int, default=256)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=os.path.join(RESULTS, "distributed_scaling.csv"))
    ns = p.parse_args(argv)
    worlds = [int(w) for w in ns.worlds.split(",")]
    args = {
        "per_rank": ns.per_rank,
        "m": ns.m,
        "anchors": ns.anchors,
        "dim": ns.dim,
        "reps": ns.reps,
    }
    floats = payload_floats(ns.m, ns.anchors, ns.dim, ns.dim)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w in worlds:
            out = os.path.join(tmp, f"w{w}.json")
            mp.start_processes(
                _worker, args=(w, _free_port(), args, out), nprocs=w, start_method="spawn"
            )
            with open(out) as f:
                r = json.load(f)
            rows.append(
                {
                    "world": w,
                    "real_pairs": w * ns.per_rank,
                    "per_rank": ns.per_rank,
                    "m": ns.m,
                    "anchors": ns.anchors,
                    "dim": ns.dim,
                    "step_s": round(r["step"], 4),
                    "cpu_s": round(r["cpu"], 4),
                    "comm_s": round(r["comm"], 5) if w > 1 else 0.0,
                    "payload_kb": round(4 * floats / 1024, 1) if w > 1 else 0.0,
                    "sent_per_rank_kb": round(4 * floats * 2 * (w - 1) / w / 1024, 1),
                }
            )
            print(f"W={w}: {rows[-1]}", file=sys.stderr)
    t1 = next((r["step_s"] for r in rows if r["world"] == 1), None)
    for r in rows:
        r["efficiency"] = round(t1 / r["step_s"], 3) if t1 else ""
    os.makedirs(os.path.dirname(os.path.abspath(ns.out)), exist_ok=True)
    with open(ns.out, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    print(
        "| ranks | real pairs | step (s) | CPU s / rank | collectives (s) | payload (KB)"
        " | efficiency |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['world']} | {r['real_pairs']} | {r['step_s']:.3f} | {r['cpu_s']:.3f} |"
            f" {r['comm_s']:.4f} | {r['payload_kb']} | {r['efficiency']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
