"""The Ray Data engine on a local Ray instance (num_cpus=2): the same table as the local engine,
bit for bit; a worker process killed with SIGKILL mid-job costs nothing; a pool that cannot make
progress stops the job with a readable error instead of a hang.

These were out of CI for a while: the first test hung for over 12 minutes in a full `pytest -n 2`
run. The cause was OpenVINO's first ``infer`` called from two threads at once (a deadlock in its
Python bindings; each actor serves two calls at a time), fixed in the OpenVINO backend (see
tests/test_runtime_openvino_first_call.py); the engines' stall watchdog turns any other hang into
an error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from edge_iqa.collection import CollectionJob, EngineOptions, run_job
from edge_iqa.errors import CollectionError
from tests.helpers_collection import make_collection, read_rows
from tests.helpers_runtime import TinyNet, bundle_pair, clive_photos

ray = pytest.importorskip("ray", reason="the Ray engine needs ray[data]: pip install 'edge-iqa[scale]'")
pytest.importorskip("ray.data", reason="Ray Data needs pandas: pip install 'edge-iqa[scale]'")
psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def local_ray() -> None:
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", configure_logging=True)
    yield
    ray.shutdown()


def _table(path: Path) -> dict[str, tuple]:
    rows = read_rows(path)
    assert len(rows) == len({row["path"] for row in rows}), "a path appears twice"
    return {row["path"]: (row["score"], row["error"], row["error_type"], row["bundle_sha256"]) for row in rows}


def test_ray_and_local_engines_give_the_same_table_bit_for_bit(tmp_path: Path, local_ray: None) -> None:
    photos = make_collection(tmp_path, good=30, broken=10)
    real = clive_photos(24)  # full-size real photos too, where ../shared has them
    inputs = (str(photos.listing), *map(str, real))
    for runtime, bundle in bundle_pair(tmp_path / "bundles", TinyNet.random(3)).items():
        tables = {}
        for name, engine in {"local": EngineOptions("local", workers=2, threads_per_worker=1),
                             "ray": EngineOptions("ray", workers=2, threads_per_worker=1),
                             "ray-object-store": EngineOptions("ray", workers=1, threads_per_worker=1,
                                                               bundle_transfer="object-store")}.items():
            out = tmp_path / f"{runtime}-{name}.parquet"
            result = run_job(CollectionJob(inputs, out, bundle, engine, batch_size=4, shard_size=16))
            assert result.new_rows == 40 + len(real)
            tables[name] = _table(out)
        assert tables["ray"] == tables["local"], runtime  # floats compared with ==: bit for bit
        assert tables["ray-object-store"] == tables["local"], runtime
        assert sum(v[2] is not None for v in tables["ray"].values()) == 10


def _score_actor_pids() -> list[int]:
    """The ScoreActor worker processes of the Ray instance this test process started (its descendants)."""
    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "ScoreActor" in " ".join(process.cmdline()):
                pids.append(process.pid)
        except psutil.Error:
            pass
    return pids


class KillOneWorker:
    """Progress observer: after ``after`` batches, SIGKILL one Ray worker process that holds a ScoreActor."""

    def __init__(self, after: int) -> None:
        self.after, self.killed = after, []

    def start(self, total: int) -> None:
        pass

    def advance(self, rows: int, failed: int) -> None:
        self.after -= 1
        if self.after == 0:
            pids = _score_actor_pids()
            assert pids, "no ScoreActor process found"
            os.kill(pids[0], signal.SIGKILL)
            self.killed.append(pids[0])

    def stop(self) -> None:
        pass


def test_a_ray_worker_killed_mid_job_the_job_completes_every_input_once(tmp_path: Path, local_ray: None) -> None:
    photos = make_collection(tmp_path, good=360, broken=40)
    bundle = bundle_pair(tmp_path / "bundles", TinyNet.random(0))["onnxruntime"]
    out = tmp_path / "s.parquet"
    killer = KillOneWorker(after=3)
    job = CollectionJob((str(photos.listing),), out, bundle, EngineOptions("ray", workers=2, threads_per_worker=1),
                        batch_size=2, shard_size=50)
    result = run_job(job, killer)
    assert killer.killed and not psutil.pid_exists(killer.killed[0])
    table = _table(out)
    assert result.new_rows == 400 and set(table) == {str(p) for p in photos.all}
    assert sum(v[2] is not None for v in table.values()) == 40
    reference = run_job(CollectionJob(job.inputs, tmp_path / "ref.parquet", bundle,
                                      EngineOptions("local", workers=1, threads_per_worker=1), batch_size=2))
    assert reference.new_rows == 400 and _table(tmp_path / "ref.parquet") == table



def test_a_ray_pool_that_cannot_start_stops_the_job_with_a_readable_error(tmp_path: Path, local_ray: None) -> None:
    @ray.remote(num_cpus=2)
    class CpuHog:  # holds every CPU of the instance, as another job on a busy cluster would
        def ready(self) -> bool:
            return True

    hog = CpuHog.remote()
    ray.get(hog.ready.remote())
    photos = make_collection(tmp_path, good=8, broken=0)
    out = tmp_path / "s.parquet"
    job = CollectionJob((str(photos.listing),), out, bundle_pair(tmp_path / "b", TinyNet.random(0))["onnxruntime"],
                        EngineOptions("ray", workers=1, threads_per_worker=1, stall_timeout_s=4), batch_size=4)
    try:
        with pytest.raises(CollectionError, match=r"no batch was scored for 4 s \(Ray Data: .*cluster has 2 CPUs"):
            run_job(job)
    finally:
        ray.kill(hog)
    assert not out.exists()
