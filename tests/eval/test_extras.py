"""`compare` with evaluation beyond recall: the extras table, JSON, and the default unchanged."""

import json
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from hypervldd.data import ImagePreprocess, PairedDataset
from hypervldd.data.features import PairedFeatures
from hypervldd.eval import EvalProtocol, StudentConfig
from hypervldd.eval.extras import extras_columns, label_columns
from hypervldd.eval.protocol import EvalExtras
from hypervldd.pipeline import PipelineError, compare

TINY = EvalProtocol(
    student=StudentConfig(width=8), epochs=2, seeds=(0,), lr_decay_epochs=(), batch_size=32
)
SIDE = 6


class TinyImageEncoder:
    """A differentiable stand-in for the frozen image encoder (pixels -> 12-d)."""

    def __init__(self):
        self.preprocess = ImagePreprocess(size=SIDE, mean=(0.5,) * 3, std=(0.5,) * 3)
        self.normalize = False
        self.device = torch.device("cpu")
        self.w = torch.randn(3 * SIDE * SIDE, 12, generator=torch.Generator().manual_seed(0))

    def _forward(self, pixels):
        return torch.tanh(pixels.flatten(1) @ self.w / 10.0)

    def encode_images(self, images):
        with torch.no_grad():
            return self._forward(self.preprocess(images))


class TinyTextEncoder:
    def encode_texts(self, texts):
        rows = [
            torch.randn(8, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
            for t in texts
        ]
        return torch.stack(rows)


def _data():
    rng = np.random.default_rng(0)
    n_train, n_test, caps = 24, 8, 2
    n = n_train + n_test
    pix = (rng.random((n, SIDE, SIDE, 3)) * 255).astype(np.uint8)
    groups = ["Animals & Nature", "Food & Drink"]
    ds = PairedDataset(
        name="tiny",
        image_ids=[f"i{i}" for i in range(n)],
        captions=[f"caption {i} {k}" for i in range(n) for k in range(caps)],
        caption_to_image=np.repeat(np.arange(n), caps),
        image_splits=["train"] * n_train + ["test"] * n_test,
        image_loader=lambda i: Image.fromarray(pix[i]),
        image_digests=[str(i) for i in range(n)],
        image_meta={"group": [groups[i % 2] for i in range(n)]},
    )
    enc = TinyImageEncoder()
    proj = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    feats = {}
    for split in ("train", "test"):
        sp = ds.split(split)
        img = enc.encode_images([sp.load_image(i) for i in range(sp.num_images)])
        t2i = torch.from_numpy(sp.caption_to_image.copy())
        txt = img[t2i] @ proj + 0.01 * torch.randn(len(t2i), 8, generator=torch.Generator())
        feats[split] = PairedFeatures(
            img, txt, t2i, sp.image_ids, sp.captions, sp.image_meta, {"dataset": "tiny"}
        )
    return ds, feats, (enc, TinyTextEncoder())


def test_default_compare_output_is_unchanged_and_extras_add_a_table(tmp_path):
    ds, feats, encoders = _data()
    plain = compare(feats, ["random"], [6], protocol=TINY)
    assert "extras" not in plain.to_json() and "Beyond recall" not in plain.markdown()
    off = compare(feats, ["random"], [6], protocol=TINY, extras=EvalExtras())
    assert [r.as_dict().keys() for r in off.rows] == [r.as_dict().keys() for r in plain.rows]
    assert [r.metrics_mean for r in off.rows] == [r.metrics_mean for r in plain.rows]
    assert off.extras_config is None and "Beyond recall" not in off.markdown()
    extras = EvalExtras(
        fidelity=True,
        transfer=True,
        robustness=True,
        zero_shot=True,
        top_k=3,
        transfer_widths=(4,),
        robustness_images=4,
        pgd_steps=2,
    )
    res = compare(
        feats,
        ["random"],
        [6],
        protocol=TINY,
        extras=extras,
        dataset=ds,
        encoders=encoders,
        out_dir=tmp_path,
    )
    md = res.markdown()
    assert "Beyond recall" in md and "fid rho" in md and "drop mean" in md and "zs group" in md
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["extras_config"]["top_k"] == 3
    full, coreset = data["rows"]
    assert "fidelity" not in full["extras"] and "fidelity" in coreset["extras"]
    fid = coreset["extras"]["fidelity"]["mean"]
    assert -1.0 <= fid["spearman"] <= 1.0 and 0.0 <= fid["top3"] <= 1.0
    assert set(coreset["extras"]["data_fidelity"]["per_item"]) == {
        "euclidean",
        "lorentz",
        "poincare",
    }
    rob = coreset["extras"]["robustness"]
    assert rob["images"] == 4 and rob["mean_drop"] == pytest.approx(
        sum(rob["drop"].values()) / len(rob["drop"])
    )
    tr = coreset["extras"]["transfer"]
    assert tr["source"] == "lorentz-linear-w8" and "lorentz-linear-w4" in tr["per_target"]
    # The source's recall is the compare row's own recall (reused, not re-run).
    assert tr["per_target"]["lorentz-linear-w8"] == coreset["mean"]
    zs = coreset["extras"]["zero_shot"]["group"]
    assert zs["num_classes"] == 2 and zs["chance"] == 50.0
    cols = extras_columns(coreset["extras"], 3)
    assert cols["transfer"] == tr["mean_excluding_source"]["mean"]


def test_missing_inputs_and_label_columns():
    _, feats, _ = _data()
    with pytest.raises(PipelineError, match="robustness needs"):
        compare(feats, ["random"], [6], protocol=TINY, extras=EvalExtras(robustness=True))
    with pytest.raises(PipelineError, match="zero-shot needs"):
        compare(feats, ["random"], [6], protocol=TINY, extras=EvalExtras(zero_shot=True))
    assert label_columns({"class_name": [], "group": []}) == ["class_name"]
    assert label_columns({"group": [], "subgroup": [], "x": []}) == ["group", "subgroup"]
    with pytest.raises(ValueError, match="not image metadata"):
        label_columns({"group": []}, ["label"])
    with pytest.raises(ValueError, match="class labels"):
        label_columns({"x": []})


def test_extras_config_is_validated():
    assert not EvalExtras().any and EvalExtras(transfer=True).any
    e = EvalExtras(fidelity=True, transfer_widths=[64])
    assert EvalExtras.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    with pytest.raises(ValueError, match="unknown key"):
        EvalExtras.from_dict({"fidelty": True})
    with pytest.raises(ValueError, match="perturbations"):
        EvalExtras(perturbations=("blur",))
    with pytest.raises(ValueError, match="geometries"):
        EvalExtras(transfer_geometries=("spherical",))
    with pytest.raises(ValueError, match="zero_shot_template"):
        EvalExtras(zero_shot_template="a photo")


def test_cli_flags_build_the_extras_config():
    from hypervldd.cli import _extras, build_parser

    args = build_parser().parse_args(
        ["compare", "--fidelity", "--transfer", "--extras", '{"top_k": 5, "transfer_widths": [64]}']
    )
    extras, dataset, encoders = _extras(args)
    assert extras == EvalExtras(fidelity=True, transfer=True, top_k=5, transfer_widths=(64,))
    assert dataset is None and encoders is None  # neither measure needs images or encoders
    assert _extras(build_parser().parse_args(["compare"])) == (None, None, None)
