"""A bad bundle or a missing backend is refused by load() with a typed error that says what to do,
before any backend is imported or any inference runs."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from edge_iqa.errors import BackendUnavailableError, BundleError, EdgeIQAError
from edge_iqa.runtime import backends, load
from edge_iqa.runtime.bundle import MANIFEST_NAME
from tests.helpers_runtime import SPEC, TinyNet, any_photos, bundle_pair, edit_manifest

NET = TinyNet.random(seed=1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bundle_pair(tmp_path_factory.mktemp("pristine"), NET)


@pytest.fixture()
def bundle(pristine, tmp_path) -> Path:
    """A fresh, valid ORT bundle this test may damage."""
    return Path(shutil.copytree(pristine["onnxruntime"], tmp_path / "bundle"))


@pytest.fixture()
def no_backend_load(monkeypatch):
    """Fail the test if load() gets as far as creating a backend."""
    def refuse(*args, **kwargs):
        raise AssertionError("load() reached the backend before refusing the bundle")

    monkeypatch.setattr("edge_iqa.runtime.scorer.load_backend", refuse)


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST_NAME).read_text())


def test_valid_bundle_loads_and_scores(bundle):
    scorer = load(bundle)
    assert scorer.spec == SPEC
    assert math.isfinite(scorer.score_one(any_photos(1)[0]))


def test_modified_model_file_is_a_checksum_mismatch(bundle, no_backend_load):
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped byte in the weights
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch for model.onnx.*re-export"):
        load(bundle)


def test_truncated_file_is_reported_with_sizes(bundle, no_backend_load):
    model = bundle / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(BundleError, match="has 100 bytes"):
        load(bundle)


def test_edited_manifest_checksum_is_refused(bundle, no_backend_load):
    files = manifest_of(bundle)["files"]
    files["model.onnx"]["sha256"] = "0" * 64
    edit_manifest(bundle, files=files)
    with pytest.raises(BundleError, match="checksum mismatch"):
        load(bundle)


def test_edited_manifest_preprocessing_inconsistent_with_network(bundle, no_backend_load):
    edit_manifest(bundle, preprocess={**SPEC.to_dict(), "input_size": [128, 128]})
    with pytest.raises(BundleError, match="input is 96x96 but the preprocessing produces 128x128"):
        load(bundle)


def test_invalid_manifest_json_and_missing_keys(bundle, no_backend_load):
    manifest = manifest_of(bundle)
    del manifest["preprocess"]
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="lacks preprocess"):
        load(bundle)
    (bundle / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load(bundle)


@pytest.mark.parametrize("bad", [{"scale": "ten", "offset": 0}, {"scale": float("inf"), "offset": 0}])
def test_bad_output_transform(bundle, no_backend_load, bad):
    edit_manifest(bundle, output_transform=bad)
    with pytest.raises(BundleError, match="output_transform"):
        load(bundle)


def test_missing_file_and_missing_bundle(bundle, tmp_path, no_backend_load):
    (bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        load(bundle)
    with pytest.raises(BundleError, match="run `edge-iqa export` first"):
        load(tmp_path / "nowhere")
    (bundle / MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        load(bundle)


def test_openvino_weights_file_missing(pristine, tmp_path, no_backend_load):
    bundle = Path(shutil.copytree(pristine["openvino"], tmp_path / "ov"))
    (bundle / "model.bin").unlink()
    with pytest.raises(BundleError, match="model.bin is missing"):
        load(bundle)


def test_newer_schema_is_refused(bundle, no_backend_load):
    edit_manifest(bundle, schema_version=99)
    with pytest.raises(BundleError, match="newer edge-iqa.*upgrade edge-iqa"):
        load(bundle)


def test_unknown_runtime_is_refused(bundle, no_backend_load):
    edit_manifest(bundle, runtime="coreml")
    with pytest.raises(BundleError, match="runtime 'coreml'.*known: onnxruntime, openvino, tensorrt"):
        load(bundle)


@pytest.mark.parametrize("name", ["../outside.onnx", "/etc/passwd", "sub/../../x", "~/x"])
def test_path_traversal_names_are_refused(bundle, tmp_path, no_backend_load, name):
    (tmp_path / "outside.onnx").write_bytes((bundle / "model.onnx").read_bytes())
    files = manifest_of(bundle)["files"]
    files[name] = files["model.onnx"]
    edit_manifest(bundle, files=files)
    with pytest.raises(BundleError, match="outside the bundle"):
        load(bundle)


def test_model_file_not_listed_is_refused(bundle, no_backend_load):
    edit_manifest(bundle, model_file="other.onnx")
    with pytest.raises(BundleError, match="not listed with a checksum"):
        load(bundle)


@pytest.mark.parametrize("runtime,hint", [("onnxruntime", "edge-iqa\\[onnx\\]"),
                                          ("openvino", "edge-iqa\\[openvino\\]")])
def test_missing_backend_library_says_what_to_install(pristine, monkeypatch, runtime, hint):
    monkeypatch.setitem(sys.modules, runtime, None)  # `import <runtime>` now raises ImportError
    monkeypatch.delitem(sys.modules, f"edge_iqa.runtime.backends.{runtime}", raising=False)
    with pytest.raises(BackendUnavailableError, match=f"runs on {runtime}.*pip install \"{hint}") as info:
        load(pristine[runtime])
    assert isinstance(info.value, EdgeIQAError) and isinstance(info.value, ImportError)


def test_tensorrt_bundle_without_tensorrt(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    edit_manifest(bundle, runtime="tensorrt")
    with pytest.raises(BackendUnavailableError, match="NVIDIA GPU"):
        load(bundle)


def test_only_the_named_backend_is_imported(pristine, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # importing it would fail the load
    monkeypatch.delitem(sys.modules, "edge_iqa.runtime.backends.openvino", raising=False)
    assert load(pristine["onnxruntime"]).backend.name == "onnxruntime"
    assert backends.known_backends() == ["onnxruntime", "openvino", "tensorrt", "torch"]


def test_unknown_backend_option_and_bad_threads(bundle):
    with pytest.raises(ValueError, match="unknown backend_options \\['device'\\] for the onnxruntime backend"):
        load(bundle, backend_options={"device": "GPU"})
    with pytest.raises(ValueError, match="threads"):
        load(bundle, threads=0)
    assert load(bundle, threads=1).backend.describe()["threads"] == 1
