"""Expert trajectories for trajectory matching: the recipe, the training, the buffer.

An expert is a student (:class:`hypervldd.eval.Student`, the evaluation protocol's pair of
projection heads, optionally with LoRA adapters from :mod:`.lora`) trained on all real
caption pairs with plain SGD; the parameters of both heads are recorded after every epoch.
:func:`train_experts` trains (or resumes) them; an :class:`ExpertBuffer` stores them: per
expert one safetensors file per side (``image_0003.safetensors``, ``text_0003.safetensors``)
plus the initial student state, and a JSON manifest (``manifest.json``) with the student
config, the optimiser, the data fingerprint, the parameter names, shapes and order, the
storage dtype, and per expert its index, seed, files and checksums. Image and text
trajectories are paired through that explicit index (each file's own header repeats it and
is checked), never by directory order. The matching that consumes them is in
:mod:`.matching` and :mod:`.trajectory`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data._io import atomic_write_bytes, sha256_json
from ..eval._config import config_to_dict
from ..eval.protocol import EvalProtocol, StudentConfig
from ..eval.student import Student, train_student
from ._io import ArtifactError, read_container, write_container
from .base import RealData
from .lora import add_lora

__all__ = [
    "ExpertConfig",
    "ExpertBuffer",
    "Expert",
    "train_experts",
    "build_expert_student",
    "side_parameter_names",
    "ParamLayout",
    "BUFFER_FORMAT",
    "TRAJECTORY_FORMAT",
    "SIDES",
]

BUFFER_FORMAT = "hypervldd.expert_buffer"
TRAJECTORY_FORMAT = "hypervldd.expert_trajectory"
SIDES = ("image", "text")
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


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


def _side_layouts(
    params: dict[str, torch.Tensor], names: dict[str, list[str]]
) -> dict[str, ParamLayout]:
    """The :class:`ParamLayout` of each side in ``SIDES`` from a probe's named parameters."""
    return {
        s: ParamLayout(tuple(names[s]), tuple(tuple(params[n].shape) for n in names[s]))
        for s in SIDES
    }


def _open_buffer(
    directory: str | Path | None, identity: dict[str, Any], layouts: dict[str, ParamLayout]
) -> ExpertBuffer:
    """The buffer in ``directory`` if one is there (checked against ``identity``), else a new one.

    Raises:
        ValueError: ``directory`` holds a buffer for another identity.
    """
    if directory is not None and (Path(directory) / "manifest.json").is_file():
        buf = ExpertBuffer.open(directory)
        buf.check(identity)
        return buf
    return ExpertBuffer(identity, layouts, directory)


def _record_experts(
    buf: ExpertBuffer,
    experts: ExpertConfig,
    layouts: dict[str, ParamLayout],
    build: Callable[[torch.Generator, int], tuple[nn.Module, dict[str, torch.Tensor]]],
    fit: Callable[[nn.Module, torch.Generator, Callable[[int], None]], list[float]],
    *,
    progress: bool = False,
    desc: str = "experts",
) -> ExpertBuffer:
    """Train the experts ``buf`` lacks up to ``experts.num_experts``, snapshotting every epoch.

    Expert ``index`` draws from a generator seeded by ``_expert_seed(experts.seed, index)``:
    ``build(gen, seed)`` returns the module and the initial state the buffer stores, and
    ``fit(module, gen, on_epoch)`` trains it, calling ``on_epoch(epoch)`` after each epoch,
    and returns the per-epoch losses. Each side's flat parameters are recorded at the start
    and after every epoch, so a buffer holds ``epochs + 1`` points per side per expert.
    """
    n = int(experts.num_experts)
    bar = tqdm(total=n, initial=min(len(buf), n), disable=not progress, desc=desc)
    try:
        for index in range(len(buf), n):
            seed = _expert_seed(experts.seed, index)
            gen = torch.Generator().manual_seed(seed)
            st, init = build(gen, seed)
            pdict = dict(st.named_parameters())
            snaps = {s: [layouts[s].flatten(pdict).detach().clone()] for s in SIDES}

            def on_epoch(
                epoch: int, pdict: dict = pdict, snaps: dict = snaps, index: int = index
            ) -> None:
                for s in SIDES:
                    snaps[s].append(layouts[s].flatten(pdict).detach().clone())
                bar.set_postfix(expert=index, epoch=epoch)

            losses = fit(st, gen, on_epoch)
            buf.add(index, seed, init, {s: torch.stack(snaps[s]) for s in SIDES}, losses)
            bar.update(1)
            bar.set_postfix(expert=index, loss=f"{losses[-1]:.4g}")
    finally:
        bar.close()
    return buf


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
    layouts = _side_layouts(params, names)
    buf = _open_buffer(directory, identity, layouts)

    def build(gen: torch.Generator, seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        st = build_expert_student(d_i, d_t, student, experts, gen, lora_seed=seed + 2**40)
        return st, {k: v.detach().clone() for k, v in st.state_dict().items()}

    def fit(st: nn.Module, gen: torch.Generator, on_epoch: Callable[[int], None]) -> list[float]:
        return train_student(
            st,
            data.pair_image,
            data.pair_text,
            proto,
            gen,
            group=data.pair_group,
            on_epoch=on_epoch,
        )

    return _record_experts(buf, experts, layouts, build, fit, progress=progress, desc="experts")
