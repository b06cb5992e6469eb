"""The export backends: one :class:`ExportBackend` protocol, one registry with explicit capabilities.

Each runtime has one quantizer module (``quantize_ort``, ``quantize_openvino``,
``quantize_tensorrt``) that builds the artifact into a staging folder. What the pipeline may ask
of it is written here, not probed with ``hasattr``:

- ``scored_by``: ``"runtime"`` when :func:`edge_iqa.runtime.load` can load the staged bundle on
  the exporting machine (ONNX Runtime, OpenVINO: the gate runs what ships), ``"proxy"`` when it
  cannot (TensorRT needs the device) and the module's ``proxy_bundle`` writes a stand-in bundle
  (the same graph in ONNX Runtime on the CPU) that ``runtime.load`` then scores;
- ``accuracy_control``: ``"nncf"`` (the module's ``quantize_with_budget``) or ``"search"`` (the
  block search of :mod:`edge_iqa.export.accuracy_control` over ``candidate_builder``);
- ``fine_tunes``: what the quantization-aware fine-tuning (``[quantization] qat_steps``,
  :mod:`edge_iqa.export.qat`) starts from: ``"pytorch"`` (NNCF quantizes the PyTorch model; OpenVINO),
  ``"graph"`` (the post-training INT8 Q/DQ graph runs in PyTorch; ONNX Runtime) or None (not offered:
  a TensorRT engine is built on the device). Both hand the module's ``save_prequantized`` a network
  that its ``build`` and ``candidate_builder`` take as ``prequantized``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from edge_iqa.errors import TargetError
from edge_iqa.export.targets import TargetProfile

FeedFactory = Callable[[], Iterator[dict[str, Any]]]
#: The manifest record kept beside a fine-tuned network by a module's ``save_prequantized``, for its ``build``.
PREQUANTIZED_RECORD = "quantization.json"


def write_prequantized_record(folder: Path, record: dict[str, Any]) -> None:
    (folder / PREQUANTIZED_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")


def read_prequantized_record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / PREQUANTIZED_RECORD).read_text(encoding="utf-8"))


class ExportBackend(Protocol):
    """What every quantizer module provides."""

    MODEL_FILE: str

    def build(self, onnx_fp32: Path, out_dir: Path, precision: str, target: TargetProfile, feeds: FeedFactory,
              work_dir: Path) -> dict[str, Any]:
        """Write the artifact into ``out_dir``; returns the manifest fragments (``model_file``,
        ``quantization``, ``integer_kernels``, ``runtime_options``, optional ``extra_manifest``)."""
        ...

    #: How the search's candidates are made (recorded in the manifest's ``accuracy_control``).
    SEARCH_PROXY: str

    def candidate_builder(self, onnx_fp32: Path, full_int8: Path, target: TargetProfile, feeds: FeedFactory,
                          work_dir: Path) -> Callable[[list[str], Path], Path]:
        """``(ONNX nodes kept in floating point, folder) -> artifact path``: the mixed-precision
        search's candidates, each scored by ``runtime.load`` like the staged bundle
        (:func:`edge_iqa.export.staging.load_artifact`), never by a private runner."""
        ...


@dataclass(frozen=True)
class ExportBackendEntry:
    runtime: str
    module: str
    scored_by: Literal["runtime", "proxy"]
    accuracy_control: Literal["nncf", "search"]
    fine_tunes: Literal["pytorch", "graph"] | None

    def load(self) -> Any:
        """The quantizer module (imported only for the runtime being exported)."""
        return importlib.import_module(self.module)


REGISTRY: dict[str, ExportBackendEntry] = {
    "onnxruntime": ExportBackendEntry("onnxruntime", "edge_iqa.export.quantize_ort", "runtime", "search", "graph"),
    "openvino": ExportBackendEntry("openvino", "edge_iqa.export.quantize_openvino", "runtime", "nncf", "pytorch"),
    "tensorrt": ExportBackendEntry("tensorrt", "edge_iqa.export.quantize_tensorrt", "proxy", "search", None),
}


def export_backend(runtime: str) -> ExportBackendEntry:
    if runtime not in REGISTRY:
        raise TargetError(f"runtime {runtime!r} has no exporter in this edge-iqa yet; "
                          f"available: {', '.join(REGISTRY)}")
    return REGISTRY[runtime]
