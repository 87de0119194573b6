"""``compare``: every method at every budget, scored under one protocol."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .distillation import describe_selection, distill
from .errors import PipelineError
from .evaluation import evaluate_set
from .features import _load_dataset
from .results import CompareResult, CompareRow, _result_stats, _write_compare

#: Methods whose config has a ``student`` that must be the evaluation protocol's
#: (trajectory matching trains its experts with it) unless the caller sets one.
_PROTOCOL_STUDENT_METHODS = ("mtt", "mtt_pixels")


def _with_protocol_student(method: str, cfg: Any, protocol: Any) -> Any:
    if method not in _PROTOCOL_STUDENT_METHODS or "student" in (cfg or {}):
        return cfg
    from ..eval._config import config_to_dict

    return {**(cfg or {}), "student": config_to_dict(protocol.student)}


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
    from .._paths import check_output_dir
    from ..eval import EvalProtocol

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
    from ..distributed import is_main_process

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
    from ..distributed import is_distributed
    from ..eval.result_cache import cached_result, result_key

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
    from ..eval.evaluate import train_students
    from ..eval.extras import evaluate_extras

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
