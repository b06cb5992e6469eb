"""The decoder turns every input into HxWx3 uint8 RGB or a typed ImageError, never anything else."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge_iqa.data import imageio
from edge_iqa.data.imageio import load_image
from edge_iqa.errors import (
    ArrayInputError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
)
from tests.helpers_images import encode, png_declaring, real_photo, with_exif_orientation

FORMATS = ["JPEG", "PNG", "WEBP", "BMP", "TIFF"]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return real_photo(96)


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_photo_round_trips_in_every_format(photo: np.ndarray, fmt: str) -> None:
    decoded = load_image(encode(photo, fmt))
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    tolerance = 40 if fmt in ("JPEG", "WEBP") else 0  # lossy codecs
    assert np.abs(decoded.astype(int) - photo.astype(int)).mean() <= tolerance / 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files_raise_decode_error(photo: np.ndarray, fmt: str) -> None:
    data = encode(photo, fmt)
    with pytest.raises(ImageDecodeError, match="corrupt or truncated|not a recognised"):
        load_image(data[: len(data) // 2])


def test_missing_empty_and_non_image_files(tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match="no such file"):
        load_image(tmp_path / "absent.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_bytes(b"this is not a picture\n" * 10)
    with pytest.raises(ImageDecodeError, match="not a recognised image format"):
        load_image(text)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="400000000 pixels.*set_max_pixels"):
        load_image(png_declaring(20000, 20000))
    with pytest.raises(ImageTooLargeError, match="12000x12000 = 144,000,000 pixels"):
        load_image(png_declaring(12000, 12000))


def test_pixel_limit_is_configurable(photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imageio, "MAX_PIXELS", 96 * 96 - 1)
    with pytest.raises(ImageTooLargeError, match="set_max_pixels"):
        load_image(encode(photo, "PNG"))


@pytest.mark.parametrize("side", [1, 15])
def test_tiny_images_are_refused(side: int) -> None:
    with pytest.raises(ImageTooSmallError, match="at least 16"):
        load_image(encode(np.zeros((side, side, 3), np.uint8), "PNG"))


def test_cmyk_converts_to_rgb(photo: np.ndarray) -> None:
    cmyk = Image.fromarray(photo).convert("CMYK")
    decoded = load_image(encode(cmyk, "JPEG", quality=95))
    assert decoded.shape == photo.shape
    assert np.abs(decoded.astype(int) - photo.astype(int)).mean() < 12


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    decoded = load_image(encode(Image.fromarray(ramp), "PNG"))
    assert decoded.shape == (32, 64, 3)
    assert decoded[0, 0, 0] == 0 and decoded[0, -1, 0] == 255
    assert 120 <= decoded[0, 32, 0] <= 135  # mid-grey, not saturated


def test_palette_alpha_and_grayscale(photo: np.ndarray) -> None:
    palette = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE)
    assert load_image(encode(palette, "PNG")).shape == photo.shape
    gray = Image.fromarray(photo).convert("L")
    decoded = load_image(encode(gray, "PNG"))
    assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()
    rgba = np.dstack([photo, np.zeros(photo.shape[:2], np.uint8)])  # fully transparent
    assert (load_image(encode(rgba, "PNG")) == 255).all()  # composited over white


@pytest.mark.parametrize("orientation,expected_shape", [(1, (48, 96)), (6, (96, 48)), (8, (96, 48)), (3, (48, 96))])
def test_exif_orientation_is_applied(photo: np.ndarray, orientation: int, expected_shape: tuple[int, int]) -> None:
    wide = photo[:48]
    assert load_image(with_exif_orientation(wide, orientation)).shape[:2] == expected_shape


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((32, 32), np.uint8), "HxWx3"),
        (np.zeros((32, 32, 4), np.uint8), "HxWx3"),
        (np.zeros((32, 32, 3), np.float32), "dtype uint8"),
        (np.full((32, 32, 3), np.nan, np.float32), "dtype uint8"),
        (np.zeros((2, 32, 32, 3), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 3), np.uint8), "at least 16"),
    ],
)
def test_bad_arrays_raise_typed_errors(array: np.ndarray, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        load_image(array)


def test_unsupported_objects_raise_array_input_error() -> None:
    with pytest.raises(ArrayInputError, match="file path, encoded bytes"):
        load_image(12345)  # type: ignore[arg-type]


def test_float_tiff_with_nan_is_refused() -> None:
    data = np.full((32, 32), np.nan, np.float32)
    with pytest.raises(ImageError, match="NaN"):
        load_image(encode(Image.fromarray(data, mode="F"), "TIFF"))


# --- fuzz: mutated real files end in a valid image or a typed error, never anything else ------------
_FUZZ_EXAMPLES = int(os.environ.get("EDGE_IQA_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def seeds(photo: np.ndarray) -> list[bytes]:
    return [encode(photo, fmt) for fmt in FORMATS]


@settings(max_examples=_FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_images(seeds: list[bytes], data: st.DataObject) -> None:
    blob = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    try:
        decoded = load_image(bytes(blob[:cut]))
    except ImageError:
        return
    assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3


@settings(max_examples=_FUZZ_EXAMPLES, deadline=None)
@given(blob=st.binary(min_size=0, max_size=512))
def test_fuzz_random_bytes(blob: bytes) -> None:
    try:
        decoded = load_image(blob)
    except ImageError:
        return
    assert decoded.dtype == np.uint8 and decoded.shape[2] == 3


def test_pil_image_input(photo: np.ndarray) -> None:
    assert (load_image(Image.fromarray(photo)) == photo).all()
    assert load_image(Image.open(io.BytesIO(encode(photo, "PNG")))).shape == photo.shape
