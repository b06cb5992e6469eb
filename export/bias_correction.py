"""Bias correction of ONNX Runtime's INT8 convolutions: what rounding the weights adds to each output channel
on average, taken back out of its bias.

Rounding a convolution's weights to INT8 (per output channel) changes the weights by ``dW``, and so each
output channel by ``conv(x, dW)``, whose mean over real photos is not zero: a shift per channel that every
photo gets and the layers after it amplify. On the default model's ONNX Runtime graph the rounded weights
alone (activations kept in float) moved the 128 validation photos by mean / p99 0.70 / 2.19 MOS points and
all of it came from the convolutions' weights (docs/quantization.md, "Where ONNX Runtime's error comes
from"). Empirical bias correction (Nagel et al., "Data-Free Quantization", 2019; NNCF's
FastBiasCorrection for OpenVINO) subtracts that mean shift from the bias:

    b' = b - E[conv(x, dW)],  x the convolution's input in the float network on the calibration photos.

``conv(x, dW)`` is linear in ``x``, so its mean over photos and positions is ``dW`` applied to the mean of
each input window position (:func:`window_means`, per input channel and kernel offset, zero padding
included): the float network runs once over the calibration photos and any INT8 graph of it (full, or
with blocks given back) is corrected from the same means. The corrected INT32 bias is rounded on its own
grid (input scale x weight scale): the graph's structure and kernels are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edge_iqa.export.backends import FeedFactory
from edge_iqa.export.qdq_network import dequantize_operands

# np.savez keys are the Conv node names, which may hold any character: store them by position instead.
_NAMES_KEY = "__conv_names__"


def window_means(x: np.ndarray, node: onnx.NodeProto, kernel: tuple[int, int]) -> np.ndarray:
    """``(C, kh, kw)``: for each input channel and kernel offset, the mean over the batch and the output
    positions of the input value that offset reads (zero padding included), for Conv ``node`` on ``x``
    ``(N, C, H, W)``."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    top, left, bottom, right = attributes.get("pads", [0, 0, 0, 0])
    stride_h, stride_w = attributes.get("strides", [1, 1])
    dilation_h, dilation_w = attributes.get("dilations", [1, 1])
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = kernel
    out_h = (padded.shape[2] - dilation_h * (kh - 1) - 1) // stride_h + 1
    out_w = (padded.shape[3] - dilation_w * (kw - 1) - 1) // stride_w + 1
    means = np.empty((x.shape[1], kh, kw), dtype=np.float64)
    for dy in range(kh):
        for dx in range(kw):
            rows = slice(dy * dilation_h, dy * dilation_h + (out_h - 1) * stride_h + 1, stride_h)
            cols = slice(dx * dilation_w, dx * dilation_w + (out_w - 1) * stride_w + 1, stride_w)
            means[:, dy, dx] = padded[:, :, rows, cols].mean(axis=(0, 2, 3), dtype=np.float64)
    return means


def tensor_reader(model: onnx.ModelProto, names: list[str]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """``feed -> {name: value}`` of the named tensors of ``model`` (any of its tensors, not only its outputs),
    run by ONNX Runtime on the CPU with graph optimizations off, so that every tensor keeps its name."""
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    declared = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in declared)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda feed: dict(zip(names, session.run(names, feed), strict=True))


def float_window_means(float_model: onnx.ModelProto, feeds: FeedFactory, cache: Path) -> dict[str, np.ndarray]:
    """:func:`window_means` of every Conv of the float graph (by node name) over every calibration feed (one
    pass of :func:`tensor_reader` reading the convolutions' inputs). Kept in the file ``cache``, which the
    caller names after the graph and the calibration photos, so that every INT8 build of the same graph on
    the same photos (the mixed-precision search's candidates, whatever they keep in float) reads it back."""
    if cache.is_file():
        with np.load(cache) as stored:
            return {str(name): stored[f"m{i}"] for i, name in enumerate(stored[_NAMES_KEY])}
    initializers = {t.name: t for t in float_model.graph.initializer}
    convs = {n.name: n for n in float_model.graph.node if n.op_type == "Conv" and n.input[1] in initializers}
    read = tensor_reader(float_model, sorted({n.input[0] for n in convs.values()}))
    sums: dict[str, np.ndarray] = {}
    crops = 0
    for feed in feeds():
        values = read(feed)
        for name, node in convs.items():
            x = values[node.input[0]]
            part = window_means(x, node, tuple(initializers[node.input[1]].dims[2:])) * len(x)
            sums[name] = sums[name] + part if name in sums else part
        crops += len(next(iter(feed.values())))
    means = {name: total / crops for name, total in sums.items()}
    names = sorted(means)
    np.savez(cache, **{_NAMES_KEY: np.array(names)}, **{f"m{i}": means[n] for i, n in enumerate(names)})
    return means


def correct_conv_biases(qdq_path: Path, float_path: Path, feeds: FeedFactory, cache: Path) -> dict[str, Any]:
    """Rewrite ``qdq_path`` (ONNX Runtime's Q/DQ graph of the float graph ``float_path``) with each INT8
    convolution's INT32 bias corrected for its rounded weights; returns the manifest's record of it.
    ``cache``: the file of the float graph's window means (:func:`float_window_means`)."""
    model = onnx.load(str(qdq_path))
    float_model = onnx.load(str(float_path))
    floats = {t.name: t for t in float_model.graph.initializer}
    constants = {t.name: t for t in model.graph.initializer}
    producers = {n.output[0]: n for n in model.graph.node}
    targets = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        weight, bias = producers.get(node.input[1]), producers.get(node.input[2])
        if (weight is None or bias is None or weight.op_type != "DequantizeLinear"
                or bias.op_type != "DequantizeLinear" or weight.input[0] not in constants
                or bias.input[0] not in constants or weight.input[0].removesuffix("_quantized") not in floats):
            continue  # a convolution kept in float, or one whose float weights cannot be found
        targets.append((node, weight, bias))
    if not targets:
        return {"method": "fast", "convolutions": 0}
    means = float_window_means(float_model, feeds, cache)
    targets = [target for target in targets if target[0].name in means]
    largest = 0.0
    for node, weight, bias in targets:
        integers, scale, zero = dequantize_operands(weight, constants)
        delta = (integers - zero) * scale - numpy_helper.to_array(floats[weight.input[0].removesuffix("_quantized")])
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        out_channels, in_per_group = delta.shape[:2]
        window = means[node.name].reshape(groups, in_per_group, *delta.shape[2:])
        shift = np.einsum("gockl,gckl->go", delta.reshape(groups, out_channels // groups, *delta.shape[1:]),
                          window).reshape(out_channels)
        stored = constants[bias.input[0]]
        bias_integers, bias_scale, _ = dequantize_operands(bias, constants)
        corrected = np.round(bias_integers - shift / bias_scale)  # b' = (q - z) s - shift: q' = q - shift / s
        dtype = numpy_helper.to_array(stored).dtype
        info = np.iinfo(dtype)
        stored.CopyFrom(numpy_helper.from_array(np.clip(corrected, info.min, info.max).astype(dtype), stored.name))
        largest = max(largest, float(np.abs(shift).max()))
    onnx.save(model, str(qdq_path))
    return {"method": "fast", "convolutions": len(targets), "largest_shift": round(largest, 6)}
