"""Pixel-space distillation: real-image coresets and random-ConvNet pixel matching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypervldd.distill import (
    PixelMatch,
    SyntheticSet,
    available_methods,
    coreset_pixels,
    get_distiller,
)
from hypervldd.distill.engine import DivergenceError
from hypervldd.distill.pixels import matching_loss
from hypervldd.eval import FeatureSet
from hypervldd.eval.pixel import CLIP_MEAN, CLIP_STD, ConvNet


def _tiny(n_img=24, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(k, 3, 4, 4, generator=torch.Generator().manual_seed(9))
    label = torch.arange(n_img) % k
    img = F.interpolate(protos[label], size=(16, 16), mode="nearest")
    img = (img + 0.1 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    t2i = torch.arange(n_img).repeat_interleave(2)
    emb = torch.randn(k, 10, generator=torch.Generator().manual_seed(8))
    txt = emb[label[t2i]] + 0.3 * torch.randn(len(t2i), 10, generator=g)
    # Image *features* are only needed for bookkeeping here: the flattened pixels.
    return FeatureSet(img.flatten(1), txt, t2i), img


CFG = {"engine": {"iterations": 15, "real_batch_size": 16, "log_every": 5}, "width": 8, "depth": 2}


def _probe(syn_img, syn_txt, img, fs, nets=6):
    """Mean matching loss over a fixed set of random networks (no augmentation)."""
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for _ in range(nets):
            net = ConvNet((3, 16, 16), 8, 2, "instance", g)
            x_real = (img[fs.txt2img] - mean) / std
            loss = matching_loss(
                net,
                x_real,
                F.normalize(fs.text, dim=-1),
                (syn_img - mean) / std,
                F.normalize(syn_txt, dim=-1),
                1.0,
            )
            total += float(loss)
    return total / nets


def test_coreset_pixels_known_answer(tmp_path):
    fs, img = _tiny()
    feat = get_distiller("random").fit(fs, 5, seed=1)
    px = coreset_pixels(feat, img, fs)
    assert px.image_kind == "pixels" and px.config["resolved"]["image_source"] == "real-image"
    assert torch.equal(px.image, img[fs.txt2img[feat.source_indices]])
    assert torch.equal(px.text, feat.text)
    assert px.storage_floats() == 5 * (3 * 16 * 16 + 10)
    back = SyntheticSet.load(px.save(tmp_path / "px.safetensors"))
    assert torch.equal(back.image, px.image) and back.image_kind == "pixels"
    with pytest.raises(ValueError, match="one image per real image"):
        coreset_pixels(feat, img[:3], fs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        coreset_pixels(feat, img * 2, fs)


def test_pixel_match_lowers_the_matching_loss_and_is_seeded():
    fs, img = _tiny()
    pm = PixelMatch(CFG)
    syn = pm.fit(fs, 4, seed=0, real_images=img)
    assert syn.image_kind == "pixels" and syn.image.shape == (4, 3, 16, 16)
    assert float(syn.image.min()) >= 0 and float(syn.image.max()) <= 1
    start = img[fs.txt2img[syn.source_indices]]  # the initial pixels
    assert not torch.equal(syn.image, start)  # gradients reached the pixels
    init_txt = F.normalize(fs.text[syn.source_indices], dim=-1)
    before = _probe(start, init_txt, img, fs)
    after = _probe(syn.image, syn.text, img, fs)
    assert after < 0.9 * before, (before, after)
    assert [h["step"] for h in syn.history] == [5, 10, 15]
    again = pm.fit(fs, 4, seed=0, real_images=img)
    assert torch.equal(again.image, syn.image) and torch.equal(again.text, syn.text)


def test_pixel_match_errors():
    fs, img = _tiny()
    with pytest.raises(ValueError, match="real_images"):
        PixelMatch(CFG).fit(fs, 4)
    with pytest.raises(ValueError, match="augment"):
        PixelMatch(augment=("rotate",))
    with pytest.raises(ValueError, match="iterations"):
        PixelMatch({"engine": {"iterations": 0}})
    with pytest.raises(ValueError, match="lam"):
        PixelMatch(lam=-1.0)


class _Stop(Exception):
    pass


def test_pixel_match_resumes_to_the_identical_artifact(tmp_path):
    # The engine's loop: checkpoints every 5 steps; a run killed in step 10's validation
    # (before that step's checkpoint) resumes from step 5 and returns the same set as an
    # uninterrupted run.
    fs, img = _tiny()
    cfg = {**CFG, "engine": {**CFG["engine"], "checkpoint_every": 5, "validate_every": 5}}

    def ok(syn, step):
        return {"pixels": float(syn.image.mean())}

    def stop(syn, step):
        if step == 10:
            raise _Stop
        return ok(syn, step)

    full = PixelMatch(cfg).fit(fs, 4, seed=2, real_images=img, checkpoint_dir=tmp_path / "a")
    with pytest.raises(_Stop):
        PixelMatch(cfg).fit(
            fs, 4, seed=2, real_images=img, checkpoint_dir=tmp_path / "b", validate=stop
        )
    resumed = PixelMatch(cfg).fit(
        fs, 4, seed=2, real_images=img, checkpoint_dir=tmp_path / "b", resume=True, validate=ok
    )
    assert torch.equal(resumed.image, full.image) and torch.equal(resumed.text, full.text)
    assert resumed.image_kind == "pixels"
    assert resumed.config["resolved"]["image_source"] == "optimised-pixels"
    assert [h["step"] for h in resumed.history if "validation" in h] == [5, 10, 15]
    assert [p.name for p in sorted((tmp_path / "b").iterdir())][-1] == "step_00000015.safetensors"
    # The checkpoint's identity holds the real images: resuming on other pixels is refused.
    with pytest.raises(ValueError, match="different run"):
        PixelMatch(cfg).fit(
            fs, 4, seed=2, real_images=1 - img, checkpoint_dir=tmp_path / "b", resume=True
        )


def test_pixel_match_stops_on_divergence_and_names_the_checkpoint(tmp_path):
    # A text step of 1e38 overflows at step 2; the step-1 checkpoint stays and is named.
    fs, img = _tiny()
    eng = {**CFG["engine"], "lr_text": 1e38, "checkpoint_every": 1}
    with pytest.raises(DivergenceError, match="became (inf|nan|NaN)") as err:
        PixelMatch({**CFG, "engine": eng}).fit(
            fs, 4, seed=0, real_images=img, checkpoint_dir=tmp_path
        )
    good = tmp_path / "step_00000001.safetensors"
    assert str(good) in str(err.value) and "engine.lr_text" in str(err.value)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".safetensors"] == [good.name]


def test_pixel_match_stays_out_of_the_feature_registry():
    # Feature comparisons (the CLI default, the demo) run every registered method on
    # features alone; pixel_match needs pixels.
    assert "pixel_match" not in available_methods()
    assert PixelMatch.method == "pixel_match"


def _paired(n_img=16, k=4):
    """A tiny in-memory PairedDataset (train/test) and matching PairedFeatures."""
    import numpy as np
    from PIL import Image

    from hypervldd.data import PairedDataset
    from hypervldd.data.features import PairedFeatures

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    label = [i % k for i in range(n_img)]
    splits = ["train" if i < 12 else "test" for i in range(n_img)]
    caps = [f"a {['red', 'green', 'blue', 'yellow'][c]} square" for c in label for _ in range(2)]
    ds = PairedDataset(
        name="squares",
        image_ids=[f"im{i}" for i in range(n_img)],
        captions=caps,
        caption_to_image=np.repeat(np.arange(n_img), 2),
        image_splits=splits,
        image_loader=lambda i: Image.new("RGB", (12, 12), colours[label[i]]),
        image_digests=[str(i) for i in range(n_img)],
    )
    emb = torch.randn(k, 6, generator=torch.Generator().manual_seed(0))
    feats = {}
    for name in ("train", "test"):
        sp = ds.split(name)
        lab = torch.tensor([label[i] for i in sp.image_indices])
        cti = torch.from_numpy(sp.caption_to_image)
        feats[name] = PairedFeatures(
            image_features=emb[lab] + 0.01 * torch.randn(len(lab), 6),
            text_features=emb[lab[cti]] + 0.01 * torch.randn(len(cti), 6),
            caption_to_image=cti,
            image_ids=sp.image_ids,
            captions=sp.captions,
            metadata={"split": name, "dataset": "squares"},
        )
    return ds, feats


def test_pipeline_pixel_split_distill_and_compare(tmp_path):
    from hypervldd.eval import EvalProtocol, StudentConfig
    from hypervldd.eval.protocol import PixelStudentConfig
    from hypervldd.pipeline import PipelineError, compare_pixels, distill_pixels, pixel_split

    ds, feats = _paired()
    px = pixel_split(ds, feats["train"], image_size=8)
    assert px.images.shape == (12, 3, 8, 8)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 8, 8)
    torch.testing.assert_close(px.images[0], red)  # image 0 is red (label 0)
    syn = distill_pixels(feats["train"], px.images, "pds", 4, config={"n_init": 2, "max_iter": 5})
    assert syn.image_kind == "pixels" and syn.config["resolved"]["decoder"]["name"]
    colours = {tuple(im[:, 0, 0].tolist()) for im in syn.image}
    assert len(colours) == 4  # one prototype per colour class, each a real image
    with pytest.raises(PipelineError, match="pixel"):
        distill_pixels(feats["train"], px.images, "covmatch", 4)
    proto = EvalProtocol(
        epochs=2,
        seeds=(0,),
        student=StudentConfig(width=8),
        pixel=PixelStudentConfig(width=4, depth=2),
    )
    res = compare_pixels(
        ds,
        feats,
        ["random", "pixel_match"],
        [4],
        image_size=8,
        protocol=proto,
        method_configs={"pixel_match": {"engine": {"iterations": 2}, "width": 4, "depth": 2}},
        out_dir=tmp_path,
    )
    assert [r.method for r in res.rows] == ["full data", "random", "pixel_match"]
    assert res.rows[1].storage_floats == 4 * (3 * 8 * 8 + 6)
    assert res.dataset["representation"] == "pixels" and (tmp_path / "results.md").is_file()
