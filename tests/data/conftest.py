"""Shared fixtures for the data-layer tests.

The real encoders are loaded once per test session (they take seconds each on a
busy CPU); small test-double encoders make the cache tests fast and let them
count how often the encoder actually ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hypervldd.data import load_caption_table
from hypervldd.data.emoji import EMOJI_TEST_PATH, NOTO_EMOJI_FONT_PATH

from ._helpers import COLOURS, make_png

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def tiny_table(tmp_path: Path) -> Path:
    """A CSV of 5 images x 2 captions, split 3 train / 1 val / 1 test."""
    splits = ["train", "train", "train", "val", "test"]
    lines = ["image,caption,split"]
    for (name, colour), split in zip(COLOURS.items(), splits, strict=True):
        make_png(tmp_path / "img" / name, colour)
        stem = name[:-4]
        lines.append(f"img/{name},a {stem} square,{split}")
        lines.append(f'img/{name},"a picture that is {stem}, mostly",{split}')
    table = tmp_path / "pairs.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


@pytest.fixture
def tiny_dataset(tiny_table: Path):
    return load_caption_table(tiny_table)


@pytest.fixture(scope="session")
def efficientnet():
    from hypervldd.data import efficientnet_lite0

    return efficientnet_lite0()


@pytest.fixture(scope="session")
def minilm():
    from hypervldd.data import minilm_l6_v2

    return minilm_l6_v2()


@pytest.fixture(scope="session")
def emoji_small(tmp_path_factory):
    """12 emoji rendered into a session cache folder."""
    if not (EMOJI_TEST_PATH.is_file() and NOTO_EMOJI_FONT_PATH.is_file()):
        pytest.skip("emoji source files not installed")
    from hypervldd.data import load_emoji

    cache = tmp_path_factory.mktemp("emoji-cache")
    return load_emoji(limit=12, cache_dir=cache, progress=False), cache
