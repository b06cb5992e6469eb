"""Bias correction of ONNX Runtime's INT8 convolutions (export/bias_correction.py, issue 16): the mean shift
that rounded weights give each output channel on the calibration photos is taken out of the INT32 bias,
nothing else in the graph changes, and the profile key reaches each quantizer or is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from edge_iqa.errors import TargetError
from edge_iqa.export import calibration, quantize_ort
from edge_iqa.export.bias_correction import tensor_reader, window_means
from edge_iqa.export.qdq_network import dequantize_operands
from edge_iqa.export.targets import load_target
from tests.export_helpers import dev_spec, exported

CALIBRATION = 4


def _feeds():
    rows = calibration.split(CALIBRATION, 0, 2).calibration
    return calibration.iter_calibration_feeds(rows, dev_spec(), ("image",))


def _profile(bias_correction: str):
    profile = load_target("onnxruntime")
    return dataclasses.replace(profile, quantization=dataclasses.replace(
        profile.quantization, calibration_samples=CALIBRATION, bias_correction=bias_correction))


@pytest.mark.parametrize(("channels", "out", "kernel", "attributes"), [
    (8, 16, 3, {"pads": [1, 1, 1, 1], "strides": [1, 1]}),
    (8, 8, 3, {"pads": [0, 1, 1, 0], "strides": [2, 2], "group": 8}),  # depthwise, stride 2, asymmetric pads
    (6, 4, 3, {"pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 2}),
    (5, 7, 1, {}),
])
def test_window_means_give_the_mean_of_a_convolution(channels, out, kernel, attributes) -> None:
    """mean over photos and positions of conv(x, W) == W applied to the window means, for any W: the
    identity the correction rests on, checked against PyTorch's convolution."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, channels, 13, 11, generator=generator) + 0.5  # a non-zero mean, as after a ReLU
    groups = attributes.get("group", 1)
    weight = torch.randn(out, channels // groups, kernel, kernel, generator=generator, dtype=torch.float64)
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[kernel, kernel], **attributes)
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    expected = F.conv2d(F.pad(x.double(), (left, right, top, bottom)), weight, stride=attributes.get("strides", [1, 1]),
                        dilation=attributes.get("dilations", [1, 1]), groups=groups).mean(dim=(0, 2, 3))
    means = window_means(x.numpy(), node, (kernel, kernel)).reshape(groups, channels // groups, kernel, kernel)
    got = np.einsum("gockl,gckl->go", weight.numpy().reshape(groups, out // groups, *weight.shape[1:]),
                    means).reshape(out)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, tuple[Path, dict, Path]]:
    """The dev model's ONNX Runtime INT8 graph without and with bias correction (same calibration ranges)."""
    work = tmp_path_factory.mktemp("bias_correction")
    out = {}
    for mode in ("none", "fast"):
        folder = work / mode
        folder.mkdir()
        record = quantize_ort.build(exported("onnx_attention").path, folder, "int8", _profile(mode), _feeds, work)
        out[mode] = (folder / record["model_file"], record, work)
    return out


def _conv_shifts(qdq: Path, float_graph: Path) -> dict[str, np.ndarray]:
    """Per INT8 Conv: mean over the calibration crops and positions of conv(x; INT8 weights and bias) minus
    conv(x; float weights and bias), x the float graph's input to it (read by ONNX Runtime), in units of the
    conv's bias step (its INT32 grid)."""
    model = onnx.load(str(qdq))
    float_model = onnx.load(str(float_graph))
    floats = {t.name: numpy_helper.to_array(t) for t in float_model.graph.initializer}
    constants = {t.name: t for t in model.graph.initializer}
    producers = {n.output[0]: n for n in model.graph.node}
    float_convs = {n.name: n for n in float_model.graph.node if n.op_type == "Conv"}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) == 3
             and producers.get(n.input[1]) is not None and producers[n.input[1]].op_type == "DequantizeLinear"]
    wanted = sorted({float_convs[n.name].input[0] for n in convs})
    read = tensor_reader(float_model, wanted)
    inputs = [read(feed) for feed in _feeds()]
    shifts = {}
    for node in convs:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        float_node = float_convs[node.name]
        weight_q, bias_q = (dequantize_operands(producers[name], constants) for name in node.input[1:])
        as_stored = [torch.from_numpy((q - z) * s) for q, s, z in (weight_q, bias_q)]
        as_float = [torch.from_numpy(floats[name].copy()) for name in float_node.input[1:]]
        top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
        total = 0.0
        for values in inputs:
            x = F.pad(torch.from_numpy(values[float_node.input[0]]), (left, right, top, bottom))
            run = [F.conv2d(x, w.float(), b.float(), stride=attributes.get("strides", [1, 1]),
                            dilation=attributes.get("dilations", [1, 1]), groups=attributes.get("group", 1))
                   for w, b in (as_stored, as_float)]
            total = total + (run[0] - run[1]).double().mean(dim=(0, 2, 3)) * len(x)
        step = bias_q[1].reshape(-1)
        shifts[node.name] = (total / sum(len(v[wanted[0]]) for v in inputs)).numpy() / step
    return shifts


def test_corrected_convolutions_have_no_mean_shift_on_the_calibration_photos(builds) -> None:
    (plain, plain_record, work), (fast, fast_record, _) = builds["none"], builds["fast"]
    assert plain_record["quantization"]["bias_correction"] == {"method": "none"}
    record = fast_record["quantization"]["bias_correction"]
    assert record["method"] == "fast" and record["convolutions"] > 40 and record["largest_shift"] > 0
    # The graph quantize_static quantized: ORT's pre-processed copy, or the export when that failed.
    preprocessed = sorted(work.glob("int8_preprocessed_*.onnx"))
    float_graph = preprocessed[0] if fast_record["quantization"]["preprocessed"] else exported("onnx_attention").path
    assert len(preprocessed) == fast_record["quantization"]["preprocessed"]
    before, after = _conv_shifts(plain, float_graph), _conv_shifts(fast, float_graph)
    assert set(before) == set(after) and len(after) == record["convolutions"]
    # After: each channel's mean shift is the rounding of its corrected bias to the INT32 grid (a uniform
    # error of at most half a step; the float32 convolutions of this check add up to about half a step);
    # before: tens to hundreds of steps.
    after_all = np.concatenate([np.abs(v) for v in after.values()])
    assert after_all.max() < 1.5 and np.median(after_all) < 0.4
    assert max(np.abs(v).max() for v in before.values()) > 100
    assert sum(np.abs(v).max() > 10 for v in before.values()) > len(before) // 2


def test_bias_correction_changes_only_the_conv_biases(builds) -> None:
    (plain, plain_record, _), (fast, fast_record, _) = builds["none"], builds["fast"]
    a, b = onnx.load(str(plain)).graph, onnx.load(str(fast)).graph
    assert [(n.op_type, n.name, list(n.input)) for n in a.node] == [(n.op_type, n.name, list(n.input)) for n in b.node]
    changed = {t.name for t, u in zip(a.initializer, b.initializer, strict=True) if t.SerializeToString()
               != u.SerializeToString()}
    consumers = {name: n.op_type for n in b.node for name in n.input}
    dequantized = {n.input[0]: consumers[n.output[0]] for n in b.node if n.op_type == "DequantizeLinear"}
    assert changed and all(name.endswith("bias_quantized") and dequantized[name] == "Conv" for name in changed)
    assert plain_record["integer_kernels"]["optimized_integer_ops"] == fast_record["integer_kernels"][
        "optimized_integer_ops"]


def _variant(tmp_path: Path, parent: str, line: str) -> Path:
    path = tmp_path / f"{parent}-bias.toml"
    path.write_text(f'inherits = "{parent}"\nname = "{parent}-bias"\n[quantization]\n{line}\n')
    return path


def test_bias_correction_key_per_runtime(tmp_path) -> None:
    assert load_target("onnxruntime").quantization.bias_correction == "fast"
    assert load_target(_variant(tmp_path, "onnxruntime", 'bias_correction = "none"')).quantization.bias_correction \
        == "none"
    with pytest.raises(TargetError, match="bias_correction' is 'full'; choose one of none, fast"):
        load_target(_variant(tmp_path, "onnxruntime", 'bias_correction = "full"'))
    with pytest.raises(TargetError, match="bias_correction' is an OpenVINO and ONNX Runtime setting"):
        load_target(_variant(tmp_path, "jetson", 'bias_correction = "fast"'))
    pytest.importorskip("nncf")
    from edge_iqa.export.quantize_openvino import nncf_settings

    for mode, disabled, fast in (("none", True, False), ("fast", False, True), ("full", False, False)):
        spec = load_target(_variant(tmp_path, "cpu", f'bias_correction = "{mode}"')).quantization
        kwargs, record = nncf_settings(spec, attention=True)
        assert kwargs["advanced_parameters"].disable_bias_correction is disabled
        assert kwargs["fast_bias_correction"] is fast and record["bias_correction"] == mode


def test_candidates_of_the_search_reuse_the_window_means(builds) -> None:
    """The mixed-precision search's candidates (other nodes kept in float) read the float graph's window means
    back from the export's work folder instead of running the float graph again, and correct the rest."""
    fast, record, work = builds["fast"]
    (means,) = work.glob("bias_correction_means_*.npz")
    written = means.stat().st_mtime_ns
    graph = onnx.load(str(fast)).graph
    producers = {n.output[0]: n.op_type for n in graph.node}
    kept = next(n.name for n in graph.node if n.op_type == "Conv" and producers.get(n.input[1]) == "DequantizeLinear")
    folder = work / "candidate"
    folder.mkdir()
    candidate = quantize_ort.build(exported("onnx_attention").path, folder, "int8", _profile("fast"), _feeds, work,
                                   exclude_nodes=[kept])
    assert [p.name for p in work.glob("bias_correction_means_*.npz")] == [means.name]
    assert means.stat().st_mtime_ns == written
    corrected = candidate["quantization"]["bias_correction"]["convolutions"]
    assert corrected == record["quantization"]["bias_correction"]["convolutions"] - 1
