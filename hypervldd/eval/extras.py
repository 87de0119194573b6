"""Evaluation beyond recall for one training set: the driver behind ``compare --fidelity`` etc.

:func:`evaluate_extras` runs the measures an :class:`~hypervldd.eval.protocol.EvalExtras`
turns on for one training set (a synthetic set, a coreset or the full data) and returns a
JSON-ready dict; :func:`extras_columns` flattens it into the columns of the ``compare``
table. Data access is duck-typed (a split with ``load_image(i) -> PIL image``, encoders
with ``encode_texts`` / ``preprocess`` / ``_forward``) so this module does not import
:mod:`hypervldd.data`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .evaluate import train_students
from .features import FeatureSet, as_feature_set
from .fidelity import data_fidelity, trained_fidelity
from .protocol import EvalExtras, EvalProtocol
from .robustness import encoder_pixel_fn, robustness
from .student import Student
from .transfer import student_variants, transfer
from .zeroshot import class_prompts, labels_from_names, zero_shot

__all__ = [
    "evaluate_extras",
    "extras_columns",
    "extras_markdown",
    "load_test_images",
    "label_columns",
]


def label_columns(image_meta: dict[str, list[Any]], requested: Sequence[str] = ()) -> list[str]:
    """The metadata columns zero-shot classifies: ``requested``, else the dataset default.

    Fashion-MNIST: ``class_name``; emoji: ``group`` and ``subgroup``.
    """
    if requested:
        missing = [c for c in requested if c not in image_meta]
        if missing:
            raise ValueError(
                f"zero_shot_labels {missing} are not image metadata columns "
                f"(have {sorted(image_meta)})"
            )
        return list(requested)
    if "class_name" in image_meta:
        return ["class_name"]
    cols = [c for c in ("group", "subgroup") if c in image_meta]
    if not cols:
        raise ValueError(
            "zero-shot needs class labels: the test features carry no 'class_name' or "
            "'group'/'subgroup' metadata; name columns with zero_shot_labels"
        )
    return cols


def load_test_images(split: Any, indices: Sequence[int], image_encoder: Any) -> torch.Tensor:
    """Test images ``(n, 3, S, S)`` in ``[0, 1]``, resized as the encoder's preprocessing does.

    ``split.load_image(i)`` gives PIL images; the encoder's :class:`ImagePreprocess` is
    applied with mean 0 and std 1 (its normalisation is left to :func:`encoder_pixel_fn`).
    """
    from dataclasses import replace

    pre = replace(image_encoder.preprocess, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return pre([split.load_image(int(i)) for i in indices]).clamp(0.0, 1.0)


def image_subset(fs: FeatureSet, n: int) -> tuple[np.ndarray, FeatureSet]:
    """``n`` evenly spaced images of ``fs`` and their captions: ``(kept indices, subset)``.

    ``n = 0`` or ``n >= N_img`` keeps everything.
    """
    if n == 0 or n >= fs.num_images:
        return np.arange(fs.num_images), fs
    keep = np.unique(np.linspace(0, fs.num_images - 1, n).round().astype(np.int64))
    local = torch.full((fs.num_images,), -1, dtype=torch.int64)
    local[torch.from_numpy(keep)] = torch.arange(len(keep))
    cap = (local[fs.txt2img] >= 0).nonzero()[:, 0]
    sub = FeatureSet(fs.image[torch.from_numpy(keep)], fs.text[cap], local[fs.txt2img[cap]])
    return keep, sub


def evaluate_extras(
    train: Any,
    test: Any,
    protocol: EvalProtocol,
    extras: EvalExtras,
    *,
    reference: Any = None,
    reference_students: Sequence[Student] | None = None,
    students: Sequence[Student] | None = None,
    main_result: Any = None,
    test_split: Any = None,
    image_encoder: Any = None,
    text_encoder: Any = None,
    test_meta: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Every measure ``extras`` turns on, for students trained on ``train``.

    Args:
        train: the training set under test.
        test: test features (a :class:`FeatureSet`, or ``PairedFeatures``).
        protocol: the evaluation protocol (its student is the transfer source).
        extras: which measures and their settings.
        reference: the full training data (fidelity compares against it); ``None`` skips
            fidelity (e.g. for the full-data row itself).
        reference_students: students trained on ``reference`` (trained here if absent).
        students: students trained on ``train`` (trained here if absent and needed).
        main_result: the ``Result`` of ``train`` under ``protocol`` (reused by transfer).
        test_split: the test split of the dataset (``load_image``), for robustness.
        image_encoder, text_encoder: the frozen encoders (robustness; zero-shot prompts).
        test_meta: per-image metadata of the test split (zero-shot labels).

    Returns:
        ``{"fidelity": ..., "data_fidelity": ..., "transfer": ..., "robustness": ...,
        "zero_shot": {column: ...}, "seconds": {...}}`` (only the measures that ran).
    """
    fs = as_feature_set(test, "test")
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    need_students = (extras.robustness or extras.zero_shot) or (
        extras.fidelity and reference is not None
    )
    if need_students and students is None:
        t0 = time.perf_counter()
        students = train_students(train, protocol)
        seconds["students"] = time.perf_counter() - t0
    if extras.fidelity and reference is not None:
        t0 = time.perf_counter()
        if reference_students is None:
            reference_students = train_students(reference, protocol)
        fid = trained_fidelity(
            train,
            reference,
            fs,
            protocol,
            k=extras.top_k,
            kendall=extras.kendall,
            reference_students=reference_students,
        )
        out["fidelity"] = fid.to_dict()
        seconds["fidelity"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["data_fidelity"] = data_fidelity(
            train,
            reference,
            fs,
            geometries=extras.fidelity_geometries,
            curvature=protocol.student.curvature,
            radius=extras.bridge_radius,
            tau=extras.bridge_tau,
            k=extras.top_k,
            kendall=extras.kendall,
        ).to_dict()
        seconds["data_fidelity"] = time.perf_counter() - t0
    if extras.transfer:
        t0 = time.perf_counter()
        targets = student_variants(
            protocol.student,
            geometries=extras.transfer_geometries,
            widths=extras.transfer_widths,
            heads=extras.transfer_heads,
        )
        source = next(iter(targets))
        known = {source: main_result} if main_result is not None else None
        out["transfer"] = transfer(
            train, fs, protocol, targets, source=source, results=known
        ).to_dict()
        seconds["transfer"] = time.perf_counter() - t0
    if extras.robustness:
        if test_split is None or image_encoder is None:
            raise ValueError(
                "robustness needs the test images and the frozen image encoder "
                "(test_split and image_encoder)"
            )
        t0 = time.perf_counter()
        keep, sub = image_subset(fs, int(extras.robustness_images))
        images = load_test_images(test_split, keep.tolist(), image_encoder)
        rob = robustness(
            list(students)[: extras.robustness_students],
            images,
            encoder_pixel_fn(image_encoder),
            sub.text,
            sub.txt2img,
            perturbations=extras.perturbations,
            jpeg_quality=extras.jpeg_quality,
            noise_sigma=extras.noise_sigma,
            image_eps=extras.pgd_image_eps,
            text_eps=extras.pgd_text_eps,
            steps=extras.pgd_steps,
            quant_bits=extras.quant_bits,
            seed=extras.seed,
        )
        out["robustness"] = {**rob.to_dict(), "images": len(keep), "captions": sub.num_captions}
        seconds["robustness"] = time.perf_counter() - t0
    if extras.zero_shot:
        if text_encoder is None or test_meta is None:
            raise ValueError(
                "zero-shot needs the frozen text encoder (prompts) and the test metadata"
            )
        t0 = time.perf_counter()
        out["zero_shot"] = {}
        for col in label_columns(test_meta, extras.zero_shot_labels):
            labels, names = labels_from_names(test_meta[col])
            prompts = class_prompts(names, extras.zero_shot_template)
            res = zero_shot(
                students, fs.image, labels, text_encoder.encode_texts(prompts), prompts=prompts
            )
            out["zero_shot"][col] = res.to_dict()
        seconds["zero_shot"] = time.perf_counter() - t0
    out["seconds"] = seconds
    return out


def extras_columns(extras: dict[str, Any], top_k: int = 10) -> dict[str, float]:
    """Flat ``{column: value}`` of an :func:`evaluate_extras` dict, for tables."""
    cols: dict[str, float] = {}
    if "fidelity" in extras:
        m = extras["fidelity"]["mean"]
        cols["fid rho"] = m["spearman"]
        if "kendall" in m:
            cols["fid tau"] = m["kendall"]
        cols[f"fid top{top_k}"] = m[f"top{top_k}"]
    if "data_fidelity" in extras:
        for geo, m in extras["data_fidelity"]["per_item"].items():
            cols[f"data rho {geo[:3]}"] = m["spearman"]
    if "transfer" in extras:
        cols["transfer"] = extras["transfer"]["mean_excluding_source"]["mean"]
    if "robustness" in extras:
        for name, d in extras["robustness"]["drop"].items():
            cols[f"drop {name}"] = d
        cols["drop mean"] = extras["robustness"]["mean_drop"]
    for col, res in extras.get("zero_shot", {}).items():
        cols[f"zs {col}"] = res["accuracy"]
    return cols


def extras_markdown(rows: Sequence[tuple[str, str, dict[str, float]]]) -> str:
    """A Markdown table of ``(method, pairs, columns)`` rows (union of the columns)."""
    keys: list[str] = []
    for _, _, cols in rows:
        keys += [k for k in cols if k not in keys]
    groups = ("fid", "data", "transfer", "drop", "zs")
    keys.sort(key=lambda k: next((i for i, g in enumerate(groups) if k.startswith(g)), 99))
    lines = [
        "| method | pairs | " + " | ".join(keys) + " |",
        "|" + "---|" * (len(keys) + 2),
    ]
    for method, pairs, cols in rows:
        # Rank correlations and overlaps lie in [-1, 1]; drops and accuracies are percent.
        cells = [
            "-"
            if k not in cols
            else f"{cols[k]:.3f}"
            if k.startswith(("fid", "data"))
            else f"{cols[k]:.1f}"
            for k in keys
        ]
        lines.append(f"| {method} | {pairs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
