"""Depth maps for depth-guided models (DGIQA): pluggable, torch-free.

DGIQA scores an RGB image together with a depth map of the same scene. edge-iqa ships **no depth
estimator weights**; the depth comes from one of two sources the user provides:

- :class:`DepthFromMap`: a depth map the user already has (a 16-bit or 8-bit gray image file, a
  float array, a PIL image), e.g. from a stereo or ToF camera or an offline estimator;
- :class:`OnnxDepthEstimator`: a monocular depth network exported to ONNX (e.g. Depth Anything,
  as the DGIQA authors use), run with ONNX Runtime or OpenVINO.

Both return the map at the RGB image's size, min-max scaled to [0, 1]. :func:`depth_network_input`
then turns it into the tensor DGIQA's depth branch was trained on, the way the reference does
(``depth_utils.py`` + ``single_image_inference.py``): quantised to 8 bit, repeated to 3 identical
channels, and put through the *same* :class:`PreprocessSpec` as the RGB image (same resize, same
crops, ImageNet mean/std), so every depth crop lies exactly under its RGB crop.

Only numpy, Pillow and (for ONNX) onnxruntime or openvino are imported, never torch: the torch-free
runtime uses this module for two-input bundles (``edge_iqa.runtime.load(bundle, depth=...)``,
``Scorer.score(images, depth=...)``). ``edge_iqa.models.depth`` re-exports it for model code.
"""

from __future__ import annotations

import io
import math
import os
import queue
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edge_iqa.errors import ArrayInputError, BackendUnavailableError, ImageDecodeError, first_line

DepthMapSource = str | os.PathLike | bytes | Image.Image | np.ndarray


class DepthSource(Protocol):
    """Anything that gives the depth of an RGB image: ``source(image) -> (H, W) float32 in [0, 1]``
    at the image's own height and width (``image`` is the decoded HxWx3 uint8 RGB array)."""

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


# --- small array helpers ------------------------------------------------------------------------
def min_max_normalize(depth: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the map's own min and max (a constant map becomes all zeros)."""
    depth = np.asarray(depth, dtype=np.float64)
    if not np.isfinite(depth).all():
        raise ArrayInputError("the depth map holds NaN or infinite values; mask or fill them first")
    low, high = float(depth.min()), float(depth.max())
    if high - low <= 0.0:
        return np.zeros(depth.shape, dtype=np.float32)
    return ((depth - low) / (high - low)).astype(np.float32)


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map to ``size`` = (height, width), in float32."""
    height, width = size
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth
    resized = Image.fromarray(np.ascontiguousarray(depth)).resize((width, height), resample=Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def _as_2d(depth: np.ndarray, what: str) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) with identical channels -> (H, W)."""
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    elif depth.ndim == 3 and depth.shape[2] in (3, 4):
        rgb = depth[:, :, :3]
        if not (np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2])):
            raise ArrayInputError(
                f"{what}: a depth map must be single-channel (or 3 identical channels); this one has "
                "coloured channels, e.g. a colour-mapped visualisation, which is not depth. Pass the "
                "raw depth (16-bit PNG, float array) instead"
            )
        depth = rgb[:, :, 0]
    if depth.ndim != 2:
        raise ArrayInputError(f"{what}: expected a (H, W) depth map, got shape {depth.shape}")
    if min(depth.shape) < 1:
        raise ArrayInputError(f"{what}: empty depth map {depth.shape}")
    return depth


def read_depth_map(source: DepthMapSource) -> np.ndarray:
    """A user's depth map as a (H, W) float32 array of raw values (not yet normalised).

    Accepts a path or bytes of an image file (8/16-bit gray PNG, 32-bit float TIFF, or an RGB file
    with identical channels), a PIL image, or a numpy array (H, W), (H, W, 1) or (H, W, 3). Full
    bit depth is kept (16-bit depth is not squeezed to 8 bit before normalisation).
    """
    if isinstance(source, np.ndarray):
        if source.dtype == bool or not (np.issubdtype(source.dtype, np.integer)
                                        or np.issubdtype(source.dtype, np.floating)):
            raise ArrayInputError(f"depth array of dtype {source.dtype}: use an integer or float array")
        return _as_2d(source, f"depth array{tuple(source.shape)}").astype(np.float32)
    if isinstance(source, Image.Image):
        return _pil_depth(source, f"PIL depth image {source.size[0]}x{source.size[1]}")
    if isinstance(source, (bytes, bytearray)):
        name, data = "depth bytes", io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        name, data = str(source), Path(source)
        if not data.is_file():
            raise ImageDecodeError(f"{name}: depth file not found")
    else:
        raise ArrayInputError(f"cannot read a depth map from {type(source).__name__}")
    try:
        with Image.open(data) as opened:
            opened.load()
            return _pil_depth(opened, name)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageDecodeError(f"{name}: not a readable depth image ({exc})") from exc


def _pil_depth(image: Image.Image, name: str) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L", "1"):
        return _as_2d(np.asarray(image).astype(np.float32), name)
    if image.mode in ("LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
        if image.mode == "LA":
            return np.asarray(image.getchannel(0)).astype(np.float32)
        return _as_2d(np.asarray(image.convert("RGB")).astype(np.float32), name)
    raise ArrayInputError(f"{name}: unsupported depth image mode {image.mode!r}")


# --- depth sources --------------------------------------------------------------------------------
class DepthFromMap:
    """A fixed, user-supplied depth map, resized to each image's size and min-max scaled to [0, 1].

    The map should show the same scene as the image; if its size differs it is resized (bilinear)
    to the image's height and width. Resizing comes before the min-max scaling, the reference's
    order for its estimator's output (``depth_utils.py``), so the result always spans [0, 1].

    A map whose aspect ratio differs from the image's by more than ``aspect_tolerance`` (relative)
    is refused with :class:`ArrayInputError`: it is not the same framing (a portrait photo with a
    landscape map, a crop), and stretching it would put depth under the wrong pixels. Pass
    ``aspect_tolerance=None`` to stretch such a map anyway.
    """

    def __init__(self, depth: DepthMapSource, aspect_tolerance: float | None = 0.05) -> None:
        self.depth = read_depth_map(depth)
        self.aspect_tolerance = aspect_tolerance
        min_max_normalize(self.depth)  # fail now, not at the first image, on NaN/inf

    def __call__(self, image: np.ndarray) -> np.ndarray:
        (map_h, map_w), (height, width) = self.depth.shape, image.shape[:2]
        if self.aspect_tolerance is not None:
            change = abs((map_w / map_h) / (width / height) - 1.0)
            if change > self.aspect_tolerance:
                raise ArrayInputError(
                    f"the depth map is {map_w}x{map_h} (width x height) but the image is {width}x{height}: "
                    "a different aspect ratio, so not the same view (rotated? cropped? swapped with another "
                    "image's map?). Pass the depth map of this image, or DepthFromMap(map, "
                    "aspect_tolerance=None) to stretch it anyway"
                )
        return np.clip(min_max_normalize(resize_depth(self.depth, (height, width))), 0.0, 1.0)


def as_depth_source(depth: DepthSource | DepthMapSource) -> DepthSource:
    """A :class:`DepthSource` as is; a depth map (path, bytes, PIL image, array) as :class:`DepthFromMap`."""
    if callable(depth) and not isinstance(depth, (np.ndarray, Image.Image)):
        return depth
    return DepthFromMap(depth)


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
    """A monocular depth network in ONNX (e.g. Depth Anything), run on the CPU with ONNX Runtime
    (default) or OpenVINO (``runtime="openvino"``, which reads the ``.onnx`` file directly).

    The model takes one (1, 3, H, W) float32 RGB tensor, ``(x/255 - mean) / std``, and returns a
    relative depth (or disparity) map of shape (1, H', W'), (1, 1, H', W') or (H', W'). If the ONNX
    input has a fixed H, W the image is resized to it; otherwise Depth Anything's test resize is
    used (aspect kept, lower bound 518, multiple of 14). The output is resized back to the image
    size (bilinear) and min-max scaled to [0, 1], as the DGIQA reference does. No weights ship with
    edge-iqa: export your own (e.g. from the Depth Anything repository) and pass its path.

    Thread-safe: concurrent calls share the ONNX Runtime session (whose ``run`` is thread-safe) or
    borrow one OpenVINO infer request each, as the runtime's backends do.
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
        if runtime == "openvino":
            dims = self._load_openvino(path, threads)
        else:
            dims = self._load_onnxruntime(path, providers, threads)
        if len(dims) != 4:
            raise ArrayInputError(f"{path}: expected a (N, 3, H, W) input, the model declares {dims}")
        self.fixed_size = (dims[2], dims[3]) if all(isinstance(d, int) for d in dims[2:]) else None
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.lower_bound, self.multiple_of = lower_bound, multiple_of

    def _load_onnxruntime(self, path: Path, providers: Sequence[str] | None, threads: int | None) -> list[Any]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(
                "OnnxDepthEstimator needs onnxruntime: pip install 'edge-iqa[onnx]' (or onnxruntime)"
            ) from exc
        _check_model_file(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
            raise ImageDecodeError(f"{path}: onnxruntime cannot load this depth model ({first_line(exc)}); "
                                   "pass a valid ONNX depth network") from exc
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        return list(model_input.shape)

    def _load_openvino(self, path: Path, threads: int | None) -> list[Any]:
        try:
            from edge_iqa.runtime.backends.openvino_import import import_openvino

            ov = import_openvino()
        except ImportError as exc:
            raise BackendUnavailableError(
                "OnnxDepthEstimator(runtime='openvino') needs openvino: pip install 'edge-iqa[openvino]'"
            ) from exc
        _check_model_file(path)
        # f32 for the same reason as the OpenVINO backend: the CPU plugin's bf16 default moves outputs.
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, "CPU", config)
        except (RuntimeError, UnicodeDecodeError) as exc:
            raise ImageDecodeError(f"{path}: OpenVINO cannot load this depth model ({first_line(exc)}); "
                                   "pass a valid ONNX depth network") from exc
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.is_dynamic:
            return []
        return [d.get_length() if d.is_static else None for d in shape]

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        if self.fixed_size is not None:
            return self.fixed_size
        return depth_anything_input_size(height, width, self.lower_bound, self.multiple_of)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        if self.runtime == "onnxruntime":
            return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            results = request.infer({0: x})
            # The result views the request's own buffer, which its next call overwrites: copy.
            return np.array(results[self.compiled.outputs[0]], dtype=np.float32, copy=True)
        finally:
            self._idle.put(request)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        net_h, net_w = self.network_size(height, width)
        resized = np.asarray(Image.fromarray(image).resize((net_w, net_h), Image.Resampling.BICUBIC))
        x = (resized.astype(np.float32) / np.float32(255.0) - self.mean) / self.std
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        raw = self._infer(x)
        depth = np.squeeze(raw)
        if depth.ndim != 2:
            raise ArrayInputError(f"the depth model returned shape {raw.shape}; expected one (H, W) map")
        return np.clip(min_max_normalize(resize_depth(depth, (height, width))), 0.0, 1.0)

    def __repr__(self) -> str:
        return f"OnnxDepthEstimator({str(self.path)!r}, runtime={self.runtime!r})"


def _check_model_file(path: Path) -> None:
    if not path.is_file():
        raise ImageDecodeError(f"{path}: depth model not found (edge-iqa ships none; export one, e.g. Depth "
                               "Anything to ONNX)")



# --- to network input -------------------------------------------------------------------------------
def depth_to_uint8_rgb(depth: np.ndarray) -> np.ndarray:
    """[0, 1] depth -> HxWx3 uint8 with identical channels, truncated like the reference's
    ``(d * 255).astype(uint8)`` followed by ``cv2.COLOR_GRAY2RGB``."""
    gray = np.floor(np.clip(np.asarray(depth, dtype=np.float32), 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def depth_network_input(depth: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """(H, W) depth in [0, 1] at the RGB image's size -> (num_crops, 3, h, w) float32 for DGIQA's
    depth branch, with the same resize, crops and ImageNet mean/std as ``spec.apply(image)``."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ArrayInputError(f"expected a (H, W) depth map, got shape {depth.shape}")
    return spec.apply(depth_to_uint8_rgb(depth))


def dgiqa_inputs(image: np.ndarray, depth_source: DepthSource, spec: PreprocessSpec
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A decoded HxWx3 uint8 RGB image and a depth source -> (rgb batch, depth batch), each
    (num_crops, 3, h, w) float32, crop i of one under crop i of the other."""
    depth = np.asarray(depth_source(image))
    if depth.shape != image.shape[:2]:
        raise ArrayInputError(f"the depth source returned a {depth.shape} map for a {image.shape[:2]} image; "
                              "a DepthSource must return (H, W) at the image's own size")
    if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)) \
            or not np.isfinite(depth).all():
        raise ArrayInputError(f"the depth source returned {depth.dtype} values that are not all finite numbers; "
                              "a DepthSource must return float depth in [0, 1]")
    return spec.apply(image), depth_network_input(depth, spec)
