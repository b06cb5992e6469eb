"""Faults during a real ``export_bundle``: an exception inside the populate step, a full disk, and
(slow) SIGKILL/SIGTERM of an exporting process at random moments. The bundle already at the
output path stays intact, no partial bundle appears, and the next export succeeds.

The exported network is the tiny known net of tests/helpers_runtime.py, passed as an in-memory
model under edge_hybrid_n's preprocessing, with a target profile trimmed to a few calibration
images so one export takes seconds.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.errors import BundleError
from edge_iqa.runtime import load
from edge_iqa.runtime.bundle import read_manifest, sha256_file, verify_files
from tests.helpers_runtime import TinyNet, build_bundle

REPO = Path(__file__).resolve().parents[1]
OLD, NEW = TinyNet.random(seed=31), TinyNet.random(seed=32)
IMAGE = np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """targets/onnxruntime.toml with 8 calibration and 4 parity images (same runtime and gates)."""
    text = (REPO / "targets" / "onnxruntime.toml").read_text()
    text = re.sub(r"(?m)^calibration_samples = \d+", "calibration_samples = 8", text)
    text = re.sub(r"(?m)^images = \d+", "images = 4", text)
    text = re.sub(r"(?m)^accuracy_images = \d+", "accuracy_images = 8", text)
    path = tmp_path_factory.mktemp("target") / "small.toml"
    path.write_text(text)
    return path


def export(out: Path, target: Path, net: TinyNet = NEW) -> Path:
    import torch

    from edge_iqa.export.pipeline import export_bundle

    torch.set_num_threads(1)
    return export_bundle("edge_hybrid_n", target, "fp32", model=net.torch_module(), out=out, quiet=True)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_exception_inside_populate_then_next_export(small_target: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_iqa.export import quantize_ort

    out = build_bundle(tmp_path / "bundle", OLD)
    before, old_score = snapshot(out), load(out, threads=1).score_one(IMAGE)
    real_build = quantize_ort.build
    reached = []

    def build_then_fail(graph: Path, staging: Path, *args: object, **kwargs: object) -> dict:
        real_build(graph, staging, *args, **kwargs)  # the artifact is half-way into staging
        reached.append(sorted(p.name for p in staging.iterdir()))
        raise RuntimeError("injected failure inside populate")

    with monkeypatch.context() as patch:
        patch.setattr(quantize_ort, "build", build_then_fail)
        with pytest.raises(RuntimeError, match="injected"):
            export(out, small_target)
    assert reached and reached[0], "the failure was injected after files were written to staging"
    assert snapshot(out) == before, "the old bundle changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "a staging folder was left"

    assert export(out, small_target) == out
    verify_files(out, read_manifest(out))
    new_score = load(out, threads=1).score_one(IMAGE)
    assert new_score != old_score
    np.testing.assert_allclose(new_score, NEW.forward_numpy(load(out).spec.apply(IMAGE)).mean(), rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_export_to_a_full_disk(small_target: Path, tmp_path: Path) -> None:
    point = tmp_path / "disk"
    point.mkdir()
    # 8 KiB holds the network's 2 pages but not the manifest: ENOSPC in the middle of the bundle.
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(point)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs (not root); tests/test_reliability_write_faults.py monkeypatches ENOSPC")
    try:
        with pytest.raises(BundleError, match="No space left on device.*disk has space"):
            export(point / "bundle", small_target)
        assert list(point.iterdir()) == [], "the partial bundle was not removed"
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


# --- (slow) signals to a real exporting process ------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from edge_iqa.export.pipeline import export_bundle
    from tests.helpers_runtime import TinyNet
    print("ready", flush=True)
    export_bundle("edge_hybrid_n", sys.argv[2], "fp32", model=TinyNet.random(seed=32).torch_module(),
                  out=sys.argv[1], quiet=True)
""")


@pytest.mark.slow
def test_signals_to_a_real_export(small_target: Path, tmp_path: Path) -> None:
    """EDGE_IQA_RELIABILITY_EXPORT_KILLS exports (default 4) killed at random moments of their run."""
    kills = int(os.environ.get("EDGE_IQA_RELIABILITY_EXPORT_KILLS", "4"))
    out = tmp_path / "site" / "bundle"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(delay: float | None, sig: int = signal.SIGKILL) -> tuple[int, float]:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(small_target)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(sig)
        return proc.wait(timeout=600), time.perf_counter() - start

    assert run(None)[0] == 0
    new_score = load(out, threads=1).score_one(IMAGE)
    _, full = run(None)  # timed from "ready", with warm caches
    rng = random.Random(1)
    outcomes: Counter[str] = Counter()
    for _ in range(kills):
        shutil.rmtree(out)
        build_bundle(out, OLD)  # each round starts from the old bundle
        old = snapshot(out)
        old_score = load(out, threads=1).score_one(IMAGE)
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
        delay = rng.uniform(0.1, full)
        code, _ = run(delay, sig)
        verify_files(out, read_manifest(out))  # complete, whichever it is
        score = load(out, threads=1).score_one(IMAGE)
        assert score in (old_score, new_score)
        if score == old_score:
            assert snapshot(out) == old, "the old bundle changed"
        hidden = [p.name for p in out.parent.iterdir() if p.name != "bundle"]
        assert all(n.startswith((".bundle.partial-", ".bundle.old-")) for n in hidden), hidden
        outcomes[("old" if score == old_score else "new") + (" (killed)" if code < 0 else " (finished)")] += 1
    print(f"\nexport takes {full:.1f}s after start-up; {kills} signals: {dict(outcomes)}")
    assert run(None)[0] == 0
    assert load(out, threads=1).score_one(IMAGE) == new_score
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"], "leftovers were not cleaned"
