"""Dataset resolution of the pipeline: local files with their image folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from hypervldd.pipeline import PipelineError, _load_dataset


def _images(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / name)
        names.append(name)
    return names


def test_caption_table_and_karpathy_json_load_with_their_image_folder(tmp_path: Path) -> None:
    names = _images(tmp_path, 4)
    table = tmp_path / "pairs.csv"
    table.write_text(
        "image,caption,split\n"
        + "".join(f"{n},a red square {i},train\n" for i, n in enumerate(names))
    )
    ds = _load_dataset(str(table), None, False, tmp_path)
    assert ds.num_images == 4 and ds.num_captions == 4

    kj = tmp_path / "dataset_tiny.json"
    entries = [
        {
            "filename": n,
            "split": "train" if i < 3 else "test",
            "sentences": [{"raw": f"square number {i}"}, {"raw": f"a picture {i}"}],
        }
        for i, n in enumerate(names)
    ]
    kj.write_text(json.dumps({"images": entries}))
    ds = _load_dataset(str(kj), None, False, tmp_path)
    assert ds.num_images == 4 and ds.num_captions == 8
    with pytest.raises(PipelineError, match="--image-root"):
        _load_dataset(str(kj), None, False, None)
    with pytest.raises(PipelineError, match="dataset must be one of"):
        _load_dataset(str(tmp_path / "nothing.txt"), None, False, None)


def test_compare_keeps_the_rows_it_finished_when_a_later_method_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypervldd import pipeline
    from hypervldd.eval import EvalProtocol
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=40, caps=2, seed=0)
    test, _ = clustered_features(n_img=20, caps=2, seed=1)
    real = pipeline.distill

    def failing(tr, method, *a, **k):
        if method == "herding":
            raise FloatingPointError("loss became nan")
        return real(tr, method, *a, **k)

    monkeypatch.setattr(pipeline.comparison, "distill", failing)  # where compare calls it
    proto = EvalProtocol(epochs=2, seeds=(0,), batch_size=32)
    with pytest.raises(FloatingPointError):
        pipeline.compare(
            {"train": train, "test": test},
            ["random", "herding"],
            [10],
            protocol=proto,
            out_dir=tmp_path,
            cache_dir=tmp_path / "cache",
        )
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["method"], r["budget"]) for r in rows] == [("full data", None), ("random", 10)]
    assert 0.0 <= rows[1]["mean"]["mean"] <= 100.0
    assert "| random | 10 |" in (tmp_path / "results.md").read_text()


def test_distill_selects_on_the_validation_split_and_needs_it(tmp_path: Path) -> None:
    from hypervldd import pipeline
    from hypervldd.eval import EvalProtocol, StudentConfig, evaluate
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=40, caps=2, seed=0)
    val, _ = clustered_features(n_img=20, caps=2, seed=2)
    proto = EvalProtocol(epochs=2, seeds=(3, 4), batch_size=32, student=StudentConfig(width=16))
    cfg = {
        "student": {"width": 16},
        "engine": {"iterations": 4, "validate_every": 2, "keep_best": True},
    }
    assert pipeline.wants_validation("covmatch", cfg)
    assert not pipeline.wants_validation("covmatch") and not pipeline.wants_validation("herding")
    with pytest.raises(PipelineError, match="validation split"):
        pipeline.distill(train, "covmatch", 8, config=cfg, protocol=proto)
    checks_only = dict(cfg, engine={"iterations": 2, "validate_every": 1})
    with pytest.warns(UserWarning, match="nothing is validated"):
        unchecked = pipeline.distill(train, "covmatch", 8, config=checks_only)
    assert not any("validation" in h for h in unchecked.history)

    syn = pipeline.distill(train, "covmatch", 8, config=cfg, val=val, protocol=proto)
    checks = {h["step"]: h["validation"] for h in syn.history if "validation" in h}
    assert sorted(checks) == [0, 2, 4]
    chosen = syn.config["selected"]
    assert chosen["value"] == max(c["mean"] for c in checks.values())
    # The score is the protocol's first student seed on the validation features.
    one = EvalProtocol(epochs=2, seeds=(3,), batch_size=32, student=StudentConfig(width=16))
    assert evaluate(syn, val, one).mean["mean"] == pytest.approx(chosen["value"], abs=1e-9)
    with pytest.raises(PipelineError, match="seeds"):
        pipeline.validation_scorer(val, proto, seeds=0)

    # compare validates on its "val" features and records the choice in every row.
    res = pipeline.compare(
        {"train": train, "val": val, "test": val},
        ["covmatch"],
        [8],
        protocol=proto,
        references=False,
        method_configs={"covmatch": cfg},
        out_dir=tmp_path,
    )
    assert res.rows[0].selected == chosen  # the same deterministic run
    row = json.loads((tmp_path / "results.json").read_text())["rows"][0]
    assert row["selected"] == chosen


def test_compare_says_when_the_full_data_reference_starts(tmp_path: Path) -> None:
    from hypervldd import pipeline
    from hypervldd.eval import EvalProtocol
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=30, caps=2, seed=0)
    test, _ = clustered_features(n_img=10, caps=2, seed=1)
    lines: list[str] = []
    proto = EvalProtocol(epochs=1, seeds=(0,), batch_size=32)
    feats = {"train": train, "test": test}
    pipeline.compare(feats, [], [], protocol=proto, cache_dir=tmp_path, log=lines.append)
    # Announced before the work (the longest step of a run), then its result.
    assert (
        lines[0] == "full data: scoring the whole training split (30 images) as the reference ..."
    )
    assert lines[1].startswith("full data: mean recall")


def test_inspect_labels_the_grid_of_a_mismatched_artifact(tmp_path: Path) -> None:
    from hypervldd.distill import ProvenanceError, get_distiller
    from hypervldd.pipeline import inspect_artifact
    from tests.test_cli import _paired

    art = get_distiller("random", {}).fit(_paired(0), 4, seed=0).save(tmp_path / "a.safetensors")

    class _Split:
        def load_image(self, i: int) -> Image.Image:
            return Image.new("RGB", (8, 8), (0, 0, 255))

    class _Data:
        def split(self, name: str) -> _Split:
            return _Split()

    with pytest.raises(ProvenanceError, match="data fingerprint"):
        inspect_artifact(art, _paired(1), grid_png=tmp_path / "g.png", dataset=_Data())
    assert not (tmp_path / "g.png").exists()
    plain = inspect_artifact(art, _paired(0), grid_png=tmp_path / "ok.png", dataset=_Data())
    assert "provenance_mismatch" not in plain
    with pytest.warns(UserWarning, match="PROVENANCE MISMATCH"):
        info = inspect_artifact(
            art, _paired(1), grid_png=tmp_path / "g.png", dataset=_Data(), allow_mismatch=True
        )
    assert info["provenance_mismatch"][0].startswith("data fingerprint")
    ok, bad = Image.open(tmp_path / "ok.png"), Image.open(tmp_path / "g.png")
    assert bad.height == ok.height + 14  # the red band that says so
    assert bad.convert("RGB").getpixel((bad.width - 1, 0)) == (200, 0, 0)
    assert ok.convert("RGB").getpixel((0, 0)) == (0, 0, 255)


def test_pipeline_checks_output_paths_before_the_work(tmp_path: Path, monkeypatch) -> None:
    from hypervldd import pipeline
    from hypervldd._paths import OutputPathError
    from hypervldd.distill import base
    from tests.test_cli import _paired

    (tmp_path / "f").write_text("x")

    def no_fit(*a, **k):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(base.Distiller, "fit", no_fit)
    with pytest.raises(OutputPathError, match="out .* is a directory"):
        pipeline.distill(_paired(0), "random", 2, out=tmp_path)
    with pytest.raises(OutputPathError, match="out .*/f is a file"):
        pipeline.distill(_paired(0), "random", 2, out=tmp_path / "f" / "s.safetensors")
    feats = {"train": _paired(0), "test": _paired(1)}
    with pytest.raises(OutputPathError, match="out_dir .*/f is a file"):
        pipeline.compare(feats, ["random"], [2], out_dir=tmp_path / "f")
