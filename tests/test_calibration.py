"""The shipped calibration set: files match their checksums, names are real CLIVE names, the split
is seeded, and the images go through the model's preprocessing."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.calibration_data import calibration_clive_names, data_dir, image_paths, read_manifest, verify_checksums
from edge_iqa.data.depth import DepthFromMap, depth_network_input
from edge_iqa.data.imageio import load_image
from edge_iqa.export import calibration
from edge_iqa.models import get_model_info

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_manifest_checksums_match_files() -> None:
    rows = read_manifest()
    assert len(rows) == 256 and len({r.file for r in rows}) == 256
    for row, path in zip(rows, image_paths(), strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
    assert verify_checksums() == []
    assert (data_dir() / "LIVE_COPYRIGHT.txt").read_text().startswith("-----------COPYRIGHT NOTICE")


def test_calibration_names_for_exclusion() -> None:
    names = calibration_clive_names()
    assert len(names) == 256 and all(n.endswith(".JPG") for n in names)


def test_images_are_unchanged_clive_files() -> None:
    clive = SHARED / "datasets" / "clive"
    if not (clive / "labels.csv").is_file():
        pytest.skip(f"CLIVE not found at {clive}")
    with open(clive / "labels.csv", newline="") as fh:
        labels = {Path(r["image"]).name: float(r["mos"]) for r in csv.DictReader(fh)}
    for row in read_manifest()[:32]:
        assert row.original_name in labels and abs(labels[row.original_name] - row.mos) < 1e-6
        assert (clive / "images" / row.original_name).read_bytes() == (data_dir() / row.file).read_bytes()


def test_split_is_seeded_and_disjoint() -> None:
    a, b = calibration.split(16, 0, 8), calibration.split(16, 0, 8)
    assert a == b and calibration.split(16, 1, 8).calibration != a.calibration
    assert not {r.file for r in a.calibration} & {r.file for r in a.evaluation}
    assert len(a.evaluation) == 8 and not a.evaluation_overlaps_calibration
    full = calibration.split(256, 0, 8)
    assert full.evaluation_overlaps_calibration and len(full.evaluation) == 8


def test_feeds_follow_the_preprocess_spec() -> None:
    spec = get_model_info("edge_hybrid_n").preprocess
    rows = calibration.split(2, 0, 2).calibration
    feeds = list(calibration.iter_calibration_feeds(rows, spec, ("image", "depth")))
    assert len(feeds) == 2
    for feed in feeds:
        assert feed["image"].shape == (1, 3, *spec.input_size) and feed["image"].dtype == np.float32
        assert feed["depth"].shape == feed["image"].shape
    assert np.array_equal(feeds[0]["image"], calibration.prepare_images(rows[:1], spec, ("image", "depth")).rows())
    # A single-input network's images are prepared as the crops' uint8 pixels, and its calibration
    # feeds are the pixels of a uint8-input graph or the float rows they normalise to.
    pixels = calibration.prepare_images(rows[:1], spec).rows()
    assert pixels.shape == (1, *spec.input_size, 3) and pixels.dtype == np.uint8
    (pixel_feed, *_), (float_feed, *_) = (calibration.iter_calibration_feeds(rows[:1], spec, ("image",), pixels=p)
                                          for p in (True, False))
    assert np.array_equal(pixel_feed["image"], pixels)
    assert np.array_equal(float_feed["image"], spec.normalize_pixels(pixels)) and np.array_equal(
        float_feed["image"], feeds[0]["image"])
    # The depth rows are what the runtime feeds for an 8-bit depth map of the photo (here the
    # stand-in map): min-max scaled, quantised to 8 bit, the photo's resize and crop, ImageNet mean/std.
    photo = load_image(calibration.image_file(rows[0]))
    expected = depth_network_input(DepthFromMap(calibration.stand_in_depth(photo))(photo), spec)
    assert np.array_equal(feeds[0]["depth"], expected)
    levels = np.unique(np.round((feeds[0]["depth"][0, 0] * spec.std[0] + spec.mean[0]) * 255, 3))
    assert len(levels) > 16 and np.allclose(levels, np.round(levels), atol=1e-2)  # 8-bit levels, not floats
