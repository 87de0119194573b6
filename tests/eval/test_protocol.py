import json

import pytest

from hypervldd.eval import PROTOCOL_VERSION, EvalProtocol, StudentConfig


def test_json_round_trip():
    p = EvalProtocol(
        student=StudentConfig(geometry="poincare", width=64, clip_norm=None),
        seeds=(3, 4),
        selection="validation",
        lr_decay_epochs=(10, 20),
    )
    q = EvalProtocol.from_json(p.to_json())
    assert q == p
    assert json.loads(p.to_json())["version"] == PROTOCOL_VERSION


def test_defaults():
    p = EvalProtocol()
    assert p.selection == "final" and len(p.seeds) == 5
    assert p.selection_label == "final-epoch"
    assert "TEST" in p.replace(selection="test").selection_label


def test_unknown_keys_are_rejected_with_their_names():
    d = EvalProtocol().to_dict()
    d["epoch"] = 3
    with pytest.raises(ValueError, match="epoch"):
        EvalProtocol.from_dict(d)
    d = EvalProtocol().to_dict()
    d["student"]["widht"] = 3
    with pytest.raises(ValueError, match="widht"):
        EvalProtocol.from_dict(d)


def test_other_versions_are_refused():
    d = EvalProtocol().to_dict()
    d["version"] = "0"
    with pytest.raises(ValueError, match="version"):
        EvalProtocol.from_dict(d)


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"epochs": 0}, "epochs"),
        ({"selection": "best"}, "selection"),
        ({"seeds": ()}, "seeds"),
        ({"trainable": ("encoder",)}, "trainable"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"seeds": (1, 1)}, "distinct"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_invalid_values_name_the_argument(kw, word):
    with pytest.raises(ValueError, match=word):
        EvalProtocol(**kw)


def test_invalid_student():
    with pytest.raises(ValueError, match="geometry"):
        StudentConfig(geometry="sphere")
    with pytest.raises(ValueError, match="width"):
        StudentConfig(width=0)
