"""Per-seed student runs and their :class:`Result`: what every evaluator shares.

The feature evaluator (:mod:`.evaluate`) and the pixel evaluator (:mod:`.pixel`)
both train one student per protocol seed, select checkpoints the same way and
report the same :class:`Result`; that common part lives here so that imports
flow one way (``evaluate -> pixel -> seeds``).
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .parallel import Cancelled, SeedPlan, map_seeds
from .progress import EpochBar
from .protocol import EvalProtocol

__all__ = ["Result"]


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


def _train_seed(
    seed: int,
    protocol: EvalProtocol,
    make_student: Callable[[torch.Generator], Any],
    fit: Callable[[Any, torch.Generator, Callable[[int], None]], list[float]],
    score: Callable[[Any, Any], dict[str, float]] | None = None,
    select_on: Any = None,
    after_epoch: Callable[[], None] | None = None,
) -> tuple[Any, int, list[float]]:
    """Train the student of one protocol seed, with the protocol's checkpoint selection.

    One generator seeded with ``seed`` initialises the student (``make_student(gen)``)
    and then drives training (``fit(student, gen, on_epoch)``), so a seed reproduces
    a student bit for bit on CPU. With ``select_on`` (validation or test data), the
    student is scored by ``score(student, select_on)["mean"]`` every
    ``protocol.eval_every`` epochs and at the last one, and the best state is restored
    (ties keep the earlier epoch). ``after_epoch()`` is called after every epoch (progress,
    cancellation).

    Returns:
        ``(student, selected epoch, per-epoch training losses)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    student = make_student(gen)
    best: dict[str, Any] = {"score": -math.inf, "epoch": protocol.epochs, "state": None}

    def on_epoch(epoch: int) -> None:
        if after_epoch is not None:
            after_epoch()
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
    plan: SeedPlan | None = None,
    progress: bool = False,
    desc: str = "evaluate",
) -> Result:
    """One :func:`_train_seed` per protocol seed, scored on ``test``, as a :class:`Result`.

    ``t0`` is the ``time.perf_counter()`` at the start of the evaluation. ``plan`` says how
    many worker threads train the students together (default: one, in the calling thread);
    the result is the same for every plan. ``progress`` draws a bar over the epochs.
    """
    bar = EpochBar(len(protocol.seeds), protocol.epochs, desc=desc, enabled=progress)

    def one(seed: int, stop: threading.Event) -> tuple[dict[str, float], int, float]:
        def after_epoch() -> None:
            bar.epoch_done()
            if stop.is_set():
                raise Cancelled(f"student seed {seed} stopped: the evaluation was abandoned")

        student, epoch, hist = _train_seed(
            seed, protocol, make_student, fit, score, select_on, after_epoch
        )
        row = score(student, test)
        bar.student_done()
        return row, epoch, hist[-1]

    try:
        outs = map_seeds(one, protocol.seeds, plan or SeedPlan(1, None))
    finally:
        bar.close()
    rows = [o[0] for o in outs]
    mean, std = _mean_std(rows)
    return Result(
        metrics_per_seed=rows,
        mean=mean,
        std=std,
        selection=protocol.selection_label,
        selected_epochs=[o[1] for o in outs],
        protocol=protocol.to_dict(),
        n_train_pairs=n_train_pairs,
        train_storage_floats=storage_floats,
        seconds=time.perf_counter() - t0,
        train_losses=[o[2] for o in outs],
    )
