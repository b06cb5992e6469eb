"""OpenVINO compiled-model cache: on by default in a writable user folder, off on request or where
nothing can be written, a network loaded from the cache scores exactly as a fresh compile, and the
cache stays within its size limit (one folder per network, the least recently used removed)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.runtime import compile_cache, load
from edge_iqa.runtime.bundle import read_manifest
from tests.helpers_runtime import TinyNet, any_photos, build_bundle, stale_compile_cache


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("ovcache") / "ov", TinyNet.random(seed=5), runtime="openvino")


def _blobs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.blob"))


def test_default_cache_is_written_and_a_warm_load_scores_identically(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    photos = any_photos(3)
    cold = load(bundle, threads=1)
    key = compile_cache.network_key(read_manifest(bundle), bundle, ["model.xml", "model.bin"])
    assert cold.info["cache_dir"] == str(tmp_path / "cache" / "openvino" / key)
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


def test_the_same_network_in_another_folder_shares_its_cache_folder(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    other = build_bundle(tmp_path / "other", TinyNet.random(seed=6), runtime="openvino")
    folders = [load(b, threads=1).info["cache_dir"] for b in (bundle, copy, other)]
    assert folders[0] == folders[1] != folders[2]
    assert Path(folders[0]).parent == Path(folders[2]).parent == tmp_path / "cache" / "openvino"


def test_loading_evicts_the_least_recently_used_networks_beyond_the_limit(bundle, tmp_path, monkeypatch):
    stale = stale_compile_cache(tmp_path / "cache" / "openvino", megabytes=2)
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(compile_cache.LIMIT_ENV, "1")
    scorer = load(bundle, threads=1)
    ours = Path(scorer.info["cache_dir"])
    assert not stale.old_network.exists() and not stale.loose_blob.exists()
    # Over the limit still, but neither the network just compiled nor one used a moment ago is removed.
    assert ours.is_dir() and list(ours.glob("*.blob")) and stale.recent_network.is_dir()
    assert np.isfinite(scorer.score(any_photos(1))).all()


def test_within_the_limit_nothing_is_evicted(bundle, tmp_path, monkeypatch):
    stale = stale_compile_cache(tmp_path / "cache" / "openvino", megabytes=1)
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(compile_cache.LIMIT_ENV, raising=False)  # the default, 1024 MB
    load(bundle, threads=1)
    assert stale.old_network.is_dir() and stale.loose_blob.is_file()


def test_eviction_order_is_least_recently_used_first(tmp_path):
    stale = stale_compile_cache(tmp_path / "root", megabytes=1)
    newer = tmp_path / "root" / ("a" * 24)
    newer.mkdir()
    (newer / "x.blob").write_bytes(b"\0" * (1 << 20))
    os.utime(newer, (time.time() - 600, time.time() - 600))
    # 4 MB held, 3 MB allowed: only the oldest entry (the old network folder) goes.
    removed = compile_cache.evict(stale.root, stale.recent_network, 3 << 20)
    assert removed == [stale.old_network]
    assert stale.loose_blob.exists() and newer.exists()


def test_a_bad_size_limit_is_refused_before_compiling(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_IQA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(compile_cache.LIMIT_ENV, "1GB")
    with pytest.raises(ValueError, match="EDGE_IQA_CACHE_MAX_MB='1GB': give .* whole number of megabytes"):
        load(bundle, threads=1)
    assert not list((tmp_path / "cache").rglob("*.blob"))
