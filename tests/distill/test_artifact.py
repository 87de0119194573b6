import json
import os
import struct

import pytest
import torch
from safetensors.torch import save_file

from hypervldd.distill import ArtifactError, LowRankSimilarity, SyntheticSet, read_artifact_manifest


def _set(seed=0, m=6):
    g = torch.Generator().manual_seed(seed)
    return SyntheticSet(
        image=torch.randn(m, 5, generator=g),
        text=torch.randn(m, 3, generator=g),
        method="test-method",
        config={"a": 1, "nested": {"b": [1, 2]}},
        similarity=LowRankSimilarity(
            torch.ones(m), torch.randn(m, 2, generator=g), torch.zeros(m, 2), scale=0.5
        ),
        learned_lrs={"image": torch.tensor(0.1), "text": torch.tensor(0.2)},
        source_indices=torch.arange(m),
        data_fingerprint="abc",
        encoders={"image": "enc-i", "text": "enc-t"},
        seed=3,
        history=[{"step": 1, "loss": 0.5}],
    )


def test_round_trip(tmp_path):
    s = _set()
    p = s.save(tmp_path / "set.safetensors")
    r = SyntheticSet.load(p)
    assert torch.equal(r.image, s.image) and torch.equal(r.text, s.text)
    assert torch.equal(r.similarity.left, s.similarity.left) and r.similarity.scale == 0.5
    assert torch.equal(r.similarity_matrix(), s.similarity_matrix())
    assert float(r.learned_lrs["text"]) == pytest.approx(0.2)
    assert torch.equal(r.source_indices, s.source_indices)
    assert (r.method, r.config, r.encoders, r.seed, r.history) == (
        s.method,
        s.config,
        s.encoders,
        s.seed,
        s.history,
    )
    man = read_artifact_manifest(p)
    assert man["budget"] == {"pairs": 6, "storage_floats": s.storage_floats()}
    assert set(man["versions"]) >= {"hypervldd", "torch", "safetensors"}
    assert man["data_fingerprint"] == "abc"


def test_storage_floats_counts_everything():
    s = _set(m=6)
    # pairs 6*(5+3) + low-rank 6*(2*2+1) + scale 1 + two learned rates
    assert s.storage_floats() == 48 + 30 + 1 + 2
    dense = SyntheticSet(s.image, s.text, "m", similarity=torch.eye(6))
    assert dense.storage_floats() == 48 + 36


def test_saves_are_bit_identical(tmp_path):
    a = _set().save(tmp_path / "a.safetensors").read_bytes()
    b = _set().save(tmp_path / "b.safetensors").read_bytes()
    assert a == b


def test_truncated_file_is_refused(tmp_path):
    p = _set().save(tmp_path / "s.safetensors")
    raw = p.read_bytes()
    for cut in (4, 100, len(raw) - 7):
        p.write_bytes(raw[:cut])
        with pytest.raises(ArtifactError):
            SyntheticSet.load(p)


def test_flipped_data_byte_fails_the_checksum(tmp_path):
    p = _set().save(tmp_path / "s.safetensors")
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="checksum"):
        SyntheticSet.load(p)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"image": torch.zeros(2, 2)}, str(plain))
    with pytest.raises(ArtifactError, match="manifest"):
        SyntheticSet.load(plain)
    pickled = tmp_path / "x.pt"
    torch.save({"image": torch.zeros(2)}, pickled)
    with pytest.raises(ArtifactError):
        SyntheticSet.load(pickled)
    text = tmp_path / "x.json"
    text.write_text(json.dumps({"format": "hypervldd.synthetic_set"}))
    with pytest.raises(ArtifactError):
        SyntheticSet.load(text)


def test_tampered_manifest_is_refused(tmp_path):
    p = _set().save(tmp_path / "s.safetensors")
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    man = json.loads(header["__metadata__"]["hypervldd"])
    man["tensors"]["image"]["shape"] = [7, 5]
    header["__metadata__"]["hypervldd"] = json.dumps(man)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    p.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(ArtifactError, match="manifest says"):
        SyntheticSet.load(p)


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = _set(seed=0).save(tmp_path / "s.safetensors")
    before = p.read_bytes()

    def crash(*a, **k):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        _set(seed=1).save(p)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert SyntheticSet.load(p).seed == 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.safetensors"]  # no temp left


def test_invalid_sets_are_refused():
    with pytest.raises(ValueError, match="same positive number"):
        SyntheticSet(torch.zeros(3, 2), torch.zeros(2, 2), "m")
    with pytest.raises(ValueError, match="NaN"):
        SyntheticSet(torch.full((2, 2), torch.nan), torch.zeros(2, 2), "m")
    with pytest.raises(ValueError, match="similarity"):
        SyntheticSet(torch.zeros(2, 2), torch.zeros(2, 2), "m", similarity=torch.eye(3))
    with pytest.raises(ValueError, match="4-D"):
        SyntheticSet(torch.zeros(2, 2), torch.zeros(2, 2), "m", image_kind="pixels")


def test_saved_artifact_respects_the_umask(tmp_path):
    import stat

    saved = os.umask(0o027)
    try:
        p = _set().save(tmp_path / "set.safetensors")
    finally:
        os.umask(saved)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def _rewrite_manifest(path, edit):
    """Apply ``edit(manifest)`` to a container's JSON manifest, keeping the checksum entry."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    man = json.loads(header["__metadata__"]["hypervldd"])
    edit(man)
    header["__metadata__"]["hypervldd"] = json.dumps(man, sort_keys=True)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(method="herding"),
        lambda m: m.update(seed=4),
        lambda m: m.update(data_fingerprint="abd"),
        lambda m: m["encoders"].update(image="enc-j"),
        lambda m: m["config"].update(a=2),
        lambda m: m["history"][0].update(loss=0.25),
        lambda m: m["similarity"].update(scale=0.25),
    ],
)
def test_an_edited_manifest_field_fails_the_checksum(tmp_path, edit):
    p = _set().save(tmp_path / "s.safetensors")
    _rewrite_manifest(p, edit)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        SyntheticSet.load(p)


def test_every_one_bit_flip_is_refused(tmp_path):
    s = SyntheticSet(
        torch.ones(2, 2), torch.ones(2, 2), "m", data_fingerprint="f", history=[{"loss": 1.5}]
    )
    p = s.save(tmp_path / "s.safetensors")
    raw = p.read_bytes()
    for bit, every in ((0, 1), (5, 5)):  # bit 0 of every byte, bit 5 of every 5th
        loaded = []
        for i in range(0, len(raw), every):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            p.write_bytes(bytes(bad))
            try:
                SyntheticSet.load(p)
            except ArtifactError:
                continue
            loaded.append(i)
        assert loaded == [], f"bit {bit} flips at bytes {loaded[:10]} loaded silently"


def _legacy_v1(path, s):
    """An artifact as version 1 wrote it: the checksum covers the tensors only."""
    from safetensors.torch import save

    from hypervldd.distill._io import tensors_checksum

    man = s.manifest()
    tensors = s._tensors()
    man["format_version"] = 1
    man["tensors"] = {
        k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
        for k, v in tensors.items()
    }
    man["checksum"] = {"algorithm": "sha256", "value": tensors_checksum(tensors)}
    path.write_bytes(save(tensors, metadata={"hypervldd": json.dumps(man, sort_keys=True)}))
    return path


def test_version_1_artifacts_still_load_with_a_warning(tmp_path):
    s = _set()
    p = _legacy_v1(tmp_path / "old.safetensors", s)
    with pytest.warns(UserWarning, match="format version 1.*manifest .* is not"):
        r = SyntheticSet.load(p)
    assert torch.equal(r.image, s.image) and r.method == s.method
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0x01  # its tensors are still verified
    p.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="checksum"):
        SyntheticSet.load(p)
    # re-saving covers everything
    r.save(tmp_path / "new.safetensors")
    assert read_artifact_manifest(tmp_path / "new.safetensors")["format_version"] == 2
    assert read_artifact_manifest(tmp_path / "new.safetensors")["checksum"]["covers"] == [
        "manifest",
        "tensors",
    ]


def test_a_version_2_file_cannot_pass_as_version_1(tmp_path):
    p = _set().save(tmp_path / "s.safetensors")
    _rewrite_manifest(p, lambda m: m["checksum"].pop("covers"))
    with pytest.raises(ArtifactError, match="not a combination"):
        SyntheticSet.load(p)
