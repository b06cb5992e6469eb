"""Collection jobs on the local engine: the table (every input once, the runtime's own scores,
errors recorded), exit status, resume after an interrupt or a SIGKILL, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_iqa.checksums import sha256_hex
from edge_iqa.cli import app
from edge_iqa.cli.score import DEFAULT_MODEL
from edge_iqa.collection import CollectionJob, EngineOptions, run_job
from edge_iqa.collection.batching import score_paths
from edge_iqa.collection.shards import ShardStore
from edge_iqa.errors import CollectionError
from edge_iqa.runtime import load
from tests.helpers_collection import make_collection, read_rows, tiny_bundle
from tests.helpers_runtime import TinyNet, build_bundle, bundle_pair

pytest.importorskip("pyarrow")


class StopAfter:
    """A progress observer that interrupts the job (as Ctrl-C would) after ``batches`` batches."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, rows: int, failed: int) -> None:
        self.batches -= 1
        if self.batches == 0:
            raise KeyboardInterrupt

    def stop(self) -> None:
        pass


def _by_path(table: Path) -> dict[str, dict]:
    rows = read_rows(table)
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)), "a path appears twice in the table"
    return {row["path"]: row for row in rows}


def test_the_table_holds_the_runtimes_scores_and_every_error(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=40, broken=10)
    bundle = tiny_bundle(tmp_path)
    result = run_job(CollectionJob((str(photos.listing),), tmp_path / "s.parquet", bundle,
                                   EngineOptions(workers=2, threads_per_worker=1), batch_size=4, shard_size=7))
    rows = _by_path(tmp_path / "s.parquet")
    assert set(rows) == {str(p) for p in photos.all}
    with load(bundle, threads=1) as scorer:  # one image at a time: the reference
        for path in photos.good:
            row = rows[str(path)]
            assert row["score"] == scorer.score_one(path) and row["error"] is None and row["error_type"] is None
    for path, kind in photos.broken.items():
        row = rows[str(path)]
        assert row["score"] is None and row["error_type"] == kind and str(path) in row["error"]
    manifest_sha = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert {(r["model"], r["precision"], r["runtime"], r["bundle_sha256"]) for r in rows.values()} == \
        {("tiny_test_net", "fp32", "onnxruntime", manifest_sha)}
    assert (result.new_rows, result.new_failed, result.skipped) == (50, 10, 0)
    assert result.summary.errors_by_type == {"ImageDecodeError": 8, "ImageTooSmallError": 2}
    scores = np.array([rows[str(p)]["score"] for p in photos.good])
    assert result.summary.quantiles[0.5] == pytest.approx(np.median(scores))
    assert not ShardStore(tmp_path / "s.parquet").parts.exists()  # finalised: shards compacted and removed


def test_thousand_inputs_ten_percent_broken_all_recorded_and_exit_status_says_so(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=900, broken=100)
    bundle = tiny_bundle(tmp_path)
    out = tmp_path / "s.parquet"
    runner = CliRunner()
    run = runner.invoke(app, ["score", "--bundle", str(bundle), "--out", str(out), str(photos.listing)])
    assert run.exit_code == 1, run.output
    assert "1,000 images: 900 scored, 100 failed" in run.output
    rows = _by_path(out)
    assert len(rows) == 1000
    assert all(rows[str(p)]["error_type"] == kind and rows[str(p)]["score"] is None
               for p, kind in photos.broken.items())
    assert all(rows[str(p)]["score"] is not None for p in photos.good)
    again = runner.invoke(app, ["score", "--bundle", str(bundle), "--out", str(out), str(photos.listing)])
    assert again.exit_code == 1 and "0 images scored now" in again.output  # the table still has failures
    clean = runner.invoke(app, ["score", "--bundle", str(bundle), "--out", str(tmp_path / "c.parquet"),
                                str(tmp_path / "photos" / "d0")])
    assert clean.exit_code == 0, clean.output


def test_interrupted_then_resumed_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=120, broken=12)
    bundle = tiny_bundle(tmp_path)
    out = tmp_path / "s.parquet"
    job = CollectionJob((str(photos.listing),), out, bundle, EngineOptions(workers=2, threads_per_worker=1),
                        batch_size=4, shard_size=10)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, StopAfter(batches=9))
    store = ShardStore(out)
    assert not out.exists() and store.part_files()
    kept = sum(len(read_rows(part)) for part in store.part_files())
    assert 9 * 4 <= kept < 132  # every batch finished before the interrupt is kept
    resumed = run_job(job)
    assert resumed.skipped == kept and resumed.new_rows == 132 - kept
    reference = run_job(CollectionJob(job.inputs, tmp_path / "ref.parquet", bundle, job.engine, batch_size=4))
    assert reference.new_rows == 132
    assert _by_path(out) == _by_path(tmp_path / "ref.parquet")


def test_a_job_killed_with_sigkill_resumes(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=1500, broken=50)
    bundle = tiny_bundle(tmp_path)
    out = tmp_path / "s.parquet"
    command = [sys.executable, "-m", "edge_iqa.cli", "score", "--bundle", str(bundle), "--out", str(out),
               "--workers", "1", "--threads-per-worker", "1", "--batch-size", "2", "--shard-size", "20",
               str(photos.listing)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = ShardStore(out)
    deadline = time.monotonic() + 120
    while len(store.part_files()) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, f"the job ended before it could be killed: {process.stderr.read()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    kept = {row["path"] for part in store.part_files() for row in read_rows(part)}
    assert len(kept) >= 60
    resumed = run_job(CollectionJob((str(photos.listing),), out, bundle, batch_size=2))
    assert resumed.skipped == len(kept) and resumed.new_rows == 1550 - len(kept)
    rows = _by_path(out)
    assert set(rows) == {str(p) for p in photos.all}
    assert sum(row["error_type"] is not None for row in rows.values()) == 50


def test_a_rerun_scores_only_what_was_added(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=20, broken=0)
    bundle = tiny_bundle(tmp_path)
    job = CollectionJob((str(tmp_path / "photos"),), tmp_path / "s.parquet", bundle)
    assert run_job(job).new_rows == 20
    extra = tmp_path / "photos" / "new" / "x.jpg"
    extra.parent.mkdir()
    os.link(photos.good[0], extra)
    second = run_job(job)
    assert (second.skipped, second.new_rows, second.summary.rows) == (20, 1, 21)
    assert set(_by_path(job.out)) == {str(p) for p in [*photos.good, extra]}


def test_refusals_another_bundle_a_busy_table_no_input(tmp_path: Path) -> None:
    photos = make_collection(tmp_path, good=4, broken=0)
    out = tmp_path / "s.parquet"
    run_job(CollectionJob((str(photos.listing),), out, tiny_bundle(tmp_path)))
    other = build_bundle(tmp_path / "other", TinyNet.random(1))
    with pytest.raises(CollectionError, match="another bundle"):
        run_job(CollectionJob((str(photos.listing),), out, other))
    store = ShardStore(tmp_path / "busy.parquet")
    with store.locked(), pytest.raises(CollectionError, match="another edge-iqa job is writing"):
        run_job(CollectionJob((str(photos.listing),), store.out, other))
    run = CliRunner().invoke(app, ["score", "--bundle", str(other), "--out", str(tmp_path / "x.parquet"),
                                   str(tmp_path / "nothing-here")])
    assert run.exit_code == 2 and "no such file, folder or glob" in run.output
    run = CliRunner().invoke(app, ["score", "--bundle", str(other), "--engine", "ray", str(photos.good[0])])
    assert run.exit_code == 2 and "add --out" in run.output


def test_ray_engine_without_the_extra_says_which_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = make_collection(tmp_path, good=2, broken=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    run = CliRunner().invoke(app, ["score", "--bundle", str(tiny_bundle(tmp_path)), "--out",
                                   str(tmp_path / "s.parquet"), "--engine", "ray", str(photos.listing)])
    assert run.exit_code == 2
    assert 'pip install "edge-iqa[scale]"' in run.output and len(run.output.strip().splitlines()) == 1


def test_a_crash_between_compaction_and_cleanup_leaves_no_duplicate(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    photos = make_collection(tmp_path, good=30, broken=3)
    job = CollectionJob((str(photos.listing),), tmp_path / "s.parquet", tiny_bundle(tmp_path), shard_size=8)
    run_job(job)
    before = _by_path(job.out)
    # As if the job died after renaming the compacted table but before removing its shards.
    store = ShardStore(job.out)
    store.parts.mkdir()
    pq.write_table(pq.read_table(job.out).slice(0, 12), store.parts / "part-000001.parquet")
    again = run_job(job)
    assert again.new_rows == 0 and again.summary.rows == 33
    assert _by_path(job.out) == before and not store.parts.exists()


def _listed(photos) -> list[str]:
    return photos.listing.read_text().split()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_bad_image_fails_alone_and_its_batch_is_not_scored_twice(tmp_path: Path, runtime: str) -> None:
    photos = make_collection(tmp_path, good=6, broken=3)
    paths = _listed(photos)
    good = [p for p in paths if Path(p) not in photos.broken]
    bundle = bundle_pair(tmp_path / "b", TinyNet.random(0))[runtime]
    with load(bundle, threads=2) as scorer:  # a list on OpenVINO runs on its streams compile
        decoded = []
        prepare = scorer._prepare
        scorer._prepare = lambda image, source: decoded.append(image) or prepare(image, source)
        batch = score_paths(scorer, paths)
        assert sorted(decoded) == sorted(paths)  # each image read once: no second pass over the batch
        reference = scorer.score(good)
        one, errors = scorer.score_each(good[0])  # one image (a str) is one image, not its characters
        assert list(one) == [scorer.score_one(good[0])] and errors == [None]
    scored = {p: s for p, s in zip(batch.paths, batch.scores, strict=True) if p in good}
    assert [scored[p] for p in good] == list(reference)  # bit for bit Scorer.score's scores
    for path, kind, error, score in zip(batch.paths, batch.error_types, batch.errors, batch.scores, strict=True):
        expected = photos.broken.get(Path(path))
        assert kind == expected and (error is None) == (expected is None) and np.isnan(score) == (expected is not None)
        if expected is not None:
            assert path in error


def test_without_a_bundle_the_default_model_scores_the_collection(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the default model by name runs on the torch backend here")
    photos = make_collection(tmp_path, good=2, broken=1, distinct=2)
    out = tmp_path / "s.parquet"
    run = CliRunner().invoke(app, ["score", "--out", str(out), "--workers", "1", str(photos.listing)])
    assert run.exit_code == 1 and "3 images: 2 scored, 1 failed" in run.output, run.output
    rows = _by_path(out)
    good = [p for p in _listed(photos) if Path(p) not in photos.broken]
    with load(DEFAULT_MODEL) as scorer:  # what `edge-iqa score photo.jpg` scores with
        reference = scorer.score(good)
        manifest = scorer.manifest
    assert [rows[p]["score"] for p in good] == list(reference)
    assert all(rows[str(p)]["error_type"] == kind for p, kind in photos.broken.items())
    # The identity of a model scored by name: its runtime manifest, which pins the weights' sha256.
    weights_sha = manifest.files[manifest.model_file]["sha256"]
    assert len(weights_sha) == 64
    assert {(r["model"], r["precision"], r["runtime"], r["bundle_sha256"]) for r in rows.values()} == \
        {(DEFAULT_MODEL, "fp32", "torch", sha256_hex(json.dumps(manifest.to_dict(), sort_keys=True,
                                                                 separators=(",", ":"))))}
    mixed = CliRunner().invoke(app, ["score", "--bundle", str(tiny_bundle(tmp_path)), "--out", str(out),
                                     str(photos.listing)])
    assert mixed.exit_code == 2 and "another bundle" in mixed.output


def test_a_stuck_scoring_thread_stops_the_job_with_a_readable_error(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_iqa.collection.engine_local as engine_local

    release = threading.Event()
    monkeypatch.setattr(engine_local, "score_paths", lambda scorer, paths: release.wait(30) and None)
    photos = make_collection(tmp_path, good=4, broken=0)
    out = tmp_path / "s.parquet"
    job = CollectionJob((str(photos.listing),), out, tiny_bundle(tmp_path),
                        EngineOptions(workers=1, threads_per_worker=1, stall_timeout_s=0.5))
    started = time.monotonic()
    try:
        with pytest.raises(CollectionError, match=r"no batch was scored for 0.5 s .*rerun the same command"):
            run_job(job)
    finally:
        release.set()
    assert time.monotonic() - started < 20 and not out.exists()
    run = CliRunner().invoke(app, ["score", "--bundle", str(tiny_bundle(tmp_path)), "--out", str(out),
                                   "--stall-timeout", "0", str(photos.listing)])
    assert run.exit_code == 2 and "--stall-timeout must be a positive number" in run.output


def test_ray_actors_get_a_model_name_as_is_and_a_bundle_by_absolute_path(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_iqa.collection.engine_ray import BundleRef, RayEngine

    def engine(source: str | Path) -> RayEngine:
        return RayEngine(source, 1, 1, 8, address="auto", bundle_transfer="object-store")

    # A name: every worker resolves it from its own install (no files to ship), as load() does here.
    assert engine(DEFAULT_MODEL)._bundle_ref() == BundleRef(path=DEFAULT_MODEL)
    assert BundleRef(path=DEFAULT_MODEL).materialise() == DEFAULT_MODEL  # a str: load() reads it as a name
    monkeypatch.chdir(tmp_path)
    bundle = tiny_bundle(tmp_path)
    local = RayEngine(Path(bundle.name), 1, 1, 8)._bundle_ref()  # no --address: by path, made absolute
    assert local == BundleRef(path=str(bundle.resolve()))
