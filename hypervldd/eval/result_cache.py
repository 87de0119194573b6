"""A disk cache for evaluation results that do not depend on a synthetic set.

The full-data reference of ``hypervldd compare`` trains one student per seed on
every real caption pair: on the whole ``emoji`` set that is most of a compare
run, and it is the same for every method and budget. Its result depends only on
the real features, the protocol and the code, so it is cached under a key made
of exactly those: the fingerprints of the train, test and validation features,
the protocol (with its version), the recall cut-offs, and the hypervldd and torch
versions. A change to any of them is a different key, so a stale result is never
reused; a file that does not parse, does not match its key, or whose sha256 (over
the format, the key and the result) does not match is ignored and recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data._io import atomic_write_bytes, default_cache_dir, sha256_json
from .evaluate import DEFAULT_KS, Result
from .features import as_feature_set

__all__ = ["result_key", "cached_result", "default_results_dir"]

_FORMAT = "hypervldd.result/1"


def result_key(
    train: Any, test: Any, protocol: Any, *, val: Any = None, ks: Sequence[int] = DEFAULT_KS
) -> str:
    """The cache key (sha256 hex) of evaluating ``train`` on ``test`` under ``protocol``."""
    import hypervldd

    return sha256_json(
        {
            "format": _FORMAT,
            "train": as_feature_set(train, "train").fingerprint(),
            "test": as_feature_set(test, "test").fingerprint(),
            "val": None if val is None else as_feature_set(val, "val").fingerprint(),
            "protocol": protocol.to_dict(),
            "ks": [int(k) for k in ks],
            "hypervldd": hypervldd.__version__,
            "torch": torch.__version__,
        }
    )


def default_results_dir() -> Path:
    """``<cache root>/results``; the root is ``$HYPERVLDD_CACHE`` or ``~/.cache/hypervldd``."""
    return default_cache_dir() / "results"


def _payload_sha256(payload: dict[str, Any]) -> str:
    """sha256 over everything stored but the sum itself: the format, the key, the result."""
    return sha256_json({k: v for k, v in payload.items() if k != "sha256"})


def _load(path: Path, key: str) -> Result | None:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != _FORMAT or data.get("key") != key:
            return None
        if data.get("sha256") != _payload_sha256(data):
            return None  # edited or damaged after writing (older files had no sum)
        return Result(**data["result"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # unreadable or foreign: recompute and overwrite


def cached_result(
    key: str,
    compute: Callable[[], Result],
    *,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Result, bool]:
    """Return ``(result, hit)``: the stored result for ``key``, or ``compute()`` stored.

    Args:
        key: from :func:`result_key`.
        compute: produces the result on a miss.
        cache_dir: folder of result files (default ``<cache root>/results``).
    """
    root = Path(cache_dir) if cache_dir is not None else default_results_dir()
    path = root / f"{key[:32]}.json"
    if path.is_file():
        hit = _load(path, key)
        if hit is not None:
            return hit, True
    result = compute()
    payload = {"format": _FORMAT, "key": key, "result": result.to_dict()}
    payload = json.loads(json.dumps(payload))  # the sum is of what a reader will parse
    payload["sha256"] = _payload_sha256(payload)
    atomic_write_bytes(path, json.dumps(payload, indent=1, sort_keys=True).encode())
    return result, False
