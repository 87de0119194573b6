"""Does a synthetic set come from the data it is being used with?

An artifact records the fingerprint of the training features it was distilled
from and the ids of their encoders. Scoring it on another dataset, another
``--limit`` or other encoders gives numbers that look fine and mean nothing, so
:func:`check_provenance` compares the record with the features at hand: it
refuses a mismatch, or, when the caller allows it explicitly, warns and returns
the differences so that every output can be labelled.
"""

from __future__ import annotations

import warnings
from typing import Any

from .artifact import SyntheticSet
from .base import prepare_real

__all__ = ["ProvenanceError", "provenance_mismatches", "check_provenance", "mismatch_label"]


class ProvenanceError(ValueError):
    """A synthetic set was made from other data or other encoders than those given."""


def _short(fp: str) -> str:
    return fp[:12] + "..." if len(fp) > 12 else fp


def provenance_mismatches(synthetic: SyntheticSet, real: Any) -> list[str]:
    """How ``synthetic``'s record differs from the training features ``real``; ``[]`` if not.

    Args:
        synthetic: the set (its ``data_fingerprint`` and ``encoders``).
        real: the training features it should have been distilled from (anything
            :func:`~hypervldd.distill.base.prepare_real` takes: ``PairedFeatures``,
            ``FeatureSet``).

    A set that records no fingerprint cannot be checked, and says so. Encoders are
    compared for each side (``image``, ``text``) that both record.

    Example:
        >>> import torch
        >>> from hypervldd.eval import FeatureSet
        >>> real = FeatureSet(torch.ones(2, 3), torch.ones(2, 3), torch.arange(2))
        >>> s = SyntheticSet(torch.ones(1, 3), torch.ones(1, 3), "m", data_fingerprint="x")
        >>> provenance_mismatches(s, real)[0].startswith("data fingerprint")
        True
    """
    data = prepare_real(real)
    out = []
    if not synthetic.data_fingerprint:
        out.append("the set records no data fingerprint, so its data cannot be checked")
    elif synthetic.data_fingerprint != data.fingerprint:
        out.append(
            f"data fingerprint: the set was distilled from {_short(synthetic.data_fingerprint)}, "
            f"the training features given are {_short(data.fingerprint)} (another dataset, "
            "--limit, split seed or encoder?)"
        )
    for side in ("image", "text"):
        mine, given = synthetic.encoders.get(side), data.encoders.get(side)
        if mine is not None and given is not None and mine != given:
            out.append(f"{side} encoder: the set's is {mine!r}, the features' is {given!r}")
    return out


def check_provenance(
    synthetic: SyntheticSet, real: Any, *, allow_mismatch: bool = False, where: str = "the set"
) -> list[str]:
    """Refuse ``synthetic`` unless it was distilled from ``real``; returns the mismatches.

    With ``allow_mismatch`` a mismatch is not refused: it is warned about
    (``UserWarning``) and returned, so that the caller labels its outputs with
    :func:`mismatch_label`.

    Raises:
        ProvenanceError: on a mismatch without ``allow_mismatch``, naming each difference.
    """
    found = provenance_mismatches(synthetic, real)
    if not found:
        return []
    what = "; ".join(found)
    if not allow_mismatch:
        raise ProvenanceError(
            f"{where} does not match the data given: {what}. Use the dataset, --limit and "
            "encoders it was distilled with, or pass --allow-mismatch (allow_mismatch=True) "
            "to go on with every output labelled"
        )
    warnings.warn(f"{mismatch_label(found)}: {where}: {what}", UserWarning, stacklevel=2)
    return found


def mismatch_label(found: list[str]) -> str:
    """The label every output of a mismatched run carries (``""`` when nothing differs)."""
    if not found:
        return ""
    return "PROVENANCE MISMATCH (--allow-mismatch)"
