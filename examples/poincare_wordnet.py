"""Poincaré embeddings of the WordNet mammals with RiemannianAdam.

Each node of the transitive closure of ``mammal.n.01`` (1,170 nouns here) is a point of the
Poincaré ball, a :class:`geoopt.ManifoldParameter`; for every (descendant, ancestor)
pair the loss is a softmax over distances against sampled non-ancestors (Nickel &
Kiela, 2017). :class:`RiemannianAdam` keeps the points in the ball. Reported:
reconstruction mean rank and MAP. WordNet comes from the Debian package
``wordnet-base``; without it (and in ``--smoke``) a made-up 40-node tree is embedded.

    python examples/poincare_wordnet.py              # WordNet mammals, 10-d, 300 epochs
    python examples/poincare_wordnet.py --smoke      # the test suite's mode
"""

import argparse

import geoopt
import torch

from hypervldd.hierarchy import Hierarchy, adjacency, reconstruction, transitive_closure
from hypervldd.manifolds import PoincareBall
from hypervldd.optim import RiemannianAdam


def made_up_tree(branching: int = 3, depth: int = 3) -> Hierarchy:
    names, parents, frontier = ["root"], [], [0]
    for _ in range(depth):
        nxt = []
        for p in frontier:
            for _ in range(branching):
                names.append(f"{names[p]}.{len(names)}")
                parents.append((len(names) - 1, p))
                nxt.append(len(names) - 1)
        frontier = nxt
    up = dict(parents)
    edges = [(c, a) for c in range(len(names)) for a in _ancestors(c, up)]
    return Hierarchy(names, sorted(edges), parents)


def _ancestors(node: int, up: dict) -> list[int]:
    out = []
    while node in up:
        node = up[node]
        out.append(node)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--negatives", type=int, default=50)
    ap.add_argument("--smoke", action="store_true", help="made-up tree, 30 epochs")
    args = ap.parse_args()
    tree = None
    if not args.smoke:
        try:
            tree = transitive_closure("mammal.n.01")
        except (OSError, KeyError, ValueError) as err:
            print(f"WordNet not available ({err}); embedding a made-up tree instead")
    tree = tree or made_up_tree()
    epochs = 30 if args.smoke else args.epochs
    n, edges = tree.num_nodes, torch.tensor(tree.edges)
    adj = adjacency(n, tree.edges)

    torch.manual_seed(0)
    ball = PoincareBall(c=1.0)
    points = geoopt.ManifoldParameter(1e-3 * torch.randn(n, args.dim), manifold=ball)
    opt = RiemannianAdam([points], lr=0.05)
    for epoch in range(epochs):
        # Each (descendant u, ancestor v) against sampled nodes unrelated to u.
        neg = torch.randint(n, (len(edges), args.negatives))
        neg = torch.where(adj[edges[:, :1], neg], edges[:, 1:], neg)  # related -> v itself
        cand = torch.cat([edges[:, 1:], neg], dim=1)  # the positive is column 0
        d = ball.dist(points[edges[:, :1]], points[cand])
        loss = torch.nn.functional.cross_entropy(-d, torch.zeros(len(edges), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 50 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        rec = reconstruction(ball.pairwise_dist(points, points), adj)
    print(f"{n} nodes, {args.dim}-d ball: mean rank {rec.mean_rank:.2f}, MAP {rec.map:.3f}")
    assert bool((points.norm(dim=-1) < 1).all()), "RiemannianAdam keeps every point in the ball"


if __name__ == "__main__":
    main()
