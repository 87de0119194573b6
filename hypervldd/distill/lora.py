"""Low-rank adapters (LoRA) for ``nn.Linear`` layers, for trajectory matching of large encoders.

``W' = W + scale * B @ A`` with ``A (r, in)``, ``B (out, r)``, ``B = 0`` at the start
(Hu et al., ICLR 2022). Trajectory matching of a large encoder (an open_clip ViT,
say) then stores and matches the adapter parameters only: ``r (in + out)``
floats per layer instead of ``in * out`` (VL-Distill, TMLR 2024, matches LoRA
trajectories for ViTs).

The adapter is a ``torch.nn.utils.parametrize`` parametrization of the layer's
``weight``, not a replacement module, so every reader of ``.weight`` sees the
adapted weight. That matters for open_clip: ``nn.MultiheadAttention`` reads
``out_proj.weight`` directly and never calls ``out_proj.forward``.

Full-rank correspondence (what the tests check): with ``rank = in_features <=
out_features``, ``A`` orthogonal (``A^T A = I``) and frozen (``train_a=False``)
and ``scale = 1``, the map ``B -> W0 + B A`` is a linear isometry onto all
weights (``|dB|_F = |dB A|_F``) and one SGD step on ``B`` with rate ``lr`` moves
``W`` exactly like one SGD step on ``W`` (``dW = -lr G A^T A = -lr G``). Adapter
trajectories ``B_t = (W_t - W0) A^T`` then reproduce full-weight trajectories,
and the normalised matching loss and its gradients are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "LoRA",
    "add_lora",
    "lora_layers",
    "lora_state",
    "merge_lora",
    "unmerge_lora",
    "remove_lora",
    "INITS",
]

INITS = ("kaiming", "orthogonal")


class LoRA(nn.Module):
    """Parametrization ``W -> W + scale * lora_B @ lora_A`` of a ``(out, in)`` weight.

    Args:
        out_features, in_features: the weight's shape.
        rank: ``r``, ``1 <= r <= min(out, in)``.
        scale: the adapter multiplier (``alpha / r`` in the LoRA paper).
        init: ``"kaiming"`` (``A ~ U(+-1/sqrt(in))``, PyTorch's Linear default) or
            ``"orthogonal"`` (orthonormal rows of ``A``; orthogonal when ``r = in``).
        generator: source of ``A``.
        train_a: whether ``A`` trains (``False``: only ``B``, the LoRA-FA variant,
            needed for the exact full-rank correspondence).
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        rank: int,
        *,
        scale: float = 1.0,
        init: str = "kaiming",
        generator: torch.Generator | None = None,
        train_a: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not 1 <= int(rank) <= min(out_features, in_features):
            raise ValueError(
                f"rank must be in [1, min(out, in) = {min(out_features, in_features)}], got {rank}"
            )
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not math.isfinite(scale) or scale == 0:
            raise ValueError(f"scale must be finite and non-zero, got {scale}")
        r = int(rank)
        if init == "kaiming":
            bound = 1.0 / math.sqrt(in_features)
            a = torch.empty(r, in_features, dtype=torch.float64)
            a.uniform_(-bound, bound, generator=generator)
        else:
            g = torch.randn(in_features, r, generator=generator, dtype=torch.float64)
            q, rr = torch.linalg.qr(g)  # q (in, r), orthonormal columns
            a = (q * torch.sign(torch.diagonal(rr))).T  # sign fix: a unique, seed-defined A
        self.lora_A = nn.Parameter(a.to(dtype), requires_grad=bool(train_a))
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, dtype=dtype))
        self.scale = float(scale)
        self.merged = False

    @property
    def rank(self) -> int:
        return int(self.lora_A.shape[0])

    def delta(self) -> torch.Tensor:
        """The adapter's weight update ``scale * B @ A``, ``(out, in)``."""
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # Once merged, the stored weight already holds the update.
        return weight if self.merged else weight + self.delta()


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear)  # includes MultiheadAttention's out_proj


def lora_layers(module: nn.Module) -> Iterator[tuple[str, nn.Linear, LoRA]]:
    """Every adapted layer as ``(qualified name, layer, its LoRA parametrization)``."""
    for name, m in module.named_modules():
        if _is_linear(m) and parametrize.is_parametrized(m, "weight"):
            for p in m.parametrizations.weight:
                if isinstance(p, LoRA):
                    yield name, m, p


def add_lora(
    module: nn.Module,
    rank: int | str,
    *,
    scale: float = 1.0,
    init: str = "kaiming",
    train_a: bool = True,
    train_bias: bool = False,
    include: Callable[[str, nn.Linear], bool] | None = None,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Freeze ``module`` and give its ``nn.Linear`` layers trainable low-rank adapters.

    Args:
        module: any module (an open_clip tower, a projection head).
        rank: adapter rank, clipped to ``min(out, in)`` per layer; ``"full"`` is
            ``min(out, in)``.
        scale, init, train_a: see :class:`LoRA`.
        train_bias: also train the adapted layers' biases.
        include: ``include(name, layer) -> bool`` selects layers (default: all).
        generator: source of every ``A`` (layers in ``named_modules`` order).

    Returns:
        The names of the adapted layers, in order. Trainable afterwards: every
        ``lora_B`` (and ``lora_A`` if ``train_a``, biases if ``train_bias``),
        nothing else.
    """
    if rank != "full" and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be a positive int or 'full', got {rank!r}")
    module.requires_grad_(False)
    chosen = [
        (n, m)
        for n, m in module.named_modules()
        if _is_linear(m) and (include is None or include(n, m))
    ]
    if not chosen:
        raise ValueError("add_lora found no nn.Linear layer to adapt in module")
    for name, m in chosen:
        if parametrize.is_parametrized(m, "weight"):
            raise ValueError(f"layer {name!r} already has a parametrization (LoRA added twice?)")
        out_f, in_f = m.weight.shape
        r = min(out_f, in_f) if rank == "full" else min(int(rank), out_f, in_f)
        lora = LoRA(
            out_f,
            in_f,
            r,
            scale=scale,
            init=init,
            generator=generator,
            train_a=train_a,
            dtype=m.weight.dtype,
        ).to(m.weight.device)
        parametrize.register_parametrization(m, "weight", lora)
        m.parametrizations.weight.original.requires_grad_(False)
        if m.bias is not None:
            m.bias.requires_grad_(bool(train_bias))
    return [n for n, _ in chosen]


def lora_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable adapter tensors by qualified name (what a trajectory stores)."""
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


@torch.no_grad()
def merge_lora(module: nn.Module) -> int:
    """Fold every adapter into its base weight (``W <- W + scale B A``); returns the count.

    The adapted weight seen by the layer is unchanged (up to rounding); the
    adapter then contributes nothing until :func:`unmerge_lora`.
    """
    n = 0
    for _, m, p in lora_layers(module):
        if not p.merged:
            m.parametrizations.weight.original.add_(p.delta())
            p.merged = True
            n += 1
    return n


@torch.no_grad()
def unmerge_lora(module: nn.Module) -> int:
    """Undo :func:`merge_lora` (``W <- W - scale B A``); returns the count."""
    n = 0
    for _, m, p in lora_layers(module):
        if p.merged:
            m.parametrizations.weight.original.sub_(p.delta())
            p.merged = False
            n += 1
    return n


def remove_lora(module: nn.Module, merge: bool = True) -> int:
    """Drop the adapters, leaving plain layers (with the update folded in if ``merge``)."""
    layers = list(lora_layers(module))
    for _, m, p in layers:
        if merge and not p.merged:
            with torch.no_grad():
                m.parametrizations.weight.original.add_(p.delta())
        elif not merge and p.merged:
            with torch.no_grad():
                m.parametrizations.weight.original.sub_(p.delta())
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    return len(layers)
