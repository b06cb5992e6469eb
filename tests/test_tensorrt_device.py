"""Real TensorRT: build the engine of an exported bundle, score through the I/O tensor API, compare
with ONNX Runtime, and refuse a foreign engine. Runs only where TensorRT and an NVIDIA GPU work; it
has NOT run on this project's machines (no GPU; TensorRT's PyPI library wheels are placeholders).

The bundle is exported for the shipped target made for the installed TensorRT (jetson on 10.3-10.11,
desktop-gpu-10 on 10.12-10.x, desktop-gpu on 11.x). Only "TensorRT absent" and "no NVIDIA device"
skip; a cuda-python that does not match the driver fails, with the pin to install.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorrt


def _target_for_installed_tensorrt() -> str:
    try:
        import tensorrt as trt
    except ImportError:
        pytest.skip("TensorRT is not installed (import tensorrt failed): engine build and inference untested here")
    if not hasattr(trt, "Builder"):
        pytest.skip("the installed tensorrt package is a placeholder without the library")
    from edge_iqa.runtime.tensorrt.cuda_memory import CudaError, device_properties

    try:
        device_properties()
    except CudaError as exc:
        if exc.name in ("cudaErrorNoDevice", "cudaErrorNotSupported"):
            pytest.skip(f"no usable NVIDIA GPU ({exc})")
        raise  # e.g. cudaErrorInsufficientDriver: the cuda-python pin is wrong; that is a failure
    from edge_iqa.runtime.tensorrt.versions import target_for

    return target_for(trt.__version__)


def test_engine_builds_scores_and_refuses_foreign_engines(tmp_path: Path) -> None:
    target = _target_for_installed_tensorrt()
    from edge_iqa.errors import EngineMismatchError
    from edge_iqa.export.pipeline import export_bundle
    from edge_iqa.runtime import load
    from tests.helpers_images import CALIBRATION

    bundle = export_bundle("edge_hybrid_n", target, "fp16", out=tmp_path / "b", random_weights=True,
                           accuracy_gate=False, quiet=True)
    images = sorted(CALIBRATION.glob("*"))[:8]
    scorer = load(bundle)  # builds the engine on first load
    engines = list((bundle / "engines").glob("*.engine"))
    assert len(engines) == 1 and list((bundle / "engines").glob("*.timing.cache"))
    scores = scorer.score(images)
    scorer.close()
    manifest = json.loads((bundle / "manifest.json").read_text())
    onnx_bundle = export_bundle("edge_hybrid_n", "onnxruntime", "fp32", out=tmp_path / "ort", random_weights=True,
                                quiet=True)
    reference = load(onnx_bundle).score(images)
    assert np.corrcoef(scores, reference)[0, 1] > 0.99 and manifest["precision"] == "fp16"
    # An engine whose metadata names another GPU is refused with a rebuild hint.
    meta = engines[0].with_suffix(".json")
    record = json.loads(meta.read_text())
    record["gpu_name"] = "Some Other GPU"
    meta.write_text(json.dumps(record))
    with pytest.raises(EngineMismatchError, match="build-engine"):
        load(bundle)
    shutil.rmtree(bundle / "engines")
