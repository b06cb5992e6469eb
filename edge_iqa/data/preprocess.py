"""The one preprocessing spec: from a decoded RGB image to the network's input tensor(s).

A :class:`PreprocessSpec` is stored with every checkpoint (``<name>.json``) and every bundle
(``manifest.json``), and :meth:`PreprocessSpec.apply` is the only implementation, used unchanged by
training, evaluation, export calibration and the torch-free runtime. Resizing is Pillow's, so the
PyTorch path and the runtime see bit-identical inputs.

    image (HxWx3 uint8) -> resize (policy) -> crop(s)            -> (N, H, W, 3) uint8 pixels
                                              -> /255 -> (x - mean) / std -> (N, 3, H, W) float32

``N`` is the number of crops (1 for single-view models). Multi-crop protocols (LoDa's 15 crops,
GlintIQA's 25) are a deterministic grid of crops fed as one batch and averaged after the model.

The crops' pixels (:meth:`PreprocessSpec.pixels`) are what a bundle with a ``uint8`` image input
takes: its network does the ``/255`` and the normalisation itself (in float32, in this order), so
the runtime and camera firmware hand it the decoded bytes. :meth:`PreprocessSpec.normalize_pixels` turns
the same pixels into the float rows training and float-input bundles take.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

ResizePolicy = Literal["shorter_side", "exact", "none"]
CropPolicy = Literal["center", "grid", "none"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

SPEC_VERSION = 1


@functools.lru_cache(maxsize=16)
def _channel_tables(mean: tuple[float, ...], std: tuple[float, ...], normalize: bool) -> np.ndarray:
    """(3, 256) float32: the network input value of each uint8 value per channel, computed with the
    very float32 operations of the documented recipe (``v / 255``, then ``(x - mean) / std``), so a
    lookup gives bit-identical tensors at a fraction of the per-pixel arithmetic."""
    values = np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    table = np.repeat(values[None, :], 3, axis=0)
    if normalize:
        table = (table - np.asarray(mean, dtype=np.float32)[:, None]) / np.asarray(std, dtype=np.float32)[:, None]
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes model input. Frozen and JSON-serialisable.

    Attributes:
        input_size: (height, width) of each tensor the network receives.
        resize: ``shorter_side`` scales so the shorter side equals ``resize_to`` (aspect kept);
            ``exact`` scales to ``input_size`` (aspect not kept); ``none`` keeps native pixels.
        resize_to: target of the shorter side for ``shorter_side`` (default: min(input_size)).
        crop: ``center`` takes one centred crop of ``input_size``; ``grid`` takes
            ``grid[0] x grid[1]`` evenly spaced crops (row-major); ``none`` requires the resized
            image to be exactly ``input_size``.
        grid: rows x columns of the crop grid for ``crop="grid"``.
        mean, std: per-channel normalisation of [0, 1] RGB.
        normalize: False when the model normalises inside ``forward`` (TOPIQ); the spec then
            only scales to [0, 1] and records mean/std for reference.
        interpolation: Pillow resampling filter name.
    """

    input_size: tuple[int, int]
    resize: ResizePolicy = "shorter_side"
    resize_to: int | None = None
    crop: CropPolicy = "center"
    grid: tuple[int, int] = (1, 1)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    normalize: bool = True
    interpolation: str = "bilinear"
    version: int = field(default=SPEC_VERSION)

    def __post_init__(self) -> None:
        h, w = self.input_size
        if h <= 0 or w <= 0:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if self.resize not in ("shorter_side", "exact", "none"):
            raise ValueError(f"unknown resize policy {self.resize!r}")
        if self.crop not in ("center", "grid", "none"):
            raise ValueError(f"unknown crop policy {self.crop!r}")
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {sorted(_RESAMPLE)}")
        if self.crop == "grid" and (self.grid[0] < 1 or self.grid[1] < 1):
            raise ValueError(f"grid must be at least 1x1, got {self.grid}")
        if any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")

    # --- derived -------------------------------------------------------------------------------
    @property
    def num_crops(self) -> int:
        """How many tensors one image becomes (the model's batch per image)."""
        return self.grid[0] * self.grid[1] if self.crop == "grid" else 1

    # --- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        data["grid"] = list(self.grid)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        version = int(data.get("version", SPEC_VERSION))
        if version > SPEC_VERSION:
            raise ValueError(
                f"preprocessing spec version {version} is newer than this edge-iqa understands "
                f"({SPEC_VERSION}); upgrade edge-iqa"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("input_size", "grid"):
            if key in kwargs:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(v) for v in kwargs[key])
        return cls(**kwargs)

    def with_input_size(self, size: tuple[int, int]) -> PreprocessSpec:
        """The same policy at another input size (a target profile's input-size override)."""
        return dataclasses.replace(self, input_size=tuple(size), resize_to=None)

    # --- the transform ---------------------------------------------------------------------------
    def resize_image(self, image: np.ndarray) -> np.ndarray:
        """Apply the resize policy to an HxWx3 uint8 array (Pillow resampling, uint8 out)."""
        h, w = image.shape[:2]
        if self.resize == "none":
            return image
        if self.resize == "exact":
            new_h, new_w = self.input_size
        else:
            target = self.resize_to or min(self.input_size)
            scale = target / min(h, w)
            new_h, new_w = max(target, round(h * scale)), max(target, round(w * scale))
            # The crop must fit: a very elongated image is scaled up until both sides do.
            new_h, new_w = max(new_h, self.input_size[0]), max(new_w, self.input_size[1])
        if (new_h, new_w) == (h, w):
            return image
        resized = Image.fromarray(image).resize((new_w, new_h), resample=_RESAMPLE[self.interpolation])
        return np.asarray(resized)

    def crop_boxes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners (row, col) of the crops taken from a resized image of that size."""
        ch, cw = self.input_size
        if self.crop == "none":
            if (height, width) != (ch, cw):
                raise ValueError(
                    f"crop='none' needs the resized image to be {ch}x{cw}, got {height}x{width}"
                )
            return [(0, 0)]
        if height < ch or width < cw:
            raise ValueError(f"image {height}x{width} is smaller than the crop {ch}x{cw}")
        if self.crop == "center":
            return [((height - ch) // 2, (width - cw) // 2)]
        rows = np.linspace(0, height - ch, self.grid[0]).round().astype(int)
        cols = np.linspace(0, width - cw, self.grid[1]).round().astype(int)
        return [(int(r), int(c)) for r in rows for c in cols]

    def crop_views(self, image: np.ndarray) -> list[np.ndarray]:
        """HxWx3 uint8 (already resized) -> its crops, as views of ``image``, (H, W, 3) each."""
        ch, cw = self.input_size
        return [image[r : r + ch, c : c + cw] for r, c in self.crop_boxes(*image.shape[:2])]

    def crops(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 (already resized) -> its crops' pixels, (num_crops, H, W, 3) uint8."""
        return np.stack(self.crop_views(image))

    def normalize_pixels(self, pixels: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, 3, H, W) float32 rows, ``/255`` then normalised per the spec."""
        table = _channel_tables(self.mean, self.std, self.normalize)
        size = pixels[0].shape[:2] if len(pixels) else self.input_size
        batch = np.empty((len(pixels), 3, *size), dtype=np.float32)
        for row, crop in zip(batch, pixels, strict=True):
            planes = np.ascontiguousarray(crop.transpose(2, 0, 1))
            for channel in range(3):
                # A uint8 pixel has 256 values: look its float up instead of computing it per pixel.
                np.take(table[channel], planes[channel], out=row[channel])
        return batch

    def to_tensor_batch(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 (already resized) -> (num_crops, 3, H, W) float32, normalised per the spec."""
        return self.normalize_pixels(self.crop_views(image))

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """Decoded HxWx3 uint8 RGB image -> (num_crops, H, W, 3) uint8: resized and cropped, not
        normalised (the input of a bundle whose network normalises)."""
        return self.crops(self.resize_image(image))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Decoded HxWx3 uint8 RGB image -> (num_crops, 3, H, W) float32 network input."""
        return self.to_tensor_batch(self.resize_image(image))
