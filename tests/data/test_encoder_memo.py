"""Encoder memos: a warm feature cache builds no encoder, and a stale memo is never used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hypervldd.data.encoder_memo import LazyTextEncoder, memoised_encoder
from hypervldd.data.encoders import TextEncoder, TextPreprocess


class _ToyText(TextEncoder):
    """Features from a tiny linear layer whose weights come from a file."""

    def __init__(self, weights: Path) -> None:
        self.layer = torch.nn.Linear(1, 3)
        with torch.no_grad():
            self.layer.weight.fill_(float(weights.read_text()))
            self.layer.bias.zero_()
        self.id, self.dim = "toy", 3
        self.device = torch.device("cpu")
        self.text_preprocess = TextPreprocess()
        self.normalize = False

    def _module(self) -> torch.nn.Module:
        return self.layer

    def _forward(self, texts: list[str]) -> torch.Tensor:
        return self.layer(torch.tensor([[float(len(t))] for t in texts]))


@pytest.fixture
def setup(tmp_path: Path):  # noqa: ANN201
    weights = tmp_path / "w.txt"
    weights.write_text("2.0")
    builds: list[int] = []

    def build() -> _ToyText:
        builds.append(1)
        return _ToyText(weights)

    return weights, build, builds, tmp_path / "memos"


def test_second_call_builds_nothing_until_it_encodes(setup) -> None:  # noqa: ANN001
    weights, build, builds, memo_dir = setup
    first = memoised_encoder("toy", "text", build, weights, memo_dir)
    assert len(builds) == 1 and isinstance(first, _ToyText)
    (memo,) = memo_dir.glob("toy-*.json")
    assert json.loads(memo.read_text())["fingerprint"] == first.fingerprint()
    lazy = memoised_encoder("toy", "text", build, weights, memo_dir)
    assert isinstance(lazy, LazyTextEncoder) and isinstance(lazy, TextEncoder)
    assert len(builds) == 1 and not lazy.built
    assert (lazy.id, lazy.dim, lazy.fingerprint()) == (first.id, first.dim, first.fingerprint())
    assert not lazy.built  # the fingerprint came from the memo
    got = lazy.encode_texts(["ab", "abcd"])
    assert len(builds) == 2 and lazy.built
    assert torch.equal(got, first.encode_texts(["ab", "abcd"]))
    assert torch.equal(got, torch.tensor([[4.0] * 3, [8.0] * 3]))


def test_changed_weights_are_not_taken_from_the_memo(setup) -> None:  # noqa: ANN001
    weights, build, builds, memo_dir = setup
    old = memoised_encoder("toy", "text", build, weights, memo_dir)
    weights.write_text("3.00")  # another size: another source key
    new = memoised_encoder("toy", "text", build, weights, memo_dir)
    assert len(builds) == 2 and isinstance(new, _ToyText)
    assert new.fingerprint() != old.fingerprint()
    assert len(list(memo_dir.glob("toy-*.json"))) == 2


def test_memo_that_lies_is_caught_when_encoding(setup) -> None:  # noqa: ANN001
    weights, build, builds, memo_dir = setup
    memoised_encoder("toy", "text", build, weights, memo_dir)
    (memo,) = memo_dir.glob("toy-*.json")
    record = json.loads(memo.read_text())
    record["fingerprint"] = "0" * 64
    memo.write_text(json.dumps(record))
    lazy = memoised_encoder("toy", "text", build, weights, memo_dir)
    assert lazy.fingerprint() == "0" * 64
    with pytest.raises(RuntimeError, match="no longer matches its recorded fingerprint"):
        lazy.encode_texts(["a"])


def test_damaged_memo_is_rebuilt_and_bad_arguments(setup) -> None:  # noqa: ANN001
    weights, build, builds, memo_dir = setup
    memoised_encoder("toy", "text", build, weights, memo_dir)
    (memo,) = memo_dir.glob("toy-*.json")
    memo.write_text("{not json")
    enc = memoised_encoder("toy", "text", build, weights, memo_dir)
    assert isinstance(enc, _ToyText) and len(builds) == 2
    assert json.loads(memo.read_text())["fingerprint"] == enc.fingerprint()
    # The rewritten memo serves the next call.
    assert not isinstance(memoised_encoder("toy", "text", build, weights, memo_dir), _ToyText)
    with pytest.raises(ValueError, match="modality"):
        memoised_encoder("toy", "audio", build, weights, memo_dir)
    with pytest.raises(FileNotFoundError, match="weights of encoder 'toy'"):
        memoised_encoder("toy", "text", build, weights.parent / "missing", memo_dir)
