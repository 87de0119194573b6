"""Cross-architecture transfer: one training set, several student configurations.

A distilled set is made with one encoder/head configuration (the *source*); the question
is whether it still trains *other* students well. :func:`transfer` evaluates the same set
under several named targets (other head geometries, widths, head kinds, and other frozen
encoders where their features exist) and reports each target's recall and the mean over
the targets **excluding the source**, as the VLDD papers report cross-architecture
generalisation.

Other encoders: a set in one encoder's feature space cannot be re-encoded. A real subset
(a coreset, whose artifact records ``source_indices``) can: :func:`pairs_in_features`
takes the same caption-level pairs from another encoder's features of the same split.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .evaluate import evaluate
from .features import as_feature_set
from .protocol import GEOMETRIES, EvalProtocol, StudentConfig

__all__ = [
    "TransferTarget",
    "TransferResult",
    "student_variants",
    "pairs_in_features",
    "transfer",
]


@dataclass(frozen=True)
class TransferTarget:
    """One evaluation configuration.

    Attributes:
        student: the student of this target (replaces ``protocol.student``).
        train_pairs: training pairs for this target; ``None`` means the set under test
            (the usual case: only the student changes).
        test: test features for this target; ``None`` means the common test features.
            Give both ``train_pairs`` and ``test`` for another encoder's feature space.
    """

    student: StudentConfig
    train_pairs: Any = None
    test: Any = None


@dataclass
class TransferResult:
    """Recall of every target, and the mean over targets other than the source.

    Attributes:
        source: name of the source configuration.
        per_target: target name -> mean test recall (``Result.mean``, percent).
        std: target name -> population std over seeds of each metric.
        mean_excluding_source: metric -> mean over the non-source targets.
        seconds: wall time.
    """

    source: str
    per_target: dict[str, dict[str, float]]
    std: dict[str, dict[str, float]]
    mean_excluding_source: dict[str, float]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "per_target": self.per_target,
            "std": self.std,
            "mean_excluding_source": self.mean_excluding_source,
            "seconds": self.seconds,
            "notes": self.notes,
        }


def _config_name(cfg: StudentConfig) -> str:
    return f"{cfg.geometry}-{cfg.head}-w{cfg.width}"


def student_variants(
    source: StudentConfig,
    *,
    geometries: Sequence[str] = GEOMETRIES,
    widths: Sequence[int] = (),
    heads: Sequence[str] = (),
) -> dict[str, TransferTarget]:
    """The source student and its variants, by name ``"<geometry>-<head>-w<width>"``.

    Each variant changes one thing of ``source``: its geometry (each of ``geometries``), its
    width (each of ``widths``) or its head kind (each of ``heads``). The source itself is
    the first entry.
    """
    out = {_config_name(source): TransferTarget(source)}
    changes: list[dict[str, Any]] = [{"geometry": g} for g in geometries]
    changes += [{"width": int(w)} for w in widths]
    changes += [{"head": h} for h in heads]
    for change in changes:
        cfg = StudentConfig(**{**source.__dict__, **change})
        out.setdefault(_config_name(cfg), TransferTarget(cfg))
    return out


def pairs_in_features(source_indices: torch.Tensor, features: Any) -> tuple[torch.Tensor, ...]:
    """The caption-level pairs ``source_indices`` taken from another encoder's features.

    Args:
        source_indices: ``(M,)`` int64 caption-pair indices into the training split (a
            coreset artifact's ``source_indices``).
        features: the same split encoded by another encoder (a :class:`FeatureSet` or
            adaptable, caption order identical to the one the indices refer to).

    Returns:
        ``(image (M, D_i), text (M, D_t))`` in the other feature space.
    """
    fs = as_feature_set(features, "features")
    idx = torch.as_tensor(source_indices)
    if idx.dtype != torch.int64 or idx.dim() != 1:
        raise ValueError("source_indices must be a 1-D int64 tensor")
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= fs.num_captions):
        raise ValueError(
            f"source_indices must lie in [0, {fs.num_captions}) (captions of the split), got "
            f"range [{int(idx.min())}, {int(idx.max())}]"
        )
    return fs.image[fs.txt2img[idx]], fs.text[idx]


def transfer(
    train_pairs: Any,
    test: Any,
    protocol: EvalProtocol,
    targets: Mapping[str, TransferTarget | StudentConfig],
    *,
    source: str,
    results: Mapping[str, Any] | None = None,
) -> TransferResult:
    """Evaluate ``train_pairs`` under every target; mean recall excluding ``source``.

    Args:
        train_pairs: the set under test (synthetic set, coreset, real features).
        test: common test features.
        protocol: the protocol; each target replaces its ``student``.
        targets: name -> :class:`TransferTarget` (or a bare :class:`StudentConfig`).
        source: the name of the configuration the set was made with; it is evaluated but
            left out of ``mean_excluding_source``. It must be one of ``targets``.
        results: already computed ``Result`` objects by target name (reused, not re-run).

    Raises:
        ValueError: ``source`` is not a target, or no target besides it remains.
    """
    t0 = time.perf_counter()
    if source not in targets:
        raise ValueError(f"source must be one of the targets {sorted(targets)}, got {source!r}")
    if len(targets) < 2:
        raise ValueError("targets must hold at least one configuration besides the source")
    checked = {}
    for name, target in targets.items():
        if isinstance(target, StudentConfig):
            target = TransferTarget(target)
        if not isinstance(target, TransferTarget):
            raise TypeError(
                f"targets[{name!r}] must be a TransferTarget or StudentConfig, got "
                f"{type(target).__name__}"
            )
        checked[name] = target
    per, std = {}, {}
    for name, target in checked.items():
        res = (results or {}).get(name)
        if res is None:
            res = evaluate(
                train_pairs if target.train_pairs is None else target.train_pairs,
                test if target.test is None else target.test,
                protocol.replace(student=target.student),
            )
        per[name], std[name] = dict(res.mean), dict(res.std)
    others = [per[n] for n in per if n != source]
    mean = {key: sum(r[key] for r in others) / len(others) for key in others[0]}
    return TransferResult(source, per, std, mean, time.perf_counter() - t0)
