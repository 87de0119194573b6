"""The ``hypervldd`` command line.

Subcommands register themselves in :data:`COMMANDS`; every one parses its own
arguments with argparse, so bad arguments give a usage message and exit code 2,
and expected failures (missing data, bad files) give a one-line error and exit
code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser", "CliError"]


class CliError(Exception):
    """An expected failure: printed as ``hypervldd: error: <message>``, exit code 1."""


def _distributed_launch() -> bool:
    """Whether ``torchrun`` (or another launcher) started this process as one of several."""
    return os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")


def _is_main() -> bool:
    """Rank 0 (or a plain run): the one process that prints results."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    import hypervldd

    info = hypervldd.backend_info()
    print(f"hypervldd {hypervldd.__version__}")
    print(f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"backend: {info.backend} (GPU: {info.gpu})")
    print(f"reason: {info.reason}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(quick=args.quick, geometry=args.geometry)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions and the active kernel backend")
    p.set_defaults(func=_cmd_info)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the package's main job end to end on built-in data and print the result"
    )
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument(
        "--geometry", action="store_true", help="also run the precision and tree-embedding stages"
    )
    p.set_defaults(func=_cmd_demo)


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _int_csv(text: str) -> list[int]:
    try:
        values = [int(t) for t in _csv(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be positive, got {text!r}")
    return values


def _json_obj(text: str) -> dict:
    import json

    src = text
    if not text.lstrip().startswith("{"):
        try:
            with open(text) as f:
                src = f.read()
        except OSError as err:
            raise argparse.ArgumentTypeError(
                f"not a JSON object or a readable file: {text!r}"
            ) from err
    try:
        obj = json.loads(src)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"invalid JSON: {err}") from err
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return obj


def _data_args(p: argparse.ArgumentParser) -> None:
    from .data.sources import DATASET_KINDS

    p.add_argument("--dataset", default="emoji", help=DATASET_KINDS)
    p.add_argument("--image-root", default=None, help="image folder of a local dataset file")
    p.add_argument("--image-column", default=None, help="image column of a table/hf/parquet")
    p.add_argument(
        "--caption-column",
        default=None,
        help="caption column of a table/hf/parquet; for .tar shards a key of the .json",
    )
    p.add_argument("--split-column", default=None, help="split column of a table/hf/parquet")
    p.add_argument(
        "--split-ratios",
        default=None,
        help="assign train,val,test splits to a dataset without any, e.g. 0.8,0.1,0.1",
    )
    p.add_argument("--split-seed", type=int, default=0, help="seed of --split-ratios")
    p.add_argument(
        "--image-encoder",
        default="efficientnet-lite0",
        help="efficientnet-lite0, open_clip:ARCH, timm:NAME or hf:FOLDER",
    )
    p.add_argument(
        "--text-encoder", default="minilm-l6-v2", help="minilm-l6-v2, open_clip:ARCH or hf:FOLDER"
    )
    p.add_argument("--open-clip-checkpoint", default=None, help="local open_clip weights")
    p.add_argument("--timm-checkpoint", default=None, help="local timm weights (file or folder)")
    p.add_argument(
        "--limit", type=int, default=None, help="use only this many images (a fixed subset)"
    )
    p.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/hypervldd)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N for the encoders and distillation "
        "(default: CUDA when available, else cpu)",
    )


def _protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--protocol",
        type=_json_obj,
        default=None,
        help="protocol overrides: a JSON object or a JSON file",
    )
    p.add_argument("--seeds", type=int, default=None, help="number of student seeds")
    p.add_argument(
        "--geometry",
        choices=["euclidean", "lorentz", "poincare", "klein"],
        default=None,
        help="student head geometry (klein: the Klein model's heads, see docs/geometry.md)",
    )


def _protocol(args: argparse.Namespace):  # noqa: ANN202
    from .eval import EvalProtocol

    recipe = getattr(args, "recipe_obj", None)  # --recipe: its protocol is the base
    base = (recipe.eval_protocol() if recipe else EvalProtocol()).to_dict()
    base.update(args.protocol or {})
    if args.seeds is not None:
        if args.seeds < 1:
            raise CliError("--seeds must be at least 1")
        base["seeds"] = list(range(args.seeds))
    if args.geometry is not None:
        base.setdefault("student", {})
        base["student"] = dict(base["student"], geometry=args.geometry)
    return EvalProtocol.from_dict(base)


def _dataset_options(args: argparse.Namespace):  # noqa: ANN202
    """The ``DatasetOptions`` of the data flags (column names, split ratios)."""
    from .data.sources import DatasetOptions

    return DatasetOptions(
        image_column=args.image_column,
        caption_column=args.caption_column,
        split_column=args.split_column,
        split_ratios=args.split_ratios,
        split_seed=args.split_seed,
    )


def _device(args: argparse.Namespace):  # noqa: ANN202
    from ._device import resolve_device

    try:
        return resolve_device(args.device, name="--device")
    except ValueError as err:
        raise CliError(str(err)) from err


def _features(args: argparse.Namespace, splits=("train", "val", "test")):  # noqa: ANN001, ANN202
    from .pipeline import prepare

    return prepare(
        args.dataset,
        image_encoder=args.image_encoder,
        text_encoder=args.text_encoder,
        splits=splits,
        cache_dir=args.cache_dir,
        limit=args.limit,
        open_clip_checkpoint=args.open_clip_checkpoint,
        progress=not args.no_progress,
        image_root=args.image_root,
        dataset_options=_dataset_options(args),
        timm_checkpoint=args.timm_checkpoint,
        device=_device(args),
    )


def _cmd_prepare(args: argparse.Namespace) -> int:
    feats = _features(args)
    for split, f in feats.items():
        print(
            f"{split}: {f.image_features.shape[0]} images x {f.image_features.shape[1]}, "
            f"{f.text_features.shape[0]} captions x {f.text_features.shape[1]}"
        )
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from .pipeline import describe_selection, distill, wants_validation

    if getattr(args, "recipe_obj", None) is not None and _distill_recipe(args):
        return 0  # a dry run
    try:
        validated = wants_validation(args.method, args.config)
    except (KeyError, TypeError, ValueError) as err:
        raise CliError(f"--method/--config: {err}") from err
    _device(args)  # a bad --device fails before the features are loaded
    feats = _features(args, ("train", "val") if validated else ("train",))
    syn = distill(
        feats["train"],
        args.method,
        args.budget,
        seed=args.seed,
        config=args.config,
        out=args.out,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.no_progress,
        val=feats.get("val"),
        protocol=_protocol(args),
        device=_device(args),
    )
    if _is_main():
        picked = describe_selection(syn)
        picked = f" ({picked})" if picked else ""
        print(
            f"{args.method}: {syn.num_pairs} pairs, {syn.storage_floats()} stored floats"
            f" -> {args.out}{picked}"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .distill import SyntheticSet
    from .pipeline import evaluate_set

    syn = None if args.full_data else SyntheticSet.load(args.artifact)  # refused before work
    feats = _features(args)
    label = ""
    if syn is not None:
        label = _provenance_label(syn, feats["train"], args)
    train = feats["train"] if syn is None else syn
    res = evaluate_set(
        train,
        feats["test"],
        _protocol(args),
        val=feats.get("val"),
        device=_device(args),
        progress=not args.no_progress and _is_main(),
    )
    if _is_main():
        if label:
            print(label)
        print(res.summary() if hasattr(res, "summary") else res)
        if label:
            print(label)
    return 0


def _provenance_label(syn, train, args: argparse.Namespace) -> str:  # noqa: ANN001
    """Refuse an artifact of other data, or with --allow-mismatch the line labelling output."""
    from .distill import check_provenance
    from .distill.provenance import mismatch_label

    found = check_provenance(
        syn, train, allow_mismatch=args.allow_mismatch, where=str(args.artifact)
    )
    return f"{mismatch_label(found)}: " + "; ".join(found) if found else ""


def _cmd_compare(args: argparse.Namespace) -> int:
    from .distill import available_methods
    from .pipeline import compare

    if getattr(args, "recipe_obj", None) is not None:
        return _compare_recipe(args)
    if args.pixels is not None:
        return _compare_pixels(args)
    methods = args.methods or available_methods()
    unknown = sorted(set(methods) - set(available_methods()))
    if unknown:
        raise CliError(f"unknown methods {unknown}; available: {available_methods()}")
    method_configs = _method_configs(args.method_configs, methods)
    feats = _features(args)
    extras, dataset, encoders = _extras(args)
    result = compare(
        feats,
        methods,
        args.budgets,
        protocol=_protocol(args),
        seed=args.seed,
        references=not args.no_references,
        out_dir=args.out_dir,
        progress=not args.no_progress,
        extras=extras,
        dataset=dataset,
        encoders=encoders,
        method_configs=method_configs,
        reference_cache=not args.no_reference_cache,
        log=_progress_log(args),
        device=_device(args),
    )
    if _is_main():
        print(result.markdown())
        if args.out_dir:
            print(f"\nwritten: {args.out_dir}/results.md, results.json, recall_vs_budget.png")
    return 0


def _method_configs(obj: dict | None, methods: Sequence[str]) -> dict[str, dict] | None:
    """``--method-configs``: ``{method: {config overrides}}`` for methods being compared."""
    if obj is None:
        return None
    for name, cfg in obj.items():
        if name not in methods:
            raise CliError(f"--method-configs names {name!r}, which is not among {list(methods)}")
        if not isinstance(cfg, dict):
            raise CliError(f"--method-configs[{name!r}] must be a JSON object of config fields")
    return obj


def _recipe_args(p: argparse.ArgumentParser, *, dry_run: bool = True) -> None:
    g = p.add_argument_group("published protocols (docs/results.md, `hypervldd recipes`)")
    g.add_argument(
        "--recipe",
        default=None,
        help="a recipe name or .toml file: its encoders, protocol, methods, budgets and configs "
        "become the defaults (explicit flags win); `--recipe list` lists them",
    )
    g.add_argument(
        "--checkpoints",
        default=None,
        help="folder holding the recipe's checkpoints "
        "(default $HYPERVLDD_CHECKPOINTS or ~/.cache/hypervldd/checkpoints)",
    )
    if not dry_run:  # prepare and evaluate take the recipe's encoders and protocol only
        return
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="run the recipe end to end at tiny scale: stand-in random encoders, a few "
        "iterations, one student seed, the smallest budget (no checkpoints needed)",
    )


def _dry_run(args: argparse.Namespace, methods: Sequence[str]) -> int:
    from .recipes.run import dry_run

    result = dry_run(
        args.recipe_obj,
        args.dataset,
        image_root=args.image_root,
        dataset_options=_dataset_options(args),
        limit=args.limit,
        methods=methods,
        method_overrides=_method_configs(getattr(args, "method_configs", None), methods),
        cache_dir=args.cache_dir,
        out_dir=getattr(args, "out_dir", None),
        progress=not args.no_progress,
        log=_progress_log(args),
    )
    if _is_main():
        print(result.markdown())
        print(
            f"\ndry run of {args.recipe_obj.name} passed (stand-in encoders: numbers mean nothing)"
        )
    return 0


def _compare_recipe(args: argparse.Namespace) -> int:
    """``compare --recipe``: the recipe's budgets one by one, then the published numbers."""
    from .recipes.run import compare_recipe, published_table

    recipe = args.recipe_obj
    unknown = sorted(set(args.methods) - set(recipe.methods))
    if unknown:
        raise CliError(
            f"--methods {unknown} are not in recipe {recipe.name} ({recipe.method_names})"
        )
    if (
        args.pixels is not None
        or args.extras
        or any((args.fidelity, args.transfer, args.robustness, args.zero_shot))
    ):
        raise CliError(
            "--recipe runs the feature protocol only (no --pixels or beyond-recall flags)"
        )
    if args.dry_run:
        return _dry_run(args, args.methods)
    overrides = _method_configs(args.method_configs, args.methods)
    result = compare_recipe(
        recipe,
        _features(args),
        methods=args.methods,
        budgets=args.budgets,
        method_overrides=overrides,
        protocol=_protocol(args),
        seed=args.seed,
        references=not args.no_references,
        out_dir=args.out_dir,
        progress=not args.no_progress,
        log=_progress_log(args),
        reference_cache=not args.no_reference_cache,
        device=_device(args),
    )
    if _is_main():
        print(result.markdown())
        pub = recipe.published
        if pub:
            print(f"\npublished ({pub['source']}; {pub['protocol']}):\n")
            print(published_table(recipe, ours=False))
        if args.out_dir:
            print(f"\nwritten: {args.out_dir}/results.md, results.json")
    return 0


def _distill_recipe(args: argparse.Namespace) -> bool:
    """``distill --recipe``: the dry run (True), or the recipe's config at ``--budget``."""
    from .recipes.run import method_config

    if args.dry_run:
        _dry_run(args, [args.method])
        return True
    if args.budget is None or args.out is None:
        raise CliError(
            f"distill --recipe needs --budget (the recipe's: "
            f"{', '.join(map(str, args.recipe_obj.budgets))}) and --out"
        )
    args.config = method_config(
        args.recipe_obj, args.method, args.budget, args.config, _protocol(args)
    )
    return False


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import load_recipe
    from .recipes.run import describe_recipe, list_recipes

    print(
        describe_recipe(load_recipe(args.name), args.checkpoints) if args.name else list_recipes()
    )
    return 0


def _add_recipes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="the published protocols shipped as recipes")
    p.add_argument("name", nargs="?", default=None, help="show this recipe")
    p.add_argument("--checkpoints", default=None, help="where the checkpoints are looked for")
    p.set_defaults(func=_cmd_recipes)


def _apply_recipe(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> int | None:
    """Recipe values as defaults (``--recipe``); ``--recipe list`` lists and returns 0."""
    recipe = getattr(args, "recipe", None)
    if recipe is None:
        if getattr(args, "dry_run", False):
            raise CliError("--dry-run checks a recipe: give --recipe NAME")
        return None
    if recipe == "list":
        args.name = None
        return _cmd_recipes(args)
    from .recipes.arguments import apply_recipe_args, explicit_options

    args.recipe_obj = apply_recipe_args(args, explicit_options(parser, argv, args.command))
    return None


def _progress_log(args: argparse.Namespace):  # noqa: ANN202
    """A line per finished compare row on stderr, unless ``--no-progress``."""
    if args.no_progress or not _is_main():
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def _compare_pixels(args: argparse.Namespace) -> int:
    """``compare --pixels SIZE``: the pixel protocol on images resized to SIZE."""
    from .pipeline import PIXEL_METHODS, PIXEL_OPT_IN, _load_dataset, compare_pixels

    methods = args.methods or list(PIXEL_METHODS)
    unknown = sorted(set(methods) - set(PIXEL_METHODS + PIXEL_OPT_IN))
    if unknown:
        raise CliError(
            f"methods {unknown} have no pixel path; pixel methods: {PIXEL_METHODS + PIXEL_OPT_IN}"
        )
    if args.pixels < 4:
        raise CliError("--pixels must be at least 4")
    method_configs = _method_configs(args.method_configs, methods)
    feats = _features(args)
    dataset = _load_dataset(
        args.dataset, args.limit, not args.no_progress, args.image_root, _dataset_options(args)
    )
    result = compare_pixels(
        dataset,
        feats,
        methods,
        args.budgets,
        image_size=args.pixels,
        method_configs=method_configs,
        protocol=_protocol(args),
        seed=args.seed,
        references=not args.no_references,
        out_dir=args.out_dir,
        progress=not args.no_progress,
    )
    if _is_main():
        print(result.markdown())
    return 0


def _extras(args: argparse.Namespace):  # noqa: ANN202
    """The ``EvalExtras`` of the compare flags, and the dataset/encoders they need."""
    from .eval.protocol import EvalExtras

    flags = {
        "fidelity": args.fidelity,
        "transfer": args.transfer,
        "robustness": args.robustness,
        "zero_shot": args.zero_shot,
    }
    base = dict(args.extras or {})
    base.update({k: True for k, on in flags.items() if on})
    extras = EvalExtras.from_dict(base)
    if not extras.any:
        return None, None, None
    dataset = encoders = None
    if extras.robustness or extras.zero_shot:
        from .pipeline import _load_dataset, build_encoders

        encoders = build_encoders(
            args.image_encoder,
            args.text_encoder,
            open_clip_checkpoint=args.open_clip_checkpoint,
            timm_checkpoint=args.timm_checkpoint,
            progress=not args.no_progress,
        )
        if extras.robustness:
            dataset = _load_dataset(
                args.dataset,
                args.limit,
                not args.no_progress,
                args.image_root,
                _dataset_options(args),
            )
    return extras, dataset, encoders


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from .pipeline import _load_dataset, inspect_artifact

    real = dataset = None
    if args.dataset:
        real = _features(args, ("train",))["train"]
        if args.grid:
            dataset = _load_dataset(
                args.dataset,
                args.limit,
                not args.no_progress,
                args.image_root,
                _dataset_options(args),
            )
    info = inspect_artifact(
        args.artifact,
        real,
        k=args.k,
        grid_png=args.grid,
        dataset=dataset,
        allow_mismatch=args.allow_mismatch,
    )
    label = ""
    if info.get("provenance_mismatch"):
        from .distill.provenance import mismatch_label

        found = info["provenance_mismatch"]
        label = f"{mismatch_label(found)}: " + "; ".join(found)
        print(label)
    print(json.dumps(info["manifest"], indent=2, default=str))
    print(f"pairs: {info['pairs']}, stored floats: {info['storage_floats']}")
    for i, caps in enumerate(info.get("nearest_captions", [])):
        print(f"[{i}] image ~ {info['nearest_images'][i]}; text ~ " + " | ".join(caps))
    if info.get("grid_png"):
        print(f"grid of nearest real images: {info['grid_png']}")
    if label:
        print(label)
    return 0


def _allow_mismatch_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="go on when the artifact was distilled from other data or encoders than those "
        "given (refused by default); every output is then labelled",
    )


def _force_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--force", action="store_true", help=f"replace an existing {what}")


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work (the data may take minutes to encode)."""
    from ._paths import check_output_dir, check_output_file

    force = bool(getattr(args, "force", False))
    if getattr(args, "out", None):
        check_output_file(args.out, what="--out", force=force)
    if getattr(args, "grid", None):
        check_output_file(args.grid, what="--grid", force=force)
    if getattr(args, "out_dir", None):
        out_dir = check_output_dir(args.out_dir, what="--out-dir")
        if (out_dir / "results.json").exists() and not force:
            raise CliError(
                f"--out-dir {out_dir} already holds results.json; pass --force to replace it"
            )
    if hasattr(args, "cache_dir") and getattr(args, "dataset", None):
        from .data._io import default_cache_dir

        check_output_dir(args.cache_dir or default_cache_dir(), what="--cache-dir")
    if getattr(args, "checkpoint_dir", None):
        from .distill.engine import check_checkpoint_dir

        check_output_dir(args.checkpoint_dir, what="--checkpoint-dir")
        check_checkpoint_dir(args.checkpoint_dir, resume=bool(getattr(args, "resume", False)))


def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="encode a dataset's splits into the feature cache")
    _data_args(p)
    _recipe_args(p, dry_run=False)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("distill", help="distil the training split into a synthetic set")
    _data_args(p)
    p.add_argument("--method", required=True, help="a distillation method (see `compare --help`)")
    p.add_argument("--budget", type=int, required=True, help="number of synthetic pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=_json_obj, default=None, help="method config (JSON)")
    p.add_argument("--out", required=True, help="artifact path (.safetensors)")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--resume", action="store_true", help="resume from --checkpoint-dir")
    _force_arg(p, "--out file")
    _protocol_args(p)  # the students that validate (engine.validate_every, keep_best)
    _recipe_args(p)
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("evaluate", help="train students on a synthetic set and report recall")
    _data_args(p)
    _protocol_args(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--artifact", help="a synthetic-set artifact")
    g.add_argument("--full-data", action="store_true", help="the full training split instead")
    _allow_mismatch_arg(p)
    _recipe_args(p, dry_run=False)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare", help="several methods and budgets under one protocol")
    _data_args(p)
    _protocol_args(p)
    p.add_argument("--methods", type=_csv, default=None, help="comma-separated (default: all)")
    p.add_argument("--budgets", type=_int_csv, default=[100], help="comma-separated pair counts")
    p.add_argument("--seed", type=int, default=0, help="distillation seed")
    p.add_argument("--out-dir", default=None, help="write results.md/.json and a plot here")
    p.add_argument("--no-references", action="store_true", help="skip the full-data row")
    _force_arg(p, "results.json in --out-dir")
    p.add_argument(
        "--pixels",
        type=int,
        default=None,
        metavar="SIZE",
        help="pixel protocol: synthetic images as SIZE x SIZE pixels, a ConvNet student",
    )
    p.add_argument(
        "--method-configs",
        type=_json_obj,
        default=None,
        help='per-method config overrides, e.g. \'{"covmatch": {"engine": {"iterations": 500}}}\'',
    )
    p.add_argument(
        "--no-reference-cache",
        action="store_true",
        help="recompute the full-data row even if an identical run cached it",
    )
    g = p.add_argument_group("beyond recall (docs/evaluation.md; all off by default)")
    g.add_argument("--fidelity", action="store_true", help="ordering agreement with the full data")
    g.add_argument(
        "--transfer", action="store_true", help="recall under other student configurations"
    )
    g.add_argument(
        "--robustness", action="store_true", help="recall drop under perturbed test inputs"
    )
    g.add_argument(
        "--zero-shot", action="store_true", help="prompted zero-shot classification accuracy"
    )
    g.add_argument(
        "--extras",
        type=_json_obj,
        default=None,
        help="EvalExtras settings: a JSON object or a JSON file",
    )
    _recipe_args(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("inspect", help="an artifact's manifest, budget and nearest real data")
    p.add_argument("artifact")
    _data_args(p)
    p.set_defaults(dataset=None)
    p.add_argument("--k", type=int, default=3, help="nearest captions per synthetic text")
    p.add_argument("--grid", default=None, help="PNG grid of the nearest real images")
    _force_arg(p, "--grid file")
    _allow_mismatch_arg(p)
    p.set_defaults(func=_cmd_inspect)


def _add_selftest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest", help="check every kernel against the float64 reference on each device"
    )
    p.add_argument(
        "--device",
        action="append",
        default=None,
        help="cpu, cuda or cuda:N (repeatable); default: the CPU and every CUDA device",
    )
    p.set_defaults(func=_cmd_selftest)


def _cmd_selftest(args: argparse.Namespace) -> int:
    from .selftest import main as selftest_main

    return selftest_main([a for d in args.device or [] for a in ("--device", d)])


#: name -> function adding the subcommand to the parser
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "info": _add_info,
    "demo": _add_demo,
    "pipeline": _add_pipeline,
    "selftest": _add_selftest,
    "recipes": _add_recipes,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypervldd",
        description="Hyperbolic geometry for vision-language dataset distillation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS.values():
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """The error's message on one line (an OSError without a message gets its type)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--recipe" or a.startswith("--recipe=") for a in argv):
        from .recipes.arguments import relax_required

        relax_required(parser)  # distill's --method comes from the recipe
    args = parser.parse_args(argv)
    distributed = _distributed_launch()
    try:
        if distributed:
            # torchrun: join the job's process group (gloo on CPU, NCCL on GPUs) so that
            # distill and evaluate share their work; rank 0 prints and writes.
            from .distributed import init_from_env

            init_from_env()
        listed = _apply_recipe(parser, args, argv)
        if listed is not None:
            return listed
        _check_output_paths(args)
        return int(args.func(args) or 0)
    except RuntimeError as err:
        if not distributed or type(err).__name__ != "DistributedError":
            raise
        print(f"hypervldd: error: {err}", file=sys.stderr)
        return 1
    except CliError as err:
        print(f"hypervldd: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError, ImportError) as err:
        # Expected failures of the layers below (bad files, missing data packages, invalid
        # configs, and any OSError: a full disk, a directory where a file was expected)
        # carry messages that name what is wrong.
        print(f"hypervldd: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hypervldd: interrupted", file=sys.stderr)
        return 130
    finally:
        if distributed:
            from .distributed import shutdown

            shutdown()


if __name__ == "__main__":
    sys.exit(main())
