"""Encoders named on the command line: timm:, hf: (transformers and sentence-transformers)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from hypervldd.data.encoder_specs import (
    build_encoder_pair,
    load_sentence_transformer,
    third_party_progress,
)

from ._tiny_models import save_bert, save_open_clip, save_timm, save_vit

pytest.importorskip("transformers")


def test_sentence_transformers_folder_sets_pooling_normalisation_and_length(tmp_path):
    folder = save_bert(tmp_path / "st", sentence_transformers=True, pooling="cls")
    enc = load_sentence_transformer(folder)
    assert (enc.pooling, enc.normalize, enc.max_length, enc.dim) == ("cls", True, 12, 16)
    assert enc.id == "hf:st"
    texts = ["a red square", "the blue picture of a photo"]
    got = enc.encode_texts(texts)
    with torch.no_grad():
        batch = enc.tokenizer(texts, padding=True, return_tensors="pt")
        ref = enc.model(**batch).last_hidden_state[:, 0]
    assert torch.allclose(got, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)
    plain = load_sentence_transformer(save_bert(tmp_path / "plain"))
    assert (plain.pooling, plain.normalize) == ("mean", True)
    assert plain.fingerprint() != enc.fingerprint()


def test_encoder_strings_build_each_kind(tmp_path):
    ckpt = save_timm(tmp_path / "timm")
    bert = save_bert(tmp_path / "bert")
    vit = save_vit(tmp_path / "vit")
    img, txt = build_encoder_pair("timm:resnet10t", f"hf:{bert}", timm_checkpoint=ckpt)
    assert img.id == "timm:resnet10t" and img.dim == 512 and txt.dim == 16
    x = img.encode_images([Image.new("RGB", (40, 30), (9, 80, 200))])
    assert x.shape == (1, 512) and torch.isfinite(x).all()
    img2, _ = build_encoder_pair(f"hf:{vit}", f"hf:{bert}")
    assert img2.id == "hf:vit" and img2.dim == 32 and img2.preprocess.size == 32
    with pytest.raises(ValueError, match="needs a local checkpoint .*--timm-checkpoint"):
        build_encoder_pair("timm:resnet10t", f"hf:{bert}")
    with pytest.raises(ValueError, match="timm:NAME models are image encoders"):
        build_encoder_pair(f"hf:{vit}", "timm:resnet10t", timm_checkpoint=ckpt)
    with pytest.raises(ValueError, match="image_encoder must be .*hf:FOLDER"):
        build_encoder_pair("resnet", f"hf:{bert}")
    with pytest.raises(FileNotFoundError, match="no Hugging Face model folder"):
        build_encoder_pair(f"hf:{tmp_path / 'absent'}", f"hf:{bert}")


def test_open_clip_towers_share_one_model(tmp_path):
    pytest.importorskip("open_clip")
    ckpt = save_open_clip(tmp_path / "clip")
    from ._tiny_models import TINY_CLIP

    img, txt = build_encoder_pair(
        f"open_clip:{TINY_CLIP}", f"open_clip:{TINY_CLIP}", open_clip_checkpoint=ckpt
    )
    assert img.dim == txt.dim == 16 and img.weights_digest() == txt.weights_digest()
    with pytest.raises(ValueError, match="needs a local checkpoint file"):
        build_encoder_pair(f"open_clip:{TINY_CLIP}", "minilm-l6-v2")


def test_third_party_progress_is_switched_off_and_restored():
    from transformers.utils import logging as tlog

    assert tlog.is_progress_bar_enabled()
    with third_party_progress(False):
        assert not tlog.is_progress_bar_enabled()
    assert tlog.is_progress_bar_enabled()
    with third_party_progress(True):
        assert tlog.is_progress_bar_enabled()
