"""A synthetic set is used only with the data and encoders it was distilled from."""

from __future__ import annotations

import pytest
import torch

from hypervldd.data import PairedFeatures
from hypervldd.distill import (
    ProvenanceError,
    SyntheticSet,
    check_provenance,
    get_distiller,
    provenance_mismatches,
)

from .._synth import clustered_features


def _features(seed: int, image_encoder: str = "enc-i", text_encoder: str = "enc-t"):
    fs, _ = clustered_features(n_img=20, caps=2, d_img=6, d_txt=4, seed=seed)
    return PairedFeatures(
        fs.image,
        fs.text,
        fs.txt2img,
        [f"i{k}" for k in range(20)],
        [f"caption {k}" for k in range(40)],
        metadata={"image_encoder": image_encoder, "text_encoder": text_encoder},
    )


def test_a_set_matches_the_features_it_was_distilled_from():
    real = _features(0)
    syn = get_distiller("random", {}).fit(real, 4, seed=0)
    assert syn.encoders == {"image": "enc-i", "text": "enc-t"} and syn.data_fingerprint
    assert provenance_mismatches(syn, real) == []
    assert check_provenance(syn, real) == []


def test_other_data_or_encoders_are_refused_naming_the_difference():
    syn = get_distiller("random", {}).fit(_features(0), 4, seed=0)
    with pytest.raises(ProvenanceError, match=r"data fingerprint: .*--allow-mismatch"):
        check_provenance(syn, _features(1), where="set.safetensors")
    with pytest.raises(ProvenanceError, match=r"image encoder: the set's is 'enc-i'.*'other'"):
        check_provenance(syn, _features(0, image_encoder="other"))
    bare = SyntheticSet(syn.image, syn.text, "m")  # records nothing: cannot be checked
    with pytest.raises(ProvenanceError, match="records no data fingerprint"):
        check_provenance(bare, _features(0))


def test_allow_mismatch_warns_and_returns_the_differences():
    syn = get_distiller("random", {}).fit(_features(0), 4, seed=0)
    with pytest.warns(UserWarning, match="PROVENANCE MISMATCH.*text encoder"):
        found = check_provenance(syn, _features(1, text_encoder="x"), allow_mismatch=True)
    assert len(found) == 2 and found[0].startswith("data fingerprint")
    assert found[1] == "text encoder: the set's is 'enc-t', the features' is 'x'"


def test_a_single_changed_feature_value_is_a_mismatch():
    real = _features(0)
    syn = get_distiller("random", {}).fit(real, 4, seed=0)
    changed = _features(0)
    changed.image_features[3, 2] = torch.nextafter(
        changed.image_features[3, 2], torch.tensor(float("inf"))
    )
    assert provenance_mismatches(syn, changed)[0].startswith("data fingerprint")
