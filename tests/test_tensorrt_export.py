"""`edge-iqa export --target jetson | desktop-gpu` on a machine without a GPU: the bundle holds what
the device needs (ONNX, Q/DQ for INT8, build recipe, README), passes the static TensorRT check, and
`edge-iqa check` verifies it. Small input size and calibration count keep this fast; the shipped
profiles are the parents, so everything else is as users get it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from edge_iqa.cli import app
from edge_iqa.errors import BackendUnavailableError
from edge_iqa.export.pipeline import export_bundle
from edge_iqa.runtime import load
from edge_iqa.runtime.tensorrt.recipe import read_recipe


def small_profile(tmp_path: Path, parent: str) -> Path:
    path = tmp_path / f"{parent}-small.toml"
    path.write_text(f'inherits = "{parent}"\nname = "{parent}-small"\ninput_size = [128, 128]\n'
                    "[quantization]\ncalibration_samples = 6\n[parity]\nimages = 6\n")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trt-bundles")
    made = {}
    for parent, precision in [("jetson", "int8"), ("jetson", "fp16"), ("desktop-gpu", "fp16")]:
        made[f"{parent}-{precision}"] = export_bundle(
            "edge_hybrid_n", small_profile(root, parent), precision, out=root / f"{parent}-{precision}",
            random_weights=True, accuracy_gate=False, quiet=True)
    return made


def test_jetson_int8_bundle_is_explicit_int8_qdq(bundles: dict[str, Path]) -> None:
    bundle = bundles["jetson-int8"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {"model.onnx", "build_recipe.json", "README.md"} <= set(manifest["files"])
    assert manifest["runtime"] == "tensorrt" and manifest["precision"] == "int8"
    assert manifest["tensorrt_check"]["ok"] and manifest["tensorrt_check"]["tensorrt_version"] == "10.3"
    assert "TensorRT itself was not available" in manifest["accuracy_measured_with"]
    graph = onnx.load(str(bundle / "model.onnx"))
    # Exported at opset 18; modelopt raises it to 19 for its Q/DQ. TensorRT 10.3 parses 9..20.
    assert all(18 <= o.version <= 20 for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    assert "Attention" not in ops and ops.count("Softmax") == 4
    constants = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    zero_points = [constants[n.input[2]] for n in graph.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in constants]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert manifest["integer_kernels"]["qdq_fed_compute_nodes"] > 40
    # keep_fp = ["head", ...]: the regression head's Gemm/MatMul nodes are not fed by Q/DQ.
    assert manifest["quantization"]["excluded_nodes"]
    recipe = read_recipe(bundle)
    assert recipe.precision == "int8" and recipe.inputs == {"image": [3, 128, 128]} and recipe.max_batch == 8
    trtexec = manifest["runtime_options"]["trtexec"]
    assert "--int8" in trtexec and "--stronglyTyped" not in trtexec
    assert (recipe.tensorrt_minimum, recipe.tensorrt_below, recipe.target) == ("10.3", "10.12", "jetson-small")
    assert "cuda-python>=12,<13" in (bundle / "README.md").read_text()
    assert "trtexec" in (bundle / "README.md").read_text()


def test_desktop_gpu_bundle_is_a_strongly_typed_fp16_graph(bundles: dict[str, Path]) -> None:
    """TensorRT 11 has no FP16 flag: the graph itself is FP16 (weights and activations), with FP32
    input/output, and the recipe says so."""
    bundle = bundles["desktop-gpu-fp16"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tensorrt_check"]["ok"] and manifest["tensorrt_check"]["op_counts"]["Attention"] == 4
    trtexec = manifest["runtime_options"]["trtexec"]
    assert manifest["graph"]["opset"] == 23 and "--stronglyTyped" in trtexec and "--fp16" not in trtexec
    recipe = read_recipe(bundle)
    assert recipe.strongly_typed and (recipe.tensorrt_minimum, recipe.tensorrt_below) == ("11.0", "12.0")
    graph = onnx.load(str(bundle / "model.onnx"))
    float_weights = [i.data_type for i in graph.graph.initializer if i.data_type in (1, 10)]
    assert float_weights and set(float_weights) == {onnx.TensorProto.FLOAT16}
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert manifest["quantization"]["format"].startswith("FP16 weights and activations")


def test_check_command_passes_on_bundles_and_fails_when_tampered(bundles: dict[str, Path]) -> None:
    runner = CliRunner()
    for bundle in bundles.values():
        result = runner.invoke(app, ["check", str(bundle)])
        assert result.exit_code == 0, result.output
        assert "graph check passed" in result.output
    bundle = bundles["jetson-fp16"]
    recipe = bundle / "build_recipe.json"
    original = recipe.read_bytes()
    try:
        recipe.write_bytes(original.replace(b'"max_batch": 8', b'"max_batch": 9'))
        result = runner.invoke(app, ["check", str(bundle)])
        assert result.exit_code == 1 and "checksum mismatch for build_recipe.json" in result.output
    finally:
        recipe.write_bytes(original)


def test_runtime_says_what_is_missing_without_tensorrt(bundles: dict[str, Path]) -> None:
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is importable here: tests/test_tensorrt_device.py covers the real path")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        load(bundles["jetson-int8"])


def test_strongly_typed_int8_keeps_the_unquantized_layers_in_fp16(tmp_path: Path) -> None:
    """desktop-gpu (TensorRT 11, strongly typed) INT8: modelopt Q/DQ with FP16 as the high precision,
    so what is not quantized runs in FP16 (not FP32) on the device; I/O stays FP32."""
    from onnx import TensorProto, helper

    from edge_iqa.export.quantize_modelopt import quantize_int8_qdq
    from edge_iqa.runtime.tensorrt.static_check import check_graph

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in [("w1", (8, 3, 3, 3)), ("w2", (8, 8, 3, 3))]]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("GlobalAveragePool", ["c2"], ["score"], name="pool")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 8, 1, 1])], weights)
    source = tmp_path / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(source))
    record = quantize_int8_qdq(source, tmp_path / "q.onnx",
                               {"image": rng.standard_normal((4, 3, 16, 16)).astype(np.float32)},
                               method="minmax", high_precision_dtype="fp16")
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    assert record["high_precision_dtype"] == "fp16" and record["quantize_linear_nodes"] == 2
    assert {i.data_type for i in quantized.graph.initializer} == {TensorProto.FLOAT16, TensorProto.INT8}
    assert quantized.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert check_graph(quantized, "11.0", "matmul_softmax").ok
