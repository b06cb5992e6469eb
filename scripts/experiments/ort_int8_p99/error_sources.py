"""By hand: where ONNX Runtime's INT8 error per photo comes from. The Q/DQ graph of a bundle runs in PyTorch
(`QDQNetwork`, ONNX's semantics) on the 128 validation photos against the FP32 model, as built and with one
source of error taken out at a time:

- "weights + saturation": every activation Quantize/DequantizeLinear pair replaced by a Clip to the quantizer's
  range (float activations, saturated where the integers saturate; ONNX Runtime drops the ReLU6 in front of a
  quantizer and lets that range clip);
- "weights only": the same, the clips widened (ReLU6, [0, 6], where the range starts at 0; none elsewhere):
  only the INT8 weights and INT32 biases differ from the float network;
- then, from "weights only", groups of weights put back to their float values (from FLOAT_GRAPH, the graph
  `quantize_static` quantized: equalized, pre-processed): conv biases, conv weights, each block's weights;
- "MSE weight scales": the conv weights re-rounded per output channel on the grid whose scale minimises the
  squared rounding error (instead of ONNX Runtime's largest |weight| / 127), alone and in the full INT8 graph;
- "bias-corrected": the export's own bias correction (export/bias_correction.py: each INT8 convolution's bias
  corrected for the mean shift of its rounded weights on the calibration photos), on "weights only", on the
  INT8 graph, and on the INT8 graph with its activations not rounded (saturated only).

    python scripts/experiments/ort_int8_p99/error_sources.py QDQ_BUNDLE FLOAT_GRAPH [--json OUT]

FLOAT_GRAPH: `int8_preprocessed_<key>.onnx` of the export's work folder (`/tmp/edge-iqa-export-*`), copied
while `edge-iqa export --target onnxruntime --precision int8 --qat-steps 0 --out QDQ_BUNDLE` runs (it is
deleted with the folder); it must be that export's (same calibration, same equalization).
Figures: |score - FP32 score| in MOS points, mean / p99 / max over the photos (the runner's arithmetic, not
ONNX Runtime's kernels: within about 0.3x the INT8 error of them, tests/test_qat_graph.py).
"""

import argparse
import collections
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distillation_setup import trial  # noqa: E402

from edge_iqa.bench.report import print_json_report  # noqa: E402
from edge_iqa.data.imageio import load_image  # noqa: E402
from edge_iqa.export import calibration  # noqa: E402
from edge_iqa.export.bias_correction import correct_conv_biases  # noqa: E402
from edge_iqa.export.qdq_network import QDQNetwork  # noqa: E402
from edge_iqa.export.targets import load_target  # noqa: E402
from edge_iqa.models import get_model_info  # noqa: E402

UINT8_TOP = 255
INT8_TOP = 127


def copied(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def clipped_activations(graph: onnx.ModelProto, widen: bool) -> onnx.ModelProto:
    """Each activation QuantizeLinear -> DequantizeLinear pair replaced by a Clip to the quantizer's uint8 range;
    ``widen``: to [0, 6] where that range starts at 0 (a dropped ReLU6), unbounded elsewhere."""
    model = copied(graph)
    constants = {t.name: t for t in model.graph.initializer}
    quantizers = {n.output[0]: n for n in model.graph.node
                  if n.op_type == "QuantizeLinear" and n.input[0] not in constants}
    bypass, clips = {}, {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in quantizers:
            continue
        quantizer = quantizers[node.input[0]]
        source = quantizer.input[0]
        if source not in clips:
            scale = float(numpy_helper.to_array(constants[quantizer.input[1]]))
            zero = float(numpy_helper.to_array(constants[quantizer.input[2]]))
            low, high = -zero * scale, (UINT8_TOP - zero) * scale
            if widen:
                low, high = (0.0, 6.0) if low == 0.0 else (-1e30, 1e30)
            name = f"{source}_clipped"
            model.graph.initializer.extend([numpy_helper.from_array(np.array(low, np.float32), f"{name}_low"),
                                            numpy_helper.from_array(np.array(high, np.float32), f"{name}_high")])
            clips[source] = onnx.helper.make_node("Clip", [source, f"{name}_low", f"{name}_high"], [name])
        bypass[node.output[0]] = clips[source].output[0]
    ordered = [clips[i.name] for i in model.graph.input if i.name in clips]
    for node in model.graph.node:
        if node.output[0] in quantizers or node.output[0] in bypass:
            continue
        node.input[:] = [bypass.get(name, name) for name in node.input]
        ordered.append(node)
        ordered.extend(clips[o] for o in node.output if o in clips)  # right after its producer: still topological
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


def with_float_weights(graph: onnx.ModelProto, floats: dict[str, np.ndarray], chosen: Callable[[str, str], bool],
                       rounding: Callable[[np.ndarray], np.ndarray] = lambda w: w) -> onnx.ModelProto:
    """The weights whose DequantizeLinear ``chosen(initializer, reader op)`` picks, read as ``rounding`` of their
    float value instead (the DequantizeLinear removed)."""
    model = copied(graph)
    constants = {t.name for t in model.graph.initializer}
    readers = collections.defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            readers[name].append(node.op_type)
    kept, replaced = [], {}
    for node in model.graph.node:
        stored = node.input[0] if node.op_type == "DequantizeLinear" else ""
        if stored in constants and any(chosen(stored, op) for op in readers[node.output[0]]):
            original = stored.removesuffix("_quantized")
            value = rounding(floats[original]).astype(np.float32)
            model.graph.initializer.append(numpy_helper.from_array(value, f"{original}_float"))
            replaced[node.output[0]] = f"{original}_float"
        else:
            kept.append(node)
    for node in kept:
        node.input[:] = [replaced.get(name, name) for name in node.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def mse_rounded(weight: np.ndarray) -> np.ndarray:
    """Per output channel, symmetric INT8 with the scale (0.5-1.0 x largest |w| / 127) of least squared error."""
    axes = tuple(range(1, weight.ndim))
    largest = np.abs(weight).max(axis=axes, keepdims=True)
    best, best_error = None, None
    for fraction in np.linspace(0.5, 1.0, 26):
        scale = np.where(largest > 0, largest * fraction / INT8_TOP, 1.0)
        rounded = np.clip(np.round(weight / scale), -INT8_TOP, INT8_TOP) * scale
        error = ((rounded - weight) ** 2).sum(axis=axes, keepdims=True)
        if best is None:
            best, best_error = rounded, error
        else:
            better = error < best_error
            best, best_error = np.where(better, rounded, best), np.where(better, error, best_error)
    return best


def bias_corrected(graph: onnx.ModelProto, float_graph: Path, work: Path) -> onnx.ModelProto:
    """``graph`` with the export's own bias correction (:func:`edge_iqa.export.bias_correction.correct_conv_biases`,
    on the calibration photos of the `onnxruntime` profile; the window means cached in ``work``)."""
    path = work / "corrected.onnx"
    onnx.save(graph, str(path))
    pixels = graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    rows = calibration.profile_split(load_target("onnxruntime")).calibration
    spec = get_model_info("edge_hybrid_n").preprocess
    correct_conv_biases(path, float_graph, lambda: calibration.iter_calibration_feeds(rows, spec, ("image",), pixels),
                        work / "window_means.npz")
    return onnx.load(str(path))


def block_of(initializer: str) -> str:
    match = re.match(r"model\.(backbone\.\d+|[a-z_]+)", initializer)
    return match.group(1) if match else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("float_graph", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    setup = trial(args.bundle)
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(args.float_graph)).graph.initializer}
    stored = [t.name for t in setup.graph.graph.initializer if t.name.endswith("_quantized")]
    missing = [name for name in stored if name.removesuffix("_quantized") not in floats]
    if missing:
        raise SystemExit(f"error: {args.float_graph} lacks {len(missing)} weights of the bundle (e.g. {missing[0]}); "
                         "pass the graph its own export quantized")
    saturated = clipped_activations(setup.graph, widen=False)
    weights_only = clipped_activations(setup.graph, widen=True)

    def is_conv(op: str) -> bool:
        return op == "Conv"

    variants = {
        "INT8 as built": setup.graph,
        "weights + saturation (activations not rounded)": saturated,
        "weights only (activations neither rounded nor saturated)": weights_only,
        "weights only, conv biases float": with_float_weights(
            weights_only, floats, lambda name, op: is_conv(op) and name.endswith("bias_quantized")),
        "weights only, conv weights float": with_float_weights(
            weights_only, floats, lambda name, op: is_conv(op) and not name.endswith("bias_quantized")),
        "weights only, conv weights on MSE scales": with_float_weights(
            weights_only, floats, lambda name, op: is_conv(op) and not name.endswith("bias_quantized"), mse_rounded),
        "INT8, conv weights on MSE scales": with_float_weights(
            setup.graph, floats, lambda name, op: is_conv(op) and not name.endswith("bias_quantized"), mse_rounded),
    }
    with tempfile.TemporaryDirectory() as work:
        variants["weights only, bias-corrected"] = bias_corrected(weights_only, args.float_graph, Path(work))
        variants["INT8, bias-corrected"] = bias_corrected(setup.graph, args.float_graph, Path(work))
    # What is left after the correction: the activations' rounding, then their saturation.
    variants["INT8, bias-corrected, activations not rounded"] = clipped_activations(
        variants["INT8, bias-corrected"], widen=False)
    for block in sorted({block_of(name) for name in stored if name.startswith("model.backbone.")},
                        key=lambda b: int(b.split(".")[1])):
        variants[f"weights only, {block} float"] = with_float_weights(
            weights_only, floats, lambda name, op, block=block: block_of(name) == block)
    networks = {name: QDQNetwork(graph).eval() for name, graph in variants.items()}
    scores: dict[str, list[float]] = {name: [] for name in networks}
    reference = []
    with torch.no_grad():
        for row in setup.split.validation:
            pixels = setup.spec.pixels(load_image(calibration.image_file(row)))
            for name, network in networks.items():
                scores[name].append(float(network(torch.from_numpy(pixels))[0].reshape(-1).mean()))
            reference.append(float(setup.teacher(torch.from_numpy(setup.spec.normalize_pixels(pixels))).mean()))
    reference_mos = np.array(reference) * setup.scale
    rows = {}
    for name, values in scores.items():
        error = np.abs(np.array(values) * setup.scale - reference_mos)
        rows[name] = {"mean": round(float(error.mean()), 3), "p99": round(float(np.percentile(error, 99)), 3),
                      "max": round(float(error.max()), 3)}
    print_json_report({"bundle": str(args.bundle), "photos": len(reference), "rows": rows,
                       "command": "python scripts/experiments/ort_int8_p99/error_sources.py QDQ_BUNDLE FLOAT_GRAPH"},
                      args.json)


if __name__ == "__main__":
    main()
