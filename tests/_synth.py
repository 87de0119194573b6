"""Small synthetic paired features with known structure."""

import torch


def clustered_features(n_img=120, caps=2, d_img=48, d_txt=24, k=6, noise=0.3, seed=0):
    """Images from k topics; captions a fixed linear map of their image's topic vector."""
    from hypervldd.eval import FeatureSet

    g = torch.Generator().manual_seed(seed)
    topics = 3.0 * torch.randn(k, 16, generator=torch.Generator().manual_seed(123))
    wi = torch.randn(16, d_img, generator=torch.Generator().manual_seed(7))
    wt = torch.randn(16, d_txt, generator=torch.Generator().manual_seed(8))
    label = torch.randint(k, (n_img,), generator=g)
    z = topics[label] + torch.randn(n_img, 16, generator=g)
    img = z @ wi + noise * torch.randn(n_img, d_img, generator=g)
    t2i = torch.arange(n_img).repeat_interleave(caps)
    txt = (z[t2i] + noise * torch.randn(len(t2i), 16, generator=g)) @ wt
    return FeatureSet(img, txt, t2i), label
