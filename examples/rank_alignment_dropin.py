"""Full-dataset rank alignment as a drop-in term beside your own loss.

A user distils 100k real pairs into a few synthetic ones with their own objective (here:
Euclidean InfoNCE on the synthetic pairs plus matching the real feature means). One
extra line adds :class:`FullDatasetRankAlignment`: the synthetic pairs should order the
whole real set the way the real pairs do. It streams over the real set in chunks (no
``N x M`` matrix) and takes *points on the manifold*: lift features first (on Lorentz a
``D``-dim feature becomes a ``D + 1``-dim point). The real points need no gradient.

    python examples/rank_alignment_dropin.py           # 20k real pairs, 200 steps
    python examples/rank_alignment_dropin.py --smoke   # the test suite's mode
"""

import argparse

import torch
import torch.nn.functional as F

from hypervldd.losses import FullDatasetRankAlignment
from hypervldd.manifolds import Lorentz


def my_loss(syn_image: torch.Tensor, syn_text: torch.Tensor, real_mean: tuple) -> torch.Tensor:
    """The user's own objective: InfoNCE on the synthetic pairs + mean matching."""
    logits = F.normalize(syn_image, dim=-1) @ F.normalize(syn_text, dim=-1).T / 0.1
    labels = torch.arange(len(logits))
    nce = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    means = (syn_image.mean(0) - real_mean[0]).square().sum()
    return nce + means + (syn_text.mean(0) - real_mean[1]).square().sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", type=int, default=20000, help="real pairs")
    ap.add_argument("--budget", type=int, default=20, help="synthetic pairs")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="512 real pairs, 5 steps")
    args = ap.parse_args()
    if args.smoke:
        args.real, args.budget, args.steps = 512, 8, 5

    g = torch.Generator().manual_seed(0)
    z = torch.randn(args.real, 16, generator=g)
    real_image = z @ torch.randn(16, 32, generator=g) / 4
    real_text = z @ torch.randn(16, 32, generator=g) / 4
    pick = torch.randperm(args.real, generator=g)[: args.budget]
    syn_image = real_image[pick].clone().requires_grad_(True)
    syn_text = real_text[pick].clone().requires_grad_(True)

    manifold = Lorentz(c=1.0)
    rank_term = FullDatasetRankAlignment("lorentz", c=1.0, tau=0.1, chunk_size=4096, lift=False)
    with torch.no_grad():  # lifted once: (N, 32) features -> (N, 33) points
        real_points = {
            "real_image": manifold.lift(real_image),
            "real_text": manifold.lift(real_text),
        }
    real_mean = real_image.mean(0), real_text.mean(0)
    opt = torch.optim.Adam([syn_image, syn_text], lr=1e-2)
    for step in range(args.steps):
        own = my_loss(syn_image, syn_text, real_mean)
        rank = rank_term(manifold.lift(syn_image), manifold.lift(syn_text), **real_points)
        loss = own + 0.5 * rank  # the drop-in term
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  own {own.item():.4f}  rank alignment {rank.item():.4f}")
    assert torch.isfinite(loss) and syn_image.grad is not None


if __name__ == "__main__":
    main()
