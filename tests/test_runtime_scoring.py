"""The runtime scores real photos like a float64 reference and like TorchScorer, whatever the input kind,
batch limit, static batch or crop grid."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_iqa.data.imageio import load_image
from edge_iqa.errors import ArrayInputError, ImageDecodeError, ImageTooSmallError
from edge_iqa.runtime import DEFAULT_MAX_BATCH, Scorer, load
from edge_iqa.runtime.manifest import Manifest
from tests.helpers_runtime import GRID_SPEC, SPEC, TRANSFORM, TinyNet, any_photos, build_bundle, clive_photos_or_skip

NET = TinyNet.random(seed=3)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "onnxruntime": build_bundle(root / "ort", NET),
        "openvino": build_bundle(root / "ov", NET, runtime="openvino"),
        "max3": build_bundle(root / "max3", NET, max_batch=3),
        "fixed4": build_bundle(root / "fixed4", NET, fixed_batch=4),
        "grid": build_bundle(root / "grid", NET, spec=GRID_SPEC, max_batch=4),
        "grid_ov": build_bundle(root / "grid_ov", NET, spec=GRID_SPEC, max_batch=4, runtime="openvino"),
        "target5": build_bundle(root / "target5", NET, target={"max_batch": 5, "threads": 1}),
    }


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return clive_photos_or_skip(12)


def reference_scores(images: list[Path], spec=SPEC) -> np.ndarray:
    """Float64 numpy forward of the same network on the shared preprocessing, crops averaged."""
    raw = [NET.forward_numpy(spec.apply(load_image(p))).mean() for p in images]
    return np.asarray(raw) * TRANSFORM["scale"] + TRANSFORM["offset"]


#: Lists pack max_batch rows per call only without the backends' list set-up (one image per call).
PACKED = {"list_streams": 1}


def spy_on_batches(scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    real_run = scorer.backend.run

    def run(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return real_run(batch)

    monkeypatch.setattr(scorer.backend, "run", run)
    return shapes


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_scores_match_float64_reference_on_real_photos(bundles, photos, runtime):
    scorer = load(bundles[runtime])
    scores = scorer.score(photos)
    assert scores.dtype == np.float64 and scores.shape == (len(photos),)
    # float32 network vs float64 reference, on a 10x output scale.
    np.testing.assert_allclose(scores, reference_scores(photos), atol=1e-4, rtol=0)
    assert np.ptp(scores) > 1.0  # the photos really are scored differently


@pytest.mark.parametrize("spec_name", ["single", "grid"])
def test_preprocessing_and_scores_identical_to_torch_scorer(bundles, photos, spec_name):
    pytest.importorskip("torch")
    from edge_iqa.predict import TorchScorer

    spec, bundle = (SPEC, bundles["onnxruntime"]) if spec_name == "single" else (GRID_SPEC, bundles["grid"])
    runtime = load(bundle)
    reference = TorchScorer(NET.torch_module(), spec, TRANSFORM, batch_size=4)
    for path in photos[:4] + photos[-2:]:
        np.testing.assert_array_equal(runtime.preprocess(path), reference.preprocess(path))
    np.testing.assert_allclose(runtime.score(photos), reference.score(photos), atol=1e-4, rtol=0)


def test_every_input_kind_gives_the_same_score(bundles):
    scorer = load(bundles["onnxruntime"])
    path = any_photos(1)[0]
    array = load_image(path)
    with Image.open(path) as pil:
        pil.load()
        kinds = [path, str(path), path.read_bytes(), bytearray(path.read_bytes()), pil, array]
        expected = scorer.score_one(path)
        for kind in kinds:
            assert scorer.score(kind).tolist() == [expected], type(kind)
    stack = np.stack([array, array[::-1].copy()])
    assert scorer.score(stack)[0] == expected
    assert scorer.score(iter([path, path])).tolist() == [expected, expected]
    assert scorer.score([]).shape == (0,)


def test_more_images_than_max_batch_are_chunked(bundles, photos, monkeypatch):
    scorer = load(bundles["max3"], backend_options=PACKED)
    assert scorer.max_batch == 3
    shapes = spy_on_batches(scorer, monkeypatch)
    scores = scorer.score(photos[:10])
    assert [s[0] for s in shapes] == [3, 3, 3, 1]
    one_by_one = [scorer.score_one(p) for p in photos[:10]]
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-6)
    np.testing.assert_allclose(scores, reference_scores(photos[:10]), atol=1e-4, rtol=0)


def test_static_batch_network_gets_padded_batches(bundles, photos, monkeypatch):
    scorer = load(bundles["fixed4"], backend_options=PACKED)
    assert (scorer.fixed_batch, scorer.max_batch) == (4, 4)
    shapes = spy_on_batches(scorer, monkeypatch)
    scores = scorer.score(photos[:5])
    assert [s[0] for s in shapes] == [4, 4]
    np.testing.assert_allclose(scores, load(bundles["onnxruntime"]).score(photos[:5]), rtol=1e-6)


@pytest.mark.parametrize("bundle", ["grid", "grid_ov"])
def test_multi_crop_images_are_averaged_per_image(bundles, photos, monkeypatch, bundle):
    scorer = load(bundles[bundle], backend_options=PACKED)
    assert scorer.spec.num_crops == 6
    shapes = spy_on_batches(scorer, monkeypatch)
    scores = scorer.score(photos[:3])
    # 18 crop rows in chunks of 4: the crops of image 1 straddle two backend calls.
    assert [s[0] for s in shapes] == [4, 4, 4, 4, 2]
    np.testing.assert_allclose(scores, reference_scores(photos[:3], GRID_SPEC), atol=1e-4, rtol=0)
    # Averaging, not e.g. the first crop: per-crop raw scores really differ on these photos.
    crops = GRID_SPEC.apply(load_image(photos[0]))
    assert np.ptp(NET.forward_numpy(crops)) > 1e-3


def test_score_tensor_takes_preprocessed_rows(bundles, photos):
    scorer = load(bundles["grid"])
    rows = np.concatenate([scorer.preprocess(p) for p in photos[:2]])
    np.testing.assert_array_equal(scorer.score_tensor(rows), scorer.score(photos[:2]))
    with pytest.raises(ArrayInputError, match="float32 rows"):
        scorer.score_tensor(rows[:5])  # not a whole number of images
    with pytest.raises(ArrayInputError, match="float32"):
        scorer.score_tensor(rows.astype(np.int32))
    # The crops' uint8 pixels: a float-input bundle normalises them exactly as preprocess() does.
    pixels = np.concatenate([scorer.spec.pixels(load_image(p)) for p in photos[:2]])
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (*scorer.spec.input_size, 3)
    np.testing.assert_array_equal(scorer.score_tensor(pixels), scorer.score(photos[:2]))


def test_image_errors_propagate_typed(bundles):
    scorer = load(bundles["onnxruntime"])
    good = any_photos(1)[0].read_bytes()
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        scorer.score(good[: len(good) // 2])
    with pytest.raises(ImageDecodeError, match="no such file"):
        scorer.score(Path("/nonexistent/photo.jpg"))
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    with pytest.raises(ImageTooSmallError):
        scorer.score([any_photos(1)[0], tiny.getvalue()])
    with pytest.raises(ArrayInputError):
        scorer.score(np.zeros((64, 64, 3), dtype=np.float32))


def test_manifest_and_spec_properties(bundles):
    scorer = load(bundles["grid"])
    assert scorer.spec == GRID_SPEC
    manifest = scorer.manifest
    assert manifest["runtime"] == "onnxruntime" and manifest["io"]["max_batch"] == 4
    manifest["output_transform"]["scale"] = 0.0  # a copy: the scorer is unaffected
    assert scorer.manifest["output_transform"]["scale"] == TRANSFORM["scale"]
    assert scorer.info["model"] == "tiny_test_net" and "tiny_test_net" in repr(scorer)


def test_target_profile_batch_and_threads_are_the_defaults(bundles, photos, monkeypatch):
    scorer = load(bundles["target5"])  # no io.max_batch: the target profile's max_batch applies
    assert scorer.max_batch == 5 and scorer.backend.describe()["threads"] == 1
    shapes = spy_on_batches(scorer, monkeypatch)
    scorer.score(photos[:7])
    assert [s[0] for s in shapes] == [5, 2]
    assert load(bundles["target5"], threads=2).backend.describe()["threads"] == 2
    assert load(bundles["onnxruntime"]).max_batch == DEFAULT_MAX_BATCH


def test_runtime_options_recorded_by_the_exporter_are_applied(tmp_path, photos):
    options = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1}
    ov_bundle = build_bundle(tmp_path / "ov", NET, runtime="openvino", extra={"runtime_options": options})
    recorded = load(ov_bundle)
    assert recorded.backend.describe()["config"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert recorded.backend.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    overridden = load(ov_bundle, threads=2, backend_options={"config": {"INFERENCE_PRECISION_HINT": "f32"}})
    assert overridden.backend.compiled.get_property("INFERENCE_NUM_THREADS") == 2
    # The caller's f32 override gives the float64 reference; bf16 (where the CPU has it) moves scores.
    import openvino as ov

    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert np.abs(recorded.score(photos[:4]) - reference_scores(photos[:4])).max() > 1e-3
    np.testing.assert_allclose(overridden.score(photos[:4]), reference_scores(photos[:4]), atol=1e-4, rtol=0)

    ort_bundle = build_bundle(tmp_path / "ort", NET, extra={"runtime_options": {
        "intra_op_num_threads": 0, "graph_optimization_level": "ORT_DISABLE_ALL"}})
    import onnxruntime as ort

    level = load(ort_bundle).backend.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_a_new_backend_needs_only_run(bundles, photos):
    """The backend interface as a TensorRT backend would implement it: only ``run`` (+ max_batch)."""
    import json

    from edge_iqa.runtime.backends import Backend

    class NumpyBackend(Backend):
        name = "numpy"
        max_batch = 2  # e.g. an engine's optimisation-profile maximum

        def __init__(self) -> None:
            self.batches: list[int] = []

        def run(self, batch: np.ndarray) -> np.ndarray:
            self.batches.append(len(batch))
            return NET.forward_numpy(batch)

    manifest = Manifest.from_dict(json.loads((bundles["max3"] / "manifest.json").read_text()))
    scorer = Scorer(NumpyBackend(), manifest)
    assert scorer.max_batch == 2  # min(io.max_batch=3, backend 2)
    np.testing.assert_allclose(scorer.score(photos[:5]), reference_scores(photos[:5]), rtol=1e-12)
    assert scorer.backend.batches == [2, 2, 1]
