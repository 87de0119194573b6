"""Optimisation engine for gradient-based distillation methods.

A method subclasses :class:`GradientDistiller` and supplies a loss of the
synthetic tensors (:meth:`GradientDistiller._loss`) and, optionally, auxiliary
state such as an online student (:meth:`_setup`, :meth:`_aux_modules`,
:meth:`_aux_optimizers`). The engine owns the rest:

* initialisation from real pairs: ``"random"`` (distinct images) or
  ``"kmeans"`` (the real pair nearest to each k-means centroid);
* the synthetic-data optimiser (per-modality learning rates);
* a tqdm progress bar, periodic validation through a callback, and with
  ``keep_best`` the return of the validation-best set (the initialisation and the
  final step are candidates too) instead of the last one;
* checkpoints every ``checkpoint_every`` steps (safetensors + JSON, atomic,
  never pickled) holding the synthetic tensors, every optimiser state, the
  auxiliary modules, the RNG states, the step and the history, so that a resumed
  run produces the same artifact bit for bit on CPU;
* a stop with a clear error on a NaN/inf loss or synthetic tensor, leaving the
  last good checkpoint untouched;
* under ``torch.distributed`` (``process_group``, by default the initialised group of a
  ``torchrun`` job): the synthetic set is broadcast from rank 0 at the start (after a
  resume), gradients are all-reduced, the NaN stop is taken by all ranks together, rank 0
  alone writes checkpoints and validates; methods that set ``distributed_aware`` read
  only their rank's shard of the real set (``self._group``, ``self._shard``).
"""

from __future__ import annotations

import abc
import json
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..distributed import (
    DistributedError,
    all_reduce_mean_,
    broadcast_,
    broadcast_module_,
    broadcast_object,
    get_rank,
    get_world_size,
    resolve_group,
    shard_range,
)
from ._io import ArtifactError, read_container, read_manifest, write_container
from .artifact import SyntheticSet
from .base import Distiller, RealData
from .coreset import select_pairs

__all__ = [
    "EngineConfig",
    "GradientDistiller",
    "DivergenceError",
    "CHECKPOINT_FORMAT",
    "check_checkpoint_dir",
    "kmeans_init",
    "random_init",
]

CHECKPOINT_FORMAT = "hypervldd.checkpoint"
INITS = ("random", "kmeans")
_CKPT = re.compile(r"^step_(\d{8})\.safetensors$")

Validator = Callable[[SyntheticSet, int], Mapping[str, float]]


class DivergenceError(FloatingPointError):
    """The loss or a synthetic tensor became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class EngineConfig:
    """Settings shared by the gradient-based methods.

    Attributes:
        iterations: optimisation steps.
        init: ``"random"`` real pairs (distinct images) or ``"kmeans"``.
        kmeans_iters: Lloyd iterations of the k-means initialisation.
        optimizer: ``"sgd"`` or ``"adam"`` for the synthetic tensors.
        lr_image, lr_text: learning rates of synthetic images and texts.
        momentum: SGD momentum.
        real_batch_size: real pairs sampled per step.
        checkpoint_every: steps between checkpoints (0: never).
        keep_checkpoints: how many recent checkpoints to keep.
        validate_every: steps between validation callbacks (0: never).
        keep_best: return the synthetic set with the highest validation
            ``select_metric`` among the initialisation (step 0), every
            ``validate_every`` steps and the final step, instead of the final set.
            Needs ``validate_every > 0`` and a ``validate`` callback at fit time
            (``hypervldd.pipeline.distill`` builds one from the validation split).
            The best set so far is checkpointed, so a resumed run returns the same one.
        select_metric: the validation key that ``keep_best`` maximises.
        log_every: steps between loss records in the history.
        normalize_init: start from L2-normalised real features. The students
            normalise their inputs, so this changes nothing they see, but it puts
            every encoder's features on one scale, so that the learning rates mean
            the same thing whatever the encoder (raw features of norm ~300 barely
            move at lr 1.0).
    """

    iterations: int = 10000
    init: str = "random"
    kmeans_iters: int = 20
    optimizer: str = "sgd"
    lr_image: float = 1.0
    lr_text: float = 1.0
    momentum: float = 0.5
    real_batch_size: int = 256
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    validate_every: int = 0
    keep_best: bool = False
    select_metric: str = "mean"
    log_every: int = 100
    normalize_init: bool = True

    def __post_init__(self) -> None:
        if int(self.iterations) < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not (self.lr_image > 0 and self.lr_text > 0) or self.momentum < 0:
            raise ValueError("lr_image and lr_text must be > 0 and momentum >= 0")
        if int(self.real_batch_size) < 2:
            raise ValueError(f"real_batch_size must be >= 2, got {self.real_batch_size}")
        for name in ("checkpoint_every", "validate_every", "kmeans_iters"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.keep_checkpoints) < 1 or int(self.log_every) < 1:
            raise ValueError("keep_checkpoints and log_every must be >= 1")
        if self.keep_best and int(self.validate_every) < 1:
            raise ValueError(
                "keep_best selects among validated sets: set validate_every >= 1 "
                f"(got {self.validate_every})"
            )


# -- initialisation ---------------------------------------------------------------------
def _joint(data: RealData) -> torch.Tensor:
    z = torch.cat([F.normalize(data.pair_image, dim=-1), F.normalize(data.pair_text, dim=-1)], 1)
    return z / 2**0.5


def random_init(data: RealData, budget: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``budget`` random real pairs with distinct images, ``(budget,)``."""
    return select_pairs(
        torch.randperm(data.num_pairs, generator=gen), data.pair_group, budget, True
    )


def kmeans_init(data: RealData, budget: int, gen: torch.Generator, iters: int = 20) -> torch.Tensor:
    """Indices of the real pairs nearest to ``budget`` k-means centroids, ``(budget,)``.

    k-means (Lloyd, started from random distinct-image pairs) runs on the joint
    L2-normalised features; each centroid then takes its nearest pair whose image
    is not taken yet.
    """
    z = _joint(data).double()
    cent = z[random_init(data, budget, gen)].clone()
    for _ in range(iters):
        assign = _nearest(z, cent)
        sums = torch.zeros_like(cent).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=budget).double()
        keep = counts > 0  # an empty cluster keeps its centroid
        cent[keep] = sums[keep] / counts[keep, None]
    taken = torch.zeros(data.num_images, dtype=torch.bool)
    out = []
    for k in range(budget):
        d = ((z - cent[k]) ** 2).sum(1)
        d[taken[data.pair_group]] = torch.inf
        i = int(torch.argmin(d))
        out.append(i)
        taken[data.pair_group[i]] = True
    return torch.tensor(out, dtype=torch.int64)


def _nearest(z: torch.Tensor, cent: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    c2 = (cent * cent).sum(1)
    out = []
    for i in range(0, z.shape[0], chunk):
        out.append((c2[None, :] - 2.0 * z[i : i + chunk] @ cent.T).argmin(1))
    return torch.cat(out)


# -- optimiser state <-> (tensors, JSON) ----------------------------------------------------
def _flatten_optimizer(prefix: str, sd: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for pid, st in sd["state"].items():
        entry = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                key = f"{prefix}.{pid}.{k}"
                tensors[key] = v.detach().clone()
                entry[k] = {"tensor": key}
            else:
                entry[k] = {"value": v}
        state[str(pid)] = entry
    return {"state": state, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(js: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for pid, entry in js["state"].items():
        state[int(pid)] = {
            k: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for k, v in entry.items()
        }
    return {"state": state, "param_groups": js["param_groups"]}


def _list_checkpoints(ckdir: Path) -> list[Path]:
    """Checkpoint files (``step_XXXXXXXX.safetensors``) in ``ckdir``, newest first."""
    if not ckdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckdir.iterdir() if (m := _CKPT.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def _json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj, sort_keys=True))


def _checkpoint_identity(path: Path) -> Any:
    """The run identity in a checkpoint's manifest, or ``None`` if it cannot be read."""
    try:
        return read_manifest(path, expect_format=CHECKPOINT_FORMAT).get("identity")
    except (OSError, ArtifactError):
        return None


def check_checkpoint_dir(checkpoint_dir: str | Path, *, resume: bool) -> None:
    """Refuse a checkpoint directory this run must not write into, before any work.

    ``checkpoint_dir`` must be a directory or not exist yet. Without ``resume`` it
    must hold no checkpoint (``step_*.safetensors``): those belong to an earlier run,
    which a new run would overwrite step by step and whose newer steps retention
    would keep in place of the new run's own. With ``resume`` the newest readable
    checkpoint must be of the same run (checked when it is loaded).

    Raises:
        ValueError: naming the directory and what to do.

    Example::

        check_checkpoint_dir("runs/ck", resume=False)  # fine if empty or absent
    """
    ckdir = Path(checkpoint_dir)
    if ckdir.exists() and not ckdir.is_dir():
        raise ValueError(f"checkpoint_dir {ckdir} is a file, not a directory")
    if resume:
        return
    found = _list_checkpoints(ckdir)
    if found:
        shown = ", ".join(p.name for p in found[:2])
        raise ValueError(
            f"checkpoint_dir {ckdir} already holds {len(found)} checkpoint(s) of an earlier run "
            f"({shown}{', ...' if len(found) > 2 else ''}); a new run would overwrite them. "
            "Resume that run (resume=True, --resume), or give an empty or new directory"
        )


class GradientDistiller(Distiller):
    """Base of gradient-based methods; ``Config`` must have an ``engine: EngineConfig``.

    Subclasses implement :meth:`_loss` and may override :meth:`_setup`,
    :meth:`_aux_modules` and :meth:`_aux_optimizers`. All randomness must come
    from the generator passed in (it is checkpointed).

    Distributed runs: ``self._group`` is the process group (``None`` in one process) and
    :meth:`_shard` this rank's contiguous range of real pairs. A method that sets
    ``distributed_aware = True`` uses them to read only its shard of the real set; the
    others compute the same loss on every rank (correct, but not faster).
    """

    #: Whether the method's loss reads only this rank's shard of the real data.
    distributed_aware: bool = False
    #: What the synthetic image tensor holds: ``"features"`` or ``"pixels"``.
    image_kind: str = "features"
    _group: Any = None
    #: (step, validation score, set) of the validation-best set so far (engine.keep_best)
    _best: tuple[int, float, SyntheticSet] | None = None

    # -- hooks for subclasses --------------------------------------------------------
    def _setup(self, data: RealData, budget: int, gen: torch.Generator) -> None:
        """Create auxiliary state (e.g. an online student) before the first step."""

    def _aux_modules(self) -> dict[str, nn.Module]:
        """Auxiliary modules whose ``state_dict`` is checkpointed."""
        return {}

    def _aux_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Auxiliary optimisers whose state is checkpointed."""
        return {}

    def _resolved(self) -> dict[str, Any]:
        """Config values resolved at fit time (recorded in the artifact)."""
        return {}

    def _initial_tensors(
        self, data: RealData, src: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The synthetic ``(image, text)`` at step 0 from the real pairs ``src``.

        Default: their features, L2-normalised under ``engine.normalize_init``. Must
        return fresh tensors (they become the optimised leaves).
        """
        image, text = data.pair_image[src].clone(), data.pair_text[src].clone()
        if self.engine.normalize_init:
            image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
        return image, text

    def _constrain(self, image: torch.Tensor, text: torch.Tensor) -> None:
        """Project the synthetic tensors onto their domain after each step, in place
        (default: unconstrained). Runs before the NaN/inf check and the checkpoint."""

    @abc.abstractmethod
    def _loss(
        self,
        step: int,
        image: torch.Tensor,
        text: torch.Tensor,
        data: RealData,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """The scalar loss of synthetic ``image (M, D_i)`` and ``text (M, D_t)`` at ``step``."""

    # -- engine ----------------------------------------------------------------------
    @property
    def engine(self) -> EngineConfig:
        return self.config.engine

    def _shard(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous shard of ``n`` rows (all of them alone)."""
        if self._group is None:
            return 0, n
        return shard_range(n, get_rank(self._group), get_world_size(self._group))

    def _identity(self, data: RealData, budget: int, seed: int) -> dict[str, Any]:
        return {
            "method": self.method,
            "config": self.config_dict(),
            "budget": budget,
            "seed": seed,
            "data_fingerprint": data.fingerprint,
        }

    def _fit(
        self,
        data: RealData,
        budget: int,
        seed: int,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        validate: Validator | None = None,
        progress: bool = False,
        process_group: Any = "auto",
    ) -> SyntheticSet:
        """Run the optimisation (see :meth:`Distiller.fit`).

        Args:
            checkpoint_dir: where checkpoints go (required for
                ``engine.checkpoint_every > 0`` and for ``resume``).
            resume: continue from the latest valid checkpoint in ``checkpoint_dir``
                (starts fresh if there is none).
            validate: ``validate(synthetic_set, step) -> {name: value}``, called every
                ``engine.validate_every`` steps; results go to the history. Required
                with ``engine.keep_best``, which also calls it at step 0 and at the
                final step and returns the set with the highest
                ``engine.select_metric``.
            progress: show a tqdm progress bar.
            process_group: ``"auto"`` (the default group of a ``torchrun`` job, if any),
                ``None`` (this process alone), ``"world"`` or a ``ProcessGroup``. Every rank
                must call ``fit`` with the same data, budget, seed and config; with a shared
                ``checkpoint_dir`` (rank 0 writes, every rank reads when resuming).
        """
        eng = self.engine
        group = self._group = resolve_group(process_group)
        if group is not None:
            progress = progress and get_rank() == 0
        if (eng.checkpoint_every or resume) and checkpoint_dir is None:
            raise ValueError("checkpoint_dir is required when checkpointing or resuming")
        if eng.keep_best and validate is None:
            raise ValueError(
                f"{self.method}: engine.keep_best returns the validation-best set and needs "
                "a validate callback (hypervldd.pipeline.distill builds one from the "
                "validation split); pass validate=... or set engine.keep_best=False"
            )
        ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if ckdir is not None and (eng.checkpoint_every or resume):
            check_checkpoint_dir(ckdir, resume=resume)
        gen = torch.Generator().manual_seed(seed)
        if eng.init == "random":
            src = random_init(data, budget, gen)
        else:
            src = kmeans_init(data, budget, gen, eng.kmeans_iters)
        image, text = self._initial_tensors(data, src)
        image.requires_grad_(True)
        text.requires_grad_(True)
        opt = self._make_opt(image, text)
        self._setup(data, budget, gen)
        step, history = 0, []
        identity = self._identity(data, budget, seed)
        last_good: Path | None = None
        self._best = None
        if resume:
            found = self._restore(ckdir, identity, image, text, opt, gen)
            if found is not None:
                step, history, last_good = found
        if group is not None:
            self._sync_start(group, step, image, text)

        def run_validation() -> None:
            metrics = None
            art = None
            if eng.keep_best or group is None or get_rank() == 0:
                art = self._artifact(image, text, src, data, seed, history)
            if group is None or get_rank() == 0:
                metrics = dict(validate(art, step))
            if group is not None:  # rank 0 validates; every rank records the result
                metrics = broadcast_object(metrics, group)
            history.append({"step": step, "validation": metrics})
            if eng.keep_best:
                self._consider(art, metrics, step)

        if eng.keep_best and step == 0:
            run_validation()  # the initialisation is a candidate

        bar = tqdm(total=eng.iterations, initial=step, disable=not progress, desc=self.method)
        try:
            while step < eng.iterations:
                loss = self._loss(step, image, text, data, gen)
                if group is not None:
                    self._distributed_step(group, loss, image, text, opt, step, last_good)
                else:
                    if not bool(torch.isfinite(loss)):
                        self._diverged(
                            f"the loss became {float(loss.detach())}", step + 1, last_good
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                self._constrain(image, text)
                for t, name in ((image, "synthetic image"), (text, "synthetic text")):
                    if not bool(torch.isfinite(t).all()):
                        self._diverged(f"the {name} tensor became NaN/inf", step + 1, last_good)
                step += 1
                bar.update(1)
                if step % eng.log_every == 0 or step == eng.iterations:
                    history.append({"step": step, "loss": float(loss.detach())})
                    bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
                if (
                    validate is not None
                    and eng.validate_every
                    and (
                        step % eng.validate_every == 0 or (eng.keep_best and step == eng.iterations)
                    )
                ):
                    run_validation()
                if ckdir is not None and eng.checkpoint_every and step % eng.checkpoint_every == 0:
                    if group is None or get_rank() == 0:
                        last_good = self._checkpoint(
                            ckdir, identity, step, history, image, text, opt, gen
                        )
                    else:  # rank 0 writes; the others name the same file in their errors
                        last_good = ckdir / f"step_{step:08d}.safetensors"
        finally:
            bar.close()
        if eng.keep_best:
            return self._selected(history)
        return self._artifact(image, text, src, data, seed, history)

    # -- validation-best selection -------------------------------------------------------
    def _consider(self, art: SyntheticSet, metrics: Mapping[str, Any], step: int) -> None:
        """Keep ``art`` if its validation score beats the best so far (ties keep the earlier)."""
        key = self.engine.select_metric
        value = metrics.get(key) if isinstance(metrics, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{self.method}: engine.keep_best maximises validation[{key!r}] "
                f"(engine.select_metric), but the validate callback returned {metrics!r}"
            )
        value = float(value)
        if value != value:  # NaN never wins, and a NaN best would block every later set
            return
        if self._best is None or value > self._best[1]:
            self._best = (step, value, art)

    def _selected(self, history: list) -> SyntheticSet:
        """The validation-best set with the whole history and the choice in its config."""
        if self._best is None:
            raise ValueError(
                f"{self.method}: engine.keep_best found no validation score to select on "
                f"(validation[{self.engine.select_metric!r}] was NaN at every check)"
            )
        step, value, art = self._best
        art.history = [dict(h) for h in history]
        art.config = {
            **art.config,
            "selected": {"step": step, "metric": self.engine.select_metric, "value": value},
        }
        return art

    # -- distribution ----------------------------------------------------------------
    def _sync_start(self, group: Any, step: int, image: torch.Tensor, text: torch.Tensor) -> None:
        """Check that every rank resumed at one step, then replicate rank 0's state."""
        first = broadcast_object(step, group)
        if first != step:
            raise DistributedError(
                f"rank {get_rank(group)} resumed at step {step} but rank 0 at step {first}: "
                "checkpoint_dir must be one directory that every rank sees"
            )
        broadcast_([image, text], group)
        for mod in self._aux_modules().values():
            broadcast_module_(mod, group)

    def _distributed_step(
        self,
        group: Any,
        loss: torch.Tensor,
        image: torch.Tensor,
        text: torch.Tensor,
        opt: torch.optim.Optimizer,
        step: int,
        last_good: Path | None,
    ) -> None:
        """Backward, all-reduce (mean) of the synthetic gradients, optimiser step.

        The NaN/inf flag of every rank travels in the same collective, so that all ranks
        stop together instead of the healthy ones waiting for a stopped one.
        """
        opt.zero_grad(set_to_none=True)
        # Backward even for a non-finite loss: a loss whose backward communicates must run
        # on every rank, and the step is refused below anyway.
        loss.backward()
        grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in (image, text)]
        bad = (~torch.isfinite(loss.detach())).to(grads[0].dtype).reshape(1) * get_world_size(group)
        all_reduce_mean_([*grads, bad], group)
        if float(bad) > 0:
            self._diverged(
                f"the loss became non-finite on {round(float(bad))} rank(s)", step + 1, last_good
            )
        image.grad, text.grad = grads
        opt.step()

    def _make_opt(self, image: torch.Tensor, text: torch.Tensor) -> torch.optim.Optimizer:
        eng = self.engine
        groups = [{"params": [image], "lr": eng.lr_image}, {"params": [text], "lr": eng.lr_text}]
        if eng.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=eng.lr_image, momentum=eng.momentum)
        return torch.optim.Adam(groups, lr=eng.lr_image)

    def _artifact(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        src: torch.Tensor,
        data: RealData,
        seed: int,
        history: list,
    ) -> SyntheticSet:
        cfg = self.config_dict()
        resolved = self._resolved()
        if resolved:
            cfg = {**cfg, "resolved": resolved}
        return SyntheticSet(
            image=image.detach().clone(),
            text=text.detach().clone(),
            method=self.method,
            config=cfg,
            image_kind=self.image_kind,
            source_indices=src.clone(),
            data_fingerprint=data.fingerprint,
            encoders=data.encoders,
            seed=seed,
            history=[dict(h) for h in history],
        )

    def _diverged(self, what: str, step: int, last_good: Path | None) -> None:
        where = (
            f"the last good checkpoint is {last_good}"
            if last_good is not None
            else "no checkpoint was written (set engine.checkpoint_every)"
        )
        raise DivergenceError(
            f"{self.method}: {what} at step {step}; stopping. {where}. Lower the learning "
            "rates (engine.lr_image / engine.lr_text) or check the real features."
        )

    # -- checkpoints -------------------------------------------------------------------
    def _checkpoint(
        self,
        ckdir: Path,
        identity: dict,
        step: int,
        history: list,
        image: torch.Tensor,
        text: torch.Tensor,
        opt: torch.optim.Optimizer,
        gen: torch.Generator,
    ) -> Path:
        tensors: dict[str, torch.Tensor] = {
            "syn.image": image.detach(),
            "syn.text": text.detach(),
            "rng.generator": gen.get_state(),
            "rng.torch": torch.get_rng_state(),
        }
        opts = {"main": _flatten_optimizer("opt.main", opt.state_dict(), tensors)}
        for name, o in self._aux_optimizers().items():
            opts[name] = _flatten_optimizer(f"opt.{name}", o.state_dict(), tensors)
        for name, mod in self._aux_modules().items():
            for k, v in mod.state_dict().items():
                tensors[f"aux.{name}.{k}"] = v.detach().clone()
        manifest = {
            "format": CHECKPOINT_FORMAT,
            # 2: the checksum covers this JSON too (optimiser settings, step, history)
            "format_version": 2,
            "identity": identity,
            "step": step,
            "history": history,
            "optimizers": opts,
        }
        if self._best is not None:  # the validation-best set so far (engine.keep_best)
            best_step, best_value, art = self._best
            for k, v in art._tensors().items():
                tensors[f"best.{k}"] = v
            manifest["best"] = {"step": best_step, "value": best_value, "set": art.manifest()}
        path = write_container(ckdir / f"step_{step:08d}.safetensors", tensors, manifest)
        # Retention deletes only this run's checkpoints: a file whose manifest names another
        # identity, or cannot be read, was not written by this run and is left alone.
        mine = [p for p in _list_checkpoints(ckdir) if _checkpoint_identity(p) == _json(identity)]
        for old in mine[self.engine.keep_checkpoints :]:
            old.unlink(missing_ok=True)
        return path

    @staticmethod
    def _list_checkpoints(ckdir: Path) -> list[Path]:
        """Checkpoints in ``ckdir``, newest first."""
        return _list_checkpoints(ckdir)

    def _restore(
        self,
        ckdir: Path,
        identity: dict,
        image: torch.Tensor,
        text: torch.Tensor,
        opt: torch.optim.Optimizer,
        gen: torch.Generator,
    ) -> tuple[int, list, Path] | None:
        for path in self._list_checkpoints(ckdir):
            try:
                tensors, m = read_container(path, expect_format=CHECKPOINT_FORMAT)
            except ArtifactError as err:
                warnings.warn(f"skipping unreadable checkpoint: {err}", stacklevel=3)
                continue
            if m.get("identity") != identity:
                raise ValueError(
                    f"{path} belongs to a different run (method, config, budget, seed or data "
                    f"differ): {m.get('identity')} != {identity}"
                )
            with torch.no_grad():
                image.copy_(tensors["syn.image"])
                text.copy_(tensors["syn.text"])
            opt.load_state_dict(_unflatten_optimizer(m["optimizers"]["main"], tensors))
            for name, o in self._aux_optimizers().items():
                o.load_state_dict(_unflatten_optimizer(m["optimizers"][name], tensors))
            for name, mod in self._aux_modules().items():
                prefix = f"aux.{name}."
                mod.load_state_dict(
                    {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
                )
            gen.set_state(tensors["rng.generator"])
            torch.set_rng_state(tensors["rng.torch"])
            if "best" in m:
                b = m["best"]
                parts = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
                art = SyntheticSet.from_parts(parts, b["set"], where=f"{path} (best set)")
                self._best = (int(b["step"]), float(b["value"]), art)
            return int(m["step"]), list(m["history"]), path
        return None
