"""``hypervldd demo``: the most complete end-to-end path the package offers, printed.

It says what it runs. Stages, each run when its parts are installed:

1. the kernel backend in use;
2. the precision contract: float32 distance error of the library against the
   naive GEMM form on part of DESIGN's accuracy grid;
3. the geometry at work: points trained with a Riemannian optimiser on each
   manifold to reproduce the distances of a small tree, reporting the
   distortion per geometry (hyperbolic space embeds trees, flat space cannot).
"""

from __future__ import annotations

import time

import torch

__all__ = ["run_demo"]


def _stage(title: str) -> None:
    print(f"\n== {title}")


def _precision_stage(quick: bool) -> None:
    from .manifolds import lorentz_math as lm
    from .manifolds.accuracy import lorentz_pairs, naive_lorentz_dist, relative_error

    _stage("precision: float32 Lorentz distance vs float64 on the same inputs (worst of 4 dirs)")
    radii = (1.0, 5.0, 10.0)
    dists = (1e-3, 1e-2, 1.0) if quick else (1e-3, 1e-2, 0.1, 1.0, 10.0)
    print(f"{'radius':>6} {'distance':>9} {'library':>10} {'naive GEMM':>11}")
    for r in radii:
        for d in dists:
            lib = naive = 0.0
            for direction in ("radial_out", "radial_in", "tangential", "random"):
                x, y = lorentz_pairs(r, d, direction, n=4, dim=64)
                x32, y32 = x.float(), y.float()
                ref = lm.dist(x32.double(), y32.double(), 1.0)
                lib = max(lib, relative_error(lm.dist(x32, y32, 1.0), ref))
                naive = max(naive, relative_error(naive_lorentz_dist(x32, y32), ref))
            print(f"{r:6g} {d:9g} {lib:10.2e} {naive:11.2e}")


def _tree(depth: int) -> torch.Tensor:
    """Shortest-path distances of a complete binary tree with ``2^(depth+1) - 1`` nodes."""
    n = 2 ** (depth + 1) - 1
    parent = [-1] + [(i - 1) // 2 for i in range(1, n)]

    def ancestors(i: int) -> list[int]:
        out = [i]
        while parent[out[-1]] >= 0:
            out.append(parent[out[-1]])
        return out

    anc = [ancestors(i) for i in range(n)]
    dist = torch.zeros(n, n)
    for i in range(n):
        si = set(anc[i])
        for j in range(n):
            lca = next(a for a in anc[j] if a in si)
            dist[i, j] = anc[i].index(lca) + anc[j].index(lca)
    return dist


def _embedding_stage(quick: bool) -> None:
    import geoopt

    import hypervldd

    from .manifolds import Euclidean, Lorentz, PoincareBall

    # Depth 5 (63 nodes): small trees are embedded well enough in the plane
    # that the comparison says little; at depth 5 flat space clearly runs out of room.
    depth = 5
    target = _tree(depth)
    n = target.shape[0]
    steps = 400 if quick else 600
    _stage(
        f"geometry: embed a binary tree ({n} nodes) in 2 dimensions, "
        f"{steps} Riemannian Adam steps per geometry"
    )
    print(f"{'geometry':>10} {'distortion':>11} {'seconds':>8}")
    iu = torch.triu_indices(n, n, 1)
    for name, m in (
        ("euclidean", Euclidean()),
        ("poincare", PoincareBall(1.0)),
        ("lorentz", Lorentz(1.0)),
    ):
        torch.manual_seed(0)
        dim = 3 if name == "lorentz" else 2
        x0 = m.random(n, dim, radius=0.1 * torch.rand(n), dtype=torch.float64)
        p = geoopt.ManifoldParameter(x0, manifold=m)
        # A global scale lets each geometry pick its best radius (distortion is
        # scale invariant): d_target ~ s * d_embedding.
        log_s = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = geoopt.optim.RiemannianAdam([p, log_s], lr=0.1)
        t0 = time.perf_counter()
        tgt = target[iu[0], iu[1]].double()
        with hypervldd.validation(False):  # inputs are known good: skip per-step host syncs
            for _ in range(steps):
                opt.zero_grad()
                d = m.dist(p[iu[0]], p[iu[1]])
                loss = ((d * log_s.exp() - tgt) / tgt).pow(2).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            d = m.dist(p[iu[0]], p[iu[1]]) * log_s.exp()
            distortion = float(((d - tgt).abs() / tgt).mean())
        print(f"{name:>10} {distortion:11.3f} {time.perf_counter() - t0:8.1f}")
    print("(mean relative distortion of all pairwise tree distances; lower is better)")


def run_demo(quick: bool = False) -> int:
    """Run every stage that is available and print what was run. Returns an exit code."""
    import hypervldd

    info = hypervldd.backend_info()
    print("hypervldd demo")
    print(f"backend: {info.backend}: {info.reason}")
    print(
        "The distillation pipeline (data, encoders, distillers, evaluation) is not part of "
        "this build yet, so the demo runs the geometry core end to end."
    )
    _precision_stage(quick)
    _embedding_stage(quick)
    return 0
