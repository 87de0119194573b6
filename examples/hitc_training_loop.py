"""hITC in a plain PyTorch loop: two linear heads on frozen features, compiled.

Image and text features (here a made-up paired set: both are noisy views of one latent)
go through their own ``nn.Linear`` head; :class:`HyperbolicContrastiveLoss` lifts the
outputs onto the Lorentz model and applies symmetric InfoNCE over ``-d / tau``. With
``learn_tau=True`` the temperature is a parameter *of the loss*, so the optimiser gets
``loss_fn.parameters()`` too. The loss compiles without graph breaks (docs/losses.md).

    python examples/hitc_training_loop.py            # 300 steps, inductor
    python examples/hitc_training_loop.py --smoke    # a few steps, the test suite's mode
"""

import argparse

import torch
from torch import nn

from hypervldd.losses import HyperbolicContrastiveLoss
from hypervldd.manifolds import get_manifold


def made_up_pairs(n: int, d_img: int, d_txt: int, g: torch.Generator) -> tuple:
    z = torch.randn(n, 8, generator=g)
    image = z @ torch.randn(8, d_img, generator=g) + 0.1 * torch.randn(n, d_img, generator=g)
    text = z @ torch.randn(8, d_txt, generator=g) + 0.1 * torch.randn(n, d_txt, generator=g)
    return image, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--geometry", default="lorentz", choices=["lorentz", "poincare", "euclidean"])
    ap.add_argument("--backend", default="inductor", help="torch.compile backend")
    ap.add_argument("--smoke", action="store_true", help="5 steps, aot_eager backend")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.backend = 5, "aot_eager"

    g = torch.Generator().manual_seed(0)
    image, text = made_up_pairs(256, 64, 48, g)
    torch.manual_seed(0)
    image_head, text_head = nn.Linear(64, 32), nn.Linear(48, 32)
    loss_fn = HyperbolicContrastiveLoss(args.geometry, learn_tau=True)
    params = [*image_head.parameters(), *text_head.parameters(), *loss_fn.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-2)

    @torch.compile(backend=args.backend, fullgraph=True)
    def step_loss(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        return loss_fn(image_head(img), text_head(txt))

    first = None
    for step in range(args.steps):
        idx = torch.randint(0, image.shape[0], (64,), generator=g)
        loss = step_loss(image[idx], text[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        x, y = loss_fn.embed(image_head(image), text_head(text))
        logits = -get_manifold(args.geometry).pairwise_dist(x, y)
        r1 = (logits.argmax(1) == torch.arange(len(x))).float().mean()
    print(f"first loss {first:.4f}  last loss {loss.item():.4f}  image->text R@1 {100 * r1:.1f}%")
    assert torch.isfinite(loss), "the loss must stay finite"


if __name__ == "__main__":
    main()
