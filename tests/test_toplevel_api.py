"""The top-level API: lazy verbs, callable ``hypervldd.distill``, py.typed, self-contained docs."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import torch

import hypervldd
from hypervldd import pipeline, workflow

ROOT = Path(__file__).resolve().parents[1]


def test_import_hypervldd_does_not_load_the_pipeline() -> None:
    code = (
        "import sys, hypervldd; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['hypervldd', 'pipeline'], ['hypervldd', 'workflow'], ['hypervldd', 'eval'], "
        "['hypervldd', 'distill'], ['hypervldd', 'data'])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_the_verbs_are_the_workflow_functions() -> None:
    for name in ("prepare", "evaluate", "compare", "inspect"):
        assert getattr(hypervldd, name) is getattr(workflow, name)
        assert name in hypervldd.__all__ and name in dir(hypervldd)
    assert "distill" in hypervldd.__all__
    # The subpackage keeps its contents and is callable as the verb.
    assert callable(hypervldd.distill)
    assert hypervldd.distill.SyntheticSet is not None
    try:
        hypervldd.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("unknown attributes must raise AttributeError")


def test_distill_verb_gives_the_pipeline_artifact(tmp_path: Path) -> None:
    from hypervldd.eval import FeatureSet

    g = torch.Generator().manual_seed(0)
    feats = FeatureSet(
        torch.randn(20, 6, generator=g), torch.randn(20, 4, generator=g), torch.arange(20)
    )
    a = hypervldd.distill(feats, "herding", 5, out=tmp_path / "a.safetensors")
    b = pipeline.distill(feats, "herding", 5)
    assert torch.equal(a.image, b.image) and torch.equal(a.text, b.text)
    info = hypervldd.inspect(tmp_path / "a.safetensors")
    assert info["pairs"] == 5


def test_py_typed_ships_with_the_package() -> None:
    assert (ROOT / "hypervldd" / "py.typed").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "py.typed" in cfg["options.package_data"]["hypervldd"]


def test_documents_cite_only_files_of_the_repository() -> None:
    docs = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    # Spelled in pieces, so that this file does not itself name what it forbids.
    outside = ("DESIGN" + ".md", "/work" + "/", ".." + "/shared")
    for doc in docs:
        text = doc.read_text()
        assert not any(name in text for name in outside), doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
