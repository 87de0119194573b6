"""``evaluate(train_pairs, test_features, protocol) -> Result``.

One function serves a synthetic set, a coreset, a random subset and the full
real data: it trains one student per protocol seed on the given pairs and
reports test recall (mean and population std over seeds), labelled with how the
checkpoint was selected.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .features import FeatureSet, as_feature_set
from .metrics import DEFAULT_KS, retrieval_metrics
from .protocol import EvalProtocol
from .student import Student, train_student

__all__ = [
    "Result",
    "TrainPairs",
    "as_train_pairs",
    "evaluate",
    "score_student",
    "train_students",
    "SMALL_TRAIN_SET",
]

#: Training sets up to this many pairs are evaluated with one thread by default.
SMALL_TRAIN_SET = 4096


@dataclass(frozen=True)
class TrainPairs:
    """What a student trains on: pairs ``(image[i], text[i])`` plus optional extras.

    Attributes:
        image: ``(M, D_i)`` image features.
        text: ``(M, D_t)`` text features (or embeddings).
        similarity: optional learned soft targets ``(M, M)``.
        group: optional ``(M,)`` ids of mutual positives (captions of one image).
        lr_image, lr_text: optional learned step sizes.
        storage_floats: stored floats of the source (synthetic sets), if known.
    """

    image: torch.Tensor
    text: torch.Tensor
    similarity: torch.Tensor | None = None
    group: torch.Tensor | None = None
    lr_image: float | None = None
    lr_text: float | None = None
    storage_floats: int | None = None


def as_train_pairs(obj: Any) -> TrainPairs:
    """Adapt training data: a :class:`TrainPairs`, a synthetic set, real features, or a tuple.

    * an object with ``image``, ``text`` and a ``similarity_matrix()`` method (a
      ``SyntheticSet``): its pairs, learned similarity and learned step sizes;
    * a :class:`FeatureSet` (or anything :func:`as_feature_set` accepts, e.g.
      ``(image, text, txt2img)``): every caption-level pair, with the captions of
      one image as mutual positives;
    * a tuple ``(image (M, D_i), text (M, D_t))``: pairs as given.
    """
    if isinstance(obj, TrainPairs):
        return obj
    if hasattr(obj, "similarity_matrix") and hasattr(obj, "image") and hasattr(obj, "text"):
        if getattr(obj, "image_kind", "features") != "features":
            raise ValueError(
                "train_pairs holds pixels; evaluate() trains heads on frozen features, so encode "
                "the synthetic images first"
            )
        lrs = getattr(obj, "learned_lrs", None) or {}
        return TrainPairs(
            image=obj.image,
            text=obj.text,
            similarity=obj.similarity_matrix(),
            lr_image=float(lrs["image"]) if "image" in lrs else None,
            lr_text=float(lrs["text"]) if "text" in lrs else None,
            storage_floats=int(obj.storage_floats()),
        )
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        img, txt = obj
        return TrainPairs(image=torch.as_tensor(img), text=torch.as_tensor(txt))
    fs = as_feature_set(obj, "train_pairs")
    img, txt = fs.pairs()
    return TrainPairs(image=img, text=txt, group=fs.txt2img)


def _check_pairs(p: TrainPairs, test: FeatureSet) -> None:
    for t, name in ((p.image, "train_pairs image"), (p.text, "train_pairs text")):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D floating-point tensor")
        if t.shape[0] == 0:
            raise ValueError(f"{name} is empty: nothing to train on")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf")
    if p.image.shape[0] != p.text.shape[0]:
        raise ValueError(
            f"train_pairs image and text must have the same number of rows, got "
            f"{p.image.shape[0]} and {p.text.shape[0]}"
        )
    if p.image.shape[1] != test.image.shape[1] or p.text.shape[1] != test.text.shape[1]:
        raise ValueError(
            f"feature widths differ between train_pairs (image {p.image.shape[1]}, text "
            f"{p.text.shape[1]}) and test_features (image {test.image.shape[1]}, text "
            f"{test.text.shape[1]})"
        )


@torch.no_grad()
def score_student(
    student: Student, features: FeatureSet, *, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Retrieval metrics of ``student`` on ``features`` (chunked ranking)."""
    student.eval()
    img = _encode(student.encode_image, features.image)
    txt = _encode(student.encode_text, features.text)
    return retrieval_metrics(img, txt, features.txt2img, student.retrieval_score, ks=ks)


def _encode(fn: Any, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)], 0)


@dataclass
class Result:
    """Test recall of students trained under one protocol.

    Attributes:
        metrics_per_seed: one dict of metrics (percent) per seed, protocol order.
        mean, std: mean and population std (ddof=0) over seeds.
        selection: checkpoint-selection label (see ``EvalProtocol.selection_label``).
        selected_epochs: the epoch reported for each seed.
        protocol: the protocol as a dict (with its version).
        n_train_pairs: training pairs per student.
        train_storage_floats: stored floats of the training set, when known.
        seconds: wall time of the whole evaluation.
        train_losses: final-epoch training loss per seed.
    """

    metrics_per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    selection: str
    selected_epochs: list[int]
    protocol: dict[str, Any]
    n_train_pairs: int
    train_storage_floats: int | None = None
    seconds: float = 0.0
    train_losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": self.selection,
            "mean": self.mean,
            "std": self.std,
            "metrics_per_seed": self.metrics_per_seed,
            "selected_epochs": self.selected_epochs,
            "protocol": self.protocol,
            "n_train_pairs": self.n_train_pairs,
            "train_storage_floats": self.train_storage_floats,
            "seconds": self.seconds,
            "train_losses": self.train_losses,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> str:
        """One line per metric, ``mean +- std``, headed by the selection label."""
        lines = [
            f"checkpoint: {self.selection}; protocol v{self.protocol.get('version')}; "
            f"{len(self.metrics_per_seed)} seed(s); {self.n_train_pairs} training pairs"
        ]
        for k in self.mean:
            lines.append(f"  {k:>6}: {self.mean[k]:6.2f} +- {self.std[k]:5.2f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _mean_std(rows: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = rows[0].keys()
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    std = {k: math.sqrt(sum((r[k] - mean[k]) ** 2 for r in rows) / len(rows)) for k in keys}
    return mean, std


def evaluate(
    train_pairs: Any,
    test_features: Any,
    protocol: EvalProtocol | None = None,
    *,
    val_features: Any = None,
    ks: Sequence[int] = DEFAULT_KS,
    num_threads: int | str | None = "auto",
) -> Result:
    """Train one student per seed on ``train_pairs``; report recall on ``test_features``.

    Args:
        train_pairs: a ``SyntheticSet``, real features (all caption pairs), a
            :class:`TrainPairs`, or a tuple ``(image (M, D_i), text (M, D_t))``.
        test_features: a :class:`FeatureSet` (or adaptable) with
            ``image (N_img, D_i)``, ``text (N_txt, D_t)``, ``txt2img (N_txt,)``.
        protocol: the :class:`EvalProtocol` (default: ``EvalProtocol()``).
        val_features: validation features, required when
            ``protocol.selection == "validation"``.
        ks: recall cut-offs.
        num_threads: torch's intra-op thread count for the duration of the call
            (restored afterwards). ``None`` leaves it alone; ``"auto"`` (default) uses
            one thread when there are at most :data:`SMALL_TRAIN_SET` training pairs.
            Training on a small set is many small ops, which gain little from threads
            and lose a lot when threads contend: on a shared two-core machine the
            100-pair benchmark took 33 s with one thread and 737 s with two.

    Returns:
        A :class:`Result` whose ``selection`` labels how checkpoints were chosen.
    """
    if num_threads == "auto":
        n = _num_pairs(train_pairs)
        num_threads = 1 if n is not None and n <= SMALL_TRAIN_SET else None
    if num_threads is None:
        return _evaluate(train_pairs, test_features, protocol, val_features, ks)
    if isinstance(num_threads, str) or int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        return _evaluate(train_pairs, test_features, protocol, val_features, ks)
    finally:
        torch.set_num_threads(previous)


def _num_pairs(train_pairs: Any) -> int | None:
    if isinstance(train_pairs, (tuple, list)) and train_pairs:
        first = train_pairs[0] if len(train_pairs) == 2 else train_pairs[1]
        return int(first.shape[0]) if isinstance(first, torch.Tensor) else None
    for name in ("text", "texts", "text_features"):
        t = getattr(train_pairs, name, None)
        if isinstance(t, torch.Tensor):
            return int(t.shape[0])
    return None


def _evaluate(
    train_pairs: Any,
    test_features: Any,
    protocol: EvalProtocol | None,
    val_features: Any,
    ks: Sequence[int],
) -> Result:
    protocol = protocol or EvalProtocol()
    if not isinstance(protocol, EvalProtocol):
        raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
    from .pixel import evaluate_pixels, is_pixel_data  # pixel.py imports this module

    if is_pixel_data(train_pairs):
        # Synthetic pixels: the pixel student (an image encoder trained on them).
        return evaluate_pixels(train_pairs, test_features, protocol, val=val_features, ks=ks)
    t0 = time.perf_counter()
    test = as_feature_set(test_features, "test_features")
    pairs = as_train_pairs(train_pairs)
    _check_pairs(pairs, test)
    val = _selection_data(protocol, val_features, "val_features", as_feature_set)
    image = pairs.image.float()
    text = pairs.text.float()
    return _run_seeds(
        protocol,
        _feature_student(protocol, image.shape[1], text.shape[1]),
        _feature_fit(pairs, protocol, image, text),
        lambda student, fs: score_student(student, fs, ks=ks),
        test,
        select_on={"validation": val, "test": test}.get(protocol.selection),
        n_train_pairs=int(image.shape[0]),
        storage_floats=pairs.storage_floats,
        t0=t0,
    )


def _learned_settings(
    pairs: Any, protocol: EvalProtocol
) -> tuple[torch.Tensor | None, float | None, float | None]:
    """``(similarity, lr_image, lr_text)`` of ``pairs`` that ``protocol`` uses (else None)."""
    learned = protocol.lr_source == "learned"
    return (
        pairs.similarity if protocol.use_soft_targets else None,
        pairs.lr_image if learned else None,
        pairs.lr_text if learned else None,
    )


def _selection_data(
    protocol: EvalProtocol, val: Any, name: str, adapt: Callable[[Any, str], Any]
) -> Any:
    """``adapt(val, name)`` under ``selection == "validation"``, else None.

    Raises:
        ValueError: if validation selection has no ``val``, or ``val`` is given for
            another selection (it would be silently ignored).
    """
    if protocol.selection == "validation":
        if val is None:
            raise ValueError(f"protocol.selection is 'validation' but no {name} was given")
        return adapt(val, name)
    if val is not None:
        raise ValueError(
            f"{name} was given but protocol.selection is {protocol.selection!r}; set "
            "selection='validation' to use it"
        )
    return None


def _feature_student(
    protocol: EvalProtocol, d_img: int, d_txt: int
) -> Callable[[torch.Generator], Student]:
    """``make(gen)``: a fresh feature student of ``protocol``, initialised from ``gen``."""

    def make(gen: torch.Generator) -> Student:
        return Student(d_img, d_txt, protocol.student, gen, protocol.trainable)

    return make


def _feature_fit(
    pairs: TrainPairs, protocol: EvalProtocol, image: torch.Tensor, text: torch.Tensor
) -> Callable[[Student, torch.Generator, Callable[[int], None]], list[float]]:
    """``fit(student, gen, on_epoch)``: :func:`train_student` on ``pairs`` under ``protocol``."""
    similarity, lr_image, lr_text = _learned_settings(pairs, protocol)

    def fit(student: Student, gen: torch.Generator, on_epoch: Callable[[int], None]) -> list[float]:
        return train_student(
            student,
            image,
            text,
            protocol,
            gen,
            similarity=similarity,
            group=pairs.group,
            lr_image=lr_image,
            lr_text=lr_text,
            on_epoch=on_epoch,
        )

    return fit


def _train_seed(
    seed: int,
    protocol: EvalProtocol,
    make_student: Callable[[torch.Generator], Any],
    fit: Callable[[Any, torch.Generator, Callable[[int], None]], list[float]],
    score: Callable[[Any, Any], dict[str, float]] | None = None,
    select_on: Any = None,
) -> tuple[Any, int, list[float]]:
    """Train the student of one protocol seed, with the protocol's checkpoint selection.

    One generator seeded with ``seed`` initialises the student (``make_student(gen)``)
    and then drives training (``fit(student, gen, on_epoch)``), so a seed reproduces
    a student bit for bit on CPU. With ``select_on`` (validation or test data), the
    student is scored by ``score(student, select_on)["mean"]`` every
    ``protocol.eval_every`` epochs and at the last one, and the best state is restored
    (ties keep the earlier epoch).

    Returns:
        ``(student, selected epoch, per-epoch training losses)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    student = make_student(gen)
    best: dict[str, Any] = {"score": -math.inf, "epoch": protocol.epochs, "state": None}

    def on_epoch(epoch: int) -> None:
        if select_on is None or score is None:
            return
        if epoch % protocol.eval_every != 0 and epoch != protocol.epochs:
            return
        value = score(student, select_on)["mean"]
        student.train()
        if value > best["score"]:  # ties keep the earlier epoch
            best.update(score=value, epoch=epoch, state=copy.deepcopy(student.state_dict()))

    hist = fit(student, gen, on_epoch)
    if best["state"] is not None:
        student.load_state_dict(best["state"])
    return student, int(best["epoch"]), hist


def _run_seeds(
    protocol: EvalProtocol,
    make_student: Callable[[torch.Generator], Any],
    fit: Callable[[Any, torch.Generator, Callable[[int], None]], list[float]],
    score: Callable[[Any, Any], dict[str, float]],
    test: Any,
    *,
    select_on: Any,
    n_train_pairs: int,
    storage_floats: int | None,
    t0: float,
) -> Result:
    """One :func:`_train_seed` per protocol seed, scored on ``test``, as a :class:`Result`.

    ``t0`` is the ``time.perf_counter()`` at the start of the evaluation.
    """
    rows, epochs, losses = [], [], []
    for seed in protocol.seeds:
        student, epoch, hist = _train_seed(seed, protocol, make_student, fit, score, select_on)
        rows.append(score(student, test))
        epochs.append(epoch)
        losses.append(hist[-1])
    mean, std = _mean_std(rows)
    return Result(
        metrics_per_seed=rows,
        mean=mean,
        std=std,
        selection=protocol.selection_label,
        selected_epochs=epochs,
        protocol=protocol.to_dict(),
        n_train_pairs=n_train_pairs,
        train_storage_floats=storage_floats,
        seconds=time.perf_counter() - t0,
        train_losses=losses,
    )


def train_students(
    train_pairs: Any, protocol: EvalProtocol | None = None, *, dims: tuple[int, int] | None = None
) -> list[Student]:
    """The final-epoch students of ``protocol`` (one per seed) trained on ``train_pairs``.

    The same students :func:`evaluate` scores under ``selection="final"`` (same seeding,
    bit for bit on CPU); for analyses that need the students themselves (fidelity of
    orderings, robustness, zero-shot). Checkpoint selection is not applied.

    Args:
        train_pairs: anything :func:`as_train_pairs` accepts.
        protocol: the :class:`EvalProtocol` (default ``EvalProtocol()``).
        dims: optional expected ``(D_i, D_t)`` feature widths, checked.

    Returns:
        ``len(protocol.seeds)`` students in eval mode, protocol seed order.
    """
    protocol = protocol or EvalProtocol()
    if not isinstance(protocol, EvalProtocol):
        raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
    pairs = as_train_pairs(train_pairs)
    image, text = pairs.image.float(), pairs.text.float()
    if image.dim() != 2 or text.dim() != 2 or image.shape[0] != text.shape[0] or not len(image):
        raise ValueError(
            f"train_pairs must hold M >= 1 pairs of 2-D features, got image "
            f"{tuple(image.shape)} and text {tuple(text.shape)}"
        )
    if dims is not None and (image.shape[1], text.shape[1]) != tuple(dims):
        raise ValueError(
            f"train_pairs feature widths (image {image.shape[1]}, text {text.shape[1]}) differ "
            f"from the expected {tuple(dims)}"
        )
    make = _feature_student(protocol, image.shape[1], text.shape[1])
    fit = _feature_fit(pairs, protocol, image, text)
    return [_train_seed(seed, protocol, make, fit)[0].eval() for seed in protocol.seeds]
