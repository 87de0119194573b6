"""The pixel protocol: a student with an image encoder trained on tiny images (CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hypervldd.distill import SyntheticSet
from hypervldd.eval import EvalProtocol, StudentConfig, evaluate
from hypervldd.eval.pixel import (
    ConvNet,
    PixelSet,
    PixelStudent,
    evaluate_pixels,
    is_pixel_data,
    score_pixel_student,
)
from hypervldd.eval.protocol import PixelStudentConfig

SIDE = 16


def tiny_pixels(n_img: int, k: int = 6, caps: int = 2, seed: int = 0) -> PixelSet:
    """k colour-pattern classes at 3x16x16; captions are noisy class embeddings."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(k, 3, 4, 4, generator=torch.Generator().manual_seed(99))
    label = torch.arange(n_img) % k
    img = torch.nn.functional.interpolate(protos[label], size=(SIDE, SIDE), mode="nearest")
    img = (img + 0.1 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    emb = torch.randn(k, 12, generator=torch.Generator().manual_seed(98))
    t2i = torch.arange(n_img).repeat_interleave(caps)
    txt = emb[label[t2i]] + 0.3 * torch.randn(len(t2i), 12, generator=g)
    return PixelSet(img, txt, t2i)


def chance_mean(n_img: int, caps: int, ks=(1, 5, 10)) -> float:
    """Expected mean recall (%) of random scores: IR@K = K / N_img; TR@K = P(one of
    ``caps`` captions among the top K of N_txt)."""
    n_txt = n_img * caps
    ir = [min(k, n_img) / n_img for k in ks]
    tr = [1 - math.comb(n_txt - caps, k) / math.comb(n_txt, k) for k in ks]
    return 100 * (sum(ir) + sum(tr)) / (2 * len(ks))


PROTO = EvalProtocol(
    epochs=12,
    batch_size=32,
    lr_decay_epochs=(),
    seeds=(0,),
    student=StudentConfig(width=32),
    pixel=PixelStudentConfig(width=16, depth=2),
)


def test_student_on_real_pixels_beats_chance_and_is_seeded():
    train, test = tiny_pixels(60, seed=0), tiny_pixels(30, seed=1)
    res = evaluate(train, test, PROTO)  # dispatches to the pixel student
    chance = chance_mean(30, 2)
    assert res.mean["mean"] > chance + 15, (res.mean, chance)
    assert res.train_losses[0] < math.log(32)  # below the loss of a collapsed student
    again = evaluate_pixels(train, test, PROTO)
    assert again.metrics_per_seed == res.metrics_per_seed
    assert res.selection == "final-epoch" and res.protocol["pixel"]["backbone"] == "convnet"


def test_pixel_synthetic_set_dispatches_and_counts_its_storage():
    train, test = tiny_pixels(12, seed=0), tiny_pixels(12, seed=1)
    first = train.txt2img.unique_consecutive(return_counts=False)
    idx = torch.tensor([int((train.txt2img == i).nonzero()[0]) for i in first])
    syn = SyntheticSet(
        image=train.images[train.txt2img[idx]],
        text=train.text[idx],
        method="random",
        image_kind="pixels",
    )
    assert is_pixel_data(syn) and not is_pixel_data((torch.zeros(3, 5), torch.zeros(3, 2)))
    proto = PROTO.replace(epochs=2)
    res = evaluate(syn, test, proto)
    assert res.n_train_pairs == 12 and res.train_storage_floats == 12 * (3 * SIDE * SIDE + 12)
    # The same pairs as a tuple train the same student.
    res2 = evaluate((syn.image, syn.text), test, proto)
    assert res2.metrics_per_seed == res.metrics_per_seed


def test_augmentation_changes_training_but_not_scoring():
    train, test = tiny_pixels(12), tiny_pixels(12, seed=1)
    gen = torch.Generator().manual_seed(0)
    st = PixelStudent((3, SIDE, SIDE), 12, PROTO.student, PROTO.pixel, gen)
    st.eval()
    with torch.no_grad():
        plain = st.image_tangent(train.images)
        aug = st.image_tangent(train.images, torch.Generator().manual_seed(1))
        aug2 = st.image_tangent(train.images, torch.Generator().manual_seed(1))
    assert not torch.allclose(plain, aug) and torch.equal(aug, aug2)
    a = score_pixel_student(st, test)
    assert a == score_pixel_student(st, test)  # no randomness at scoring time


def test_validation_selection_and_shape_errors():
    train, val, test = tiny_pixels(12), tiny_pixels(12, seed=2), tiny_pixels(12, seed=1)
    proto = PROTO.replace(epochs=2, eval_every=1, selection="validation")
    res = evaluate(train, test, proto, val_features=val)
    assert res.selection == "validation-selected" and res.selected_epochs[0] in (1, 2)
    with pytest.raises(ValueError, match="val"):
        evaluate(train, test, proto)
    small = PixelSet(train.images[:, :, :8, :8], train.text, train.txt2img)
    with pytest.raises(ValueError, match="resize"):
        evaluate(small, test, PROTO)


def test_convnet_shapes_and_bad_configs():
    g = torch.Generator().manual_seed(0)
    net = ConvNet((3, 16, 16), width=8, depth=3, norm="instance", generator=g)
    assert net.out_dim == 8 * 2 * 2
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 32)
    with pytest.raises(ValueError, match="too small"):
        ConvNet((3, 4, 4), width=8, depth=3, norm="none", generator=g)
    with pytest.raises(ValueError, match="backbone"):
        PixelStudentConfig(backbone="resnet")
    with pytest.raises(ValueError, match="augment"):
        PixelStudentConfig(augment=("rotate",))
    with pytest.raises(ValueError, match="checkpoint"):
        PixelStudentConfig(checkpoint="x.pt")
    d = EvalProtocol(pixel=PixelStudentConfig(augment=("flip",))).to_dict()
    assert EvalProtocol.from_dict(d).pixel.augment == ("flip",)
    d["pixel"]["widht"] = 3
    with pytest.raises(ValueError, match="widht"):
        EvalProtocol.from_dict(d)
    with pytest.raises(ValueError, match="images"):
        PixelSet(torch.rand(2, 8), torch.rand(2, 3), torch.arange(2))


def test_open_clip_backbone_random_init_is_seeded_and_loads_a_checkpoint(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from safetensors.torch import save_file

    from hypervldd.eval.pixel import OpenCLIPBackbone

    # A tiny registered architecture keeps this fast; real ones (ViT-S-32, ...) work alike.
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 16,
        },
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    }
    (tmp_path / "hvd-test-pixel-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "hvd-test-pixel-clip.json")
    arch = "hvd-test-pixel-clip"
    pcfg = PixelStudentConfig(backbone=f"open_clip:{arch}", augment=())
    x = torch.rand(2, 3, SIDE, SIDE)  # resized to 32x32 inside
    outs = []
    for _ in range(2):
        st = PixelStudent((3, SIDE, SIDE), 12, StudentConfig(width=8), pcfg, torch.Generator())
        st.eval()
        with torch.no_grad():
            outs.append(st.image_tangent(x))
    assert outs[0].shape == (2, 8) and torch.equal(outs[0], outs[1])
    a = OpenCLIPBackbone(arch, None, torch.Generator().manual_seed(0))
    c = OpenCLIPBackbone(arch, None, torch.Generator().manual_seed(1))
    assert a.out_dim == 16 and a.size == (32, 32)
    assert not torch.equal(a(x), c(x))
    # A full open_clip state dict ("visual." prefix) from a local file.
    path = tmp_path / "model.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in a.visual.state_dict().items()}, path)
    d = OpenCLIPBackbone(arch, path, torch.Generator().manual_seed(1))
    torch.testing.assert_close(d(x), a(x), rtol=0, atol=0)
    bad = PixelStudentConfig(backbone="open_clip:NoSuchNet")
    with pytest.raises(ValueError, match="NoSuchNet"):
        PixelStudent((3, SIDE, SIDE), 12, StudentConfig(width=8), bad, torch.Generator())
