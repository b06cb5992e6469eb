"""TensorRT targets without TensorRT: the static graph check, the build recipe and the engine cache
rules. Engine build and inference are tested in tests/test_tensorrt_device.py where TensorRT runs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge_iqa.errors import CompatibilityError, EngineMismatchError, ExportError
from edge_iqa.export.onnx_export import export_onnx
from edge_iqa.models import create_model
from edge_iqa.runtime.tensorrt.cache import EngineKey, check_engine_metadata, engine_paths, timing_cache_path
from edge_iqa.runtime.tensorrt.recipe import BuildRecipe
from edge_iqa.runtime.tensorrt.static_check import check_graph, opset_range, supported_ops
from edge_iqa.runtime.tensorrt.versions import TensorRTRange, require_installed

SIZE = (128, 128)  # small static input: the checks are about graph structure, not resolution


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("edge_hybrid_n")


@pytest.fixture(scope="module")
def jetson_graph(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    """The JetPack 6 form: MatMul-Softmax-MatMul attention at an opset TensorRT 10.3 parses."""
    path = tmp_path_factory.mktemp("trt") / "jetson.onnx"
    export_onnx(model, path, input_names=("image",), input_size=SIZE, form="matmul_softmax", opset=18)
    return onnx.load(str(path))


@pytest.fixture(scope="module")
def attention_graph(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    """The TensorRT 10.14+ form: one standard ONNX Attention op per attention call, opset 23."""
    path = tmp_path_factory.mktemp("trt") / "desktop.onnx"
    export_onnx(model, path, input_names=("image",), input_size=SIZE, form="onnx_attention", opset=23)
    return onnx.load(str(path))


def test_jetson_form_passes_tensorrt_10_3(jetson_graph: onnx.ModelProto) -> None:
    report = check_graph(jetson_graph, "10.3", "matmul_softmax")
    assert report.ok, report.errors
    assert report.op_counts["Softmax"] == 4 and "Attention" not in report.op_counts


def test_attention_form_passes_tensorrt_10_14(attention_graph: onnx.ModelProto) -> None:
    report = check_graph(attention_graph, "10.14", "onnx_attention")
    assert report.ok, report.errors
    assert report.op_counts["Attention"] == 4


def test_attention_op_fails_tensorrt_10_3(attention_graph: onnx.ModelProto) -> None:
    report = check_graph(attention_graph, "10.3", "onnx_attention")
    rules = {f.rule for f in report.errors}
    assert {"opset", "unsupported-op", "attention-form"} <= rules
    assert sum("Attention is not imported" in f.message for f in report.errors) == 4
    with pytest.raises(CompatibilityError, match="--target jetson"):
        report.raise_if_failed()
    # Declaring the right form does not rescue a graph that still carries Attention ops.
    assert any(f.rule == "attention-form" for f in check_graph(attention_graph, "10.3", "matmul_softmax").errors)


def test_ort_only_op_fails(attention_graph: onnx.ModelProto) -> None:
    from edge_iqa.export.attention_forms import rewrite_attention_to_mha

    mha = rewrite_attention_to_mha(attention_graph)
    report = check_graph(mha, "10.15", "onnx_attention")
    ort_only = [f for f in report.errors if f.rule == "ort-only-op"]
    assert len(ort_only) == 4 and "com.microsoft.MultiHeadAttention" in ort_only[0].message


def test_uint8_qdq_fails_and_int8_symmetric_passes(jetson_graph: onnx.ModelProto, tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"image": rng.standard_normal((1, 3, *SIZE)).astype(np.float32)} for _ in range(2)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    source = tmp_path / "fp32.onnx"
    onnx.save(jetson_graph, str(source))
    for activation, weight, symmetric, ok in [(QuantType.QUInt8, QuantType.QUInt8, False, False),
                                              (QuantType.QInt8, QuantType.QInt8, True, True)]:
        out = tmp_path / f"{activation.name}.onnx"
        quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=activation,
                        weight_type=weight, op_types_to_quantize=["Conv", "MatMul"],
                        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": symmetric})
        report = check_graph(onnx.load(str(out)), "10.3", "matmul_softmax")
        assert report.ok == ok, report.errors[:3]
        if not ok:
            assert any(f.rule == "qdq-type" and "uint8" in f.message for f in report.errors)


def test_dynamic_spatial_dims_fail(jetson_graph: onnx.ModelProto) -> None:
    graph = onnx.ModelProto()
    graph.CopyFrom(jetson_graph)
    graph.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    assert any(f.rule == "dynamic-shape" for f in check_graph(graph, "10.3", "matmul_softmax").errors)


def test_op_tables_follow_the_parser_changelog() -> None:
    assert "Attention" not in supported_ops("10.3") and "Attention" in supported_ops("10.14")
    assert "RMSNormalization" in supported_ops("10.15") and "STFT" not in supported_ops("10.4")
    assert opset_range("10.3") == (9, 20) and opset_range("10.16") == (9, 24)
    # onnx-tensorrt imports Gelu since 10.1 (so JetPack 6 parses it); 10.14 reads opsets 9..24.
    assert "Gelu" in supported_ops("10.3") and opset_range("10.14") == (9, 24)
    assert opset_range("11.4") == (9, 24)
    with pytest.raises(CompatibilityError):
        opset_range("8.6")


# --- build recipe and engine cache (pure Python) ---------------------------------------------------
def test_trtexec_command_mirrors_the_recipe() -> None:
    recipe = BuildRecipe(onnx_file="model.onnx", precision="int8", inputs={"image": [3, 384, 384]},
                         opt_batch=4, max_batch=16, workspace_mib=512)
    args = shlex.split(recipe.trtexec_command("e.engine"))
    assert args[0] == "trtexec" and "--onnx=model.onnx" in args and "--saveEngine=e.engine" in args
    assert "--minShapes=image:1x3x384x384" in args and "--optShapes=image:4x3x384x384" in args
    assert "--maxShapes=image:16x3x384x384" in args and "--memPoolSize=workspace:512M" in args
    assert {"--int8", "--fp16"} <= set(args) and "--stronglyTyped" not in args
    assert "--timingCacheFile=model.timing.cache" in args
    assert BuildRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    fp16 = BuildRecipe(onnx_file="m.onnx", precision="fp16", inputs={"image": [3, 8, 8]})
    assert "--int8" not in fp16.trtexec_command() and "--fp16" in fp16.trtexec_command()
    with pytest.raises(ExportError, match="batch range"):
        BuildRecipe(onnx_file="m.onnx", precision="fp16", inputs={"image": [3, 8, 8]}, opt_batch=32, max_batch=16)


@pytest.mark.parametrize("made_for", ["10.14", "11.0"])
def test_strongly_typed_recipes_have_no_precision_flags(made_for: str) -> None:
    """trtexec 11 rejects --fp16/--int8; from 10.12 they are deprecated: the graph carries the types."""
    family = TensorRTRange.for_version(made_for)
    for precision in ("fp32", "fp16", "int8"):
        recipe = BuildRecipe(onnx_file="m.onnx", precision=precision, inputs={"image": [3, 8, 8]},
                             tensorrt_minimum=family.minimum, tensorrt_below=family.below)
        args = shlex.split(recipe.trtexec_command())
        assert recipe.strongly_typed and "--stronglyTyped" in args
        assert not {"--fp16", "--int8", "--best"} & set(args)
        assert ("--noTF32" in args) == (precision == "fp32")


def test_dla_recipe_needs_a_static_batch() -> None:
    dims = {"image": [3, 8, 8]}
    with pytest.raises(ExportError, match="static batch"):
        BuildRecipe(onnx_file="m.onnx", precision="int8", inputs=dims, max_batch=16, dla_core=0)
    with pytest.raises(ExportError, match="FP16 and INT8 only"):
        BuildRecipe(onnx_file="m.onnx", precision="fp32", inputs=dims, max_batch=1, dla_core=0)
    args = shlex.split(BuildRecipe(onnx_file="m.onnx", precision="int8", inputs=dims, max_batch=1,
                                   dla_core=0).trtexec_command())
    assert {"--useDLACore=0", "--allowGPUFallback", "--minShapes=image:1x3x8x8",
            "--maxShapes=image:1x3x8x8"} <= set(args)


def test_tensorrt_families_and_the_installed_version_check() -> None:
    assert str(TensorRTRange.for_version("10.3")) == ">=10.3,<10.12"
    assert str(TensorRTRange.for_version("10.14")) == ">=10.14,<11.0"
    assert str(TensorRTRange.for_version("11.0")) == ">=11.0,<12.0"
    jetson = TensorRTRange.for_version("10.3")
    require_installed("10.3.0.30", jetson, "jetson")  # JetPack 6's TensorRT: accepted
    for installed, hint in [("11.4.0.106", "desktop-gpu"), ("10.14.1.48.post1", "desktop-gpu-10"),
                            ("10.2.0", "onnxruntime")]:
        with pytest.raises(CompatibilityError, match=f"TensorRT {installed} is installed.*--target {hint}"):
            require_installed(installed, jetson, "jetson")
    with pytest.raises(CompatibilityError, match="--target jetson"):
        require_installed("10.3.0", TensorRTRange.for_version("11.0"), "desktop-gpu")
    # A recipe written before the range was recorded keeps working (its minimum's family).
    old = BuildRecipe.from_dict({"onnx_file": "m.onnx", "precision": "fp16", "inputs": {"image": [3, 8, 8]},
                                 "minimum_tensorrt": "10.3", "strongly_typed": False})
    assert old.tensorrt_range == jetson and not old.strongly_typed


def test_engine_cache_refuses_other_devices_and_versions(tmp_path: Path) -> None:
    orin = EngineKey("Orin", "8.7", "10.3.0", "int8", "abc")
    engine, meta = engine_paths(tmp_path, orin)
    assert engine.parent == meta.parent == tmp_path / "engines"
    assert engine.name == "orin-sm87-trt10.3.0-int8.engine"
    meta.parent.mkdir()
    meta.write_text(json.dumps(orin.__dict__))
    check_engine_metadata(meta, orin)  # same device: accepted
    for other, what in [(EngineKey("NVIDIA GeForce RTX 4090", "8.9", "10.3.0", "int8", "abc"), "gpu_name"),
                        (EngineKey("Orin", "8.7", "10.14.1", "int8", "abc"), "tensorrt_version"),
                        (EngineKey("Orin", "8.7", "10.3.0", "fp16", "abc"), "precision"),
                        (EngineKey("Orin", "8.7", "10.3.0", "int8", "def"), "onnx_sha256")]:
        with pytest.raises(EngineMismatchError, match=f"{what}.*build-engine"):
            check_engine_metadata(meta, other)
    # Timing caches are per key: another GPU or TensorRT version never reads this one.
    assert timing_cache_path(tmp_path, orin).name == "orin-sm87-trt10.3.0-int8.timing.cache"
    assert timing_cache_path(tmp_path, orin) != timing_cache_path(tmp_path, EngineKey("Orin", "8.7", "10.3.1", "int8",
                                                                                      "abc"))
    with pytest.raises(EngineMismatchError, match="origin is unknown"):
        check_engine_metadata(tmp_path / "engines" / "absent.json", orin)
