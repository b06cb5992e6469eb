"""The native runtime (edge_iqa/runtime/native, libedgeiqa) against the Python runtime on real photos:
bit-identical preprocessed tensors, bit-identical scores from the default model's OpenVINO FP32 and
INT8 bundles (uint8 pixel input, whose normalisation both rebuild exact: exact_pixel_front), the same
scores from tiny bundles of both input encodings (uint8 pixels, float32 rows, manifest schema 1 and 2;
a pixel bundle bit for bit like the float bundle of its network), the same refusals of bad bundles
and bad frames (also under AddressSanitizer + UBSan, through the C test driver), thread safety, the
score_frames sample and the installed CMake package.

The library is built once per session with CMake (incremental in build/native*), or taken from
$EDGE_IQA_NATIVE_BUILD / $EDGE_IQA_NATIVE_ASAN_BUILD, which .ci/run sets after building it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.bench.native import (
    BUILD_ENV,
    ERR_ARGUMENT,
    ERR_BACKEND_UNAVAILABLE,
    ERR_BUNDLE,
    ERR_IMAGE,
    PIXEL_BGR8,
    NativeError,
    NativeScorer,
    build_native,
    load_library,
    missing_build_tools,
    preprocess_spec,
)
from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import BundleError
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import MANIFEST_NAME
from tests.helpers_runtime import (
    CALIBRATION_IMAGES,
    GRID_SPEC,
    SPEC,
    TinyDepthNet,
    TinyNet,
    build_bundle,
    clive_photos,
    edit_manifest,
    stale_compile_cache,
)

REPO = Path(__file__).resolve().parents[1]
ASAN_BUILD_ENV = "EDGE_IQA_NATIVE_ASAN_BUILD"


def _build(env: str, folder: str, sanitize: bool) -> Path:
    given = os.environ.get(env)
    if given:  # CI built it: a missing library is a failure, not a skip
        assert (Path(given) / "libedgeiqa.so").is_file(), f"${env}={given} holds no libedgeiqa.so"
        return Path(given)
    missing = missing_build_tools()
    if missing:
        pytest.skip(f"cannot build the native runtime here, missing {missing}: apt-get install cmake g++ "
                    "nlohmann-json3-dev libssl-dev libjpeg62-turbo-dev")
    return build_native(REPO / "build" / folder, sanitize=sanitize)


@pytest.fixture(scope="session")
def native_build() -> Path:
    return _build(BUILD_ENV, "native", sanitize=False)


@pytest.fixture(scope="session")
def sanitizer_build() -> Path:
    return _build(ASAN_BUILD_ENV, "native-asan", sanitize=True)


@pytest.fixture(scope="session")
def lib(native_build):
    return load_library(native_build)


def photos() -> list[Path]:
    """Real photos: 500x500 CLIVE JPEGs and 512x384 pristine photos (../shared), else calibration JPEGs."""
    return clive_photos(4) or sorted(CALIBRATION_IMAGES.iterdir())[:4]


# --- preprocessing: bit for bit -----------------------------------------------------------------------
SPECS = {
    "default_384_shrink": PreprocessSpec(input_size=(384, 384)),
    "shorter_side_center_small": SPEC,
    "enlarge_resize_to_600": PreprocessSpec(input_size=(224, 224), resize_to=600),
    "grid_2x3": GRID_SPEC,
    "grid_3x5_no_normalize": dataclasses.replace(GRID_SPEC, grid=(3, 5), normalize=False),
    "non_square_input_224x320": PreprocessSpec(input_size=(224, 320)),
    "exact_widen_and_shorten": PreprocessSpec(input_size=(96, 640), resize="exact", crop="none"),
    "exact_narrow_and_heighten": PreprocessSpec(input_size=(640, 96), resize="exact", crop="none"),
    "exact_height_shrinks_most_vertical_first": PreprocessSpec(input_size=(96, 400), resize="exact", crop="none"),
    "exact_bit_shorter": PreprocessSpec(input_size=(300, 200), resize="exact", crop="none"),
    "no_resize_grid": PreprocessSpec(input_size=(128, 128), resize="none", crop="grid", grid=(2, 2)),
    "bicubic": PreprocessSpec(input_size=(200, 200), interpolation="bicubic"),
    "lanczos_enlarge": PreprocessSpec(input_size=(300, 300), resize_to=700, interpolation="lanczos"),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_preprocessing_is_bit_identical_to_python(lib, name):
    spec = SPECS[name]
    for path in photos():
        image = load_image(path)
        np.testing.assert_array_equal(preprocess_spec(lib, spec.to_dict(), image), spec.apply(image),
                                      err_msg=f"{name} {path.name} {image.shape}")


def test_random_resizes_match_pillow_bit_for_bit(lib):
    """Random output sizes (both pass orders, shrink and enlarge on each axis, odd sizes) on real photos."""
    rng = np.random.default_rng(15)
    for path in photos()[:2]:
        image = load_image(path)
        for _ in range(25):
            size = (int(rng.integers(16, 900)), int(rng.integers(16, 900)))
            spec = PreprocessSpec(input_size=size, resize="exact", crop="none")
            np.testing.assert_array_equal(preprocess_spec(lib, spec.to_dict(), image), spec.apply(image),
                                          err_msg=f"{path.name} {image.shape} -> {size}")


def test_odd_sized_and_strided_frames_preprocess_like_python(lib):
    image = load_image(photos()[0])[3:370, 5:338]  # 367x333, a non-contiguous view: row stride 1500 bytes
    spec = SPECS["default_384_shrink"]
    np.testing.assert_array_equal(preprocess_spec(lib, spec.to_dict(), image), spec.apply(np.ascontiguousarray(image)))


# --- the default model's bundles: the same scores -----------------------------------------------------
# The fine-tuning off (40 s of the fixture's export): this file compares the C library with Python on the
# same bundle, whichever way its INT8 IR was made; tests/test_qat.py loads fine-tuned IRs in the runtime.
TINY_PROFILE = """
[quantization]
calibration_samples = 8
qat_steps = 0
[parity]
images = 4
accuracy_images = 8
"""


@pytest.fixture(scope="module")
def default_bundles(tmp_path_factory) -> dict[str, Path]:
    """edge_hybrid_n (trained weights) exported for the cpu target (OpenVINO) at fp32 and int8, once.
    Fewer calibration/validation images than the real target: the bundles are real, only cheaper."""
    pytest.importorskip("nncf")
    from edge_iqa.export import pipeline
    from edge_iqa.export.targets import load_target

    root = tmp_path_factory.mktemp("default_bundles")
    profile = root / "cpu_tiny.toml"
    profile.write_text(f'inherits = "cpu"\nname = "cpu-tiny"\n{TINY_PROFILE}')
    return {precision: pipeline.export_bundle("edge_hybrid_n", load_target(profile), precision, out=root / precision,
                                              accuracy_gate=False, quiet=True)
            for precision in ("fp32", "int8")}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_default_model_scores_match_python_on_calibration_photos(native_build, default_bundles, precision):
    bundle = default_bundles[precision]
    python = load(bundle, threads=2)
    paths = sorted(CALIBRATION_IMAGES.iterdir())
    images = (load_image(path) for path in paths)
    with NativeScorer.open(native_build, bundle, threads=2) as native:
        info = native.info
        assert (info.model, info.precision, info.runtime) == ("edge_hybrid_n", precision, "openvino")
        # The cpu target's bundles take the crops' uint8 pixels: the scores below are a pixel bundle's.
        assert info.input_dtype == python.info["input_dtype"] == "uint8"
        got, want = [], []
        for i, image in enumerate(images):
            if i < 8:  # the normalised rows (what the network computes from the pixels), bit for bit
                np.testing.assert_array_equal(native.preprocess(image), python.spec.apply(image))
            got.append(native.score(image))
            want.append(python.score_one(image))
        batch = paths[:20]
        np.testing.assert_array_equal(native.score_batch([load_image(p) for p in batch]), python.score(batch))
    assert len(got) == len(paths) >= 200
    # Bit for bit: both runtimes rebuild the pixel network's /255, -mean, /std with exact divisions
    # (exact_pixel_front) and compile it alike. Without that, int8 scores moved by up to 1.4 MOS points.
    np.testing.assert_array_equal(got, want)
    assert np.std(got) > 1.0  # real, different scores: not a constant


def test_threads_scoring_at_once_give_the_single_thread_scores(native_build, default_bundles):
    images = [load_image(path) for path in sorted(CALIBRATION_IMAGES.iterdir())[:12]]
    with NativeScorer.open(native_build, default_bundles["int8"], threads=1) as native:
        alone = [native.score(image) for image in images]
        results: dict[int, list[float]] = {}
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:  # ctypes releases the GIL for the call: the four threads are in the library at once
                results[k] = [native.score(image) for image in images[k:] + images[:k]]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    for k, scores in results.items():
        assert scores == alone[k:] + alone[:k]  # exactly, as the Python runtime promises


# --- bad bundles and frames -----------------------------------------------------------------------------
NET = TinyNet.random(seed=3)


def _flip_last_byte(bundle: Path) -> None:
    path = bundle / "model.bin"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _rename_into_parent(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    files = manifest["files"]
    files["../model.bin"] = files.pop("model.bin")
    shutil.copy(bundle / "model.bin", bundle.parent / "model.bin")
    edit_manifest(bundle, files=files, weights_file="../model.bin")


def _edit(**changes):
    return lambda bundle: edit_manifest(bundle, **changes)


def _edit_section(section: str, **changes):
    def edit(bundle: Path) -> None:
        manifest = json.loads((bundle / MANIFEST_NAME).read_text())
        edit_manifest(bundle, **{section: {**manifest[section], **changes}})
    return edit


def _inputs(**record):
    """io.inputs: the tiny network's one input record, with ``record`` changed."""
    return _edit_section("io", inputs=[{"name": "image", **record}])


def _escape_by_symlink(bundle: Path) -> None:
    outside = bundle.parent / "outside.bin"
    shutil.copy(bundle / "model.bin", outside)
    (bundle / "model.bin").unlink()
    (bundle / "model.bin").symlink_to(outside)


#: fault -> (how to make it, native status, what the message says, the Python runtime's error)
BAD_BUNDLES = {
    "missing_file": (lambda b: (b / "model.bin").unlink(), ERR_BUNDLE, "model.bin is missing.*re-export", BundleError),
    "changed_byte": (_flip_last_byte, ERR_BUNDLE, "checksum mismatch for model.bin.*re-export", BundleError),
    "truncated_file": (lambda b: (b / "model.bin").write_bytes((b / "model.bin").read_bytes()[:64]), ERR_BUNDLE,
                       "model.bin has 64 bytes, the manifest says", BundleError),
    "dotdot_name": (_rename_into_parent, ERR_BUNDLE, "'../model.bin', which is outside the bundle", BundleError),
    "absolute_name": (_edit(model_file="/etc/passwd", files={"/etc/passwd": {"sha256": "0" * 64}}), ERR_BUNDLE,
                      "'/etc/passwd', which is outside the bundle", BundleError),
    "symlink_out_of_the_bundle": (_escape_by_symlink, ERR_BUNDLE, "resolves outside the bundle", BundleError),
    "newer_schema": (_edit(schema_version=3), ERR_BUNDLE, "schema version 3 comes from a newer edge-iqa", BundleError),
    "unknown_runtime": (_edit(runtime="coreml"), ERR_BUNDLE, "runtime \"coreml\", which this edge-iqa does not know",
                        BundleError),
    "another_runtime_tensorrt": (_edit(runtime="tensorrt"), ERR_BACKEND_UNAVAILABLE,
                                 "runs on tensorrt, but the native runtime is built with OpenVINO only", None),
    "another_runtime_onnxruntime": (_edit(runtime="onnxruntime", model_file="model.xml"), ERR_BACKEND_UNAVAILABLE,
                                    "runs on onnxruntime, but the native runtime is built with OpenVINO only", None),
    "not_json": (lambda b: (b / MANIFEST_NAME).write_text("{ not json"), ERR_BUNDLE, "not valid JSON", BundleError),
    "no_manifest": (lambda b: (b / MANIFEST_NAME).unlink(), ERR_BUNDLE, "has no manifest.json", BundleError),
    "lacks_keys": (lambda b: (b / MANIFEST_NAME).write_text('{"schema_version": 1}'), ERR_BUNDLE,
                   "lacks runtime, precision, model_file", BundleError),
    "newer_preprocess_version": (_edit_section("preprocess", version=2), ERR_BUNDLE,
                                 "preprocessing spec version 2 is newer", BundleError),
    "input_size_disagrees_with_network": (_edit_section("preprocess", input_size=[128, 128]), ERR_BUNDLE,
                                          "input is 96x96 but the preprocessing produces 128x128", BundleError),
    "zero_std": (_edit_section("preprocess", std=[0.2, 0.0, 0.2]), ERR_BUNDLE, "std must be positive", BundleError),
    "bad_max_batch": (_edit_section("io", max_batch=-3), ERR_BUNDLE, "max_batch -3 is not a positive integer",
                      BundleError),
    "infinite_transform": (_edit(output_transform={"scale": "inf"}), ERR_BUNDLE, "output_transform", BundleError),
    "model_not_listed": (_edit(model_file="other.xml"), ERR_BUNDLE, "model file is not listed with a checksum",
                         BundleError),
    "input_dtype_int16": (_inputs(shape=[-1, 3, 96, 96], dtype="int16"), ERR_BUNDLE,
                          "input dtype is .int16.; this runtime feeds float32 rows or uint8 pixels: re-export the "
                          "bundle, or upgrade edge-iqa", BundleError),
    "pixel_record_in_nchw": (_inputs(shape=[-1, 3, 96, 96], dtype="uint8"), ERR_BUNDLE,
                             r"must be \{'name': str, 'shape': \[batch, H, W, 3\] \(uint8 pixels\)\}", BundleError),
    # Like Python's exact_pixel_front: a float network has no pixel normalisation to rebuild.
    "pixel_record_of_float_network": (_inputs(shape=[-1, 96, 96, 3], dtype="uint8"), ERR_BUNDLE,
                                      "the bundle declares a uint8 pixel input but its network does not start "
                                      "with the pixels' normalisation; re-export the bundle", BundleError),
}


@pytest.fixture(scope="module")
def tiny_bundles(tmp_path_factory) -> dict[str, Path]:
    """Valid tiny OpenVINO bundles (float32 rows; the same as manifest schema 1; uint8 pixels) and one
    damaged copy of the float one per fault (each in its own folder)."""
    root = tmp_path_factory.mktemp("native_bundles")
    good = build_bundle(root / "good" / "bundle", NET, runtime="openvino")
    schema_1 = Path(shutil.copytree(good, root / "schema_1" / "bundle"))
    edit_manifest(schema_1, schema_version=1)  # a bundle exported before uint8 inputs existed
    pixels = build_bundle(root / "pixels" / "bundle", NET, runtime="openvino", pixels=True)
    bundles = {"good": good, "schema_1": schema_1, "pixels": pixels}
    for name, (damage, *_) in BAD_BUNDLES.items():
        bundle = Path(shutil.copytree(good, root / name / "bundle"))
        damage(bundle)
        bundles[name] = bundle
    bundles["depth"] = build_bundle(root / "depth" / "bundle", TinyDepthNet.random(seed=4), runtime="openvino")
    return bundles


@pytest.mark.parametrize("fault", list(BAD_BUNDLES))
def test_bad_bundle_is_refused_with_a_code_and_message_like_python(native_build, tiny_bundles, fault):
    _, status, message, python_error = BAD_BUNDLES[fault]
    with pytest.raises(NativeError, match=message) as caught:
        NativeScorer.open(native_build, tiny_bundles[fault])
    assert caught.value.status == status
    if python_error is not None:
        with pytest.raises(python_error):
            load(tiny_bundles[fault])


def test_depth_bundle_is_refused_plainly(native_build, tiny_bundles):
    with pytest.raises(NativeError, match="depth map.*Python runtime") as caught:
        NativeScorer.open(native_build, tiny_bundles["depth"])
    assert caught.value.status == ERR_BACKEND_UNAVAILABLE


@pytest.mark.parametrize(("kind", "dtype"), [("good", "float32"), ("schema_1", "float32"), ("pixels", "uint8")])
def test_tiny_bundle_scores_match_python_with_bgr_and_bad_frames(native_build, tiny_bundles, kind, dtype):
    python = load(tiny_bundles[kind])
    with NativeScorer.open(native_build, tiny_bundles[kind]) as native:
        assert native.info.input_dtype == python.info["input_dtype"] == dtype
        for path in photos():
            image = load_image(path)
            assert native.score(image) == pytest.approx(python.score_one(image), rel=1e-6)
            np.testing.assert_array_equal(native.preprocess(image), python.spec.apply(image))
            assert native.score(np.ascontiguousarray(image[..., ::-1]), PIXEL_BGR8) == native.score(image)
        for bad in (np.zeros((15, 40, 3), np.uint8), np.zeros((0, 40, 3), np.uint8)):
            with pytest.raises(NativeError) as caught:
                native.score(bad)
            assert caught.value.status == ERR_IMAGE and "16 pixels" in caught.value.message


@pytest.mark.parametrize("pixels", [False, True], ids=["float32", "uint8"])
@pytest.mark.parametrize("layout", [{"fixed_batch": 4}, {"max_batch": 4}])
def test_grid_crops_straddling_batches_and_static_batch_padding_match_python(native_build, tmp_path, layout, pixels):
    """6 crops per frame, 4 rows per inference: crops straddle two runs; a static batch is zero-padded."""
    bundle = build_bundle(tmp_path / "grid", NET, runtime="openvino", spec=GRID_SPEC, pixels=pixels, **layout)
    python = load(bundle)
    images = [load_image(path) for path in photos()]
    with NativeScorer.open(native_build, bundle) as native:
        assert native.info.num_crops == 6 and native.info.max_batch == 4
        assert native.info.fixed_batch == layout.get("fixed_batch", 0)
        assert native.info.input_dtype == ("uint8" if pixels else "float32")
        np.testing.assert_allclose(native.score_batch(images), python.score(images), rtol=1e-6)
        np.testing.assert_allclose([native.score(image) for image in images],
                                   [python.score_one(image) for image in images], rtol=1e-6)
        for image in images[:2]:
            np.testing.assert_array_equal(native.preprocess(image), python.spec.apply(image))


@pytest.mark.parametrize("spec", [SPEC, GRID_SPEC], ids=["center", "grid"])
def test_pixel_bundle_scores_like_the_float_bundle_of_the_same_network(native_build, tmp_path, spec):
    """The library rebuilds a pixel network's /255, -mean, /std with exact divisions (Python's
    exact_pixel_front), so it computes on the very float rows the float bundle is fed: the same
    scores bit for bit, one frame at a time and in batches with crops straddling runs."""
    rows = build_bundle(tmp_path / "rows", NET, runtime="openvino", spec=spec, max_batch=4)
    pixels = build_bundle(tmp_path / "pixels", NET, runtime="openvino", spec=spec, max_batch=4, pixels=True)
    images = [load_image(path) for path in photos()]
    with NativeScorer.open(native_build, rows) as floats, NativeScorer.open(native_build, pixels) as uint8:
        assert (floats.info.input_dtype, uint8.info.input_dtype) == ("float32", "uint8")
        expected = floats.score_batch(images)
        assert np.ptp(expected) > 0
        np.testing.assert_array_equal(uint8.score_batch(images), expected)
        np.testing.assert_array_equal([uint8.score(image) for image in images],
                                      [floats.score(image) for image in images])


@pytest.mark.parametrize("kind", ["good", "pixels"])
def test_compiled_model_cache_defaults_like_the_python_runtime(native_build, tiny_bundles, tmp_path, monkeypatch,
                                                               kind):
    """No cache_dir: $EDGE_IQA_CACHE_DIR/openvino (the Python backend's default), in the same network
    folder as the Python runtime's, filled by the first open; cache_dir="" turns it off; the scores do
    not depend on it. A pixel bundle's network is rebuilt before compiling (exact_pixel_front): its
    blob is found by the rebuilt network, not the files."""
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    image = load_image(photos()[0])
    python_folder = load(tiny_bundles[kind], threads=1).info["cache_dir"]
    with NativeScorer.open(native_build, tiny_bundles[kind]) as native:
        assert native.info.cache_dir == python_folder
        assert Path(python_folder).parent == tmp_path / "cache" / "openvino"
        cached = native.score(image)
    assert len(list(Path(python_folder).glob("*.blob"))) >= 2  # the Python runtime's blob and the library's
    with NativeScorer.open(native_build, tiny_bundles[kind]) as warm:  # loads the blob
        assert warm.score(image) == cached
    with NativeScorer.open(native_build, tiny_bundles[kind], cache_dir="") as uncached:
        assert uncached.info.cache_dir == "" and uncached.score(image) == cached


def test_compiled_model_cache_evicts_the_least_recently_used_like_the_python_runtime(native_build, tiny_bundles,
                                                                                      tmp_path, monkeypatch):
    stale = stale_compile_cache(tmp_path / "cache" / "openvino", megabytes=2)
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGE_IQA_CACHE_MAX_MB", "1")
    with NativeScorer.open(native_build, tiny_bundles["good"]) as native:
        ours = Path(native.info.cache_dir)
    assert not stale.old_network.exists() and not stale.loose_blob.exists()
    assert ours.is_dir() and list(ours.glob("*.blob")) and stale.recent_network.is_dir()
    monkeypatch.setenv("EDGE_IQA_CACHE_MAX_MB", "1GB")
    with pytest.raises(NativeError, match="EDGE_IQA_CACHE_MAX_MB='1GB': give .* whole number of megabytes") as error:
        NativeScorer.open(native_build, tiny_bundles["good"])
    assert error.value.status == ERR_ARGUMENT


@pytest.mark.parametrize("good", ["good", "pixels"])
def test_c_driver_under_address_and_undefined_behaviour_sanitizers(sanitizer_build, tiny_bundles, good):
    """Every bad bundle and bad frame through the C API, in a process built with ASan + UBSan: an
    error code and a message each, no sanitizer report, no crash; threads agree; the leak check is on.
    The good frames go to a float32-row and to a uint8-pixel bundle."""
    args = [str(tiny_bundles[good])]
    for fault, (_, status, *_) in BAD_BUNDLES.items():
        args += [str(tiny_bundles[fault]), str(status)]
    args += [str(tiny_bundles["depth"]), str(ERR_BACKEND_UNAVAILABLE)]
    # TBB_ENABLE_SANITIZERS: OpenVINO's TBB otherwise dlopens tbbbind with RTLD_DEEPBIND, which ASan refuses.
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1", "TBB_ENABLE_SANITIZERS": "1",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    done = subprocess.run([str(sanitizer_build / "edgeiqa_c_test"), *args], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "PASSED: 0 failure(s)" in done.stdout
    assert "ERROR: AddressSanitizer" not in output and "runtime error:" not in output
    assert done.stdout.count("\nok bad bundle ") == len(BAD_BUNDLES) + 1


# --- the sample program and the installed package --------------------------------------------------------
def test_score_frames_prints_one_line_per_frame(native_build, tiny_bundles, tmp_path):
    jpegs = sorted(CALIBRATION_IMAGES.iterdir())[:3]
    rgb = load_image(jpegs[0])
    (tmp_path / "frame.rgb").write_bytes(rgb.tobytes())
    (tmp_path / "frame.bgr").write_bytes(np.ascontiguousarray(rgb[..., ::-1]).tobytes())
    (tmp_path / "short.rgb").write_bytes(rgb.tobytes()[:-3])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "cut.jpg").write_bytes(jpegs[0].read_bytes()[:5000])
    frames = [*jpegs, tmp_path / "frame.rgb", tmp_path / "frame.bgr", tmp_path / "short.rgb", tmp_path / "empty.jpg",
              tmp_path / "notes.jpg", tmp_path / "cut.jpg", tmp_path / "missing.jpg"]
    h, w = rgb.shape[:2]
    done = subprocess.run([str(native_build / "score_frames"), "--raw", f"{w}x{h}", str(tiny_bundles["good"]),
                           *map(str, frames)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr  # some frames failed
    lines = done.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in frames]
    python = load(tiny_bundles["good"])
    scores = [float(line.split("\t")[1]) for line in lines[:5]]
    expected = [python.score_one(path) for path in jpegs] + [python.score_one(rgb)] * 2
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    errors = dict(line.split("\t") for line in lines[5:])
    assert "bytes" in errors[str(tmp_path / "short.rgb")] and "--raw" in errors[str(tmp_path / "short.rgb")]
    assert "empty" in errors[str(tmp_path / "empty.jpg")]
    assert "not a JPEG" in errors[str(tmp_path / "notes.jpg")]
    assert "corrupt or truncated" in errors[str(tmp_path / "cut.jpg")]
    assert "cannot open" in errors[str(tmp_path / "missing.jpg")]
    assert all(message.startswith("error: ") for message in errors.values())


def test_installed_package_builds_a_firmware_style_consumer(native_build, tiny_bundles, tmp_path):
    """cmake --install, then a separate project does find_package(EdgeIQA) and scores a frame."""
    prefix = tmp_path / "prefix"
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)  # noqa: E731
    done = run("cmake", "--install", str(native_build), "--prefix", str(prefix))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (prefix / "include" / "edgeiqa.h").is_file() and (prefix / "lib" / "cmake" / "EdgeIQA").is_dir()
    example = REPO / "edge_iqa" / "runtime" / "native" / "examples" / "firmware"
    build = tmp_path / "consumer"
    for step in (["cmake", "-S", str(example), "-B", str(build), f"-DCMAKE_PREFIX_PATH={prefix}"],
                 ["cmake", "--build", str(build)]):
        done = run(*step)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run(str(build / "firmware_example"), str(tiny_bundles["good"]))
    assert done.returncode == 0, done.stdout + done.stderr
    python = load(tiny_bundles["good"])
    frame = np.array([[[(x * 255) // 63, (y * 255) // 47, (x * 7 + y * 13) % 256] for x in range(64)]
                      for y in range(48)], dtype=np.uint8)  # the example's test pattern
    assert float(done.stdout.split()[-1]) == pytest.approx(python.score_one(frame), rel=1e-6)


def test_python_runtime_does_not_need_the_native_library():
    """Nothing of the Python package imports the native folder or this binding."""
    package = REPO / "edge_iqa"
    offenders = [path for path in package.rglob("*.py") if "bench.native" in path.read_text()
                 or "libedgeiqa" in path.read_text()]
    assert offenders == []
    assert not (package / "runtime" / "native" / "__init__.py").exists()
