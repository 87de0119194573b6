"""Running a recipe: its comparison, its dry run, and what the command line needs.

* :func:`method_config`: a method's config at a budget, with overrides and the
  protocol's student (the model the paper evaluates is the one the method trains with).
* :func:`compare_recipe`: :func:`hypervldd.pipeline.compare` over the recipe's methods
  and budgets, one budget at a time (configs differ by budget), one results table.
* :func:`dry_run`: the whole recipe at tiny scale on a dataset the caller gives (a tiny
  Karpathy JSON will do): stand-in random encoders of the recipe's widths instead of the
  checkpoints, a few iterations, one student seed, the smallest budget (capped to the
  data). It checks the data path, every method's config and the protocol without weights.
* :func:`list_recipes`, :func:`describe_recipe`, :func:`published_table`: what
  ``hypervldd recipes [NAME]`` prints.

>>> from hypervldd.recipes import load_recipe
>>> cfg = method_config(load_recipe("flickr30k-lors"), "mtt", 200)
>>> cfg["similarity_rank"], cfg["student"]["width"]
(5, 2304)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import (
    METRIC_KEYS,
    Recipe,
    RecipeError,
    _merged,
    available_recipes,
    default_checkpoints_dir,
    load_recipe,
)

__all__ = [
    "method_config",
    "dry_run_config",
    "dry_run_budget",
    "DRY_RUN_PROTOCOL",
    "DRY_RUN_IMAGES",
    "compare_recipe",
    "dry_run",
    "list_recipes",
    "describe_recipe",
    "published_table",
]

#: Images a dry run keeps of the dataset when no ``limit`` is given (a fixed subset).
DRY_RUN_IMAGES = 64

#: Protocol fields of a dry run: two epochs, one student seed, heads 64 wide (the
#: recipe's width is checked when it loads; at 2304 the heads dominate a dry run's cost).
DRY_RUN_PROTOCOL: dict[str, Any] = {
    "epochs": 2,
    "seeds": [0],
    "eval_every": 1,
    "lr_decay_epochs": [],
    "student": {"width": 64},
}


def _config_class(method: str) -> Any:
    from ..distill import get_distiller

    return type(get_distiller(method).config)


def _field_names(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_config_class(method))}


def method_config(
    recipe: Recipe,
    method: str,
    budget: int,
    overrides: dict[str, Any] | None = None,
    protocol: Any = None,
) -> dict[str, Any]:
    """``method``'s config at ``budget``: the recipe's, then ``overrides`` (merged).

    A method whose config has a ``student`` (the online student of CovMatch and RAHA,
    the experts' student of trajectory matching, the warm-up student of the coresets)
    gets the protocol's student, under any ``student`` fields the recipe or the
    overrides set: the model the paper evaluates is the one the method trains.
    """
    cfg = _merged(recipe.method_config(method, budget), overrides or {})
    if "student" in _field_names(method):
        from ..eval._config import config_to_dict

        proto = protocol if protocol is not None else recipe.eval_protocol()
        cfg["student"] = _merged(config_to_dict(proto.student), cfg.get("student", {}))
    return cfg


def dry_run_budget(recipe: Recipe, train_images: int) -> int:
    """The smallest budget, capped at half the training images (at least 2)."""
    return max(2, min(min(recipe.budgets), train_images // 2))


def dry_run_config(method: str, config: dict[str, Any], budget: int) -> dict[str, Any]:
    """``config`` shrunk for a dry run at ``budget`` pairs: a few iterations, one short
    expert, small k-means; every other setting (the ones the recipe is checked for) kept."""
    fields = _field_names(method)
    base = dataclasses.asdict(_config_class(method)())
    cfg = _merged({}, config)
    if "engine" in fields:
        cfg["engine"] = _merged(
            cfg.get("engine", {}),
            {
                "iterations": 2,
                "validate_every": 0,
                "keep_best": False,
                "checkpoint_every": 0,
                "log_every": 1,
            },
        )
    if method == "mtt":
        get = lambda k: cfg.get(k, base[k])  # noqa: E731
        cfg["syn_steps"] = min(int(get("syn_steps")), 2)
        cfg["experts"] = _merged(
            cfg.get("experts", {}),
            {"num_experts": 1, "epochs": int(get("max_start_epoch")) + int(get("expert_epochs"))},
        )
        if get("batch_syn") is not None:
            cfg["batch_syn"] = min(int(get("batch_syn")), budget)
        if int(get("similarity_rank")) > 0:
            cfg["similarity_rank"] = min(int(get("similarity_rank")), budget)
    for key, small in (("reset_every", 2), ("warmup_epochs", 1), ("experts", 1)):
        if key in fields and not isinstance(base[key], dict):
            cfg[key] = min(int(cfg.get(key, base[key])), small)
    if "expert_epochs" in fields and method != "mtt":
        cfg["expert_epochs"] = 1
    if "anchors" in fields:
        cfg["anchors"] = min(int(cfg.get("anchors", base["anchors"])), 16)
    if method == "forgetting":
        cfg["epochs"] = 2
    if method == "pds":
        cfg.update(n_init=2, max_iter=5, batch_size=64)
    return cfg


def compare_recipe(
    recipe: Recipe,
    features: dict[str, Any],
    *,
    methods: Sequence[str] | None = None,
    budgets: Sequence[int] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    protocol: Any = None,
    seed: int = 0,
    references: bool = True,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    reference_cache: bool = True,
    device: Any = None,
    configure: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    dataset_info: dict[str, Any] | None = None,
) -> Any:
    """The recipe's comparison on ``features`` (``{split: features}`` of its encoders).

    Runs :func:`hypervldd.pipeline.compare` once per budget with that budget's configs
    (:func:`method_config`, ``method_overrides`` on top; ``configure(method, cfg)`` may
    change them further, as the dry run does), the full-data row once, and returns one
    :class:`~hypervldd.pipeline.CompareResult` (its ``dataset`` records the recipe, and
    ``dataset_info``).
    ``out_dir`` gets ``results.md``/``results.json`` after every budget (no plot).
    """
    from .._paths import check_output_dir
    from ..pipeline import CompareResult, compare

    if out_dir is not None:  # before the work, as compare does
        check_output_dir(out_dir, what="out_dir")
    methods = list(methods or recipe.method_names)
    budgets = [int(b) for b in (budgets or recipe.budgets)]
    protocol = protocol if protocol is not None else recipe.eval_protocol()
    overrides = method_overrides or {}
    rows: list[Any] = []
    result = None
    for i, budget in enumerate(budgets):
        cfgs = {}
        for m in methods:
            cfg = method_config(recipe, m, budget, overrides.get(m), protocol)
            cfgs[m] = configure(m, cfg) if configure else cfg
        part = compare(
            features,
            methods,
            [budget],
            protocol=protocol,
            seed=seed,
            references=references and i == 0,
            progress=progress,
            method_configs=cfgs,
            log=log,
            reference_cache=reference_cache,
            device=device,
        )
        rows.extend(part.rows)
        dataset = {**part.dataset, "recipe": recipe.name, **(dataset_info or {})}
        result = CompareResult(list(rows), part.protocol, part.selection, dataset)
        if out_dir is not None:
            _write_tables(result, Path(out_dir))
    return result


def _write_tables(result: Any, out: Path) -> None:
    """``results.md`` and ``results.json`` as ``compare`` writes them (atomically)."""
    from ..data._io import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.md", (result.markdown() + "\n").encode())
    atomic_write_bytes(out / "results.json", (result.to_json() + "\n").encode())


def dry_run(
    recipe: Recipe | str,
    dataset: Any,
    *,
    image_root: str | os.PathLike | None = None,
    dataset_options: Any = None,
    limit: int | None = None,
    methods: Sequence[str] | None = None,
    method_overrides: dict[str, dict[str, Any]] | None = None,
    cache_dir: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    seed: int = 0,
) -> Any:
    """The recipe end to end at tiny scale with stand-in encoders; a ``CompareResult``.

    ``dataset`` is anything ``--dataset`` takes (e.g. a small Karpathy JSON with
    ``image_root``), cut to ``limit`` images (default :data:`DRY_RUN_IMAGES`). Features
    come from :mod:`.standin` encoders of the recipe's widths (cached under ``cache_dir``,
    by default a temporary folder removed afterwards); each method runs at
    :func:`dry_run_budget` pairs with :func:`dry_run_config` (after ``method_overrides``,
    ``{method: {config fields}}``) and the recipe's protocol with
    :data:`DRY_RUN_PROTOCOL` on top, on the CPU. The recall numbers mean nothing; that
    it finishes is the check.
    """
    from ..data import extract_features
    from ..pipeline import _load_dataset
    from .standin import StandInImageEncoder, StandInTextEncoder

    recipe = load_recipe(recipe) if isinstance(recipe, str) else recipe
    methods = list(methods or recipe.method_names)
    for m in methods:
        if m not in recipe.methods:
            raise RecipeError(
                f"recipe {recipe.name}: method {m!r} is not in it ({recipe.method_names})"
            )
    limit = DRY_RUN_IMAGES if limit is None else limit
    ds = _load_dataset(dataset, limit, progress, image_root, dataset_options)
    missing = [s for s in ("train", "test") if s not in ds.splits]
    if missing:
        raise RecipeError(
            f"dry run of {recipe.name}: the dataset has no {missing} split(s) (it has "
            f"{list(ds.splits)})"
        )
    img = StandInImageEncoder(int(recipe.encoders["image_dim"]), seed=seed)
    txt = StandInTextEncoder(int(recipe.encoders["text_dim"]), seed=seed)
    protocol = recipe.eval_protocol(DRY_RUN_PROTOCOL)
    splits = ["train", "test"] + (["val"] if protocol.selection == "validation" else [])
    with tempfile.TemporaryDirectory(prefix="hypervldd-dry-run-") as tmp:
        root = cache_dir if cache_dir is not None else tmp
        feats = {s: extract_features(ds, s, img, txt, root, progress=progress) for s in splits}
    budget = dry_run_budget(recipe, feats["train"].image_features.shape[0])
    smallest = min(recipe.budgets)
    if log:
        log(
            f"dry run of {recipe.name}: stand-in encoders ({img.dim}-d image, {txt.dim}-d "
            f"text), the {smallest}-pair configs at {budget} pairs, methods {methods}"
        )

    def shrink(method: str, cfg: dict[str, Any]) -> dict[str, Any]:
        return dry_run_config(method, cfg, budget)

    # The smallest budget's configs are the ones checked; the run uses the tiny budget.
    part = _DryRecipe(recipe, smallest, budget)
    # Tiny tensors: threads only contend. On the shared 2-core machine (load average about
    # 11) a dry run took 1.4 to 2.3 s per recipe with one thread, 11 to 47 s with the default.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return compare_recipe(
            part,  # type: ignore[arg-type]
            feats,
            methods=methods,
            budgets=[budget],
            method_overrides=method_overrides,
            protocol=protocol,
            seed=seed,
            out_dir=out_dir,
            progress=progress,
            log=log,
            reference_cache=False,
            device="cpu",
            configure=shrink,
            dataset_info={
                "dry_run": {
                    "budget": budget,
                    "configs_of_budget": smallest,
                    "image_dim": img.dim,
                    "text_dim": txt.dim,
                    "encoders": [img.id, txt.id],
                }
            },
        )
    finally:
        torch.set_num_threads(threads)


class _DryRecipe:
    """A recipe whose configs at ``run_budget`` are those of ``config_budget``."""

    def __init__(self, recipe: Recipe, config_budget: int, run_budget: int) -> None:
        self._recipe, self._from, self._to = recipe, config_budget, run_budget
        self.name, self.method_names = recipe.name, recipe.method_names

    def method_config(self, method: str, budget: int) -> dict[str, Any]:
        return self._recipe.method_config(method, self._from if budget == self._to else budget)

    def eval_protocol(self, overrides: dict[str, Any] | None = None) -> Any:
        return self._recipe.eval_protocol(overrides)


def _cell(metrics: dict[str, float] | None, key: str) -> str:
    if not metrics or key not in metrics:
        return ""
    return f"{metrics[key]:.1f}"


def published_table(recipe: Recipe, *, ours: bool = True) -> str:
    """Markdown: the published numbers per method and budget, beside an empty row of ours.

    Columns are the six recalls, the IR/TR averages (papers that print only those) and
    the mean; a cell the paper did not print is empty. With ``ours`` every published
    row is followed by a row for this package's run, empty until measured.
    """
    results = recipe.published.get("results", {})
    used = [
        k for k in METRIC_KEYS if any(k in m for rows in results.values() for m in rows.values())
    ]
    head = "| method | pairs | run | " + " | ".join(used) + " |"
    lines = [head, "|" + "---|" * (len(used) + 3)]
    methods = [m for m in recipe.method_names if m in results] + (
        ["full data"] if "full data" in results else []
    )
    for m in methods:
        rows = results[m]
        budgets = sorted(
            {b for b in rows if b != "all"}
            | ({"all"} if "all" in rows else set())
            | (set(recipe.budgets) if m in recipe.methods else set()),
            key=lambda b: (b == "all", b if b != "all" else 0),
        )
        for b in budgets:
            pub = rows.get(b)
            if pub is None and not ours:
                continue
            lines.append(
                f"| {m} | {b} | published | " + " | ".join(_cell(pub, k) for k in used) + " |"
            )
            if ours:
                lines.append(f"| {m} | {b} | hypervldd | " + " | ".join("" for _ in used) + " |")
    return "\n".join(lines)


def describe_recipe(recipe: Recipe, checkpoints: str | os.PathLike | None = None) -> str:
    """What ``hypervldd recipes NAME`` prints: files to supply, the command, deviations,
    the published numbers."""
    root = Path(checkpoints) if checkpoints is not None else default_checkpoints_dir()
    ds, enc = recipe.dataset, recipe.encoder_args(root)
    out = [
        f"{recipe.name}: {recipe.title}",
        f"paper: {recipe.paper}",
        f"methods: {', '.join(recipe.method_names)}; budgets: "
        + ", ".join(str(b) for b in recipe.budgets),
        "",
        f"dataset: --dataset {ds['karpathy_json']} --image-root {ds['image_folder']}",
        f"  {ds['source']}",
        f"encoders: image {enc['image_encoder']} ({recipe.encoders['image_dim']}-d), "
        f"text {enc['text_encoder']} ({recipe.encoders['text_dim']}-d)",
        f"checkpoints (under --checkpoints, here {root}):",
    ]
    for c in recipe.checkpoints:
        state = "present" if c.present(root) else "MISSING"
        out.append(f"  {c.path} [{c.kind}, {state}]: {c.what}; from {c.source}")
    out += [
        "",
        f"run:     hypervldd compare --recipe {recipe.name} --dataset {ds['karpathy_json']} "
        f"--image-root {ds['image_folder']} --checkpoints {root} --out-dir runs/{recipe.name}",
        f"dry run: hypervldd compare --recipe {recipe.name} --dataset TINY.json "
        "--image-root TINY_IMAGES --dry-run",
        "",
        "differences from the paper:",
        *[f"  - {d}" for d in recipe.deviations],
    ]
    if recipe.published:
        out += [
            "",
            f"published ({recipe.published['source']}; {recipe.published['protocol']}):",
            published_table(recipe, ours=False),
        ]
    return "\n".join(out)


def list_recipes() -> str:
    """One line per shipped recipe: name, title, methods and budgets.

    >>> "flickr30k-vl-distill" in list_recipes()
    True
    """
    lines = []
    for name in available_recipes():
        r = load_recipe(name)
        budgets = ",".join(map(str, r.budgets))
        lines.append(f"{name:22s} {r.title} ({', '.join(r.method_names)}; budgets {budgets})")
    lines.append("")
    lines.append(
        "hypervldd recipes NAME shows one: the files to supply, the command, the paper's numbers"
    )
    return "\n".join(lines)
