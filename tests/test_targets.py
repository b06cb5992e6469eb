"""Target profiles: shipped files load, validation errors are clear, inheritance and user files work."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_iqa.errors import TargetError
from edge_iqa.export.targets import list_targets, load_target


def test_shipped_targets_load() -> None:
    assert {"cpu", "onnxruntime"} <= set(list_targets())
    cpu, ort = load_target("cpu"), load_target("onnxruntime")
    assert (cpu.runtime, cpu.attention_form, cpu.precision) == ("openvino", "onnx_attention", "int8")
    assert (ort.runtime, ort.attention_form) == ("onnxruntime", "ort_mha")
    for profile in (cpu, ort):
        assert profile.opset >= 23 and set(profile.precisions) == {"fp32", "fp16", "int8"}
        assert profile.quantization.keep_fp and profile.quantization.calibration_samples <= 256
        assert profile.to_dict()["name"] == profile.name


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_user_file_inherits_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.toml", 'inherits = "onnxruntime"\nname = "mine"\nprecision = "int8"\n'
                 'input_size = [320, 320]\n[quantization]\nmethod = "entropy"\ncalibration_samples = 8\n')
    mine = load_target(path)
    base = load_target("onnxruntime")
    assert (mine.name, mine.precision, mine.input_size) == ("mine", "int8", (320, 320))
    # Tables merge key by key: keep_fp and seed come from the parent.
    assert mine.quantization.method == "entropy" and mine.quantization.calibration_samples == 8
    assert mine.quantization.keep_fp == base.quantization.keep_fp and mine.runtime == base.runtime
    child = load_target(write(tmp_path, "child.toml", 'inherits = "mine.toml"\nname = "child"\nthreads = 2\n'))
    assert (child.threads, child.input_size, child.quantization.method) == (2, (320, 320), "entropy")


@pytest.mark.parametrize("body, message", [
    ('name = "x"\nruntime = "tflite"\nprecision = "fp32"\nattention_form = "onnx_attention"', "runtime"),
    ('inherits = "cpu"\nattention_form = "ort_mha"', "runs only in ONNX Runtime"),
    ('inherits = "cpu"\nopset = 18', "opset >= 23"),
    ('inherits = "cpu"\nprecision = "int4"', "precision"),
    ('inherits = "cpu"\nprecisions = ["fp32"]', "not among precisions"),
    ('inherits = "cpu"\n[quantization]\nmethod = "entropy"', "no entropy"),
    ('inherits = "cpu"\nbatch = 4\nmax_batch = 2', "batch"),
    ('inherits = "cpu"\nthreads = true', "threads"),
    ('inherits = "cpu"\nfancy = 1', "unknown keys"),
    ('inherits = "cpu"\ninput_size = [8]', "input_size"),
    ('inherits = "cpu"\ninput_dtype = "int16"', "input_dtype"),
    ('inherits = "jetson"\ninput_dtype = "uint8"', "not offered for TensorRT"),
    ('inherits = "cpu"\n[quantization]\nscore_correction = "quadratic"', "score_correction"),
    ('inherits = "jetson"\n[quantization]\nscore_correction = "affine"', "TensorRT engine is built on the device"),
    ('inherits = "onnxruntime"\n[quantization]\nmodel_type = "transformer"', "NNCF \\(OpenVINO\\) settings"),
    ('inherits = "cpu"\n[quantization]\nqat_steps = -1', "qat_steps >= 0"),
    ('inherits = "jetson"\n[quantization]\nmethod = "mean_minmax"', "modelopt calibrates with"),
    ('inherits = "cpu"\n[quantization]\nqat_learning_rate = 0', "0 < qat_learning_rate < 1"),
    ('inherits = "onnxruntime"\n[quantization]\nqat_distorted_share = 1.5', "share of the fine-tuning crops"),
    ('name = "x"\nruntime = "openvino"', "missing the required key"),
    ('inherits = "nope"', "unknown target"),
    ('inherits = "loop.toml"', "cycle"),
    ('name = [', "not valid TOML"),
])
def test_invalid_profiles_raise_clear_errors(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "loop.toml", body)
    with pytest.raises(TargetError, match=message):
        load_target(path)


def test_unknown_name_and_missing_file() -> None:
    with pytest.raises(TargetError, match="edge-iqa targets"):
        load_target("no-such-target")
    with pytest.raises(TargetError, match="does not exist"):
        load_target("/no/such/profile.toml")


def test_resolve_precision() -> None:
    cpu = load_target("cpu")
    assert cpu.resolve_precision(None) == "int8" and cpu.resolve_precision("fp16") == "fp16"
    with pytest.raises(TargetError, match="does not offer"):
        cpu.resolve_precision("int4")


def test_tensorrt_profiles_offer_fp32_except_on_the_dla() -> None:
    # A GPU engine can be FP32 (the on-device reference); the DLA runs FP16/INT8 only.
    for name in ("jetson", "jetson-orin-nano", "jetson-orin-nx", "desktop-gpu"):
        assert load_target(name).resolve_precision("fp32") == "fp32"
    dla = load_target("jetson-orin-agx-dla")
    assert dla.resolve_precision(None) == "int8"
    with pytest.raises(TargetError, match="does not offer"):
        dla.resolve_precision("fp32")


def test_tensorrt_profiles_name_their_family_static_dla_batch_and_cuda_python_pin(tmp_path: Path) -> None:
    families = {name: str(load_target(name).tensorrt.tensorrt_range)
                for name in ("jetson", "jetson-orin-agx-dla", "desktop-gpu-10", "desktop-gpu")}
    assert families == {"jetson": ">=10.3,<10.12", "jetson-orin-agx-dla": ">=10.3,<10.12",
                        "desktop-gpu-10": ">=10.14,<11.0", "desktop-gpu": ">=11.0,<12.0"}
    assert load_target("jetson").tensorrt.cuda_python == "cuda-python>=12,<13"  # JetPack 6 is CUDA 12
    dla = load_target("jetson-orin-agx-dla")
    assert dla.batch == dla.max_batch == dla.tensorrt.opt_batch == 1
    assert "fall back to the GPU" in dla.description and "GELU" in dla.description
    path = write(tmp_path, "dla.toml", 'inherits = "jetson-orin-agx-dla"\nname = "d"\nmax_batch = 8\n')
    with pytest.raises(TargetError, match="static batch"):
        load_target(path)


def test_pixel_input_only_where_the_runtime_rebuilds_the_normalisation_exactly() -> None:
    """cpu and onnxruntime export uint8 pixel inputs for single-input models whose spec normalises; a
    model normalising inside its own forward (TOPIQ: OpenVINO fuses the /255 into its normalisation),
    an image + depth network and the TensorRT targets keep float32 rows."""
    from edge_iqa.models import get_model_info

    edge, topiq = (get_model_info(name).preprocess for name in ("edge_hybrid_n", "topiq_nr_224"))
    for name in ("cpu", "onnxruntime"):
        profile = load_target(name)
        assert profile.input_dtype == "uint8" and profile.pixel_input(("image",), edge)
        assert not profile.pixel_input(("image",), topiq) and not profile.pixel_input(("image", "depth"), edge)
    for name in ("jetson", "desktop-gpu"):
        assert not load_target(name).pixel_input(("image",), edge)
