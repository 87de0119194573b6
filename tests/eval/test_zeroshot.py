"""Prompted zero-shot classification with a student."""

import pytest
import torch

from hypervldd.eval import StudentConfig
from hypervldd.eval.student import Student
from hypervldd.eval.zeroshot import (
    class_name,
    class_prompts,
    labels_from_names,
    zero_shot,
    zero_shot_accuracy,
)


def _tied_student(d, geometry):
    """A student whose image and text heads are the same map (image == text features meet)."""
    s = Student(d, d, StudentConfig(width=16, geometry=geometry), torch.Generator().manual_seed(0))
    s.text_head.load_state_dict(s.image_head.state_dict())
    return s


def test_prompts_from_raw_names():
    assert class_name("Smileys & Emotion") == "smileys and emotion"
    assert class_name("face-smiling") == "face smiling"
    assert class_prompts(["ankle boot", "T-shirt"]) == [
        "a photo of a ankle boot",
        "a photo of a t shirt",
    ]
    assert class_prompts(["Flags"], "an emoji of {class}") == ["an emoji of flags"]
    with pytest.raises(ValueError, match="class"):
        class_prompts(["a"], "no placeholder")
    labels, names = labels_from_names(["b", "a", "b", "c"])
    assert names == ["b", "a", "c"] and labels.tolist() == [0, 1, 0, 2]


@pytest.mark.parametrize("geometry", ["euclidean", "lorentz", "poincare"])
def test_images_equal_to_prompts_give_100_and_shuffled_give_chance(geometry):
    g = torch.Generator().manual_seed(1)
    c, n, d = 10, 2000, 24
    prompts = torch.randn(c, d, generator=g)
    labels = torch.randint(c, (n,), generator=g)
    images = prompts[labels]
    s = _tied_student(d, geometry)
    assert zero_shot_accuracy(s, images, labels, prompts) == 100.0
    shuffled = labels[torch.randperm(n, generator=g)]
    acc = zero_shot_accuracy(s, images, shuffled, prompts)
    assert 5.0 < acc < 15.0  # chance is 10 %; 2000 draws: std about 0.7 points
    res = zero_shot([s, s], images, labels, prompts, prompts=["x"] * c)
    assert res.accuracy == 100.0 and res.std == 0.0 and res.chance == 10.0
    assert res.num_classes == 10


def test_bad_labels():
    s = _tied_student(4, "lorentz")
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="labels must lie"):
        zero_shot_accuracy(s, x, torch.tensor([0, 1, 5]), torch.randn(2, 4))
    with pytest.raises(ValueError, match="shape"):
        zero_shot_accuracy(s, x, torch.tensor([0, 1]), torch.randn(2, 4))
    with pytest.raises(ValueError, match="at least one"):
        zero_shot([], x, torch.tensor([0, 1, 1]), torch.randn(2, 4))
