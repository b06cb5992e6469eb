"""The torch-free runtime wrapper: score images with an exported bundle.

    from edge_iqa.runtime import load
    scorer = load("bundles/edge_hybrid_n-cpu")   # verifies manifest + checksums, then loads
    scores = scorer.score(["a.jpg", "b.png"])     # float64, the model's MOS scale

A two-input (image + depth) bundle such as DGIQA also needs each image's depth::

    scorer = load("bundles/dgiqa-ort", depth_model="depth_anything.onnx")  # your ONNX depth network
    scores = scorer.score(["a.jpg"], depth=["a_depth.png"])  # or per-call depth maps (override it)

Needs numpy, Pillow and the one backend library the bundle names (onnxruntime, openvino or
tensorrt), never torch. ``load("model.safetensors")`` or ``load("edge_hybrid_n")`` gives the same
Scorer on the ``torch`` backend (the FP32 reference; needs torch, imported only then).
See docs/integration.md for errors, threads and the C/C++ equivalent.
"""

from edge_iqa.data.depth import DepthFromMap, DepthSource
from edge_iqa.errors import (
    ArrayInputError,
    BackendUnavailableError,
    BundleError,
    EdgeIQAError,
    ImageDecodeError,
    ImageError,
)
from edge_iqa.runtime.backends import known_backends
from edge_iqa.runtime.depth import OnnxDepthEstimator
from edge_iqa.runtime.scorer import DEFAULT_MAX_BATCH, Scorer, load

__all__ = [
    "DEFAULT_MAX_BATCH",
    "ArrayInputError",
    "BackendUnavailableError",
    "BundleError",
    "DepthFromMap",
    "DepthSource",
    "EdgeIQAError",
    "ImageDecodeError",
    "ImageError",
    "OnnxDepthEstimator",
    "Scorer",
    "known_backends",
    "load",
]
