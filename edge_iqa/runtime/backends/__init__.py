"""Registry of runtime backends: manifest ``runtime`` name -> backend module, imported lazily.

Only the backend a bundle names is imported, so a camera image with just ``onnxruntime`` installed
never touches OpenVINO, TensorRT or torch. Adding a backend = one module with ``load(...)`` (see
:mod:`edge_iqa.runtime.backends.base`) + one entry in :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_iqa.errors import BackendUnavailableError, BundleError
from edge_iqa.runtime.backends.base import Backend
from edge_iqa.runtime.manifest import Manifest


@dataclass(frozen=True)
class BackendEntry:
    module: str  # our adapter module, imported only when a bundle needs it
    library: str  # the third-party package it wraps (checked first, for a clear error)
    install: str  # what to tell the user when the library is missing


BACKENDS: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry("edge_iqa.runtime.backends.onnxruntime", "onnxruntime",
                                'pip install "edge-iqa[onnx]" (or just onnxruntime)'),
    "openvino": BackendEntry("edge_iqa.runtime.backends.openvino", "openvino",
                             'pip install "edge-iqa[openvino]" (or just openvino)'),
    "tensorrt": BackendEntry("edge_iqa.runtime.tensorrt.backend", "tensorrt",
                             'pip install "edge-iqa[tensorrt]" on a machine with an NVIDIA GPU'),
    # The FP32 reference: checkpoints, model names and in-memory networks (never a shipped bundle).
    "torch": BackendEntry("edge_iqa.runtime.backends.torch", "torch", 'pip install "edge-iqa[torch]"'),
}


def known_backends() -> list[str]:
    return sorted(BACKENDS)


def check_runtime(runtime: object) -> BackendEntry:
    """The registry entry for a manifest's ``runtime``; BundleError for a runtime we do not know."""
    if not isinstance(runtime, str) or runtime not in BACKENDS:
        raise BundleError(f"the bundle was made for runtime {runtime!r}, which this edge-iqa does not know "
                          f"(known: {', '.join(known_backends())}); upgrade edge-iqa or export for one of these")
    return BACKENDS[runtime]


def import_backend(runtime: str) -> Any:
    """Import the backend library and our adapter module, or raise BackendUnavailableError."""
    entry = check_runtime(runtime)
    try:
        _import_library(entry.library)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"this bundle runs on {runtime}, but {entry.library} cannot be imported ({exc}); "
            f"install it: {entry.install}"
        ) from exc
    try:
        return importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name != entry.module:
            raise
        raise BackendUnavailableError(
            f"this edge-iqa installation has no {runtime} backend module ({entry.module}); upgrade edge-iqa"
        ) from exc


def _import_library(name: str) -> Any:
    if name == "openvino":  # without its model-conversion tools: a faster start (see openvino_import)
        from edge_iqa.runtime.backends.openvino_import import import_openvino

        return import_openvino()
    return importlib.import_module(name)


def load_backend(runtime: str, bundle_dir: Path, manifest: Manifest, *, threads: int | None,
                 options: Mapping[str, Any]) -> Backend:
    """Create the backend for a verified bundle."""
    module = import_backend(runtime)
    return module.load(bundle_dir, manifest, threads=threads, options=dict(options))


__all__ = ["BACKENDS", "Backend", "BackendEntry", "check_runtime", "import_backend", "known_backends",
           "load_backend"]
