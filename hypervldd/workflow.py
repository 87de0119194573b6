"""The main job from Python: ``prepare -> distill -> evaluate -> compare -> inspect``.

These are the functions behind ``hypervldd.prepare`` and its siblings: thin, typed
wrappers of :mod:`hypervldd.pipeline` (the same code the command line runs), so a
script and ``hypervldd distill ...`` give the same artifact. Importing this module
costs nothing beyond ``torch``: the pipeline and everything under it load on the
first call.

Example (a made-up feature set; real ones come from :func:`prepare`):

>>> import torch, hypervldd
>>> from hypervldd.eval import EvalProtocol, FeatureSet, StudentConfig
>>> g = torch.Generator().manual_seed(0)
>>> feats = FeatureSet(torch.randn(16, 8, generator=g), torch.randn(16, 6, generator=g),
...                    torch.arange(16))
>>> syn = hypervldd.distill(feats, "random", 4)
>>> proto = EvalProtocol(epochs=1, seeds=(0,), student=StudentConfig(width=4))
>>> result = hypervldd.evaluate(syn, feats, proto)
>>> syn.num_pairs, 0.0 <= result.mean["mean"] <= 100.0
(4, True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: the imports below would load the pipeline
    from .data import PairedDataset, PairedFeatures
    from .distill import SyntheticSet
    from .eval import EvalProtocol, Result
    from .pipeline import CompareResult

__all__ = ["prepare", "distill", "evaluate", "compare", "inspect"]

PathLike = str | os.PathLike


def prepare(
    dataset: str | PairedDataset = "emoji",
    *,
    image_encoder: str = "efficientnet-lite0",
    text_encoder: str = "minilm-l6-v2",
    splits: Sequence[str] = ("train", "val", "test"),
    cache_dir: PathLike | None = None,
    limit: int | None = None,
    **options: Any,
) -> dict[str, PairedFeatures]:
    """Encode the splits of a dataset with frozen encoders (cached on disk).

    Args:
        dataset: a built-in name (``"emoji"``, ``"fashion-mnist"``), a Karpathy-style
            ``.json`` or ``.csv``/``.jsonl`` caption table (give ``image_root=``), or a
            :class:`~hypervldd.data.PairedDataset`.
        image_encoder, text_encoder: names from ``pipeline.IMAGE_ENCODERS`` /
            ``pipeline.TEXT_ENCODERS`` or ``"open_clip:<arch>"`` (with
            ``open_clip_checkpoint=``, a local file: nothing is downloaded).
        splits: the splits to encode.
        cache_dir: where features are cached (default: the package cache root).
        limit: keep only the first ``limit`` images of each split (quick runs).
        **options: the other keywords of :func:`hypervldd.pipeline.prepare`
            (``progress``, ``image_root``, ``open_clip_checkpoint``).

    Returns:
        ``{split: PairedFeatures}`` with ``image_features (N_img, D_i)`` and
        ``text_features (N_txt, D_t)``, float32.

    Example (needs the Debian emoji data and the encoder packages, so it is not run
    by the doctests; ``examples/distill_from_python.py`` runs the rest of the job):

    >>> feats = hypervldd.prepare("emoji", limit=30, progress=False)  # doctest: +SKIP
    >>> feats["train"].image_features.shape[1]  # doctest: +SKIP
    1280
    """
    from . import pipeline

    return pipeline.prepare(
        dataset,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        splits=splits,
        cache_dir=cache_dir,
        limit=limit,
        **options,
    )


def distill(
    real: Any,
    method: str,
    budget: int,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    out: PathLike | None = None,
    **options: Any,
) -> SyntheticSet:
    """Distil real features into ``budget`` synthetic pairs with ``method``.

    Args:
        real: training features (a :class:`~hypervldd.data.PairedFeatures` from
            :func:`prepare`, or a :class:`~hypervldd.eval.FeatureSet`).
        method: a name from ``hypervldd.distill.available_methods()``.
        budget: number of synthetic pairs (``>= 1``).
        seed: the method's random seed.
        config: the method's config overrides (see ``docs/distillation.md``).
        out: save the set there (``.safetensors``) when given.
        **options: the other keywords of :func:`hypervldd.pipeline.distill`
            (``checkpoint_dir``, ``resume``, ``progress``, ``val``, ``protocol``).

    Returns:
        The :class:`~hypervldd.distill.SyntheticSet` (``image (budget, D_i)``,
        ``text (budget, D_t)``).

    >>> import torch, hypervldd
    >>> from hypervldd.eval import FeatureSet
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = FeatureSet(torch.randn(12, 8, generator=g), torch.randn(12, 5, generator=g),
    ...                    torch.arange(12))
    >>> syn = hypervldd.distill(feats, "herding", 3)
    >>> tuple(syn.image.shape), tuple(syn.text.shape)
    ((3, 8), (3, 5))
    """
    from . import pipeline

    return pipeline.distill(real, method, budget, seed=seed, config=config, out=out, **options)


def evaluate(
    train: Any,
    test: Any,
    protocol: EvalProtocol | None = None,
    *,
    val: Any = None,
) -> Result:
    """Train the protocol's students on ``train`` and report retrieval recall on ``test``.

    Args:
        train: a synthetic set, real features, or a pair ``(image (M, D_i), text (M, D_t))``.
        test: test features (``image (N_img, D_i)``, ``text (N_txt, D_t)`` and the
            caption-to-image index).
        protocol: the :class:`~hypervldd.eval.EvalProtocol` (default: the published one,
            100 epochs and 5 seeds).
        val: validation features; used only when ``protocol.selection == "validation"``.

    Returns:
        A :class:`~hypervldd.eval.Result`: recall in percent, ``mean``/``std`` over seeds.

    >>> import torch, hypervldd
    >>> from hypervldd.eval import EvalProtocol, FeatureSet, StudentConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = FeatureSet(torch.randn(10, 8, generator=g), torch.randn(10, 5, generator=g),
    ...                    torch.arange(10))
    >>> proto = EvalProtocol(epochs=1, seeds=(0, 1), student=StudentConfig(width=4))
    >>> result = hypervldd.evaluate(feats, feats, proto)
    >>> len(result.metrics_per_seed), sorted(result.mean)[:2]
    (2, ['IR@1', 'IR@10'])
    """
    from . import pipeline

    return pipeline.evaluate_set(train, test, protocol, val=val)


def compare(
    features: dict[str, Any],
    methods: Sequence[str],
    budgets: Sequence[int],
    *,
    protocol: EvalProtocol | None = None,
    seed: int = 0,
    references: bool = True,
    out_dir: PathLike | None = None,
    **options: Any,
) -> CompareResult:
    """Distil with every method at every budget and score all under one protocol.

    Args:
        features: ``{split: features}``; ``"train"`` and ``"test"`` are required,
            ``"val"`` is used when the protocol selects on validation.
        methods: method names; budgets: synthetic pairs per set.
        protocol: the :class:`~hypervldd.eval.EvalProtocol` every row is scored with.
        seed: the methods' seed.
        references: also score the full training data (the upper reference row).
        out_dir: write ``results.md``, ``results.json`` and a plot there (rewritten
            after every row, so a stopped run keeps what it measured).
        **options: the other keywords of :func:`hypervldd.pipeline.compare`
            (``method_configs``, ``log``, ``extras``, ``reference_cache``, ...).

    Returns:
        A :class:`~hypervldd.pipeline.CompareResult` (``rows``, ``markdown()``).

    >>> import torch, hypervldd
    >>> from hypervldd.eval import EvalProtocol, FeatureSet, StudentConfig
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = FeatureSet(torch.randn(12, 8, generator=g), torch.randn(12, 5, generator=g),
    ...                    torch.arange(12))
    >>> proto = EvalProtocol(epochs=1, seeds=(0,), student=StudentConfig(width=4))
    >>> res = hypervldd.compare({"train": feats, "test": feats}, ["random", "herding"], [3],
    ...                         protocol=proto, references=False)
    >>> [(row.method, row.budget) for row in res.rows]
    [('random', 3), ('herding', 3)]
    """
    from . import pipeline

    return pipeline.compare(
        features,
        methods,
        budgets,
        protocol=protocol,
        seed=seed,
        references=references,
        out_dir=out_dir,
        **options,
    )


def inspect(path: PathLike, real: Any = None, *, k: int = 3, **options: Any) -> dict[str, Any]:
    """Describe a saved synthetic set; with ``real`` features, its nearest real captions.

    Args:
        path: a ``.safetensors`` artifact written by :func:`distill` (``out=``).
        real: the real :class:`~hypervldd.data.PairedFeatures` it was distilled from.
        k: nearest captions listed per synthetic text.
        **options: ``grid_png`` and ``dataset`` of :func:`hypervldd.pipeline.inspect_artifact`.

    Returns:
        ``{"manifest", "pairs", "storage_floats"}`` plus, with ``real``,
        ``"nearest_captions"`` (``pairs`` lists of ``k``) and ``"nearest_images"``.

    >>> import tempfile, pathlib, torch, hypervldd
    >>> from hypervldd.data import PairedFeatures
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = PairedFeatures(torch.randn(6, 8, generator=g), torch.randn(6, 5, generator=g),
    ...     torch.arange(6), [f"img{i}" for i in range(6)], [f"caption {i}" for i in range(6)])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "set.safetensors"
    ...     _ = hypervldd.distill(feats, "random", 2, out=path)
    ...     info = hypervldd.inspect(path, feats, k=2)
    >>> info["pairs"], [len(c) for c in info["nearest_captions"]]
    (2, [2, 2])
    """
    from . import pipeline

    return pipeline.inspect_artifact(path, real, k=k, **options)
