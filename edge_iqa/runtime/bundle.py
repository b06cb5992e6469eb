"""The bundle: a folder whose ``manifest.json`` is the single source of truth.

Torch-free; used by the export side to write bundles atomically and by the runtime to read and
verify them before any inference.

Layout::

    bundle/
      manifest.json        schema-versioned; sha256 + size of every other file
      model.onnx | model.xml + model.bin | ...
      (README.md, build_recipe.json, ... for some targets)

Manifest keys the runtime relies on (others are informational)::

    schema_version   int, <= SCHEMA_VERSION
    edge_iqa_version str
    runtime          "onnxruntime" | "openvino" | "tensorrt"
    precision        "fp32" | "fp16" | "int8"
    model_file       file name of the network inside the bundle
    io               {"inputs": [{"name", "shape" (-1 = dynamic batch), "dtype"}], "output": name}:
                     float32 rows [batch, 3, H, W], or (schema 2) uint8 pixels [batch, H, W, 3]
    preprocess       PreprocessSpec.to_dict()
    output_transform {"scale", "offset"}: score = raw * scale + offset
    model            {"name", "family", "inputs", ...}
    target           the target profile as data
    files            {relative name: {"sha256", "size"}}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from edge_iqa.checksums import sha256_file
from edge_iqa.errors import BundleError
from edge_iqa.runtime.manifest import MANIFEST_NAME, REQUIRED_KEYS, SCHEMA_VERSION, Manifest

#: A manifest is a few KiB; a bigger file is not read into memory.
MAX_MANIFEST_BYTES = 16 << 20


def safe_member(bundle_dir: Path, name: str) -> Path:
    """Resolve a manifest file name inside the bundle; refuse absolute paths and ``..``."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or name.startswith("~"):
        raise BundleError(f"manifest names the file {name!r}, which is outside the bundle; the bundle "
                          "is corrupt or malicious: re-export it")
    path = (bundle_dir / pure).resolve()
    if bundle_dir.resolve() not in path.parents:
        raise BundleError(f"manifest file {name!r} resolves outside the bundle; re-export it")
    return path


def read_manifest(bundle_dir: str | os.PathLike) -> Manifest:
    """The one reader: parse ``manifest.json`` and validate it into a :class:`Manifest` (not the
    checksums: see :func:`verify_files`)."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle folder (does not exist); run `edge-iqa export` first")
    if not path.is_file():
        raise BundleError(f"{bundle_dir}: has no {MANIFEST_NAME}; it is not a complete bundle, re-export it")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: {path.stat().st_size:,} bytes, far larger than any manifest "
                          f"(limit {MAX_MANIFEST_BYTES:,}); the bundle is corrupt, re-export it")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc}); the bundle is corrupt, re-export it") from exc
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror or exc}); check the bundle's file "
                          "permissions for this user") from exc
    return Manifest.from_dict(document, str(path))


def write_manifest(folder: Path, document: Manifest | Mapping[str, Any]) -> Manifest:
    """The one writer: ``document`` (without ``files``) + the sha256 and size of every file in
    ``folder`` -> validated :class:`Manifest`, written to ``folder/manifest.json`` and returned."""
    document = document.to_dict() if isinstance(document, Manifest) else dict(document)
    document.setdefault("schema_version", SCHEMA_VERSION)
    document["files"] = file_records(folder)
    manifest = Manifest.from_dict(document, str(folder / MANIFEST_NAME))
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n")
    return manifest


def verify_files(bundle_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Every listed file exists inside the bundle with its recorded size and sha256."""
    bundle_dir = Path(bundle_dir)
    for name, record in manifest.files.items():
        path = safe_member(bundle_dir, name)
        if not path.is_file():
            raise BundleError(f"{bundle_dir}: {name} is missing; the bundle is incomplete, re-export it")
        if not isinstance(record, dict) or "sha256" not in record:
            raise BundleError(f"{bundle_dir}: no checksum for {name}; re-export the bundle")
        if "size" in record and path.stat().st_size != record["size"]:
            raise BundleError(f"{bundle_dir}: {name} has {path.stat().st_size} bytes, the manifest says "
                              f"{record['size']}: truncated or replaced; re-export the bundle")
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise BundleError(f"{bundle_dir}: {name} cannot be read ({exc.strerror or exc}); check the bundle's "
                              "file permissions for this user") from exc
        if digest != record["sha256"]:
            raise BundleError(f"{bundle_dir}: checksum mismatch for {name}: the file was modified or "
                              "corrupted; re-export the bundle")


def file_records(bundle_dir: Path) -> dict[str, dict[str, Any]]:
    """sha256 + size of every file in the bundle except the manifest."""
    records = {}
    for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        name = path.relative_to(bundle_dir).as_posix()
        if name != MANIFEST_NAME:
            records[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return records


@contextlib.contextmanager
def _staging_dir(out_dir: Path) -> Iterator[Path]:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out_dir)
    # The pid in the name lets a later export tell a dead process's leftovers from a live export's.
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its files alone
    return True


def clean_stale(out_dir: str | os.PathLike) -> list[Path]:
    """Tidy what an export killed by a signal left beside ``out_dir``; returns what it touched.

    A ``.NAME.partial-PID-*`` staging folder of a dead process is removed. A ``.NAME.old-PID``
    folder is the previous bundle moved aside for the swap: if the process died between the two
    renames (``out_dir`` is then missing), it is put back, intact; otherwise it is removed.
    Leftovers of live processes, and of unknown owners, are left alone.
    """
    out_dir = Path(out_dir)
    if os.name != "posix" or not out_dir.parent.is_dir():
        return []
    touched = []
    for leftover in sorted(out_dir.parent.iterdir()):
        kind, _, rest = leftover.name.removeprefix(f".{out_dir.name}.").partition("-")
        pid = rest.split("-", 1)[0]
        if not leftover.name.startswith(f".{out_dir.name}.") or kind not in ("partial", "old") or not pid.isdigit() \
                or _pid_alive(int(pid)) or not leftover.is_dir() or leftover.is_symlink():
            continue
        if kind == "old" and not out_dir.exists() and (leftover / MANIFEST_NAME).is_file():
            os.replace(leftover, out_dir)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
        touched.append(leftover)
    return touched


def write_bundle(out_dir: str | os.PathLike, populate: Callable[[Path], Manifest | Mapping[str, Any]]) -> Path:
    """Write a bundle atomically.

    ``populate(staging_dir)`` writes the bundle's files into an empty staging folder beside
    ``out_dir`` and returns the manifest without ``files``. The checksums are added, the manifest
    is written and re-verified, and only then is the staging folder renamed onto ``out_dir`` (an
    existing bundle there is replaced; it stays intact if anything fails before the rename). A
    crash, a signal or an exception leaves at most a hidden ``.NAME.partial-PID-*`` folder, never a
    half-written bundle at ``out_dir``; the next ``write_bundle`` to ``out_dir`` removes it (see
    :func:`clean_stale`).
    """
    out_dir = Path(out_dir)
    try:
        with _staging_dir(out_dir) as staging:
            write_manifest(staging, populate(staging))
            verify_files(staging, read_manifest(staging))
            # mkdtemp makes the folder private (0700); a bundle is read by other users (a service).
            os.chmod(staging, 0o755)
            _swap_into_place(staging, out_dir)
    except OSError as exc:
        raise BundleError(f"cannot write the bundle to {out_dir}: {exc.strerror or exc}; check that the "
                          "folder is writable and the disk has space") from exc
    return out_dir


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    if not (out_dir / MANIFEST_NAME).is_file() and any(out_dir.iterdir()):
        raise BundleError(f"{out_dir} exists and is not a bundle; choose another --out or empty it")
    # Two renames: the old bundle stays complete until the new one is in place.
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except OSError:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["MANIFEST_NAME", "MAX_MANIFEST_BYTES", "REQUIRED_KEYS", "SCHEMA_VERSION", "Manifest", "clean_stale",
           "file_records", "read_manifest", "safe_member", "sha256_file", "verify_files", "write_bundle",
           "write_manifest"]
