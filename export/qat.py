"""Quantization-aware fine-tuning of the INT8 network (``[quantization] qat_steps``): OpenVINO
(:func:`fine_tune`) and ONNX Runtime (:func:`fine_tune_graph`).

Post-training INT8 rounds every weight and activation once, and this network amplifies the
rounding noise of its early tensors (docs/quantization.md): on the default model, after every
export setting that helps, a few photos still move by 2-3 MOS points. Here the INT8 network
learns to give the FP32 scores back.

OpenVINO (the backend registry's ``fine_tunes = "pytorch"``):

1. NNCF quantizes the PyTorch model (the same NNCF settings as the OpenVINO backend's
   post-training build, :func:`edge_iqa.export.quantize_openvino.nncf_settings`, with the profile's
   ``keep_fp`` layers in floating point): FakeQuantize on weights and activations, ranges
   calibrated on the calibration photos.
2. Distillation (:func:`_distil`, shared by both runtimes): the quantized network's weights and
   biases are trained, the ranges fixed, to give the FP32 model's score (the teacher: the model
   being exported) on random crops and mirror images of the calibration photos (mean squared
   difference, Adam, cosine-decayed learning rate, the profile's seed). No MOS is used: the target
   is the FP32 network itself, so the bundle stays a copy of it, not a new model. Batch norm and
   dropout stay in inference mode. The validation photos (the budget check) are never trained on.
3. ``openvino.convert_model`` turns the trained network into an OpenVINO model with its
   FakeQuantize ops; a pixel-input target gets the exact pixel front
   (:func:`edge_iqa.runtime.backends.openvino.with_pixel_front`). The backend then compresses the
   weights to INT8 as it does NNCF's own output (and gives blocks back from it the same way).

ONNX Runtime (``fine_tunes = "graph"``): ONNX Runtime's own post-training Q/DQ graph is the
network trained, run in PyTorch node by node (:class:`edge_iqa.export.qdq_network.QDQNetwork`), so
its quantizers stay where ONNX Runtime put them, with its scales (``qat_activation_scales =
"trained"``: the activations' scales train too); step 2 trains its INT8 weights and INT32 biases on
their grid, and the graph is written back with the same nodes (ONNX Runtime fuses and runs it as
before).

The FP32 reference of every gate and report stays the model as given, so the figures measure
what the fine-tuning buys against the network users asked for.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_iqa.data import distortions
from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError
from edge_iqa.export import calibration
from edge_iqa.export.attention_forms import TORCH_FORM
from edge_iqa.export.calibration import CalibrationImage
from edge_iqa.export.distillation_photos import DistillationPhotos
from edge_iqa.export.graph_scopes import WRAPPER_PREFIX
from edge_iqa.export.onnx_export import OUTPUT_NAME, ScoreWrapper
from edge_iqa.export.targets import QuantizationSpec, TargetProfile
from edge_iqa.models.layers.attention import attention_form

#: Photos per optimisation step; random crops keep at least this fraction of each side.
BATCH = 4
MIN_CROP_SIDE = 0.6
_WEIGHTED_OPS = ("conv2d", "linear", "conv_transpose2d", "matmul")


@dataclass(frozen=True)
class FineTuned:
    """The trained INT8 network as an OpenVINO model (FakeQuantize weights, not yet compressed)
    and its manifest record (``quantization``, with ``quantization_aware``: what the fine-tuning did)."""

    model: Any
    record: dict[str, Any]


def fine_tune(model: nn.Module, teacher: nn.Module, spec: PreprocessSpec, input_names: tuple[str, ...],
              photos: Sequence[CalibrationImage], target: TargetProfile, *, attention: bool, pixel_input: bool,
              kept_fp_onnx_nodes: Sequence[str] = (), out_scale: float = 1.0,
              extra_photos: DistillationPhotos | None = None) -> FineTuned:
    """``model`` (the network the export quantizes: the equalized copy when the recipe equalizes)
    quantized by NNCF and trained against ``teacher``'s scores on ``photos``; see the module doc.
    ``attention``: whether the exported graph has attention (NNCF's transformer scheme for ``model_type
    = "auto"``, as in the post-training build: :func:`~edge_iqa.export.quantize_openvino.has_attention`);
    ``pixel_input``: the bundle takes uint8 pixels. ``kept_fp_onnx_nodes``: the exported graph's nodes
    that ``keep_fp`` matches, recorded as the post-training build records them (the manifest names
    ONNX nodes; NNCF's own names go to ``nncf_ignored_names``). ``out_scale``: MOS points per raw output unit (the
    loss is in squared MOS points). ``extra_photos``: more photos for the distillation to draw crops from
    (``--qat-images``); the quantizer ranges stay those of the calibration photos."""
    import nncf
    import openvino as ov

    from edge_iqa.export.quantize_openvino import nncf_settings
    from edge_iqa.runtime.backends.openvino import with_pixel_front

    if reason := not_applicable(input_names, spec):
        raise ExportError(f"quantization-aware fine-tuning: {reason}; set [quantization] qat_steps = 0")
    quant = target.quantization
    started = time.perf_counter()
    # NNCF inserts its quantizers into the module it is given: a copy, so ``model`` (which may be the
    # teacher itself when the recipe does not equalize) stays the FP32 network.
    student = ScoreWrapper(copy.deepcopy(model), input_names).eval()
    teacher = ScoreWrapper(teacher, input_names).eval()
    rows = [torch.from_numpy(feed["image"]) for feed in calibration.iter_calibration_feeds(list(photos), spec,
                                                                                           input_names)]
    form = TORCH_FORM[target.attention_form]
    with attention_form(form):
        ignored = kept_fp_nodes(student, rows[0], quant.keep_fp)
        kwargs, record = nncf_settings(quant, attention)
        nncf.set_log_level(logging.WARNING)
        try:
            quantized = nncf.quantize(student, nncf.Dataset(rows), subset_size=len(rows),
                                      ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None, **kwargs)
        except Exception as exc:
            raise ExportError(f"NNCF INT8 quantization (PyTorch, for fine-tuning) failed: {type(exc).__name__}: "
                              f"{exc}") from exc
        # NNCF's own parameters (the quantizers' ranges) stay fixed: only the network's weights and biases train.
        params = [p for name, p in quantized.named_parameters() if "__nncf_hooks" not in name and p.requires_grad]
        for name, p in quantized.named_parameters():
            if "__nncf_hooks" in name:
                p.requires_grad_(False)
        quantized.eval()  # batch norm statistics and dropout as in inference; gradients still flow
        losses = _distil(quantized, params, teacher, spec, photos, quant, out_scale, pixel_input=False,
                         extra_photos=extra_photos)
        example = rows[0]
        with warnings.catch_warnings():
            # The trace checks its output against a second run and finds the FakeQuantize rounding of
            # float32 noise: the converted network is the traced one, scored and gated after the build.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            converted = ov.convert_model(quantized.eval(), example_input=example,
                                         input=[ov.PartialShape([-1, *example.shape[1:]])])
    converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    if pixel_input:
        converted = with_pixel_front(converted, spec, input_names[0])
    else:
        converted.inputs[0].get_tensor().set_names({input_names[0]})
    record.update(tool="nncf.quantize (PyTorch) + distillation against the FP32 model + openvino.convert_model",
                  kept_fp_nodes=list(kept_fp_onnx_nodes), nncf_ignored_names=ignored,
                  kept_fp_patterns=list(quant.keep_fp), kept_fp_by_accuracy_control=[],
                  subset_size=len(rows),
                  quantization_aware=_aware_record(quant, photos, losses, started, extra_photos))
    return FineTuned(converted, record)


def not_applicable(input_names: tuple[str, ...], spec: PreprocessSpec) -> str | None:
    """Why a network is not fine-tuned (the export then quantizes it after training only), or None.
    The distillation feeds one row per photo: networks that take a depth map too, or several crops
    of each photo (LoDa, GlintIQA), are not covered (and their ViT / ResNet backbones would take
    hours of CPU for the steps a MobileNet takes minutes for)."""
    if input_names != ("image",):
        return f"the network takes {', '.join(input_names)}; fine-tuning covers single-image networks"
    if spec.num_crops != 1:
        return f"the network scores {spec.num_crops} crops per photo; fine-tuning covers one-crop networks"
    return None


def kept_fp_nodes(wrapper: nn.Module, example: torch.Tensor, patterns: Sequence[str]) -> list[str]:
    """NNCF (PyTorch) names of the weighted ops whose module matches a ``keep_fp`` pattern. NNCF names
    its ops by call scope, not by module path (a sliced ``nn.Sequential`` drops the prefix), so the
    module is read from the op's weight instead: its constant input is named after the parameter
    (``model.backbone.1.conv.0.0.weight``). Patterns match the module path or an ancestor, as
    :func:`edge_iqa.export.graph_scopes.nodes_matching` does for the ONNX graph."""
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph

    if not patterns:
        return []
    graph = build_nncf_graph(copy.deepcopy(wrapper), example)  # tracing leaves hooks on the module it runs
    names = []
    for node in graph.get_all_nodes():
        if node.node_type not in _WEIGHTED_OPS:
            continue
        for edge in graph.get_input_edges(node):
            source = edge.from_node
            if source.node_type != "nncf_model_const" or not source.node_name.endswith(".weight"):
                continue
            path = source.node_name.removesuffix(".weight").removeprefix(WRAPPER_PREFIX + ".")
            parts = path.split(".")
            scopes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if any(fnmatch.fnmatchcase(scope, pattern) for pattern in patterns for scope in scopes):
                names.append(node.node_name)
    return names


def fine_tune_graph(qdq_model: Path, base_record: dict[str, Any], teacher: nn.Module, spec: PreprocessSpec,
                    input_names: tuple[str, ...], photos: Sequence[CalibrationImage], target: TargetProfile, *,
                    pixel_input: bool, out_scale: float = 1.0,
                    extra_photos: DistillationPhotos | None = None) -> FineTuned:
    """ONNX Runtime: the INT8 Q/DQ graph of the post-training build (``qdq_model``; ``base_record``, its
    manifest record) trained against ``teacher``'s scores as :func:`fine_tune` trains NNCF's network.
    The graph runs in PyTorch with ONNX's semantics (:class:`~edge_iqa.export.qdq_network.QDQNetwork`):
    the quantizers ONNX Runtime calibrated stay where they are (with their scales, unless
    ``qat_activation_scales = "trained"``), the INT8 weights and INT32
    biases train on their own grid, and the trained graph keeps the structure ONNX Runtime fuses into
    integer kernels (same speed). ``FineTuned.model`` is the trained ``onnx.ModelProto``."""
    import onnx

    from edge_iqa.export.qdq_network import QDQNetwork

    if reason := not_applicable(input_names, spec):
        raise ExportError(f"quantization-aware fine-tuning: {reason}; set [quantization] qat_steps = 0")
    started = time.perf_counter()
    graph = onnx.load(str(qdq_model))
    network = QDQNetwork(graph, train_scales=target.quantization.qat_activation_scales == "trained").eval()
    teacher = ScoreWrapper(teacher, input_names).eval()

    def student(batch: torch.Tensor) -> torch.Tensor:
        return network(batch)[0].reshape(-1)

    losses = _distil(student, list(network.parameters()), teacher, spec, photos, target.quantization, out_scale,
                     pixel_input=pixel_input, extra_photos=extra_photos)
    network.write_weights(graph)
    aware = _aware_record(target.quantization, photos, losses, started, extra_photos)
    aware["activation_scales"] = network.scale_record()
    record = {**base_record, "tool": f"{base_record['tool']} + distillation of the Q/DQ graph against the FP32 model",
              "quantization_aware": aware}
    return FineTuned(graph, record)


def _aware_record(quant: QuantizationSpec, photos: Sequence[CalibrationImage], losses: list[float],
                  started: float, extra_photos: DistillationPhotos | None = None) -> dict[str, Any]:
    """The manifest's ``quantization.quantization_aware``: what the fine-tuning did."""
    window = max(1, min(25, len(losses) // 4))

    def mean_loss(part: list[float]) -> float | None:
        return round(float(np.mean(part)), 4) if part else None

    return {"steps": quant.qat_steps, "learning_rate": quant.qat_learning_rate, "batch": BATCH,
            "photos": len(photos), "seed": quant.seed, "schedule": "cosine",
            "augmentation": f"random crops (>= {MIN_CROP_SIDE:g} of each side) and mirror images of the "
                            "calibration photos" + (" and the --qat-images photos" if extra_photos else "")
                            + (f", {quant.qat_distorted_share:g} of them with a random synthetic distortion"
                               if quant.qat_distorted_share else ""),
            "loss": "mean squared difference from the FP32 score", "loss_first_mos2": mean_loss(losses[:window]),
            "loss_last_mos2": mean_loss(losses[-window:]), "seconds": round(time.perf_counter() - started, 1),
            **(extra_photos.record() if extra_photos else {})}


def cosine_decay(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The fine-tuning's learning-rate schedule: from the set rate down to 0 over ``steps`` on a half cosine,
    so that the last steps settle the integers instead of flipping their roundings to and fro."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))


def _distil(student: Callable[[torch.Tensor], torch.Tensor], params: list[torch.nn.Parameter], teacher: nn.Module,
            spec: PreprocessSpec, photos: Sequence[CalibrationImage], quant: QuantizationSpec, out_scale: float, *,
            pixel_input: bool, extra_photos: DistillationPhotos | None = None) -> list[float]:
    """Train ``params`` so that ``student`` gives ``teacher``'s scores; returns the loss of every step in
    squared MOS points (raw differences x ``out_scale``). The student reads the crops' uint8 pixels
    with ``pixel_input``, float rows otherwise (the teacher always reads the rows: the same numbers).
    Each crop comes from a photo drawn from ``photos`` and ``extra_photos`` together (without extra
    photos, the draws are those of every earlier release: the same network)."""
    if quant.qat_steps == 0:
        return []
    # The loss is in MOS^2 and eps tiny so that Adam's step does not depend on the output's scale: for a
    # raw 0-1 score the squared differences are ~1e-4 and the default eps (1e-8) is about the size of
    # sqrt(v), which would damp every step by an amount that depends on the model's output units.
    optimizer = torch.optim.Adam(params, lr=quant.qat_learning_rate, eps=1e-12)
    steps = quant.qat_steps
    schedule = cosine_decay(optimizer, steps)
    draw = random.Random(quant.seed)
    # Distortions draw from their own stream: the crops are the same whatever the distorted share.
    distortion_draw = random.Random(f"{quant.seed}-distortions")
    torch.manual_seed(quant.seed)
    files = [calibration.image_file(row) for row in photos] + list(extra_photos.paths if extra_photos else ())
    losses = []
    for _ in range(steps):
        pixels = np.concatenate([_augmented_pixels(draw, draw.choice(files), spec, quant.qat_distorted_share,
                                                   distortion_draw) for _ in range(BATCH)])
        rows = torch.from_numpy(spec.normalize_pixels(pixels))  # exactly PreprocessSpec.apply's rows
        with torch.no_grad():
            wanted = teacher(rows)
        loss = torch.mean(((student(torch.from_numpy(pixels) if pixel_input else rows) - wanted) * out_scale) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    for p in params:
        p.requires_grad_(False)
    return losses


def _augmented_pixels(draw: random.Random, path: Path, spec: PreprocessSpec, distorted_share: float = 0.0,
                      distortion_draw: random.Random | None = None) -> np.ndarray:
    """A random crop (each side at least :data:`MIN_CROP_SIDE` of the photo's), mirrored half the
    time, as the model's resized uint8 pixels: new views of the calibration photos at the scales a
    photo of another size would be seen at. With probability ``distorted_share`` the crop first gets
    one synthetic distortion (a random type of :mod:`edge_iqa.data.distortions` at a random level,
    drawn from ``distortion_draw``):
    the blur, noise, compression and exposure a camera's photos bring, at qualities the 128
    calibration photos do not all cover."""
    image = load_image(path)
    height, width = image.shape[:2]
    side = draw.uniform(MIN_CROP_SIDE, 1.0)
    crop_h, crop_w = max(1, int(height * side)), max(1, int(width * side))
    top, left = draw.randint(0, height - crop_h), draw.randint(0, width - crop_w)
    image = image[top : top + crop_h, left : left + crop_w]
    if draw.random() < 0.5:
        image = image[:, ::-1]
    image = np.ascontiguousarray(image)
    if distortion_draw is not None and distortion_draw.random() < distorted_share:
        image = distortions.distort(image, distortion_draw.choice(distortions.list_distortions()),
                                    distortion_draw.choice(distortions.LEVELS), seed=distortion_draw.randrange(2**31))
    return spec.pixels(image)
