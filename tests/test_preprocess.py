"""PreprocessSpec: serialisation round trip, resize policies, crop grids, normalisation values."""

from __future__ import annotations

import numpy as np
import pytest

from edge_iqa.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(input_size=(384, 384)),
        PreprocessSpec(input_size=(224, 224), resize="none", crop="grid", grid=(3, 5), interpolation="bicubic"),
        PreprocessSpec(input_size=(384, 512), resize="exact", crop="none", normalize=False),
        PreprocessSpec(input_size=(224, 224), resize_to=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    ],
)
def test_to_dict_from_dict_round_trip(spec: PreprocessSpec) -> None:
    import json

    data = json.loads(json.dumps(spec.to_dict()))
    assert PreprocessSpec.from_dict(data) == spec
    image = _image(300, 420)
    if spec.resize == "none" and spec.crop != "grid":
        return
    np.testing.assert_array_equal(PreprocessSpec.from_dict(data).apply(image), spec.apply(image))


def test_newer_spec_version_is_refused() -> None:
    data = PreprocessSpec(input_size=(8, 8)).to_dict() | {"version": 99}
    with pytest.raises(ValueError, match="newer"):
        PreprocessSpec.from_dict(data)


def test_shorter_side_resize_and_center_crop_shapes() -> None:
    spec = PreprocessSpec(input_size=(384, 384))
    resized = spec.resize_image(_image(500, 750))
    assert resized.shape == (384, 576, 3)
    out = spec.apply(_image(500, 750))
    assert out.shape == (1, 3, 384, 384) and out.dtype == np.float32
    assert spec.crop_boxes(384, 576) == [(0, 96)]


def test_grid_crops_are_evenly_spaced_and_cover_corners() -> None:
    spec = PreprocessSpec(input_size=(224, 224), resize="none", crop="grid", grid=(3, 5))
    boxes = spec.crop_boxes(500, 500)
    assert spec.num_crops == 15 and len(boxes) == 15
    assert boxes[0] == (0, 0) and boxes[-1] == (276, 276)
    assert sorted({r for r, _ in boxes}) == [0, 138, 276]
    assert sorted({c for _, c in boxes}) == [0, 69, 138, 207, 276]
    image = _image(500, 500)
    out = spec.apply(image)
    assert out.shape == (15, 3, 224, 224)
    # Crop 7 (row 1, col 2) is exactly that window of the image, normalised.
    r, c = boxes[7]
    expected = (image[r : r + 224, c : c + 224] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out[7], expected.transpose(2, 0, 1), atol=1e-5)


def test_normalisation_values() -> None:
    spec = PreprocessSpec(input_size=(2, 2), resize="none", crop="none")
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[0, 0] = (255, 128, 0)
    out = spec.apply(image)[0]
    assert out[0, 0, 0] == pytest.approx((1.0 - 0.485) / 0.229, abs=1e-6)
    assert out[1, 0, 0] == pytest.approx((128 / 255 - 0.456) / 0.224, abs=1e-6)
    assert out[2, 0, 0] == pytest.approx((0.0 - 0.406) / 0.225, abs=1e-6)
    raw = PreprocessSpec(input_size=(2, 2), resize="none", crop="none", normalize=False).apply(image)[0]
    assert raw[0, 0, 0] == pytest.approx(1.0) and raw.min() >= 0 and raw.max() <= 1


def test_crop_none_and_too_small_images_raise() -> None:
    with pytest.raises(ValueError, match="crop='none'"):
        PreprocessSpec(input_size=(8, 8), resize="none", crop="none").apply(_image(9, 8))
    with pytest.raises(ValueError, match="smaller than the crop"):
        PreprocessSpec(input_size=(32, 32), resize="none").apply(_image(16, 64))


def test_elongated_images_are_upscaled_until_the_crop_fits() -> None:
    spec = PreprocessSpec(input_size=(224, 320))
    out = spec.apply(_image(600, 200))  # shorter side 200 -> 224, width 224 < 320: scale up
    assert out.shape == (1, 3, 224, 320)


@pytest.mark.parametrize("bad", [{"input_size": (0, 4)}, {"input_size": (4, 4), "resize": "fit"},
                                 {"input_size": (4, 4), "interpolation": "magic"},
                                 {"input_size": (4, 4), "std": (1, 0, 1)}])
def test_invalid_specs_raise(bad: dict) -> None:
    with pytest.raises(ValueError):
        PreprocessSpec(**bad)


def _recipe(spec: PreprocessSpec, image: np.ndarray) -> np.ndarray:
    """The documented recipe written out per pixel in float32 (what docs/integration.md tells a C
    port to do): crop, /255, (x - mean) / std, HWC -> CHW."""
    ch, cw = spec.input_size
    crops = [image[r : r + ch, c : c + cw] for r, c in spec.crop_boxes(*image.shape[:2])]
    batch = np.stack(crops).astype(np.float32) / np.float32(255.0)
    if spec.normalize:
        batch = (batch - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(input_size=(384, 384)),
        PreprocessSpec(input_size=(64, 48), resize="none", crop="grid", grid=(3, 5)),
        PreprocessSpec(input_size=(96, 128), resize="exact", crop="none", normalize=False),
        PreprocessSpec(input_size=(64, 64), resize_to=80, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.6)),
    ],
)
def test_table_lookup_is_bit_identical_to_the_float_recipe(spec: PreprocessSpec) -> None:
    # Random pixels plus a ramp of all 256 values (kept exactly by the resize='none' grid spec).
    image = _image(300, 420)
    image[0, :256] = np.arange(256, dtype=np.uint8)[:, None]
    resized = spec.resize_image(image)
    got = spec.to_tensor_batch(resized)
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), _recipe(spec, resized).view(np.uint32))
