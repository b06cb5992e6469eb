"""The export scores what ships: an artifact is measured by :func:`edge_iqa.runtime.load` of a
bundle folder, the code path and backend settings a user gets, never by a private runner.

:func:`load_staged` writes the manifest (without the figures still to be measured) into the
staging folder and loads it; for a runtime that cannot run on the exporting machine (TensorRT) the
backend's ``proxy_bundle`` writes a stand-in ONNX Runtime bundle of the same graph first. A test
re-scoring a finished bundle calls the same function, so it gets exactly the recorded figures.
:func:`load_artifact` does the same for one artifact file beside others (the candidates of the
mixed-precision search, a study's variants): a manifest copied from a template, its model file
replaced, written into the artifact's folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import edge_iqa
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.export.backends import export_backend
from edge_iqa.runtime.bundle import read_manifest, write_manifest
from edge_iqa.runtime.manifest import Manifest
from edge_iqa.runtime.scorer import Scorer, load


def load_staged(folder: Path, document: Mapping[str, Any] | None = None, proxy_dir: Path | None = None, *,
                threads: int | None = None) -> Scorer:
    """``runtime.load`` of ``folder`` after writing ``document`` as its manifest (None: the folder
    is a finished bundle). A bundle whose runtime is scored by proxy is loaded through
    ``proxy_dir`` (required then), where the backend writes the stand-in bundle. ``threads``: as
    ``runtime.load`` (None: the bundle's target profile)."""
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


def load_artifact(model_path: Path, template: Manifest | Mapping[str, Any]) -> Scorer:
    """``runtime.load`` of the artifact ``model_path`` (with the other files of its folder, e.g. an
    OpenVINO ``.bin``): ``template`` (a staged manifest, or a document from
    :func:`artifact_document`) with ``model_file`` set to it becomes the folder's manifest. A
    proxy-scored runtime's stand-in goes into the sibling folder ``<folder>-proxy``."""
    document = template.to_dict() if isinstance(template, Manifest) else dict(template)
    document.pop("files", None)
    document["model_file"] = model_path.name
    folder = model_path.parent
    return load_staged(folder, document, folder.with_name(f"{folder.name}-proxy"))


def artifact_document(runtime: str, precision: str, model_file: str, io: Mapping[str, Any], spec: PreprocessSpec,
                      *, model_name: str, output_transform: Mapping[str, float] | None = None,
                      runtime_options: Mapping[str, Any] | None = None,
                      target: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The least manifest document ``runtime.load`` needs for an artifact that is not (yet) a full
    bundle: the FP32 ONNX graph before any backend build, a study's variant, a test's artifact."""
    transform = output_transform or {"scale": 1.0, "offset": 0.0}
    return {"edge_iqa_version": edge_iqa.__version__, "runtime": runtime, "precision": precision,
            "model_file": model_file, "io": dict(io), "preprocess": spec.to_dict(),
            "output_transform": {"scale": float(transform["scale"]), "offset": float(transform["offset"])},
            "model": {"name": model_name}, "target": dict(target or {}),
            "runtime_options": dict(runtime_options or {})}
