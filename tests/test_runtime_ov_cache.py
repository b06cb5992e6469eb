"""OpenVINO compiled-model cache: on by default in a writable user folder, off on request or where
nothing can be written, and a network loaded from the cache scores exactly as a fresh compile."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.runtime import load
from tests.helpers_runtime import TinyNet, any_photos, build_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("ovcache") / "ov", TinyNet.random(seed=5), runtime="openvino")


def _blobs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.blob"))


def test_default_cache_is_written_and_a_warm_load_scores_identically(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    photos = any_photos(3)
    cold = load(bundle, threads=1)
    assert cold.info["cache_dir"] == str(tmp_path / "cache" / "openvino")
    blobs = _blobs(tmp_path / "cache")
    assert blobs, "the first load must leave a compiled blob in the user cache folder"
    stamps = [b.stat().st_mtime_ns for b in blobs]
    warm = load(bundle, threads=1)
    assert [b.stat().st_mtime_ns for b in _blobs(tmp_path / "cache")] == stamps  # read, not rewritten
    uncached = load(bundle, threads=1, backend_options={"cache_dir": None})
    assert uncached.info["cache_dir"] is None
    np.testing.assert_array_equal(warm.score(photos), cold.score(photos))
    np.testing.assert_array_equal(uncached.score(photos), cold.score(photos))


def test_cache_is_off_when_asked_or_when_the_folder_cannot_be_written(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", "")
    assert load(bundle, threads=1).info["cache_dir"] is None
    blocked = tmp_path / "file-not-folder"
    blocked.write_bytes(b"")  # a file where the folder would go: mkdir fails, scoring must not
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(blocked))
    scorer = load(bundle, threads=1)
    assert scorer.info["cache_dir"] is None
    assert np.isfinite(scorer.score(any_photos(1))).all()
    if os.geteuid() != 0:  # root writes anywhere: the read-only case only means something for a user
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o500)
        monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(readonly))
        assert load(bundle, threads=1).info["cache_dir"] is None
