"""The KADID-10k distortion library: registry, level order on real photos, determinism, inputs.

Level order is checked with a full-reference metric per type: PSNR for every type except
``contrast_change`` (SSIM: its levels alternate between raising and lowering contrast, and PSNR
of a raised contrast is capped by clipping while SSIM's contrast term is not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_iqa.data.distortions import DISTORTIONS, GROUPS, KADID_ID_TO_NAME, distort, list_distortions
from edge_iqa.errors import ArrayInputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PRISTINE = SHARED / "datasets" / "pristine" / "images"
# The first three photos of the pristine set by name (not picked for passing): colour photos.
PHOTO_NAMES = ("p001.webp", "p002.webp", "p003.webp")
SIDE = 192

KADID_ORDER = (
    "gaussian_blur", "lens_blur", "motion_blur", "color_diffusion", "color_shift", "color_quantization",
    "color_saturation_hsv", "color_saturation_lab", "jpeg2000", "jpeg", "white_noise", "white_noise_color",
    "impulse_noise", "multiplicative_noise", "denoise", "brighten", "darken", "mean_shift", "jitter",
    "non_eccentricity_patch", "pixelate", "quantization", "color_block", "high_sharpen", "contrast_change",
)
METRIC = {name: "psnr" for name in KADID_ORDER} | {"contrast_change": "ssim"}


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    if not PRISTINE.is_dir():
        pytest.skip(f"pristine photos not found at {PRISTINE} (the shared data set sits beside the checkout)")
    images = []
    for name in PHOTO_NAMES:
        with Image.open(PRISTINE / name) as image:
            image = image.convert("RGB")
            image.thumbnail((SIDE, SIDE), Image.Resampling.BOX)
            images.append(np.asarray(image))
    return images


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    piq = pytest.importorskip("piq")
    import torch

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255.0

    return float(piq.ssim(tensor(reference), tensor(distorted), data_range=1.0))


def test_registry_holds_the_25_kadid_types_in_order() -> None:
    assert list_distortions() == list(KADID_ORDER)
    assert sorted(KADID_ID_TO_NAME) == list(range(1, 26))
    for name, kind in DISTORTIONS.items():
        assert KADID_ID_TO_NAME[kind.kadid_id] == name
        assert kind.group in GROUPS
        assert len(kind.levels) == 5 and len(set(kind.levels)) == 5, name
        assert kind.parameter and kind.description
    assert {kind.group for kind in DISTORTIONS.values()} == set(GROUPS)


@pytest.mark.parametrize("name", KADID_ORDER)
def test_levels_are_ordered_by_severity_on_real_photos(name: str, photos: list[np.ndarray]) -> None:
    metric = psnr if METRIC[name] == "psnr" else ssim
    for index, photo in enumerate(photos):
        outputs = [distort(photo, name, level, seed=7) for level in range(1, 6)]
        for out in outputs:
            assert out.dtype == np.uint8 and out.shape == photo.shape
        quality = [metric(photo, out) for out in outputs]
        assert all(a > b for a, b in zip(quality, quality[1:], strict=False)), (
            f"{name} on {PHOTO_NAMES[index]}: {METRIC[name]} by level {np.round(quality, 4).tolist()} "
            "is not strictly decreasing"
        )
        assert not np.array_equal(outputs[0], photo), f"{name} level 1 leaves the image unchanged"


@pytest.mark.parametrize("name", KADID_ORDER)
def test_same_seed_same_output_and_seed_matters_only_for_random_types(name: str, photos: list[np.ndarray]) -> None:
    photo = photos[0]
    first = distort(photo, name, 3, seed=11)
    np.testing.assert_array_equal(first, distort(photo, name, 3, seed=11))
    other = distort(photo, name, 3, seed=12)
    if DISTORTIONS[name].random:
        assert not np.array_equal(first, other), f"{name} is marked random but ignores the seed"
    else:
        np.testing.assert_array_equal(first, other)


def test_input_is_not_modified_and_odd_sizes_work(photos: list[np.ndarray]) -> None:
    photo = np.ascontiguousarray(photos[1][:97, :131])  # odd sizes, smaller than one 32 px block grid
    before = photo.copy()
    for name in KADID_ORDER:
        out = distort(photo, name, 5, seed=0)
        assert out.shape == photo.shape and out.dtype == np.uint8, name
    np.testing.assert_array_equal(photo, before)


def test_bad_arguments_raise_readable_errors(photos: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(photos[0], "vaseline", 1)
    with pytest.raises(ValueError, match="level"):
        distort(photos[0], "jpeg", 6)
    with pytest.raises(ArrayInputError):
        distort(photos[0].astype(np.float32), "jpeg", 1)


def test_iter_distortions_yields_every_type_and_level_with_one_seed(photos: list[np.ndarray]) -> None:
    from edge_iqa.data.distortions import iter_distortions

    small = np.ascontiguousarray(photos[2][:64, :80])
    produced = list(iter_distortions(small, types=["white_noise", "jpeg"], levels=(1, 5), seed=4))
    assert [(n, lv) for n, lv, _ in produced] == [("white_noise", 1), ("white_noise", 5), ("jpeg", 1), ("jpeg", 5)]
    for name, level, image in produced:
        np.testing.assert_array_equal(image, distort(small, name, level, seed=4))
    assert len(list(iter_distortions(small))) == 125


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_level_order_on_all_pristine_photos() -> None:
    """The level-order check on every pristine photo (docs/distortions.md reports the counts).

    Run: ``pytest -m slow tests/test_distortions.py -k all_pristine -s`` (about 5 min on one core).
    A few pairs may tie or invert (greyscale photos for the chroma types, clipping for mean shift);
    more than 2 % of the pairs of one type would mean the levels are badly spaced.
    """
    if not PRISTINE.is_dir():
        pytest.skip(f"pristine photos not found at {PRISTINE}")
    photos = []
    for path in sorted(PRISTINE.iterdir()):
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((SIDE, SIDE), Image.Resampling.BOX)
            photos.append(np.asarray(image))
    counts = {}
    for name in KADID_ORDER:
        metric = psnr if METRIC[name] == "psnr" else ssim
        bad = 0
        for photo in photos:
            quality = [metric(photo, distort(photo, name, level, seed=1)) for level in range(1, 6)]
            bad += sum(a <= b for a, b in zip(quality, quality[1:], strict=False))
        counts[name] = bad
        print(f"{name:24s} {bad:3d}/{4 * len(photos)} level pairs out of order")
    assert all(bad <= 0.02 * 4 * len(photos) for bad in counts.values()), counts
