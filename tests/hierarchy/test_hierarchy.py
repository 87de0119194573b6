"""WordNet reader, transitive closure, reconstruction metrics and a small embedding run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hypervldd.hierarchy import (
    EmbedConfig,
    adjacency,
    load_nouns,
    reconstruction,
    train_embedding,
    transitive_closure,
)
from hypervldd.hierarchy.wordnet import DEFAULT_WORDNET_DIR

HAVE_WORDNET = (DEFAULT_WORDNET_DIR / "data.noun").is_file()
needs_wordnet = pytest.mark.skipif(not HAVE_WORDNET, reason="Debian wordnet-base not installed")


def _write_db(root: Path) -> None:
    """A four-synset database in the WordNet format, offsets being real byte offsets.

    animal -> {dog, cat}, dog -> puppy; cat also has an instance hyponym (ignored).
    """
    header = "  1 This is a licence header line, starting with two spaces.\n"
    records = {
        "animal": ("01", ["~ {dog} n 0000", "~ {cat} n 0000"]),
        "dog": ("02", ["@ {animal} n 0000", "~ {puppy} n 0000"]),
        "cat": ("02", ["@ {animal} n 0000", "~i {animal} n 0000"]),
        "puppy": ("01", ["@ {dog} n 0000"]),
    }
    order = ["animal", "dog", "cat", "puppy"]
    # Offsets depend on line lengths, which depend on offsets (8 digits each): fixed point.
    offsets = {k: 0 for k in order}
    for _ in range(3):
        text, pos = header, len(header)
        for k in order:
            offsets[k] = pos
            wcnt, ptrs = records[k]
            ptr = " ".join(p.format(**{n: f"{offsets[n]:08d}" for n in order}) for p in ptrs)
            line = f"{pos:08d} 05 n {wcnt} {k} 0"
            if wcnt == "02":
                line += f" {k}_alias 0"
            line += f" {len(ptrs):03d} {ptr} | gloss of {k}\n"
            text += line
            pos += len(line.encode())
    (root / "data.noun").write_text(text)
    index = header + "".join(f"{k} n 1 1 @ 1 0 {offsets[k]:08d}\n" for k in sorted(order))
    (root / "index.noun").write_text(index)


def test_reader_and_closure_on_a_synthetic_database(tmp_path):
    _write_db(tmp_path)
    wn = load_nouns(tmp_path)
    assert wn["dog.n.01"].lemmas == ["dog", "dog_alias"]
    h = transitive_closure("animal.n.01", wn)
    assert h.names[0] == "animal.n.01"
    assert set(h.names) == {"animal.n.01", "dog.n.01", "cat.n.01", "puppy.n.01"}
    idx = {n: i for i, n in enumerate(h.names)}
    expected = {("dog", "animal"), ("cat", "animal"), ("puppy", "dog"), ("puppy", "animal")}
    got = {(h.names[c][:-5], h.names[a][:-5]) for c, a in h.edges}
    assert got == expected
    assert (idx["puppy.n.01"], idx["dog.n.01"]) in h.parents
    sub = h.subtree(idx["dog.n.01"])
    assert sub.names == ["dog.n.01", "puppy.n.01"] and sub.edges == [(1, 0)]


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.noun"):
        load_nouns(tmp_path)
    _write_db(tmp_path)
    wn = load_nouns(tmp_path)
    with pytest.raises(KeyError, match="wolf"):
        wn["wolf.n.01"]
    with pytest.raises(KeyError, match="look like"):
        wn["dog"]


@needs_wordnet
def test_mammal_closure_is_transitive_and_rooted():
    h = transitive_closure("mammal.n.01")
    assert h.names[0] == "mammal.n.01"
    assert h.num_nodes > 1000
    edges = set(h.edges)
    anc: dict[int, set[int]] = {}
    for c, a in edges:
        anc.setdefault(c, set()).add(a)
    # Every node but the root descends from the root; no node is its own ancestor.
    assert all(0 in anc.get(i, set()) for i in range(1, h.num_nodes))
    assert all(c != a for c, a in edges)
    # Transitivity: ancestors of ancestors are ancestors.
    for ancestors in anc.values():
        for a in ancestors:
            assert anc.get(a, set()) <= ancestors
    idx = {n: i for i, n in enumerate(h.names)}
    for child, ancestor in [
        ("dog.n.01", "canine.n.02"),
        ("dog.n.01", "carnivore.n.01"),
        ("domestic_cat.n.01", "feline.n.01"),
        ("blue_whale.n.01", "whale.n.02"),
    ]:
        assert (idx[child], idx[ancestor]) in edges, (child, ancestor)


def test_metrics_on_hand_computed_examples():
    # Path 0 - 1 - 2 plus an unrelated node 3: relations {0,1}, {0,2}, {1,2}.
    adj = adjacency(4, [(1, 0), (2, 0), (2, 1)])
    perfect = torch.tensor(
        [[0, 1, 1, 5], [1, 0, 1, 5], [1, 1, 0, 5], [5, 5, 5, 0]], dtype=torch.float64
    )
    with pytest.raises(ValueError, match="relations"):
        reconstruction(perfect, torch.zeros(4, 4, dtype=torch.bool))
    rec = reconstruction(perfect[:3, :3], adj[:3, :3])
    assert rec.mean_rank == 1.0 and rec.map == 1.0
    # Node 3 (no relation) is skipped by MAP; for node 0, put unrelated 3 between 1 and 2.
    d = perfect.clone()
    d[0, 3] = d[3, 0] = 1.5
    d[0, 2] = d[2, 0] = 2.0
    rec = reconstruction(d, adj)
    # Node 0: ranking 1 (rel), 3, 2 (rel) -> AP (1 + 2/3) / 2; nodes 1, 2: AP 1.
    assert rec.map == pytest.approx(((1 + 2 / 3) / 2 + 1 + 1) / 3)
    # Ranks: pair (0,2) has one unrelated node closer (rank 2); (2,0) too: 3 is at 5 > 2?
    # From node 2, node 3 is at 5, node 0 at 2: rank 1. Six ordered pairs, one with rank 2.
    assert rec.mean_rank == pytest.approx(7 / 6)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="dist"):
        reconstruction(torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="adj"):
        reconstruction(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="edges"):
        adjacency(3, [(0, 5)])


@pytest.mark.parametrize(
    "field,value",
    [("manifold", "klein"), ("dim", 0), ("lr", 0.0), ("optimizer", "adagrad"), ("epochs", 1.5)],
)
def test_config_errors_name_the_field(field, value):
    cfg = EmbedConfig(**{field: value})
    with pytest.raises(ValueError, match=field):
        cfg.validate()


@needs_wordnet
@pytest.mark.parametrize("manifold", ["poincare", "lorentz"])
def test_wordnet_subtree_map_threshold(manifold):
    """Embedding of the feline subtree of WordNet mammals (60 nodes) in 5 dimensions."""
    full = transitive_closure("mammal.n.01")
    h = full.subtree(full.names.index("feline.n.01"))
    assert h.num_nodes >= 40
    cfg = EmbedConfig(
        manifold=manifold,
        dim=5,
        epochs=16,
        batch_size=32,
        negatives=20,
        lr=0.1,
        optimizer="radam",
        burnin_epochs=3,
        eval_every=8,
        seed=0,
    )
    res = train_embedding(h, cfg)
    assert res.final.map > 0.85, res.final
    assert res.history[-1][2] > res.history[0][2]
    assert torch.isfinite(res.model.weight).all()
