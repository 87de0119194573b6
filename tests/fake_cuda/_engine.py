"""A reverse-mode sweep in Python over a graph of fake CUDA tensors.

torch's autograd engine asks the CUDA driver for the current streams of every
device it sees (``GraphTask::stash_current_streams``), which fails on a machine
without a GPU even for fake tensors. This sweep calls each node of the graph in
reverse topological order instead: every backward formula runs (those of torch
and the package's own ``autograd.Function`` s), so a device mix-up in a backward
raises just as it would on a GPU. Hooks and ``retain_grad`` are not supported;
the test ``test_sweep_matches_backward`` checks the sweep against ``backward()``
on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _topological(root: object) -> list:
    # Kahn's order, as the engine's dependency counts: a node runs once every node
    # that feeds it a gradient has run.
    users: dict[object, int] = {root: 0}
    stack = [root]
    while stack:
        fn = stack.pop()
        for nxt, _ in fn.next_functions:
            if nxt is None:
                continue
            if nxt not in users:
                users[nxt] = 0
                stack.append(nxt)
            users[nxt] += 1
    order, ready = [], [root]
    while ready:
        fn = ready.pop()
        order.append(fn)
        for nxt, _ in fn.next_functions:
            if nxt is not None:
                users[nxt] -= 1
                if users[nxt] == 0:
                    ready.append(nxt)
    return order


def _conform(g: torch.Tensor, meta: object) -> torch.Tensor:
    # What the engine does to a gradient before a node sees it (validate_outputs):
    # reduce a broadcast gradient to the input's shape, cast it to its dtype, move a
    # 0-d gradient to the input's device and refuse any other on the wrong device.
    if g.device != meta.device:
        if g.dim() != 0:
            raise RuntimeError(
                f"invalid gradient - expected device {meta.device} but got {g.device}"
            )
        g = g.to(meta.device)
    if tuple(g.shape) != tuple(meta.shape):
        g = g.sum_to_size(meta.shape)
    return g if g.dtype == meta.dtype else g.to(meta.dtype)


def sweep_backward(loss: torch.Tensor, inputs: Sequence[torch.Tensor] = ()) -> None:
    """Accumulate ``d loss / d leaf`` into each leaf's ``.grad``, like ``loss.backward()``.

    ``inputs`` is unused beyond a check that they require grad (it documents intent).
    """
    if loss.grad_fn is None:
        raise ValueError("loss has no grad_fn: nothing requires grad")
    for t in inputs:
        if not t.requires_grad:
            raise ValueError("every input must require grad")
    pending: dict[object, dict[int, torch.Tensor]] = {loss.grad_fn: {0: torch.ones_like(loss)}}
    for fn in _topological(loss.grad_fn):
        got = pending.pop(fn, {})
        if not got:
            continue
        if hasattr(fn, "variable"):  # AccumulateGrad: the leaf
            leaf = fn.variable
            leaf.grad = got[0] if leaf.grad is None else leaf.grad + got[0]
            continue
        n_in = len(fn._input_metadata)
        # C++ nodes are callable; Python ones (autograd.Function, torch.library's
        # register_autograd) run their backward through .apply
        call = fn if callable(fn) else fn.apply
        outs = call(*[got.get(i) for i in range(n_in)])
        if isinstance(outs, torch.Tensor) or outs is None:
            outs = (outs,)
        # a Python backward may return extra Nones for non-tensor inputs
        for (nxt, idx), g in zip(fn.next_functions, outs, strict=False):
            if nxt is None or g is None:
                continue
            g = _conform(g, nxt._input_metadata[idx])
            slot = pending.setdefault(nxt, {})
            slot[idx] = g if idx not in slot else slot[idx] + g
