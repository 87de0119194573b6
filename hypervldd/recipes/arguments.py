"""Recipe values as defaults of the ``compare`` and ``distill`` flags (``--recipe``).

The command line parses as usual; :func:`explicit_options` then tells which options were
typed, and :func:`apply_recipe_args` fills every other one from the recipe, so explicit
flags always win. Pure argparse and recipe logic: nothing here runs the pipeline.

>>> import argparse
>>> p = argparse.ArgumentParser(prog="x")
>>> sub = p.add_subparsers(dest="command")
>>> c = sub.add_parser("compare")
>>> _ = c.add_argument("--seed", type=int, default=0)
>>> _ = c.add_argument("--budgets", default="100")
>>> sorted(explicit_options(p, ["compare", "--seed", "3"], "compare") & {"seed", "budgets"})
['seed']
"""

from __future__ import annotations

import argparse
from typing import Any

from . import Recipe, RecipeError, default_checkpoints_dir, load_recipe

__all__ = ["explicit_options", "relax_required", "apply_recipe_args"]


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise KeyError(f"no subcommand {command!r}")


def explicit_options(parser: argparse.ArgumentParser, argv: list[str], command: str) -> set[str]:
    """The destinations of the options ``argv`` gives to ``command`` (not its defaults).

    ``argv`` is parsed again with a sentinel as every default; the defaults are restored.
    """
    sub = _subparser(parser, command)
    sentinel = object()
    saved = [(a, a.default) for a in sub._actions]
    try:
        for a, _ in saved:
            a.default = sentinel
        given = parser.parse_args(argv)
    finally:
        for a, default in saved:
            a.default = default
    return {k for k, v in vars(given).items() if v is not sentinel}


def relax_required(parser: argparse.ArgumentParser) -> None:
    """``distill``'s ``--method``, ``--budget`` and ``--out`` become optional: with a recipe
    the method is the recipe's, and the other two are checked once the recipe is read."""
    for action in _subparser(parser, "distill")._actions:
        if action.dest in ("method", "budget", "out"):
            action.required = False


def apply_recipe_args(args: Any, explicit: set[str]) -> Recipe:
    """Fill ``compare``/``distill``/``prepare``/``evaluate`` arguments from ``args.recipe``;
    explicit flags win.

    Sets the encoders and checkpoint options (resolved under ``args.checkpoints``), the
    methods and budgets (``compare``) or the method (``distill``), and checks, before any
    work, that ``--dataset`` was given and (unless ``--dry-run``) that the checkpoints
    exist: the error names each missing file, what it is and where to get it.
    """
    recipe = load_recipe(args.recipe)
    if args.checkpoints is None:
        args.checkpoints = str(default_checkpoints_dir())
    ds = recipe.dataset
    if "dataset" not in explicit:
        raise RecipeError(
            f"recipe {recipe.name} needs --dataset: Karpathy's {ds['karpathy_json']} and "
            f"--image-root: the {ds['image_folder']} folder ({ds['source']})"
        )
    for key, value in recipe.encoder_args(args.checkpoints).items():
        if key not in explicit:
            setattr(args, key, value)
    if hasattr(args, "methods") and "methods" not in explicit:
        args.methods = recipe.method_names
    if hasattr(args, "budgets") and "budgets" not in explicit:
        args.budgets = list(recipe.budgets)
    if hasattr(args, "method") and "method" not in explicit:
        args.method = recipe.method
    if not getattr(args, "dry_run", False):
        missing = recipe.missing_checkpoints(args.checkpoints, skip=explicit)
        if missing:
            raise RecipeError(recipe.missing_message(missing, args.checkpoints))
    return recipe
