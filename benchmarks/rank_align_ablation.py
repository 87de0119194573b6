"""One cell of the rank-alignment ablation: distil emoji, score it on the validation split.

Command (from the repository root; needs the built-in emoji data, see DEVELOPERS.md):

    OMP_NUM_THREADS=1 python benchmarks/rank_align_ablation.py NAME \
        --config '{"embedding": "online", "engine": {"iterations": 200}}' \
        [--method rank_align] [--budget 100] [--seed 0] [--dataset emoji]

Distils the training split into ``budget`` pairs with ``method`` (its defaults plus
``--config``), then scores the set on the **validation** split under the default protocol
(5 student seeds, final epoch): mean recall, its std over the student seeds. The test split
is never read: these runs choose settings. Writes
``benchmarks/results/rank_align_ablation/NAME.json`` (refuses to overwrite an existing
file). ``--measure-pass`` instead times, interleaved in one process, one full pass of the
real set through a fresh student (what ``embedding="online"`` adds per step) against one
forward+backward of the alignment loss at ``budget`` pairs with 256 anchors.

``--dataset DIR/dataset.json --image-root DIR/images`` reads a Karpathy JSON (e.g. the one
``benchmarks/write_karpathy_fashion_mnist.py`` writes) through the generic Karpathy loader.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hypervldd.eval import EvalProtocol
from hypervldd.pipeline import distill, evaluate_set, prepare

OUT = Path(__file__).resolve().parent / "results" / "rank_align_ablation"


def _features(dataset: str, image_root: str | None) -> dict:
    return prepare(dataset, progress=False, image_root=image_root)


def _measure_pass(feats: dict, budget: int, reps: int) -> dict:
    from hypervldd.distill.base import prepare_real
    from hypervldd.eval.protocol import StudentConfig
    from hypervldd.eval.student import Student
    from hypervldd.losses import FullDatasetRankAlignment

    data = prepare_real(feats["train"])
    gen = torch.Generator().manual_seed(0)
    st = Student(data.pair_image.shape[1], data.pair_text.shape[1], StudentConfig(), gen)
    images, inverse = torch.unique(data.pair_group, return_inverse=True)
    with torch.no_grad():
        real_i = st.encode_image(data.features.image[images].float())[inverse]
        real_t = st.encode_text(data.pair_text)
    idx = torch.randperm(data.num_pairs, generator=gen)
    syn_src, anc = idx[:budget], idx[budget : budget + 256]
    align = FullDatasetRankAlignment("lorentz", lift=False)
    syn_i = data.pair_image[syn_src].clone().requires_grad_(True)
    syn_t = data.pair_text[syn_src].clone().requires_grad_(True)

    def full_pass() -> None:
        with torch.no_grad():
            st.encode_image(data.features.image[images].float())[inverse]
            st.encode_text(data.pair_text)

    def loss_step() -> None:
        si, stx = st.encode_image(syn_i), st.encode_text(syn_t)
        align(
            si, stx, real_image=real_i, real_text=real_t,
            anchor_image=real_i[anc], anchor_text=real_t[anc],
        ).backward()  # fmt: skip

    times: dict[str, list[float]] = {"pass": [], "loss": []}
    for _ in range(reps):  # interleaved: the machine is shared and noisy
        for name, fn in (("pass", full_pass), ("loss", loss_step)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "pairs": data.num_pairs,
        "images": int(images.numel()),
        "pass_seconds_median": round(med["pass"], 4),
        "loss_step_seconds_median": round(med["loss"], 4),
        "pass_over_loss": round(med["pass"] / med["loss"], 3),
        "reps": reps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--method", default="rank_align")
    ap.add_argument("--config", type=json.loads, default={}, help="method config (JSON)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="distillation seed")
    ap.add_argument("--dataset", default="emoji")
    ap.add_argument("--image-root", default=None, help="image folder of a Karpathy JSON")
    ap.add_argument("--measure-pass", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    out = OUT / f"{args.name}.json"
    if out.exists():
        raise SystemExit(f"{out} exists: choose another NAME or remove it first")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    feats = _features(args.dataset, args.image_root)
    record: dict = {"name": args.name, "dataset": args.dataset, "budget": args.budget}
    if args.measure_pass:
        record["measure_pass"] = _measure_pass(feats, args.budget, args.reps)
    else:
        t0 = time.perf_counter()
        syn = distill(feats["train"], args.method, args.budget, seed=args.seed, config=args.config)
        seconds = time.perf_counter() - t0
        val = evaluate_set(syn, feats["val"], EvalProtocol())
        record.update(
            method=args.method,
            seed=args.seed,
            config=args.config,
            resolved_config=syn.config,
            distil_seconds=round(seconds, 1),
            val_mean=round(val.mean["mean"], 2),
            val_std_student_seeds=round(val.std["mean"], 2),
        )
    record["command"] = (
        "OMP_NUM_THREADS=1 python benchmarks/rank_align_ablation.py "
        + " ".join(
            [args.name, "--method", args.method, "--budget", str(args.budget), "--seed",
             str(args.seed), "--dataset", args.dataset, "--config", f"'{json.dumps(args.config)}'"]
            + (["--image-root", args.image_root] if args.image_root else [])
            + (["--measure-pass", "--reps", str(args.reps)] if args.measure_pass else [])
        )
    )  # fmt: skip
    text = json.dumps(record)
    print(text)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
