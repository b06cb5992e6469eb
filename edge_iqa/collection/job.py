"""A collection job from start to finish: inputs -> what is left to score -> engine -> shards ->
the finished table -> its summary. The CLI is a thin wrapper over :func:`run_job`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_iqa.collection.engine_local import DEFAULT_STALL_TIMEOUT_S, LocalEngine
from edge_iqa.collection.engine_ray import TRANSFERS, RayEngine
from edge_iqa.collection.inputs import check_inputs, expand_inputs
from edge_iqa.collection.progress import Progress, SilentProgress
from edge_iqa.collection.shards import ShardStore
from edge_iqa.collection.summary import Summary
from edge_iqa.collection.table import BundleIdentity, arrow
from edge_iqa.errors import CollectionError

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineOptions:
    """``workers`` x ``threads_per_worker`` is the CPU budget. Local: ``workers`` threads share one
    Scorer with that many intra-op threads (default 2 workers, all cores). Ray: ``workers`` actors
    of ``threads_per_worker`` CPUs each (default: 1 thread, as many actors as the cluster has CPUs)."""

    kind: str = "local"
    workers: int | None = None
    threads_per_worker: int | None = None
    address: str | None = None
    bundle_transfer: str = "auto"
    #: Seconds without a finished batch before the job stops with an error instead of waiting forever.
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise CollectionError(f"--engine {self.kind!r}: choose one of {', '.join(ENGINES)}")
        for name in ("workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CollectionError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not self.stall_timeout_s > 0:
            raise CollectionError(f"--stall-timeout must be a positive number of seconds, got {self.stall_timeout_s}")
        if self.kind == "local" and self.address is not None:
            raise CollectionError("--address is for --engine ray; add --engine ray or drop --address")
        if self.bundle_transfer not in TRANSFERS:
            raise CollectionError(f"--bundle-transfer {self.bundle_transfer!r}: choose one of {', '.join(TRANSFERS)}")


@dataclass(frozen=True)
class CollectionJob:
    inputs: tuple[str, ...]
    out: Path
    #: What scores: a bundle folder (a Path), or a model name (a str, e.g. ``"edge_hybrid_n"``) that
    #: :func:`edge_iqa.runtime.load` resolves, as ``edge-iqa score photo.jpg`` does.
    bundle: Path | str
    engine: EngineOptions = field(default_factory=EngineOptions)
    #: Paths per Scorer.score call (both engines).
    batch_size: int = 8
    #: Rows per shard; a killed job loses at most this many finished rows.
    shard_size: int = 1000
    #: A shard is also written when this many seconds passed since the last one (slow jobs).
    flush_seconds: float = 60.0
    #: Paths handed to Ray per dataset (None: sized to the actor pool, see engine_ray).
    wave_size: int | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise CollectionError("no INPUT given: pass image files, folders, globs or a .txt/.csv/.parquet list")
        if self.batch_size < 1 or self.shard_size < 1 or (self.wave_size is not None and self.wave_size < 1):
            raise CollectionError("--batch-size and --shard-size must be at least 1")


@dataclass(frozen=True)
class JobResult:
    """This run (``inputs``, ``skipped`` as already in the table, ``new_rows`` / ``new_failed``
    written now, ``seconds``) and the whole finished table (``summary``)."""

    inputs: int
    skipped: int
    new_rows: int
    new_failed: int
    seconds: float
    summary: Summary

    @property
    def images_per_second(self) -> float:
        return self.new_rows / self.seconds if self.seconds > 0 else 0.0


def make_engine(job: CollectionJob) -> LocalEngine | RayEngine:
    options = job.engine
    if options.kind == "ray":
        return RayEngine(job.bundle, options.workers, options.threads_per_worker or 1, job.batch_size,
                         options.address, options.bundle_transfer, job.wave_size, options.stall_timeout_s)
    workers = options.workers or 2
    threads = options.threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    return LocalEngine(job.bundle, workers, threads, job.batch_size, options.stall_timeout_s)


def run_job(job: CollectionJob, progress: Progress | None = None) -> JobResult:
    """Score what the table lacks, then finalise it. Raises CollectionError (usage, table),
    BundleError / BackendUnavailableError (the bundle); KeyboardInterrupt keeps the shards written."""
    progress = progress or SilentProgress()
    arrow()
    check_inputs(job.inputs)
    if job.engine.kind == "ray":
        from edge_iqa.collection.engine_ray import import_ray

        import_ray()  # the missing extra is said before any work
    identity = BundleIdentity.of(job.bundle)
    store = ShardStore(job.out)
    started = time.monotonic()
    with store.locked():
        store.check_identity(identity)
        done = store.done()
        counts = {"inputs": 0, "skipped": 0}

        def still_to_score() -> Iterator[str]:
            for path in expand_inputs(job.inputs):
                counts["inputs"] += 1
                if path in done:
                    counts["skipped"] += 1
                else:
                    yield path

        total = store.spool_pending(still_to_score())
        writer = store.writer(identity, job.shard_size, job.flush_seconds)
        progress.start(total)
        try:
            if total:
                for batch in make_engine(job).run(store.pending()):
                    progress.advance(writer.add(batch), batch.failed)
        finally:
            writer.flush()  # finished rows are kept, whatever stopped the job
            progress.stop()
        if writer.rows != total:
            raise CollectionError(f"the engine returned {writer.rows:,} of {total:,} images; the rows written are "
                                  "kept: rerun the same command to score the rest")
        store.finalise()
    return JobResult(inputs=counts["inputs"], skipped=counts["skipped"], new_rows=writer.rows,
                     new_failed=writer.failed, seconds=time.monotonic() - started,
                     summary=Summary.of_table(job.out))
