"""Statistics matching on the engine: moment matching and CovMatch.

CovMatch (Lee & Chung, NeurIPS 2025, arXiv 2510.18583) linearises the
contrastive loss of linear projections over encoder features; its inner optimum
is closed-form in the image-text cross-covariance, so distillation reduces to
matching cross-covariances, plus a per-modality feature-mean term:

    L = || rho * C_T - C_S ||_F^2 + lam * sum_m || mean_T(h_m) - mean_S(h_m) ||^2

where ``C = mean_i (h_v,i - mean h_v)(h_l,i - mean h_l)^T`` over a real batch
(``T``) or the synthetic set (``S``). The features ``h`` come from an *online
student* trained one SGD step per iteration on a real batch and re-initialised
every ``reset_every`` (50) iterations. In this frozen-encoder setting the student
is the protocol's projection heads and ``h`` their tangent outputs (before the
lift). Paper defaults: synthetic lr 1.0 with momentum 0.5; ``rho = 2`` at <= 100
pairs else 1; ``lam = 0.1`` at <= 200 pairs else 0.5; 10k iterations (20k at 500
pairs: set ``engine.iterations``). These defaults are taken from a secondary
summary of the paper (the official code was not reviewed).

:class:`MomentMatching` is the student-free version: the same loss on the
L2-normalised frozen features themselves (``rho = 1`` unless set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import has_values
from ..distributed import all_gather_rows, all_reduce_mean_, get_rank, get_world_size, shard_range
from ..eval.protocol import StudentConfig
from ..eval.student import Student, batch_targets, symmetric_infonce
from .base import RealData, register
from .engine import EngineConfig, GradientDistiller

__all__ = [
    "OnlineStudent",
    "OnlineStudentDistiller",
    "CovMatchConfig",
    "CovMatch",
    "MomentMatchingConfig",
    "MomentMatching",
    "cross_covariance",
]


def cross_covariance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Centred cross-covariance ``(D_a, D_b)`` of paired rows ``a (N, D_a)``, ``b (N, D_b)``."""
    a = a - a.mean(0, keepdim=True)
    b = b - b.mean(0, keepdim=True)
    return a.T @ b / a.shape[0]


def _stat_loss(
    hv_t: torch.Tensor,
    hl_t: torch.Tensor,
    hv_s: torch.Tensor,
    hl_s: torch.Tensor,
    rho: float,
    lam: float,
) -> torch.Tensor:
    cov = (rho * cross_covariance(hv_t, hl_t) - cross_covariance(hv_s, hl_s)).pow(2).sum()
    feat = (hv_t.mean(0) - hv_s.mean(0)).pow(2).sum() + (hl_t.mean(0) - hl_s.mean(0)).pow(2).sum()
    return cov + lam * feat


class OnlineStudent:
    """The online student of CovMatch (and RAHA): trained along the distillation.

    At every iteration it takes one SGD step of the symmetric contrastive loss on
    a fresh real batch, and every ``reset_every`` iterations it is re-initialised
    in place (so the checkpointed module and optimiser objects stay the same).
    All randomness comes from the engine's generator, in a fixed order: the
    re-initialisation, then the batch.
    """

    def __init__(self, data: RealData, config: Any, gen: torch.Generator) -> None:
        self.config = config
        self.student = Student(
            data.pair_image.shape[1],
            data.pair_text.shape[1],
            config.student,
            gen,
            device=data.pair_image.device,
        )
        self.optimizer = torch.optim.SGD(
            [p for p in self.student.parameters() if p.requires_grad],
            lr=config.student_lr,
            momentum=config.student_momentum,
        )

    def step(
        self,
        step: int,
        data: RealData,
        gen: torch.Generator,
        batch_size: int,
        group: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Advance one iteration; returns the real batch ``(idx, image, text)``.

        With a process ``group`` every rank draws the same batch, encodes its contiguous
        slice, and the gathered rows give every rank the whole batch's loss; the student's
        gradients are averaged over the ranks (DDP style), so the replicas stay equal.
        """
        if step > 0 and step % self.config.reset_every == 0:
            fresh = Student(
                data.pair_image.shape[1], data.pair_text.shape[1], self.config.student, gen
            )
            self.student.load_state_dict(fresh.state_dict())
            self.optimizer.state.clear()
        b = min(int(batch_size), data.num_pairs)
        idx = torch.randperm(data.num_pairs, generator=gen)[:b]
        ri, rt = data.pair_image[idx], data.pair_text[idx]
        st = self.student
        st.train()
        if group is None:
            logits = st.logits(st.encode_image(ri), st.encode_text(rt))
        else:
            lo, hi = shard_range(b, get_rank(group), get_world_size(group))
            logits = st.logits(
                all_gather_rows(st.encode_image(ri[lo:hi]), group),
                all_gather_rows(st.encode_text(rt[lo:hi]), group),
            )
        sloss = symmetric_infonce(
            logits, batch_targets(idx, similarity=None, group=data.pair_group)
        )
        # a traced (fake) loss has no value to test: the step is taken
        if not has_values(sloss) or bool(torch.isfinite(sloss)):
            self.optimizer.zero_grad(set_to_none=True)
            sloss.backward()
            if group is not None:
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                all_reduce_mean_([p.grad for p in params if p.grad is not None], group)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return idx, ri, rt


class OnlineStudentDistiller(GradientDistiller):
    """Base of methods that read features through an :class:`OnlineStudent`.

    Subclasses call :meth:`_start_student` in ``_setup`` and give :meth:`_tangent_loss`:
    each step advances the student on a real batch and compares its tangent features
    of that batch with those of the synthetic set. The student and its optimiser are
    checkpointed. Under ``torch.distributed`` each rank encodes its slice of every
    real batch.
    """

    distributed_aware = True

    def _start_student(self, data: RealData, gen: torch.Generator) -> None:
        self._online = OnlineStudent(data, self.config, gen)

    def _aux_modules(self) -> dict[str, nn.Module]:
        return {"student": self._online.student}

    def _aux_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"student": self._online.optimizer}

    def _loss(
        self,
        step: int,
        image: torch.Tensor,
        text: torch.Tensor,
        data: RealData,
        gen: torch.Generator,
    ) -> torch.Tensor:
        st, real_image, real_text = self._real_tangents(step, data, gen)
        return self._tangent_loss(
            real_image, real_text, st.image_tangent(image), st.text_tangent(text)
        )

    def _tangent_loss(
        self,
        real_image: torch.Tensor,
        real_text: torch.Tensor,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
    ) -> torch.Tensor:
        """The scalar loss between the real batch's and the synthetic set's tangent features."""
        raise NotImplementedError

    def _real_tangents(
        self, step: int, data: RealData, gen: torch.Generator
    ) -> tuple[Student, torch.Tensor, torch.Tensor]:
        """Advance the student one step; its tangent features of the real batch (no grad)."""
        g = self._group
        _, ri, rt = self._online.step(step, data, gen, self.engine.real_batch_size, g)
        st = self._online.student
        with torch.no_grad():
            if g is None:
                return st, st.image_tangent(ri), st.text_tangent(rt)
            lo, hi = self._shard(ri.shape[0])
            return (
                st,
                all_gather_rows(st.image_tangent(ri[lo:hi]), g),
                all_gather_rows(st.text_tangent(rt[lo:hi]), g),
            )


@dataclass(frozen=True)
class CovMatchConfig:
    """CovMatch settings (``None`` = the paper's budget-dependent default).

    Attributes:
        rho: cross-covariance scale; default 2 if budget <= 100 else 1.
        lam: weight of the feature-mean terms; default 0.1 if budget <= 200 else 0.5.
        reset_every: iterations between re-initialisations of the online student.
        student_lr, student_momentum: the online student's SGD.
        student: the online student's architecture.
        engine: optimisation settings (synthetic lr 1.0, momentum 0.5, 10k steps).
    """

    rho: float | None = None
    lam: float | None = None
    reset_every: int = 50
    student_lr: float = 0.1
    student_momentum: float = 0.9
    student: StudentConfig = field(default_factory=StudentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if self.rho is not None and not (self.rho > 0):
            raise ValueError(f"rho must be > 0, got {self.rho}")
        if self.lam is not None and self.lam < 0:
            raise ValueError(f"lam must be >= 0, got {self.lam}")
        if int(self.reset_every) < 1 or not (self.student_lr > 0):
            raise ValueError("reset_every must be >= 1 and student_lr > 0")


@register
class CovMatch(OnlineStudentDistiller):
    """CovMatch: cross-covariance + feature-mean matching through an online student."""

    method = "covmatch"
    device_ready = True  # its device path: tests/fake_cuda
    Config = CovMatchConfig

    def _resolve(self, budget: int) -> None:
        cfg = self.config
        self._rho = cfg.rho if cfg.rho is not None else (2.0 if budget <= 100 else 1.0)
        self._lam = cfg.lam if cfg.lam is not None else (0.1 if budget <= 200 else 0.5)

    def _resolved(self) -> dict[str, Any]:
        return {"rho": self._rho, "lam": self._lam}

    def _setup(self, data: RealData, budget: int, gen: torch.Generator) -> None:
        self._resolve(budget)
        self._start_student(data, gen)

    def _tangent_loss(
        self,
        real_image: torch.Tensor,
        real_text: torch.Tensor,
        syn_image: torch.Tensor,
        syn_text: torch.Tensor,
    ) -> torch.Tensor:
        return _stat_loss(real_image, real_text, syn_image, syn_text, self._rho, self._lam)


@dataclass(frozen=True)
class MomentMatchingConfig:
    """Student-free statistics matching on L2-normalised frozen features."""

    rho: float = 1.0
    lam: float = 1.0
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(iterations=2000))

    def __post_init__(self) -> None:
        if not (self.rho > 0) or self.lam < 0:
            raise ValueError(f"rho must be > 0 and lam >= 0, got {self.rho}, {self.lam}")


@register
class MomentMatching(GradientDistiller):
    """Match the means and the image-text cross-covariance of the real features."""

    method = "moment_matching"
    device_ready = True  # its device path: tests/fake_cuda
    Config = MomentMatchingConfig

    def _loss(
        self,
        step: int,
        image: torch.Tensor,
        text: torch.Tensor,
        data: RealData,
        gen: torch.Generator,
    ) -> torch.Tensor:
        b = min(int(self.engine.real_batch_size), data.num_pairs)
        idx = torch.randperm(data.num_pairs, generator=gen)[:b]
        ri = F.normalize(data.pair_image[idx], dim=-1)
        rt = F.normalize(data.pair_text[idx], dim=-1)
        si, stx = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
        return _stat_loss(ri, rt, si, stx, self.config.rho, self.config.lam)
