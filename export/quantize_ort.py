"""ONNX Runtime artifacts: FP32 as exported, FP16 by ``onnxruntime.transformers.float16``, INT8 by
``onnxruntime.quantization.quantize_static`` (QDQ, per-channel weights, calibrated on the shipped
images), and the check that INT8 really runs integer kernels in ORT's optimized graph."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx

from edge_iqa.checksums import sha256_hex
from edge_iqa.errors import ExportError
from edge_iqa.export.backends import FeedFactory, read_prequantized_record, write_prequantized_record
from edge_iqa.export.bias_correction import correct_conv_biases
from edge_iqa.export.graph_scopes import nodes_matching
from edge_iqa.export.targets import TargetProfile

MODEL_FILE = "model.onnx"
# Ops through which ORT executes integer arithmetic for Conv / MatMul / Gemm.
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QGemm", "MatMulIntegerToFloat",
               "DynamicQuantizeMatMul", "QAttention")
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
# Bumped when the same profile keys build another INT8 graph (2: bias correction, whose key was ignored
# here before), so caches named after a recipe (scripts/quantization_study.py) do not reuse old builds.
RECIPE_REVISION = 2


def build(onnx_fp32: Path, out_dir: Path, precision: str, target: TargetProfile, feeds: FeedFactory,
          work_dir: Path, *, exclude_nodes: list[str] | tuple[str, ...] = (), prequantized: Path | None = None,
          ) -> dict[str, Any]:
    """Write ``out_dir/model.onnx`` at ``precision``; returns the manifest fragments
    (``model_file``, ``quantization``, ``integer_kernels``, ``runtime_options``). INT8 keeps the
    profile's keep_fp layers and ``exclude_nodes`` (ONNX node names) in floating point.
    ``prequantized``: the folder of the fine-tuned INT8 graph (:func:`save_prequantized`,
    ``[quantization] qat_steps``), used instead of a new ``quantize_static``; ``exclude_nodes`` are
    then given back in it as the search's candidates were (:func:`give_back`), so the bundle is the
    candidate the search measured."""
    dst = out_dir / MODEL_FILE
    record: dict[str, Any] = {"model_file": MODEL_FILE, "quantization": None, "integer_kernels": None,
                              "runtime_options": {"intra_op_num_threads": target.threads,
                                                  "graph_optimization_level": "ORT_ENABLE_ALL"}}
    if precision == "fp32":
        shutil.copyfile(onnx_fp32, dst)
    elif precision == "fp16":
        to_fp16(onnx_fp32, dst)
        record["quantization"] = {"tool": "onnxruntime.transformers.float16", "keep_io_types": True}
    elif prequantized is not None:
        from edge_iqa.export.accuracy_control import record_given_back

        give_back(prequantized / MODEL_FILE, list(exclude_nodes), dst)
        record["quantization"] = read_prequantized_record(prequantized)
        if exclude_nodes:
            record_given_back(record["quantization"], exclude_nodes, GIVEN_BACK_BY)
        record["integer_kernels"] = inspect_integer_kernels(dst, work_dir)
    else:
        record["quantization"] = quantize_int8(onnx_fp32, dst, target, feeds, work_dir, exclude_nodes)
        record["integer_kernels"] = inspect_integer_kernels(dst, work_dir)
    return record


def candidate_builder(onnx_fp32: Path, full_int8: Path, target: TargetProfile, feeds: FeedFactory,
                      work_dir: Path, prequantized: Path | None = None) -> Callable[[list[str], Path], Path]:
    """Candidates of the mixed-precision search: ``quantize_static`` with the nodes excluded, from the
    cached activation ranges of the full INT8 build (no recalibration); from a fine-tuned graph
    (``prequantized``), that graph with the nodes given back (:func:`give_back`)."""

    def build_candidate(nodes: list[str], out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        if prequantized is not None:
            return give_back(prequantized / MODEL_FILE, nodes, out_dir / MODEL_FILE)
        quantize_int8(onnx_fp32, out_dir / MODEL_FILE, target, feeds, work_dir, nodes)
        return out_dir / MODEL_FILE

    return build_candidate


GIVEN_BACK_BY = ("activation QuantizeLinear -> DequantizeLinear pairs in front of the nodes bypassed and their "
                 "integer weights dequantized, in the fine-tuned INT8 graph")


def save_prequantized(model: onnx.ModelProto, record: dict[str, Any], folder: Path) -> Path:
    """Keep the fine-tuned INT8 graph and its manifest record for :func:`build` and the search."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / MODEL_FILE))
    write_prequantized_record(folder, record)
    return folder


def give_back(qdq_model: Path, nodes: list[str], out: Path) -> Path:
    """Copy of an INT8 Q/DQ graph in which ``nodes`` compute in floating point: the activation pairs
    in front of them bypassed and the integer weights and biases they read replaced by their float
    values (:func:`~edge_iqa.export.accuracy_control.strip_qdq`). Nothing else changes."""
    from edge_iqa.export.accuracy_control import strip_qdq

    return strip_qdq(qdq_model, nodes, out, dequantize_weights=True)


SEARCH_PROXY = ("candidates: quantize_static with nodes_to_exclude from the cached calibration ranges; from a "
                "fine-tuned graph (qat_steps), that graph with the blocks given back (quantize_ort.give_back)")


def append_score_affine(model_path: Path, slope: float, intercept: float) -> None:
    """Append ``score * slope + intercept`` (float32 Mul, Add) in front of the graph's output, in
    place (:mod:`edge_iqa.export.score_correction`); the output keeps its name."""
    import numpy as np
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    if len(model.graph.output) != 1:
        raise ExportError(f"{model_path}: score correction needs a network with one output, "
                          f"got {len(model.graph.output)}")
    score = model.graph.output[0].name
    uncorrected = f"{score}_before_correction"
    for node in model.graph.node:
        node.output[:] = [uncorrected if name == score else name for name in node.output]
        node.input[:] = [uncorrected if name == score else name for name in node.input]
    model.graph.initializer.extend([numpy_helper.from_array(np.array(slope, np.float32), f"{score}_slope"),
                                    numpy_helper.from_array(np.array(intercept, np.float32), f"{score}_intercept")])
    model.graph.node.extend([
        helper.make_node("Mul", [uncorrected, f"{score}_slope"], [f"{score}_scaled"], name=f"{score}_correction_mul"),
        helper.make_node("Add", [f"{score}_scaled", f"{score}_intercept"], [score], name=f"{score}_correction_add")])
    onnx.checker.check_model(model)
    tmp = model_path.with_name(f"corrected-{model_path.name}")
    onnx.save(model, str(tmp))
    tmp.replace(model_path)


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and activations; float32 ``image`` in and ``score`` out (keep_io_types)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


class _Reader:
    """``CalibrationDataReader`` over a feed factory (subclassed lazily: ORT imports late)."""

    def __init__(self, feeds: FeedFactory) -> None:
        self._iter = feeds()

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)


def quantize_int8(src: Path, dst: Path, target: TargetProfile, feeds: FeedFactory, work_dir: Path,
                  exclude_nodes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """QDQ INT8 of ``src``. The activation ranges are cached in ``work_dir`` (ORT's
    ``calibration_cache_path``): another call with other exclusions reuses them instead of
    recalibrating, which is what makes the mixed-precision search affordable."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    spec = target.quantization
    methods = {"minmax": CalibrationMethod.MinMax, "mean_minmax": CalibrationMethod.MinMax,
               "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}
    # mean_minmax: ORT's min-max calibrator with "moving average" over one pass of all calibration crops,
    # i.e. each range the mean of the crops' own min / max (as NNCF's default), not their extremes.
    calibration_options = {"CalibTensorRangeSymmetric": False, "CalibMovingAverage": spec.method == "mean_minmax"}
    # Shape inference + graph cleanup that ORT recommends before quantization. Its symbolic shape
    # inference does not know every op (e.g. the opset-23 Attention op): then quantize as exported.
    key = _source_key(src)
    prepared = work_dir / f"int8_preprocessed_{key}.onnx"
    preprocessed = prepared.is_file()
    if not preprocessed:
        try:
            quant_pre_process(str(src), str(prepared))
            preprocessed = True
        except Exception:  # noqa: BLE001 - any failure just means "quantize the graph as exported"
            prepared.unlink(missing_ok=True)
    if not preprocessed:
        prepared = src
    if spec.method in HISTOGRAM_METHODS:
        refuse_unaffordable_histograms(prepared, spec.method, sum(1 for _ in feeds()))
    # Matched on the exported graph: pre-processing drops the node metadata but keeps node names.
    prepared_names = {n.name for n in onnx.load(str(prepared)).graph.node}
    by_pattern = nodes_matching(onnx.load(str(src)), spec.keep_fp)
    kept = [name for name in dict.fromkeys([*by_pattern, *exclude_nodes]) if name in prepared_names]
    # Named after everything that decides the ranges: the graph and which photos calibrate how.
    photos = f"{spec.calibration_samples}_{spec.calibration_selection}_{spec.seed}"  # which photos, how drawn
    cache = work_dir / f"ort_calibration_{key}_{spec.method}_{photos}.json"
    reader = type("CalibrationReader", (_Reader, CalibrationDataReader), {})(feeds)
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # quantize_static logs a per-channel axis warning per LayerNorm weight
    try:
        quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[spec.method], nodes_to_exclude=kept,
                        extra_options=calibration_options, calibration_cache_path=str(cache))
    except Exception as exc:
        raise ExportError(f"ONNX Runtime INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
    finally:
        root_logger.setLevel(level)
    # The float graph's window means depend on the graph and the calibration photos only: one file for every
    # candidate of the mixed-precision search, named as the calibration ranges are.
    means = work_dir / f"bias_correction_means_{key}_{photos}.npz"
    corrected = (correct_conv_biases(dst, prepared, feeds, means) if spec.bias_correction == "fast"
                 else {"method": "none"})
    return {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ", "per_channel": True,
            "activations": "uint8", "weights": "int8", "method": spec.method, "preprocessed": preprocessed,
            "bias_correction": corrected,
            "kept_fp_nodes": kept, "kept_fp_patterns": list(spec.keep_fp),
            "kept_fp_by_accuracy_control": [n for n in kept if n not in set(by_pattern)]}


HISTOGRAM_METHODS = ("percentile", "entropy")
HISTOGRAM_MEMORY_SHARE = 0.8  # of the memory available now: the rest is the process, the model, the OS


def refuse_unaffordable_histograms(model_path: Path, method: str, crops: int) -> None:
    """ONNX Runtime's histogram calibrators (percentile, entropy) keep every intermediate float tensor
    of every calibration crop in memory before they histogram them (only MinMax merges as it goes:
    ``CalibMaxIntermediateOutputs``); 128 photos of the default model at 384x384 need about 22 GB and
    were killed by the kernel's OOM killer on a 24 GB machine. Estimated from the graph's inferred
    shapes (batch 1) and refused before calibrating, with what to change; unknown shapes or a system
    without ``/proc/meminfo`` are not checked."""
    import numpy as np

    available = _available_bytes()
    model = onnx.load(str(model_path))
    graph = model.graph if model.graph.value_info else onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: v.type.tensor_type for v in [*graph.value_info, *graph.output]}
    per_crop = 0
    for name in (o for node in graph.node for o in node.output):
        tensor = shapes.get(name)
        if tensor is None or tensor.elem_type != onnx.TensorProto.FLOAT:
            continue
        per_crop += 4 * int(np.prod([d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim]))
    if available is None or per_crop == 0:
        return
    need = per_crop * crops
    if need > HISTOGRAM_MEMORY_SHARE * available:
        fits = int(HISTOGRAM_MEMORY_SHARE * available // per_crop)
        raise ExportError(
            f"ONNX Runtime's {method} calibration keeps every intermediate tensor of every calibration crop in "
            f"memory: about {need / 1e9:.1f} GB for {crops} crops ({per_crop / 1e6:.0f} MB each), and "
            f"{available / 1e9:.1f} GB are available. Use method = 'minmax' (it merges the ranges as it goes), fewer "
            f"calibration photos (at most {fits} crops fit: calibration_samples x the model's crops per photo), or a "
            "machine with more memory")


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _source_key(src: Path) -> str:
    """Names the cached pre-processed graph and calibration ranges after the graph they came from."""
    stat = src.stat()
    return sha256_hex(f"{src.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", length=12)


def inspect_integer_kernels(model_path: Path, work_dir: Path) -> dict[str, Any]:
    """What ORT will run: QDQ nodes feeding Conv/MatMul/Gemm in the saved graph, and the integer
    ops (QLinearConv, QLinearMatMul, ...) in ORT's optimized graph. Raises if there are none."""
    import onnxruntime as ort

    graph = onnx.load(str(model_path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    qdq_fed = sum(1 for n in graph.node if n.op_type in COMPUTE_OPS
                  and producer.get(n.input[0]) == "DequantizeLinear")
    float_compute = sum(1 for n in graph.node if n.op_type in COMPUTE_OPS) - qdq_fed
    optimized_path = work_dir / "int8_ort_optimized.onnx"
    options = ort.SessionOptions()
    # EXTENDED fuses QDQ groups into integer ops without the hardware-specific NCHWc layout.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized_path)
    ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    optimized = Counter(n.op_type for n in onnx.load(str(optimized_path)).graph.node)
    integer_ops = {op: optimized[op] for op in INTEGER_OPS if optimized[op]}
    record = {"backend": "onnxruntime CPUExecutionProvider", "qdq_fed_compute_nodes": qdq_fed,
              "float_compute_nodes": float_compute, "optimized_integer_ops": integer_ops,
              "optimized_float_compute_ops": {op: optimized[op] for op in COMPUTE_OPS if optimized[op]},
              "integer_kernel_count": sum(integer_ops.values())}
    if not integer_ops:
        raise ExportError("the INT8 model runs no integer kernels in ONNX Runtime (no QLinearConv/QLinearMatMul/"
                          "MatMulInteger after optimization); quantization did not take effect")
    return record
