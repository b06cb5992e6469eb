"""By hand: bias correction of ONNX Runtime's INT8 convolutions, sequential and on the quantized network's own
inputs (what NNCF calls full bias correction), against the shipped fast one (export/bias_correction.py, float
inputs, every convolution at once). Convolution by convolution in graph order, the mean output of each channel
in the INT8 graph (with the corrections so far, run by ONNX Runtime without graph optimizations so that every
tensor keeps its name) is brought to the float graph's on the calibration crops, through the INT32 bias. That
also takes out the mean shifts that the rounding and saturation of the activations upstream leave.

    python scripts/experiments/ort_int8_p99/sequential_bias_correction.py UNCORRECTED_BUNDLE FLOAT_GRAPH OUT [CROPS]

UNCORRECTED_BUNDLE: a post-training ONNX Runtime INT8 bundle built with bias_correction = "none"; FLOAT_GRAPH:
the graph its quantize_static quantized (see error_sources.py); CROPS: calibration crops used (default 128).
"""

import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_copy import save_bundle  # noqa: E402

from edge_iqa.export import calibration  # noqa: E402
from edge_iqa.export.bias_correction import tensor_reader  # noqa: E402
from edge_iqa.export.qdq_network import dequantize_operands  # noqa: E402
from edge_iqa.export.targets import load_target  # noqa: E402
from edge_iqa.models import get_model_info  # noqa: E402

BATCH = 16


def channel_means(model: onnx.ModelProto, names: list[str], batches: list[dict[str, np.ndarray]]) -> dict:
    """Mean over the crops and positions of each channel of the named tensors (one ORT pass, no optimizations)."""
    read = tensor_reader(model, names)
    sums, count = {}, 0
    for batch in batches:
        for name, value in read(batch).items():
            part = value.astype(np.float64).sum(axis=(0, 2, 3)) / (value.shape[2] * value.shape[3])
            sums[name] = sums.get(name, 0) + part
        count += len(next(iter(batch.values())))
    return {name: total / count for name, total in sums.items()}


source, float_path, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
crops = int(sys.argv[4]) if len(sys.argv) > 4 else 128
graph = onnx.load(str(source / "model.onnx"))
float_model = onnx.load(str(float_path))
profile = load_target("onnxruntime")
spec = get_model_info("edge_hybrid_n").preprocess
rows = calibration.profile_split(profile).calibration
feeds = list(calibration.iter_calibration_feeds(rows, spec, ("image",), pixels=True))[:crops]
batches = [{"image": np.concatenate([f["image"] for f in feeds[i : i + BATCH]])} for i in range(0, len(feeds), BATCH)]
constants = {t.name: t for t in graph.graph.initializer}
producers = {n.output[0]: n for n in graph.graph.node}
convs = [n for n in graph.graph.node if n.op_type == "Conv" and len(n.input) == 3
         and producers.get(n.input[1]) is not None and producers[n.input[1]].op_type == "DequantizeLinear"]
float_outputs = {n.name: n.output[0] for n in float_model.graph.node if n.op_type == "Conv"}
wanted = channel_means(float_model, [float_outputs[n.name] for n in convs], batches)
print(f"{len(convs)} convolutions, {len(feeds)} crops", flush=True)
largest = 0.0
for index, node in enumerate(convs):
    got = channel_means(graph, [node.output[0]], batches)[node.output[0]]
    shift = got - wanted[float_outputs[node.name]]
    bias = producers[node.input[2]]
    integers, scale, _ = dequantize_operands(bias, constants)
    stored = constants[bias.input[0]]
    stored.CopyFrom(onnx.numpy_helper.from_array(np.round(integers - shift / scale).astype(np.int32), stored.name))
    largest = max(largest, float(np.abs(shift).max()))
    if index % 10 == 9:
        print(f"{index + 1} corrected, largest shift so far {largest:.4f}", flush=True)
save_bundle(graph, source, out)
print(f"written {out}", flush=True)
