"""The local engine: one Scorer, ``workers`` threads calling it, bounded queues between them.

    spool -> feeder thread -> [todo queue, 2 x workers batches] -> worker threads (score_paths)
          -> [done queue, 2 x workers batches] -> the caller (writes shards, moves the progress bar)

Nothing beyond the runtime: the Scorer is thread-safe and each calling thread has its own buffers
(and its own OpenVINO infer request), so while one thread runs the network another decodes and
resizes (Pillow releases the GIL). The backend gets ``workers x threads_per_worker`` intra-op
threads. Memory is bounded by the queues, whatever the length of the list.

A watchdog: when no batch comes back for ``stall_timeout_s`` seconds (a scoring thread stuck in a
native library), the job stops with a :class:`~edge_iqa.errors.CollectionError` that says so,
instead of waiting forever; the rows written so far are kept for a rerun.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from edge_iqa.collection.batching import score_paths
from edge_iqa.collection.table import ScoredBatch
from edge_iqa.errors import CollectionError

_END = object()
_POLL_S = 0.1
#: Seconds without a finished batch after which a job is declared stuck (both engines' default):
#: far above a batch's time (a second or two) and a Ray actor's start (its process, the bundle's load).
DEFAULT_STALL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def stalled(seconds: float, where: str) -> CollectionError:
    """The error of a job whose engine returned nothing for ``seconds``."""
    return CollectionError(f"no batch was scored for {seconds:g} s ({where}); the rows scored so far are kept: "
                           "rerun the same command to resume, or raise --stall-timeout if scoring is legitimately "
                           "this slow (e.g. Ray waiting for cluster nodes)")


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class LocalEngine:
    bundle: str | Path  # what load() opens: a bundle folder or a model name
    workers: int
    threads_per_worker: int
    batch_size: int
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S

    name = "local"

    def run(self, paths: Iterable[str]) -> Iterator[ScoredBatch]:
        from edge_iqa.runtime import load

        budget = self.workers * self.threads_per_worker
        # The worker threads already decode while another runs the network; read-ahead gets the rest.
        scorer = load(self.bundle, threads=budget, prefetch=max(0, budget - self.workers))
        todo: queue.Queue[Any] = queue.Queue(maxsize=2 * self.workers)
        done: queue.Queue[Any] = queue.Queue(maxsize=2 * self.workers)
        stop = threading.Event()

        def feed() -> None:
            try:
                for chunk in chunked(paths, self.batch_size):
                    if not _put(todo, chunk, stop):
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
                _put(done, _Failure(exc), stop)
            finally:
                for _ in range(self.workers):
                    _put(todo, _END, stop)

        def work() -> None:
            while not stop.is_set():
                try:
                    chunk = todo.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if chunk is _END:
                    _put(done, _END, stop)
                    return
                try:
                    result: Any = score_paths(scorer, chunk)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
                    result = _Failure(exc)
                if not _put(done, result, stop):
                    return

        threads = [threading.Thread(target=feed, name="edge-iqa-feed", daemon=True)]
        threads += [threading.Thread(target=work, name=f"edge-iqa-score-{i}", daemon=True) for i in range(self.workers)]
        for thread in threads:
            thread.start()
        stuck = False
        try:
            finished = 0
            while finished < self.workers:
                try:
                    item = done.get(timeout=self.stall_timeout_s)
                except queue.Empty:
                    stuck = True
                    raise stalled(self.stall_timeout_s, f"{self.workers} scoring threads, none returned") from None
                if item is _END:
                    finished += 1
                elif isinstance(item, _Failure):
                    raise item.error
                else:
                    yield item
        finally:
            stop.set()
            if not stuck:  # a stuck thread may never return: leave it (a daemon) and the Scorer it is in
                for thread in threads:
                    thread.join(timeout=60)
                scorer.close()


def _put(target: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put, unless the job is stopping (then False): never block forever on a queue nobody reads."""
    while not stop.is_set():
        try:
            target.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
