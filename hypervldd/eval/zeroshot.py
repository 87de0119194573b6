"""Prompted zero-shot classification with a trained student.

Each class gets one prompt (default ``"a photo of a {class}"``), encoded by the frozen
text encoder; a labelled image is assigned the class whose prompt is nearest to it in
the student's space (largest ``Student.retrieval_score``, i.e. smallest geodesic
distance). Reported: top-1 accuracy in percent, and the chance level ``100 / C``.

Built-in label sets: Fashion-MNIST classes (``image_meta["class_name"]``) and the emoji
groups and subgroups (``image_meta["group"]``, ``["subgroup"]``); :func:`class_name`
turns their raw names into prompt words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .student import Student

__all__ = [
    "DEFAULT_TEMPLATE",
    "class_name",
    "class_prompts",
    "labels_from_names",
    "zero_shot_predict",
    "zero_shot_accuracy",
    "zero_shot",
    "ZeroShotResult",
]

DEFAULT_TEMPLATE = "a photo of a {class}"


def class_name(raw: str) -> str:
    """A raw label as prompt words: ``"Smileys & Emotion"`` -> ``"smileys and emotion"``,
    ``"face-smiling"`` -> ``"face smiling"``."""
    return " ".join(raw.replace("&", "and").replace("-", " ").replace("_", " ").lower().split())


def class_prompts(names: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One prompt per class: ``template`` with ``{class}`` replaced by :func:`class_name`."""
    if "{class}" not in template:
        raise ValueError(f"template must contain '{{class}}', got {template!r}")
    return [template.replace("{class}", class_name(n)) for n in names]


def labels_from_names(values: Sequence[Any]) -> tuple[torch.Tensor, list[str]]:
    """Per-image label values -> ``(labels (N,) int64, class names in first-seen order)``."""
    names = [str(v) for v in dict.fromkeys(values)]
    index = {n: i for i, n in enumerate(names)}
    return torch.tensor([index[str(v)] for v in values], dtype=torch.int64), names


@torch.no_grad()
def zero_shot_predict(
    student: Student, image_features: torch.Tensor, prompt_features: torch.Tensor
) -> torch.Tensor:
    """Index of the nearest prompt for each image, ``(N,)`` int64.

    Args:
        image_features: frozen image features ``(N, D_i)``.
        prompt_features: frozen text features of the class prompts ``(C, D_t)``.
    """
    if image_features.dim() != 2 or prompt_features.dim() != 2 or len(prompt_features) < 1:
        raise ValueError(
            f"image_features (N, D_i) and prompt_features (C >= 1, D_t) must be 2-D, got "
            f"{tuple(image_features.shape)} and {tuple(prompt_features.shape)}"
        )
    student.eval()
    img = student.encode_image(image_features.float())
    txt = student.encode_text(prompt_features.float())
    return student.retrieval_score(img, txt).argmax(1)


def zero_shot_accuracy(
    student: Student,
    image_features: torch.Tensor,
    labels: torch.Tensor,
    prompt_features: torch.Tensor,
) -> float:
    """Top-1 accuracy (percent) of :func:`zero_shot_predict` against ``labels (N,)``."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.shape != (image_features.shape[0],):
        raise ValueError(f"labels must have shape ({image_features.shape[0]},)")
    if len(labels) == 0:
        raise ValueError("labels must not be empty")
    if int(labels.min()) < 0 or int(labels.max()) >= prompt_features.shape[0]:
        raise ValueError(f"labels must lie in [0, {prompt_features.shape[0]}) (one per prompt)")
    pred = zero_shot_predict(student, image_features, prompt_features)
    return 100.0 * float((pred == labels).double().mean())


@dataclass
class ZeroShotResult:
    """Top-1 accuracy (percent) over students, with the chance level ``100 / C``."""

    accuracy: float
    std: float
    per_student: list[float]
    num_classes: int
    chance: float
    prompts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "std": self.std,
            "per_student": self.per_student,
            "num_classes": self.num_classes,
            "chance": self.chance,
            "prompts": self.prompts,
        }


def zero_shot(
    students: Sequence[Student],
    image_features: torch.Tensor,
    labels: torch.Tensor,
    prompt_features: torch.Tensor,
    *,
    prompts: Sequence[str] = (),
) -> ZeroShotResult:
    """:func:`zero_shot_accuracy` of each student; mean and population std."""
    if not students:
        raise ValueError("students must hold at least one trained student")
    acc = [zero_shot_accuracy(s, image_features, labels, prompt_features) for s in students]
    mean = sum(acc) / len(acc)
    std = (sum((a - mean) ** 2 for a in acc) / len(acc)) ** 0.5
    c = int(prompt_features.shape[0])
    return ZeroShotResult(mean, std, acc, c, 100.0 / c, list(prompts))
