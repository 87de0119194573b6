"""Recipes: every shipped recipe dry-runs end to end, the schema refuses bad files by key,
missing checkpoints are named before any work, and explicit flags win over the recipe."""

from __future__ import annotations

import copy
import doctest
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image

from hypervldd.cli import main
from hypervldd.recipes import (
    RecipeError,
    available_recipes,
    load_recipe,
    parse_recipe,
)
from hypervldd.recipes.run import (
    dry_run,
    dry_run_config,
    method_config,
    published_table,
)
from hypervldd.recipes.standin import StandInImageEncoder, StandInTextEncoder

RECIPES = available_recipes()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def karpathy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Karpathy JSON: 10 train, 3 val, 3 test images, 2 captions each."""
    root = tmp_path_factory.mktemp("karpathy")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    words = ["dog", "cat", "red", "blue", "car", "tree", "man", "ball"]
    entries = []
    for i in range(16):
        arr = (rng.random((10, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(images / f"{i:03d}.jpg")
        split = "train" if i < 10 else ("val" if i < 13 else "test")
        caps = [{"raw": f"a {words[i % 8]} near a {words[(3 * i + k) % 8]}"} for k in range(2)]
        entries.append({"filename": f"{i:03d}.jpg", "split": split, "sentences": caps})
    path = root / "dataset_tiny.json"
    path.write_text(json.dumps({"dataset": "tiny", "images": entries}))
    return path, images


def test_the_package_ships_the_recipes() -> None:
    assert len(RECIPES) >= 11
    for ds in ("flickr30k", "coco"):
        for m in ("vl-distill", "lors", "repblend", "covmatch", "raha"):
            assert f"{ds}-{m}" in RECIPES
    assert "flickr30k-pds" in RECIPES
    # Installed packages get them too (setup.cfg package_data).
    assert "hypervldd.recipes = *.toml" in (ROOT / "setup.cfg").read_text()


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_dry_runs_end_to_end(
    name: str, karpathy: tuple[Path, Path], tmp_path: Path
) -> None:
    recipe = load_recipe(name)
    path, images = karpathy
    result = dry_run(name, str(path), image_root=images, out_dir=tmp_path / "out")
    info = result.dataset["dry_run"]
    assert result.dataset["recipe"] == name
    # Stand-ins of the recipe's widths; the smallest budget's configs at a budget the data allows.
    assert (info["image_dim"], info["text_dim"]) == (
        recipe.encoders["image_dim"],
        recipe.encoders["text_dim"],
    )
    assert info["configs_of_budget"] == min(recipe.budgets) and info["budget"] == 5
    rows = {r.method: r for r in result.rows}
    assert set(rows) == {"full data", *recipe.method_names}
    for m in recipe.method_names:
        row = rows[m]
        assert row.budget == 5
        # The set's features have the stand-in widths (pairs, plus similarity and rates).
        assert row.storage_floats >= 5 * (info["image_dim"] + info["text_dim"])
    for row in result.rows:
        assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in row.metrics_mean.values())
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["dataset"]["recipe"] == name
    assert written["protocol"]["seeds"] == [0] and written["protocol"]["epochs"] == 2
    assert written["protocol"]["selection"] == recipe.eval_protocol().selection


def test_dry_run_from_the_command_line(
    karpathy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, images = karpathy
    argv = ["compare", "--recipe", "flickr30k-pds", "--dataset", str(path)]
    argv += ["--image-root", str(images), "--dry-run", "--no-progress"]
    argv += ["--checkpoints", str(tmp_path / "nothing-here"), "--out-dir", str(tmp_path / "o")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| pds | 5 |" in out and "dry run of flickr30k-pds passed" in out
    assert (tmp_path / "o" / "results.md").is_file()


def test_dry_run_needs_a_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--methods", "random", "--dry-run"]) == 1
    assert "--dry-run checks a recipe: give --recipe NAME" in capsys.readouterr().err


def test_missing_checkpoints_are_named_before_any_work(
    karpathy: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hypervldd.cli as cli

    def no_features(args):  # noqa: ANN001, ANN202
        raise AssertionError("features prepared before the checkpoints were checked")

    monkeypatch.setattr(cli, "_features", no_features)
    path, images = karpathy
    ck = tmp_path / "ck"
    (ck / "nfnet_l0.ra2_in1k").mkdir(parents=True)  # one of the two is there
    argv = ["compare", "--recipe", "flickr30k-vl-distill", "--dataset", str(path)]
    argv += ["--image-root", str(images), "--checkpoints", str(ck)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"hypervldd: error: recipe flickr30k-vl-distill needs 1 checkpoint(s) missing under "
        f"{ck} (--checkpoints): {ck}/bert-base-uncased (folder: BERT-base uncased: "
        "config.json, model.safetensors, tokenizer.json (or vocab.txt), tokenizer_config.json; "
        "get it from https://huggingface.co/google-bert/bert-base-uncased). Nothing is "
        "downloaded at run time; --dry-run checks the recipe without them"
    )


def test_a_folder_is_not_a_checkpoint_file(tmp_path: Path) -> None:
    recipe = load_recipe("flickr30k-pds")
    (spec,) = recipe.checkpoints
    assert spec.kind == "file"
    spec.resolve(tmp_path).mkdir(parents=True)  # a folder where the .bin file belongs
    assert recipe.missing_checkpoints(tmp_path) == [spec]
    spec.resolve(tmp_path).rmdir()
    spec.resolve(tmp_path).write_bytes(b"weights")
    assert recipe.missing_checkpoints(tmp_path) == []
    assert recipe.encoder_args(tmp_path)["open_clip_checkpoint"] == str(spec.resolve(tmp_path))


def test_an_explicit_encoder_needs_no_recipe_checkpoint(tmp_path: Path) -> None:
    recipe = load_recipe("coco-lors")
    missing = recipe.missing_checkpoints(tmp_path, skip={"image_encoder"})
    assert [c.option for c in missing] == ["text_encoder"]
    assert recipe.missing_checkpoints(tmp_path, skip={"image_encoder", "text_encoder"}) == []


def test_a_recipe_needs_the_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--recipe", "coco-covmatch", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "recipe coco-covmatch needs --dataset: Karpathy's dataset_coco.json" in err
    assert "--image-root" in err


def _checkpoints_for(name: str, root: Path) -> Path:
    for c in load_recipe(name).checkpoints:
        p = c.resolve(root)
        if c.kind == "folder":
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    return root


def test_recipe_values_are_defaults_and_explicit_flags_win(
    karpathy: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hypervldd.cli as cli
    import hypervldd.recipes.run as run

    seen: dict = {}
    monkeypatch.setattr(cli, "_features", lambda args: seen.setdefault("args", args) and {})

    def fake_compare(recipe, features, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw)
        raise KeyboardInterrupt  # stop here: only the arguments are checked

    monkeypatch.setattr(run, "compare_recipe", fake_compare)
    path, images = karpathy
    ck = _checkpoints_for("flickr30k-lors", tmp_path / "ck")
    base = ["compare", "--recipe", "flickr30k-lors", "--dataset", str(path)]
    base += ["--image-root", str(images), "--checkpoints", str(ck)]
    assert main(base) == 130
    args = seen["args"]
    assert args.image_encoder == "timm:nfnet_l0"
    assert args.text_encoder == f"hf:{ck}/bert-base-uncased"
    assert args.timm_checkpoint == str(ck / "nfnet_l0.ra2_in1k")
    assert seen["methods"] == ["mtt"] and seen["budgets"] == [100, 200, 500, 1000]
    proto = seen["protocol"]
    assert (proto.epochs, proto.selection, proto.lr_source) == (100, "test", "learned")
    assert (proto.student.width, proto.student.geometry, len(proto.seeds)) == (
        2304,
        "euclidean",
        5,
    )
    seen.clear()
    explicit = base + ["--budgets", "200", "--seeds", "2", "--image-encoder", "timm:resnet18"]
    explicit += ["--method-configs", '{"mtt": {"syn_steps": 3}}']
    assert main(explicit) == 130
    assert seen["budgets"] == [200] and len(seen["protocol"].seeds) == 2
    assert seen["protocol"].epochs == 100  # the rest of the recipe's protocol stays
    assert seen["args"].image_encoder == "timm:resnet18"
    assert seen["method_overrides"] == {"mtt": {"syn_steps": 3}}


def test_distill_takes_the_recipe_config_at_its_budget(
    karpathy: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hypervldd.cli as cli
    import hypervldd.pipeline as pipeline

    seen: dict = {}
    monkeypatch.setattr(cli, "_features", lambda args, splits=("train",): {"train": None})

    def fake_distill(real, method, budget, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw, method=method, budget=budget)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "distill", fake_distill)
    path, images = karpathy
    ck = _checkpoints_for("flickr30k-lors", tmp_path / "ck")
    argv = ["distill", "--recipe", "flickr30k-lors", "--dataset", str(path), "--image-root"]
    argv += [str(images), "--checkpoints", str(ck), "--budget", "200"]
    argv += ["--out", str(tmp_path / "s.safetensors"), "--config", '{"syn_steps": 3}']
    assert main(argv) == 130
    cfg = seen["config"]
    assert seen["method"] == "mtt" and seen["budget"] == 200
    assert (cfg["similarity_rank"], cfg["similarity_alpha"], cfg["syn_steps"]) == (5, 1.0, 3)
    assert cfg["engine"]["iterations"] == 3000 and cfg["student"]["width"] == 2304
    assert seen["protocol"].selection == "test"


def test_distill_with_a_recipe_needs_a_budget(
    karpathy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, images = karpathy
    ck = _checkpoints_for("coco-raha", tmp_path / "ck")
    argv = ["distill", "--recipe", "coco-raha", "--dataset", str(path), "--image-root"]
    argv += [str(images), "--checkpoints", str(ck)]
    assert main(argv) == 1
    assert "distill --recipe needs --budget (the recipe's: 100, 200, 500, 1000)" in (
        capsys.readouterr().err
    )


def test_listing_and_showing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES)
    assert main(["compare", "--recipe", "list"]) == 0
    assert capsys.readouterr().out == out
    assert main(["recipes", "coco-vl-distill", "--checkpoints", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "MISSING" in shown and "https://huggingface.co/timm/nfnet_l0.ra2_in1k" in shown
    assert f"hf:{tmp_path}/bert-base-uncased" in shown
    assert "| mtt | 1000 | published | 3.3 | 11.9 | 22.1 | 6.8 | 21.9 | 31.0 | 16.2 |" in shown


def test_per_budget_configs_and_the_protocol_student() -> None:
    lors = load_recipe("coco-lors")
    assert method_config(lors, "mtt", 100)["normalization"] == "merged"
    assert method_config(lors, "mtt", 200)["engine"] == {"iterations": 2000}
    assert method_config(lors, "mtt", 500)["similarity_rank"] == 40
    cm = load_recipe("flickr30k-covmatch")
    c100, c500 = method_config(cm, "covmatch", 100), method_config(cm, "covmatch", 500)
    assert (c100["rho"], c100["lam"], c100["engine"]["iterations"]) == (2.0, 0.1, 10000)
    # A budget's engine override keeps the rest of the engine.
    assert (c500["rho"], c500["lam"], c500["engine"]["iterations"]) == (1.0, 0.5, 20000)
    assert c500["engine"]["lr_image"] == 1.0 and c500["engine"]["momentum"] == 0.5
    assert c500["student"]["head"] == "mlp" and c500["student"]["width"] == 2304
    # Methods without a student get none; the coreset baseline of VL-Distill is plain.
    assert method_config(load_recipe("flickr30k-vl-distill"), "random", 100) == {}


def test_dry_run_configs_are_small_and_keep_the_rest() -> None:
    lors = load_recipe("flickr30k-lors")
    cfg = dry_run_config("mtt", method_config(lors, "mtt", 500), budget=5)
    assert cfg["engine"]["iterations"] == 2 and cfg["experts"]["num_experts"] == 1
    assert cfg["experts"]["epochs"] == 3 + 1  # max_start_epoch + expert_epochs
    assert cfg["similarity_rank"] == 5 and cfg["batch_syn"] == 5
    assert cfg["similarity_alpha"] == 0.01 and cfg["max_start_epoch"] == 3
    raha = dry_run_config("raha", method_config(load_recipe("coco-raha"), "raha", 100), 5)
    assert raha["reset_every"] == 2 and raha["loss"]["lambda_range"] == 0.8


def test_stand_in_encoders() -> None:
    img, txt = StandInImageEncoder(48), StandInTextEncoder(20)
    pics = [Image.new("RGB", (9, 7), c) for c in ("red", "blue", "red")]
    f = img.encode_images(pics)
    assert f.shape == (3, 48) and torch.equal(f[0], f[2]) and not torch.equal(f[0], f[1])
    t = txt.encode_texts(["a red dog", "a red dog", "blue cats"])
    assert t.shape == (3, 20) and torch.equal(t[0], t[1]) and not torch.equal(t[0], t[2])
    assert torch.equal(StandInTextEncoder(20).encode_texts(["a red dog"])[0], t[0])
    assert StandInImageEncoder(48).fingerprint() == img.fingerprint()
    assert StandInImageEncoder(49).fingerprint() != img.fingerprint()
    with pytest.raises(ValueError, match="dim must be a positive int"):
        StandInTextEncoder(0)


# -- the schema ------------------------------------------------------------------------
def _raw(name: str = "flickr30k-lors") -> dict:
    return tomllib.loads((resources.files("hypervldd.recipes") / f"{name}.toml").read_text())


def _edit(path: str, value: object, name: str = "flickr30k-lors") -> dict:
    data = copy.deepcopy(_raw(name))
    *parents, last = path.split("/")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("colour", "red", "'colour' is not a recipe key; allowed: ["),
        ("budgets", _DELETE, "'budgets' is missing (budgets in synthetic pairs)"),
        ("budgets", [100, 0], "'budgets' must be a non-empty list of distinct positive integers"),
        ("budgets", [100, 100], "'budgets' must be a non-empty list of distinct positive"),
        ("schema", 2, "'schema' must be 1, got 2"),
        ("name", "other", "'name' must match the file name 'flickr30k-lors', got 'other'"),
        ("method", "covmatch", "'method' 'covmatch' has no table under [methods]"),
        ("methods/nope", {}, "'methods.nope' is not a distillation method; available:"),
        ("methods/mtt/config/syn_stepz", 3, "'methods.mtt.config' is not a valid mtt config"),
        ("methods/mtt/per_budget/300", {}, "'methods.mtt.per_budget.300' is not one of the"),
        ("methods/mtt/per_budget/100/batch_syn", "x", "'methods.mtt.per_budget.100' is not a"),
        ("methods/mtt/extra", 1, "'methods.mtt.extra' is not allowed"),
        ("protocol/epochs", -1, "'protocol' is not a valid protocol"),
        ("protocol/student/width", "wide", "'protocol' is not a valid protocol"),
        ("encoders/image", "nfnet", "'encoders.image' must be an encoder string"),
        ("encoders/text_dim", 0, "'encoders.text_dim' must be a positive integer"),
        ("encoders/text", "timm:bert", "'encoders.text' cannot be timm:NAME"),
        ("checkpoints/0/option", "weights", "'checkpoints[0].option' must be one of"),
        ("checkpoints/0/kind", "zip", "'checkpoints[0].kind' must be 'file' or 'folder'"),
        ("checkpoints/1/path", "../bert", "'checkpoints[1].path' must be relative"),
        ("checkpoints/1/path", "bert", "'checkpoints[1].path' feeds encoders.text"),
        ("checkpoints/0/source", _DELETE, "'checkpoints[0].source' must be a non-empty string"),
        ("dataset/karpathy_json", "", "'dataset.karpathy_json' must be a non-empty string"),
        ("published/results/mtt/100/mean", 127.0, "'published.results.mtt.100.mean' must be"),
        ("published/results/mtt/100/R@1", 1.0, "'published.results.mtt.100.R@1' is not a"),
        ("published/results/herding", {}, "'published.results.herding' names no method"),
        ("published/source", _DELETE, "'published.source' must be a non-empty string"),
    ],
)
def test_schema_errors_name_the_key(path: str, value: object, message: str) -> None:
    data = _edit(path, value)
    with pytest.raises(RecipeError) as err:
        parse_recipe(data, where="test.toml", stem="flickr30k-lors")
    assert message in str(err.value)
    assert str(err.value).startswith("recipe ")


def test_a_recipe_without_its_timm_checkpoint_is_refused() -> None:
    data = _raw()
    data["checkpoints"] = [c for c in data["checkpoints"] if c["option"] != "timm_checkpoint"]
    with pytest.raises(RecipeError, match="needs an entry with option = 'timm_checkpoint'"):
        parse_recipe(data, where="test.toml")


def test_recipe_files_and_names(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="unknown recipe 'flickr-lors'; available: coco-"):
        load_recipe("flickr-lors")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "none.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("name = [\n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
    own = tmp_path / "mine.toml"
    text = (resources.files("hypervldd.recipes") / "coco-raha.toml").read_text()
    own.write_text(text.replace('name = "coco-raha"', 'name = "mine"'))
    assert load_recipe(own).method == "raha"


def test_published_tables_put_empty_cells_beside_the_papers() -> None:
    table = published_table(load_recipe("flickr30k-covmatch"))
    lines = table.splitlines()
    assert lines[0] == "| method | pairs | run | IR | TR | mean |"
    assert "| covmatch | 100 | published | 26.5 | 34.5 | 30.5 |" in lines
    assert "| covmatch | 100 | hypervldd |  |  |  |" in lines
    # 1000 pairs was not published: both rows empty.
    assert "| covmatch | 1000 | published |  |  |  |" in lines


def test_docs_carry_each_recipes_published_numbers() -> None:
    docs = (ROOT / "docs" / "results.md").read_text()
    assert "## Reproducing the published tables" in docs
    for name in RECIPES:
        assert f"hypervldd compare --recipe {name} " in docs
        assert published_table(load_recipe(name)) in docs, name
    for page in ("README.md", "docs/data.md"):
        assert "--recipe" in (ROOT / page).read_text(), page


@pytest.mark.parametrize(
    "module",
    [
        "hypervldd.recipes",
        "hypervldd.recipes.run",
        "hypervldd.recipes.standin",
        "hypervldd.recipes.arguments",
    ],
)
def test_docstring_examples(module: str) -> None:
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_evaluate_and_prepare_take_the_recipes_protocol_and_encoders(
    karpathy: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hypervldd.cli as cli
    import hypervldd.pipeline as pipeline

    seen: dict = {}

    def features(args, splits=("train", "val", "test")):  # noqa: ANN001, ANN202
        seen["args"] = args
        return {"train": None, "test": None}

    def fake_evaluate(train, test, protocol, **kw):  # noqa: ANN001, ANN003, ANN202
        seen["protocol"] = protocol
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_features", features)
    monkeypatch.setattr(pipeline, "evaluate_set", fake_evaluate)
    path, images = karpathy
    ck = _checkpoints_for("coco-raha", tmp_path / "ck")
    argv = ["evaluate", "--recipe", "coco-raha", "--dataset", str(path), "--image-root"]
    argv += [str(images), "--checkpoints", str(ck), "--full-data", "--seeds", "1"]
    assert main(argv) == 130
    proto = seen["protocol"]
    assert (proto.batch_size, proto.selection, len(proto.seeds)) == (64, "test", 1)
    assert seen["args"].text_encoder == f"hf:{ck}/bert-base-uncased"
    seen.clear()
    argv = ["prepare", "--recipe", "coco-raha", "--dataset", str(path), "--image-root"]
    argv += [str(images), "--checkpoints", str(tmp_path / "empty")]
    assert main(argv) == 1  # the checkpoints are checked before any encoding
    assert "args" not in seen


def test_compare_recipe_runs_each_budget_with_its_config(tmp_path: Path) -> None:
    from hypervldd.recipes.run import compare_recipe
    from tests.test_cli import _paired

    data = _raw("flickr30k-covmatch")
    data["budgets"] = [3, 5]
    data["protocol"] = {"epochs": 1, "lr_decay_epochs": [], "seeds": [0], "student": {"width": 8}}
    data["methods"]["covmatch"]["config"]["engine"]["iterations"] = 2
    data["methods"]["covmatch"]["per_budget"] = {"5": {"rho": 1.5, "lam": 0.3}}
    data["methods"]["random"] = {}
    recipe = parse_recipe(data, where="test.toml")
    seen: list[tuple[str, dict]] = []

    def record(method: str, cfg: dict) -> dict:
        seen.append((method, cfg))
        return cfg

    feats = {"train": _paired(0), "test": _paired(1)}
    result = compare_recipe(
        recipe,
        feats,
        out_dir=tmp_path / "out",
        reference_cache=False,
        device="cpu",
        configure=record,
        method_overrides={"covmatch": {"reset_every": 7}},
    )
    got = [(r.method, r.budget) for r in result.rows]
    assert got == [("full data", None), ("covmatch", 3), ("random", 3)] + [
        ("covmatch", 5),
        ("random", 5),
    ]
    cm = [cfg for m, cfg in seen if m == "covmatch"]
    # 3 pairs has no overrides: the base config, whose rho/lam the method resolves itself.
    assert "rho" not in cm[0] and cm[0]["engine"]["iterations"] == 2
    assert (cm[1]["rho"], cm[1]["lam"]) == (1.5, 0.3)  # the 5-pair overrides
    assert all(c["reset_every"] == 7 and c["student"]["width"] == 8 for c in cm)
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["budget"] for r in written["rows"]] == [None, 3, 3, 5, 5]
    assert written["dataset"]["recipe"] == "flickr30k-covmatch"
    assert (tmp_path / "out" / "results.md").read_text() == result.markdown() + "\n"
