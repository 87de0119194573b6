"""Evaluation: the student protocol (a versioned config) and retrieval metrics.

* :class:`EvalProtocol` / :class:`StudentConfig`: what is trained, how, with which
  seeds, and which checkpoint is reported (final epoch by default).
* :func:`retrieval_metrics`: TR@K / IR@K / mean, chunked, BLIP semantics.
* :func:`evaluate`: train students on given pairs and score them on a test set.
"""

from .evaluate import Result, TrainPairs, as_train_pairs, evaluate, score_student
from .features import FeatureSet, as_feature_set, tensor_digest
from .metrics import (
    DEFAULT_KS,
    image_ranks,
    retrieval_metrics,
    retrieval_metrics_from_scores,
    text_ranks,
)
from .protocol import PROTOCOL_VERSION, EvalProtocol, StudentConfig
from .student import ProjectionHead, Student, symmetric_infonce, train_student

__all__ = [
    "PROTOCOL_VERSION",
    "EvalProtocol",
    "StudentConfig",
    "FeatureSet",
    "as_feature_set",
    "tensor_digest",
    "DEFAULT_KS",
    "retrieval_metrics",
    "retrieval_metrics_from_scores",
    "image_ranks",
    "text_ranks",
    "Student",
    "ProjectionHead",
    "symmetric_infonce",
    "train_student",
    "evaluate",
    "Result",
    "TrainPairs",
    "as_train_pairs",
    "score_student",
]
