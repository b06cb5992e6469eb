"""export_bundle: a complete, verified bundle; a failing parity gate and a crash mid-write leave
nothing behind. The ONNX trace is shared with the other export tests (export_onnx is swapped for
a copy of the cached graph); one full run without that shortcut is marked slow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge_iqa.errors import ExportError, ParityError
from edge_iqa.export import pipeline, quantize_ort
from edge_iqa.export.targets import load_target
from edge_iqa.runtime.bundle import REQUIRED_KEYS, read_manifest, verify_files
from tests.export_helpers import INPUT_SIZE, MODEL, dev_model, exported, fine_tuning_steps

TINY = """
[quantization]
calibration_samples = 4
[parity]
images = 4
accuracy_images = 4
"""


def profile(tmp_path: Path, parent: str, extra: str = ""):
    path = tmp_path / f"tiny_{parent}.toml"
    # The fine-tuning off: what these tests read does not depend on it. The fine-tuned bundles' whole path runs
    # in test_export_gate_rescore.py (each runtime), tests/test_qat*.py and the CLI test below.
    tiny = TINY.replace("[quantization]\n", "[quantization]\n" + fine_tuning_steps(parent, 0))
    path.write_text(f'inherits = "{parent}"\nname = "tiny-{parent}"\nattention_form = "onnx_attention"\n'
                    f"input_size = [{INPUT_SIZE[0]}, {INPUT_SIZE[1]}]\n{extra}{tiny}")
    return load_target(path)


def use_cached_graph(monkeypatch: pytest.MonkeyPatch, perturb: bool = False) -> None:
    graph = exported("onnx_attention")

    def fake_export(model, path: Path, **kwargs):
        shutil.copyfile(graph.path, path)
        if perturb:  # shift the regression head's last bias: every score moves by 0.5
            proto = onnx.load(str(path))
            last_gemm = [n for n in proto.graph.node if n.op_type == "Gemm"][-1]
            for init in proto.graph.initializer:
                if init.name == last_gemm.input[2]:
                    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
            onnx.save(proto, str(path))
        return graph.__class__(**{**graph.__dict__, "path": path})

    monkeypatch.setattr(pipeline, "export_onnx", fake_export)


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}"))


def test_bundle_manifest_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cached_graph(monkeypatch)
    out = pipeline.export_bundle(MODEL, profile(tmp_path, "onnxruntime"), "fp32", out=tmp_path / "bundle",
                                 model=dev_model(), quiet=True)
    manifest = read_manifest(out)
    verify_files(out, manifest)
    assert set(REQUIRED_KEYS) <= set(manifest)
    assert (manifest["runtime"], manifest["precision"], manifest["model_file"]) == ("onnxruntime", "fp32", "model.onnx")
    assert manifest["io"]["inputs"][0] == {"name": "image", "shape": [-1, 3, *INPUT_SIZE], "dtype": "float32"}
    assert manifest["preprocess"]["input_size"] == list(INPUT_SIZE)
    assert manifest["model"]["name"] == MODEL and manifest["target"]["name"] == "tiny-onnxruntime"
    gate = manifest["parity"]["onnx_fp32_vs_torch"]
    assert gate["passed"] and gate["max_abs_diff"] < 1e-4 and gate["images"] == 4
    assert manifest["accuracy"]["parity"]["passed"]
    assert manifest["graph"]["fused_attention_ops"] == manifest["graph"]["attention_calls"] == 4
    assert manifest["tools"]["onnxruntime"] and manifest["tools"]["torch"] and manifest["created"]
    assert len(manifest["calibration"]["calibration_files"]) == 4


def test_failing_parity_gate_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_cached_graph(monkeypatch, perturb=True)
    out = tmp_path / "bundle"
    with pytest.raises(ParityError, match="does not match PyTorch"):
        pipeline.export_bundle(MODEL, profile(tmp_path, "onnxruntime"), "fp32", out=out, model=dev_model(),
                               quiet=True)
    assert not out.exists() and not leftovers(out)


def test_crash_mid_populate_leaves_no_bundle_and_next_export_works(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    use_cached_graph(monkeypatch)
    target, out = profile(tmp_path, "onnxruntime"), tmp_path / "bundle"
    real_build = quantize_ort.build

    def crashing_build(onnx_fp32, out_dir, *args, **kwargs):
        real_build(onnx_fp32, out_dir, *args, **kwargs)  # the model file is already in the staging dir
        raise ExportError("injected failure after the model file was written")

    monkeypatch.setattr(quantize_ort, "build", crashing_build)
    with pytest.raises(ExportError, match="injected"):
        pipeline.export_bundle(MODEL, target, "fp32", out=out, model=dev_model(), quiet=True)
    assert not out.exists() and not leftovers(out)
    monkeypatch.setattr(quantize_ort, "build", real_build)
    pipeline.export_bundle(MODEL, target, "fp32", out=out, model=dev_model(), quiet=True)
    verify_files(out, read_manifest(out))


def test_openvino_int8_bundle_records_calibration_and_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nncf")
    use_cached_graph(monkeypatch)
    out = pipeline.export_bundle(MODEL, profile(tmp_path, "cpu"), "int8", out=tmp_path / "bundle",
                                 model=dev_model(), accuracy_gate=False, quiet=True)
    manifest = read_manifest(out)
    verify_files(out, manifest)
    assert set(manifest["files"]) == {"model.xml", "model.bin"}
    assert manifest["integer_kernels"]["integer_kernel_count"] > 40
    assert manifest["calibration"]["method"] == "mean_minmax" and manifest["calibration"]["samples"] == 4
    assert manifest["quantization"]["kept_fp_nodes"] and manifest["runtime_options"]["INFERENCE_PRECISION_HINT"]
    accuracy = manifest["accuracy"]
    assert accuracy["images"] == 4 and np.isfinite(accuracy["max_abs_diff"]) and "within_budget" in accuracy


@pytest.mark.slow
def test_full_export_through_the_cli(tmp_path: Path) -> None:
    """The real pipeline end to end (ORT MultiHeadAttention target, INT8), through `edge-iqa export`."""
    from typer.testing import CliRunner

    from edge_iqa.cli import app

    dev_model()  # points EDGE_IQA_WEIGHTS_DIR at the shared ImageNet weights when present
    target = tmp_path / "t.toml"
    target.write_text('inherits = "onnxruntime"\nname = "t"\n'
                      + TINY.replace("[quantization]\n", "[quantization]\n" + fine_tuning_steps("onnxruntime", 4)))
    result = CliRunner().invoke(app, ["export", "--target", str(target), "--precision", "int8", "--random-weights",
                                      "--no-accuracy-gate", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["graph"]["onnx_op_counts"]["com.microsoft::MultiHeadAttention"] == 4
    assert manifest["integer_kernels"]["integer_kernel_count"] > 40
