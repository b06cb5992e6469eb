"""OpenVINO artifacts: ONNX -> IR with ``openvino.convert_model`` + ``save_model`` (FP16 weight
compression for fp16), INT8 with ``nncf.quantize`` calibrated on the shipped images, and the
check that INT8 really runs integer kernels in the compiled CPU model."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_iqa.errors import ExportError
from edge_iqa.export.attention_forms import op_counts
from edge_iqa.export.graph_scopes import nodes_matching
from edge_iqa.export.parity import Feeds, Runner
from edge_iqa.export.targets import TargetProfile

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
DEVICE = "CPU"
FeedFactory = Callable[[], Iterator[dict[str, Any]]]
# Runtime precision of the floating-point parts: f32 keeps FP32 bundles exact on CPUs whose
# default is bf16 (AMX); fp16 bundles ask for f16 (CPUs without it fall back to f32).
INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f16", "int8": "f32"}
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "MatMul", "FullyConnected", "Deconvolution")
INTEGER_PRECISIONS = ("I8", "U8")
NNCF_RANGE = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE"}


def build(onnx_fp32: Path, out_dir: Path, precision: str, target: TargetProfile, feeds: FeedFactory,
          work_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/model.xml`` + ``model.bin`` at ``precision``; returns manifest fragments."""
    import openvino as ov

    model = ov.convert_model(str(onnx_fp32))
    record: dict[str, Any] = {"model_file": MODEL_FILE, "quantization": None, "integer_kernels": None,
                              "runtime_options": runtime_options(precision, target)}
    if precision == "int8":
        model, record["quantization"] = quantize_int8(model, onnx_fp32, target, feeds)
    elif precision == "fp16":
        record["quantization"] = {"tool": "openvino.save_model", "compress_to_fp16": True}
    ov.save_model(model, str(out_dir / MODEL_FILE), compress_to_fp16=precision == "fp16")
    if precision == "int8":
        record["integer_kernels"] = inspect_integer_kernels(out_dir / MODEL_FILE, precision)
    return record


def runtime_options(precision: str, target: TargetProfile) -> dict[str, Any]:
    options: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]}
    if target.threads:
        options["INFERENCE_NUM_THREADS"] = target.threads
    return options


def compile_model(xml: Path, precision: str, threads: int = 0) -> Any:
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(xml), DEVICE, config)


def runner(xml: Path, precision: str, threads: int = 0) -> Runner:
    compiled = compile_model(xml, precision, threads)
    names = [port.get_any_name() for port in compiled.inputs]

    def run(feeds: Feeds) -> np.ndarray:
        return compiled({n: feeds[n] for n in names})[compiled.output(0)]

    return run


class _Reiterable:
    """NNCF walks the calibration set more than once (statistics, bias correction)."""

    def __init__(self, feeds: FeedFactory) -> None:
        self._feeds = feeds

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._feeds()


def _ignored_patterns(onnx_fp32: Path, keep_fp: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """ONNX node names to keep in floating point, and NNCF regexes for their OpenVINO ops (the
    ONNX frontend names an op after its node, with suffixes such as ``/WithoutBiases``)."""
    kept = nodes_matching(onnx.load(str(onnx_fp32)), keep_fp)
    return kept, [f"^{re.escape(name)}(/.*)?$" for name in kept]


def _nncf_arguments(onnx_fp32: Path, target: TargetProfile) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments shared by ``nncf.quantize`` and ``quantize_with_accuracy_control``, and
    the manifest record they produce."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    spec = target.quantization
    kept, patterns = _ignored_patterns(onnx_fp32, spec.keep_fp)
    has_attention = _has_attention(onnx_fp32)
    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, NNCF_RANGE[spec.method]))
    kwargs = {"preset": nncf.QuantizationPreset.MIXED, "target_device": nncf.TargetDevice.CPU,
              "subset_size": spec.calibration_samples,
              "model_type": nncf.ModelType.TRANSFORMER if has_attention else None,
              "ignored_scope": nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None,
              "advanced_quantization_parameters": advanced}
    record = {"tool": "nncf.quantize", "nncf_preset": "mixed", "target_device": "CPU",
              "model_type": "transformer" if has_attention else None, "method": spec.method,
              "range_estimator": NNCF_RANGE[spec.method], "subset_size": spec.calibration_samples,
              "kept_fp_nodes": kept, "kept_fp_patterns": list(spec.keep_fp)}
    return kwargs, record


def quantize_int8(model: Any, onnx_fp32: Path, target: TargetProfile, feeds: FeedFactory) -> tuple[Any, dict]:
    import nncf

    kwargs, record = _nncf_arguments(onnx_fp32, target)
    advanced = kwargs.pop("advanced_quantization_parameters")
    # One feed per crop: a multi-crop model (LoDa 15, GlintIQA 25 crops per image) must see the crops
    # of every calibration image, not only the first calibration_samples crops.
    kwargs["subset_size"] = record["subset_size"] = max(1, sum(1 for _ in feeds()))
    nncf.set_log_level(logging.WARNING)  # its per-layer INFO lines would bury the export progress
    try:
        quantized = nncf.quantize(model, nncf.Dataset(_Reiterable(feeds)), advanced_parameters=advanced, **kwargs)
    except Exception as exc:
        raise ExportError(f"NNCF INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
    return quantized, record


class _LogCapture(logging.Handler):
    """NNCF's accuracy-control report only exists as log lines: keep them, print none."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def quantize_with_budget(onnx_fp32: Path, out_dir: Path, target: TargetProfile, feeds: FeedFactory,
                         validation: Any, budget: float, node_blocks: dict[str, str]) -> tuple[dict, dict]:
    """INT8 IR by ``nncf.quantize_with_accuracy_control``: NNCF quantizes, measures SROCC against
    MOS on the validation images (our ``validation_fn``), ranks its quantizer groups on the first
    ``sensitivity_images`` of them and reverts the worst to floating point until the SROCC drop
    is at most ``budget`` (or ``max_kept_blocks`` reverts). Writes ``model.xml``; returns the build
    record and the accuracy-control record (reverted operations, their blocks, NNCF's figures)."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from edge_iqa.export.calibration import model_feeds
    from edge_iqa.metrics import srocc

    spec = target.quantization
    names = validation.input_names
    items = list(range(len(validation.stacks)))

    def validate(compiled: Any, data: Any) -> tuple[float, list[list[np.ndarray]]]:
        # The metric is -|SROCC(model) - SROCC(PyTorch FP32)| against MOS: NNCF's drop (FP32 metric
        # minus INT8 metric, about 0 - (-|delta|)) is then our |delta SROCC|, in either direction.
        indices = list(data)
        outputs = [compiled(model_feeds(validation.stacks[i], names))[compiled.output(0)] for i in indices]
        scores = np.array([float(np.mean(out)) for out in outputs])
        mos, reference = validation.mos[indices], validation.reference[indices]
        metric = float("nan")
        if len(indices) >= 3 and np.ptp(scores) > 0 and np.ptp(reference) > 0:
            metric = -abs(srocc(scores, mos) - srocc(reference, mos))
        # Per-item outputs (not per-item metrics: SROCC has none): NNCF ranks on output change.
        return metric, [[out] for out in outputs]

    kwargs, record = _nncf_arguments(onnx_fp32, target)
    # One ranking worker: NNCF's worker-count estimate divides by timings and counts that can be 0
    # (seen as "float division by zero" on a loaded machine), and the CPU is shared anyway.
    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=spec.max_kept_blocks,
                                                  ranking_subset_size=min(spec.sensitivity_images, len(items)),
                                                  num_ranking_workers=1)
    capture = _LogCapture()
    logger = logging.getLogger("nncf")
    handlers = [(h, h.level) for h in logger.handlers]
    level = logger.level
    for handler, _ in handlers:
        handler.setLevel(logging.WARNING)
    logger.setLevel(logging.INFO)
    logger.addHandler(capture)
    try:
        quantized = nncf.quantize_with_accuracy_control(
            ov.convert_model(str(onnx_fp32)), nncf.Dataset(_Reiterable(feeds)),
            nncf.Dataset(items, lambda i: model_feeds(validation.stacks[i], names)), validate,
            max_drop=budget, drop_type=nncf.DropType.ABSOLUTE, advanced_accuracy_restorer_parameters=restorer,
            **kwargs)
    except Exception as exc:
        raise ExportError(f"NNCF INT8 quantization with accuracy control failed: {type(exc).__name__}: {exc}"
                          ) from exc
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
        for handler, old in handlers:
            handler.setLevel(old)
    ov.save_model(quantized, str(out_dir / MODEL_FILE), compress_to_fp16=False)
    build = {"model_file": MODEL_FILE, "runtime_options": runtime_options("int8", target),
             "quantization": {**record, "tool": "nncf.quantize_with_accuracy_control",
                              "max_drop": budget, "drop_type": "absolute"},
             "integer_kernels": inspect_integer_kernels(out_dir / MODEL_FILE, "int8")}
    return build, nncf_report(capture.lines, node_blocks)


def _op_names(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n")[1:] if line.strip()]


def nncf_report(lines: list[str], node_blocks: dict[str, str]) -> dict[str, Any]:
    """The reverted operations and figures of NNCF's accuracy-control log, mapped to our blocks
    (an OpenVINO op is named after its ONNX node, plus suffixes such as ``/WithoutBiases``)."""

    def block_of(op: str) -> str:
        base = op.split("/")[0]
        return node_blocks.get(op) or node_blocks.get(base) or op

    steps: list[dict[str, Any]] = []
    final_ops: list[str] | None = None
    figures: dict[str, float] = {}
    number = r"(-?[0-9.]+(?:e-?[0-9]+)?|nan)"
    for line in lines:
        if match := re.match(r"Reverted (\d+) operations to the floating-point precision:", line):
            ops = _op_names(line)
            steps.append({"reverted_operations": ops, "blocks": sorted({block_of(o) for o in ops}),
                          "accuracy_drop_after": None})
        elif (match := re.search(r"(?:new quantization scope is|achieved required accuracy drop) " + number,
                                 line)) and steps:
            steps[-1]["accuracy_drop_after"] = float(match.group(1))
        elif re.match(r"\d+ out of \d+ were reverted back to the floating-point precision:", line):
            final_ops = _op_names(line)
        elif match := re.match(r"Metric of (initial|quantized) model: " + number, line):
            figures[f"metric_{match.group(1)}"] = float(match.group(2))
        elif match := re.match(r"Accuracy drop: " + number, line):
            figures["initial_drop"] = float(match.group(1))
    kept_ops = final_ops if final_ops is not None else [o for s in steps for o in s["reverted_operations"]]
    kept_blocks = list(dict.fromkeys(block_of(o) for o in kept_ops))
    return {"tool": "nncf.quantize_with_accuracy_control",
            "validation_metric": "-|SROCC - SROCC(PyTorch FP32)| against MOS on the validation images "
                                 "(our validation_fn): NNCF's drop is |delta SROCC|",
            "ranking": "NNCF: change of the model outputs (normalized MSE vs FP32) on the ranking subset",
            "kept_blocks": kept_blocks, "kept_operations": kept_ops, "steps": steps, "nncf_figures": figures,
            "log": [line for line in lines if not line.startswith("Reverted")][-12:]}


def _has_attention(onnx_fp32: Path) -> bool:
    counts = op_counts(onnx.load(str(onnx_fp32)))
    return bool(counts["Attention"] or counts["Softmax"])


def inspect_integer_kernels(xml: Path, precision: str = "int8") -> dict[str, Any]:
    """Compile for CPU and read the runtime model: how many Convolution/MatMul/FullyConnected
    layers execute with I8/U8 ``runtimePrecision``. Raises if none do."""
    runtime_model = compile_model(xml, precision).get_runtime_model()
    by_precision: Counter[str] = Counter()
    for op in runtime_model.get_ops():
        info = op.get_rt_info()
        keys = set(info.keys())
        layer = info["layerType"].astype(str) if "layerType" in keys else ""
        if layer in COMPUTE_LAYERS:
            by_precision[info["runtimePrecision"].astype(str).upper() if "runtimePrecision" in keys else "?"] += 1
    integer = sum(by_precision[p] for p in INTEGER_PRECISIONS)
    record = {"backend": f"openvino {DEVICE} runtime model", "compute_layers_by_runtime_precision":
              dict(by_precision), "integer_kernel_count": integer}
    if not integer:
        raise ExportError("the INT8 OpenVINO model runs no integer kernels on CPU (no Convolution/MatMul with "
                          "runtimePrecision I8/U8); quantization did not take effect")
    return record
