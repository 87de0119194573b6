"""The main job as functions: prepare features, distil, evaluate, compare, inspect.

The command line (:mod:`hypervldd.cli`) and ``hypervldd demo`` are thin layers
over these. Everything works on the frozen-encoder feature protocol: a dataset
is encoded once (cached, keyed by data + encoder fingerprints), methods distil
the training split's features into a budget of synthetic pairs, and every
synthetic set is scored by the same versioned :class:`~hypervldd.eval.EvalProtocol`.
"""

from __future__ import annotations

import inspect as _inspect
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "build_encoders",
    "prepare",
    "distill",
    "evaluate_set",
    "compare",
    "CompareRow",
    "CompareResult",
    "inspect_artifact",
]

#: Image encoders available offline by name.
IMAGE_ENCODERS = ("efficientnet-lite0",)
#: Text encoders available offline by name.
TEXT_ENCODERS = ("minilm-l6-v2",)


class PipelineError(ValueError):
    """A user-facing failure of the pipeline (bad argument, missing file)."""


def build_encoders(
    image: str = "efficientnet-lite0",
    text: str = "minilm-l6-v2",
    *,
    open_clip_checkpoint: str | os.PathLike | None = None,
) -> tuple[Any, Any]:
    """Image and text encoders by name.

    ``image``/``text`` are names from :data:`IMAGE_ENCODERS`/:data:`TEXT_ENCODERS`,
    or ``"open_clip:<architecture>"`` (both towers of an open_clip model whose
    weights come from ``open_clip_checkpoint``, a local file: nothing downloads).
    """
    from . import data

    if image.startswith("open_clip:") or text.startswith("open_clip:"):
        arch = (image if image.startswith("open_clip:") else text).split(":", 1)[1]
        if open_clip_checkpoint is None:
            raise PipelineError(
                f"open_clip:{arch} needs a local checkpoint file (--open-clip-checkpoint); "
                "nothing is downloaded at run time"
            )
        img_enc, txt_enc = data.load_open_clip(arch, open_clip_checkpoint)
        if not image.startswith("open_clip:"):
            img_enc = build_encoders(image, TEXT_ENCODERS[0])[0]
        if not text.startswith("open_clip:"):
            txt_enc = build_encoders(IMAGE_ENCODERS[0], text)[1]
        return img_enc, txt_enc
    if image not in IMAGE_ENCODERS:
        raise PipelineError(f"image encoder must be one of {IMAGE_ENCODERS} or open_clip:<arch>")
    if text not in TEXT_ENCODERS:
        raise PipelineError(f"text encoder must be one of {TEXT_ENCODERS} or open_clip:<arch>")
    return data.efficientnet_lite0(), data.minilm_l6_v2()


def _load_dataset(
    dataset: Any, limit: int | None, progress: bool, image_root: str | os.PathLike | None = None
) -> Any:
    from . import data

    if isinstance(dataset, data.PairedDataset):
        return dataset
    name = str(dataset)
    if name in data.BUILTIN_DATASETS:
        kwargs: dict[str, Any] = {"limit": limit}
        if name == "emoji":
            kwargs["progress"] = progress
        return data.load_dataset(name, **kwargs)
    path = Path(name)
    if path.suffix.lower() == ".json" and path.is_file():
        if image_root is None:
            raise PipelineError(
                f"dataset {name!r} is a Karpathy-style JSON: give its image folder (--image-root)"
            )
        return data.load_karpathy_json(path, image_root)
    if path.suffix.lower() in {".csv", ".jsonl"} and path.is_file():
        return data.load_caption_table(path, image_root=image_root)
    raise PipelineError(
        f"dataset must be one of {data.BUILTIN_DATASETS}, a Karpathy-style .json or a "
        f".csv/.jsonl caption table; got {name!r}"
    )


def prepare(
    dataset: Any = "emoji",
    *,
    image_encoder: str = "efficientnet-lite0",
    text_encoder: str = "minilm-l6-v2",
    splits: Sequence[str] = ("train", "val", "test"),
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    open_clip_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    image_root: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Encode the requested splits of a dataset (cached): ``{split: PairedFeatures}``.

    ``image_root`` is the image folder of a Karpathy JSON or a caption table.
    """
    from . import data

    ds = _load_dataset(dataset, limit, progress, image_root)
    img_enc, txt_enc = build_encoders(
        image_encoder, text_encoder, open_clip_checkpoint=open_clip_checkpoint
    )
    missing = [s for s in splits if s not in ds.splits]
    if missing:
        raise PipelineError(f"splits {missing} are not in the dataset (it has {list(ds.splits)})")
    return {
        s: data.extract_features(ds, s, img_enc, txt_enc, cache_dir, progress=progress)
        for s in splits
    }


def _fit_kwargs(distiller: Any, **candidates: Any) -> dict[str, Any]:
    """The subset of ``candidates`` that the method's ``_fit`` accepts."""
    params = _inspect.signature(distiller._fit).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def distill(
    real: Any,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Any:
    """Distil ``real`` features into ``budget`` pairs with ``method``; save to ``out`` if given."""
    from .distill import get_distiller

    distiller = get_distiller(method, dict(config or {}))
    kwargs = _fit_kwargs(
        distiller, checkpoint_dir=checkpoint_dir, resume=resume or None, progress=progress
    )
    synthetic = distiller.fit(real, budget, seed, **kwargs)
    if out is not None:
        synthetic.save(out)
    return synthetic


def evaluate_set(train: Any, test: Any, protocol: Any = None, *, val: Any = None) -> Any:
    """Score a synthetic set (or real features) under ``protocol``; returns the eval Result."""
    from .eval import EvalProtocol, evaluate

    protocol = protocol or EvalProtocol()
    # Validation features matter only for validation-selected checkpoints.
    if getattr(protocol, "selection", "final") != "validation":
        val = None
    return evaluate(train, test, protocol, val_features=val)


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "budget": self.budget,
            "storage_floats": self.storage_floats,
            "mean": self.metrics_mean,
            "std": self.metrics_std,
            "distill_seconds": self.distill_seconds,
            "eval_seconds": self.eval_seconds,
        }


@dataclass
class CompareResult:
    """All rows of a comparison plus the protocol and data they share."""

    rows: list[CompareRow]
    protocol: dict[str, Any]
    selection: str
    dataset: dict[str, Any] = field(default_factory=dict)

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
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "protocol": self.protocol,
                "selection": self.selection,
                "dataset": self.dataset,
                "rows": [r.as_dict() for r in self.rows],
            },
            indent=2,
            allow_nan=False,
        )


def _result_stats(result: Any) -> tuple[dict[str, float], dict[str, float]]:
    d = result.to_dict()
    return dict(d["mean"]), dict(d["std"])


def compare(
    features: dict[str, Any],
    methods: Sequence[str],
    budgets: Sequence[int],
    *,
    protocol: Any = None,
    seed: int = 0,
    references: bool = True,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    method_configs: dict[str, dict[str, Any]] | None = None,
    log: Any = None,
) -> CompareResult:
    """Distil with each method at each budget and score all under one protocol.

    ``features`` maps split names to features; ``"train"`` and ``"test"`` are
    required, ``"val"`` is used when the protocol selects on validation. With
    ``references`` the full training data is scored too (the upper reference).
    ``method_configs`` maps a method to its config overrides; ``log`` (e.g.
    ``print``) receives a line per finished row.
    Writes ``results.md``, ``results.json`` and ``recall_vs_budget.png`` to
    ``out_dir`` when given.
    """
    from .eval import EvalProtocol

    if "train" not in features or "test" not in features:
        raise PipelineError("features must contain the 'train' and 'test' splits")
    protocol = protocol or EvalProtocol()
    train, test, val = features["train"], features["test"], features.get("val")
    rows: list[CompareRow] = []
    selection = str(getattr(protocol, "selection_label", protocol.selection))
    if references:
        t0 = time.perf_counter()
        res = evaluate_set(train, test, protocol, val=val)
        mean, std = _result_stats(res)
        rows.append(CompareRow("full data", None, None, mean, std, 0.0, time.perf_counter() - t0))
        if log:
            log(f"full data: mean recall {mean['mean']:.1f} ({time.perf_counter() - t0:.0f} s)")
    for budget in budgets:
        for method in methods:
            t0 = time.perf_counter()
            cfg = (method_configs or {}).get(method)
            synthetic = distill(
                train, method, int(budget), seed=seed, config=cfg, progress=progress
            )
            t1 = time.perf_counter()
            res = evaluate_set(synthetic, test, protocol, val=val)
            mean, std = _result_stats(res)
            rows.append(
                CompareRow(
                    method,
                    int(budget),
                    int(synthetic.storage_floats()),
                    mean,
                    std,
                    t1 - t0,
                    time.perf_counter() - t1,
                )
            )
            if log:
                log(
                    f"{method} @ {budget}: mean recall {mean['mean']:.1f} "
                    f"(distil {t1 - t0:.0f} s, evaluate {time.perf_counter() - t1:.0f} s)"
                )
    meta = {}
    md = getattr(train, "metadata", None)
    if isinstance(md, dict):
        meta = {k: md[k] for k in ("dataset", "split", "fingerprint") if k in md}
    result = CompareResult(rows, protocol.to_dict(), selection, meta)
    if out_dir is not None:
        _write_compare(result, Path(out_dir))
    return result


def _write_compare(result: CompareResult, out: Path) -> None:
    from .data._io import atomic_path, atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.md", (result.markdown() + "\n").encode())
    atomic_write_bytes(out / "results.json", (result.to_json() + "\n").encode())
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


def inspect_artifact(
    path: str | os.PathLike,
    real: Any = None,
    *,
    k: int = 3,
    grid_png: str | os.PathLike | None = None,
    dataset: Any = None,
) -> dict[str, Any]:
    """Manifest, budget and, with real features, the nearest real captions of each synthetic text.

    With ``grid_png`` and the dataset, also writes a PNG grid of the nearest real
    image of each synthetic image feature (feature-space sets have no pixels).
    """
    from .distill import SyntheticSet

    syn = SyntheticSet.load(path)
    info: dict[str, Any] = {
        "manifest": syn.manifest(),
        "pairs": syn.num_pairs,
        "storage_floats": syn.storage_floats(),
    }
    if real is None:
        return info
    txt = torch.nn.functional.normalize(real.text_features.float(), dim=-1)
    img = torch.nn.functional.normalize(real.image_features.float(), dim=-1)
    syn_txt = torch.nn.functional.normalize(syn.text.float(), dim=-1)
    syn_img = torch.nn.functional.normalize(syn.image.float(), dim=-1)
    if syn_txt.shape[-1] != txt.shape[-1] or syn_img.shape[-1] != img.shape[-1]:
        raise PipelineError("the artifact's feature dimensions do not match the real features")
    kk = min(k, txt.shape[0])
    near_txt = (syn_txt @ txt.T).topk(kk, dim=-1).indices
    info["nearest_captions"] = [[real.captions[int(j)] for j in row] for row in near_txt]
    near_img = (syn_img @ img.T).argmax(dim=-1)
    info["nearest_images"] = [real.image_ids[int(j)] for j in near_img]
    if grid_png is not None and dataset is not None:
        _image_grid(dataset, real, near_img.tolist(), Path(grid_png))
        info["grid_png"] = str(grid_png)
    return info


def _image_grid(dataset: Any, real: Any, indices: list[int], out: Path) -> None:
    from PIL import Image

    from .data._io import atomic_path

    split = real.metadata.get("split", "train") if isinstance(real.metadata, dict) else "train"
    images = [dataset.split(split).load_image(int(i)) for i in indices]
    side = 64
    cols = max(1, int(math.ceil(math.sqrt(len(images)))))
    rows = max(1, int(math.ceil(len(images) / cols)))
    canvas = Image.new("RGB", (cols * side, rows * side), "white")
    for n, im in enumerate(images):
        canvas.paste(
            im.convert("RGB").resize((side, side)), ((n % cols) * side, (n // cols) * side)
        )
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")
