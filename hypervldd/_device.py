"""The ``device`` argument of the pipeline, the command line and the tools.

One rule everywhere: ``None`` (the default) is the first CUDA device when one is
available, else the CPU; ``"cpu"``, ``"cuda"`` (the first) and ``"cuda:N"`` are
checked against what this machine has, with an error that names the argument.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(
    device: str | torch.device | None = None, *, name: str = "device"
) -> torch.device:
    """The ``torch.device`` that ``device`` asks for on this machine.

    Args:
        device: ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"`` (a string or a ``torch.device``).
        name: the argument's name in error messages (``"--device"`` on the command line).

    Raises:
        ValueError: an unknown device string or type, CUDA asked for where none is
            available, or a CUDA index out of range.

    Example::

        >>> from hypervldd._device import resolve_device
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"{name}={str(device)!r} asks for CUDA, but no CUDA device is available here "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            f"use {name}=cpu"
        )
    count = torch.cuda.device_count()
    index = 0 if dev.index is None else dev.index
    if index >= count:
        raise ValueError(
            f"{name}={str(device)!r} is out of range: {count} CUDA device(s) visible "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", index)
