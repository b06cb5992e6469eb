"""Long collection runs (marked slow; run with -m slow): 1,000 inputs with 10 % broken files on
the Ray engine through the command line, and the driver's memory over a long list (a bounded
soak that stops by itself) on both engines. CI runs the cheaper local-engine variant of the first
(tests/test_collection_job.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_iqa.collection import CollectionJob, EngineOptions, run_job
from tests.helpers_collection import make_collection, read_rows, tiny_bundle

pytestmark = pytest.mark.slow
psutil = pytest.importorskip("psutil")


def _needs_ray() -> None:
    pytest.importorskip("ray", reason="needs ray[data]: pip install 'edge-iqa[scale]'")
    pytest.importorskip("ray.data", reason="needs ray[data]: pip install 'edge-iqa[scale]'")


def test_ray_thousand_inputs_ten_percent_broken_from_the_command_line(tmp_path: Path) -> None:
    _needs_ray()
    photos = make_collection(tmp_path, good=900, broken=100)
    out = tmp_path / "s.parquet"
    run = subprocess.run([sys.executable, "-m", "edge_iqa.cli", "score", "--bundle", str(tiny_bundle(tmp_path)),
                          "--out", str(out), "--engine", "ray", "--workers", "2", "--threads-per-worker", "1",
                          str(photos.listing)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "1,000 images: 900 scored, 100 failed" in run.stdout
    rows = {row["path"]: row for row in read_rows(out)}
    assert len(rows) == 1000
    assert all(rows[str(p)]["error_type"] == kind for p, kind in photos.broken.items())


class RssSampler:
    """Progress observer: the driver's RSS (MiB) after each batch."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.samples: list[tuple[int, float]] = []
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total

    def advance(self, rows: int, failed: int) -> None:
        self.done += rows
        self.samples.append((self.done, self.process.memory_info().rss / 2**20))

    def stop(self) -> None:
        pass

    def at(self, fraction: float) -> float:
        return next(rss for done, rss in self.samples if done >= fraction * self.total)


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_driver_memory_stays_flat_over_a_long_list(tmp_path: Path, engine: str) -> None:
    if engine == "ray":
        _needs_ray()
    count = 40_000 if engine == "local" else 12_000
    photos = make_collection(tmp_path, good=count, broken=0, distinct=8)
    sampler = RssSampler()
    job = CollectionJob((str(photos.listing),), tmp_path / "s.parquet", tiny_bundle(tmp_path),
                        EngineOptions(engine, workers=2, threads_per_worker=1), batch_size=16, shard_size=2000,
                        wave_size=3000)
    result = run_job(job, sampler)
    assert result.new_rows == count
    warm, end = sampler.at(0.25), sampler.at(1.0)
    peak = max(rss for _, rss in sampler.samples)
    print(f"{engine}: driver RSS {warm:.0f} MiB at 25 %, {end:.0f} MiB at the end, peak {peak:.0f} MiB")
    # Per path the driver keeps 8-byte fingerprints (and a bounded set of recent ones); everything
    # else is bounded by the queues, one shard and one Ray wave.
    assert end - warm < 40, sampler.samples[:: max(1, len(sampler.samples) // 20)]
