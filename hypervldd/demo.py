"""``hypervldd demo``: the package's main job end to end, printed.

It says what it runs:

1. the kernel backend in use;
2. the main job: the built-in ``emoji`` data is rendered and encoded (cached
   after the first run), every distillation method compresses the training
   split into 100 synthetic pairs, and each set trains Lorentz-head students
   under one protocol; the table of recall is printed beside the full-data
   and random-subset references. To fit a CPU budget the demo uses a slice of
   the emoji set and shortened runs of the gradient-based methods (all
   printed), under the default protocol (5 student seeds; 2 with
   ``--quick``); ``hypervldd compare`` runs the full configuration.
3. with ``--geometry``: the precision contract (float32 distance error of the
   library against the naive GEMM form) and a tree embedded in each geometry.
   These also run when the Debian data packages are missing.
"""

from __future__ import annotations

import json
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


#: Shortened runs of the gradient-based methods for the demo (full defaults in docs).
DEMO_METHOD_CONFIGS: dict[str, dict] = {
    "covmatch": {"engine": {"iterations": 300}},
    "moment_matching": {"engine": {"iterations": 300}},
    "raha": {"engine": {"iterations": 150}},
    "mtt": {"engine": {"iterations": 100}, "experts": {"num_experts": 3, "epochs": 4}},
}


def _distillation_stage(quick: bool) -> bool:
    """The main job; returns False (after saying why) when the built-in data is absent."""
    from .data import load_emoji
    from .distill import available_methods
    from .eval import EvalProtocol
    from .pipeline import compare, prepare

    limit = 300 if quick else 600
    budget = 50 if quick else 100
    # The full run uses the default protocol as it is (5 student seeds).
    protocol = EvalProtocol(seeds=(0, 1)) if quick else EvalProtocol()
    seeds = protocol.seeds
    try:
        load_emoji(limit=4, progress=False)
    except (FileNotFoundError, OSError) as err:
        print(f"\nThe built-in emoji data is not available ({err}).")
        return False
    methods = [m for m in available_methods() if m != "moment_matching"]
    _stage(
        f"distillation: emoji (a slice of {limit} emoji), {budget} synthetic pairs, "
        f"{len(methods)} methods, Lorentz-head students, {len(seeds)} seeds"
    )
    print("shortened gradient runs: " + json.dumps(DEMO_METHOD_CONFIGS))
    t0 = time.perf_counter()
    feats = prepare("emoji", limit=limit, progress=True)
    tr = feats["train"]
    print(
        f"features ready in {time.perf_counter() - t0:.0f} s: train {tr.image_features.shape[0]} "
        f"images / {tr.text_features.shape[0]} captions; test "
        f"{feats['test'].image_features.shape[0]} images"
    )
    result = compare(
        feats,
        methods,
        [budget],
        protocol=protocol,
        method_configs=DEMO_METHOD_CONFIGS,
        log=lambda line: print("  " + line, flush=True),
    )
    print()
    print(result.markdown())
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    return True


def run_demo(quick: bool = False, geometry: bool = False) -> int:
    """Run the main job (and the geometry stages on request). Returns an exit code."""
    import hypervldd

    info = hypervldd.backend_info()
    print("hypervldd demo")
    print(f"backend: {info.backend}: {info.reason}")
    ran = _distillation_stage(quick)
    if geometry or not ran:
        if not ran:
            print("Running the geometry stages instead.")
        _precision_stage(quick)
        _embedding_stage(quick)
    return 0
