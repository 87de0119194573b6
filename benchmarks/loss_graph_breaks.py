"""Graph breaks of each loss under ``torch.compile``, counted with ``torch._dynamo.explain``.

Command (from the repository root; writes ``results/loss_graph_breaks.csv``):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/loss_graph_breaks.py

Each loss is called on small inputs (forward only, the dynamo trace is what counts) and
``explain`` reports the graphs, the graph breaks and their reasons.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import torch._dynamo

from hypervldd.losses import (
    EntailmentConeLoss,
    FullDatasetRankAlignment,
    HyperbolicContrastiveLoss,
    RAHALoss,
)
from hypervldd.manifolds import Lorentz

OUT = Path(__file__).parent / "results" / "loss_graph_breaks.csv"


def cases() -> list[tuple[str, torch.nn.Module, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(0)
    m = Lorentz()
    feats = [torch.randn(16, 8, generator=g) for _ in range(4)]
    pts = [m.lift(f) for f in feats]
    real = [m.lift(torch.randn(64, 8, generator=g)) for _ in range(2)]
    return [
        ("HyperbolicContrastiveLoss(lorentz)", HyperbolicContrastiveLoss("lorentz"), feats[:2]),
        ("HyperbolicContrastiveLoss(poincare)", HyperbolicContrastiveLoss("poincare"), feats[:2]),
        (
            "HyperbolicContrastiveLoss(lorentz, entail_weight=0.2)",
            HyperbolicContrastiveLoss("lorentz", entail_weight=0.2),
            feats[:2],
        ),
        ("EntailmentConeLoss(lorentz)", EntailmentConeLoss("lorentz"), pts[:2]),
        (
            "FullDatasetRankAlignment(lorentz)",
            FullDatasetRankAlignment("lorentz"),
            (*pts[:2], *real),
        ),
        ("RAHALoss()", RAHALoss(), (*feats[2:], *feats[:2])),
    ]


def main() -> None:
    rows = []
    for name, loss, args in cases():
        torch._dynamo.reset()
        ex = torch._dynamo.explain(loss)(*args)
        reasons = sorted({str(b.reason).splitlines()[0][:100] for b in ex.break_reasons})
        rows.append(
            {
                "loss": name,
                "graphs": ex.graph_count,
                "graph_breaks": ex.graph_break_count,
                "reasons": " | ".join(reasons),
            }
        )
        print(
            f"{name:55s} graphs {ex.graph_count:2d}  breaks {ex.graph_break_count:2d}",
            rows[-1]["reasons"],
        )
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
