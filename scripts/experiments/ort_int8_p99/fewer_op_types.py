"""By hand: ONNX Runtime INT8 with fewer quantized op types (variants study, validation photos)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
import onnxruntime.quantization as oq  # noqa: E402
import quantization_study as q  # noqa: E402

from edge_iqa.export import quantize_ort  # noqa: E402

OPS = {33: ["Conv", "MatMul", "Gemm"], 34: ["Conv", "MatMul", "Gemm", "Add"]}
state = {"ops": None}
real_static, real_build = oq.quantize_static, quantize_ort.build


def static(*a, **k):
    if state["ops"]:
        k["op_types_to_quantize"] = state["ops"]
    return real_static(*a, **k)


def build(src, dst, precision, target, *a, **k):
    state["ops"] = OPS.get(target.quantization.sensitivity_images)
    return real_build(src, dst, precision, target, *a, **k)


oq.quantize_static = static
quantize_ort.build = build
q.VARIANTS["onnxruntime"]["convs only"] = {"sensitivity_images": 33}
q.VARIANTS["onnxruntime"]["convs and adds"] = {"sensitivity_images": 34}
sys.argv = ["quantization_study.py", *sys.argv[1:]]
q.main()
