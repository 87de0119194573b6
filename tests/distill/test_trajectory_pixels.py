"""``mtt_pixels``: trajectory matching over pixels with LoRA on a tiny open_clip tower."""

import re

import pytest
import torch
import torch.nn.functional as F

from hypervldd.distill import ExpertBuffer, prepare_real
from hypervldd.distill.experts import SIDES
from hypervldd.distill.lora import lora_layers, remove_lora
from hypervldd.distill.trajectory import MTTConfig
from hypervldd.distill.trajectory_pixels import (
    MTTPixels,
    MTTPixelsConfig,
    base_tower,
    build_pixel_expert,
    train_pixel_experts,
)
from hypervldd.eval import FeatureSet
from hypervldd.eval._config import config_from_dict
from hypervldd.eval.pixel import train_pixel_student


def test_config_reads_the_lora_keys_and_names_bad_ones():
    cfg = config_from_dict(
        MTTPixelsConfig,
        {"lora_rank": 4, "lora_alpha": 2, "lora_targets": ["*mlp*"], "experts": {"epochs": 3}},
    )
    assert cfg.lora_targets == ("*mlp*",) and cfg.lora_scale == 0.5
    assert cfg.pixel.backbone == "open_clip:ViT-B-32"
    bad = [
        ({"lora_rnk": 3}, r"unknown key\(s\) \['lora_rnk'\]"),
        ({"lora_rank": 0}, "lora_rank must be >= 1"),
        ({"lora_rank": 2.5}, "lora_rank must be an int"),
        ({"lora_alpha": 0}, "lora_alpha must be finite and non-zero"),
        ({"lora_targets": []}, "lora_targets must be a non-empty list"),
        ({"lora_init": "zeros"}, "lora_init must be one of"),
        ({"pixel": {"backbone": "convnet"}}, "pixel.backbone must be 'open_clip:<architecture>'"),
        ({"experts": {"lora_rank": 2}}, "experts.lora_rank adapts heads on features"),
        ({"max_start_epoch": 20}, "the target epoch would not exist"),
    ]
    for data, match in bad:
        with pytest.raises(ValueError, match=match):
            config_from_dict(MTTPixelsConfig, data)


# -- the method on a tiny open_clip tower ---------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A registered tiny open_clip architecture, its checkpoint, and 12 tiny images."""
    pytest.importorskip("open_clip")
    from ..data._tiny_models import TINY_CLIP, save_open_clip

    ckpt = save_open_clip(tmp_path_factory.mktemp("clip"))
    g = torch.Generator().manual_seed(0)
    n_img, k = 12, 3
    protos = torch.rand(k, 3, 4, 4, generator=torch.Generator().manual_seed(9))
    label = torch.arange(n_img) % k
    img = F.interpolate(protos[label], size=(16, 16), mode="nearest")
    img = (img + 0.1 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    t2i = torch.arange(n_img).repeat_interleave(2)
    emb = torch.randn(k, 6, generator=torch.Generator().manual_seed(8))
    txt = emb[label[t2i]] + 0.3 * torch.randn(len(t2i), 6, generator=g)
    return {"arch": TINY_CLIP, "ckpt": str(ckpt), "real": FeatureSet(img.flatten(1), txt, t2i)}, img


def _config(tiny, **over):
    info, _ = tiny
    cfg = {
        "syn_steps": 2,
        "max_start_epoch": 1,
        "lora_rank": 2,
        "lora_alpha": 2.0,
        "pixel": {
            "backbone": f"open_clip:{info['arch']}",
            "checkpoint": info["ckpt"],
            "augment": ["color", "flip"],
        },
        "student": {"width": 8},
        "experts": {"num_experts": 2, "epochs": 2, "batch_size": 8, "lr": 0.05},
        "engine": {"iterations": 2, "lr_image": 10.0, "lr_text": 0.1, "log_every": 1},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def test_experts_train_the_adapters_and_heads_and_the_buffer_round_trips(tiny, tmp_path):
    info, img = tiny
    cfg = MTTPixels(_config(tiny)).config
    data = prepare_real(info["real"])
    mem = train_pixel_experts(data, img, cfg)
    disk = train_pixel_experts(data, img, cfg, tmp_path / "buf")
    assert disk.key == mem.key
    image_names = mem.layouts["image"].names
    assert any(".lora_B" in n and n.startswith("backbone.visual.") for n in image_names)
    assert any(n.startswith("image_head.") for n in image_names)
    assert all(n.startswith("text_head.") for n in mem.layouts["text"].names)
    assert not any("original" in n for n in image_names)  # the frozen weights are not matched
    reopened = ExpertBuffer.open(tmp_path / "buf")
    for k in range(2):
        a, b = mem.load(k), reopened.load(k)
        for s in SIDES:
            assert a.trajectories[s].shape[0] == 3  # epochs 0..2
            assert torch.equal(a.trajectories[s], b.trajectories[s])
            assert not torch.equal(a.trajectories[s][0], a.trajectories[s][-1])  # it trained
        assert a.init_state.keys() == b.init_state.keys()
        assert not any(k.startswith("backbone.") and ".lora_" not in k for k in a.init_state)
    # The same buffer is reused, and refused for other images.
    again = train_pixel_experts(data, img, cfg, tmp_path / "buf")
    assert again.key == reopened.key
    with pytest.raises(ValueError, match="real_images"):
        train_pixel_experts(data, img.flip(-1), cfg, tmp_path / "buf")


def test_lora_targets_must_match_a_layer_of_the_tower(tiny):
    info, img = tiny
    cfg = MTTPixels(_config(tiny, lora_targets=["*mlp*", "*no_such_layer*"])).config
    with pytest.raises(ValueError, match=r"'\*no_such_layer\*' matches no nn.Linear layer.*c_fc"):
        train_pixel_experts(prepare_real(info["real"]), img, cfg)


def test_gradients_reach_the_pixels_and_recompute_equals_unroll(tiny):
    info, img = tiny
    grads = {}
    for mode in ("recompute", "unroll"):
        d = MTTPixels(_config(tiny, gradient=mode, batch_syn=3))
        data = prepare_real(info["real"])
        d._images = img.float()
        d._buffer_dir, d._progress = None, False
        gen = torch.Generator().manual_seed(0)
        src = torch.arange(4) * 2
        pixels, text = d._initial_tensors(data, src)
        pixels.requires_grad_(True)
        text.requires_grad_(True)
        d._make_opt(pixels, text)
        d._setup(data, 4, gen)
        loss = d._loss(0, pixels, text, data, gen)
        loss.backward()
        assert torch.isfinite(loss.detach()) and float(loss.detach()) > 0
        grads[mode] = (pixels.grad.clone(), text.grad.clone(), d._learned.log_lr.grad.clone())
    gp, gt, gl = grads["recompute"]
    for a, b in zip(grads["recompute"], grads["unroll"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)


def test_fit_gives_pixels_and_resume_is_bit_identical(tiny, tmp_path):
    info, img = tiny
    cfg = _config(tiny, engine={"iterations": 3, "checkpoint_every": 1, "keep_checkpoints": 5})
    full = MTTPixels(cfg).fit(
        info["real"], 4, seed=1, real_images=img, checkpoint_dir=tmp_path / "a"
    )
    assert full.image_kind == "pixels" and full.image.shape == (4, 3, 16, 16)
    assert float(full.image.min()) >= 0 and float(full.image.max()) <= 1
    assert full.config["resolved"]["image_source"] == "optimised-pixels"
    assert set(full.learned_lrs) == {"image", "text"}
    start = img[prepare_real(info["real"]).pair_group[full.source_indices]]
    assert not torch.equal(full.image, start)  # the pixels moved
    # Stop after step 2 (the step-3 checkpoint removed), then resume: the same set.
    (tmp_path / "a" / "step_00000003.safetensors").unlink()
    resumed = MTTPixels(cfg).fit(
        info["real"], 4, seed=1, real_images=img, checkpoint_dir=tmp_path / "a", resume=True
    )
    assert torch.equal(resumed.image, full.image) and torch.equal(resumed.text, full.text)
    for s in ("image", "text"):
        assert torch.equal(resumed.learned_lrs[s], full.learned_lrs[s])
    with pytest.raises(ValueError, match="needs real_images"):
        MTTPixels(cfg).fit(info["real"], 4, seed=1)


def test_full_rank_adapters_follow_the_full_weight_trajectory(tiny):
    # lora.py's correspondence inside the tower: rank = in_features <= out_features (the
    # MLP's c_fc, the square attention out_proj), A orthogonal and frozen, scale 1, biases
    # trained: SGD on B moves W = W0 + B A exactly as SGD on W does.
    info, img = tiny
    full_rank = {"lora_rank": 10**6, "lora_alpha": 1e6, "lora_init": "orthogonal"}
    cfg = MTTPixels(
        _config(
            tiny,
            **full_rank,
            lora_train_a=False,
            lora_train_bias=True,
            lora_targets=["*c_fc", "*out_proj"],
        )
    ).config
    assert cfg.lora_scale == 1.0
    data = prepare_real(info["real"])
    tower = base_tower(cfg).state_dict()
    shape, d_t = tuple(img.shape[1:]), int(data.pair_text.shape[1])
    adapted = build_pixel_expert(shape, d_t, cfg, tower, torch.Generator().manual_seed(5), 7)
    plain = build_pixel_expert(shape, d_t, cfg, tower, torch.Generator().manual_seed(5), 7)
    layers = {n: (p.lora_A.detach().clone()) for n, _, p in lora_layers(adapted.backbone.visual)}
    assert len(layers) == 2 and all(a.shape[0] == a.shape[1] for a in layers.values())
    remove_lora(plain.backbone.visual, merge=True)
    mods = dict(plain.backbone.visual.named_modules())
    for n in layers:
        mods[n].weight.requires_grad_(True)
    w0 = {n: mods[n].weight.detach().clone() for n in layers}
    proto = cfg.experts.protocol(cfg.student)
    for st in (adapted, plain):
        train_pixel_student(
            st,
            img,
            data.pair_text,
            proto,
            torch.Generator().manual_seed(11),
            image_index=data.pair_group,
            group=data.pair_group,
        )
    got = dict(adapted.backbone.visual.named_modules())
    for n, a in layers.items():
        lora = got[n].parametrizations.weight[0]
        assert float(lora.lora_B.detach().abs().max()) > 1e-4  # the adapter moved
        torch.testing.assert_close(
            w0[n] + lora.lora_B.detach() @ a, mods[n].weight.detach(), rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(
            got[n].bias.detach(), mods[n].bias.detach(), rtol=1e-4, atol=1e-5
        )
    for head in ("image_head", "text_head"):
        for (_, p), (_, q) in zip(
            getattr(adapted, head).named_parameters(),
            getattr(plain, head).named_parameters(),
            strict=True,
        ):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_compare_pixels_runs_mtt_pixels_when_named(tiny, tmp_path):
    from hypervldd.eval import EvalProtocol, StudentConfig
    from hypervldd.eval.protocol import PixelStudentConfig
    from hypervldd.pipeline import PIXEL_METHODS, _with_protocol_student, compare_pixels

    from .test_pixels import _paired

    assert "mtt_pixels" not in PIXEL_METHODS  # too slow for the default list
    ds, feats = _paired()
    proto = EvalProtocol(
        epochs=2,
        seeds=(0,),
        student=StudentConfig(width=4),
        pixel=PixelStudentConfig(width=4, depth=2),
    )
    cfg = _config(tiny)
    del cfg["student"]  # compare gives the method the protocol's student
    res = compare_pixels(
        ds,
        feats,
        ["mtt_pixels"],
        [4],
        image_size=8,
        protocol=proto,
        references=False,
        method_configs={"mtt_pixels": cfg},
        out_dir=tmp_path,
    )
    (row,) = res.rows
    assert row.method == "mtt_pixels" and row.budget == 4
    assert row.storage_floats == 4 * (3 * 8 * 8 + 6) + 2  # pixels, texts, two step sizes
    assert 0 <= row.metrics_mean["mean"] <= 100
    assert _with_protocol_student("mtt_pixels", {}, proto)["student"]["width"] == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods", "mtt"], "pixel methods: ("),
        (["--methods", "mtt_pixels", "--method-configs", '{"pixel_match": {}}'], "not among"),
    ],
)
def test_cli_pixel_compare_names_mtt_pixels_and_checks_its_config(
    argv, message, capsys, monkeypatch
):
    import hypervldd.cli as cli

    def no_features(args):  # the checks come before features are prepared
        raise AssertionError("features prepared before the methods were checked")

    monkeypatch.setattr(cli, "_features", no_features)
    assert cli.main(["compare", "--pixels", "8", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and ("mtt_pixels" in err)


def test_shared_matching_checks_name_the_pixel_method():
    # MTTConfig and MTTPixelsConfig validate their common fields with one checker;
    # the pixel method's messages start with its name, the feature method's do not.
    cases = [
        ({"syn_steps": 0}, "syn_steps must be >= 1, got 0"),
        ({"batch_syn": 1}, "batch_syn must be >= 2 or None, got 1"),
        ({"lr_init": 0.0}, "lr_init must be > 0"),
        ({"lr_lr": -1.0}, "lr_lr and lr_similarity must be >= 0"),
        ({"normalization": "both"}, "normalization must be 'per_modality' or 'merged'"),
        ({"similarity_rank": -1}, "similarity_rank must be >= 0"),
        ({"gradient": "tesla"}, "gradient must be 'recompute' or 'unroll'"),
    ]
    for data, msg in cases:
        with pytest.raises(ValueError, match="^" + re.escape(msg)):
            MTTConfig(**data)
        with pytest.raises(ValueError, match="^" + re.escape("mtt_pixels: " + msg)):
            MTTPixelsConfig(**data)
