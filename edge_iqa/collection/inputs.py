"""INPUT arguments -> the stream of image paths they name, each once, absolute.

An INPUT is one of (checked in this order):

- an existing folder: every file under it (recursive, sorted) whose extension is an image's;
- an existing list file: ``.txt`` / ``.lst`` / ``.list`` (one path per line; blank lines and
  lines starting with ``#`` ignored), ``.csv`` / ``.tsv`` (the ``path`` column when the header has
  one, else the first column), ``.parquet`` / ``.pq`` (its ``path`` column);
- any other existing file: an image (whatever its extension: the decoder decides);
- a glob (``*``, ``?``, ``[``; ``**`` recurses): each match as if it were given by itself.

Paths inside list files are taken as written, relative ones against the current folder (as
``xargs`` would), and are not checked here: a missing or broken file becomes an error row of the
table, never a stopped job. An INPUT argument that names nothing is a usage error, raised before
any work. Every path is made absolute (normalised, symlinks kept), so that ``a.jpg`` and
``./a.jpg`` are one image and Ray workers on other machines get an unambiguous path.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from edge_iqa.collection.fingerprints import FingerprintSet
from edge_iqa.errors import CollectionError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif",
                              ".ppm", ".pgm", ".pnm"})
TEXT_LISTS = frozenset({".txt", ".lst", ".list"})
CSV_LISTS = frozenset({".csv", ".tsv"})
PARQUET_LISTS = frozenset({".parquet", ".pq"})
_GLOB_CHARS = frozenset("*?[")


def check_inputs(inputs: Iterable[str]) -> None:
    """Refuse, before any work, an INPUT that is neither an existing path nor a glob with a match."""
    for item in inputs:
        if os.path.exists(item):
            continue
        if _GLOB_CHARS & set(item):
            if next(glob.iglob(item, recursive=True), None) is None:
                raise CollectionError(f"INPUT {item!r}: the glob matches no file; check the pattern (quote it so "
                                      "that the shell does not expand it)")
            continue
        raise CollectionError(f"INPUT {item!r}: no such file, folder or glob; pass image files, folders, globs or "
                              "a .txt/.csv/.parquet list of paths")


def expand_inputs(inputs: Iterable[str]) -> Iterator[str]:
    """Every image path the INPUTs name, in order, each once (absolute and normalised)."""
    seen = FingerprintSet()
    for item in inputs:
        for path in _expand_one(item):
            absolute = os.path.abspath(path)
            if seen.add(absolute):
                yield absolute


def _expand_one(item: str) -> Iterator[str]:
    try:
        yield from _expand_unchecked(item)
    except UnicodeDecodeError as exc:
        raise CollectionError(f"{item}: not a UTF-8 text list ({exc.reason} at byte {exc.start}); save the list "
                              "as UTF-8, one path per line") from exc
    except csv.Error as exc:
        raise CollectionError(f"{item}: not a readable CSV list ({exc}); pass one path per row") from exc


def _expand_unchecked(item: str) -> Iterator[str]:
    if os.path.isdir(item):
        yield from _walk(item)
    elif os.path.isfile(item):
        suffix = Path(item).suffix.lower()
        if suffix in TEXT_LISTS:
            yield from _text_list(item)
        elif suffix in CSV_LISTS:
            yield from _csv_list(item, "\t" if suffix == ".tsv" else ",")
        elif suffix in PARQUET_LISTS:
            yield from _parquet_list(item)
        else:
            yield item
    elif _GLOB_CHARS & set(item):
        for match in sorted(glob.iglob(item, recursive=True)):
            yield from _expand_one(match) if os.path.isdir(match) else [match]


def _walk(folder: str) -> Iterator[str]:
    """Image files under ``folder``, depth first, sorted by name at each level (a stable order)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        raise CollectionError(f"folder {folder}: cannot be listed ({exc.strerror or exc}); check its "
                              "permissions") from exc
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS and entry.is_file():
            yield entry.path


def _text_list(path: str) -> Iterator[str]:
    with _open_list(path) as fh:
        for line in fh:
            entry = line.rstrip("\r\n")
            if entry.strip() and not entry.lstrip().startswith("#"):
                yield entry


def _csv_list(path: str, delimiter: str) -> Iterator[str]:
    with _open_list(path) as fh:
        rows = csv.reader(fh, delimiter=delimiter)
        header = next(rows, None)
        if header is None:
            return
        names = [name.strip().lower() for name in header]
        if "path" in names:
            column = names.index("path")
        else:  # no header naming the column: the first column, and the first row is a path too
            column = 0
            if header and header[0].strip():
                yield header[0].strip()
        for row in rows:
            if len(row) > column and row[column].strip():
                yield row[column].strip()


def _parquet_list(path: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise CollectionError(f"{path}: not a readable Parquet file ({exc}); pass a Parquet list with a `path` "
                              "column") from exc
    if "path" not in table.schema_arrow.names:
        raise CollectionError(f"{path}: has no `path` column (columns: {', '.join(table.schema_arrow.names)}); "
                              "a Parquet list of images needs one")
    for batch in table.iter_batches(columns=["path"], batch_size=8192):
        yield from (entry for entry in batch.column(0).to_pylist() if entry)


def _open_list(path: str):  # noqa: ANN202 - a text file object
    try:
        return open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise CollectionError(f"{path}: cannot be read ({exc.strerror or exc}); check the list file") from exc
