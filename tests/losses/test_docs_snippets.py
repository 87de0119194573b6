"""The training loop in docs/losses.md runs as written and trains."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "losses.md"


HEADING = "### Calling convention and a training loop of your own"


def _first_block_after(text: str, heading: str) -> str:
    """The first fenced ``python`` block after ``heading``."""
    assert heading in text, f"docs/losses.md lost its section {heading!r}"
    found = re.search(r"```python\n(.*?)```", text[text.index(heading) :], flags=re.S)
    assert found, f"no python block after {heading!r}"
    return found.group(1)


def test_rank_alignment_loop_runs_and_lowers_the_loss() -> None:
    code = _first_block_after(DOC.read_text(), HEADING)
    assert "FullDatasetRankAlignment(" in code
    assert len(code.splitlines()) <= 40
    ns: dict = {"__name__": "__docs__"}
    exec(compile(code, str(DOC), "exec"), ns)
    history = ns["history"]
    assert len(history) == 30
    assert all(h == h and abs(h) < float("inf") for h in history)
    # The synthetic set moved and the objective fell over the 30 steps.
    assert history[-1] < 0.9 * history[0]
