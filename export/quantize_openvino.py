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

import onnx

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError
from edge_iqa.export.attention_forms import op_counts
from edge_iqa.export.backends import FeedFactory, read_prequantized_record, write_prequantized_record
from edge_iqa.export.graph_scopes import WRAPPER_PREFIX, module_paths, nodes_matching
from edge_iqa.export.targets import QuantizationSpec, TargetProfile

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
DEVICE = "CPU"
# Runtime precision of the floating-point parts: f32 keeps FP32 bundles exact on CPUs whose
# default is bf16 (AMX); fp16 bundles ask for f16 (CPUs without it fall back to f32).
INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f16", "int8": "f32"}
COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "MatMul", "FullyConnected", "Deconvolution")
INTEGER_PRECISIONS = ("I8", "U8")
# mean_minmax: NNCF's own choice (no range estimator passed): each per-tensor activation range is the
# mean over the calibration crops of their own min / max, per-channel ones the extremes. Passing
# MEAN_MINMAX explicitly is not the same: NNCF then applies it to every activation quantizer, and on
# the default model (PyTorch backend) validation p99 |dscore| went 2.45 -> 4.77 MOS points.
NNCF_RANGE = {"minmax": "MINMAX", "mean_minmax": None, "percentile": "MEAN_QUANTILE"}
#: ``openvino.convert_model`` names each op of a PyTorch model after its module: ``__module.<path>/aten::...``.
TORCH_SCOPE_PREFIX = f"__module.{WRAPPER_PREFIX}."


def build(onnx_fp32: Path, out_dir: Path, precision: str, target: TargetProfile, feeds: FeedFactory,
          work_dir: Path, *, exclude_nodes: list[str] | tuple[str, ...] = (), prequantized: Path | None = None,
          ) -> dict[str, Any]:
    """Write ``out_dir/model.xml`` + ``model.bin`` at ``precision``; returns manifest fragments.
    INT8 keeps the profile's keep_fp layers in floating point through NNCF's ignored scope, and
    ``exclude_nodes`` (ONNX node names, the blocks the accuracy search gave back) the way the
    search's candidates did: the full INT8 model with the FakeQuantize ops in front of those nodes
    bypassed (:func:`give_back`). So the bundle is the candidate the search measured, bit for bit;
    an NNCF rerun with the blocks in its ignored scope would recalibrate and draw a new rounding
    pattern (on the default model: validation p99 |dscore| 1.94 measured, 2.02 shipped).
    ``prequantized``: the folder of an INT8 network already quantized and fine-tuned
    (:func:`save_prequantized`, ``[quantization] qat_steps``), used instead of NNCF's
    post-training calibration."""
    import openvino as ov

    record: dict[str, Any] = {"model_file": MODEL_FILE, "quantization": None, "integer_kernels": None,
                              "runtime_options": runtime_options(precision, target)}
    if precision == "int8":
        model, record["quantization"] = quantize_int8(onnx_fp32, target, feeds, compress_weights=not exclude_nodes,
                                                      prequantized=prequantized)
        if exclude_nodes:
            from edge_iqa.export.accuracy_control import record_given_back

            model = give_back(model, op_names(onnx_fp32, exclude_nodes, prequantized is not None))
            record_given_back(record["quantization"], exclude_nodes,
                              "FakeQuantize in front of the nodes bypassed in the full INT8 model")
    else:
        model = read_onnx(onnx_fp32)
        if precision == "fp16":
            record["quantization"] = {"tool": "openvino.save_model", "compress_to_fp16": True}
    ov.save_model(model, str(out_dir / MODEL_FILE), compress_to_fp16=precision == "fp16")
    if precision == "int8":
        record["integer_kernels"] = inspect_integer_kernels(out_dir / MODEL_FILE, precision)
    return record


def read_onnx(onnx_fp32: Path) -> Any:
    """The ONNX graph as an OpenVINO model; a pixel-input graph's normalisation rebuilt exact
    (:func:`~edge_iqa.runtime.backends.openvino.exact_pixel_front`, the runtime does the same), so
    that NNCF's calibration sees the float rows of a float-input graph bit for bit."""
    import openvino as ov

    from edge_iqa.runtime.backends.openvino import exact_pixel_front

    model = ov.convert_model(str(onnx_fp32))
    if (spec := graph_pixel_spec(onnx_fp32)) is not None:
        exact_pixel_front(model, spec)
    return model


def graph_pixel_spec(onnx_fp32: Path) -> PreprocessSpec | None:
    """The normalisation a pixel-input graph records in its metadata (None for float rows)."""
    from edge_iqa.export.onnx_export import pixel_spec_of

    return pixel_spec_of(onnx.load(str(onnx_fp32), load_external_data=False))


def runtime_options(precision: str, target: TargetProfile) -> dict[str, Any]:
    options: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]}
    if target.threads:
        options["INFERENCE_NUM_THREADS"] = target.threads
    return options


def compile_model(xml: Path, precision: str, threads: int = 0) -> Any:
    """The CPU compile :func:`inspect_integer_kernels` reads the runtime model of."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(xml), DEVICE, config)


class _Reiterable:
    """NNCF walks the calibration set more than once (statistics, bias correction)."""

    def __init__(self, feeds: FeedFactory) -> None:
        self._feeds = feeds

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._feeds()


def op_pattern(onnx_node: str) -> str:
    """NNCF regex for the OpenVINO ops of one ONNX node (the ONNX frontend names an op after its
    node, with suffixes such as ``/WithoutBiases``)."""
    return f"^{re.escape(onnx_node)}(/.*)?$"


def _nncf_arguments(onnx_fp32: Path, target: TargetProfile, compress_weights: bool = True
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of ``nncf.quantize`` for the ONNX graph and the manifest record they produce."""
    import nncf
    from nncf.openvino.quantization.backend_parameters import BackendParameters

    spec = target.quantization
    # The search's give-back is not NNCF's ignored scope: see build().
    kept = nodes_matching(onnx.load(str(onnx_fp32)), spec.keep_fp)
    patterns = [op_pattern(name) for name in kept]
    kwargs, record = nncf_settings(spec, has_attention(onnx_fp32))
    kwargs["advanced_parameters"].backend_params = {BackendParameters.COMPRESS_WEIGHTS: compress_weights}
    kwargs["ignored_scope"] = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    record.update(kept_fp_nodes=kept, kept_fp_patterns=list(spec.keep_fp), kept_fp_by_accuracy_control=[])
    return kwargs, record


def nncf_settings(spec: QuantizationSpec, attention: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The profile's NNCF recipe, the same for the OpenVINO graph and for the PyTorch model of the
    quantization-aware fine-tuning (:mod:`edge_iqa.export.qat`): ``nncf.quantize`` keyword arguments
    without the ignored scope and subset size, and their manifest record."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    transformer = spec.model_type == "transformer" or (spec.model_type == "auto" and attention)
    estimator = NNCF_RANGE[spec.method]
    advanced = AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, estimator) if estimator else None,
        overflow_fix=OverflowFix[spec.overflow_fix.upper()],  # first_layer | enable | disable
        disable_channel_alignment=not spec.channel_alignment,
        disable_bias_correction=spec.bias_correction == "none")
    if spec.smooth_quant_alpha is not None:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=spec.smooth_quant_alpha)
    kwargs = {"preset": nncf.QuantizationPreset.MIXED, "target_device": nncf.TargetDevice.CPU,
              "model_type": nncf.ModelType.TRANSFORMER if transformer else None,
              "fast_bias_correction": spec.bias_correction == "fast", "advanced_parameters": advanced}
    record = {"tool": "nncf.quantize", "nncf_preset": "mixed", "target_device": "CPU",
              "model_type": "transformer" if transformer else None, "overflow_fix": spec.overflow_fix,
              "channel_alignment": spec.channel_alignment,
              "method": spec.method,
              "range_estimator": estimator or "NNCF default (MEAN_MINMAX per tensor, MINMAX per channel)",
              "subset_size": spec.calibration_samples,
              "smooth_quant_alpha": spec.smooth_quant_alpha, "bias_correction": spec.bias_correction}
    return kwargs, record


def quantize_int8(onnx_fp32: Path, target: TargetProfile, feeds: FeedFactory, compress_weights: bool = True,
                  prequantized: Path | None = None) -> tuple[Any, dict]:
    """The INT8 network with FakeQuantize ops (weights compressed to INT8 constants with
    ``compress_weights``) and its manifest record: NNCF's post-training quantization of the ONNX
    graph, or the network of ``prequantized`` (:func:`save_prequantized`) for that graph."""
    import nncf

    if prequantized is not None:
        return read_prequantized(prequantized, graph_pixel_spec(onnx_fp32), compress_weights)
    model = read_onnx(onnx_fp32)

    kwargs, record = _nncf_arguments(onnx_fp32, target, compress_weights)
    # One feed per crop: a multi-crop model (LoDa 15, GlintIQA 25 crops per image) must see the crops
    # of every calibration image, not only the first calibration_samples crops.
    kwargs["subset_size"] = record["subset_size"] = max(1, sum(1 for _ in feeds()))
    nncf.set_log_level(logging.WARNING)  # its per-layer INFO lines would bury the export progress
    try:
        quantized = nncf.quantize(model, nncf.Dataset(_Reiterable(feeds)), **kwargs)
    except Exception as exc:
        raise ExportError(f"NNCF INT8 quantization failed: {type(exc).__name__}: {exc}") from exc
    return quantized, record


def append_score_affine(xml: Path, slope: float, intercept: float) -> None:
    """Append ``score * slope + intercept`` (float32) in front of the IR's output, in place
    (:mod:`edge_iqa.export.score_correction`); the output keeps its name. Written beside and then
    renamed over the old files: a loaded model may still map the old ``.bin``."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    model = ov.Core().read_model(str(xml))
    if len(model.outputs) != 1:
        raise ExportError(f"{xml}: score correction needs a network with one output, got {len(model.outputs)}")
    result = model.get_results()[0]
    score = result.input_value(0)
    names = score.get_names()
    corrected = ops.add(ops.multiply(score, ops.constant(np.float32(slope))), ops.constant(np.float32(intercept)))
    score.get_tensor().set_names(set())
    corrected.output(0).get_tensor().set_names(names)
    result.input(0).replace_source_output(corrected.output(0))
    model.validate_nodes_and_infer_types()
    tmp = xml.with_name(f"corrected-{xml.name}")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    del model
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)


# --- candidates of the accuracy search (export/accuracy_control.py) ------------------------------------
SEARCH_PROXY = ("candidates: the full INT8 model (NNCF, weights not yet compressed) with the FakeQuantize ops in "
                "front of the block's ops bypassed (no recalibration)")


def bypass_fake_quantize(model: Any, onnx_nodes: list[str]) -> Any:
    """Copy of an NNCF-quantized ``ov.Model`` (FakeQuantize on activations and weights) where the
    OpenVINO ops of ``onnx_nodes`` read their inputs in floating point: every FakeQuantize feeding
    them is bypassed for that input (other consumers keep theirs). What NNCF's ignored scope does
    for those ops, with the same ranges for the rest and without recalibrating."""
    targets = set(onnx_nodes)
    clone = model.clone()
    for op in clone.get_ordered_ops():
        name = op.get_friendly_name()
        if name not in targets and name.split("/")[0] not in targets:
            continue
        for port in op.inputs():
            source = port.get_source_output()
            fq = source.get_node()
            if fq.get_type_name() == "FakeQuantize":
                port.replace_source_output(fq.input(0).get_source_output())
    clone.validate_nodes_and_infer_types()
    return clone


def give_back(quantized: Any, onnx_nodes: list[str]) -> Any:
    """The NNCF model (uncompressed FakeQuantize weights) with ``onnx_nodes`` back in floating point
    (:func:`bypass_fake_quantize`) and the other weights compressed to INT8 constants, the
    transformation NNCF's own weight compression runs (the same scores, a quarter of the file)."""
    from openvino._offline_transformations import compress_quantize_weights_transformation

    model = bypass_fake_quantize(quantized, onnx_nodes)
    compress_quantize_weights_transformation(model)
    return model


def candidate_builder(onnx_fp32: Path, full_int8: Path, target: TargetProfile, feeds: FeedFactory,
                      work_dir: Path, prequantized: Path | None = None) -> Callable[[list[str], Path], Path]:
    """Candidates of the mixed-precision search: one NNCF run with uncompressed (FakeQuantize) weights,
    then per candidate the FakeQuantize ops in front of the block bypassed (seconds, not a
    recalibration). ``build(..., exclude_nodes=...)`` makes the chosen candidate again, bit for bit."""
    import openvino as ov

    quantized, _ = quantize_int8(onnx_fp32, target, feeds, compress_weights=False, prequantized=prequantized)

    def build_candidate(nodes: list[str], out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        given_back = give_back(quantized, op_names(onnx_fp32, nodes, prequantized is not None))
        ov.save_model(given_back, str(out_dir / MODEL_FILE), compress_to_fp16=False)
        return out_dir / MODEL_FILE

    return build_candidate




def op_names(onnx_fp32: Path, onnx_nodes: list[str] | tuple[str, ...], from_pytorch: bool) -> list[str]:
    """How the OpenVINO ops of ``onnx_nodes`` are named: after the nodes in a network read from the
    ONNX graph; after their PyTorch module (``__module.model.<path>``, the prefix of every op
    ``openvino.convert_model`` makes for it) in a network converted from PyTorch (the fine-tuned one)."""
    if not from_pytorch:
        return list(onnx_nodes)
    wanted = set(onnx_nodes)
    return list(dict.fromkeys(f"{TORCH_SCOPE_PREFIX}{paths[-1]}" for node in onnx.load(str(onnx_fp32)).graph.node
                              if node.name in wanted and (paths := module_paths(node))))


def save_prequantized(model: Any, record: dict[str, Any], folder: Path) -> Path:
    """Keep a quantized network (FakeQuantize weights) and its manifest record for :func:`build`."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(folder / MODEL_FILE), compress_to_fp16=False)
    write_prequantized_record(folder, record)
    return folder


def read_prequantized(folder: Path, pixel_spec: PreprocessSpec | None = None, compress_weights: bool = True,
                      ) -> tuple[Any, dict[str, Any]]:
    """The network and record :func:`save_prequantized` kept, as NNCF's own output would be used: a
    pixel network (``pixel_spec``: its graph's, :func:`graph_pixel_spec`) gets its front made exact
    again, as :func:`read_onnx` does (the attribute is not saved in the IR)."""
    import openvino as ov
    from openvino._offline_transformations import compress_quantize_weights_transformation

    from edge_iqa.runtime.backends.openvino import exact_pixel_front

    model = ov.Core().read_model(str(folder / MODEL_FILE))
    if pixel_spec is not None:
        exact_pixel_front(model, pixel_spec)
    if compress_weights:
        compress_quantize_weights_transformation(model)
    return model, read_prequantized_record(folder)


def has_attention(onnx_fp32: Path) -> bool:
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
