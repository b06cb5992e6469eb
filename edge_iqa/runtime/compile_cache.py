"""OpenVINO's compiled-model cache on disk: a folder per network, the least recently used evicted.

OpenVINO writes one blob per (network, device, compile properties) into the folder it is given and
never removes any. One folder shared by every bundle therefore only grows: each re-export, each
candidate network of an export's give-back search and each test bundle leaves its blobs behind (the
machine where this was found had 32 GB in 793 blobs after a day of exports and test runs). So the
cache root holds one sub-folder per network, named by the checksums of the network's files (the same
network in two bundle folders shares one), touched at every load; after compiling, the least recently
used sub-folders are removed until the root is within its size limit. Loose blobs in the root (the
layout before this one) are evicted the same way.

The native library (``runtime/native/src/compile_cache.cpp``) keeps the same layout and names, so
both runtimes evict from the same folders.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from edge_iqa.checksums import sha256_hex
from edge_iqa.runtime.manifest import Manifest

LIMIT_ENV = "EDGE_IQA_CACHE_MAX_MB"
DEFAULT_LIMIT_MB = 1024  # about 100 compiled networks of the default model's size (two compiles each)
# A folder touched this recently may belong to another process that is compiling into it right now.
RECENT_S = 60.0


def network_key(manifest: Manifest, bundle_dir: Path, files: Iterable[str]) -> str:
    """The sub-folder name of the network made of ``files`` (the model file, then its weights file):
    the first 24 hex digits of the sha256 of their recorded sha256 digests, concatenated. A file the
    manifest records no digest for (a network loaded straight from its file) stands in by its path,
    size and modification time instead: hashing a large file at every load would cost its start-up."""
    parts = []
    for name in files:
        record = manifest.files.get(name)
        digest = record.get("sha256") if isinstance(record, Mapping) else None
        if isinstance(digest, str):
            parts.append(digest)
        else:
            path = (bundle_dir / name).resolve()
            stat = path.stat()
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    return sha256_hex(parts, length=24)


def limit_bytes() -> int:
    """The cache root's size limit from ``$EDGE_IQA_CACHE_MAX_MB`` (default 1024 MB)."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if not value:
        return DEFAULT_LIMIT_MB << 20
    if not value.isdigit():
        raise ValueError(f"{LIMIT_ENV}={value!r}: give the compiled-model cache's size limit as a whole number "
                          "of megabytes (e.g. 1024), or unset it for the default")
    return int(value) << 20


def network_folder(root: str | os.PathLike[str], key: str) -> Path | None:
    """``root/key``, created and marked as just used; None when it cannot be written (the runtime
    then compiles without a cache)."""
    folder = Path(root) / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.utime(folder)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


def evict(root: str | os.PathLike[str], keep: str | os.PathLike[str], limit: int, *,
          now: float | None = None) -> list[Path]:
    """Remove the least recently used entries of ``root`` (network folders and loose blobs, by
    modification time) until its size is at most ``limit`` bytes; ``keep`` and entries used in the
    last :data:`RECENT_S` seconds stay. Returns what was removed. Races with other processes (an
    entry gone, a file appearing) are expected and ignored: the cache is an optimisation."""
    now = time.time() if now is None else now
    keep = Path(keep)
    entries: list[tuple[float, Path, int]] = []
    try:
        for entry in os.scandir(root):
            try:
                entries.append((entry.stat().st_mtime, Path(entry.path), _size(entry)))
            except OSError:
                continue
    except OSError:
        return []
    total = sum(size for _, _, size in entries)
    removed = []
    for mtime, path, size in sorted(entries, key=lambda e: (e[0], e[1].name)):
        if total <= limit:
            break
        if path == keep or now - mtime < RECENT_S:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    return removed


def _size(entry: os.DirEntry[str]) -> int:
    if not entry.is_dir(follow_symlinks=False):
        return entry.stat(follow_symlinks=False).st_size
    total = 0
    for base, _, names in os.walk(entry.path):
        for name in names:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total
