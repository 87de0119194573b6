"""Memory of trajectory matching on an open_clip ViT-B-32 vision tower: full weights vs LoRA.

Command (from the repository root; each case runs in its own subprocess):

    .venv/bin/python benchmarks/lora_memory.py            # results/lora_memory.csv
    .venv/bin/python benchmarks/lora_memory.py --quick    # the first two cases only

Cases: full weights and rank-8 LoRA (all ``nn.Linear`` layers), exact recomputed
gradient and autograd through all steps, ``syn_steps`` 2 and 4, batch 2.

The tower is randomly initialised (``pretrained=None``: nothing downloads). One
matching iteration (:func:`hypervldd.distill.matching.matching_gradients`, or
autograd through all steps for ``unroll``) runs ``syn_steps`` SGD steps of a
contrastive loss of ``batch`` synthetic 224x224 images against fixed text
embeddings, then differentiates the normalised parameter distance with respect
to the pixels and the step size. Attention runs on the math SDPA backend (the
fused CPU kernels have no double backward). The target "expert epoch" is the start plus a
small random offset: memory and time do not depend on the values.

Figures: the trajectory parameters stored per step (what an expert buffer holds
per epoch, and what the recompute pass keeps per inner step), and the peak
resident memory of the iteration above the level after the model is built.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import PeakRSS, environment, write_csv  # noqa: E402


def worker(mode: str, gradient: str, steps: int, batch: int, rank: int) -> dict:
    import open_clip

    from hypervldd.distill.lora import add_lora
    from hypervldd.distill.matching import matching_gradients, unrolled_matching_loss

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    tower = model.visual.train()
    del model
    if mode == "lora":
        add_lora(tower, rank, generator=torch.Generator().manual_seed(0))
    else:
        tower.requires_grad_(True)
    names = [n for n, p in tower.named_parameters() if p.requires_grad]
    params = dict(tower.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    theta0 = torch.cat([params[n].detach().reshape(-1) for n in names])
    g = torch.Generator().manual_seed(1)
    target = theta0 + 1e-3 * torch.randn(theta0.shape, generator=g)
    text = F.normalize(torch.randn(batch, 512, generator=g), dim=-1)
    pixels = torch.randn(batch, 3, 224, 224, generator=g).requires_grad_(True)
    log_lrs = torch.tensor([-2.3]).requires_grad_(True)
    for p in tower.parameters():
        p.requires_grad_(False)

    def step_loss(i, flat, inputs):
        views = {
            n: v.view(s) for n, v, s in zip(names, torch.split(flat[0], sizes), shapes, strict=True)
        }
        img = F.normalize(functional_call(tower, views, (inputs[0],)), dim=-1)
        logits = img @ text.T / 0.07
        labels = torch.arange(batch)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    t0 = time.perf_counter()
    # The fused CPU attention kernels have no double backward; the math backend does.
    with PeakRSS() as peak, sdpa_kernel([SDPBackend.MATH]):
        if gradient == "recompute":
            loss, grads, _ = matching_gradients(
                step_loss, [theta0], [target], log_lrs, [pixels], steps
            )
            gnorm = float(grads[0].norm())
        else:
            loss = unrolled_matching_loss(step_loss, [theta0], [target], log_lrs, [pixels], steps)
            (gp,) = torch.autograd.grad(loss, [pixels])
            gnorm = float(gp.norm())
    n = int(theta0.numel())
    return {
        "mode": mode if mode == "full" else f"lora r={rank}",
        "gradient": gradient,
        "syn_steps": steps,
        "batch": batch,
        "params_per_step": n,
        "mb_per_step_fp32": round(4 * n / 2**20, 2),
        "mb_per_step_fp16": round(2 * n / 2**20, 2),
        "peak_mb": round(peak.extra_mb, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "loss": float(loss),
        "pixel_grad_norm": gnorm,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", help="comma-separated MODE:GRADIENT:STEPS (e.g. lora:unroll:4)")
    ap.add_argument("--out", default="lora_memory.csv", help="CSV name under results/")
    ap.add_argument("--worker", nargs=5, metavar=("MODE", "GRADIENT", "STEPS", "BATCH", "RANK"))
    args = ap.parse_args()
    if args.worker:
        mode, grad, steps, batch, rank = args.worker
        print(json.dumps(worker(mode, grad, int(steps), int(batch), int(rank))))
        return
    if args.cases:
        cases = [tuple(c.split(":")) for c in args.cases.split(",")]
    elif args.quick:
        cases = [("full", "recompute", "2"), ("lora", "recompute", "2")]
    else:
        cases = [
            (mode, grad, steps)
            for mode in ("full", "lora")
            for grad in ("recompute", "unroll")
            for steps in ("2", "4")
        ]
    rows = []
    for mode, grad, steps in cases:
        cmd = [sys.executable, __file__, "--worker", mode, grad, steps, "2", "8"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
    print(environment())
    print(write_csv(args.out, rows))


if __name__ == "__main__":
    main()
