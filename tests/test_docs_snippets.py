"""The ```python blocks of README.md and docs/ run as written.

A block preceded by ``<!-- not run: reason -->`` is a fragment (a signature, or code that
needs data or a model that the test machine lacks); every other block must run on its own,
in a fresh namespace, from a scratch directory.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- not run: (?P<why>[^>]*) -->\s*?\n)?"
    r"^(?P<ind>[ \t]*)```python\n(?P<code>.*?)\n(?P=ind)```",
    re.S | re.M,
)


def _blocks() -> list[tuple[str, str, str | None]]:
    out = []
    for doc in DOCS:
        for i, m in enumerate(BLOCK.finditer(doc.read_text())):
            code = textwrap.dedent(m["code"])
            out.append((f"{doc.relative_to(ROOT)}#{i + 1}", code, m["why"]))
    return out


BLOCKS = _blocks()


def test_fragments_say_why_and_most_blocks_run() -> None:
    skipped = [(name, why) for name, _, why in BLOCKS if why is not None]
    assert all(why.strip() for _, why in skipped)
    assert len(BLOCKS) - len(skipped) >= 8, "the runnable snippets are the documentation's core"


@pytest.mark.filterwarnings("error::DeprecationWarning")  # snippets show the current calls
@pytest.mark.parametrize(
    "name,code", [(n, c) for n, c, why in BLOCKS if why is None], ids=lambda v: v[:40]
)
def test_snippet_runs(
    name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYPERVLDD_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    exec(compile(code, name, "exec"), {"__name__": "__snippet__"})  # noqa: S102
