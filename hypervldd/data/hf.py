"""Hugging Face ``datasets`` folders (``save_to_disk``) and parquet files as paired datasets.

Rows hold an image column (a ``datasets`` ``Image`` feature, i.e. a struct of
``bytes`` and ``path``, raw bytes, or a file path) and a caption column (a string,
or a list of strings). Rows with the same image id are captions of one image
(Flickr30k on the Hub has one row per image with five captions; other exports
have one row per caption). Images are read lazily, row by row, when encoded.

Parquet goes through ``pyarrow``; a ``save_to_disk`` folder needs the optional
``datasets`` library (``pip install 'hypervldd[hf]'``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .dataset import PairedDataset
from .loaders import DigestMode, _open_rgb, file_digest

__all__ = ["load_hf_dataset", "load_parquet", "SPLIT_ALIASES"]

#: Split names of the Hub mapped to the ones the pipeline uses.
SPLIT_ALIASES = {"validation": "val", "valid": "val", "dev": "val"}

# Tried in order when image_id_column is not given; else each row is its own image.
_ID_COLUMNS = ("img_id", "image_id", "imgid", "cocoid", "filename", "file_name")
_SPLIT_IN_NAME = re.compile(r"^(train|validation|valid|val|dev|test)(?=[-_.])")


class _Rows:
    """A table's columns as Python lists, plus lazy access to the image cell of a row."""

    def __init__(
        self,
        columns: dict[str, list[Any]],
        image_cell: Callable[[int], Any],
        stat: list[str],
        paths_column: bool = False,
    ) -> None:
        self.columns = columns  # the image column is read up front only when it holds paths
        self.image_cell = image_cell
        self.stat = stat  # per row, "<file>:<size>:<mtime>" of the file the row lives in
        self.paths_column = paths_column


def _decode(cell: Any, root: Path | None, what: str) -> tuple[bytes | None, Path | None]:
    """``(bytes, None)`` or ``(None, path)`` of an image cell."""
    if isinstance(cell, dict):
        data, path = cell.get("bytes"), cell.get("path")
        if data:
            return bytes(data), None
        cell = path
    if isinstance(cell, (bytes, bytearray)):
        return bytes(cell), None
    if isinstance(cell, str) and cell:
        p = Path(cell)
        return None, (p if p.is_absolute() or root is None else root / p)
    raise ValueError(f"{what} must hold image bytes or a path, got {type(cell).__name__}")


def _open(cell: Any, root: Path | None, what: str) -> Image.Image:
    data, path = _decode(cell, root, what)
    return _open_rgb(data if data is not None else path, None if data is None else what)


def _file_stat(path: Path) -> str:
    st = os.stat(path)
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


def _build(
    name: str,
    rows: _Rows,
    *,
    image_column: str,
    caption_column: str,
    split_column: str | None,
    image_id_column: str | None,
    default_split: str,
    row_splits: list[str] | None,
    image_root: Path | None,
    digest: DigestMode,
    check_files: bool,
    metadata: dict[str, Any],
) -> PairedDataset:
    cols = rows.columns
    n_rows = len(rows.stat)
    for arg, col in (("image_column", image_column), ("caption_column", caption_column)):
        if col not in cols:
            raise ValueError(f"{arg} {col!r} is not a column of {name!r} (columns: {sorted(cols)})")
    if image_id_column is not None and image_id_column not in cols:
        raise ValueError(
            f"image_id_column {image_id_column!r} is not a column of {name!r} "
            f"(columns: {sorted(cols)})"
        )
    id_col = image_id_column or next((c for c in _ID_COLUMNS if c in cols), None)
    if id_col is None and rows.paths_column:
        id_col = image_column  # rows naming one file are one image, as in a caption table
    split_values = cols.get(split_column) if split_column else None
    first_row: dict[str, int] = {}
    image_rows: list[int] = []
    image_splits: list[str] = []
    captions: list[str] = []
    owner: list[int] = []
    per_image: list[list[str]] = []
    for r in range(n_rows):
        key = str(cols[id_col][r]) if id_col is not None else str(r)
        split = (
            split_values[r]
            if split_values is not None and split_values[r]
            else (row_splits[r] if row_splits is not None else default_split)
        )
        split = SPLIT_ALIASES.get(str(split), str(split))
        cap = cols[caption_column][r]
        caps = [cap] if isinstance(cap, str) else list(cap or [])
        if not all(isinstance(c, str) for c in caps):
            raise ValueError(
                f"caption_column {caption_column!r} must hold strings or lists of strings "
                f"(row {r} of {name!r} has {cap!r})"
            )
        if key not in first_row:
            first_row[key] = len(image_rows)
            image_rows.append(r)
            image_splits.append(split)
            per_image.append([])
        k = first_row[key]
        if image_splits[k] != split:
            raise ValueError(
                f"rows of image {key!r} in {name!r} disagree on the split "
                f"({image_splits[k]!r} vs {split!r})"
            )
        blank = [j for j, c in enumerate(caps) if not c.strip()]
        if blank:
            # An empty caption would be encoded as a real text and trained on as a pair.
            raise ValueError(
                f"row {r} of {name!r} has a blank caption in caption_column "
                f"{caption_column!r} (caption {blank[0]} of {len(caps)}); remove it or give it text"
            )
        per_image[k].extend(c.strip() for c in caps)
    for k, caps in enumerate(per_image):
        if not caps:
            raise ValueError(f"image {list(first_row)[k]!r} of {name!r} has no captions")
        captions.extend(caps)
        owner.extend([k] * len(caps))
    if not image_rows:
        raise ValueError(f"dataset {name!r} has no rows")

    what = f"image_column {image_column!r} of {name!r}"
    paths: list[Path | None] = []
    digests: list[str] = []
    for r in image_rows:
        data, path = _decode(rows.image_cell(r), image_root, what)
        paths.append(path)
        if path is not None:
            if check_files and not path.is_file():
                digests.append("")  # reported below, with every other missing file
                continue
            digests.append(file_digest(path, digest) if check_files else f"path:{path}")
        elif digest == "content":
            import hashlib

            digests.append("sha256:" + hashlib.sha256(data or b"").hexdigest())
        else:
            # The bytes live in the table file: its size and mtime change when it is rewritten.
            digests.append(f"row:{rows.stat[r]}:{r}")

    missing = [str(p) for p, d in zip(paths, digests, strict=True) if p is not None and not d]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} image files of {name!r} are missing "
            f"(first: {', '.join(missing[:3])}); check image_root"
        )

    def loader(i: int) -> Image.Image:
        return _open(rows.image_cell(image_rows[i]), image_root, what)

    meta_cols = {
        c: [cols[c][r] for r in image_rows]
        for c in cols
        if c not in (image_column, caption_column) and _scalar_column(cols[c])
    }
    return PairedDataset(
        name=name,
        image_ids=list(first_row),
        captions=captions,
        caption_to_image=np.asarray(owner, dtype=np.int64),
        image_splits=image_splits,
        image_loader=loader,
        image_digests=digests,
        image_meta=meta_cols,
        metadata=metadata,
    )


def _scalar_column(values: list[Any]) -> bool:
    """Columns kept as per-image metadata: plain values, not blobs."""
    return all(v is None or isinstance(v, (str, int, float, bool)) for v in values[:100])


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no .parquet files under {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"parquet file not found: {path}")
    return [path]


def load_parquet(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    name: str | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    split_column: str | None = "split",
    image_id_column: str | None = None,
    default_split: str = "train",
    image_root: str | os.PathLike | None = None,
    digest: DigestMode = "stat",
    check_files: bool = True,
) -> PairedDataset:
    """Paired dataset from parquet files (a file, a list, or a folder searched recursively).

    Args:
        paths: parquet file(s) or a folder of them (e.g. a Hub download's ``data/``).
        image_column: image bytes, a ``{"bytes", "path"}`` struct (``datasets.Image``),
            or a file path (relative to ``image_root``, default: the first file's folder).
        caption_column: a string or a list of strings per row.
        split_column: per-row split; when absent, a file named ``train-...``,
            ``validation-...`` or ``test-...`` gives its rows that split, else
            ``default_split``. ``validation``/``valid``/``dev`` read as ``val``.
        image_id_column: rows with one id are one image; default: the first of
            ``img_id, image_id, imgid, cocoid, filename, file_name`` present,
            else every row is its own image.
        digest: ``"stat"`` (the parquet file's size and mtime and the row number; for
            path columns the image file's stat) or ``"content"`` (SHA-256 of the bytes).

    Only the non-image columns are read up front; image cells are read one row
    group at a time when the images are encoded.

    Example::

        ds = load_parquet("/data/flickr30k/data", caption_column="caption")
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(
            "reading parquet files needs pyarrow: pip install 'hypervldd[hf]' (or pip install "
            "pyarrow)"
        ) from e

    if isinstance(paths, (str, os.PathLike)):
        files = _parquet_files(Path(paths))
        default_name = Path(paths).stem if Path(paths).is_file() else Path(paths).name
    else:
        files = [Path(p) for p in paths]
        for p in files:
            if not p.is_file():
                raise FileNotFoundError(f"parquet file not found: {p}")
        default_name = files[0].stem if files else "parquet"
    if not files:
        raise ValueError("paths must name at least one parquet file")
    columns: dict[str, list[Any]] = {}
    where: list[tuple[int, int, int]] = []  # per row: file, row group, row in group
    stat: list[str] = []
    row_splits: list[str] = []
    handles = [pq.ParquetFile(f) for f in files]
    for fi, (f, pf) in enumerate(zip(files, handles, strict=True)):
        names = pf.schema_arrow.names
        if image_column not in names:
            raise ValueError(f"image_column {image_column!r} is not a column of {f} ({names})")
        table = pf.read(columns=[c for c in names if c != image_column])
        for c in table.column_names:
            columns.setdefault(c, [None] * len(stat)).extend(table.column(c).to_pylist())
        for c in columns:
            if c not in table.column_names:
                columns[c].extend([None] * table.num_rows)
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            where.extend((fi, g, j) for j in range(n))
        st = _file_stat(f)
        stat.extend([st] * table.num_rows)
        m = _SPLIT_IN_NAME.match(f.name)
        row_splits.extend([m.group(1) if m else default_split] * table.num_rows)
    group_cache: dict[tuple[int, int], list[Any]] = {}

    def image_cell(r: int) -> Any:
        fi, g, j = where[r]
        if (fi, g) not in group_cache:
            group_cache.clear()  # images are read in order: one row group at a time
            group_cache[(fi, g)] = (
                handles[fi].read_row_group(g, columns=[image_column]).column(0).to_pylist()
            )
        return group_cache[(fi, g)][j]

    paths = all(pa.types.is_string(pf.schema_arrow.field(image_column).type) for pf in handles)
    if paths:  # file paths are small: read them now, so they can group rows into images
        columns[image_column] = [
            v for pf in handles for v in pf.read(columns=[image_column]).column(0).to_pylist()
        ]
    else:
        columns[image_column] = [None] * len(stat)  # presence only: cells come from image_cell
    root = Path(image_root) if image_root is not None else files[0].parent
    return _build(
        name or default_name,
        _Rows(columns, (lambda r: columns[image_column][r]) if paths else image_cell, stat, paths),
        image_column=image_column,
        caption_column=caption_column,
        split_column=split_column,
        image_id_column=image_id_column,
        default_split=default_split,
        row_splits=row_splits,
        image_root=root,
        digest=digest,
        check_files=check_files,
        metadata={"source": "parquet", "files": [str(f) for f in files]},
    )


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            "reading a Hugging Face datasets folder needs the 'datasets' library: "
            "pip install 'hypervldd[hf]' (or pip install datasets); parquet files "
            "need only pyarrow"
        ) from e
    return datasets


def load_hf_dataset(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    image_column: str = "image",
    caption_column: str = "caption",
    split_column: str | None = "split",
    image_id_column: str | None = None,
    default_split: str = "train",
    image_root: str | os.PathLike | None = None,
    digest: DigestMode = "stat",
    check_files: bool = True,
) -> PairedDataset:
    """Paired dataset from a folder written by ``datasets``' ``save_to_disk``.

    Each row's split is its ``split_column`` value when it has one, else the name of
    the ``DatasetDict`` part it is in (``validation`` reads as ``val``), else
    ``default_split``.
    Column options are those of :func:`load_parquet`. A folder of parquet files is
    read by :func:`load_parquet`. Needs the optional ``datasets`` library.

    Example::

        ds = load_hf_dataset("/data/flickr30k_hf", caption_column="caption")
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Hugging Face dataset folder not found: {path}")
    if not (path / "dataset_dict.json").is_file() and not (path / "state.json").is_file():
        if any(path.rglob("*.parquet")):
            return load_parquet(
                path,
                name=name,
                image_column=image_column,
                caption_column=caption_column,
                split_column=split_column,
                image_id_column=image_id_column,
                default_split=default_split,
                image_root=image_root,
                digest=digest,
                check_files=check_files,
            )
        raise FileNotFoundError(
            f"{path} is not a datasets save_to_disk folder (no dataset_dict.json or state.json) "
            "and holds no .parquet files"
        )
    datasets = _require_datasets()
    loaded = datasets.load_from_disk(str(path))
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {None: loaded}
    columns: dict[str, list[Any]] = {}
    tables: list[tuple[Any, int]] = []  # per row: (dataset, row within it)
    stat: list[str] = []
    row_splits: list[str] = []
    paths_column = False
    path_values: list[Any] = []
    for split, part in parts.items():
        if image_column not in part.column_names:
            raise ValueError(
                f"image_column {image_column!r} is not a column of {path} "
                f"(columns: {part.column_names})"
            )
        feature = part.features[image_column]
        if isinstance(feature, datasets.Image):
            part = part.cast_column(image_column, datasets.Image(decode=False))
        other = [c for c in part.column_names if c != image_column]
        data = part.select_columns(other).to_dict() if other else {}
        n = part.num_rows
        for c, values in data.items():
            columns.setdefault(c, [None] * len(stat)).extend(values)
        for c in columns:
            if c not in data:
                columns[c].extend([None] * n)
        images = part.select_columns([image_column])
        if isinstance(part.features[image_column], datasets.Value):
            paths_column = True
            path_values.extend(images[image_column])
        tables.extend((images, j) for j in range(n))
        files = [Path(f["filename"]) for f in part.cache_files] or [path]
        st = ":".join(_file_stat(f) for f in files)
        stat.extend([st] * n)
        row_splits.extend([split if split is not None else default_split] * n)
    columns[image_column] = path_values if paths_column else [None] * len(stat)

    def image_cell(r: int) -> Any:
        if paths_column:
            return path_values[r]
        table, j = tables[r]
        return table[j][image_column]

    return _build(
        name or path.name,
        _Rows(columns, image_cell, stat, paths_column),
        image_column=image_column,
        caption_column=caption_column,
        split_column=split_column,
        image_id_column=image_id_column,
        default_split=default_split,
        row_splits=row_splits,
        image_root=Path(image_root) if image_root is not None else path,
        digest=digest,
        check_files=check_files,
        metadata={"source": "hf", "folder": str(path)},
    )
