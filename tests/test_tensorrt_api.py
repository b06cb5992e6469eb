"""API conformance against the REAL TensorRT Python bindings of every release our profiles support.

TensorRT cannot run here (no GPU; the PyPI library wheels are placeholders), but PyPI's
``tensorrt-cu12-bindings`` wheels are the real pybind11 modules and import over stub libraries
(tests/tensorrt_api/wheels.py). For each release, our builder, version check, deserialisation and
backend run with ``tensorrt`` replaced by a recorder over those bindings (tests/tensorrt_api/
recorder.py): every class, method, property and enum member the code path touches must exist in
that release, keywords must match the signatures and assigned properties must be settable. The
list of names is whatever the code touches, so it cannot go stale. No engine is built or run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_iqa.export.targets import list_targets, load_target
from tests.tensorrt_api import wheels

ROOT = Path(__file__).resolve().parents[1]
#: One release per family and both ends of TensorRT 11 as shipped on PyPI: JetPack 6 (10.3), the
#: oldest 10.x with the Attention op (10.14), 11.0 and the newest 11.x checked (11.4).
RELEASES = ("10.3.0", "10.14.1.48.post1", "11.0.0.114", "11.4.0.106")


def _drive(release: str, tmp_path_factory: pytest.TempPathFactory, *args: str) -> dict:
    try:
        bindings = wheels.bindings_dir(release)
        stubs = wheels.stub_libraries(tmp_path_factory.mktemp(f"stub{release}"), int(release.split(".")[0]))
    except wheels.Unavailable as exc:
        pytest.skip(f"TensorRT {release} bindings not available here: {exc}")
    env = {**os.environ, "LD_LIBRARY_PATH": str(stubs),
           "PYTHONPATH": os.pathsep.join([str(bindings), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "tests.tensorrt_api.drive", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("release", RELEASES)
def test_code_path_uses_only_names_this_tensorrt_has(release: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    report = _drive(release, tmp_path_factory)
    assert report["version"] == release
    assert report["paths"], f"no shipped profile is made for TensorRT {release}"
    assert report["missing"] == [] and report["bad_calls"] == []
    for path, used in report["used"].items():
        # The whole path ran: build, deserialise, run (I/O tensor API).
        assert {"Builder.build_serialized_network", "IBuilderConfig.set_timing_cache",
                "Runtime.deserialize_cuda_engine", "IExecutionContext.set_input_shape",
                "IExecutionContext.execute_async_v3"} <= set(used), path
        strongly_typed = not release.startswith("10.3")
        assert ("NetworkDefinitionCreationFlag.STRONGLY_TYPED" in used) == strongly_typed, path
        if strongly_typed:  # deprecated from 10.12, gone in 11: never set there
            assert not {"BuilderFlag.FP16", "BuilderFlag.INT8"} & set(used), path
        if "dla" in path:
            assert {"IBuilderConfig.DLA_core", "Runtime.DLA_core", "BuilderFlag.GPU_FALLBACK"} <= set(used)
    if release.startswith("10.3"):
        assert {"BuilderFlag.FP16", "BuilderFlag.INT8"} <= set(report["used"]["jetson/int8"])


def test_a_name_missing_from_the_bindings_is_caught(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The weakly typed jetson path (FP16/INT8 builder flags) against TensorRT 11, which removed them."""
    report = _drive("11.4.0.106", tmp_path_factory, "jetson")
    assert "jetson/fp16: BuilderFlag.FP16" in report["missing"]
    assert any("jetson/int8" in m and "BuilderFlag" in m for m in report["missing"])


def test_every_shipped_tensorrt_profile_is_checked_against_a_release() -> None:
    for name in list_targets():
        spec = load_target(name).tensorrt
        if spec is not None:
            assert any(spec.tensorrt_range.contains(r) for r in RELEASES), f"{name} ({spec.tensorrt_range}) unchecked"
