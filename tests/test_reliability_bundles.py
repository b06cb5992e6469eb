"""Bad bundles and checkpoints: each is refused with a typed error that says what to do, before
anything runs; nothing in a bundle or a checkpoint can run foreign code.

tests/test_runtime_bundle_errors.py covers the common damages one by one (checksum, truncation,
missing files, newer schema, unknown runtime, ``../`` names). Here: symlinks, malformed manifest
*types* (hypothesis), hostile sizes, another runtime's artifact, damaged networks whose checksums
were recomputed (ORT and OpenVINO must refuse them with BundleError, not crash), and checkpoints
through every entry point that reads them (library, scorer, export, CLI).
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import shutil
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_iqa.errors import BundleError, CheckpointError, EdgeIQAError
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import MANIFEST_NAME, sha256_file
from tests.helpers_runtime import TinyNet, bundle_pair

NET = TinyNet.random(seed=11)
FUZZ_EXAMPLES = int(os.environ.get("EDGE_IQA_RELIABILITY_FUZZ", "200"))
MODEL_MUTATIONS = int(os.environ.get("EDGE_IQA_RELIABILITY_MODEL_MUTATIONS", "40"))
IMAGE = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bundle_pair(tmp_path_factory.mktemp("pristine"), NET)


@pytest.fixture()
def bundle(pristine: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine["onnxruntime"], tmp_path / "bundle"))


@pytest.fixture()
def backend_never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load() reached the backend before refusing the bundle")

    monkeypatch.setattr("edge_iqa.runtime.scorer.load_backend", refuse)


def read(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / MANIFEST_NAME).read_text())


def write(bundle: Path, manifest: Any) -> None:
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))


def rechecksum(bundle: Path, name: str) -> None:
    """Make the manifest agree with a damaged file, as an attacker or a buggy tool would."""
    manifest = read(bundle)
    manifest["files"][name] = {"sha256": sha256_file(bundle / name), "size": (bundle / name).stat().st_size}
    write(bundle, manifest)


# --- symlinks and paths ----------------------------------------------------------------------------------
def test_model_symlinked_outside_the_bundle_is_refused(bundle: Path, tmp_path: Path, backend_never_loaded: None
                                                       ) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(bundle / "model.onnx", outside)  # same bytes: the checksum alone would pass
    (bundle / "model.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="resolves outside the bundle"):
        load(bundle)


def test_symlinked_subfolder_pointing_outside_is_refused(bundle: Path, tmp_path: Path,
                                                         backend_never_loaded: None) -> None:
    (tmp_path / "outside").mkdir()
    shutil.move(bundle / "model.onnx", tmp_path / "outside" / "model.onnx")
    (bundle / "sub").symlink_to(tmp_path / "outside")
    manifest = read(bundle)
    manifest["files"]["sub/model.onnx"] = manifest["files"].pop("model.onnx")
    manifest["model_file"] = "sub/model.onnx"
    write(bundle, manifest)
    with pytest.raises(BundleError, match="outside the bundle"):
        load(bundle)


def test_symlink_inside_the_bundle_and_a_symlinked_bundle_folder_load(bundle: Path, tmp_path: Path) -> None:
    """Links that stay inside the bundle are fine (a deployment may link the bundle folder)."""
    link = tmp_path / "current"
    link.symlink_to(bundle, target_is_directory=True)
    assert math.isfinite(load(link).score_one(IMAGE))


@pytest.mark.parametrize("name", ["../model.onnx", "/tmp/model.onnx", "a\\..\\..\\model.onnx", ""])
def test_model_file_path_traversal_is_refused(bundle: Path, backend_never_loaded: None, name: str) -> None:
    manifest = read(bundle)
    manifest["files"][name] = manifest["files"]["model.onnx"]
    manifest["model_file"] = name
    write(bundle, manifest)
    with pytest.raises(BundleError, match="outside the bundle"):
        load(bundle)


# --- malformed manifests ------------------------------------------------------------------------------------
BAD_MANIFESTS = {
    "empty file": b"",
    "binary garbage": bytes(range(256)) * 4,
    "utf-16": json.dumps({"a": 1}).encode("utf-16"),
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"manifest"',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("content", list(BAD_MANIFESTS.values()), ids=list(BAD_MANIFESTS))
def test_unreadable_manifest(bundle: Path, backend_never_loaded: None, content: bytes) -> None:
    (bundle / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(BundleError, match="re-export"):
        load(bundle)


def test_manifest_that_is_a_folder_and_bundle_that_is_a_file(bundle: Path, tmp_path: Path,
                                                             backend_never_loaded: None) -> None:
    (bundle / MANIFEST_NAME).unlink()
    (bundle / MANIFEST_NAME).mkdir()
    with pytest.raises(BundleError, match="no manifest.json"):
        load(bundle)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a bundle folder"):
        load(tmp_path / "file")


def _io(shape: list[int], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "image", "shape": shape, "dtype": "float32"}], "output": "score", **extra}


HOSTILE = {  # top-level key -> value that must be refused before any backend is created
    "model_file is a list": {"model_file": ["model.onnx"]},
    "preprocess is a list": {"preprocess": [1, 2]},
    "preprocess is a string": {"preprocess": "center"},
    "preprocess has a string size": {"preprocess": {"input_size": "big"}},
    "preprocess resize_to is [None]": {"preprocess": {"resize_to": [None]}},  # found by the long fuzz
    "preprocess std 0": {"preprocess": {"std": [0, 0, 0]}},
    "max_batch is true": {"io": _io([-1, 3, 96, 96], max_batch=True)},
    "max_batch is a billion": {"io": _io([-1, 3, 96, 96], max_batch=10**9)},
    "static batch of a billion": {"io": _io([10**9, 3, 96, 96])},
    "input of 10^5 x 10^5": {"io": _io([-1, 3, 100_000, 100_000]),
                             "preprocess": {"input_size": [100_000, 100_000], "resize": "none", "crop": "none"}},
    "target asks a billion threads": {"target": {"threads": 10**9}},
    "input dtype uint8": {"io": {"inputs": [{"name": "image", "shape": [-1, 3, 96, 96], "dtype": "uint8"}]}},
    "two inputs": {"io": {"inputs": [{"name": "image", "shape": [-1, 3, 96, 96]}] * 2}},
    "schema version as text": {"schema_version": "1"},
    "schema version 0": {"schema_version": 0},
    "runtime is a list": {"runtime": ["onnxruntime"]},
    "output transform NaN": {"output_transform": {"scale": float("nan"), "offset": 0}},
}


@pytest.mark.parametrize("changes", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_manifest_values(bundle: Path, backend_never_loaded: None, changes: dict[str, Any]) -> None:
    manifest = read(bundle)
    for key, value in changes.items():
        if key == "preprocess":
            value = {**manifest["preprocess"], **value} if isinstance(value, dict) else value
        manifest[key] = value
    write(bundle, manifest)
    with pytest.raises(BundleError) as info:
        load(bundle)
    assert "re-export" in str(info.value) or "upgrade" in str(info.value) or "threads" in str(info.value)


# A manifest value replaced by any JSON value: load() raises EdgeIQAError or gives a working scorer.
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True)
                    | st.text(max_size=12), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON tree (dict keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def test_fuzz_manifest_values(pristine: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    source = pristine["onnxruntime"]
    original = read(source)
    paths = [p for p in _paths(original) if p[0] not in ("model", "edge_iqa_version")]
    workdir = Path(shutil.copytree(source, tmp_path_factory.mktemp("manifest_fuzz") / "bundle"))
    outcomes: Counter[str] = Counter()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(edits=st.lists(st.tuples(st.sampled_from(paths), JSON | st.sampled_from([None, [], {}, -1, 0, True])),
                          min_size=1, max_size=3),
           drop=st.booleans())
    def run(edits: list[tuple[tuple, Any]], drop: bool) -> None:
        manifest = copy.deepcopy(original)
        for path, value in edits:
            node = manifest
            try:
                for key in path[:-1]:
                    node = node[key]
                if drop and isinstance(node, dict):
                    node.pop(path[-1], None)
                else:
                    node[path[-1]] = copy.deepcopy(value)  # sampled values are shared objects
            except (KeyError, IndexError, TypeError):
                continue  # an earlier edit replaced the parent
        (workdir / MANIFEST_NAME).write_text(json.dumps(manifest))
        try:
            scorer = load(workdir, threads=1)
        except (EdgeIQAError, ValueError) as exc:  # ValueError: load()'s own argument checks only
            assert isinstance(exc, EdgeIQAError), f"untyped {exc!r}"
            assert "re-export" in str(exc) or "upgrade" in str(exc) or "threads" in str(exc), str(exc)
            outcomes[type(exc).__name__] += 1
            return
        try:
            score = scorer.score_one(IMAGE)
        except EdgeIQAError as exc:
            outcomes["scoring " + type(exc).__name__] += 1
            return
        assert math.isfinite(score)
        outcomes["loaded and scored"] += 1

    run()
    print(f"\nmanifest fuzz: {sum(outcomes.values())} manifests: {dict(outcomes)}")
    assert sum(outcomes.values()) >= FUZZ_EXAMPLES // 2  # some examples edit a replaced parent


# --- damaged networks whose checksums were recomputed ---------------------------------------------------------
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_damaged_network_with_recomputed_checksums(pristine: dict[str, Path], tmp_path: Path, runtime: str) -> None:
    """Byte flips and truncations of the network itself (model.onnx / model.xml / model.bin) with a
    manifest that agrees: the backend must refuse them with BundleError or score finitely."""
    files = ["model.onnx"] if runtime == "onnxruntime" else ["model.xml", "model.bin"]
    work = Path(shutil.copytree(pristine[runtime], tmp_path / "b"))
    rng = random.Random(0)
    outcomes: Counter[str] = Counter()
    for _ in range(MODEL_MUTATIONS):
        for name in files:
            shutil.copy(pristine[runtime] / name, work / name)
        name = rng.choice(files)
        blob = bytearray((work / name).read_bytes())
        for _ in range(rng.randint(1, 6)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        if rng.random() < 0.3:
            blob = blob[: rng.randint(1, len(blob))]
        (work / name).write_bytes(bytes(blob))
        shutil.copy(pristine[runtime] / MANIFEST_NAME, work / MANIFEST_NAME)
        rechecksum(work, name)
        try:
            score = load(work, threads=1).score_one(IMAGE)
        except BundleError as exc:
            assert "re-export" in str(exc)
            outcomes["BundleError"] += 1
            continue
        assert math.isfinite(score)
        outcomes["scored"] += 1
    print(f"\n{runtime} network mutations: {dict(outcomes)}")
    assert outcomes["BundleError"] > 0


def test_another_runtimes_artifact_is_refused_before_inference(pristine: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenVINO bundle relabelled for onnxruntime (its files listed): ORT refuses the IR at load."""
    from edge_iqa.runtime.backends import onnxruntime as ort_backend

    def never(*args: object) -> None:
        raise AssertionError("inference ran")

    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "run", never)
    work = Path(shutil.copytree(pristine["openvino"], tmp_path / "ov"))
    manifest = read(work)
    manifest["runtime"] = "onnxruntime"
    write(work, manifest)
    with pytest.raises(BundleError, match="cannot load the network.*re-export"):
        load(work)


# --- checkpoints ------------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates ``marker``: the file exists iff the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _evil_checkpoints(folder: Path, marker: Path) -> dict[str, Path]:
    """Pickles carrying code in the forms a user may be handed: plain pickle, torch zip, wrong suffix."""
    import torch

    plain = folder / "plain.pth"
    with open(plain, "wb") as fh:
        pickle.dump({"state_dict": {"w": _Payload(marker)}}, fh, protocol=2)
    zipped = folder / "zipped.pt"
    torch.save({"params": {"w": _Payload(marker)}}, zipped)  # torch's zip format, code inside data.pkl
    disguised = folder / "disguised.safetensors"
    shutil.copy(plain, disguised)
    ckpt = folder / "lightning.ckpt"
    shutil.copy(zipped, ckpt)
    assert not marker.exists()
    return {"plain": plain, "zipped": zipped, "disguised": disguised, "ckpt": ckpt}


def test_code_carrying_checkpoints_never_run_through_any_entry_point(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_iqa.cli import app
    from edge_iqa.export.pipeline import load_model_for_export
    from edge_iqa.models import create_model
    from edge_iqa.models.checkpoint import load_state_dict_file
    from edge_iqa.predict import TorchScorer

    marker = tmp_path / "pwned"
    evil = _evil_checkpoints(tmp_path, marker)
    runner = CliRunner()
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(IMAGE).save(image)
    for name, path in evil.items():
        with pytest.raises(CheckpointError):
            load_state_dict_file(path)
        if name not in ("plain", "zipped"):
            continue  # the same reader: the model-building entry points are checked on two forms
        with pytest.raises(CheckpointError):
            create_model("edge_hybrid_n", checkpoint=path)
        with pytest.raises(CheckpointError):
            TorchScorer.from_name("edge_hybrid_n", checkpoint=path)
        with pytest.raises(CheckpointError):
            load_model_for_export("edge_hybrid_n", checkpoint=path)
        result = runner.invoke(app, ["score", "--checkpoint", str(path), str(image)])
        assert result.exit_code == 2 and "error:" in result.stderr and "Traceback" not in result.stderr, name
        assert not marker.exists(), f"the {name} pickle ran its code"


def _safetensors_bytes() -> bytes:
    import torch
    from safetensors.torch import save

    return save({"w": torch.arange(16, dtype=torch.float32)})


SAFETENSORS_DAMAGE = {
    "truncated in the data": lambda b: b[:-10],
    "truncated in the header": lambda b: b[:20],
    "only the length": lambda b: b[:8],
    "header length 2^63": lambda b: struct.pack("<Q", 2**63) + b[8:],
    "header length beyond the file": lambda b: struct.pack("<Q", len(b)) + b[8:],
    "offsets beyond the data": lambda b: b.replace(b"[0,64]", b"[0,640]"),
    "header not JSON": lambda b: b[:8] + b"\xff" * (len(b) - 8),
    "empty": lambda b: b"",
}


@pytest.mark.parametrize("damage", list(SAFETENSORS_DAMAGE.values()), ids=list(SAFETENSORS_DAMAGE))
def test_damaged_safetensors(tmp_path: Path, damage: Any) -> None:
    from edge_iqa.models.checkpoint import load_state_dict_file

    blob = _safetensors_bytes()
    assert b"[0,64]" in blob
    path = tmp_path / "w.safetensors"
    path.write_bytes(damage(blob))
    with pytest.raises(CheckpointError, match="re-download|safetensors"):
        load_state_dict_file(path)


def test_truncated_torch_zip_checkpoint(tmp_path: Path) -> None:
    import torch

    from edge_iqa.models.checkpoint import load_state_dict_file

    path = tmp_path / "w.pth"
    torch.save({"w": torch.zeros(64)}, path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="weights_only|unreadable"):
        load_state_dict_file(path)
