"""The runtime wrapper never imports torch (nor timm/onnx/scipy), checked in a clean interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers_runtime import TinyNet, any_photos, build_bundle

FORBIDDEN = ("torch", "torchvision", "timm", "onnx", "onnxscript", "scipy", "safetensors", "nncf")
REPO = Path(__file__).resolve().parents[1]


def run_clean(code: str) -> str:
    """Run ``code`` in a fresh interpreter; the last line it prints is the forbidden modules it loaded."""
    check = f"import sys; print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\n" + check], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["edge_iqa", "edge_iqa.runtime", "edge_iqa.data", "edge_iqa.runtime.bundle",
                                    "edge_iqa.errors"])
def test_import_is_torch_free(module):
    assert run_clean(f"import {module}") == "[]"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_loading_and_scoring_is_torch_free(tmp_path, runtime):
    bundle = build_bundle(tmp_path / runtime, TinyNet.random(seed=4), runtime=runtime)
    photo = any_photos(1)[0]
    out = run_clean(f"""
        import sys
        import edge_iqa.runtime
        scorer = edge_iqa.runtime.load({str(bundle)!r})
        score = scorer.score_one({str(photo)!r})
        assert score == score, "NaN score"
        print(score)
        other = "openvino" if {runtime!r} == "onnxruntime" else "onnxruntime"
        assert other not in sys.modules, f"{{other}} imported for a {runtime} bundle"
    """)
    assert out == "[]"


def test_openvino_scoring_skips_the_conversion_tools_and_convert_model_still_works(tmp_path):
    """The OpenVINO backend imports openvino without openvino.tools.ovc (telemetry, urllib, http:
    start-up time); ov.convert_model and the tools still work in the same process afterwards."""
    bundle = build_bundle(tmp_path / "ov", TinyNet.random(seed=4), runtime="openvino")
    onnx_file = tmp_path / "tiny.onnx"
    import onnx

    onnx.save(TinyNet.random(seed=5).onnx_model("batch", (32, 32)), onnx_file)
    out = run_clean(f"""
        import sys
        import edge_iqa.runtime
        scorer = edge_iqa.runtime.load({str(bundle)!r})
        score = scorer.score_one({str(any_photos(1)[0])!r})
        assert score == score
        loaded = sorted(m for m in ("openvino.tools.ovc", "openvino_telemetry", "urllib.request", "http.client")
                        if m in sys.modules)
        assert loaded == [], loaded
        import openvino as ov
        model = ov.convert_model({str(onnx_file)!r})
        assert model.inputs[0].get_partial_shape()[1] == 3
        from openvino.tools.ovc import convert_model
        assert convert_model({str(onnx_file)!r}).outputs
    """)
    assert out == "[]"
