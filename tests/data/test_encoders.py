"""Frozen encoders: preprocessing, the real EfficientNet-Lite0 and MiniLM, open_clip, timm."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from PIL import Image

from hypervldd.data import (
    EfficientNetLite0Encoder,
    HFTextEncoder,
    ImagePreprocess,
    TextPreprocess,
    TimmImageEncoder,
    load_open_clip,
)
from hypervldd.data.emoji import NOTO_EMOJI_FONT_PATH, render_emoji

from ._helpers import MeanColourEncoder, needs_emoji


# -- preprocessing --------------------------------------------------------------------------
def test_image_preprocess_shape_range_and_centre_crop():
    img = Image.new("RGB", (60, 30), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 6, 30))  # a black band at the far left
    pre = ImagePreprocess(size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    x = pre([img, img.convert("L")])
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    # The 60x30 image becomes 32x16; the centre crop drops the band on the left.
    assert torch.allclose(x[0], torch.ones(3, 16, 16), atol=1e-6)
    with pytest.raises(ValueError, match=r"crop_pct must lie in \(0, 1\]"):
        ImagePreprocess(crop_pct=1.5)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        ImagePreprocess(interpolation="cubic")
    with pytest.raises(TypeError, match=r"images\[0\] must be a PIL image"):
        pre([np.zeros((4, 4, 3))])


def test_text_preprocess_blip_cleaning():
    clean = TextPreprocess.blip(max_words=5)
    assert clean("  A Dog, running; on the GRASS!!  fast ") == "a dog running on the"
    assert TextPreprocess()("  keep  Case, punct. ") == "keep Case, punct."
    with pytest.raises(TypeError, match="text must be a str"):
        clean(3)


def test_encoder_fingerprint_tracks_weights_and_preprocessing():
    a, b = MeanColourEncoder(seed=0), MeanColourEncoder(seed=0)
    assert a.fingerprint() == b.fingerprint()
    assert MeanColourEncoder(seed=1).fingerprint() != a.fingerprint()
    assert MeanColourEncoder(size=20).fingerprint() != a.fingerprint()
    c = MeanColourEncoder(seed=0)
    c.normalize = True
    assert c.fingerprint() != a.fingerprint()


def test_encode_images_validates_tensor_input():
    enc = MeanColourEncoder(size=16)
    assert enc.encode_images(torch.zeros(2, 3, 16, 16)).shape == (2, 8)
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, 16, 16\)"):
        enc.encode_images(torch.zeros(2, 3, 8, 8))
    assert enc.encode_images([]).shape == (0, 8)


# -- EfficientNet-Lite0 (real ImageNet weights) ---------------------------------------------
def test_efficientnet_shape_determinism_and_input_range(efficientnet):
    assert (efficientnet.id, efficientnet.dim) == ("efficientnet-lite0", 1280)
    pre = efficientnet.preprocess
    assert (pre.size, pre.mean, pre.std) == (224, (0.5,) * 3, (0.5,) * 3)  # pixels in [-1, 1]
    x = pre([Image.new("RGB", (10, 10), (0, 0, 0)), Image.new("RGB", (10, 10), (255,) * 3)])
    assert x[0].min() == -1.0 and x[1].max() == 1.0
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)) for _ in range(3)]
    f1 = efficientnet.encode_images(imgs)
    f2 = efficientnet.encode_images(imgs[::-1])
    assert f1.shape == (3, 1280) and f1.dtype == torch.float32
    assert torch.isfinite(f1).all() and (f1 >= 0).all()  # pooled ReLU6 activations
    assert torch.allclose(f1, f2.flip(0), atol=1e-4)  # no batch or order effects
    assert not torch.allclose(f1[0], f1[1])
    fp = efficientnet.fingerprint()
    assert fp == efficientnet.fingerprint() and len(fp) == 64


def test_efficientnet_fingerprint_changes_with_preprocessing(efficientnet):
    other = EfficientNetLite0Encoder(
        preprocess=ImagePreprocess(size=192, mean=(0.5,) * 3, std=(0.5,) * 3)
    )
    assert other.weights_digest() == efficientnet.weights_digest()
    assert other.fingerprint() != efficientnet.fingerprint()
    assert EfficientNetLite0Encoder(normalize=True).fingerprint() != efficientnet.fingerprint()


@needs_emoji
def test_efficientnet_recognises_rendered_objects(efficientnet):
    from PIL import ImageFont

    font = ImageFont.truetype(
        str(NOTO_EMOJI_FONT_PATH), size=109, layout_engine=ImageFont.Layout.RAQM
    )
    # ImageNet classes: 879 umbrella, 889 violin, 805 soccer ball.
    chars = {879: "\u2602\ufe0f", 889: "\U0001f3bb", 805: "\u26bd"}
    imgs = [render_emoji(c, font)[0] for c in chars.values()]
    top5 = efficientnet.logits(imgs).topk(5, dim=1).indices.tolist()
    for cls, row in zip(chars, top5, strict=True):
        assert cls in row, (cls, row)
    # Skin-tone variants of one emoji are nearer each other than to another emoji.
    wave = [render_emoji("\U0001f44b" + t, font)[0] for t in ("\U0001f3fb", "\U0001f3ff")]
    feats = efficientnet.encode_images(
        [*wave, imgs[2]],
    )
    feats = torch.nn.functional.normalize(feats, dim=1)
    assert feats[0] @ feats[1] > feats[0] @ feats[2] + 0.1


def test_efficientnet_missing_weights_say_what_to_provide(tmp_path):
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-57934424.pth"):
        EfficientNetLite0Encoder(weights=tmp_path / "absent.pth")


# -- all-MiniLM-L6-v2 (real weights) --------------------------------------------------------
def test_minilm_shape_norm_determinism_and_semantics(minilm):
    assert (minilm.id, minilm.dim) == ("all-MiniLM-L6-v2", 384)
    texts = ["a red apple", "a red fruit", "a sports car", "a dog running on the beach at sunset"]
    e = minilm.encode_texts(texts)
    assert e.shape == (4, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
    # Padding must not leak into the mean: a text alone equals the text in a padded batch.
    alone = minilm.encode_texts(["a red apple"])
    assert torch.allclose(alone[0], e[0], atol=1e-5)
    assert torch.equal(minilm.encode_texts(texts), e)
    # The features are ordinary tensors: usable as constants in a trained model's graph.
    w = torch.zeros(384, requires_grad=True)
    (e @ w).square().sum().backward()
    assert w.grad is not None and w.grad.shape == (384,)


def test_minilm_matches_sentence_transformers(minilm):
    # Reference values from sentence_transformers.SentenceTransformer(<same folder>).encode,
    # recorded once: loading that library in every test run costs seconds.
    texts = ["two children play soccer in a park", "a bowl of soup"]
    ref = torch.tensor(
        [
            [-0.0034, 0.01875, -0.01865, 0.01083, 0.03949, -0.00639],
            [-0.06154, 0.03607, 0.01465, 0.03671, -0.11028, 0.00754],
        ]
    )
    e = minilm.encode_texts(texts)
    assert torch.allclose(e[:, :6], ref, atol=2e-5)
    assert abs(float(e[0] @ e[1]) - (-0.1405162)) < 1e-4


def test_hf_text_encoder_missing_folder_says_what_to_provide(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json, the weights"):
        HFTextEncoder(tmp_path / "absent")
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_text_preprocess_is_part_of_the_fingerprint(minilm):
    # A shallow copy shares the loaded model; only the cleaning differs.
    blip = copy.copy(minilm)
    blip.text_preprocess = TextPreprocess.blip()
    assert blip.weights_digest() == minilm.weights_digest()
    assert blip.fingerprint() != minilm.fingerprint()
    assert torch.allclose(blip.encode_texts(["A DOG!"]), minilm.encode_texts(["a dog"]), atol=1e-6)


# -- open_clip and timm from local checkpoints ----------------------------------------------
def test_open_clip_from_local_checkpoint(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    from ._tiny_models import TINY_CLIP, save_open_clip

    ckpt = save_open_clip(tmp_path)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    model.load_state_dict(torch.load(ckpt))
    img_enc, txt_enc = load_open_clip(TINY_CLIP, ckpt)
    assert img_enc.dim == txt_enc.dim == 16
    assert img_enc.preprocess.size == 32
    x = img_enc.encode_images([Image.new("RGB", (50, 40), (200, 10, 10))])
    t = txt_enc.encode_texts(["a red square", "a cat"])
    assert x.shape == (1, 16) and t.shape == (2, 16)
    assert torch.allclose(t.norm(dim=1), torch.ones(2), atol=1e-5)
    # The loaded weights are the saved ones, not a fresh random init.
    with torch.no_grad():
        ref = model.eval().encode_text(open_clip.get_tokenizer(TINY_CLIP)(["a cat"]))
    assert torch.allclose(t[1], torch.nn.functional.normalize(ref, dim=-1)[0], atol=1e-5)
    assert img_enc.fingerprint() != txt_enc.fingerprint()
    with pytest.raises(FileNotFoundError, match="open_clip checkpoint not found .* nothing is"):
        load_open_clip("ViT-B-32", tmp_path / "absent.bin")
    with pytest.raises(ValueError, match="model_name must be an open_clip architecture"):
        load_open_clip("no-such-model", ckpt)


def test_timm_from_local_state_dict(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=7)
    ckpt = tmp_path / "r10.pth"
    torch.save(model.state_dict(), ckpt)
    enc = TimmImageEncoder("resnet10t", ckpt)
    assert enc.id == "timm:resnet10t" and enc.dim == model.num_features
    feats = enc.encode_images([Image.new("RGB", (40, 40), (0, 90, 200))] * 2)
    assert feats.shape == (2, enc.dim) and torch.isfinite(feats).all()
    model.reset_classifier(0)
    with torch.no_grad():
        ref = model.eval()(enc.preprocess([Image.new("RGB", (40, 40), (0, 90, 200))]))
    assert torch.allclose(feats[0], ref[0], atol=1e-5)
    with pytest.raises(FileNotFoundError, match="timm checkpoint not found"):
        TimmImageEncoder("resnet10t", tmp_path / "absent.pth")
    wrong = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save(wrong.state_dict(), tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit timm model 'resnet10t'"):
        TimmImageEncoder("resnet10t", tmp_path / "wrong.pth")


def test_loaders_force_offline_even_after_the_hub_was_imported(monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    from hypervldd.data.encoders import _set_offline

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    _set_offline()
    assert constants.HF_HUB_OFFLINE is True
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_hf_image_encoder_matches_the_model_on_its_own_processor(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=16,
    )
    model = transformers.ViTModel(cfg).eval()
    proc = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(tmp_path / "vit")
    proc.save_pretrained(tmp_path / "vit")
    from hypervldd.data import HFImageEncoder

    enc = HFImageEncoder(tmp_path / "vit", pooling="cls")
    assert enc.dim == 32 and enc.preprocess.resize == "squash"
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    with torch.no_grad():
        pixels = proc(images=img, return_tensors="pt")["pixel_values"]
        ref = model(pixel_values=pixels).last_hidden_state[:, 0]
    ours = enc.preprocess([img])
    # The processor may round a few resized pixels to the neighbouring uint8 level.
    diff = (ours - pixels).abs()
    assert diff.max() < 2.5 * 2 / 255 and diff.mean() < 1e-3
    with torch.no_grad():
        own = model(pixel_values=ours).last_hidden_state[:, 0]
    assert torch.allclose(enc.encode_images([img]), own, atol=1e-5)
    assert torch.allclose(own, ref, atol=0.05)
    assert HFImageEncoder(tmp_path / "vit", pooling="mean").fingerprint() != enc.fingerprint()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        HFImageEncoder(tmp_path / "absent")
