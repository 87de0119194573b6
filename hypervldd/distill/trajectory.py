"""Trajectory matching for vision-language data (bi-trajectory MTT, optionally on LoRA adapters).

Wu, Zhang, Deng, Russakovsky, *Vision-Language Dataset Distillation*, TMLR 2024
(arXiv 2308.07545), on the frozen-feature protocol: the student is the evaluation
protocol's pair of projection heads (:class:`hypervldd.eval.Student`).

1. **Experts** (:func:`train_experts`, in :mod:`.experts`): ``N`` students trained on all
   real caption pairs with plain SGD (paper: lr 0.1, no momentum, no weight decay, batch 128,
   10 epochs), the protocol's student and loss (symmetric InfoNCE over the
   student's logits ``-d / tau``, captions of one image mutual positives). The
   parameters of both heads are recorded after every epoch. An
   :class:`ExpertBuffer` stores them: per expert one safetensors file per side
   (``image_0003.safetensors``, ``text_0003.safetensors``) plus the initial
   student state, and a JSON manifest (``manifest.json``) with the student config,
   the optimiser, the data fingerprint, the parameter names, shapes and order,
   the storage dtype, and per expert its index, seed, files and checksums. Image
   and text trajectories are paired through that explicit index (each file's own
   header repeats it and is checked), never by directory order. Training resumes
   expert by expert; a buffer whose identity (config or data fingerprint) differs
   is refused.
2. **Matching** (:class:`MTTDistiller`, method ``"mtt"``): every iteration picks an
   expert and a start epoch ``e`` uniformly in ``[0, max_start_epoch)``, starts the
   student at ``theta*_e``, takes ``syn_steps`` SGD steps on the synthetic pairs with
   learnable per-modality step sizes, and minimises, per head ``m``,
   ``|theta_m - theta*_{m, e+R}|^2 / |theta*_{m,e} - theta*_{m, e+R}|^2`` summed over the two
   heads (``R = expert_epochs``). The inner loss is the experts' loss at the
   experts' temperature: the student's logits ``-d / tau`` with ``tau`` read from
   the expert (the reference code uses ``log(1/tau)`` in its inner loop).
3. **Memory constant in ``syn_steps``** (activation memory, :mod:`.matching`): the forward
   pass keeps only the parameters of each step; the backward pass recomputes each step's
   graph, one at a time, and propagates the adjoint exactly (a Hessian-vector
   product per step), accumulating the gradients of the synthetic tensors, the
   step sizes and the similarity. The randomness of a step (mini-batch, feature
   dropout) comes from a per-step seed drawn once and replayed in the
   recomputation. This is the exact gradient of the unrolled loop, not TESLA's
   first-order approximation (tested against autograd through all steps).
4. **LoRS soft similarity** (optional, ``similarity_rank > 0``): targets
   ``S = diag(a) + (alpha / r) L R^T`` learned with the data (Xu et al., ICML 2024);
   stored in the artifact and counted in ``storage_floats``.
5. **LoRA** (``experts.lora_rank > 0``): experts train low-rank adapters of the
   heads' linear layers (:mod:`.lora`); trajectories and matching are over the
   adapter tensors only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..eval.protocol import StudentConfig
from ..eval.student import Student, symmetric_infonce
from .artifact import LowRankSimilarity, SyntheticSet
from .base import RealData, register
from .engine import EngineConfig, GradientDistiller

# The experts and the matching gradient have modules of their own; their names stay
# importable from here, where they lived first.
from .experts import (  # noqa: F401
    _DTYPES,
    BUFFER_FORMAT,
    SIDES,
    TRAJECTORY_FORMAT,
    Expert,
    ExpertBuffer,
    ExpertConfig,
    ParamLayout,
    _expert_seed,
    _identity,
    build_expert_student,
    side_parameter_names,
    train_experts,
)
from .matching import (  # noqa: F401
    StepLoss,
    _normalisers,
    matching_gradients,
    unrolled_matching_loss,
)

__all__ = [
    "ExpertConfig",
    "ExpertBuffer",
    "Expert",
    "train_experts",
    "build_expert_student",
    "side_parameter_names",
    "ParamLayout",
    "matching_gradients",
    "unrolled_matching_loss",
    "make_step_loss",
    "soft_infonce",
    "MTTConfig",
    "MTTDistiller",
    "BUFFER_FORMAT",
]


def _check_matching_settings(cfg: Any, prefix: str = "") -> None:
    """Validate the trajectory-matching fields ``MTTConfig`` and ``MTTPixelsConfig`` share.

    ``prefix`` (e.g. ``"mtt_pixels: "``) starts every message, naming the method.
    """
    for name in ("syn_steps", "expert_epochs", "max_start_epoch"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{prefix}{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.max_start_epoch - 1 + cfg.expert_epochs > cfg.experts.epochs:
        raise ValueError(
            f"{prefix}max_start_epoch - 1 + expert_epochs = "
            f"{cfg.max_start_epoch - 1 + cfg.expert_epochs} exceeds experts.epochs = "
            f"{cfg.experts.epochs}: the target epoch would not exist"
        )
    if cfg.batch_syn is not None and int(cfg.batch_syn) < 2:
        raise ValueError(f"{prefix}batch_syn must be >= 2 or None, got {cfg.batch_syn}")
    if cfg.lr_init is not None and not (cfg.lr_init > 0):
        raise ValueError(f"{prefix}lr_init must be > 0, got {cfg.lr_init}")
    if not (cfg.lr_lr >= 0) or not (cfg.lr_similarity >= 0):
        raise ValueError(f"{prefix}lr_lr and lr_similarity must be >= 0")
    if cfg.normalization not in ("per_modality", "merged"):
        raise ValueError(
            f"{prefix}normalization must be 'per_modality' or 'merged', got {cfg.normalization!r}"
        )
    if int(cfg.similarity_rank) < 0 or not math.isfinite(cfg.similarity_alpha):
        raise ValueError(f"{prefix}similarity_rank must be >= 0 and similarity_alpha finite")
    if cfg.gradient not in ("recompute", "unroll"):
        raise ValueError(f"{prefix}gradient must be 'recompute' or 'unroll', got {cfg.gradient!r}")


# -- the distiller ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MTTConfig:
    """Bi-trajectory matching settings (VL-Distill defaults where they carry over).

    Attributes:
        syn_steps: student steps on synthetic data per iteration (paper: 8).
        expert_epochs: ``R``, the target is ``R`` epochs after the start (paper: 1).
        max_start_epoch: start epochs are drawn from ``[0, max_start_epoch)`` (paper: 2).
        batch_syn: synthetic pairs per inner step (``None``: all; paper: 100,
            the whole set at 100 pairs).
        lr_init: initial step sizes (``None``: the experts' lr, as the paper).
        lr_lr: learning rate of the log step sizes (paper: 1e-2, on the rate itself;
            here the rate is ``exp(log_lr)`` so it stays positive).
        feature_dropout: inverted dropout on the synthetic features in the inner
            loop, an augmentation whose masks are replayed in the recomputation.
        blend: RepBlend's representation blending (Zhang et al., NeurIPS 2025): each
            inner step mixes the synthetic batch with a permutation of itself,
            ``x <- lam x + (1 - lam) x[perm]`` with one ``lam ~ U(0, 1)`` (their
            Beta(1, 1)) shared by the image features and the text embeddings, so a
            mixed image still pairs with its mixed caption; targets are not mixed.
            Replayed in the recomputation like the dropout masks.
        normalization: ``"per_modality"`` (paper: one normalised term per head,
            summed) or ``"merged"`` (LoRS on COCO: one ratio over both heads).
        similarity_rank: 0 (identity targets) or the rank ``r`` of a learned LoRS
            similarity ``diag(a) + (similarity_alpha / r) L R^T``.
        similarity_alpha, lr_similarity: LoRS's ``alpha`` and the learning rate of
            ``S`` under the engine's optimiser (LoRS: 10 with SGD; 0.01 with Adam).
        gradient: ``"recompute"`` (exact, activation memory O(1) in ``syn_steps``)
            or ``"unroll"`` (autograd through all steps, memory O(syn_steps)).
        buffer_dir: expert buffer directory (default: ``<checkpoint_dir>/experts``
            when a checkpoint directory is given, else in memory).
        student: the student the experts train (the evaluation protocol's).
        experts: the expert recipe.
        engine: synthetic-data optimisation. The paper uses SGD (momentum 0.5, lr
            1000 on pixels); on L2-normalised features Adam steps of 0.001 per
            coordinate are the stable equivalent (SGD's first step on the raw
            gradient, of norm ~10-30 for unit-norm features, throws them off the
            sphere), hence the defaults ``optimizer="adam"``, ``lr 0.001``.
    """

    syn_steps: int = 8
    expert_epochs: int = 1
    max_start_epoch: int = 2
    batch_syn: int | None = None
    lr_init: float | None = None
    lr_lr: float = 1e-2
    feature_dropout: float = 0.0
    blend: bool = False
    normalization: str = "per_modality"
    similarity_rank: int = 0
    similarity_alpha: float = 1.0
    lr_similarity: float = 0.01
    gradient: str = "recompute"
    buffer_dir: str | None = None
    student: StudentConfig = field(default_factory=StudentConfig)
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    engine: EngineConfig = field(
        default_factory=lambda: EngineConfig(
            iterations=2000, optimizer="adam", lr_image=0.001, lr_text=0.001
        )
    )

    def __post_init__(self) -> None:
        _check_matching_settings(self)
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")


def soft_infonce(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """:func:`hypervldd.eval.student.symmetric_infonce` with a gradient at zero targets.

    Same value (negative targets count as 0, rows and columns normalised), but the
    targets' gradient passes at exactly 0, where LoRS's similarity starts (``R = 0``
    makes every off-diagonal entry 0 and ``clamp_min(0)`` would block it for good).
    """
    if targets is None:
        return symmetric_infonce(logits, None)
    t = targets.to(logits.dtype)
    t = torch.where(t >= 0, t, torch.zeros_like(t))
    tiny = torch.finfo(t.dtype).tiny
    row = t / t.sum(1, keepdim=True).clamp_min(tiny)
    col = t / t.sum(0, keepdim=True).clamp_min(tiny)
    i2t = -(row * torch.log_softmax(logits, 1)).sum(1).mean()
    t2i = -(col * torch.log_softmax(logits, 0)).sum(0).mean()
    return 0.5 * (i2t + t2i)


class _Objective(nn.Module):
    """The experts' loss as a module, so ``functional_call`` can swap the head parameters."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor:
        st = self.student
        return soft_infonce(st.logits(st.encode_image(image), st.encode_text(text)), targets)


class _Learned(nn.Module):
    """Learned step sizes (log) and the optional LoRS similarity factors."""

    def __init__(self, lr0: float, m: int, rank: int) -> None:
        super().__init__()
        self.log_lr = nn.Parameter(torch.full((2,), math.log(lr0)))
        if rank > 0:
            self.sim_diag = nn.Parameter(torch.ones(m))
            self.sim_left = nn.Parameter(torch.zeros(m, rank))
            self.sim_right = nn.Parameter(torch.zeros(m, rank))

    def similarity_params(self) -> list[nn.Parameter]:
        return [self.sim_diag, self.sim_left, self.sim_right] if hasattr(self, "sim_diag") else []


def _step_batch(m: int, batch: int | None, g: torch.Generator) -> torch.Tensor:
    # The first draw from a step's generator, so the recomputation replays the same rows.
    if batch is None or batch >= m:
        return torch.arange(m)
    return torch.randperm(m, generator=g)[:batch]


def _step_targets(
    inputs: Sequence[torch.Tensor], idx: torch.Tensor, sim_scale: float
) -> torch.Tensor | None:
    # The learned LoRS similarity diag(a) + scale L R^T on the batch rows (None: identity).
    if len(inputs) <= 2:
        return None
    diag, left, right = inputs[2], inputs[3], inputs[4]
    return torch.diag(diag[idx]) + sim_scale * (left[idx] @ right[idx].T)


def _student_params(
    layouts: dict[str, ParamLayout], params: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    # Flat per-side parameters as the objective's ``student.*`` names for functional_call.
    pd: dict[str, torch.Tensor] = {}
    for side, p in zip(SIDES, params, strict=True):
        pd.update(layouts[side].unflatten(p, prefix="student."))
    return pd


def make_step_loss(
    objective: _Objective,
    layouts: dict[str, ParamLayout],
    step_seeds: Sequence[int],
    *,
    batch: int | None,
    feature_dropout: float = 0.0,
    blend: bool = False,
    sim_scale: float = 1.0,
) -> StepLoss:
    """The inner loss of step ``i`` on inputs ``(image, text[, diag, left, right])``.

    Step ``i``'s mini-batch, dropout masks and blending draw come from
    ``Generator().manual_seed(step_seeds[i])``, so the recomputation replays them.
    """

    def step_loss(
        i: int, params: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        image, text = inputs[0], inputs[1]
        m = image.shape[0]
        g = torch.Generator().manual_seed(int(step_seeds[i]))
        idx = _step_batch(m, batch, g)
        xi, xt = image[idx], text[idx]
        if feature_dropout > 0:
            keep = 1.0 - feature_dropout
            xi = xi * torch.bernoulli(torch.full_like(xi, keep), generator=g) / keep
            xt = xt * torch.bernoulli(torch.full_like(xt, keep), generator=g) / keep
        if blend:
            # One lam and one permutation for both modalities keeps mixed pair i a pair.
            lam = float(torch.rand((), generator=g))
            perm = torch.randperm(xi.shape[0], generator=g)
            xi = lam * xi + (1.0 - lam) * xi[perm]
            xt = lam * xt + (1.0 - lam) * xt[perm]
        targets = _step_targets(inputs, idx, sim_scale)
        pd = _student_params(layouts, params)
        return functional_call(objective, pd, (xi, xt, targets))

    return step_loss


@register
class MTTDistiller(GradientDistiller):
    """Bi-trajectory matching (VL-Distill, TMLR 2024) on the frozen-feature protocol."""

    method = "mtt"
    Config = MTTConfig

    def _fit(
        self,
        data: RealData,
        budget: int,
        seed: int,
        *,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        validate: Any = None,
        progress: bool = False,
    ) -> SyntheticSet:
        """As :meth:`GradientDistiller._fit`; experts go to ``buffer_dir`` or
        ``checkpoint_dir/experts`` (trained there first, or resumed, or reused)."""
        cfg_dir = self.config.buffer_dir
        self._buffer_dir = (
            Path(cfg_dir)
            if cfg_dir
            else (Path(checkpoint_dir) / "experts" if checkpoint_dir is not None else None)
        )
        self._progress = bool(progress)
        return super()._fit(
            data,
            budget,
            seed,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            validate=validate,
            progress=progress,
        )

    def _make_opt(self, image: torch.Tensor, text: torch.Tensor) -> torch.optim.Optimizer:
        cfg = self.config
        opt = super()._make_opt(image, text)
        lr0 = cfg.lr_init if cfg.lr_init is not None else cfg.experts.lr
        self._learned = _Learned(float(lr0), int(image.shape[0]), int(cfg.similarity_rank))
        opt.add_param_group({"params": [self._learned.log_lr], "lr": cfg.lr_lr})
        sim = self._learned.similarity_params()
        if sim:
            opt.add_param_group({"params": sim, "lr": cfg.lr_similarity})
        return opt

    def _setup(self, data: RealData, budget: int, gen: torch.Generator) -> None:
        cfg = self.config
        if cfg.similarity_rank:
            with torch.no_grad():  # LoRS: L ~ N(0, 1), R = 0, so S starts at I
                self._learned.sim_left.normal_(generator=gen)
        self._buffer = train_experts(
            data, cfg.student, cfg.experts, self._buffer_dir, progress=self._progress
        )
        d_i, d_t = int(data.pair_image.shape[1]), int(data.pair_text.shape[1])
        template = build_expert_student(
            d_i, d_t, cfg.student, cfg.experts, torch.Generator().manual_seed(0)
        )
        template.requires_grad_(False)
        self._objective = _Objective(template)

    def _aux_modules(self) -> dict[str, nn.Module]:
        return {"learned": self._learned}

    def _resolved(self) -> dict[str, Any]:
        return {"num_experts": len(self._buffer), "buffer_key": self._buffer.key}

    def _load_expert_state(self, init_state: dict[str, torch.Tensor]) -> None:
        """Put an expert's initial state (frozen parts, temperature) into the template."""
        self._objective.student.load_state_dict(init_state)

    def _step_loss(self, seeds: list[int]) -> StepLoss:
        """The inner loss of one iteration, its randomness from ``seeds`` (one per step)."""
        cfg = self.config
        rank = int(cfg.similarity_rank)
        return make_step_loss(
            self._objective,
            self._buffer.layouts,
            seeds,
            batch=cfg.batch_syn,
            feature_dropout=float(cfg.feature_dropout),
            blend=bool(cfg.blend),
            sim_scale=float(cfg.similarity_alpha) / rank if rank else 1.0,
        )

    def _loss(
        self,
        step: int,
        image: torch.Tensor,
        text: torch.Tensor,
        data: RealData,
        gen: torch.Generator,
    ) -> torch.Tensor:
        cfg = self.config
        k = int(torch.randint(len(self._buffer), (1,), generator=gen))
        e = int(torch.randint(int(cfg.max_start_epoch), (1,), generator=gen))
        seeds = torch.randint(2**62, (int(cfg.syn_steps),), generator=gen).tolist()
        expert = self._buffer.load(k)
        self._load_expert_state(expert.init_state)
        theta0 = [expert.trajectories[s][e] for s in SIDES]
        target = [expert.trajectories[s][e + int(cfg.expert_epochs)] for s in SIDES]
        step_loss = self._step_loss(seeds)
        inputs = [image, text, *self._learned.similarity_params()]
        leaves = [*inputs, self._learned.log_lr]
        if cfg.gradient == "unroll":
            return unrolled_matching_loss(
                step_loss,
                theta0,
                target,
                self._learned.log_lr,
                inputs,
                int(cfg.syn_steps),
                cfg.normalization,
            )
        loss, grads, lr_grad = matching_gradients(
            step_loss,
            theta0,
            target,
            self._learned.log_lr,
            inputs,
            int(cfg.syn_steps),
            cfg.normalization,
        )
        # A surrogate whose value is the loss and whose gradient is the exact one, so
        # the engine's backward/step/checkpoint path applies unchanged (t - t.detach() == 0).
        t = sum((g.detach() * x).sum() for g, x in zip([*grads, lr_grad], leaves, strict=True))
        return loss + (t - t.detach())

    def _artifact(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        src: torch.Tensor,
        data: RealData,
        seed: int,
        history: list,
    ) -> SyntheticSet:
        out = super()._artifact(image, text, src, data, seed, history)
        lr = self._learned.log_lr.detach().exp()
        out.learned_lrs = {"image": lr[0].clone(), "text": lr[1].clone()}
        sim = self._learned.similarity_params()
        if sim:
            rank = int(self.config.similarity_rank)
            out.similarity = LowRankSimilarity(
                sim[0].detach().clone(),
                sim[1].detach().clone(),
                sim[2].detach().clone(),
                float(self.config.similarity_alpha) / rank,
            )
        out.validate()
        return out
