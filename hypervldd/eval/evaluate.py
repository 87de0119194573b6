"""``evaluate(train_pairs, test_features, protocol) -> Result``.

One function serves a synthetic set, a coreset, a random subset and the full
real data: it trains one student per protocol seed on the given pairs and
reports test recall (mean and population std over seeds), labelled with how the
checkpoint was selected.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import has_values
from .features import FeatureSet, as_feature_set
from .metrics import DEFAULT_KS, retrieval_metrics
from .parallel import SeedPlan, map_seeds, plan_seeds
from .pixel import evaluate_pixels, is_pixel_data
from .protocol import EvalProtocol
from .seeds import Result, _learned_settings, _run_seeds, _selection_data, _train_seed
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
        if has_values(t) and not bool(torch.isfinite(t).all()):
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
    dev = _student_device(student)
    img = _encode(student.encode_image, features.image, dev)
    txt = _encode(student.encode_text, features.text, dev)
    if dev.type == "cpu":
        return retrieval_metrics(img, txt, features.txt2img, student.retrieval_score, ks=ks)

    # A student on an accelerator scores its chunks there; the ranks are counted on the
    # CPU, where the metrics' index tensors live (one copy per score chunk).
    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return student.retrieval_score(a.to(dev), b.to(dev)).cpu()

    return retrieval_metrics(img, txt, features.txt2img, score, ks=ks)


def _student_device(student: Student) -> torch.device:
    first = next(student.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _encode(fn: Any, x: torch.Tensor, device: torch.device, chunk: int = 8192) -> torch.Tensor:
    """``fn`` over ``x`` in chunks on ``device``; the embeddings come back on the CPU."""
    return torch.cat(
        [fn(x[i : i + chunk].to(device)).cpu() for i in range(0, x.shape[0], chunk)], 0
    )


def evaluate(
    train_pairs: Any,
    test_features: Any,
    protocol: EvalProtocol | None = None,
    *,
    val_features: Any = None,
    ks: Sequence[int] = DEFAULT_KS,
    num_threads: int | str | None = "auto",
    device: str | torch.device | None = None,
    workers: int | str = "auto",
    progress: bool = False,
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
        num_threads: torch's intra-op threads of each worker for the duration of the call
            (restored afterwards). ``"auto"`` (default): one (see ``workers``; a single
            student on more than :data:`SMALL_TRAIN_SET` pairs keeps torch's setting);
            ``None`` leaves torch's setting alone and trains the seeds one after another;
            an integer sets it. Training is many small ops, which gain little from threads
            and lose a lot when threads contend with other processes (benchmarks/README.md,
            "The evaluation protocol on both cores").
        device: where the feature students train and encode (``None``: the CPU). The
            students' initial weights come from the same CPU generator on every device;
            the ranking metrics are counted on the CPU. Synthetic pixels (the pixel
            student) train on the CPU.
        workers: threads that train students of different seeds at the same time.
            ``"auto"`` (default): on the CPU as many as the seeds and
            ``torch.get_num_threads()`` allow (``workers * num_threads`` never exceeds it),
            elsewhere one. The results are the same for every value (each seed trains from
            its own generator with one intra-op thread); only the speed changes.
        progress: draw a progress bar over the students' epochs (stderr).

    Returns:
        A :class:`Result` whose ``selection`` labels how checkpoints were chosen.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    n = _num_pairs(train_pairs)
    n_seeds = len((protocol if isinstance(protocol, EvalProtocol) else EvalProtocol()).seeds)
    plan = plan_seeds(
        n_seeds,
        num_threads=num_threads,
        workers=workers if not is_pixel_data(train_pairs) else 1,
        small=n is not None and n <= SMALL_TRAIN_SET,
        device=dev,
    )
    run = functools.partial(
        _evaluate, train_pairs, test_features, protocol, val_features, ks, dev, plan, progress
    )
    if plan.threads is None:
        return run()
    previous = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        return run()
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
    device: torch.device | None = None,
    plan: SeedPlan | None = None,
    progress: bool = False,
) -> Result:
    device = device if device is not None else torch.device("cpu")
    protocol = protocol or EvalProtocol()
    if not isinstance(protocol, EvalProtocol):
        raise TypeError(f"protocol must be an EvalProtocol, got {type(protocol).__name__}")
    if is_pixel_data(train_pairs):
        # Synthetic pixels: the pixel student (an image encoder trained on them).
        return evaluate_pixels(train_pairs, test_features, protocol, val=val_features, ks=ks)
    t0 = time.perf_counter()
    test = as_feature_set(test_features, "test_features")
    pairs = as_train_pairs(train_pairs)
    _check_pairs(pairs, test)
    val = _selection_data(protocol, val_features, "val_features", as_feature_set)
    image = pairs.image.float().to(device)
    text = pairs.text.float().to(device)
    return _run_seeds(
        protocol,
        _feature_student(protocol, image.shape[1], text.shape[1], device),
        _feature_fit(pairs, protocol, image, text),
        lambda student, fs: score_student(student, fs, ks=ks),
        test,
        select_on={"validation": val, "test": test}.get(protocol.selection),
        n_train_pairs=int(image.shape[0]),
        storage_floats=pairs.storage_floats,
        t0=t0,
        plan=plan,
        progress=progress,
    )


def _feature_student(
    protocol: EvalProtocol, d_img: int, d_txt: int, device: torch.device | None = None
) -> Callable[[torch.Generator], Student]:
    """``make(gen)``: a fresh feature student of ``protocol``, initialised from ``gen``
    (a CPU generator) and placed on ``device``."""

    def make(gen: torch.Generator) -> Student:
        return Student(d_img, d_txt, protocol.student, gen, protocol.trainable, device=device)

    return make


def _feature_fit(
    pairs: TrainPairs, protocol: EvalProtocol, image: torch.Tensor, text: torch.Tensor
) -> Callable[[Student, torch.Generator, Callable[[int], None]], list[float]]:
    """``fit(student, gen, on_epoch)``: :func:`train_student` on ``pairs`` under ``protocol``."""
    similarity, lr_image, lr_text = _learned_settings(pairs, protocol)
    dev = image.device
    group = pairs.group.to(dev) if isinstance(pairs.group, torch.Tensor) else pairs.group
    if isinstance(similarity, torch.Tensor):
        similarity = similarity.to(dev)

    def fit(student: Student, gen: torch.Generator, on_epoch: Callable[[int], None]) -> list[float]:
        return train_student(
            student,
            image,
            text,
            protocol,
            gen,
            similarity=similarity,
            group=group,
            lr_image=lr_image,
            lr_text=lr_text,
            on_epoch=on_epoch,
        )

    return fit


def train_students(
    train_pairs: Any,
    protocol: EvalProtocol | None = None,
    *,
    dims: tuple[int, int] | None = None,
    workers: int | str = "auto",
) -> list[Student]:
    """The final-epoch students of ``protocol`` (one per seed) trained on ``train_pairs``.

    The same students :func:`evaluate` scores under ``selection="final"`` (same seeding,
    bit for bit on CPU); for analyses that need the students themselves (fidelity of
    orderings, robustness, zero-shot). Checkpoint selection is not applied.

    Args:
        train_pairs: anything :func:`as_train_pairs` accepts.
        protocol: the :class:`EvalProtocol` (default ``EvalProtocol()``).
        dims: optional expected ``(D_i, D_t)`` feature widths, checked.
        workers: threads training students of different seeds together, as in
            :func:`evaluate` (the students are the same for every value).

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
    # Several workers train with one intra-op thread each; one worker is the calling
    # thread, under the caller's setting.
    plan = plan_seeds(len(protocol.seeds), workers=workers, num_threads=1)

    def one(seed: int, stop: Any) -> Student:
        return _train_seed(seed, protocol, make, fit)[0].eval()

    return map_seeds(one, protocol.seeds, plan)
