"""Builders of odd and broken images for the decoder tests (real photos in, bytes out)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIVE = SHARED / "datasets" / "clive"
PRISTINE = SHARED / "datasets" / "pristine" / "images"
CALIBRATION = Path(__file__).resolve().parents[1] / "calibration_data" / "images"


def real_photo(size: int = 96) -> np.ndarray:
    """A real photo (pristine set if present, else a committed calibration image), downscaled."""
    for folder in (PRISTINE, CALIBRATION):
        files = sorted(folder.glob("*")) if folder.is_dir() else []
        if files:
            with Image.open(files[0]) as img:
                return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    raise FileNotFoundError("no real photos found: ../shared or calibration_data/ is missing")


def encode(array_or_image: np.ndarray | Image.Image, fmt: str, **kwargs: object) -> bytes:
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header declares width x height (a decompression bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def with_exif_orientation(array: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)
