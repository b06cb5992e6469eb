"""Bundles whose network takes the crops' uint8 pixels (manifest schema 2, ``input_dtype = "uint8"``):
the same scores as the float-row bundle of the same network, on real photos, through every path of
the runtime (one image, lists with read-ahead and streams, grid crops straddling batches, a static
batch, score_tensor); schema-1 bundles keep loading; inconsistent pixel manifests are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_iqa.data.imageio import load_image
from edge_iqa.errors import ArrayInputError, BundleError
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import MANIFEST_NAME
from tests.helpers_runtime import GRID_SPEC, SPEC, TinyDepthNet, TinyNet, build_bundle, clive_photos, edit_manifest

pytest.importorskip("onnxruntime")
RUNTIMES = ["onnxruntime", "openvino"]
NET = TinyNet.random(3)


def _pair(root, runtime, **kwargs):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    return (build_bundle(root / "rows", NET, runtime=runtime, **kwargs),
            build_bundle(root / "pixels", NET, runtime=runtime, pixels=True, **kwargs))


def _same(pixels: np.ndarray, rows: np.ndarray, runtime: str) -> None:
    # ONNX Runtime computes the graph's /255, -mean, /std exactly as the float32 lookup table does;
    # OpenVINO would rewrite them (reciprocals, folded into the first conv) if the backend did not
    # rebuild them exact (exact_pixel_front): bit for bit on both.
    np.testing.assert_array_equal(pixels, rows, err_msg=runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("spec", [SPEC, GRID_SPEC], ids=["center", "grid"])
def test_pixel_bundle_scores_like_the_float_bundle(tmp_path, runtime, spec):
    rows_dir, pixels_dir = _pair(tmp_path, runtime, spec=spec, max_batch=4)
    photos = clive_photos(7)
    rows, pixels = load(rows_dir, threads=2), load(pixels_dir, threads=2)
    assert pixels.takes_pixels and not rows.takes_pixels
    assert json.loads((pixels_dir / MANIFEST_NAME).read_text())["schema_version"] == 2
    # What the network takes: the crops' bytes as cut from the resized photo, not normalised.
    image = load_image(photos[0])
    got = pixels.preprocess(photos[0])
    assert got.dtype == np.uint8 and got.shape == (spec.num_crops, *spec.input_size, 3)
    np.testing.assert_array_equal(got, spec.crops(spec.resize_image(image)))
    np.testing.assert_array_equal(spec.normalize_pixels(got), rows.preprocess(photos[0]))
    expected = rows.score(photos)
    assert np.ptp(expected) > 0
    _same(pixels.score(photos), expected, runtime)  # a list: read-ahead + list streams, crops straddling batches
    one_by_one = np.array([pixels.score_one(p) for p in photos])
    np.testing.assert_array_equal(pixels.score(photos), one_by_one)
    sequential = load(pixels_dir, threads=2, prefetch=0, backend_options={"list_streams": 1})
    np.testing.assert_array_equal(sequential.score(photos), one_by_one)
    # score_tensor takes the pixels; float rows are refused with what to pass instead.
    stacked = np.concatenate([pixels.preprocess(p) for p in photos[:3]])
    np.testing.assert_array_equal(pixels.score_tensor(stacked), one_by_one[:3])
    with pytest.raises(ArrayInputError, match="uint8 pixels"):
        pixels.score_tensor(spec.normalize_pixels(stacked))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_static_batch_pixel_bundle_pads_and_drops(tmp_path, runtime):
    rows_dir, pixels_dir = _pair(tmp_path, runtime, spec=GRID_SPEC, fixed_batch=4)
    photos = clive_photos(3)  # 18 crops: the last batch of 4 is half padding
    _same(load(pixels_dir).score(photos), load(rows_dir).score(photos), runtime)


def test_schema_1_float_bundle_still_loads(tmp_path):
    bundle = build_bundle(tmp_path / "v1", NET)
    photos = clive_photos(3)
    expected = load(bundle).score(photos)
    edit_manifest(bundle, schema_version=1)
    old = load(bundle)
    assert old.manifest.schema_version == 1 and not old.takes_pixels
    np.testing.assert_array_equal(old.score(photos), expected)


def _io(bundle, **record) -> None:
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest["io"]["inputs"][0].update(record)
    edit_manifest(bundle, io=manifest["io"])


@pytest.mark.parametrize(("record", "message"), [
    ({"dtype": "int16"}, "input dtype is 'int16'"),
    ({"shape": [-1, 3, 96, 96]}, r"\[batch, H, W, 3\] \(uint8 pixels\)"),
    ({"dtype": "float32"}, r"\[batch, 3, H, W\]"),  # a pixel graph's shape declared as float rows
])
def test_inconsistent_pixel_manifests_are_refused(tmp_path, record, message):
    bundle = build_bundle(tmp_path / "b", NET, pixels=True)
    _io(bundle, **record)
    with pytest.raises(BundleError, match=message):
        load(bundle)


def test_depth_networks_never_take_pixels(tmp_path):
    bundle = build_bundle(tmp_path / "depth", TinyDepthNet.random(0))
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    for record in manifest["io"]["inputs"]:
        record.update(dtype="uint8", shape=[-1, *SPEC.input_size, 3])
    edit_manifest(bundle, io=manifest["io"])
    with pytest.raises(BundleError, match="float32 rows"):
        load(bundle)


def test_a_newer_schema_is_refused(tmp_path):
    bundle = build_bundle(tmp_path / "b", NET, pixels=True)
    edit_manifest(bundle, schema_version=3)
    with pytest.raises(BundleError, match="newer edge-iqa"):
        load(bundle)


def test_pixel_manifest_on_a_float_network_is_refused(tmp_path):
    """A manifest that declares uint8 pixels for a network that takes float rows: OpenVINO finds no
    normalisation to keep exact at load; ONNX Runtime refuses the first input."""
    pytest.importorskip("openvino")
    photo = clive_photos(1)
    for runtime in RUNTIMES:
        bundle = build_bundle(tmp_path / runtime, NET, runtime=runtime)
        _io(bundle, dtype="uint8", shape=[-1, *SPEC.input_size, 3])
        with pytest.raises(BundleError, match="pixels' normalisation|inconsistent"):
            load(bundle).score(photo)
