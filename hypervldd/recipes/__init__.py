"""Published protocols as recipes: one TOML file per (dataset, method) table.

A recipe names what a published table used: the dataset (a Karpathy JSON and an image
folder the user supplies), the image and text encoders (encoder strings whose weights
are local checkpoints the user supplies, each with where to get it), the evaluation
protocol (an :class:`~hypervldd.eval.EvalProtocol` over the defaults), the budgets,
each method's config (with per-budget overrides) and the published numbers, with the
paper that printed them and the ways this package's run differs from the paper's.

The files ship inside the package (``hypervldd/recipes/*.toml``);
:func:`available_recipes` lists them, :func:`load_recipe` reads one by name or path and
checks it: every problem is a :class:`RecipeError` naming the recipe and the key.

>>> from hypervldd.recipes import available_recipes, load_recipe
>>> "flickr30k-lors" in available_recipes()
True
>>> r = load_recipe("flickr30k-lors")
>>> r.method, r.budgets
('mtt', (100, 200, 500, 1000))
>>> r.method_config("mtt", 100)["similarity_rank"]
10

Running one (:mod:`hypervldd.recipes.run`) is what ``hypervldd compare --recipe NAME``
and ``hypervldd distill --recipe NAME`` do; ``--dry-run`` runs it end to end at tiny
scale with stand-in random encoders (:mod:`hypervldd.recipes.standin`).
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI (setup.cfg installs it there)
    import tomli as tomllib

__all__ = [
    "RecipeError",
    "Recipe",
    "CheckpointSpec",
    "available_recipes",
    "load_recipe",
    "default_checkpoints_dir",
    "METRIC_KEYS",
]

#: Metric names a published result may carry: the six recalls, the IR/TR averages of
#: papers that print only those, and the mean of the six.
METRIC_KEYS = ("IR@1", "IR@5", "IR@10", "TR@1", "TR@5", "TR@10", "IR", "TR", "mean")

#: Command-line options a checkpoint can feed.
CHECKPOINT_OPTIONS = ("timm_checkpoint", "open_clip_checkpoint", "image_encoder", "text_encoder")

_TOP_KEYS = {
    "schema": "the recipe format version (1)",
    "name": "the recipe's name (its file name without .toml)",
    "title": "a one-line title",
    "paper": "authors, title, venue and year of the paper",
    "method": "the distillation method the paper reports",
    "budgets": "budgets in synthetic pairs",
    "deviations": "how this package's run differs from the paper's",
    "dataset": "the dataset the user supplies",
    "encoders": "encoder strings and output widths",
    "checkpoints": "the weight files the encoders load",
    "protocol": "EvalProtocol fields over the defaults",
    "methods": "per-method config and per-budget overrides",
    "published": "the published numbers",
}
_REQUIRED = ("schema", "name", "title", "paper", "method", "budgets", "dataset", "encoders")
_PLACEHOLDER = "{checkpoints}"


class RecipeError(ValueError):
    """A recipe that cannot be used: the message names the recipe and the key."""


@dataclass(frozen=True)
class CheckpointSpec:
    """One weight file or folder a recipe's encoders need.

    ``path`` is relative to the checkpoints folder (``--checkpoints``); ``option`` is
    the command-line option it feeds (``timm_checkpoint``, ``open_clip_checkpoint``, or
    ``image_encoder``/``text_encoder`` when the encoder string names the folder).
    """

    path: str
    kind: str
    option: str
    what: str
    source: str

    def resolve(self, checkpoints: str | os.PathLike) -> Path:
        """The absolute location under ``checkpoints``."""
        return Path(checkpoints).expanduser() / self.path

    def present(self, checkpoints: str | os.PathLike) -> bool:
        """Whether the file (or folder) exists under ``checkpoints``."""
        p = self.resolve(checkpoints)
        return p.is_dir() if self.kind == "folder" else p.is_file()


@dataclass(frozen=True)
class Recipe:
    """A checked recipe (see the module docstring); build it with :func:`load_recipe`."""

    name: str
    title: str
    paper: str
    method: str
    budgets: tuple[int, ...]
    deviations: tuple[str, ...]
    dataset: dict[str, str]
    encoders: dict[str, Any]
    checkpoints: tuple[CheckpointSpec, ...]
    protocol: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    published: dict[str, Any]
    path: str

    @property
    def method_names(self) -> list[str]:
        """The recipe's methods, the paper's own first."""
        return [self.method] + [m for m in self.methods if m != self.method]

    def method_config(self, method: str, budget: int) -> dict[str, Any]:
        """``method``'s config at ``budget``: its ``config`` with the budget's overrides.

        Nested tables merge key by key (``engine.iterations`` of a budget keeps the
        rest of the engine). A budget without overrides gets the plain config.
        """
        if method not in self.methods:
            raise RecipeError(
                f"recipe {self.name}: method {method!r} is not in it (methods: {self.method_names})"
            )
        spec = self.methods[method]
        over = spec.get("per_budget", {}).get(int(budget), {})
        return _merged(copy.deepcopy(spec.get("config", {})), over)

    def eval_protocol(self, overrides: dict[str, Any] | None = None) -> Any:
        """The :class:`~hypervldd.eval.EvalProtocol`: defaults, the recipe's fields, then
        ``overrides`` (nested ``student`` fields merge)."""
        from ..eval import EvalProtocol

        data = _merged(EvalProtocol().to_dict(), self.protocol)
        return EvalProtocol.from_dict(_merged(data, overrides or {}))

    def encoder_args(self, checkpoints: str | os.PathLike) -> dict[str, str]:
        """``{image_encoder, text_encoder, <checkpoint options>}`` resolved under
        ``checkpoints`` (the values the command line takes)."""
        root = str(Path(checkpoints).expanduser())
        out = {
            "image_encoder": self.encoders["image"].replace(_PLACEHOLDER, root),
            "text_encoder": self.encoders["text"].replace(_PLACEHOLDER, root),
        }
        for c in self.checkpoints:
            if c.option.endswith("_checkpoint"):
                out[c.option] = str(c.resolve(checkpoints))
        return out

    def missing_checkpoints(
        self, checkpoints: str | os.PathLike, *, skip: set[str] | frozenset[str] = frozenset()
    ) -> list[CheckpointSpec]:
        """The checkpoints absent under ``checkpoints``; ``skip`` names options the user
        gave explicitly (their files are theirs to check)."""
        return [
            c
            for c in self.checkpoints
            if c.option not in skip
            and not (c.option == "timm_checkpoint" and "image_encoder" in skip)
            and not c.present(checkpoints)
        ]

    def missing_message(self, missing: list[CheckpointSpec], checkpoints: str | os.PathLike) -> str:
        """The error for missing checkpoints: each path, what it is, where to get it."""
        root = Path(checkpoints).expanduser()
        parts = [f"{c.resolve(root)} ({c.kind}: {c.what}; get it from {c.source})" for c in missing]
        return (
            f"recipe {self.name} needs {len(missing)} checkpoint(s) missing under {root} "
            f"(--checkpoints): " + "; ".join(parts) + ". Nothing is downloaded at run time; "
            "--dry-run checks the recipe without them"
        )


def default_checkpoints_dir() -> Path:
    """``$HYPERVLDD_CHECKPOINTS``, else ``<cache root>/checkpoints`` (``~/.cache/hypervldd``)."""
    env = os.environ.get("HYPERVLDD_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    from ..data._io import default_cache_dir

    return default_cache_dir() / "checkpoints"


def available_recipes() -> list[str]:
    """Names of the recipes shipped with the package, sorted."""
    root = resources.files(__name__)
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | os.PathLike) -> Recipe:
    """A shipped recipe by name, or a recipe file by path; checked (:class:`RecipeError`).

    >>> load_recipe("coco-covmatch").method_config("covmatch", 500)["engine"]["iterations"]
    20000
    """
    text = str(name_or_path)
    if text.endswith(".toml") or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        raw = path.read_bytes()
    else:
        names = available_recipes()
        if text not in names:
            raise RecipeError(f"unknown recipe {text!r}; available: {', '.join(names)}")
        res = resources.files(__name__) / f"{text}.toml"
        raw = res.read_bytes()
        path = Path(str(res))
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RecipeError(f"recipe {path}: not valid TOML: {err}") from err
    return parse_recipe(data, where=str(path), stem=path.stem)


def parse_recipe(
    data: dict[str, Any], *, where: str = "<recipe>", stem: str | None = None
) -> Recipe:
    """Check a recipe's parsed TOML and build the :class:`Recipe`.

    Every key is checked (unknown keys are refused with the allowed ones), every method
    config is built for every budget, and the protocol is built, so a recipe that loads
    is one that runs.
    """
    label = f"recipe {data.get('name', where) if isinstance(data, dict) else where}"

    def fail(key: str, msg: str) -> RecipeError:
        return RecipeError(f"{label} ({where}): {key!r} {msg}")

    if not isinstance(data, dict):
        raise RecipeError(f"{label}: expected a table at the top level")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"is not a recipe key; allowed: {sorted(_TOP_KEYS)}")
    for key in _REQUIRED:
        if key not in data:
            raise fail(key, f"is missing ({_TOP_KEYS[key]})")
    if data["schema"] != 1:
        raise fail("schema", f"must be 1, got {data['schema']!r}")
    for key in ("name", "title", "paper", "method"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(key, f"must be a non-empty string, got {data[key]!r}")
    if stem is not None and data["name"] != stem:
        raise fail("name", f"must match the file name {stem!r}, got {data['name']!r}")
    budgets = data["budgets"]
    if (
        not isinstance(budgets, list)
        or not budgets
        or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in budgets)
        or len(set(budgets)) != len(budgets)
    ):
        raise fail(
            "budgets", f"must be a non-empty list of distinct positive integers, got {budgets!r}"
        )
    deviations = data.get("deviations", [])
    if not isinstance(deviations, list) or not all(isinstance(d, str) for d in deviations):
        raise fail("deviations", "must be a list of strings")
    dataset = _check_table(
        data["dataset"],
        "dataset",
        fail,
        required=("name", "karpathy_json", "image_folder", "source"),
    )
    encoders = _check_encoders(data["encoders"], fail)
    checkpoints = _check_checkpoints(data.get("checkpoints", []), encoders, fail)
    methods = _check_methods(data.get("methods", {}), data["method"], budgets, fail)
    protocol = data.get("protocol", {})
    if not isinstance(protocol, dict):
        raise fail("protocol", "must be a table of EvalProtocol fields")
    recipe = Recipe(
        name=data["name"],
        title=data["title"],
        paper=data["paper"],
        method=data["method"],
        budgets=tuple(int(b) for b in budgets),
        deviations=tuple(deviations),
        dataset=dataset,
        encoders=encoders,
        checkpoints=checkpoints,
        protocol=protocol,
        methods=methods,
        published=_check_published(data.get("published", {}), methods, fail),
        path=where,
    )
    try:
        recipe.eval_protocol()
    except (TypeError, ValueError) as err:
        raise fail("protocol", f"is not a valid protocol: {err}") from err
    _check_configs(recipe, fail)
    return recipe


def _check_table(value: Any, key: str, fail: Any, *, required: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise fail(key, "must be a table")
    unknown = sorted(set(value) - set(required))
    if unknown:
        raise fail(f"{key}.{unknown[0]}", f"is not allowed; allowed: {list(required)}")
    for k in required:
        if not isinstance(value.get(k), str) or not value[k].strip():
            raise fail(f"{key}.{k}", "must be a non-empty string")
    return dict(value)


def _check_encoders(value: Any, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("encoders", "must be a table")
    allowed = ("image", "text", "image_dim", "text_dim")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise fail(f"encoders.{unknown[0]}", f"is not allowed; allowed: {list(allowed)}")
    for side in ("image", "text"):
        spec = value.get(side)
        if not isinstance(spec, str) or not spec.startswith(("open_clip:", "timm:", "hf:")):
            raise fail(
                f"encoders.{side}",
                f"must be an encoder string open_clip:ARCH, timm:NAME or hf:FOLDER, got {spec!r}",
            )
        dim = value.get(f"{side}_dim")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise fail(
                f"encoders.{side}_dim",
                f"must be a positive integer (the output width), got {dim!r}",
            )
    if value["text"].startswith("timm:"):
        raise fail("encoders.text", "cannot be timm:NAME (timm models are image encoders)")
    return dict(value)


def _check_checkpoints(
    value: Any, encoders: dict[str, Any], fail: Any
) -> tuple[CheckpointSpec, ...]:
    if not isinstance(value, list):
        raise fail("checkpoints", "must be an array of tables ([[checkpoints]])")
    fields = ("path", "kind", "option", "what", "source")
    out = []
    for i, item in enumerate(value):
        key = f"checkpoints[{i}]"
        _check_table(item, key, fail, required=fields)
        if item["kind"] not in ("file", "folder"):
            raise fail(f"{key}.kind", f"must be 'file' or 'folder', got {item['kind']!r}")
        if item["option"] not in CHECKPOINT_OPTIONS:
            raise fail(
                f"{key}.option",
                f"must be one of {list(CHECKPOINT_OPTIONS)}, got {item['option']!r}",
            )
        if Path(item["path"]).is_absolute() or ".." in Path(item["path"]).parts:
            raise fail(
                f"{key}.path", f"must be relative to the checkpoints folder, got {item['path']!r}"
            )
        side = item["option"].split("_")[0]
        if (
            item["option"].endswith("_encoder")
            and encoders[side].split(":", 1)[1] != f"{_PLACEHOLDER}/{item['path']}"
        ):
            raise fail(
                f"{key}.path",
                f"feeds encoders.{side}, which must then name it as {_PLACEHOLDER}/{item['path']}",
            )
        out.append(CheckpointSpec(**item))
    prefixes = {"timm_checkpoint": "timm:", "open_clip_checkpoint": "open_clip:"}
    for option, prefix in prefixes.items():
        uses = any(encoders[s].startswith(prefix) for s in ("image", "text"))
        if uses and not any(c.option == option for c in out):
            raise fail(
                "checkpoints", f"needs an entry with option = {option!r} for the {prefix} encoder"
            )
    for side in ("image", "text"):
        if _PLACEHOLDER in encoders[side] and not any(c.option == f"{side}_encoder" for c in out):
            raise fail(
                "checkpoints", f"needs an entry with option = '{side}_encoder' for encoders.{side}"
            )
    return tuple(out)


def _check_methods(
    value: Any, method: str, budgets: list[int], fail: Any
) -> dict[str, dict[str, Any]]:
    from ..distill import available_methods

    if not isinstance(value, dict) or not value:
        raise fail("methods", "must be a table with one sub-table per method")
    known = available_methods()
    out: dict[str, dict[str, Any]] = {}
    for name, spec in value.items():
        key = f"methods.{name}"
        if name not in known:
            raise fail(key, f"is not a distillation method; available: {known}")
        if not isinstance(spec, dict):
            raise fail(key, "must be a table")
        allowed = ("config", "per_budget", "published_hyperparameters")
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise fail(f"{key}.{unknown[0]}", f"is not allowed; allowed: {list(allowed)}")
        cfg = spec.get("config", {})
        if not isinstance(cfg, dict):
            raise fail(f"{key}.config", "must be a table of the method's config fields")
        per_budget: dict[int, dict[str, Any]] = {}
        for b, over in spec.get("per_budget", {}).items():
            if not str(b).isdigit() or int(b) not in budgets:
                raise fail(f"{key}.per_budget.{b}", f"is not one of the budgets {budgets}")
            if not isinstance(over, dict):
                raise fail(f"{key}.per_budget.{b}", "must be a table of config fields")
            per_budget[int(b)] = over
        hp = spec.get("published_hyperparameters", {})
        if not isinstance(hp, dict):
            raise fail(f"{key}.published_hyperparameters", "must be a table")
        out[name] = {"config": cfg, "per_budget": per_budget, "published_hyperparameters": hp}
    if method not in out:
        raise fail("method", f"{method!r} has no table under [methods] (methods: {list(out)})")
    return out


def _check_published(value: Any, methods: dict[str, Any], fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("published", "must be a table")
    allowed = ("source", "protocol", "results")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise fail(f"published.{unknown[0]}", f"is not allowed; allowed: {list(allowed)}")
    if not value:
        return {}
    for k in ("source", "protocol"):
        if not isinstance(value.get(k), str) or not value[k].strip():
            raise fail(f"published.{k}", "must be a non-empty string (the paper and its table)")
    results: dict[str, dict[Any, dict[str, float]]] = {}
    for method, rows in value.get("results", {}).items():
        key = f"published.results.{method}"
        if method not in methods and method != "full data":
            raise fail(key, f"names no method of the recipe ({list(methods)} or 'full data')")
        if not isinstance(rows, dict):
            raise fail(key, "must be a table of budgets")
        results[method] = {}
        for b, metrics in rows.items():
            bkey = f"{key}.{b}"
            if not (str(b).isdigit() or b == "all"):
                raise fail(bkey, "must be a budget in pairs (or 'all' for the full data)")
            if not isinstance(metrics, dict) or not metrics:
                raise fail(bkey, "must be a table of metrics")
            for m, v in metrics.items():
                if m not in METRIC_KEYS:
                    raise fail(f"{bkey}.{m}", f"is not a metric; allowed: {list(METRIC_KEYS)}")
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
                    raise fail(f"{bkey}.{m}", f"must be a recall in % (0 to 100), got {v!r}")
            results[method][b if b == "all" else int(b)] = {m: float(v) for m, v in metrics.items()}
    return {"source": value["source"], "protocol": value["protocol"], "results": results}


def _check_configs(recipe: Recipe, fail: Any) -> None:
    """Build every method's config, alone and at every budget (unknown keys, bad values)."""
    from ..distill import get_distiller

    for name, spec in recipe.methods.items():
        checks = [(f"methods.{name}.config", "", spec["config"])]
        checks += [
            (f"methods.{name}.per_budget.{b}", f" at {b} pairs", recipe.method_config(name, b))
            for b in recipe.budgets
            if b in spec["per_budget"]
        ]
        for where, at, cfg in checks:
            try:
                get_distiller(name, cfg)
            except (TypeError, ValueError) as err:
                raise fail(where, f"is not a valid {name} config{at}: {err}") from err


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` applied, nested tables merged key by key."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
