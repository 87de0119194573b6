"""The trajectory-matching loss and its exact gradient, with memory constant in the steps.

A student starts at an expert's parameters ``theta0`` (one flat vector per group, e.g. per
head), takes ``steps`` SGD steps of an inner loss on synthetic tensors with learnable
per-group step sizes, and is scored by its normalised distance to the expert's later
parameters ``target``. :func:`unrolled_matching_loss` differentiates through all steps
with autograd (memory O(steps)); :func:`matching_gradients` computes the same gradients by
recomputing one step at a time (activation memory O(1) in ``steps``). Neither knows what
the parameters belong to: the inner loss is a :data:`StepLoss` callable (heads on
features in :mod:`.trajectory`, an adapted image tower on pixels in
:mod:`.trajectory_pixels`, a whole ViT in ``benchmarks/lora_memory.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["StepLoss", "unrolled_matching_loss", "matching_gradients"]

# step_loss(i, params, inputs) -> scalar: the inner loss of step i at the per-group flat
# parameter vectors ``params`` and the synthetic tensors ``inputs``.
StepLoss = Callable[[int, Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]


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
