"""``distill``: one method at one budget, with validation and device handling."""

from __future__ import annotations

import inspect as _inspect
import os
import warnings
from typing import Any

import torch

from .._device import resolve_device
from .errors import PipelineError


def _fit_kwargs(distiller: Any, **candidates: Any) -> dict[str, Any]:
    """The subset of ``candidates`` that the method's ``_fit`` accepts."""
    params = _inspect.signature(distiller._fit).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def validation_scorer(val: Any, protocol: Any = None, *, seeds: int = 1) -> Any:
    """``score(synthetic_set, step) -> metrics``: recall on the validation split.

    Trains the protocol's student with its first ``seeds`` seeds (final epoch) on the
    set and returns the mean metrics (``"mean"`` is the mean recall, in %) on ``val``.
    This is the ``validate`` callback of the gradient methods' engine
    (``engine.validate_every``, ``engine.keep_best``); the test split is never read.
    """
    from ..eval import EvalProtocol, evaluate

    protocol = protocol or EvalProtocol()
    if int(seeds) < 1:
        raise PipelineError(f"seeds must be >= 1, got {seeds}")
    proto = protocol.replace(seeds=tuple(protocol.seeds[: int(seeds)]), selection="final")

    def score(synthetic: Any, step: int) -> dict[str, float]:
        return dict(evaluate(synthetic, val, proto).mean)

    return score


def _validating_engine(distiller: Any) -> Any:
    """The method's ``EngineConfig`` if it sets ``validate_every``, else ``None``."""
    eng = getattr(getattr(distiller, "config", None), "engine", None)
    return eng if eng is not None and int(getattr(eng, "validate_every", 0)) > 0 else None


def wants_validation(method: str, config: dict[str, Any] | None = None) -> bool:
    """Whether ``method`` with ``config`` validates during distillation (needs a val split)."""
    from ..distill import get_distiller

    return _validating_engine(get_distiller(method, dict(config or {}))) is not None


def describe_selection(synthetic: Any) -> str:
    """``"validation-best step S, V on val"`` for a ``keep_best`` set, else ``""``."""
    chosen = synthetic.config.get("selected")
    if not chosen:
        return ""
    return f"validation-best step {chosen['step']}, {chosen['value']:.1f} on val"


def distill(
    real: Any,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = False,
    val: Any = None,
    protocol: Any = None,
    device: str | torch.device | None = None,
) -> Any:
    """Distil ``real`` features into ``budget`` pairs with ``method``; save to ``out`` if given.

    The method runs on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``; default: CUDA when
    available, else the CPU): the real features are moved there first, so the synthetic
    tensors and every auxiliary model live there too.

    A gradient method whose config sets ``engine.validate_every`` is validated on ``val``
    (validation features) with one student of ``protocol`` (:func:`validation_scorer`);
    with ``engine.keep_best`` the validation-best set is returned, and ``val`` is required.

    Under ``torch.distributed`` (e.g. ``torchrun``) every rank calls this with the same
    arguments; the gradient-based methods share the work, every rank returns the same set,
    and rank 0 alone writes ``out`` (and the checkpoints).
    """
    from .._paths import check_output_file
    from ..distill import get_distiller
    from ..distributed import is_main_process

    if out is not None:  # before the work: a directory or a path under a file would lose it
        check_output_file(out, what="out", force=True)
    device = resolve_device(device)  # before any work: a bad device fails at once
    distiller = get_distiller(method, dict(config or {}))
    if device.type != "cpu" and not distiller.device_ready:
        warnings.warn(
            f"{method} runs on the CPU: its device path is not checked yet (device={device})",
            stacklevel=2,
        )
        device = torch.device("cpu")
    if device.type != "cpu":
        real = _on_device(real, device)
    eng = _validating_engine(distiller)
    validate = None
    if eng is not None:
        if val is not None:
            validate = validation_scorer(val, protocol)
        elif eng.keep_best:
            raise PipelineError(
                f"{method}: engine.keep_best selects the set on the validation split; "
                "give its features (val=...; the command line loads the dataset's 'val' split)"
            )
        else:
            warnings.warn(
                f"{method}: engine.validate_every is set but no validation features were "
                "given (val=...), so nothing is validated",
                stacklevel=2,
            )
    kwargs = _fit_kwargs(
        distiller,
        checkpoint_dir=checkpoint_dir,
        resume=resume or None,
        progress=progress,
        validate=validate,
    )
    synthetic = distiller.fit(real, budget, seed, **kwargs)
    if out is not None and is_main_process():
        synthetic.save(out)
    return synthetic


def _on_device(real: Any, device: torch.device) -> Any:
    """``real`` as an adaptable feature object on ``device``, keeping its identity.

    The fingerprint and the encoder ids recorded in artifacts are those of ``real``, so
    a set distilled on a GPU names the same data as one distilled on the CPU.
    """
    from types import SimpleNamespace

    from ..eval import as_feature_set

    fs = as_feature_set(real, "real")
    fp = getattr(real, "fingerprint", None)
    fp = fp() if callable(fp) else fp
    return SimpleNamespace(
        image=fs.image.to(device),
        text=fs.text.to(device),
        txt2img=fs.txt2img.to(device),
        fingerprint=fp if isinstance(fp, str) else fs.fingerprint(),
        encoders=getattr(real, "encoders", None),
        metadata=getattr(real, "metadata", None),
    )
