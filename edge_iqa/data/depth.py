"""Depth maps for depth-guided models (DGIQA): reading, scaling and turning them into network
input. Torch-free (numpy + Pillow): the runtime, the export's calibration and the model code share it.

A depth map comes from the user (:class:`DepthFromMap`: a 16-bit or 8-bit gray image file, a float
array, a PIL image, e.g. from a stereo or ToF camera) or from a depth network
(:class:`edge_iqa.runtime.depth.OnnxDepthEstimator`, run on the ordinary runtime backends). Either
gives the map at the RGB image's size, min-max scaled to [0, 1]; :func:`depth_network_input` then
turns it into the tensor DGIQA's depth branch was trained on, the way the reference does
(``depth_utils.py`` + ``single_image_inference.py``): quantised to 8 bit, repeated to 3 identical
channels, and put through the *same* :class:`PreprocessSpec` as the RGB image (same resize, same
crops, ImageNet mean/std), so every depth crop lies exactly under its RGB crop.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ArrayInputError, ImageDecodeError

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
