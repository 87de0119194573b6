"""The on-disk cache of full-data reference results."""

from __future__ import annotations

import json

import pytest

from hypervldd import pipeline
from hypervldd.eval import EvalProtocol, evaluate
from hypervldd.eval.result_cache import cached_result, result_key
from tests._synth import clustered_features

PROTO = EvalProtocol(epochs=2, seeds=(0,), batch_size=32)


@pytest.fixture(scope="module")
def data():
    train, _ = clustered_features(n_img=40, caps=2, seed=0)
    test, _ = clustered_features(n_img=20, caps=2, seed=1)
    return train, test


def test_key_changes_with_every_input(data) -> None:
    train, test = data
    other, _ = clustered_features(n_img=40, caps=2, seed=2)
    base = result_key(train, test, PROTO)
    assert base == result_key(train, test, PROTO)
    assert base != result_key(other, test, PROTO)
    assert base != result_key(train, other, PROTO)
    assert base != result_key(train, test, PROTO.replace(epochs=3))
    assert base != result_key(train, test, PROTO, val=other)
    assert base != result_key(train, test, PROTO, ks=(1, 5))


def test_miss_stores_then_hit_returns_the_same_result_without_computing(data, tmp_path) -> None:
    train, test = data
    key = result_key(train, test, PROTO)
    calls = []

    def compute():
        calls.append(1)
        return evaluate(train, test, PROTO)

    first, hit1 = cached_result(key, compute, cache_dir=tmp_path)
    second, hit2 = cached_result(key, compute, cache_dir=tmp_path)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert second.to_dict() == json.loads(json.dumps(first.to_dict()))


@pytest.mark.parametrize("damage", ["truncate", "foreign_key", "not_json", "edited", "no_sum"])
def test_damaged_or_foreign_files_are_recomputed(data, tmp_path, damage) -> None:
    train, test = data
    key = result_key(train, test, PROTO)
    ref, _ = cached_result(key, lambda: evaluate(train, test, PROTO), cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.json")
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "foreign_key":
        payload = json.loads(text)
        payload["key"] = "0" * 64
        payload["result"]["mean"]["mean"] = -1.0
        path.write_text(json.dumps(payload))
    elif damage == "edited":  # a plausible number, same key: only the sum can tell
        payload = json.loads(text)
        payload["result"]["mean"]["mean"] += 1.0
        path.write_text(json.dumps(payload))
    elif damage == "no_sum":
        payload = json.loads(text)
        del payload["sha256"]
        path.write_text(json.dumps(payload))
    else:
        path.write_bytes(b"\x00\x01 not json")
    calls = []

    def compute():
        calls.append(1)
        return ref

    res, hit = cached_result(key, compute, cache_dir=tmp_path)
    assert not hit and calls == [1] and res.mean == ref.mean
    assert json.loads(path.read_text())["key"] == key  # repaired on disk


def test_compare_reuses_the_full_data_reference(data, tmp_path, monkeypatch) -> None:
    train, test = data
    feats = {"train": train, "test": test}
    calls = []
    real = pipeline.evaluate_set

    def counting(tr, *a, **k):
        calls.append(tr is train)
        return real(tr, *a, **k)

    monkeypatch.setattr(pipeline.comparison, "evaluate_set", counting)  # where compare calls it
    kw = dict(protocol=PROTO, cache_dir=tmp_path)
    a = pipeline.compare(feats, ["random"], [10], **kw)
    b = pipeline.compare(feats, ["random"], [10], **kw)
    c = pipeline.compare(feats, ["random"], [10], reference_cache=False, **kw)
    # full data evaluated in the first and the uncached run only; random in all three
    assert calls.count(True) == 2 and calls.count(False) == 3
    assert a.rows[0].metrics_mean == b.rows[0].metrics_mean == c.rows[0].metrics_mean
