"""Static compatibility check of an ONNX graph against a TensorRT version, without TensorRT.

TensorRT cannot be installed on machines without an NVIDIA GPU, so an export for a Jetson is
checked here against what that TensorRT's ONNX parser is documented to accept (the table in
``ops.toml``). It catches, before anything reaches the device:

- operators the parser does not import (and ORT-only ``com.microsoft`` ops such as
  ``MultiHeadAttention`` or ``QLinearConv``), or an opset outside the parser's range;
- the wrong attention form: a standard ``Attention`` op for TensorRT < 10.14, or an
  ``Attention`` form target whose graph has none;
- Q/DQ that TensorRT refuses: non-int8 (e.g. uint8) quantized types or non-zero zero points;
- dynamic spatial dims where the profile asks for static shapes (only the batch may vary);
- ``Resize`` with antialiasing, which TensorRT does not implement.

Run at export for TensorRT targets and by ``edge-iqa check BUNDLE``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge_iqa._compat import tomllib
from edge_iqa.errors import CompatibilityError
from edge_iqa.runtime.tensorrt.versions import parse_version

ORT_ONLY_DOMAINS = ("com.microsoft",)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _ops_table() -> dict:
    with resources.files("edge_iqa.runtime.tensorrt").joinpath("ops.toml").open("rb") as fh:
        return tomllib.load(fh)


def supported_ops(version: str) -> frozenset[str]:
    """ONNX op types TensorRT ``version``'s parser imports (default domain)."""
    wanted = parse_version(version)
    table = _ops_table()["ops"]
    ops = set(table["base"])
    for added_in, names in table.items():
        if added_in != "base" and parse_version(added_in) <= wanted:
            ops.update(names)
    return frozenset(ops)


def opset_range(version: str) -> tuple[int, int]:
    """(min, max) default-domain opset the parser of ``version`` accepts (nearest known lower entry)."""
    wanted = parse_version(version)
    known = sorted(((parse_version(v), r) for v, r in _ops_table()["opset_range"].items()), reverse=True)
    for known_version, (low, high) in known:
        if known_version <= wanted:
            return int(low), int(high)
    raise CompatibilityError(f"TensorRT {version} is older than the oldest supported (10.3)")


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    node: str = ""

    def __str__(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        return f"{self.rule}{where}: {self.message}"


@dataclass
class CompatibilityReport:
    tensorrt_version: str
    attention_form: str
    errors: list[Finding] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "tensorrt_version": self.tensorrt_version,
            "attention_form": self.attention_form,
            "ok": self.ok,
            "errors": [str(e) for e in self.errors],
            "op_counts": dict(sorted(self.op_counts.items())),
        }

    def raise_if_failed(self) -> None:
        if self.errors:
            listing = "\n  ".join(str(e) for e in self.errors[:20])
            more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
            raise CompatibilityError(
                f"the graph will not build on TensorRT {self.tensorrt_version}:\n  {listing}{more}\n"
                "Export with the target profile made for this TensorRT version (e.g. --target jetson for "
                "JetPack 6 / TensorRT 10.3), which picks a compatible attention form and opset."
            )


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _constant_outputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def check_graph(
    model: onnx.ModelProto | str | Path,
    tensorrt_version: str,
    attention_form: str,
    static_shapes: bool = True,
) -> CompatibilityReport:
    """Check ``model`` against TensorRT ``tensorrt_version`` and the profile's attention form
    (``onnx_attention`` | ``matmul_softmax``). Returns a report; nothing is raised here."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    report = CompatibilityReport(tensorrt_version, attention_form)
    ops = supported_ops(tensorrt_version)
    low, high = opset_range(tensorrt_version)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not low <= opset.version <= high:
            report.errors.append(Finding("opset", f"default-domain opset {opset.version} is outside "
                                                  f"TensorRT {tensorrt_version}'s range {low}..{high}"))

    counts: Counter[str] = Counter()
    for node in model.graph.node:
        domain = node.domain or ""
        key = node.op_type if domain in ("", "ai.onnx") else f"{domain}.{node.op_type}"
        counts[key] += 1
        if domain in ORT_ONLY_DOMAINS:
            report.errors.append(Finding("ort-only-op", f"{key} is an ONNX Runtime contrib op that "
                                                        "TensorRT does not parse", node.name))
        elif domain not in ("", "ai.onnx"):
            report.errors.append(Finding("custom-domain", f"{key} needs a TensorRT plugin", node.name))
        elif node.op_type not in ops:
            report.errors.append(Finding("unsupported-op", f"{node.op_type} is not imported by TensorRT "
                                                           f"{tensorrt_version}'s ONNX parser", node.name))
        if node.op_type == "Resize":
            for attr in node.attribute:
                if attr.name == "antialias" and attr.i:
                    report.errors.append(Finding("resize-antialias", "TensorRT does not implement "
                                                                     "antialiased Resize", node.name))
    report.op_counts = dict(counts)

    attention_nodes = counts.get("Attention", 0)
    if attention_form == "matmul_softmax":
        if attention_nodes:
            report.errors.append(Finding("attention-form", f"{attention_nodes} ONNX Attention op(s) in a "
                                         "graph for the MatMul-Softmax-MatMul form"))
    elif attention_form == "onnx_attention":
        if "Attention" not in ops:
            report.errors.append(Finding("attention-form", f"TensorRT {tensorrt_version} does not parse the "
                                         "ONNX Attention op (10.14+); use attention_form = \"matmul_softmax\""))
    else:
        report.errors.append(Finding("attention-form", f"attention form {attention_form!r} is not one that "
                                     "TensorRT runs; use onnx_attention (10.14+) or matmul_softmax"))

    _check_qdq(model, report)
    if static_shapes:
        _check_static_inputs(model, report)
    return report


def _check_qdq(model: onnx.ModelProto, report: CompatibilityReport) -> None:
    """TensorRT takes explicit quantization as int8 Q/DQ pairs with zero point 0 only."""
    constants = {**_initializers(model), **_constant_outputs(model)}
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        if len(node.input) < 3 or not node.input[2]:
            # No zero point means uint8 with zero 0 per the ONNX spec, unless output_dtype says otherwise.
            output_dtype = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
            if node.op_type == "QuantizeLinear" and output_dtype not in (0, onnx.TensorProto.INT8):
                report.errors.append(Finding("qdq-type", "Q/DQ without zero point must be int8", node.name))
            continue
        zero_point = constants.get(node.input[2])
        if zero_point is None:
            report.errors.append(Finding("qdq-zero-point", "zero point is not a constant", node.name))
            continue
        if zero_point.dtype != np.int8:
            report.errors.append(Finding("qdq-type", f"{zero_point.dtype} Q/DQ: TensorRT needs int8 "
                                         "(symmetric) quantization", node.name))
        if np.any(zero_point != 0):
            report.errors.append(Finding("qdq-zero-point", "non-zero zero point: TensorRT needs symmetric "
                                         "quantization", node.name))


def _check_static_inputs(model: onnx.ModelProto, report: CompatibilityReport) -> None:
    initializer_names = {init.name for init in model.graph.initializer}
    for graph_input in model.graph.input:
        if graph_input.name in initializer_names:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis == 0:
                continue  # the batch dimension is the one dynamic axis (optimisation profile)
            if not dim.HasField("dim_value"):
                report.errors.append(Finding("dynamic-shape", f"input {graph_input.name} axis {axis} is dynamic "
                                             f"({dim.dim_param or '?'}); TensorRT targets export static H, W"))
