"""Autograd glue shared by the compiled (C++) and Triton ops."""

from __future__ import annotations

from typing import Any

import torch


def needed_grads(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """What a ``register_autograd`` backward returns: ``grads`` for the op's leading inputs,
    each only where ``ctx.needs_input_grad`` asks for it, and ``None`` for every other
    input (flags, codes, tile sizes)."""
    need = ctx.needs_input_grad
    return tuple(grads[i] if i < len(grads) and need[i] else None for i in range(len(need)))
