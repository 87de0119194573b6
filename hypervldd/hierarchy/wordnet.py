"""A reader for the WordNet noun database and transitive closures of its hierarchy.

Reads the plain-text WordNet 3.x database as Debian's ``wordnet-base`` installs it
(``/usr/share/wordnet/data.noun`` and ``index.noun``), following the format of
the ``wndb(5WN)`` manual page:

* ``data.noun``: one synset per line, ``offset lex_filenum ss_type w_cnt
  (word lex_id)*w_cnt p_cnt (pointer_symbol offset pos source/target)*p_cnt ...
  | gloss``; ``w_cnt`` is two hexadecimal digits, ``p_cnt`` three decimal ones.
  Lines starting with a space are the licence header.
* ``index.noun``: ``lemma pos synset_cnt p_cnt (ptr_symbol)*p_cnt sense_cnt
  tagsense_cnt (synset_offset)*synset_cnt``; the order of the offsets is the
  sense number, which gives synsets their usual names (``mammal.n.01``).

Only hypernym pointers (``@``, not the instance hypernyms ``@i``) define the
hierarchy, as in the Poincaré-embeddings experiments (Nickel & Kiela, 2017).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_WORDNET_DIR",
    "Synset",
    "WordNetNouns",
    "Hierarchy",
    "load_nouns",
    "transitive_closure",
]

#: Where Debian's ``wordnet-base`` installs the database.
DEFAULT_WORDNET_DIR = Path(os.environ.get("WNSEARCHDIR", "/usr/share/wordnet"))


@dataclass
class Synset:
    """One noun synset: its byte offset (the id), lemmas and hypernym/hyponym offsets."""

    offset: int
    lemmas: list[str]
    hypernyms: list[int] = field(default_factory=list)
    hyponyms: list[int] = field(default_factory=list)


class WordNetNouns:
    """The noun synsets of a WordNet database, read on demand.

    A synset's id is its byte offset in ``data.noun`` (as the format intends), so
    a synset is read by seeking to it: a subtree is read without parsing the
    whole 15 MB file. Names (``lemma.n.NN``) come from ``index.noun``.

    Args:
        root: directory holding ``data.noun`` and ``index.noun``.
    """

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_WORDNET_DIR) -> None:
        root = Path(root)
        self.data_path, self.index_path = root / "data.noun", root / "index.noun"
        for f, arg in ((self.data_path, "data.noun"), (self.index_path, "index.noun")):
            if not f.is_file():
                raise FileNotFoundError(
                    f"root must hold the WordNet file {arg}; {f} does not exist "
                    "(install Debian's wordnet-base, or pass root=...)"
                )
        self._cache: dict[int, Synset] = {}
        self._senses: dict[str, list[int]] | None = None

    def synset(self, offset: int) -> Synset:
        """The synset at byte ``offset`` of ``data.noun``."""
        syn = self._cache.get(offset)
        if syn is None:
            with open(self.data_path, "rb") as f:
                f.seek(offset)
                line = f.readline().decode("utf-8", errors="replace")
            syn = _parse_data_line(line, f"{self.data_path}@{offset}")
            if syn.offset != offset:
                raise ValueError(f"{self.data_path}: no synset starts at byte offset {offset}")
            self._cache[offset] = syn
        return syn

    def _sense_table(self) -> dict[str, list[int]]:
        if self._senses is None:
            self._senses = dict(_parse_index(self.index_path))
        return self._senses

    def offsets(self, lemma: str) -> list[int]:
        """Synset offsets of a noun lemma, in sense order (``[]`` when unknown)."""
        return list(self._sense_table().get(lemma.lower().replace(" ", "_"), []))

    def name(self, offset: int) -> str:
        """``lemma.n.NN`` for the synset at ``offset`` (its first lemma's sense number)."""
        syn = self.synset(offset)
        lemma = syn.lemmas[0].lower()
        offs = self._sense_table().get(lemma, [])
        if offset in offs:
            return f"{lemma}.n.{offs.index(offset) + 1:02d}"
        return f"{lemma}.n.{offset:08d}"  # not indexed under its first lemma

    def __getitem__(self, name: str) -> Synset:
        try:
            lemma, pos, sense = name.rsplit(".", 2)
            k = int(sense)
        except ValueError:
            raise KeyError(f"synset names look like 'mammal.n.01', got {name!r}") from None
        offs = self.offsets(lemma)
        if pos != "n" or not 1 <= k <= len(offs):
            raise KeyError(f"no noun synset named {name!r}")
        return self.synset(offs[k - 1])

    def descendants(self, root: str) -> list[int]:
        """Offsets of ``root`` and all its transitive hyponyms, breadth-first."""
        start = self[root].offset
        seen = {start}
        order = [start]
        queue = deque([start])
        while queue:
            for child in self.synset(queue.popleft()).hyponyms:
                if child not in seen:
                    seen.add(child)
                    order.append(child)
                    queue.append(child)
        return order


@dataclass
class Hierarchy:
    """A transitive closure: node names and ``(child, ancestor)`` index pairs.

    Attributes:
        names: node names; index ``i`` is node ``i``. ``names[0]`` is the root.
        edges: ``(E, 2)`` list of ``(descendant, ancestor)`` pairs of the closure,
            each pair once, no self-loops.
        parents: direct ``(child, parent)`` pairs (the Hasse diagram).
    """

    names: list[str]
    edges: list[tuple[int, int]]
    parents: list[tuple[int, int]]

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    def subtree(self, root: int) -> Hierarchy:
        """The closure restricted to ``root`` and its descendants (re-indexed, root first)."""
        if not 0 <= root < self.num_nodes:
            raise ValueError(f"root must be a node index in [0, {self.num_nodes}), got {root}")
        below = sorted({c for c, a in self.edges if a == root})
        keep = [root, *below]
        new = {old: i for i, old in enumerate(keep)}
        edges = [(new[c], new[a]) for c, a in self.edges if c in new and a in new]
        parents = [(new[c], new[p]) for c, p in self.parents if c in new and p in new]
        return Hierarchy([self.names[i] for i in keep], edges, parents)


def _parse_data_line(line: str, where: str) -> Synset:
    head = line.split(" | ", 1)[0].split()
    try:
        offset = int(head[0])
        w_cnt = int(head[3], 16)
        lemmas = [head[4 + 2 * i] for i in range(w_cnt)]
        pos = 4 + 2 * w_cnt
        p_cnt = int(head[pos])
        syn = Synset(offset, lemmas)
        for k in range(p_cnt):
            sym, target, tpos = head[pos + 1 + 4 * k : pos + 4 + 4 * k]
            if tpos != "n":
                continue
            if sym == "@":
                syn.hypernyms.append(int(target))
            elif sym == "~":
                syn.hyponyms.append(int(target))
    except (IndexError, ValueError) as err:
        raise ValueError(f"{where}: not in WordNet data format: {err}") from err
    return syn


def _parse_index(path: Path) -> Iterable[tuple[str, list[int]]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line or line[0] == " ":
                continue
            parts = line.split()
            try:
                synset_cnt = int(parts[2])
                p_cnt = int(parts[3])
                offsets = [int(o) for o in parts[6 + p_cnt : 6 + p_cnt + synset_cnt]]
            except (IndexError, ValueError) as err:
                raise ValueError(f"{path}:{line_no}: not in WordNet index format: {err}") from err
            yield parts[0], offsets


def load_nouns(root: str | os.PathLike[str] = DEFAULT_WORDNET_DIR) -> WordNetNouns:
    """Parse the noun database under ``root``."""
    return WordNetNouns(root)


def transitive_closure(
    root: str = "mammal.n.01",
    wordnet: WordNetNouns | None = None,
) -> Hierarchy:
    """Transitive closure of the hyponyms of ``root`` (e.g. ``"mammal.n.01"``).

    Nodes are ``root`` and every synset reachable from it by hyponym links; an
    edge ``(u, v)`` means ``v`` is a (transitive) hypernym of ``u`` inside that
    set. Synsets with several hypernyms keep all the paths that stay inside.
    """
    wn = wordnet if wordnet is not None else load_nouns()
    order = wn.descendants(root)
    index = {off: i for i, off in enumerate(order)}
    parents = sorted(
        {
            (index[off], index[h])
            for off in order
            for h in wn.synset(off).hypernyms
            if h in index and h != off
        }
    )
    up: dict[int, list[int]] = {}
    for c, p in parents:
        up.setdefault(c, []).append(p)
    edges: set[tuple[int, int]] = set()
    for node in range(len(order)):
        stack, seen = list(up.get(node, [])), set()
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            edges.add((node, a))
            stack.extend(up.get(a, []))
    names = [wn.name(off) for off in order]
    return Hierarchy(names, sorted(edges), parents)
