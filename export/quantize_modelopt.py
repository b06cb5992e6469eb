"""INT8 for TensorRT with NVIDIA Model Optimizer's ONNX PTQ: explicit, symmetric int8 Q/DQ.

Calibration runs through ONNX Runtime on the CPU (``calibration_eps=["cpu"]``), so a Jetson
bundle is made on a machine without a GPU. The rest of the graph is stored in
``high_precision_dtype``: FP32 for weakly typed TensorRT (10.3-10.11, the build's ``--fp16`` flag
runs the unquantized layers in FP16 on the device), FP16 for strongly typed TensorRT (10.12+, 11.x).
The Q/DQ graph's drift is measured on the CPU with ONNX Runtime as the best available proxy and
recorded as such in the manifest.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_iqa.errors import BackendUnavailableError, ExportError

# modelopt names: 'max' is min-max for symmetric int8; 'entropy' is KL. Percentile is not offered.
METHODS = {"minmax": "max", "entropy": "entropy"}


@contextlib.contextmanager
def _ort_quantization_restored() -> Iterator[None]:
    """modelopt monkey-patches ONNX Runtime's calibrators and quantizers for the whole process
    (``ort_patching.patch_ort_modules``); a later ``onnxruntime.quantization.quantize_static`` in the
    same process (an onnxruntime INT8 export after a jetson one, as the bench does) then fails.
    Put ORT's own attributes back afterwards."""
    from onnxruntime.quantization import base_quantizer, calibrate, qdq_quantizer

    classes = [calibrate.CalibraterBase, calibrate.MinMaxCalibrater, calibrate.HistogramCalibrater,
               calibrate.HistogramCollector, qdq_quantizer.QDQQuantizer, base_quantizer.BaseQuantizer]
    saved = {cls: dict(vars(cls)) for cls in classes}
    create_calibrator = calibrate.create_calibrator
    try:
        yield
    finally:
        calibrate.create_calibrator = create_calibrator
        for cls, attributes in saved.items():
            for name in [n for n in vars(cls) if n not in attributes]:
                delattr(cls, name)
            for name, value in attributes.items():
                if vars(cls).get(name) is not value and name not in ("__dict__", "__weakref__", "__doc__"):
                    setattr(cls, name, value)


def quantize_int8_qdq(
    fp32_onnx: Path,
    out_onnx: Path,
    calibration: dict[str, np.ndarray],
    *,
    method: str = "entropy",
    nodes_to_exclude: list[str] | None = None,
    high_precision_dtype: str = "fp32",
) -> dict[str, Any]:
    """Insert calibrated int8 Q/DQ into ``fp32_onnx``; write ``out_onnx``; return the record.
    ``high_precision_dtype``: what the unquantized layers are stored as: "fp32" for weakly typed
    TensorRT (the ``FP16`` flag lowers them on the device), "fp16" for strongly typed TensorRT
    (10.12+, 11.x), where the graph's types are the engine's."""
    if method not in METHODS:
        raise ExportError(f"TensorRT INT8 through modelopt calibrates with {sorted(METHODS)}, not {method!r}")
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        raise BackendUnavailableError(
            f"NVIDIA Model Optimizer is not importable ({exc}); install the TensorRT export extra: "
            'pip install "edge-iqa[tensorrt-export]"'
        ) from exc
    logging.getLogger("modelopt").setLevel(logging.WARNING)
    # modelopt prints a progress bar per calibration pass: keep the terminal for our own progress.
    with (_ort_quantization_restored(), contextlib.redirect_stdout(io.StringIO()),
          contextlib.redirect_stderr(io.StringIO())):
        quantize(
            str(fp32_onnx),
            quantize_mode="int8",
            calibration_data=calibration,
            calibration_method=METHODS[method],
            calibration_eps=["cpu"],
            high_precision_dtype=high_precision_dtype,
            nodes_to_exclude=nodes_to_exclude or None,
            output_path=str(out_onnx),
            log_level="WARNING",
        )
    if not out_onnx.is_file():
        raise ExportError("modelopt did not write a quantized model; see its log above")
    graph = onnx.load(str(out_onnx), load_external_data=False)
    pairs = sum(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    if pairs == 0:
        raise ExportError("modelopt inserted no Q/DQ nodes: nothing would run in INT8 on TensorRT")
    return {
        "tool": "nvidia-modelopt (modelopt.onnx.quantization)",
        "format": "explicit Q/DQ, int8 symmetric (zero point 0)",
        "high_precision_dtype": high_precision_dtype,
        "method": method,
        "calibration_eps": ["cpu"],
        "quantize_linear_nodes": pairs,
        "excluded_nodes": list(nodes_to_exclude or []),
        "samples": int(next(iter(calibration.values())).shape[0]),
    }
