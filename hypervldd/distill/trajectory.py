"""Trajectory matching for vision-language data (bi-trajectory MTT, optionally on LoRA adapters).

Wu, Zhang, Deng, Russakovsky, *Vision-Language Dataset Distillation*, TMLR 2024
(arXiv 2308.07545), on the frozen-feature protocol: the student is the evaluation
protocol's pair of projection heads (:class:`hypervldd.eval.Student`).

1. **Experts** (:func:`train_experts`): ``N`` students trained on all real caption
   pairs with plain SGD (paper: lr 0.1, no momentum, no weight decay, batch 128,
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
3. **Memory constant in ``syn_steps``** (activation memory): the forward pass keeps
   only the parameters of each step; the backward pass recomputes each step's
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

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from ..data._io import atomic_write_bytes, sha256_json
from ..eval._config import config_to_dict
from ..eval.protocol import EvalProtocol, StudentConfig
from ..eval.student import Student, symmetric_infonce, train_student
from ._io import ArtifactError, read_container, write_container
from .artifact import LowRankSimilarity, SyntheticSet
from .base import RealData, register
from .engine import EngineConfig, GradientDistiller
from .lora import add_lora

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

BUFFER_FORMAT = "hypervldd.expert_buffer"
TRAJECTORY_FORMAT = "hypervldd.expert_trajectory"
SIDES = ("image", "text")
_DTYPES = {"float32": torch.float32, "float16": torch.float16}

# step_loss(i, params, inputs) -> scalar: the inner loss of step i at the per-group flat
# parameter vectors ``params`` and the synthetic tensors ``inputs``.
StepLoss = Callable[[int, Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]


# -- experts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpertConfig:
    """How experts are trained (VL-Distill's ``buffer.py`` defaults).

    Attributes:
        num_experts: number of expert trajectories (paper: 20).
        epochs: epochs per expert (paper: 10); a snapshot is kept after each.
        lr, momentum, weight_decay, batch_size: plain SGD (paper: 0.1, 0, 0, 128).
            The inner loop of matching is plain SGD, so momentum > 0 makes the
            expert and student dynamics differ (allowed, not advised).
        seed: expert ``i`` draws everything from ``Generator().manual_seed(seed *
            1_000_003 + i)``, independent of the distillation seed, so one buffer
            serves many runs.
        dtype: trajectory storage, ``"float32"`` or ``"float16"`` (half the disk).
        lora_rank: 0 trains the heads' full weights; ``r > 0`` freezes them and
            trains rank-``r`` adapters of every linear layer of both heads.
            Ranks above ``min(in, out)`` are clipped per layer (a huge rank means
            full rank). The adapters' ``A`` come from a generator of their own
            (seeded from the expert's seed), so the batch order of a LoRA expert is
            the same as that of the full-weight expert with the same seed.
        lora_scale, lora_init, lora_train_a: see :class:`hypervldd.distill.lora.LoRA`.
        lora_train_bias: the adapted layers' biases train too (and are matched).
    """

    num_experts: int = 20
    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 128
    seed: int = 0
    dtype: str = "float32"
    lora_rank: int = 0
    lora_scale: float = 1.0
    lora_init: str = "kaiming"
    lora_train_a: bool = True
    lora_train_bias: bool = False

    def __post_init__(self) -> None:
        for name in ("num_experts", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"experts.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0) or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(
                "experts.lr must be > 0, experts.momentum and experts.weight_decay >= 0, got "
                f"{self.lr}, {self.momentum}, {self.weight_decay}"
            )
        if self.dtype not in _DTYPES:
            raise ValueError(f"experts.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if int(self.lora_rank) < 0:
            raise ValueError(f"experts.lora_rank must be >= 0, got {self.lora_rank}")

    def protocol(self, student: StudentConfig) -> EvalProtocol:
        """The training recipe as an :class:`EvalProtocol` (constant rate, one run)."""
        return EvalProtocol(
            student=student,
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            optimizer="sgd",
            lr=float(self.lr),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            lr_decay_epochs=(),
            seeds=(0,),
        )


def build_expert_student(
    image_dim: int,
    text_dim: int,
    student: StudentConfig,
    experts: ExpertConfig,
    generator: torch.Generator,
    lora_seed: int = 0,
) -> Student:
    """A fresh student as the experts train it (with LoRA adapters if ``lora_rank > 0``).

    The heads' weights come from ``generator``; the adapters' ``A`` from
    ``Generator().manual_seed(lora_seed)``.
    """
    st = Student(image_dim, text_dim, student, generator)
    if int(experts.lora_rank) > 0:
        lora_gen = torch.Generator().manual_seed(int(lora_seed))
        for head in (st.image_head, st.text_head):
            add_lora(
                head,
                int(experts.lora_rank),
                scale=experts.lora_scale,
                init=experts.lora_init,
                train_a=experts.lora_train_a,
                train_bias=experts.lora_train_bias,
                generator=lora_gen,
            )
    return st


def side_parameter_names(student: nn.Module) -> dict[str, list[str]]:
    """The trainable parameters of each head, ``{"image": [...], "text": [...]}``, in order."""
    out = {}
    for side in SIDES:
        head = getattr(student, f"{side}_head")
        out[side] = [f"{side}_head.{n}" for n, p in head.named_parameters() if p.requires_grad]
        if not out[side]:
            raise ValueError(f"the student's {side} head has no trainable parameter")
    return out


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of one side's parameters, and their packing into a flat vector."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def flatten(self, tensors: dict[str, torch.Tensor], lead: int = 0) -> torch.Tensor:
        """Concatenate ``tensors[name]`` (each ``(*lead_dims, *shape)``) -> ``(*lead_dims, P)``."""
        return torch.cat([tensors[n].reshape(*tensors[n].shape[:lead], -1) for n in self.names], -1)

    def unflatten(self, flat: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
        """Views of a flat ``(P,)`` vector by (prefixed) name."""
        sizes = [math.prod(s) for s in self.shapes]
        parts = torch.split(flat, sizes)
        return {
            prefix + n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)
        }

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": n, "shape": list(s)} for n, s in zip(self.names, self.shapes, strict=True)]


@dataclass
class Expert:
    """One loaded expert: the initial student state and the flat trajectories.

    Attributes:
        index: the expert's index in the buffer manifest.
        init_state: the student's ``state_dict`` before training (frozen parts,
            temperature, LoRA bases).
        trajectories: ``{"image": (E+1, P_i), "text": (E+1, P_t)}`` float32.
    """

    index: int
    init_state: dict[str, torch.Tensor]
    trajectories: dict[str, torch.Tensor]


def _identity(data: RealData, student: StudentConfig, experts: ExpertConfig) -> dict[str, Any]:
    exp = config_to_dict(experts)
    exp.pop("num_experts")  # a buffer may grow; the recipe may not change
    return {
        "student": config_to_dict(student),
        "experts": exp,
        "data_fingerprint": data.fingerprint,
        "dims": [int(data.pair_image.shape[1]), int(data.pair_text.shape[1])],
        "loss": "symmetric_infonce(-d/tau), captions of one image mutual positives",
    }


class ExpertBuffer:
    """Expert trajectories, in memory or on disk (``directory``), with a manifest.

    Use :func:`train_experts` to create or extend one; :meth:`load` reads an
    expert (cached).
    """

    def __init__(
        self,
        identity: dict[str, Any],
        layouts: dict[str, ParamLayout],
        directory: str | Path | None = None,
        entries: list[dict[str, Any]] | None = None,
    ) -> None:
        self.identity = identity
        self.layouts = layouts
        self.directory = Path(directory) if directory is not None else None
        self.entries: list[dict[str, Any]] = list(entries or [])
        self._memory: dict[int, Expert] = {}

    @property
    def key(self) -> str:
        """sha256 of the identity; written into every trajectory file."""
        return sha256_json(self.identity)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def storage_dtype(self) -> torch.dtype:
        return _DTYPES[self.identity["experts"]["dtype"]]

    # -- manifest ---------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        exp = self.identity["experts"]
        return {
            "format": BUFFER_FORMAT,
            "format_version": 1,
            "identity": self.identity,
            "key": self.key,
            "optimizer": {
                "name": "sgd",
                "lr": exp["lr"],
                "momentum": exp["momentum"],
                "weight_decay": exp["weight_decay"],
                "batch_size": exp["batch_size"],
                "epochs": exp["epochs"],
            },
            "temperature": self.identity["student"]["temperature"],
            "dtype": exp["dtype"],
            "parameters": {s: self.layouts[s].to_json() for s in SIDES},
            "experts": self.entries,
        }

    def _write_manifest(self) -> None:
        assert self.directory is not None
        m = json.loads(json.dumps(self.manifest(), allow_nan=False))  # what a reader parses
        m["sha256"] = sha256_json(m)  # over everything else in the manifest
        raw = json.dumps(m, indent=1, sort_keys=True, allow_nan=False)
        atomic_write_bytes(self.directory / "manifest.json", raw.encode())

    @classmethod
    def open(cls, directory: str | Path) -> ExpertBuffer:
        """Read ``directory/manifest.json`` (trajectories load lazily)."""
        directory = Path(directory)
        path = directory / "manifest.json"
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ArtifactError(f"{path}: not a readable expert-buffer manifest ({err})") from err
        if not isinstance(m, dict) or m.get("format") != BUFFER_FORMAT:
            raise ArtifactError(f"{path}: not an expert-buffer manifest (format {BUFFER_FORMAT!r})")
        if m.get("format_version") != 1:
            raise ArtifactError(f"{path}: unsupported buffer version {m.get('format_version')}")
        if "sha256" in m:
            if m["sha256"] != sha256_json({k: v for k, v in m.items() if k != "sha256"}):
                raise ArtifactError(
                    f"{path}: checksum mismatch: the manifest was changed or damaged after it "
                    "was written; delete the buffer directory to retrain the experts"
                )
        else:  # written before the manifest carried its sum: the expert files are still checked
            warnings.warn(
                f"{path} has no checksum (written by an older hypervldd); its expert files are "
                "verified, the manifest is not",
                stacklevel=2,
            )
        layouts = {
            s: ParamLayout(
                tuple(p["name"] for p in m["parameters"][s]),
                tuple(tuple(p["shape"]) for p in m["parameters"][s]),
            )
            for s in SIDES
        }
        entries = sorted(m["experts"], key=lambda e: int(e["index"]))
        if [int(e["index"]) for e in entries] != list(range(len(entries))):
            raise ArtifactError(f"{path}: expert indices are not 0..{len(entries) - 1}")
        return cls(m["identity"], layouts, directory, entries)

    def check(self, identity: dict[str, Any]) -> None:
        """Refuse this buffer if it was made for other data or another recipe."""
        if identity == self.identity:
            return
        diff = sorted(
            k for k in set(identity) | set(self.identity) if identity.get(k) != self.identity.get(k)
        )
        where = self.directory if self.directory is not None else "the buffer"
        mine = {k: self.identity.get(k) for k in diff}
        theirs = {k: identity.get(k) for k in diff}
        raise ValueError(
            f"expert buffer {where} does not match this run: {diff} differ (buffer {mine} vs "
            f"run {theirs}). Use another buffer_dir or retrain the experts."
        )

    # -- experts ----------------------------------------------------------------------
    def add(
        self,
        index: int,
        seed: int,
        init_state: dict[str, torch.Tensor],
        trajectories: dict[str, torch.Tensor],
        losses: list[float],
    ) -> None:
        """Record expert ``index`` (must be the next one); written atomically if on disk."""
        if index != len(self.entries):
            raise ValueError(f"expert {index} added out of order (buffer holds {len(self)})")
        entry: dict[str, Any] = {"index": index, "seed": seed, "losses": losses}
        if self.directory is None:
            self._memory[index] = Expert(
                index,
                {k: v.clone() for k, v in init_state.items()},
                {s: trajectories[s].to(self.storage_dtype).float() for s in SIDES},
            )
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            files, sums = {}, {}
            payload = {"init": {f"init.{k}": v for k, v in init_state.items()}}
            for s in SIDES:
                lay = self.layouts[s]
                traj = trajectories[s].to(self.storage_dtype)
                parts = torch.split(traj, [math.prod(sh) for sh in lay.shapes], dim=1)
                payload[s] = {
                    f"traj.{n}": p.reshape(traj.shape[0], *sh)
                    for n, p, sh in zip(lay.names, parts, lay.shapes, strict=True)
                }
            for part, tensors in payload.items():
                name = f"{part}_{index:04d}.safetensors"
                head = {"format": TRAJECTORY_FORMAT, "format_version": 1}
                head.update({"expert": index, "side": part, "buffer": self.key})
                write_container(self.directory / name, tensors, head)
                _, m = read_container(self.directory / name, expect_format=TRAJECTORY_FORMAT)
                files[part], sums[part] = name, m["checksum"]["value"]
            entry.update(files=files, checksums=sums)
        self.entries.append(entry)
        if self.directory is not None:
            self._write_manifest()

    def load(self, index: int) -> Expert:
        """Expert ``index``, its two sides paired through the manifest entry (cached)."""
        if not 0 <= index < len(self.entries):
            raise IndexError(f"expert index {index} out of range (buffer holds {len(self)})")
        if index in self._memory:
            return self._memory[index]
        assert self.directory is not None
        entry = self.entries[index]
        loaded: dict[str, dict[str, torch.Tensor]] = {}
        for part in ("init", *SIDES):
            path = self.directory / entry["files"][part]
            tensors, m = read_container(path, expect_format=TRAJECTORY_FORMAT)
            if (m.get("expert"), m.get("side"), m.get("buffer")) != (index, part, self.key):
                raise ArtifactError(
                    f"{path}: holds expert {m.get('expert')} side {m.get('side')!r} of buffer "
                    f"{m.get('buffer')}, the manifest expects expert {index} side {part!r} of "
                    f"{self.key}"
                )
            if m["checksum"]["value"] != entry["checksums"][part]:
                raise ArtifactError(f"{path}: checksum differs from the buffer manifest")
            loaded[part] = tensors
        init = {k.removeprefix("init."): v for k, v in loaded["init"].items()}
        trajs = {}
        for s in SIDES:
            t = {k.removeprefix("traj."): v.float() for k, v in loaded[s].items()}
            trajs[s] = self.layouts[s].flatten(t, lead=1)
        exp = Expert(index, init, trajs)
        self._memory[index] = exp
        return exp


def _expert_seed(seed: int, index: int) -> int:
    return int(seed) * 1_000_003 + int(index)


def train_experts(
    data: RealData,
    student: StudentConfig,
    experts: ExpertConfig,
    directory: str | Path | None = None,
    *,
    progress: bool = False,
) -> ExpertBuffer:
    """Train (or resume training) ``experts.num_experts`` experts on ``data``.

    Args:
        data: validated real data (:func:`hypervldd.distill.prepare_real`).
        student, experts: the student and the training recipe.
        directory: where the buffer lives; experts already there (same identity)
            are kept and training continues with the next index. ``None`` keeps
            the buffer in memory.
        progress: a tqdm bar over experts showing the epoch and loss.

    Raises:
        ValueError: ``directory`` holds a buffer for other data or another recipe.
    """
    identity = _identity(data, student, experts)
    proto = experts.protocol(student)
    d_i, d_t = int(data.pair_image.shape[1]), int(data.pair_text.shape[1])
    probe = build_expert_student(d_i, d_t, student, experts, torch.Generator().manual_seed(0))
    names = side_parameter_names(probe)
    params = dict(probe.named_parameters())
    layouts = {
        s: ParamLayout(tuple(names[s]), tuple(tuple(params[n].shape) for n in names[s]))
        for s in SIDES
    }
    buf: ExpertBuffer | None = None
    if directory is not None and (Path(directory) / "manifest.json").is_file():
        buf = ExpertBuffer.open(directory)
        buf.check(identity)
    if buf is None:
        buf = ExpertBuffer(identity, layouts, directory)
    n = int(experts.num_experts)
    bar = tqdm(total=n, initial=min(len(buf), n), disable=not progress, desc="experts")
    try:
        for index in range(len(buf), n):
            seed = _expert_seed(experts.seed, index)
            gen = torch.Generator().manual_seed(seed)
            st = build_expert_student(d_i, d_t, student, experts, gen, lora_seed=seed + 2**40)
            init = {k: v.detach().clone() for k, v in st.state_dict().items()}
            pdict = dict(st.named_parameters())
            snaps = {s: [layouts[s].flatten(pdict).detach().clone()] for s in SIDES}

            def on_epoch(
                epoch: int, pdict: dict = pdict, snaps: dict = snaps, index: int = index
            ) -> None:
                for s in SIDES:
                    snaps[s].append(layouts[s].flatten(pdict).detach().clone())
                bar.set_postfix(expert=index, epoch=epoch)

            losses = train_student(
                st,
                data.pair_image,
                data.pair_text,
                proto,
                gen,
                group=data.pair_group,
                on_epoch=on_epoch,
            )
            buf.add(index, seed, init, {s: torch.stack(snaps[s]) for s in SIDES}, losses)
            bar.update(1)
            bar.set_postfix(expert=index, loss=f"{losses[-1]:.4g}")
    finally:
        bar.close()
    return buf


# -- the matching gradient --------------------------------------------------------------------
def _normalisers(
    theta0: Sequence[torch.Tensor], target: Sequence[torch.Tensor], mode: str
) -> list[torch.Tensor]:
    d = [((a - b) ** 2).sum() for a, b in zip(theta0, target, strict=True)]
    tiny = torch.finfo(theta0[0].dtype).tiny
    if mode == "merged":
        tot = sum(d).clamp_min(tiny)
        return [tot for _ in d]
    return [x.clamp_min(tiny) for x in d]


def unrolled_matching_loss(
    step_loss: StepLoss,
    theta0: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    log_lrs: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    steps: int,
    normalization: str = "per_modality",
) -> torch.Tensor:
    """The normalised matching loss with autograd through all ``steps`` (memory O(steps)).

    ``theta_{i+1,g} = theta_{i,g} - exp(log_lrs[g]) * grad_g step_loss(i, theta_i, inputs)``;
    the loss is ``sum_g |theta_{N,g} - target_g|^2 / D_g`` with ``D_g = |theta0_g - target_g|^2``
    (``"per_modality"``) or ``sum_g |.|^2 / sum_g D_g`` (``"merged"``). The reference
    for :func:`matching_gradients`.
    """
    theta = [t.detach().requires_grad_(True) for t in theta0]
    lrs = log_lrs.exp()
    for i in range(steps):
        loss = step_loss(i, theta, inputs)
        grads = torch.autograd.grad(loss, theta, create_graph=True)
        theta = [t - lrs[g] * gr for g, (t, gr) in enumerate(zip(theta, grads, strict=True))]
    norm = _normalisers(theta0, target, normalization)
    return sum(((t - y) ** 2).sum() / d for t, y, d in zip(theta, target, norm, strict=True))


def matching_gradients(
    step_loss: StepLoss,
    theta0: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    log_lrs: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    steps: int,
    normalization: str = "per_modality",
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Loss and exact gradients of :func:`unrolled_matching_loss`, activation memory O(1).

    The forward pass runs the ``steps`` SGD steps without a graph and keeps the
    parameters of each step (``steps x P`` floats; P is small for heads or
    adapters). The backward pass walks the steps in reverse: it rebuilds step
    ``i``'s graph at the stored ``theta_i`` (``step_loss`` must replay the same
    randomness for the same ``i``), and with ``v = lr * lambda_{i+1}``

    * ``dL/dlog_lr_g  -= lr_g <lambda_{i+1,g}, g_{i,g}>``
    * ``dL/dinputs    -= d<g_i, v>/dinputs``
    * ``lambda_i = lambda_{i+1} - d<g_i, v>/dtheta_i`` (a Hessian-vector product),

    starting from ``lambda_N = dL/dtheta_N``. Only one step's graph is alive at a time.

    Args:
        step_loss: ``step_loss(i, params, inputs) -> scalar``.
        theta0, target: per-group flat parameter vectors ``(P_g,)``.
        log_lrs: ``(G,)`` log step sizes.
        inputs: the tensors to differentiate (those with ``requires_grad``).
        steps: number of inner steps.
        normalization: ``"per_modality"`` or ``"merged"``.

    Returns:
        ``(loss (0-d, detached), [d loss / d input] (zeros where unused), d loss / d log_lrs)``.
    """
    lrs = log_lrs.detach().exp()
    theta = [t.detach() for t in theta0]
    stored: list[list[torch.Tensor] | None] = []
    flat_in = [x.detach() for x in inputs]
    for i in range(steps):
        stored.append(theta)  # fresh leaves, never modified in place: no copy needed
        th = [t.detach().requires_grad_(True) for t in theta]
        with torch.enable_grad():
            grads = torch.autograd.grad(step_loss(i, th, flat_in), th)
        theta = [t - lrs[g] * gr for g, (t, gr) in enumerate(zip(theta, grads, strict=True))]
        del grads
    norm = _normalisers([t.detach() for t in theta0], [t.detach() for t in target], normalization)
    diffs = [t - y.detach() for t, y in zip(theta, target, strict=True)]
    loss = sum((d * d).sum() / n for d, n in zip(diffs, norm, strict=True))
    lam = [2.0 * d / n for d, n in zip(diffs, norm, strict=True)]

    live = [x for x in inputs if x.requires_grad]
    in_grads = [torch.zeros_like(x) for x in inputs]
    lr_grad = torch.zeros_like(log_lrs.detach())
    for i in reversed(range(steps)):
        th = [t.detach().requires_grad_(True) for t in stored[i]]
        stored[i] = None  # release step i's parameters as soon as they are used
        with torch.enable_grad():
            gi = torch.autograd.grad(step_loss(i, th, inputs), th, create_graph=True)
            for g in range(len(th)):
                lr_grad[g] -= lrs[g] * (lam[g] * gi[g].detach()).sum()
            dot = sum((gr * (lrs[g] * lam[g])).sum() for g, gr in enumerate(gi))
            outs = torch.autograd.grad(dot, th + live, allow_unused=True)
        hv, dx = outs[: len(th)], outs[len(th) :]
        for lm, h in zip(lam, hv, strict=True):
            if h is not None:
                lm.sub_(h)
        del outs, hv, gi, dot, th
        k = 0
        for j, x in enumerate(inputs):
            if x.requires_grad:
                if dx[k] is not None:
                    in_grads[j] -= dx[k]
                k += 1
    return loss.detach(), in_grads, lr_grad


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
        for name in ("syn_steps", "expert_epochs", "max_start_epoch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_start_epoch - 1 + self.expert_epochs > self.experts.epochs:
            raise ValueError(
                f"max_start_epoch - 1 + expert_epochs = "
                f"{self.max_start_epoch - 1 + self.expert_epochs} exceeds experts.epochs = "
                f"{self.experts.epochs}: the target epoch would not exist"
            )
        if self.batch_syn is not None and int(self.batch_syn) < 2:
            raise ValueError(f"batch_syn must be >= 2 or None, got {self.batch_syn}")
        if self.lr_init is not None and not (self.lr_init > 0):
            raise ValueError(f"lr_init must be > 0, got {self.lr_init}")
        if not (self.lr_lr >= 0) or not (self.lr_similarity >= 0):
            raise ValueError("lr_lr and lr_similarity must be >= 0")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.normalization not in ("per_modality", "merged"):
            raise ValueError(
                f"normalization must be 'per_modality' or 'merged', got {self.normalization!r}"
            )
        if int(self.similarity_rank) < 0 or not math.isfinite(self.similarity_alpha):
            raise ValueError("similarity_rank must be >= 0 and similarity_alpha finite")
        if self.gradient not in ("recompute", "unroll"):
            raise ValueError(f"gradient must be 'recompute' or 'unroll', got {self.gradient!r}")


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
        if batch is None or batch >= m:
            idx = torch.arange(m)
        else:
            idx = torch.randperm(m, generator=g)[:batch]
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
        targets = None
        if len(inputs) > 2:
            diag, left, right = inputs[2], inputs[3], inputs[4]
            targets = torch.diag(diag[idx]) + sim_scale * (left[idx] @ right[idx].T)
        pd = {}
        for side, p in zip(SIDES, params, strict=True):
            pd.update(layouts[side].unflatten(p, prefix="student."))
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
        self._objective.student.load_state_dict(expert.init_state)
        theta0 = [expert.trajectories[s][e] for s in SIDES]
        target = [expert.trajectories[s][e + int(cfg.expert_epochs)] for s in SIDES]
        rank = int(cfg.similarity_rank)
        step_loss = make_step_loss(
            self._objective,
            self._buffer.layouts,
            seeds,
            batch=cfg.batch_syn,
            feature_dropout=float(cfg.feature_dropout),
            blend=bool(cfg.blend),
            sim_scale=float(cfg.similarity_alpha) / rank if rank else 1.0,
        )
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
