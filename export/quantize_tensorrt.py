"""TensorRT bundles: the ONNX the device builds from, its build recipe, a device README, and the
static compatibility check; INT8 through NVIDIA Model Optimizer (explicit int8 Q/DQ).

Engines are built on the device (TensorRT engines are tied to GPU and TensorRT version), so the
"build" here produces what the device needs. What the graph holds depends on the TensorRT family
of the target (:mod:`edge_iqa.runtime.tensorrt.versions`):

- 10.3-10.11 (jetson, weakly typed): an FP32 graph (+ int8 Q/DQ for INT8); the builder flags
  ``FP16``/``INT8`` pick the precision on the device.
- 10.12+ and 11.x (desktop-gpu, strongly typed): the graph *is* the precision: FP16 = FP16 weights
  and activations (onnxconverter-common's FP16 conversion, inputs/outputs kept FP32), INT8 = int8
  Q/DQ with FP16 as the high precision (modelopt ``high_precision_dtype="fp16"``).

Accuracy is measured on this machine by running the bundle's graph in ONNX Runtime on the CPU (the
Q/DQ graph for INT8; for FP16 the FP16 graph itself, or an FP16 copy of the FP32 graph for weakly
typed targets). That is a proxy for TensorRT's kernels and is recorded as one in the manifest.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edge_iqa.errors import ExportError
from edge_iqa.export.backends import FeedFactory
from edge_iqa.export.graph_scopes import nodes_matching
from edge_iqa.export.quantize_modelopt import quantize_int8_qdq
from edge_iqa.export.targets import TargetProfile
from edge_iqa.runtime.manifest import Manifest
from edge_iqa.runtime.tensorrt.recipe import MODEL_FILE, RECIPE_NAME, BuildRecipe, target_recipe
from edge_iqa.runtime.tensorrt.static_check import check_graph

DEVICE_README = "README.md"
ACCURACY_PROXY = ("ONNX Runtime CPUExecutionProvider on this graph (INT8: the Q/DQ graph; FP16: an FP16 copy); "
                  "TensorRT itself was not available on the exporting machine")


def build(onnx_fp32: Path, out_dir: Path, precision: str, target: TargetProfile, feeds: FeedFactory,
          work_dir: Path, *, exclude_nodes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Write ``model.onnx`` (+ recipe + README) into ``out_dir``; returns the manifest fragments.
    INT8 keeps the keep_fp layers and ``exclude_nodes`` (ONNX node names) out of quantization."""
    spec = target.tensorrt
    if spec is None:  # load_target guarantees it; a hand-built profile may not
        raise ExportError(f"target {target.name!r} has runtime 'tensorrt' but no [tensorrt] table")
    dst = out_dir / MODEL_FILE
    if precision == "int8":
        quantization = quantize_int8_qdq(onnx_fp32, dst, _calibration_arrays(feeds), method=target.quantization.method,
                                         nodes_to_exclude=_exclusions(onnx_fp32, target, exclude_nodes),
                                         high_precision_dtype="fp16" if spec.strongly_typed else "fp32")
        quantization["kept_fp_patterns"] = list(target.quantization.keep_fp)
    elif precision == "fp16" and spec.strongly_typed:
        onnx.save(fp16_graph(onnx.load(str(onnx_fp32))), str(dst))
        quantization = {"tool": "onnxconverter-common float16.convert_float_to_float16 (keep_io_types)",
                        "format": "FP16 weights and activations, FP32 input/output; strongly typed engine"}
    else:
        shutil.copyfile(onnx_fp32, dst)
        quantization = {"tool": "TensorRT builder", "format": f"{precision} engine from the FP32 ONNX "
                        f"({'--fp16' if precision == 'fp16' else 'no precision flag, TF32 off'})"}
    report = check_graph(dst, spec.version, target.attention_form)
    report.raise_if_failed()
    recipe = recipe_for(dst, precision, target)
    (out_dir / RECIPE_NAME).write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    (out_dir / DEVICE_README).write_text(device_readme(target, precision, recipe))
    return {
        "model_file": MODEL_FILE,
        "quantization": quantization,
        "integer_kernels": _qdq_coverage(dst) if precision == "int8" else None,
        "runtime_options": {"tensorrt": asdict(spec), "build_recipe": RECIPE_NAME,
                            "trtexec": recipe.trtexec_command()},
        "extra_manifest": {"tensorrt_check": report.to_dict(), "accuracy_measured_with": ACCURACY_PROXY},
    }


def proxy_document(bundle_dir: Path, manifest: Manifest, proxy_dir: Path) -> dict[str, Any]:
    """The stand-in bundle the export gate and tests score with ``runtime.load`` (TensorRT needs the
    device): the bundle's graph in ONNX Runtime on the CPU (INT8: the
    Q/DQ graph; FP16 on a weakly typed target: an FP16 copy). Writes ``proxy_dir/model.onnx`` and
    returns the manifest to write beside it."""
    model = onnx.load(str(bundle_dir / manifest.model_file))
    if manifest.precision == "fp16" and not _has_fp16_weights(model):
        model = fp16_graph(model)
    onnx.save(model, str(proxy_dir / MODEL_FILE))
    document = manifest.to_dict()
    document.update(runtime="onnxruntime", model_file=MODEL_FILE, proxy_of={"runtime": manifest.runtime,
                    "accuracy_measured_with": ACCURACY_PROXY},
                    runtime_options={"graph_optimization_level": "ORT_ENABLE_ALL"})
    del document["files"]
    return document


def fp16_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and activations with FP32 graph inputs/outputs (Casts at the edges), so the
    runtime feeds and reads float32 whatever the precision."""
    from onnxconverter_common.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True)


def _has_fp16_weights(model: onnx.ModelProto) -> bool:
    return any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)


def recipe_for(model_path: Path, precision: str, target: TargetProfile) -> BuildRecipe:
    graph = onnx.load(str(model_path), load_external_data=False)
    initializers = {init.name for init in graph.graph.initializer}
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim[1:]]
              for i in graph.graph.input if i.name not in initializers}
    return target_recipe(inputs, precision, target)


def _calibration_arrays(feeds: FeedFactory) -> dict[str, np.ndarray]:
    batches: dict[str, list[np.ndarray]] = {}
    for feed in feeds():
        for name, array in feed.items():
            batches.setdefault(name, []).append(array)
    if not batches:
        raise ExportError("no calibration images: INT8 needs the shipped calibration_data/")
    return {name: np.concatenate(arrays) for name, arrays in batches.items()}


def _exclusions(onnx_fp32: Path, target: TargetProfile, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """keep_fp module patterns (+ extra node names) -> exact node-name regexes (modelopt matches
    nodes by regex)."""
    names = nodes_matching(onnx.load(str(onnx_fp32)), target.quantization.keep_fp)
    return [f"^{re.escape(name)}$" for name in dict.fromkeys([*names, *extra])]


def candidate_builder(onnx_fp32: Path, full_int8: Path, target: TargetProfile, feeds: FeedFactory,
                      work_dir: Path) -> Callable[[list[str], Path], Path]:
    """Candidates of the mixed-precision search: the full INT8 Q/DQ graph with the pairs in front
    of the given nodes removed (a modelopt run would recalibrate every time: minutes each)."""
    from edge_iqa.export.accuracy_control import strip_qdq

    return lambda nodes, out_dir: strip_qdq(full_int8, nodes, out_dir / MODEL_FILE)


SEARCH_PROXY = ("candidates: the full modelopt Q/DQ graph with the Q/DQ pairs in front of the block removed; "
                "final artifact: modelopt re-run with nodes_to_exclude")


def _qdq_coverage(model_path: Path) -> dict[str, Any]:
    """Static view of what will run in INT8: compute nodes fed by DequantizeLinear. TensorRT picks
    the actual kernels when it builds the engine on the device (``--int8``), which is not run here."""
    graph = onnx.load(str(model_path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    compute = [n for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    fed = sum(1 for n in compute if producer.get(n.input[0]) == "DequantizeLinear")
    return {"backend": "tensorrt (explicit Q/DQ; kernels chosen on the device)", "qdq_fed_compute_nodes": fed,
            "float_compute_nodes": len(compute) - fed, "integer_kernel_count": fed,
            "verified_on_device": False}


def device_readme(target: TargetProfile, precision: str, recipe: BuildRecipe) -> str:
    spec = target.tensorrt
    assert spec is not None
    return f"""# edge-iqa bundle for `{target.name}` ({precision})

{target.description}

This folder holds the ONNX graph, `manifest.json` (checksums of every file, preprocessing, output
scale) and `{RECIPE_NAME}`. The TensorRT engine is built **on this device**, because an engine only
runs on the GPU model and TensorRT version that built it. Made for TensorRT {recipe.tensorrt_range}
({"strongly typed: the graph carries the precision" if recipe.strongly_typed else "weakly typed: precision flags"});
`edge-iqa build-engine` refuses another TensorRT and names the target to export for. Install
`pip install edge-iqa "{spec.cuda_python}"` (no PyTorch needed; cuda-python's major version must match
the device's CUDA).

## Build the engine (once; cached under `engines/`)

    edge-iqa check .            # static check of the graph against TensorRT {spec.version}
    edge-iqa build-engine .     # TensorRT Python API; same settings as the trtexec line below

or by hand with trtexec (JetPack: /usr/src/tensorrt/bin/trtexec):

    {recipe.trtexec_command()}

## Score images

    edge-iqa score --bundle . photo1.jpg photo2.jpg

    from edge_iqa.runtime import load
    scorer = load(".")          # builds and caches the engine on first load if needed
    scores = scorer.score(["photo1.jpg", "photo2.jpg"])

The runtime refuses an engine built on another GPU or TensorRT version (EngineMismatchError) and
tells you to rebuild it. Attention is exported as `{target.attention_form}`, opset {target.opset}.
"""
