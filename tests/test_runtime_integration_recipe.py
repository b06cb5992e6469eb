"""docs/integration.md tells C/C++ integrators how to reproduce the preprocessing without Pillow.
This re-implements that recipe from the document's description (integer arithmetic, no Pillow
resize, no PreprocessSpec methods) and checks it is bit-identical to the runtime's input tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from tests.helpers_runtime import GRID_SPEC, SPEC, clive_photos

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2


def round_half_even(x: float) -> int:
    """Python's round(), numpy's round(): ties to even (C: nearbyint under FE_TONEAREST)."""
    return int(np.rint(x))


def resized_size(h: int, w: int, spec: PreprocessSpec) -> tuple[int, int]:
    """Step 1 of the recipe: the size the resize policy asks for."""
    if spec.resize == "none":
        return h, w
    if spec.resize == "exact":
        return spec.input_size
    target = spec.resize_to or min(spec.input_size)
    scale = target / min(h, w)
    new_h, new_w = max(target, round_half_even(h * scale)), max(target, round_half_even(w * scale))
    return max(new_h, spec.input_size[0]), max(new_w, spec.input_size[1])


def bilinear_taps(in_size: int, out_size: int) -> list[tuple[int, np.ndarray]]:
    """Per output pixel: first input index and int32 fixed-point weights (antialiased triangle)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    taps = []
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)  # C cast: truncation toward zero
        last = min(int(center + support + 0.5), in_size)
        x = (np.arange(first, last) - center + 0.5) / filterscale
        weights = np.maximum(0.0, 1.0 - np.abs(x))
        weights /= weights.sum()
        fixed = np.trunc(weights * (1 << PRECISION_BITS) + 0.5).astype(np.int64)  # weights >= 0 here
        taps.append((first, fixed))
    return taps


def resample_axis(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One separable pass; the result is rounded (half up) and clamped to uint8, as Pillow stores it."""
    moved = np.moveaxis(image.astype(np.int64), axis, 0)
    rows = []
    for first, fixed in bilinear_taps(moved.shape[0], out_size):
        acc = np.tensordot(fixed, moved[first : first + len(fixed)], axes=(0, 0)) + (1 << (PRECISION_BITS - 1))
        rows.append(np.clip(acc >> PRECISION_BITS, 0, 255))
    return np.moveaxis(np.stack(rows), 0, axis).astype(np.uint8)


def grid_starts(span: int, count: int) -> list[int]:
    """numpy.linspace(0, span, count).round(): i * (span / (count - 1)), the last exactly span."""
    if count == 1:
        return [0]
    step = span / (count - 1)
    return [round_half_even(i * step) for i in range(count - 1)] + [span]


def recipe(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    h, w = image.shape[:2]
    new_h, new_w = resized_size(h, w, spec)
    if h - new_h > 0 and h - new_h > 2 * (w - new_w):  # Pillow >= 13: height shrinks much more: vertical first
        image = resample_axis(resample_axis(image, new_h, axis=0), new_w, axis=1)
    else:  # otherwise horizontal first; a pass whose length does not change is skipped
        if new_w != w:
            image = resample_axis(image, new_w, axis=1)
        if new_h != h:
            image = resample_axis(image, new_h, axis=0)
    ch, cw = spec.input_size
    if spec.crop == "center":
        corners = [((new_h - ch) // 2, (new_w - cw) // 2)]
    elif spec.crop == "grid":
        g_rows, g_cols = spec.grid
        corners = [(r, c) for r in grid_starts(new_h - ch, g_rows) for c in grid_starts(new_w - cw, g_cols)]
    else:
        corners = [(0, 0)]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    out = np.empty((len(corners), 3, ch, cw), dtype=np.float32)
    for n, (r, c) in enumerate(corners):
        for k in range(3):  # NCHW, channels R, G, B
            plane = image[r : r + ch, c : c + cw, k].astype(np.float32) / np.float32(255.0)
            out[n, k] = (plane - mean[k]) / std[k] if spec.normalize else plane
    return out


SPECS = {
    "shorter_side_center": SPEC,
    "grid_2x3": GRID_SPEC,
    "exact": dataclasses.replace(SPEC, resize="exact", crop="none"),
    "exact_widen_and_shorten": PreprocessSpec(input_size=(96, 640), resize="exact", crop="none"),
    "exact_narrow_and_heighten": PreprocessSpec(input_size=(640, 96), resize="exact", crop="none"),
    "exact_much_shorter": PreprocessSpec(input_size=(96, 400), resize="exact", crop="none"),
    "exact_bit_shorter": PreprocessSpec(input_size=(300, 200), resize="exact", crop="none"),
    "upscale": PreprocessSpec(input_size=(224, 224), resize_to=600),
    "grid_no_normalize": dataclasses.replace(GRID_SPEC, normalize=False),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_documented_recipe_is_bit_identical_to_the_runtime(name):
    photos = clive_photos(4)
    if not photos:
        pytest.skip("real photos not found: ../shared/datasets/clive is absent")
    spec = SPECS[name]
    for path in (photos[0], photos[-1]):  # a 500x500 CLIVE photo and a 512x384 pristine photo
        image = load_image(path)
        np.testing.assert_array_equal(recipe(image, spec), spec.apply(image), err_msg=f"{name} {path.name}")

