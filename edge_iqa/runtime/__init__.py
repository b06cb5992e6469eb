"""The torch-free runtime wrapper: score images with an exported bundle.

    from edge_iqa.runtime import load
    scorer = load("bundles/edge_hybrid_n-cpu")   # verifies manifest + checksums, then loads
    scores = scorer.score(["a.jpg", "b.png"])     # float64, the model's MOS scale

Needs numpy, Pillow and the one backend library the bundle names (onnxruntime, openvino or
tensorrt), never torch. See docs/integration.md for errors, threads and the C/C++ equivalent.
"""

from edge_iqa.errors import (
    BackendUnavailableError,
    BundleError,
    EdgeIQAError,
    ImageDecodeError,
    ImageError,
)
from edge_iqa.runtime.backends import known_backends
from edge_iqa.runtime.scorer import DEFAULT_MAX_BATCH, Scorer, load

__all__ = [
    "DEFAULT_MAX_BATCH",
    "BackendUnavailableError",
    "BundleError",
    "EdgeIQAError",
    "ImageDecodeError",
    "ImageError",
    "Scorer",
    "known_backends",
    "load",
]
