"""The training loop in docs/losses.md runs as written and trains."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "losses.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_rank_alignment_loop_runs_and_lowers_the_loss() -> None:
    blocks = [b for b in _python_blocks(DOC.read_text()) if "FullDatasetRankAlignment(" in b]
    assert len(blocks) == 1, "docs/losses.md must hold exactly one rank-alignment loop"
    code = blocks[0]
    assert len(code.splitlines()) <= 40
    ns: dict = {"__name__": "__docs__"}
    exec(compile(code, str(DOC), "exec"), ns)
    history = ns["history"]
    assert len(history) == 30
    assert all(h == h and abs(h) < float("inf") for h in history)
    # The synthetic set moved and the objective fell over the 30 steps.
    assert history[-1] < 0.9 * history[0]
