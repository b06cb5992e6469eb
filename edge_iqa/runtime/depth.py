"""Depth networks for depth-guided bundles (DGIQA): :class:`OnnxDepthEstimator` runs a monocular
depth network exported to ONNX (e.g. Depth Anything) on the ordinary runtime backends (ONNX
Runtime or OpenVINO, the same adapters, threads and settings as a bundle's network). edge-iqa ships
**no depth estimator weights**.

The depth-map transforms (reading a user's map, min-max scaling, the 8-bit network input under the
image crops) are torch-free and live in :mod:`edge_iqa.data.depth`. Only numpy, Pillow and the
backend library are imported, never torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from edge_iqa.data.depth import min_max_normalize, resize_depth
from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from edge_iqa.errors import ArrayInputError, BundleError, ImageDecodeError
from edge_iqa.runtime.backends import load_backend
from edge_iqa.runtime.manifest import SCHEMA_VERSION, Manifest
from edge_iqa.runtime.onnx_inputs import OnnxFileError, graph_inputs

__all__ = ["OnnxDepthEstimator", "depth_anything_input_size", "depth_network_manifest"]


def depth_anything_input_size(height: int, width: int, lower_bound: int = 518, multiple_of: int = 14
                              ) -> tuple[int, int]:
    """Depth Anything's test resize: aspect kept, both sides >= ``lower_bound``, each side a
    multiple of ``multiple_of`` (its ``Resize(keep_aspect_ratio, 'lower_bound')``)."""
    scale = max(lower_bound / height, lower_bound / width)

    def snap(value: float) -> int:
        snapped = round(value / multiple_of) * multiple_of
        return snapped if snapped >= lower_bound else math.ceil(value / multiple_of) * multiple_of

    return snap(height * scale), snap(width * scale)


class OnnxDepthEstimator:
    """A monocular depth network in ONNX (e.g. Depth Anything), run on the CPU by the runtime's own
    ONNX Runtime backend (default) or OpenVINO backend (``runtime="openvino"``, which reads the
    ``.onnx`` file directly): the same adapters, thread settings and (OpenVINO) compiled-model cache
    as a bundle's network.

    The model takes one (1, 3, H, W) float32 RGB tensor, ``(x/255 - mean) / std``, and returns a
    relative depth (or disparity) map of shape (1, H', W'), (1, 1, H', W') or (H', W'). If the ONNX
    input has a fixed H, W the image is resized to it; otherwise Depth Anything's test resize is
    used (aspect kept, lower bound 518, multiple of 14). The output is resized back to the image
    size (bilinear) and min-max scaled to [0, 1], as the DGIQA reference does. No weights ship with
    edge-iqa: export your own (e.g. from the Depth Anything repository) and pass its path.

    Thread-safe as the backends are: concurrent calls share the ONNX Runtime session or borrow one
    OpenVINO infer request each.
    """

    RUNTIMES = ("onnxruntime", "openvino")

    def __init__(
        self,
        model_path: str | os.PathLike,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        lower_bound: int = 518,
        multiple_of: int = 14,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        runtime: str = "onnxruntime",
    ) -> None:
        if runtime not in self.RUNTIMES:
            raise ValueError(f"OnnxDepthEstimator runs on {' or '.join(self.RUNTIMES)}, not {runtime!r}")
        path = Path(model_path)
        self.path, self.runtime = path, runtime
        _check_model_file(path)
        try:
            inputs = graph_inputs(path)
        except OnnxFileError as exc:
            raise ImageDecodeError(f"{path}: not a readable ONNX depth network ({exc}); pass a valid ONNX depth "
                                   "network") from exc
        if len(inputs) != 1 or len(inputs[0].dims) != 4 or inputs[0].dims[1] not in (3, None):
            raise ArrayInputError(f"{path}: expected one (N, 3, H, W) input, the model declares "
                                  f"{[(i.name, i.dims) for i in inputs]}")
        name, dims = inputs[0].name, inputs[0].dims
        self.fixed_size = (dims[2], dims[3]) if dims[2] is not None and dims[3] is not None else None
        options = {"providers": list(providers)} if providers and runtime == "onnxruntime" else {}
        try:
            self.backend = load_backend(runtime, path.parent, depth_network_manifest(path, runtime, name, dims),
                                        threads=threads, options=options)
        except BundleError as exc:
            raise ImageDecodeError(f"{path}: {runtime} cannot load this depth model ({exc}); pass a valid ONNX "
                                   "depth network") from exc
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.lower_bound, self.multiple_of = lower_bound, multiple_of

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        if self.fixed_size is not None:
            return self.fixed_size
        return depth_anything_input_size(height, width, self.lower_bound, self.multiple_of)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        net_h, net_w = self.network_size(height, width)
        resized = np.asarray(Image.fromarray(image).resize((net_w, net_h), Image.Resampling.BICUBIC))
        x = (resized.astype(np.float32) / np.float32(255.0) - self.mean) / self.std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        raw = np.asarray(self.backend.run(x), dtype=np.float32)
        depth = np.squeeze(raw)
        if depth.ndim != 2:
            raise ArrayInputError(f"the depth model returned shape {raw.shape}; expected one (H, W) map")
        return np.clip(min_max_normalize(resize_depth(depth, (height, width))), 0.0, 1.0)

    def __repr__(self) -> str:
        return f"OnnxDepthEstimator({str(self.path)!r}, runtime={self.runtime!r})"

    def close(self) -> None:
        """Release the backend's resources early (optional, as :meth:`Scorer.close`)."""
        self.backend.close()


def depth_network_manifest(path: Path, runtime: str, input_name: str, dims: Sequence[int | None]) -> Manifest:
    """The in-memory manifest the runtime backends load a depth network with: one float32 input
    (dynamic sizes as -1), its first output, FP32 (OpenVINO: the f32 precision hint, as for an FP32
    bundle). Not a bundle: the user's file is not checksummed."""
    shape = [-1, 3, *(d if d is not None else -1 for d in dims[2:])]
    return Manifest(schema_version=SCHEMA_VERSION, runtime=runtime, precision="fp32", model_file=path.name,
                    io={"inputs": [{"name": input_name, "shape": shape, "dtype": "float32"}]},
                    preprocess={}, output_transform={}, files={path.name: {}})


def _check_model_file(path: Path) -> None:
    if not path.is_file():
        raise ImageDecodeError(f"{path}: depth model not found (edge-iqa ships none; export one, e.g. Depth "
                               "Anything to ONNX)")
