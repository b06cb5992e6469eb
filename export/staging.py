"""The export scores what ships: an artifact is measured by :func:`edge_iqa.runtime.load` of a
bundle folder, the code path and backend settings a user gets, never by a private runner.

:func:`load_staged` writes the manifest (without the figures still to be measured) into the
staging folder and loads it; for a runtime that cannot run on the exporting machine (TensorRT) the
backend's ``proxy_bundle`` writes a stand-in ONNX Runtime bundle of the same graph first. A test
re-scoring a finished bundle calls the same function, so it gets exactly the recorded figures.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_iqa.export.backends import export_backend
from edge_iqa.runtime.bundle import read_manifest, write_manifest
from edge_iqa.runtime.scorer import Scorer, load


def load_staged(folder: Path, document: Mapping[str, Any] | None = None, proxy_dir: Path | None = None,
                threads: int | None = None) -> Scorer:
    """``runtime.load`` of ``folder`` after writing ``document`` as its manifest (None: the folder
    is a finished bundle). A bundle whose runtime is scored by proxy is loaded through
    ``proxy_dir`` (required then), where the backend writes the stand-in bundle. ``threads``: as
    for ``runtime.load`` (None: the bundle's profile)."""
    manifest = write_manifest(folder, document) if document is not None else read_manifest(folder)
    entry = export_backend(manifest.runtime)
    if entry.scored_by == "runtime":
        return load(folder, threads=threads)
    if proxy_dir is None:
        raise ValueError(f"a {manifest.runtime} bundle is scored through a proxy bundle: pass proxy_dir")
    shutil.rmtree(proxy_dir, ignore_errors=True)  # only this stand-in's files get checksummed
    proxy_dir.mkdir(parents=True)
    write_manifest(proxy_dir, entry.load().proxy_document(folder, manifest, proxy_dir))
    return load(proxy_dir, threads=threads)
