"""A comparison's rows and tables: ``CompareRow``, ``CompareResult``, the written files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CompareRow:
    """One line of a comparison: a method at a budget, scored over student seeds."""

    method: str
    budget: int | None
    storage_floats: int | None
    metrics_mean: dict[str, float]
    metrics_std: dict[str, float]
    distill_seconds: float
    eval_seconds: float
    #: evaluation beyond recall (``hypervldd.eval.extras``); empty unless asked for
    extras: dict[str, Any] = field(default_factory=dict)
    #: the validation-best step a ``keep_best`` run returned (``{"step", "metric", "value"}``)
    selected: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "method": self.method,
            "budget": self.budget,
            "storage_floats": self.storage_floats,
            "mean": self.metrics_mean,
            "std": self.metrics_std,
            "distill_seconds": self.distill_seconds,
            "eval_seconds": self.eval_seconds,
        }
        if self.extras:
            out["extras"] = self.extras
        if self.selected:
            out["selected"] = self.selected
        return out


@dataclass
class CompareResult:
    """All rows of a comparison plus the protocol and data they share."""

    rows: list[CompareRow]
    protocol: dict[str, Any]
    selection: str
    dataset: dict[str, Any] = field(default_factory=dict)
    #: the ``EvalExtras`` dict when any measure beyond recall ran, else None
    extras_config: dict[str, Any] | None = None

    def markdown(self) -> str:
        keys = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "mean")
        head = "| method | pairs | " + " | ".join(keys) + " | distil s |"
        lines = [head, "|" + "---|" * (len(keys) + 3)]
        for r in self.rows:
            cells = []
            for k in keys:
                m, s = r.metrics_mean.get(k), r.metrics_std.get(k)
                cells.append("-" if m is None else f"{m:.1f} ± {s:.1f}")
            pairs = "all" if r.budget is None else str(r.budget)
            lines.append(
                f"| {r.method} | {pairs} | " + " | ".join(cells) + f" | {r.distill_seconds:.1f} |"
            )
        lines.append("")
        lines.append(
            f"Recall in %, mean ± std over {len(self.protocol.get('seeds', []))} student seeds; "
            f"checkpoint: {self.selection}."
        )
        if any(r.extras for r in self.rows):
            lines += ["", self._extras_markdown()]
        return "\n".join(lines)

    def _extras_markdown(self) -> str:
        from ..eval.extras import extras_columns, extras_markdown

        k = int((self.extras_config or {}).get("top_k", 10))
        table = [
            (r.method, "all" if r.budget is None else str(r.budget), extras_columns(r.extras, k))
            for r in self.rows
        ]
        return (
            "Beyond recall (docs/evaluation.md): fidelity with the full data (fid: trained "
            "students; data: pair-bridge orderings per geometry), transfer mean recall over "
            "the other student configurations, recall drop under perturbations (points), "
            "zero-shot top-1 accuracy (%).\n\n" + extras_markdown(table)
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "protocol": self.protocol,
                "selection": self.selection,
                "dataset": self.dataset,
                "rows": [r.as_dict() for r in self.rows],
                **({"extras_config": self.extras_config} if self.extras_config else {}),
            },
            indent=2,
            allow_nan=False,
        )


def _result_stats(result: Any) -> tuple[dict[str, float], dict[str, float]]:
    d = result.to_dict()
    return dict(d["mean"]), dict(d["std"])


def _write_compare(result: CompareResult, out: Path, *, plot: bool = True) -> None:
    from ..data._io import atomic_path, atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.md", (result.markdown() + "\n").encode())
    atomic_write_bytes(out / "results.json", (result.to_json() + "\n").encode())
    if not plot:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is optional (the dev extra installs matplotlib)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    methods = sorted({r.method for r in result.rows if r.budget is not None})
    for m in methods:
        pts = sorted((r.budget, r.metrics_mean["mean"]) for r in result.rows if r.method == m)
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    full = [r for r in result.rows if r.budget is None]
    if full:
        ax1.axhline(full[0].metrics_mean["mean"], color="k", ls="--", label="full data")
    ax1.set_xscale("log")
    ax1.set_xlabel("synthetic pairs")
    ax1.set_ylabel("mean recall (%)")
    ax1.legend(fontsize=7)
    secs = [
        sum(r.distill_seconds for r in result.rows if r.method == m)
        / max(1, sum(1 for r in result.rows if r.method == m))
        for m in methods
    ]
    ax2.bar(methods, secs)
    ax2.set_ylabel("distillation time per run (s)")
    ax2.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    with atomic_path(out / "recall_vs_budget.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
