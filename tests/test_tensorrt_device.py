"""Real TensorRT: build the engine of an exported bundle, score through the I/O tensor API, compare
with ONNX Runtime, and refuse a foreign engine. Runs only where TensorRT and an NVIDIA GPU work; it
has NOT run on this project's CI machines (no GPU; TensorRT's PyPI wheels are placeholders there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tensorrt


def _tensorrt_or_skip() -> None:
    try:
        import tensorrt as trt
    except ImportError:
        pytest.skip("TensorRT is not installed (import tensorrt failed): engine build and inference untested here")
    if not hasattr(trt, "Builder"):
        pytest.skip("the installed tensorrt package is a placeholder without the library")
    try:
        from edge_iqa.runtime.cuda_memory import device_properties

        device_properties()
    except Exception as exc:  # noqa: BLE001 - no driver, no device, no cuda-python: all mean "no GPU"
        pytest.skip(f"no usable NVIDIA GPU ({exc})")


def test_engine_builds_scores_and_refuses_foreign_engines(tmp_path: Path) -> None:
    _tensorrt_or_skip()
    from edge_iqa.errors import EngineMismatchError
    from edge_iqa.export.pipeline import export_bundle
    from edge_iqa.runtime import load
    from edge_iqa.runtime.tensorrt_engine import engine_paths
    from tests.helpers_images import CALIBRATION

    bundle = export_bundle("edge_hybrid_n", "desktop-gpu", "fp16", out=tmp_path / "b", random_weights=True,
                           accuracy_gate=False, quiet=True)
    images = sorted(CALIBRATION.glob("*"))[:8]
    scorer = load(bundle)  # builds the engine on first load
    engines = list((bundle / "engines").glob("*.engine"))
    assert len(engines) == 1
    scores = scorer.score(images)
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
    assert engine_paths(bundle, type("K", (), {"slug": "x"})())[0].parent == bundle / "engines"
