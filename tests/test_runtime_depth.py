"""Two-input bundles (``image`` + ``depth``, as DGIQA exports) through the torch-free runtime.

A tiny two-input network (``helpers_runtime.TinyDepthNet``: one small conv branch per input,
summed) is written as real ONNX Runtime and OpenVINO bundles with a 6-crop grid spec and
``max_batch`` 4, so the crops of one image straddle backend calls. Scores of real photos
(calibration_data/images, one of them portrait) are checked against the same network in PyTorch on
the crops :func:`edge_iqa.data.depth.dgiqa_inputs` makes, and every way of passing depth (maps,
a DepthSource, an ONNX depth model) and every refusal is exercised. The depth maps are stand-ins
(luminance plus a vertical ramp, at half resolution, 16-bit PNG like a ToF or stereo camera's):
no depth data ships with the calibration photos.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edge_iqa.cli import app
from edge_iqa.data.depth import dgiqa_inputs
from edge_iqa.data.imageio import load_image
from edge_iqa.errors import ArrayInputError, BundleError, ImageDecodeError
from edge_iqa.runtime import DepthFromMap, OnnxDepthEstimator, Scorer, load
from tests.helpers_runtime import (
    CALIBRATION_IMAGES,
    GRID_SPEC,
    TRANSFORM,
    TinyDepthNet,
    TinyNet,
    build_bundle,
    bundle_pair,
    edit_manifest,
)
from tests.test_runtime_torchfree import run_clean

NET = TinyDepthNet.random(seed=7)
RUNTIMES = ("onnxruntime", "openvino")


# --- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("depth_bundles")
    pair = bundle_pair(root, NET, spec=GRID_SPEC, max_batch=4)
    pair["depth_first"] = build_bundle(root / "depth_first", TinyDepthNet.random(seed=7, inputs=("depth", "image")),
                                       spec=GRID_SPEC, max_batch=4)
    pair["single"] = build_bundle(root / "single", TinyNet.random(seed=7), spec=GRID_SPEC)
    return pair


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """Three square 500x500 photos and the one portrait 640x960 photo of the shipped set."""
    files = sorted(p for p in CALIBRATION_IMAGES.iterdir() if p.is_file())
    portrait = [p for p in files if Image.open(p).size[0] < Image.open(p).size[1]]
    assert portrait, "the calibration set should hold a portrait photo"
    return [*files[:3], portrait[0]]


def stand_in_depth(photo: Path) -> np.ndarray:
    """A smooth (H/2, W/2) uint16 'depth' of the photo: its luminance plus a ramp from top to bottom."""
    image = load_image(photo)
    height, width = image.shape[0] // 2, image.shape[1] // 2
    gray = np.asarray(Image.fromarray(image).convert("L").resize((width, height), Image.Resampling.BILINEAR))
    ramp = np.linspace(0.0, 40_000.0, height)[:, None]
    return (gray.astype(np.float64) * 100.0 + ramp).astype(np.uint16)


@pytest.fixture(scope="module")
def depth_maps(photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("depth_maps")
    paths = []
    for photo in photos:
        path = folder / f"{photo.stem}_depth.png"
        Image.fromarray(stand_in_depth(photo)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny monocular 'depth network' in ONNX: the channel mean of its (normalised) input, any size."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["pixel_values"], ["predicted_depth"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node], "tiny_depth",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("predicted_depth", TensorProto.FLOAT, [1, 1, "height", "width"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("depth_model") / "tiny_depth.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def torch_net() -> Any:
    pytest.importorskip("torch", reason="the PyTorch reference needs torch; the runtime itself does not")
    return NET.torch_module()


def reference(torch_net: Any, photo: Path, source: Any, swap: bool = False) -> float:
    """The score by PyTorch on dgiqa_inputs' crops: crops averaged, then the output transform."""
    import torch

    rgb, depth = dgiqa_inputs(load_image(photo), source, GRID_SPEC)
    feeds = (depth, rgb) if swap else (rgb, depth)
    with torch.no_grad():
        raw = torch_net(*(torch.from_numpy(f) for f in feeds)).double().mean().item()
    return raw * TRANSFORM["scale"] + TRANSFORM["offset"]


def references(torch_net: Any, photos: list[Path], sources: list[Any], swap: bool = False) -> np.ndarray:
    return np.array([reference(torch_net, p, s, swap) for p, s in zip(photos, sources, strict=True)])


# --- scores ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_scores_equal_the_torch_reference_on_real_photos(bundles, photos, depth_maps, torch_net, runtime):
    scorer = load(bundles[runtime], threads=1)
    assert scorer.needs_depth and scorer.inputs == ("image", "depth") and scorer.spec.num_crops == 6
    scores = scorer.score(photos, depth=depth_maps)
    expected = references(torch_net, photos, [DepthFromMap(m) for m in depth_maps])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-4)
    # The depth really reaches its own branch: swapped inputs or another depth give other scores.
    assert np.abs(scores - references(torch_net, photos, [DepthFromMap(m) for m in depth_maps], swap=True)).min() > 1e-3
    flipped = scorer.score(photos, depth=[np.asarray(Image.open(m))[::-1] for m in depth_maps])
    assert np.abs(flipped - scores).min() > 1e-3
    # One image at a time (other batch boundaries) gives the same scores.
    one = [scorer.score_one(p, depth=m) for p, m in zip(photos, depth_maps, strict=True)]
    np.testing.assert_allclose(one, scores, rtol=0, atol=1e-5)


def test_depth_crops_are_fed_under_their_image_crops_in_lockstep(bundles, photos, depth_maps, monkeypatch):
    scorer = load(bundles["onnxruntime"], threads=1)
    calls: list[tuple[np.ndarray, ...]] = []
    run = scorer.backend.run

    def spy(*inputs: np.ndarray) -> np.ndarray:
        calls.append(tuple(np.array(i, copy=True) for i in inputs))
        return run(*inputs)

    monkeypatch.setattr(scorer.backend, "run", spy)
    scorer.score(photos, depth=depth_maps)
    # 4 images x 6 crops = 24 rows in chunks of max_batch 4, both inputs with the same rows each call.
    assert [tuple(len(i) for i in call) for call in calls] == [(4, 4)] * 6
    fed_rgb, fed_depth = (np.concatenate([call[k] for call in calls]) for k in (0, 1))
    made = [dgiqa_inputs(load_image(p), DepthFromMap(m), GRID_SPEC) for p, m in zip(photos, depth_maps, strict=True)]
    np.testing.assert_array_equal(fed_rgb, np.concatenate([rgb for rgb, _ in made]))
    np.testing.assert_array_equal(fed_depth, np.concatenate([depth for _, depth in made]))


def test_manifest_input_order_does_not_matter(bundles, photos, depth_maps):
    first = load(bundles["depth_first"], threads=1)
    assert first.inputs == ("depth", "image")
    np.testing.assert_allclose(first.score(photos, depth=depth_maps),
                               load(bundles["onnxruntime"], threads=1).score(photos, depth=depth_maps),
                               rtol=0, atol=1e-5)


def test_depth_source_given_at_load_and_overridden_per_call(bundles, photos, depth_maps, torch_net):
    def ramp(image: np.ndarray) -> np.ndarray:  # a DepthSource: far at the top, near at the bottom
        return np.repeat(np.linspace(0.0, 1.0, image.shape[0], dtype=np.float32)[:, None], image.shape[1], axis=1)

    scorer = load(bundles["onnxruntime"], threads=1, depth=ramp)
    assert scorer.depth is ramp
    np.testing.assert_allclose(scorer.score(photos), references(torch_net, photos, [ramp] * 4), rtol=0, atol=1e-4)
    overridden = scorer.score(photos, depth=depth_maps)  # per-call maps win over the loaded source
    np.testing.assert_allclose(overridden, references(torch_net, photos, [DepthFromMap(m) for m in depth_maps]),
                               rtol=0, atol=1e-4)
    plain = load(bundles["onnxruntime"], threads=1)
    np.testing.assert_allclose(plain.score(photos, depth=ramp), scorer.score(photos), rtol=0, atol=1e-6)
    # A fixed map at load (a camera whose scene does not move) is used for every image.
    fixed = load(bundles["onnxruntime"], threads=1, depth=depth_maps[0])
    expected = references(torch_net, photos[:3], [DepthFromMap(depth_maps[0])] * 3)
    np.testing.assert_allclose(fixed.score(photos[:3]), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_onnx_depth_model_runs_on_the_bundles_runtime(bundles, photos, depth_model, torch_net, runtime):
    scorer = load(bundles[runtime], threads=1, depth_model=depth_model)
    assert isinstance(scorer.depth, OnnxDepthEstimator) and scorer.depth.runtime == runtime
    estimated = scorer.depth(load_image(photos[3]))
    gray = load_image(photos[3]).astype(np.float64).mean(axis=2)
    assert estimated.shape == gray.shape and np.corrcoef(estimated.ravel(), gray.ravel())[0, 1] > 0.99
    ort_estimator = OnnxDepthEstimator(depth_model, threads=1)
    np.testing.assert_allclose(estimated, ort_estimator(load_image(photos[3])), rtol=0, atol=1e-5)
    np.testing.assert_allclose(scorer.score(photos), references(torch_net, photos, [ort_estimator] * 4),
                               rtol=0, atol=1e-4)


def test_score_tensor_takes_image_and_depth_rows(bundles, photos, depth_maps):
    scorer = load(bundles["openvino"], threads=1)
    feeds = [scorer.preprocess_inputs(p, depth=m) for p, m in zip(photos, depth_maps, strict=True)]
    assert all(sorted(f) == ["depth", "image"] and f["image"].shape == f["depth"].shape == (6, 3, 64, 64)
               for f in feeds)
    rgb, depth = (np.concatenate([f[k] for f in feeds]) for k in ("image", "depth"))
    np.testing.assert_allclose(scorer.score_tensor(rgb, depth=depth), scorer.score(photos, depth=depth_maps),
                               rtol=0, atol=1e-6)
    with pytest.raises(ArrayInputError, match="depth"):
        scorer.score_tensor(rgb)
    with pytest.raises(ArrayInputError, match="depth rows"):
        scorer.score_tensor(rgb, depth=depth[:6])


# --- refusals -----------------------------------------------------------------------------------------
def test_missing_depth_says_how_to_pass_it(bundles, photos):
    scorer = load(bundles["onnxruntime"])
    for call in (lambda: scorer.score(photos[:2]), lambda: scorer.score_one(photos[0]),
                 lambda: scorer.preprocess_inputs(photos[0])):
        with pytest.raises(ArrayInputError, match=r"depth=\[map") as info:
            call()
        assert "OnnxDepthEstimator" in str(info.value) and "ships no depth" in str(info.value)


def test_wrong_depth_shapes_are_refused(bundles, photos, depth_maps):
    scorer = load(bundles["onnxruntime"])
    portrait, portrait_map = photos[3], np.asarray(Image.open(depth_maps[3]))
    with pytest.raises(ArrayInputError, match="aspect ratio"):
        scorer.score_one(portrait, depth=portrait_map.T)  # a landscape map for a portrait photo
    with pytest.raises(ArrayInputError, match=r"\(H, W\)"):
        scorer.score_one(portrait, depth=np.zeros((480, 320, 2), np.float32))
    with pytest.raises(ArrayInputError, match=r"\(H, W\)"):
        scorer.score_one(portrait, depth=np.zeros(480 * 320, np.float32))
    colour = np.zeros((480, 320, 3), np.uint8)
    colour[..., 0] = np.arange(320, dtype=np.uint8)[None, :]
    with pytest.raises(ArrayInputError, match="coloured"):
        scorer.score_one(portrait, depth=colour)
    with pytest.raises(ArrayInputError, match="DepthSource must return"):
        scorer.score_one(portrait, depth=lambda image: np.zeros((10, 10), np.float32))
    with pytest.raises(ArrayInputError, match="finite"):
        scorer.score_one(portrait, depth=lambda image: np.full(image.shape[:2], np.nan, np.float32))
    with pytest.raises(ImageDecodeError, match="not found"):
        scorer.score_one(portrait, depth=depth_maps[3].with_name("missing.png"))
    with pytest.raises(ArrayInputError, match="list or tuple"):
        scorer.score(photos[:2], depth=portrait_map)  # one array for two images: ambiguous
    # The portrait map stretched on purpose is accepted.
    assert np.isfinite(scorer.score_one(portrait, depth=DepthFromMap(portrait_map.T, aspect_tolerance=None)))


def test_depth_count_must_match_the_images(bundles, photos, depth_maps):
    scorer = load(bundles["onnxruntime"])
    with pytest.raises(ArrayInputError, match="2 depth maps for 3 images"):
        scorer.score(photos[:3], depth=depth_maps[:2])

    def lazy(paths: list[Path]) -> Iterator[Path]:
        yield from paths

    with pytest.raises(ArrayInputError, match="fewer depth maps than images"):
        scorer.score(lazy(photos[:3]), depth=depth_maps[:2])
    with pytest.raises(ArrayInputError, match="more depth maps than images"):
        scorer.score(lazy(photos[:2]), depth=depth_maps[:3])


def test_depth_for_a_single_input_bundle_is_refused(bundles, photos, depth_maps, depth_model):
    scorer = load(bundles["single"])
    assert not scorer.needs_depth and scorer.inputs == ("image",)
    with pytest.raises(ArrayInputError, match="takes no depth"):
        scorer.score(photos[:1], depth=depth_maps[:1])
    with pytest.raises(ArrayInputError, match="takes no depth"):  # not a count error: no depth at all
        scorer.score(photos[:1], depth=depth_maps[:2])
    rows = scorer.preprocess(photos[0])
    with pytest.raises(ArrayInputError, match="takes no depth"):
        scorer.score_tensor(rows, depth=rows)
    for kwargs in ({"depth_model": depth_model}, {"depth": depth_maps[0]}):
        with pytest.raises(BundleError, match="takes no depth"):
            load(bundles["single"], **kwargs)
    with pytest.raises(ValueError, match="not both"):
        load(bundles["onnxruntime"], depth=depth_maps[0], depth_model=depth_model)


@pytest.mark.parametrize(("inputs", "match"), [
    ([("image", [-1, 3, 64, 64]), ("mask", [-1, 3, 64, 64])], "'image' \\+ 'depth'"),
    ([("image", [-1, 3, 64, 64]), ("depth", [-1, 3, 32, 32])], "differ in shape"),
    ([("image", [-1, 3, 64, 64])] * 3, "image and its depth map"),
])
def test_other_multi_input_manifests_are_refused(bundles, tmp_path, inputs, match):
    import shutil

    bundle = Path(shutil.copytree(bundles["onnxruntime"], tmp_path / "bundle"))
    edit_manifest(bundle, io={"inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in inputs],
                              "output": "score", "max_batch": 4})
    with pytest.raises(BundleError, match=match):
        load(bundle)


def test_concurrent_calls_match_serial_ones(bundles, photos, depth_maps, depth_model):
    """Threads share the OpenVINO network and the OpenVINO depth network (each borrows requests)."""
    scorer = load(bundles["openvino"], threads=1, depth_model=depth_model)
    jobs = [(p, m) for p, m in zip(photos, depth_maps, strict=True)] + [(p, None) for p in photos]
    serial = [scorer.score_one(p, depth=m) for p, m in jobs]
    start = threading.Barrier(4)

    def work(index: int) -> list[float]:
        start.wait()
        return [scorer.score_one(*jobs[(index + k) % len(jobs)]) for k in range(len(jobs))]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for index, got in enumerate(results):
        assert got == [serial[(index + k) % len(jobs)] for k in range(len(jobs))]


# --- CLI and torch-freedom ------------------------------------------------------------------------------
def test_cli_scores_with_depth_maps_and_with_a_depth_model(bundles, photos, depth_maps, depth_model):
    runner = CliRunner()
    bundle = str(bundles["onnxruntime"])
    args = [a for m in depth_maps[:2] for a in ("--depth", str(m))]
    result = runner.invoke(app, ["score", "--bundle", bundle, *args, *map(str, photos[:2])])
    assert result.exit_code == 0, result.output
    expected = load(bundle).score(photos[:2], depth=depth_maps[:2])
    assert result.stdout.splitlines() == [f"{p}\t{s:.2f}" for p, s in zip(photos[:2], expected, strict=True)]

    result = runner.invoke(app, ["score", "--json", "--bundle", bundle, "--depth-model", str(depth_model),
                                 str(photos[0])])
    assert result.exit_code == 0, result.output
    expected = load(bundle, depth_model=depth_model).score_one(photos[0])
    assert result.stdout.strip() == f'{{"image": "{photos[0]}", "score": {round(expected, 4)}}}'

    # A missing depth file fails its own image only.
    args = ["--depth", str(depth_maps[0]), "--depth", str(depth_maps[1].with_name("missing.png"))]
    result = runner.invoke(app, ["score", "--bundle", bundle, *args, *map(str, photos[:2])])
    assert result.exit_code == 1 and len(result.stdout.splitlines()) == 1
    assert "missing.png: depth file not found" in result.stderr


@pytest.mark.parametrize(("which", "extra", "match"), [
    ("onnxruntime", ["--depth", "A"], "got 1 --depth maps for 2 images"),
    ("onnxruntime", [], "pass --depth MAP once per image"),
    ("onnxruntime", ["--depth", "A", "--depth", "B", "--depth-model", "M"], "not both"),
    ("single", ["--depth", "A", "--depth", "B"], "takes no depth"),
    ("single", ["--depth-model", "M"], "takes no depth"),
    (None, ["--depth", "A", "--depth", "B"], "add --bundle"),
])
def test_cli_depth_errors_exit_two(bundles, photos, depth_maps, depth_model, which, extra, match):
    names = {"A": str(depth_maps[0]), "B": str(depth_maps[1]), "M": str(depth_model)}
    args = (["--bundle", str(bundles[which])] if which else []) + [names.get(a, a) for a in extra]
    result = CliRunner().invoke(app, ["score", *args, *map(str, photos[:2])])
    assert result.exit_code == 2, result.output
    assert match in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_input_scoring_is_torch_free(bundles, photos, depth_maps, depth_model, runtime):
    out = run_clean(f"""
        import edge_iqa.runtime
        scorer = edge_iqa.runtime.load({str(bundles[runtime])!r}, depth_model={str(depth_model)!r})
        maps = scorer.score({[str(p) for p in photos[:2]]!r}, depth={[str(m) for m in depth_maps[:2]]!r})
        estimated = scorer.score({[str(p) for p in photos[:2]]!r})
        assert (maps == maps).all() and (estimated == estimated).all(), "NaN score"
    """)
    assert out == "[]"


def test_scorer_info_names_the_inputs_and_the_depth_source(bundles, depth_model):
    scorer = load(bundles["openvino"], depth_model=depth_model)
    assert isinstance(scorer, Scorer)
    info = scorer.info
    assert info["inputs"] == ["image", "depth"] and "OnnxDepthEstimator" in info["depth_source"]
    assert "openvino" in info["depth_source"]
