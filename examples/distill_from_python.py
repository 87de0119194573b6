"""Distillation and evaluation from Python through the top-level API.

``hypervldd.prepare`` encodes a dataset with frozen encoders (cached);
``hypervldd.distill`` turns the training features into a budget of synthetic pairs;
``hypervldd.evaluate`` trains the protocol's students on them and reports retrieval
recall; ``hypervldd.compare`` does both for several methods; ``hypervldd.inspect``
describes a saved set. The same functions run behind the ``hypervldd`` command line.

    python examples/distill_from_python.py --dataset emoji --out runs/py   # real data
    python examples/distill_from_python.py --smoke                         # made-up features
"""

import argparse
import tempfile
from pathlib import Path

import torch

import hypervldd
from hypervldd.data import PairedFeatures
from hypervldd.eval import EvalProtocol, StudentConfig


def made_up_split(n: int, seed: int) -> PairedFeatures:
    """Two captions per image; image and text features are views of 6 topics."""
    g = torch.Generator().manual_seed(seed)
    topics = 3 * torch.randn(6, 16, generator=torch.Generator().manual_seed(1))
    z = topics[torch.randint(6, (n,), generator=g)] + torch.randn(n, 16, generator=g)
    t2i = torch.arange(n).repeat_interleave(2)
    image = z @ torch.randn(16, 48, generator=torch.Generator().manual_seed(2))
    text = (z[t2i] + 0.3 * torch.randn(2 * n, 16, generator=g)) @ torch.randn(
        16, 24, generator=torch.Generator().manual_seed(3)
    )
    return PairedFeatures(
        image,
        text,
        t2i,
        [f"img{i}" for i in range(n)],
        [f"caption {j} of img{int(i)}" for j, i in enumerate(t2i)],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", help="a dataset for hypervldd.prepare (else made-up features)")
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--out", type=Path, help="folder for the artifact and the comparison")
    ap.add_argument("--smoke", action="store_true", help="tiny features, 2 epochs, 1 seed")
    args = ap.parse_args()
    if args.dataset:
        feats = hypervldd.prepare(args.dataset, splits=("train", "test"))
    else:
        n = 60 if args.smoke else 400
        feats = {"train": made_up_split(n, 0), "test": made_up_split(n // 2, 1)}
    epochs, seeds = (2, (0,)) if args.smoke else (30, (0, 1, 2))
    protocol = EvalProtocol(
        epochs=epochs,
        seeds=seeds,
        lr_decay_epochs=(epochs,),
        student=StudentConfig(geometry="lorentz", width=16),
    )
    budget = 6 if args.smoke else args.budget
    with tempfile.TemporaryDirectory() as tmp:  # without --out nothing is kept
        run(feats, protocol, budget, args.out or Path(tmp))


def run(feats: dict, protocol: EvalProtocol, budget: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    syn = hypervldd.distill(feats["train"], "herding", budget, out=out / "herding.safetensors")
    result = hypervldd.evaluate(syn, feats["test"], protocol)
    print(f"herding, {syn.num_pairs} pairs:\n{result.summary()}")

    table = hypervldd.compare(
        feats,
        ["random", "herding"],
        [budget],
        protocol=protocol,
        references=False,
        out_dir=out / "compare",
    )
    print(table.markdown())
    info = hypervldd.inspect(out / "herding.safetensors", feats["train"], k=2)
    print("nearest real captions of synthetic pair 0:", info["nearest_captions"][0])
    assert info["pairs"] == budget and (out / "compare" / "results.json").is_file()


if __name__ == "__main__":
    main()
