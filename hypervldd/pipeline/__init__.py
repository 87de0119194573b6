"""The main job as functions: prepare features, distil, evaluate, compare, inspect.

The command line (:mod:`hypervldd.cli`) and ``hypervldd demo`` are thin layers
over these. Everything works on the frozen-encoder feature protocol: a dataset
is encoded once (cached, keyed by data + encoder fingerprints), methods distil
the training split's features into a budget of synthetic pairs, and every
synthetic set is scored by the same versioned :class:`~hypervldd.eval.EvalProtocol`.

Each verb lives in a module named for it: ``features`` (encoders, datasets,
``prepare``), ``distillation`` (``distill``), ``evaluation`` (``evaluate_set``),
``comparison`` (``compare``) and ``results`` (its rows, tables and files),
``inspection`` (``inspect_artifact``), ``pixels`` (the pixel protocol), ``errors``
(``PipelineError``). Every name is importable from here. A test that replaces a
function must patch it where it is called (``hypervldd.pipeline.comparison.distill``),
not here.
"""

from __future__ import annotations

from .comparison import _PROTOCOL_STUDENT_METHODS as _PROTOCOL_STUDENT_METHODS
from .comparison import _with_protocol_student as _with_protocol_student
from .comparison import compare
from .distillation import _on_device as _on_device
from .distillation import (
    describe_selection,
    distill,
    validation_scorer,
    wants_validation,
)
from .errors import PipelineError as PipelineError
from .evaluation import evaluate_set
from .features import IMAGE_ENCODERS, TEXT_ENCODERS, build_encoders, prepare
from .features import _load_dataset as _load_dataset
from .inspection import inspect_artifact
from .pixels import PIXEL_METHODS, PIXEL_OPT_IN, compare_pixels, distill_pixels, pixel_split
from .results import CompareResult, CompareRow

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "build_encoders",
    "prepare",
    "distill",
    "validation_scorer",
    "wants_validation",
    "describe_selection",
    "evaluate_set",
    "compare",
    "CompareRow",
    "CompareResult",
    "inspect_artifact",
    "PIXEL_METHODS",
    "PIXEL_OPT_IN",
    "pixel_split",
    "distill_pixels",
    "compare_pixels",
]
