"""Decode anything a user may hand us into an HxWx3 uint8 RGB array, or raise a typed error.

This is the only place images are decoded, for training, evaluation, export calibration and the
runtime alike, so every path sees the same pixels. Torch-free: the runtime wrapper imports it.

Policy (documented in docs/errors.md):
- EXIF orientation is applied, then the image is converted to 8-bit RGB.
- 16-bit and 32-bit integer images are scaled to 8 bit (not clipped); float images must hold
  finite values in [0, 1] or [0, 255].
- Alpha is composited over white, as image viewers and browsers display it.
- Images larger than ``MAX_PIXELS`` are refused before decoding (decompression-bomb guard);
  images with a side below ``MIN_SIDE`` are refused because no IQA model sees anything in them.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from edge_iqa.errors import ArrayInputError, ImageDecodeError, ImageTooLargeError, ImageTooSmallError

#: Largest image accepted, in pixels (about 10,000 x 10,000). Raise with ``set_max_pixels``.
MAX_PIXELS = 100_000_000
#: Smallest accepted side in pixels.
MIN_SIDE = 16

# Pillow's own guard warns above this and refuses above twice this; keep it in step with ours.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# A truncated file must fail loudly, not decode to a half-grey image with a plausible score.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: The EXIF tag that says how the stored pixels must be rotated / flipped for display.
_ORIENTATION = 0x0112

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


def set_max_pixels(limit: int) -> None:
    """Change the decompression-bomb limit for this process (pixels, not bytes)."""
    global MAX_PIXELS
    if limit <= 0:
        raise ValueError("the pixel limit must be positive")
    MAX_PIXELS = Image.MAX_IMAGE_PIXELS = int(limit)


def describe_source(source: object) -> str:
    """Short human name of an image source, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, np.ndarray):
        return f"array{tuple(source.shape)}"
    if isinstance(source, Image.Image):
        return f"PIL image {source.size[0]}x{source.size[1]} {source.mode}"
    return type(source).__name__


def load_image(source: ImageSource) -> np.ndarray:
    """Return ``source`` as a C-contiguous HxWx3 uint8 RGB array.

    Accepts a path, encoded bytes, a PIL image or an HxWx3 uint8 array. Raises a subclass of
    :class:`edge_iqa.errors.ImageError` for anything that cannot be scored.
    """
    if isinstance(source, np.ndarray):
        return _check_array(source)
    if isinstance(source, Image.Image):
        return _pil_to_rgb_array(source, describe_source(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(source)), "<bytes>")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            if path.exists():  # a folder, a device or a pipe: never open it (a pipe would block)
                raise ImageDecodeError(f"{path}: not a regular file (a folder, device or pipe); pass an image file")
            raise ImageDecodeError(f"{path}: no such file; check the path")
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{path}: the file is empty (0 bytes); re-export or re-copy the image")
        with open(path, "rb") as fh:
            return _decode(fh, str(path))
    raise ArrayInputError(
        f"cannot score an object of type {type(source).__name__}; "
        "pass a file path, encoded bytes, a PIL image or an HxWx3 uint8 numpy array"
    )


def _decode(fh: io.IOBase, name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns (or raises at 2x) by its global limit; ours is explicit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fh)
            _check_declared_size(image.size, name)
            image.load()
    except (ImageTooLargeError, ImageTooSmallError):
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses at open time above twice its own limit (kept equal to ours).
        raise ImageTooLargeError(
            f"{name}: {exc} The limit is {MAX_PIXELS:,} pixels: downscale the image, or raise the limit "
            "with edge_iqa.data.imageio.set_max_pixels()"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{name}: not a recognised image format (JPEG, PNG, WebP, BMP, TIFF, ...); check "
                               "that it is an image, or convert it to one of these") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError,
            MemoryError, RuntimeError, struct.error) as exc:
        # Pillow's decoders raise a zoo of exception types on corrupt data; all mean the same here.
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc}); re-export or re-copy it") from exc
    return _pil_to_rgb_array(image, name)


def _check_declared_size(size: tuple[int, int], name: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name}: declares {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{MAX_PIXELS:,}; downscale it, or raise the limit with edge_iqa.data.imageio.set_max_pixels()"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmallError(
            f"{name}: is {width}x{height}; edge-iqa needs at least {MIN_SIDE} pixels on each side: score the "
            "full-size image, not a thumbnail"
        )


def _pil_to_rgb_array(image: Image.Image, name: str) -> np.ndarray:
    _check_declared_size(image.size, name)
    # A broken EXIF block must not stop scoring: the orientation is then kept as stored. Most photos
    # are stored upright (no tag, or 1): exif_transpose would then only copy the pixels.
    with contextlib.suppress(Exception):
        if image.getexif().get(_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image)
        scale = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(array.astype(np.float64) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "F":
        return _float_to_uint8(np.asarray(image, dtype=np.float32), name, gray=True)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info) or (
        mode in ("RGB", "L") and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() to its own mode only copies
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _float_to_uint8(array: np.ndarray, name: str, gray: bool = False) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ArrayInputError(f"{name}: contains NaN or infinite values; fix the source, or replace them "
                              "(np.nan_to_num) before scoring")
    peak = float(array.max(initial=0.0))
    if array.min(initial=0.0) < 0 or peak > 255:
        raise ArrayInputError(f"{name}: float pixel values must lie in [0, 1] or [0, 255]; rescale the image "
                              "to one of these ranges")
    scale = 255.0 if peak <= 1.0 else 1.0
    out = np.clip(array * scale + 0.5, 0, 255).astype(np.uint8)
    if gray:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out)


def _check_array(array: np.ndarray) -> np.ndarray:
    name = describe_source(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ArrayInputError(
            f"{name}: expected an HxWx3 RGB array, got shape {array.shape}; "
            "convert grayscale with np.repeat(a[..., None], 3, 2) and drop alpha channels"
        )
    if array.dtype != np.uint8:
        raise ArrayInputError(
            f"{name}: expected dtype uint8, got {array.dtype}; "
            "convert with np.clip(a * 255, 0, 255).round().astype(np.uint8) for [0, 1] floats"
        )
    _check_declared_size((array.shape[1], array.shape[0]), name)
    return np.ascontiguousarray(array)
