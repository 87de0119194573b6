"""A MERU-style hyperbolic CLIP: open_clip towers ending in an exp-map head.

The image and text towers of an open_clip model (randomly initialised from a tiny
config, or a local checkpoint: nothing downloads) each end in :class:`ExpMapHead`,
which maps the tower's embedding onto the chosen geometry. Training uses hITC
(:class:`HyperbolicContrastiveLoss` on points, ``lift=False``) plus the entailment cone
(captions are more generic than images, so each image lies in its caption's cone).
``--geometry`` is the only switch. The data are made up: solid colour images with the
caption "a photo of <colour>".

    python examples/hyperbolic_clip.py --geometry lorentz          # 200 steps
    python examples/hyperbolic_clip.py --geometry poincare --smoke # the test suite's mode
    python examples/hyperbolic_clip.py --model ViT-B-32 --checkpoint /path/open_clip.bin
"""

import argparse

import open_clip
import torch
from torch import nn

from hypervldd.losses import HyperbolicContrastiveLoss
from hypervldd.nn import ExpMapHead

# Colour name -> RGB, from the bits of its index: black, red, green, yellow, blue, ...
NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
COLOURS = {name: (i & 1, (i >> 1) & 1, (i >> 2) & 1) for i, name in enumerate(NAMES)}
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


class HyperbolicCLIP(nn.Module):
    def __init__(self, clip: nn.Module, dim: int, geometry: str) -> None:
        super().__init__()
        self.clip = clip
        # One manifold instance for both heads: they share the (learnable) curvature.
        self.image_head = ExpMapHead(dim, dim, geometry)
        self.text_head = ExpMapHead(dim, dim, self.image_head.manifold)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple:
        image = self.image_head(self.clip.encode_image(images))
        return image, self.text_head(self.clip.encode_text(tokens))


def batch(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    names = list(COLOURS)
    pick = torch.randint(len(names), (n,), generator=g).tolist()
    rgb = torch.tensor([COLOURS[names[i]] for i in pick], dtype=torch.float32)
    images = rgb[:, :, None, None].expand(n, 3, size, size)
    return images + 0.05 * torch.randn(n, 3, size, size, generator=g), [
        f"a photo of {names[i]}" for i in pick
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--geometry", default="lorentz", choices=["euclidean", "lorentz", "poincare"])
    ap.add_argument("--model", help="open_clip architecture of --checkpoint")
    ap.add_argument("--checkpoint", help="a local open_clip checkpoint (else random init)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="3 steps")
    args = ap.parse_args()
    steps = 3 if args.smoke else args.steps
    torch.manual_seed(0)
    if args.checkpoint:
        clip = open_clip.create_model(args.model, pretrained=args.checkpoint)
        dim, size = clip.text_projection.shape[1], clip.visual.image_size[0]
        tokenizer = open_clip.get_tokenizer(args.model)
    else:
        clip, dim, size = open_clip.CLIP(**TINY), TINY["embed_dim"], 32
        tokenizer = lambda texts: open_clip.tokenize(texts, context_length=16)  # noqa: E731
    model = HyperbolicCLIP(clip, dim, args.geometry)
    hyperbolic = args.geometry != "euclidean"
    loss_fn = HyperbolicContrastiveLoss(
        args.geometry, lift=False, learn_tau=True, entail_weight=0.2 if hyperbolic else 0.0
    )
    opt = torch.optim.AdamW([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        images, captions = batch(16, size, g)
        image_pts, text_pts = model(images, tokenizer(captions))
        loss = loss_fn(image_pts, text_pts)  # hITC + 0.2 * entailment cone
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0 or step == steps - 1:
            print(f"{args.geometry} step {step:4d}  loss {loss.item():.4f}")
    print(
        f"point shape {tuple(image_pts.shape)}  curvature {model.image_head.manifold.c.item():.3f}"
    )
    assert torch.isfinite(loss)


if __name__ == "__main__":
    main()
