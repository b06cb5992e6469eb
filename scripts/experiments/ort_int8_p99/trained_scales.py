"""By hand: fine-tune ORT's post-training Q/DQ graph with its activation scales trained too."""

import dataclasses
import sys
import time
from pathlib import Path

import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bundle_copy import save_bundle  # noqa: E402

from edge_iqa.export import calibration, qat
from edge_iqa.export.onnx_export import ScoreWrapper
from edge_iqa.export.pipeline import load_model_for_export
from edge_iqa.export.qdq_network import QDQNetwork
from edge_iqa.export.targets import load_target

SRC, OUT, STEPS, SCALES = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
torch.set_num_threads(2)
profile = load_target("onnxruntime")
quant = dataclasses.replace(profile.quantization, qat_steps=STEPS)
split = calibration.profile_split(profile)
model, spec, transform, _ = load_model_for_export("edge_hybrid_n")
model.eval()
teacher = ScoreWrapper(model, ("image",)).eval()
graph = onnx.load(str(SRC / "model.onnx"))
net = QDQNetwork(graph, train_scales=SCALES).eval()
print("weights", len(net.weights), "scales", len(net.log_scales), flush=True)
t = time.time()
losses = qat._distil(
    lambda b: net(b)[0].reshape(-1),
    list(net.parameters()),
    teacher,
    spec,
    split.calibration,
    quant,
    float(transform["scale"]),
    pixel_input=True,
)
print(f"loss {sum(losses[:25]) / 25:.3f} -> {sum(losses[-25:]) / 25:.3f} in {time.time() - t:.0f}s", flush=True)
if SCALES:
    import numpy as np

    ls = np.array([float(p) for p in net.log_scales.values()]) * 100
    print(f"log-scale change: mean {ls.mean():.4f} min {ls.min():.4f} max {ls.max():.4f}")
net.write_weights(graph)
save_bundle(graph, SRC, OUT)
