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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._device import resolve_device

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "build_encoders",
    "prepare",
    "distill",
    "validation_scorer",
    "wants_validation",
    "describe_selection",
    "evaluate_set",
    "compare",
    "CompareRow",
    "CompareResult",
    "inspect_artifact",
    "PIXEL_METHODS",
    "pixel_split",
    "distill_pixels",
    "compare_pixels",
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
    timm_checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    device: str | torch.device | None = "cpu",
) -> tuple[Any, Any]:
    """Image and text encoders by name, on ``device`` (``None``: CUDA when available).

    ``image``/``text`` are names from :data:`IMAGE_ENCODERS`/:data:`TEXT_ENCODERS`,
    or ``"open_clip:<architecture>"`` (both towers of an open_clip model whose
    weights come from ``open_clip_checkpoint``, a local file: nothing downloads),
    ``"timm:<name>"`` (weights from ``timm_checkpoint``) or ``"hf:<folder>"``
    (see :mod:`hypervldd.data.encoder_specs`). ``progress=False`` silences the
    loading bars of third-party libraries.
    """
    from . import data
    from .data.encoder_specs import build_encoder_pair, third_party_progress

    device = resolve_device(device)
    if any(x.startswith(("timm:", "hf:")) for x in (image, text)):
        try:
            return build_encoder_pair(
                image,
                text,
                open_clip_checkpoint=open_clip_checkpoint,
                timm_checkpoint=timm_checkpoint,
                progress=progress,
                device=device,
            )
        except ValueError as err:
            raise PipelineError(str(err)) from err
    if not progress:
        with third_party_progress(False):
            return build_encoders(
                image, text, open_clip_checkpoint=open_clip_checkpoint, device=device
            )

    if image.startswith("open_clip:") or text.startswith("open_clip:"):
        arch = (image if image.startswith("open_clip:") else text).split(":", 1)[1]
        if open_clip_checkpoint is None:
            raise PipelineError(
                f"open_clip:{arch} needs a local checkpoint file (--open-clip-checkpoint); "
                "nothing is downloaded at run time"
            )
        img_enc, txt_enc = data.load_open_clip(arch, open_clip_checkpoint, device=device)
        if not image.startswith("open_clip:"):
            img_enc = build_encoders(image, TEXT_ENCODERS[0], device=device)[0]
        if not text.startswith("open_clip:"):
            txt_enc = build_encoders(IMAGE_ENCODERS[0], text, device=device)[1]
        return img_enc, txt_enc
    if image not in IMAGE_ENCODERS:
        raise PipelineError(f"image encoder must be one of {IMAGE_ENCODERS} or open_clip:<arch>")
    if text not in TEXT_ENCODERS:
        raise PipelineError(f"text encoder must be one of {TEXT_ENCODERS} or open_clip:<arch>")
    return data.efficientnet_lite0(device=device), data.minilm_l6_v2(device=device)


def _load_dataset(
    dataset: Any,
    limit: int | None,
    progress: bool,
    image_root: str | os.PathLike | None = None,
    options: Any = None,
) -> Any:
    """The dataset ``--dataset`` names (see :mod:`hypervldd.data.sources`), limited and split.

    ``options`` (a :class:`~hypervldd.data.sources.DatasetOptions`) carries column names
    and ``split_ratios``; ``limit``, ``progress`` and a given ``image_root`` override it.
    """
    from dataclasses import replace

    from .data.sources import DatasetOptions, open_dataset

    opts = replace(options or DatasetOptions(), limit=limit, progress=progress)
    if image_root is not None:
        opts = replace(opts, image_root=image_root)
    try:
        return open_dataset(dataset, opts)
    except PipelineError:
        raise
    except ValueError as err:
        raise PipelineError(str(err)) from err


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
    dataset_options: Any = None,
    timm_checkpoint: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Encode the requested splits of a dataset (cached): ``{split: PairedFeatures}``.

    ``image_root`` is the image folder of a Karpathy JSON or a caption table;
    ``dataset_options`` (:class:`~hypervldd.data.sources.DatasetOptions`) the column
    names and split ratios of the other formats. The encoders run on ``device``
    (``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: CUDA when available, else the CPU);
    the features come back on the CPU.
    """
    from . import data

    device = resolve_device(device)  # before any work: a bad device fails at once
    ds = _load_dataset(dataset, limit, progress, image_root, dataset_options)
    missing = [s for s in splits if s not in ds.splits]
    if missing:
        hint = " (assign them with --split-ratios 0.8,0.1,0.1)" if len(ds.splits) == 1 else ""
        raise PipelineError(
            f"splits {missing} are not in the dataset (it has {list(ds.splits)}){hint}"
        )
    from .data.encoder_specs import third_party_progress

    # The memoised encoders are built when they first encode (a cache miss): keep the
    # libraries' loading bars off until the features are out when progress is off.
    with third_party_progress(progress):
        if image_encoder in IMAGE_ENCODERS and text_encoder in TEXT_ENCODERS:
            # Known by their recorded fingerprints: a warm cache builds no encoder.
            from .data.encoder_memo import builtin_encoders

            img_enc, txt_enc = builtin_encoders(cache_dir, device=device)
        else:
            img_enc, txt_enc = build_encoders(
                image_encoder,
                text_encoder,
                open_clip_checkpoint=open_clip_checkpoint,
                timm_checkpoint=timm_checkpoint,
                progress=progress,
                device=device,
            )
        return {
            s: data.extract_features(ds, s, img_enc, txt_enc, cache_dir, progress=progress)
            for s in splits
        }


def _fit_kwargs(distiller: Any, **candidates: Any) -> dict[str, Any]:
    """The subset of ``candidates`` that the method's ``_fit`` accepts."""
    params = _inspect.signature(distiller._fit).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def validation_scorer(val: Any, protocol: Any = None, *, seeds: int = 1) -> Any:
    """``score(synthetic_set, step) -> metrics``: recall on the validation split.

    Trains the protocol's student with its first ``seeds`` seeds (final epoch) on the
    set and returns the mean metrics (``"mean"`` is the mean recall, in %) on ``val``.
    This is the ``validate`` callback of the gradient methods' engine
    (``engine.validate_every``, ``engine.keep_best``); the test split is never read.
    """
    from .eval import EvalProtocol, evaluate

    protocol = protocol or EvalProtocol()
    if int(seeds) < 1:
        raise PipelineError(f"seeds must be >= 1, got {seeds}")
    proto = protocol.replace(seeds=tuple(protocol.seeds[: int(seeds)]), selection="final")

    def score(synthetic: Any, step: int) -> dict[str, float]:
        return dict(evaluate(synthetic, val, proto).mean)

    return score


def _validating_engine(distiller: Any) -> Any:
    """The method's ``EngineConfig`` if it sets ``validate_every``, else ``None``."""
    eng = getattr(getattr(distiller, "config", None), "engine", None)
    return eng if eng is not None and int(getattr(eng, "validate_every", 0)) > 0 else None


def wants_validation(method: str, config: dict[str, Any] | None = None) -> bool:
    """Whether ``method`` with ``config`` validates during distillation (needs a val split)."""
    from .distill import get_distiller

    return _validating_engine(get_distiller(method, dict(config or {}))) is not None


def describe_selection(synthetic: Any) -> str:
    """``"validation-best step S, V on val"`` for a ``keep_best`` set, else ``""``."""
    chosen = synthetic.config.get("selected")
    if not chosen:
        return ""
    return f"validation-best step {chosen['step']}, {chosen['value']:.1f} on val"


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
    val: Any = None,
    protocol: Any = None,
    device: str | torch.device | None = None,
) -> Any:
    """Distil ``real`` features into ``budget`` pairs with ``method``; save to ``out`` if given.

    The method runs on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: CUDA when
    available, else the CPU): the real features are moved there first, so the synthetic
    tensors and every auxiliary model live there too.

    A gradient method whose config sets ``engine.validate_every`` is validated on ``val``
    (validation features) with one student of ``protocol`` (:func:`validation_scorer`);
    with ``engine.keep_best`` the validation-best set is returned, and ``val`` is required.

    Under ``torch.distributed`` (e.g. ``torchrun``) every rank calls this with the same
    arguments; the gradient-based methods share the work, every rank returns the same set,
    and rank 0 alone writes ``out`` (and the checkpoints).
    """
    from ._paths import check_output_file
    from .distill import get_distiller
    from .distributed import is_main_process

    if out is not None:  # before the work: a directory or a path under a file would lose it
        check_output_file(out, what="out", force=True)
    device = resolve_device(device)  # before any work: a bad device fails at once
    distiller = get_distiller(method, dict(config or {}))
    if device.type != "cpu" and not distiller.device_ready:
        warnings.warn(
            f"{method} runs on the CPU: its device path is not checked yet (device={device})",
            stacklevel=2,
        )
        device = torch.device("cpu")
    if device.type != "cpu":
        real = _on_device(real, device)
    eng = _validating_engine(distiller)
    validate = None
    if eng is not None:
        if val is not None:
            validate = validation_scorer(val, protocol)
        elif eng.keep_best:
            raise PipelineError(
                f"{method}: engine.keep_best selects the set on the validation split; "
                "give its features (val=...; the command line loads the dataset's 'val' split)"
            )
        else:
            warnings.warn(
                f"{method}: engine.validate_every is set but no validation features were "
                "given (val=...), so nothing is validated",
                stacklevel=2,
            )
    kwargs = _fit_kwargs(
        distiller,
        checkpoint_dir=checkpoint_dir,
        resume=resume or None,
        progress=progress,
        validate=validate,
    )
    synthetic = distiller.fit(real, budget, seed, **kwargs)
    if out is not None and is_main_process():
        synthetic.save(out)
    return synthetic


def _on_device(real: Any, device: torch.device) -> Any:
    """``real`` as an adaptable feature object on ``device``, keeping its identity.

    The fingerprint and the encoder ids recorded in artifacts are those of ``real``, so
    a set distilled on a GPU names the same data as one distilled on the CPU.
    """
    from types import SimpleNamespace

    from .eval import as_feature_set

    fs = as_feature_set(real, "real")
    fp = getattr(real, "fingerprint", None)
    fp = fp() if callable(fp) else fp
    return SimpleNamespace(
        image=fs.image.to(device),
        text=fs.text.to(device),
        txt2img=fs.txt2img.to(device),
        fingerprint=fp if isinstance(fp, str) else fs.fingerprint(),
        encoders=getattr(real, "encoders", None),
        metadata=getattr(real, "metadata", None),
    )


def evaluate_set(
    train: Any,
    test: Any,
    protocol: Any = None,
    *,
    val: Any = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Any:
    """Score a synthetic set (or real features) under ``protocol``; returns the eval Result.

    The feature students train on ``device`` (``None``: CUDA when available); ``progress``
    draws a bar over their epochs."""
    from .distributed import is_distributed
    from .eval import EvalProtocol, evaluate

    protocol = protocol or EvalProtocol()
    # Validation features matter only for validation-selected checkpoints.
    if getattr(protocol, "selection", "final") != "validation":
        val = None
    device = resolve_device(device)
    if is_distributed():
        return _evaluate_distributed(train, test, protocol, val, device)
    return evaluate(train, test, protocol, val_features=val, device=device, progress=progress)


def _evaluate_distributed(
    train: Any, test: Any, protocol: Any, val: Any, device: Any = None
) -> Any:
    """Student seeds shared round-robin over the ranks; every rank gets the whole Result.

    Each seed's student depends only on its seed, so the per-seed metrics are those of a
    single-process evaluation; they are reassembled in protocol order.
    """
    import dataclasses

    import torch.distributed as dist

    from .distributed import get_rank, get_world_size, guarded
    from .eval import Result, evaluate

    rank, world = get_rank(), get_world_size()
    seeds = list(protocol.seeds)
    mine = seeds[rank::world]
    part = None
    if mine:
        sub = dataclasses.replace(protocol, seeds=tuple(mine))
        part = evaluate(train, test, sub, val_features=val, device=device).to_dict()
    parts: list[Any] = [None] * world
    with guarded("all_gather of evaluation results"):
        dist.all_gather_object(parts, part)
    per_seed: dict[int, tuple[Any, Any, Any]] = {}
    for r, p in enumerate(parts):
        if p is not None:
            for s, row, ep, loss in zip(
                seeds[r::world],
                p["metrics_per_seed"],
                p["selected_epochs"],
                p["train_losses"],
                strict=True,
            ):
                per_seed[s] = (row, ep, loss)
    rows = [per_seed[s][0] for s in seeds]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    std = {k: math.sqrt(sum((r[k] - mean[k]) ** 2 for r in rows) / len(rows)) for k in rows[0]}
    first = next(p for p in parts if p is not None)
    return Result(
        metrics_per_seed=rows,
        mean=mean,
        std=std,
        selection=first["selection"],
        selected_epochs=[per_seed[s][1] for s in seeds],
        protocol=protocol.to_dict(),
        n_train_pairs=first["n_train_pairs"],
        train_storage_floats=first["train_storage_floats"],
        seconds=max(p["seconds"] for p in parts if p is not None),
        train_losses=[per_seed[s][2] for s in seeds],
    )


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
        from .eval.extras import extras_columns, extras_markdown

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


#: Methods whose config has a ``student`` that must be the evaluation protocol's
#: (trajectory matching trains its experts with it) unless the caller sets one.
_PROTOCOL_STUDENT_METHODS = ("mtt",)


def _with_protocol_student(method: str, cfg: Any, protocol: Any) -> Any:
    if method not in _PROTOCOL_STUDENT_METHODS or "student" in (cfg or {}):
        return cfg
    from .eval._config import config_to_dict

    return {**(cfg or {}), "student": config_to_dict(protocol.student)}


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
    extras: Any = None,
    dataset: Any = None,
    encoders: tuple[Any, Any] | None = None,
    reference_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> CompareResult:
    """Distil with each method at each budget and score all under one protocol.

    ``features`` maps split names to features; ``"train"`` and ``"test"`` are
    required, ``"val"`` is used when the protocol selects on validation. Methods and
    feature students run on ``device`` (default: CUDA when available). With
    ``references`` the full training data is scored too (the upper reference).
    ``method_configs`` maps a method to its config overrides; ``log`` (e.g.
    ``print``) receives a line per finished row.
    Writes ``results.md``, ``results.json`` and ``recall_vs_budget.png`` to
    ``out_dir`` when given; the two tables are rewritten (atomically) after every
    finished row, so a run that fails or is stopped part-way keeps what it measured.

    ``extras`` (an :class:`~hypervldd.eval.protocol.EvalExtras`) adds evaluation beyond
    recall to every row (a second table; ``"extras"`` in the JSON rows): robustness needs
    ``dataset`` (its test images) and ``encoders`` (image, text); zero-shot the text
    encoder. Fidelity compares each set with the full training data.

    With ``reference_cache`` the full-data result is stored on disk (under
    ``cache_dir``, default ``<cache root>/results``) keyed by the fingerprints of the
    features, the protocol and the versions (:mod:`hypervldd.eval.result_cache`), and
    reused by later runs with the same key: it is most of the cost of a compare run.
    """
    from ._paths import check_output_dir
    from .eval import EvalProtocol

    if out_dir is not None:  # before the work: a file here would lose every row at the end
        check_output_dir(out_dir, what="out_dir")

    if "train" not in features or "test" not in features:
        raise PipelineError("features must contain the 'train' and 'test' splits")
    protocol = protocol or EvalProtocol()
    train, test, val = features["train"], features["test"], features.get("val")
    rows: list[CompareRow] = []
    selection = str(getattr(protocol, "selection_label", protocol.selection))
    if extras is not None and not extras.any:
        extras = None
    run_extras = _extras_runner(extras, features, protocol, dataset, encoders, log)
    meta = {}
    md = getattr(train, "metadata", None)
    if isinstance(md, dict):
        meta = {k: md[k] for k in ("dataset", "split", "fingerprint") if k in md}
    from .distributed import is_main_process

    def result_so_far() -> CompareResult:
        result = CompareResult(list(rows), protocol.to_dict(), selection, meta)
        if extras is not None:
            result.extras_config = extras.to_dict()
        return result

    def row_done() -> None:
        if out_dir is not None and is_main_process():  # rank 0 writes under torchrun
            _write_compare(result_so_far(), Path(out_dir), plot=False)

    if references:
        if log:  # the longest step of a run: say that it started
            n = getattr(train, "num_images", None) or len(getattr(train, "image_ids", []))
            log(f"full data: scoring the whole training split ({n} images) as the reference ...")
        t0 = time.perf_counter()
        res, cached = _full_data_result(
            train, test, protocol, val, reference_cache, cache_dir, device, progress
        )
        mean, std = _result_stats(res)
        seconds = res.seconds if cached else time.perf_counter() - t0
        rows.append(CompareRow("full data", None, None, mean, std, 0.0, seconds))
        if run_extras:
            rows[-1].extras = run_extras(train, res, reference=False)
        if log:
            how = "cached result of an identical run" if cached else "evaluated"
            log(f"full data: mean recall {mean['mean']:.1f} ({how}, {seconds:.0f} s)")
        row_done()
    for budget in budgets:
        for method in methods:
            t0 = time.perf_counter()
            if log:
                log(f"{method} @ {budget}: distilling ...")
            cfg = _with_protocol_student(method, (method_configs or {}).get(method), protocol)
            synthetic = distill(
                train,
                method,
                int(budget),
                seed=seed,
                config=cfg,
                progress=progress,
                val=val,
                protocol=protocol,
                device=device,
            )
            t1 = time.perf_counter()
            if log:
                log(f"{method} @ {budget}: evaluating ({len(protocol.seeds)} students) ...")
            res = evaluate_set(synthetic, test, protocol, val=val, device=device, progress=progress)
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
                    selected=synthetic.config.get("selected"),
                )
            )
            if run_extras:
                rows[-1].extras = run_extras(synthetic, res, reference=True)
            if log:
                picked = describe_selection(synthetic)
                picked = f"; {picked}" if picked else ""
                log(
                    f"{method} @ {budget}: mean recall {mean['mean']:.1f} "
                    f"(distil {t1 - t0:.0f} s, evaluate {time.perf_counter() - t1:.0f} s{picked})"
                )
            row_done()
    result = result_so_far()
    if out_dir is not None and is_main_process():
        _write_compare(result, Path(out_dir))
    return result


def _full_data_result(
    train: Any,
    test: Any,
    protocol: Any,
    val: Any,
    use_cache: bool,
    cache_dir: Any,
    device: Any = "cpu",
    progress: bool = False,
) -> tuple[Any, bool]:
    """The full-data reference, from the result cache when an identical run stored it."""
    from .distributed import is_distributed
    from .eval.result_cache import cached_result, result_key

    if getattr(protocol, "selection", "final") != "validation":
        val = None  # as evaluate_set does: the key must not depend on unused features
    if not use_cache or is_distributed():
        return evaluate_set(train, test, protocol, val=val, device=device, progress=progress), False
    key = result_key(train, test, protocol, val=val)
    return cached_result(
        key,
        lambda: evaluate_set(train, test, protocol, val=val, device=device, progress=progress),
        cache_dir=cache_dir,
    )


def _extras_runner(
    extras: Any, features: dict[str, Any], protocol: Any, dataset: Any, encoders: Any, log: Any
) -> Any:
    """``run(train_set, result, reference=...) -> extras dict`` for compare, or None."""
    if extras is None:
        return None
    from .eval.evaluate import train_students
    from .eval.extras import evaluate_extras

    image_enc, text_enc = encoders if encoders is not None else (None, None)
    if extras.robustness and (dataset is None or image_enc is None):
        raise PipelineError("robustness needs the dataset (test images) and the image encoder")
    if extras.zero_shot and text_enc is None:
        raise PipelineError("zero-shot needs the text encoder (to encode the class prompts)")
    split = None
    if extras.robustness:
        split = _load_dataset(dataset, None, False).split("test")
        if split.num_images != features["test"].num_images:
            raise PipelineError(
                f"the dataset's test split has {split.num_images} images but the test features "
                f"{features['test'].num_images}: pass the dataset loaded with the same limit"
            )
    train = features["train"]
    shared: dict[str, Any] = {}
    needs_students = extras.robustness or extras.zero_shot

    def reference_students() -> Any:
        if "students" not in shared:
            if log:
                log(f"beyond recall: training the {len(protocol.seeds)} full-data students ...")
            shared["students"] = train_students(train, protocol)
        return shared["students"]

    def run(train_set: Any, result: Any, *, reference: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = evaluate_extras(
            train_set,
            features["test"],
            protocol,
            extras,
            reference=train if reference else None,
            reference_students=reference_students() if reference and extras.fidelity else None,
            # The full-data row's students are the fidelity reference: train them once.
            students=None if reference or not needs_students else reference_students(),
            main_result=result,
            test_split=split,
            image_encoder=image_enc,
            text_encoder=text_enc,
            test_meta=getattr(features["test"], "image_meta", None),
        )
        if log:
            log(f"  beyond recall: {time.perf_counter() - t0:.0f} s")
        return out

    return run


def _write_compare(result: CompareResult, out: Path, *, plot: bool = True) -> None:
    from .data._io import atomic_path, atomic_write_bytes

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


def inspect_artifact(
    path: str | os.PathLike,
    real: Any = None,
    *,
    k: int = 3,
    grid_png: str | os.PathLike | None = None,
    dataset: Any = None,
    allow_mismatch: bool = False,
) -> dict[str, Any]:
    """Manifest, budget and, with real features, the nearest real captions of each synthetic text.

    With ``grid_png`` and the dataset, also writes a PNG grid of the nearest real
    image of each synthetic image feature (feature-space sets have no pixels).
    ``real`` must be the training features the set was distilled from (fingerprint and
    encoders; :func:`hypervldd.distill.check_provenance`); with ``allow_mismatch`` the
    differences are listed in ``info["provenance_mismatch"]`` and the grid is labelled.
    """
    from ._paths import check_output_file
    from .distill import SyntheticSet, check_provenance

    if grid_png is not None:
        check_output_file(grid_png, what="grid_png", force=True)
    syn = SyntheticSet.load(path)
    info: dict[str, Any] = {
        "manifest": syn.manifest(),
        "pairs": syn.num_pairs,
        "storage_floats": syn.storage_floats(),
    }
    if real is None:
        return info
    found = check_provenance(syn, real, allow_mismatch=allow_mismatch, where=str(path))
    if found:
        info["provenance_mismatch"] = found
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
        label = "PROVENANCE MISMATCH" if found else ""
        _image_grid(dataset, real, near_img.tolist(), Path(grid_png), label=label)
        info["grid_png"] = str(grid_png)
    return info


def _image_grid(dataset: Any, real: Any, indices: list[int], out: Path, *, label: str = "") -> None:
    from PIL import Image, ImageDraw

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
    if label:  # a grid of mismatched data must say so wherever the PNG ends up
        band = Image.new("RGB", (max(canvas.width, 160), canvas.height + 14), (200, 0, 0))
        band.paste(canvas, (0, 14))
        ImageDraw.Draw(band).text((2, 1), label, fill="white")
        canvas = band
    with atomic_path(out) as tmp:
        canvas.save(tmp, format="PNG")


# -- the pixel protocol -------------------------------------------------------------------
#: Methods that yield pixels: coresets (the real images of the selected pairs), PDS
#: (the nearest real image of each prototype, or a decoder) and ``pixel_match``
#: (optimised pixels).
PIXEL_METHODS = ("random", "herding", "kcenter", "forgetting", "pds", "pixel_match")


def pixel_split(dataset: Any, features: Any, image_size: int = 32) -> Any:
    """The split of ``features`` as a :class:`~hypervldd.eval.pixel.PixelSet`.

    Images come from ``dataset`` (the one the features were extracted from),
    resized to ``image_size`` squared (bicubic) as ``(N_img, 3, S, S)`` in [0, 1];
    text and ``txt2img`` are the features' own.
    """
    import numpy as np
    from PIL import Image

    from .eval.pixel import PixelSet

    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4:
        raise PipelineError(f"image_size must be an int >= 4, got {image_size!r}")
    meta = getattr(features, "metadata", None) or {}
    name = meta.get("split")
    if name is None:
        raise PipelineError("features carry no split name in their metadata")
    sp = dataset.split(name)
    if list(sp.image_ids) != list(features.image_ids):
        raise PipelineError(
            f"the dataset's {name!r} images differ from the features' (another dataset, "
            "limit or split seed?)"
        )
    arr = np.empty((sp.num_images, image_size, image_size, 3), dtype=np.float32)
    for i in range(sp.num_images):
        im = sp.load_image(i).convert("RGB")
        arr[i] = np.asarray(im.resize((image_size, image_size), Image.Resampling.BICUBIC))
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).div_(255.0).contiguous()
    return PixelSet(images, features.text_features.float(), features.caption_to_image)


def distill_pixels(
    real: Any,
    real_images: torch.Tensor,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    progress: bool = False,
) -> Any:
    """A synthetic set with pixel images (``image_kind == "pixels"``) by ``method``.

    ``real`` are the real features, ``real_images (N_img, C, H, W)`` their images'
    pixels in [0, 1]. Methods: :data:`PIXEL_METHODS`.
    """
    from .distill import PixelMatch, coreset_pixels, get_distiller

    cfg = dict(config or {})
    if method == "pixel_match":
        return PixelMatch(cfg).fit(real, budget, seed, real_images=real_images, progress=progress)
    if method == "pds":
        captions = getattr(real, "captions", None)
        return get_distiller("pds", {**cfg, "image_output": "pixels"}).fit(
            real, budget, seed, real_images=real_images, captions=captions
        )
    if method not in PIXEL_METHODS:
        raise PipelineError(
            f"method {method!r} has no pixel path; pixel methods: {list(PIXEL_METHODS)}"
        )
    return coreset_pixels(distill(real, method, budget, seed=seed, config=cfg), real_images, real)


def compare_pixels(
    dataset: Any,
    features: dict[str, Any],
    methods: Sequence[str],
    budgets: Sequence[int],
    *,
    image_size: int = 32,
    protocol: Any = None,
    seed: int = 0,
    references: bool = True,
    method_configs: dict[str, dict[str, Any]] | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Any = None,
) -> CompareResult:
    """:func:`compare` under the pixel protocol, on images resized to ``image_size``.

    ``features`` (from :func:`prepare` on ``dataset``) supply the selection and
    prototype spaces and the text side; every set is scored by the pixel student
    (``protocol.pixel``: a ConvNet by default) trained on pixels. The full-data
    reference trains on all real caption pairs' pixels.
    """
    from ._paths import check_output_dir
    from .eval import EvalProtocol

    if out_dir is not None:  # before the work: a file here would lose every row at the end
        check_output_dir(out_dir, what="out_dir")

    if "train" not in features or "test" not in features:
        raise PipelineError("features must contain the 'train' and 'test' splits")
    bad = sorted(set(methods) - set(PIXEL_METHODS))
    if bad:
        raise PipelineError(f"methods {bad} have no pixel path; pixel methods: {PIXEL_METHODS}")
    protocol = protocol or EvalProtocol()
    ds = _load_dataset(dataset, None, progress) if not hasattr(dataset, "split") else dataset
    train = features["train"]
    px = {s: pixel_split(ds, features[s], image_size) for s in ("train", "test")}
    val = (
        pixel_split(ds, features["val"], image_size) if protocol.selection == "validation" else None
    )
    rows: list[CompareRow] = []
    meta: dict[str, Any] = {"representation": "pixels", "image_size": int(image_size)}
    md = getattr(train, "metadata", None)
    if isinstance(md, dict):
        meta.update({k: md[k] for k in ("dataset", "split", "fingerprint") if k in md})
    selection = str(protocol.selection_label)

    def row_done() -> None:  # as in compare: a stopped run keeps its finished rows
        if out_dir is not None:
            result = CompareResult(list(rows), protocol.to_dict(), selection, meta)
            _write_compare(result, Path(out_dir), plot=False)

    if references:
        if log:  # the longest step of a run: say that it started
            n = getattr(train, "num_images", None) or len(getattr(train, "image_ids", []))
            log(f"full data: scoring the whole training split ({n} images) as the reference ...")
        t0 = time.perf_counter()
        res = evaluate_set(px["train"], px["test"], protocol, val=val)
        mean, std = _result_stats(res)
        rows.append(CompareRow("full data", None, None, mean, std, 0.0, time.perf_counter() - t0))
        if log:
            log(f"full data (pixels): mean recall {mean['mean']:.1f}")
        row_done()
    for budget in budgets:
        for method in methods:
            t0 = time.perf_counter()
            cfg = (method_configs or {}).get(method)
            syn = distill_pixels(
                train,
                px["train"].images,
                method,
                int(budget),
                seed=seed,
                config=cfg,
                progress=progress,
            )
            t1 = time.perf_counter()
            res = evaluate_set(syn, px["test"], protocol, val=val)
            mean, std = _result_stats(res)
            rows.append(
                CompareRow(
                    method,
                    int(budget),
                    int(syn.storage_floats()),
                    mean,
                    std,
                    t1 - t0,
                    time.perf_counter() - t1,
                )
            )
            if log:
                log(f"{method} @ {budget} (pixels): mean recall {mean['mean']:.1f}")
            row_done()
    result = CompareResult(rows, protocol.to_dict(), selection, meta)
    if out_dir is not None:
        _write_compare(result, Path(out_dir))
    return result
