"""The Ray engine: the same job on Ray Data, from one machine to a cluster.

    spool -> waves of paths -> ray.data.from_items (blocks of 4 batches, in the object store) ->
    map_batches(ScoreActor, actor pool of
    ``workers``, ``threads_per_worker`` CPUs each) -> iter_batches on the driver -> shards

Each actor loads one Scorer once (``load(bundle, threads=threads_per_worker)``) and calls
:func:`~edge_iqa.collection.batching.score_paths` on batches of ``batch_size`` paths, as the local
engine does. The bundle reaches the actors by its path (a local Ray instance, or a folder every
node mounts) or through Ray's object store (``bundle_transfer="object-store"``, the default with
``address``): its files are put once and each actor writes them to a private folder, where
``load`` verifies their checksums as always. The images themselves are read by the workers, so on
a cluster every node must see the same paths (a shared or identically mounted file system).

Ray Data restarts an actor whose process dies and retries its batch (``max_restarts=-1`` and
``max_task_retries=-1`` are its defaults for actor pools); the driver's shard writer drops a row
it has already written, so a retried batch never adds a row twice.

The paths go to Ray in waves (one dataset, one actor pool each), put in the object store as small
blocks, so the driver's memory does not grow with the list. A wave starts its actors (about 3-5 s
here: a process, imports, the bundle's compile), so a wave is sized to keep every actor busy for
minutes: ``WAVE_PER_ACTOR`` paths per actor (at least ``MIN_WAVE``), unless ``wave_size`` is given.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_iqa.collection.engine_local import DEFAULT_STALL_TIMEOUT_S, chunked, stalled
from edge_iqa.collection.table import ScoredBatch
from edge_iqa.errors import CollectionError, first_line

INSTALL_HINT = 'pip install "edge-iqa[scale]"'
#: Batches one actor scores at the same time (threads sharing its thread-safe Scorer): while one
#: runs the network, the other decodes and resizes, as the local engine's threads do.
CALLS_PER_ACTOR = 2
#: Paths per actor in one wave (about 5 minutes of one 1-thread actor at 30 images/s) ...
WAVE_PER_ACTOR = 10_000
#: ... and at least this many paths per wave.
MIN_WAVE = 50_000
#: Batches per block (one Arrow chunk in the object store, one actor task): small, so that results
#: stream back to the driver (progress, shards) and a killed actor loses little work in flight.
BATCHES_PER_BLOCK = 4
TRANSFERS = ("auto", "path", "object-store")


def import_ray() -> Any:
    """``ray`` with Ray Data, or a one-line error naming the extra that brings it."""
    try:
        import ray
        import ray.data  # noqa: F401 - needs pandas and pyarrow besides ray itself
    except ImportError as exc:
        raise CollectionError(f"--engine ray needs Ray Data ({exc}): {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class BundleRef:
    """How an actor finds the model: what it gives :func:`~edge_iqa.runtime.load` (a bundle path it
    can read, or a model name each worker resolves from its own edge-iqa install), or a bundle's
    files in the object store."""

    path: str | None = None
    files: Any = None  # ray.ObjectRef of {relative name: bytes}

    @classmethod
    def ship(cls, bundle: Path) -> BundleRef:
        ray = import_ray()
        from edge_iqa.runtime.bundle import MANIFEST_NAME, read_manifest, safe_member

        names = [MANIFEST_NAME, *read_manifest(bundle).files]
        return cls(files=ray.put({name: safe_member(bundle, name).read_bytes() for name in names}))

    def materialise(self) -> str | Path:
        if self.path is not None:
            return self.path  # a str: load() reads a bare name as a model name
        import ray

        folder = Path(tempfile.mkdtemp(prefix="edge-iqa-bundle-"))
        for name, data in ray.get(self.files).items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return folder


class ScoreActor:
    """One per Ray worker process: loads the Scorer once, then scores batches of paths."""

    def __init__(self, bundle: BundleRef, threads: int) -> None:
        from edge_iqa.runtime import load

        self.scorer = load(bundle.materialise(), threads=threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from edge_iqa.collection.batching import score_paths

        return score_paths(self.scorer, [str(p) for p in batch["path"]]).to_columns()


@dataclass(frozen=True)
class RayEngine:
    bundle: str | Path  # what load() opens: a bundle folder or a model name
    workers: int | None
    threads_per_worker: int
    batch_size: int
    address: str | None = None
    bundle_transfer: str = "auto"
    wave_size: int | None = None
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S

    name = "ray"

    def run(self, paths: Iterable[str]) -> Iterator[ScoredBatch]:
        ray = import_ray()
        from ray.data.exceptions import ExecutionTimeoutError

        started = self._connect(ray)
        try:
            pool, actors = self._pool(ray)
            ref = self._bundle_ref()
            wave_size = self.wave_size or max(MIN_WAVE, WAVE_PER_ACTOR * actors)
            for wave in chunked(paths, wave_size):
                blocks = -(-len(wave) // (BATCHES_PER_BLOCK * self.batch_size))
                # from_items builds the blocks and their metadata here and puts them in the object store
                # (from_arrow_refs would run one remote task per block just to read its schema).
                dataset = ray.data.from_items([{"path": path} for path in wave], override_num_blocks=blocks)
                scored = dataset.map_batches(
                    ScoreActor, batch_size=self.batch_size, batch_format="numpy", compute=pool,
                    num_cpus=self.threads_per_worker,
                    fn_constructor_kwargs={"bundle": ref, "threads": self.threads_per_worker})
                # Ray Data's own watchdog: no block moved for this long -> ExecutionTimeoutError.
                scored.context.execution_no_progress_timeout_s = self.stall_timeout_s
                try:
                    for columns in scored.iter_batches(batch_size=None, batch_format="numpy"):
                        yield ScoredBatch.from_columns(columns)
                except ExecutionTimeoutError as exc:
                    raise stalled(self.stall_timeout_s, f"Ray Data: {first_line(exc)}; a pool of {actors} actors "
                                  f"of {self.threads_per_worker} CPUs each was asked for, the cluster has "
                                  f"{ray.cluster_resources().get('CPU', 0):g} CPUs") from exc
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Join the given cluster, or start a local instance; False when Ray was already running here."""
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours is the one progress bar
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its errors reach us as exceptions
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                   "log_to_driver": True, "configure_logging": True}
        address = self.address
        if address is None:
            # "local": a new instance even when RAY_ADDRESS or a `ray start` cluster exists here (no
            # --address means this machine only). Enough CPUs for the pool asked for, even above this
            # machine's count (the user's call).
            address = "local"
            options["num_cpus"] = max(os.cpu_count() or 1, (self.workers or 1) * self.threads_per_worker)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CollectionError(f"cannot reach the Ray cluster at {self.address!r} ({exc}); start one with "
                                  "`ray start --head` (see docs/scale.md) or leave --address out for a local "
                                  "Ray instance") from exc
        return True

    def _pool(self, ray: Any) -> tuple[Any, int]:
        """The actor pool strategy, and how many actors it will have at most."""
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < self.threads_per_worker:
            raise CollectionError(f"the Ray cluster has {cpus} CPUs, fewer than --threads-per-worker "
                                  f"{self.threads_per_worker}; lower it or add nodes")
        most = cpus // self.threads_per_worker
        calls = {"max_concurrent_calls_per_actor": CALLS_PER_ACTOR, "enable_true_multi_threading": True}
        if self.workers is None:
            return ray.data.ActorPoolStrategy(size=most, **calls), most
        if self.workers > most:  # run with what there is (and grow if nodes join) rather than wait forever
            return ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers, **calls), self.workers
        return ray.data.ActorPoolStrategy(size=self.workers, **calls), self.workers

    def _bundle_ref(self) -> BundleRef:
        if not Path(self.bundle).is_dir():  # a model name: every worker has the package and its weights
            return BundleRef(path=str(self.bundle))
        transfer = self.bundle_transfer
        if transfer == "auto":
            transfer = "path" if self.address is None else "object-store"
        if transfer == "path":
            return BundleRef(path=str(Path(self.bundle).resolve()))
        return BundleRef.ship(Path(self.bundle))

