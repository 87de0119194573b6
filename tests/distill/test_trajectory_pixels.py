"""``mtt_pixels``: trajectory matching over pixels with LoRA on a tiny open_clip tower."""

import pytest

from hypervldd.distill.trajectory_pixels import MTTPixelsConfig
from hypervldd.eval._config import config_from_dict


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
