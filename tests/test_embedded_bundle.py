"""The runtime-only user (``pip install edge-iqa onnxruntime``, no torch): ``edge-iqa score
photo.jpg`` runs the embedded ONNX Runtime FP32 bundle of the default model, whose scores equal the
PyTorch path's within the FP32 parity tolerance; every verb whose extra is missing ends in one line
naming its ``pip install``. The embedded bundle must match the embedded weights it was exported
from (regenerate it with ``python scripts/build_embedded_bundle.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.calibration_data import data_dir, read_manifest
from edge_iqa.checksums import sha256_file
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import read_manifest as read_bundle_manifest
from edge_iqa.runtime.bundle import verify_files
from edge_iqa.runtime.embedded import REGENERATE, embedded_bundle

REPO = Path(__file__).resolve().parents[1]
MODEL = "edge_hybrid_n"
WEIGHTS = REPO / "edge_iqa" / "weights" / f"{MODEL}.safetensors"
#: What the runtime-only user lacks: every optional dependency but onnxruntime.
ABSENT = ("torch", "torchvision", "timm", "safetensors", "scipy", "onnx", "onnxscript", "openvino", "nncf",
          "modelopt", "tensorrt", "matplotlib", "psutil", "piq", "pyarrow", "ray")
#: The shipped photos at the end of the list (never among the export's first calibration images).
PHOTOS = [data_dir() / row.file for row in read_manifest()[-3:]]


def bundle() -> Path:
    folder = embedded_bundle(MODEL)
    assert folder is not None, f"the embedded bundle of {MODEL} is not installed; run {REGENERATE}"
    return folder


def test_embedded_bundle_was_exported_from_the_embedded_weights() -> None:
    manifest = read_bundle_manifest(bundle())
    assert manifest["model"]["weights"]["sha256"] == sha256_file(WEIGHTS), (
        f"edge_iqa/weights/{WEIGHTS.name} changed since the embedded bundle was exported: run {REGENERATE}")
    assert (manifest.runtime, manifest.precision) == ("onnxruntime", "fp32")
    verify_files(bundle(), manifest)  # checksummed like any bundle, notices included
    notices = sorted(p.name for p in WEIGHTS.parent.glob("*.txt"))
    assert notices and manifest["embedded"]["licence_notices"] == notices
    for name in notices:
        assert name in manifest.files and (bundle() / name).read_bytes() == (WEIGHTS.parent / name).read_bytes()
    assert manifest["parity"]["onnx_fp32_vs_torch"]["passed"] and manifest["accuracy"]["parity"]["passed"]


def test_embedded_bundle_scores_like_the_pytorch_path() -> None:
    pytest.importorskip("torch")
    torch_scorer, ort_scorer = load(MODEL), load(bundle())
    assert torch_scorer.manifest.runtime == "torch" and ort_scorer.manifest.runtime == "onnxruntime"
    atol = read_bundle_manifest(bundle())["target"]["parity"]["atol"]  # the export's FP32 parity tolerance
    # The embedded bundle takes the crops' uint8 pixels; the torch backend normalises the same pixels.
    rows = np.concatenate([ort_scorer.preprocess(p) for p in PHOTOS])
    assert ort_scorer.takes_pixels and rows.dtype == np.uint8
    reference, scores = (s.score_tensor(rows, raw=True) for s in (torch_scorer, ort_scorer))
    assert np.ptp(reference) > 0.01  # distinct photos, distinct scores: the comparison means something
    np.testing.assert_allclose(scores, reference, rtol=0, atol=atol)
    np.testing.assert_allclose(ort_scorer.score(PHOTOS), torch_scorer.score(PHOTOS), rtol=0,
                               atol=atol * ort_scorer.scale)


# --- without torch: a clean interpreter where the optional modules cannot be imported ----------------
LAUNCHER = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {absent!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from edge_iqa.cli import app
try:
    app(sys.argv[1:], prog_name="edge-iqa")
finally:
    print("loaded:", sorted(m for m in {absent!r} if m in sys.modules), file=sys.stderr)
"""


def edge_iqa_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(LAUNCHER.format(absent=ABSENT))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)


def expected_scores() -> list[float]:
    """The PyTorch path's scores (the test process has torch), or the bundle's where it has not."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return [float(s) for s in load(bundle()).score(PHOTOS)]
    return [float(s) for s in load(MODEL).score(PHOTOS)]


def test_score_runs_without_torch_on_the_embedded_bundle() -> None:
    proc = edge_iqa_without_torch("score", "--json", *map(str, PHOTOS))
    assert proc.returncode == 0, proc.stderr
    assert "loaded: []" in proc.stderr and "Traceback" not in proc.stderr
    scores = [json.loads(line)["score"] for line in proc.stdout.splitlines()]
    atol = read_bundle_manifest(bundle())["target"]["parity"]["atol"] * load(bundle()).scale
    np.testing.assert_allclose(scores, expected_scores(), rtol=0, atol=atol + 1e-4)  # --json rounds to 4 decimals


@pytest.mark.parametrize(("verb", "extra"), [
    (["export", "--out", "b"], "torch"), (["models"], "torch"), (["train", "--data", "x.csv", "--out", "r"], "torch"),
    (["score", "--model", "topiq_nr", "photo.jpg"], None), (["report", "table.parquet"], "collection"),
])
def test_a_verb_without_its_extra_says_what_to_install(verb: list[str], extra: str | None, tmp_path: Path) -> None:
    if verb[0] == "report":
        (tmp_path / "table.parquet").write_bytes(b"PAR1")
        verb = ["report", str(tmp_path / "table.parquet")]
    proc = edge_iqa_without_torch(*verb)
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("loaded:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error:"), proc.stderr
    if extra is not None:
        assert f'pip install "edge-iqa[{extra}]"' in errors[0]
    else:  # a model without an embedded bundle needs torch: the runtime's own one-line error says so
        assert "torch" in errors[0] and "bundle" in errors[0]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a venv, a wheel build and the downloads: 15+ minutes on a busy 2-core machine
def test_fresh_venv_with_only_edge_iqa_and_onnxruntime(tmp_path: Path) -> None:
    """The README's runtime-only install in a real venv without system site-packages:
    ``pip install edge-iqa onnxruntime`` (from this checkout; pip's configured index or cache),
    then ``edge-iqa score`` and ``edge-iqa export`` as a new user runs them."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(REPO), "onnxruntime"],
                             capture_output=True, text=True, timeout=3000, check=False)
    if install.returncode != 0:
        pytest.skip(f"pip could not install into a fresh venv here: {install.stderr[-500:]}")
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in ('torch', "
                            "'openvino', 'onnx') if u.find_spec(m)])"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # really without torch
    cli = env_dir / "bin" / "edge-iqa"
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([str(cli), "score", "--json", *map(str, PHOTOS)], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    scores = [json.loads(line)["score"] for line in proc.stdout.splitlines()]
    atol = read_bundle_manifest(bundle())["target"]["parity"]["atol"] * load(bundle()).scale
    np.testing.assert_allclose(scores, expected_scores(), rtol=0, atol=atol + 1e-4)
    proc = subprocess.run([str(cli), "export", "--out", "b"], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and 'pip install "edge-iqa[torch]"' in proc.stderr
