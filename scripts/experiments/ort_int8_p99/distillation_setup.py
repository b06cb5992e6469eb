"""What the by-hand distillation trials share: the default model as teacher, ONNX Runtime's profile and
split, and the post-training Q/DQ graph of a bundle as the PyTorch network to train."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch

from edge_iqa.export import calibration
from edge_iqa.export.onnx_export import ScoreWrapper
from edge_iqa.export.pipeline import load_model_for_export
from edge_iqa.export.qdq_network import QDQNetwork
from edge_iqa.export.targets import load_target


@dataclass
class Trial:
    quant: Any  # the onnxruntime profile's QuantizationSpec
    split: Any  # its calibration / validation split
    spec: Any  # the default model's PreprocessSpec
    scale: float  # MOS points per raw output unit
    teacher: torch.nn.Module
    graph: onnx.ModelProto
    net: QDQNetwork


def trial(source: Path) -> Trial:
    profile = load_target("onnxruntime")
    model, spec, transform, _ = load_model_for_export("edge_hybrid_n")
    model.eval()
    graph = onnx.load(str(source / "model.onnx"))
    return Trial(profile.quantization, calibration.profile_split(profile), spec, float(transform["scale"]),
                 ScoreWrapper(model, ("image",)).eval(), graph, QDQNetwork(graph).eval())
