"""The table on disk while a job runs, and how a rerun resumes it.

    scores.parquet            the finished table (after finalise)
    scores.parquet.parts/     while a job runs or after it was killed:
        part-000001.parquet   one shard each: written to a .tmp file, then renamed (never half there)
        pending.arrow         this run's paths still to score (a spool, so the inputs are read once)
        .lock                 one job at a time per table

A killed job loses only the rows not yet in a shard. A rerun reads the paths of the finished
table and of every shard (their fingerprints, 8 bytes a path), skips them, scores the rest into
new shards, and finalises: the finished table and the shards are compacted into a new finished
table (written aside, then renamed) with every path once, and the shards are removed. A crash
anywhere in between leaves a state the next run finalises the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edge_iqa.collection.fingerprints import FingerprintSet
from edge_iqa.collection.table import BundleIdentity, ScoredBatch, arrow, schema
from edge_iqa.errors import CollectionError

_READ_BATCH = 65536


class ShardStore:
    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.parts = self.out.with_name(self.out.name + ".parts")
        self.pending_file = self.parts / "pending.arrow"

    # --- one job at a time ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        if self.out.exists() and not self.out.is_file():
            raise CollectionError(f"--out {self.out}: is a folder; pass the path of a .parquet file to write")
        self.parts.mkdir(parents=True, exist_ok=True)
        with open(self.parts / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise CollectionError(f"another edge-iqa job is writing {self.out}; wait for it to end, or pass "
                                      "another --out") from exc
            for stale in self.parts.glob("*.tmp"):  # a write that a killed job did not finish
                stale.unlink()
            yield

    # --- what is there -------------------------------------------------------------------------------
    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def table_files(self) -> list[Path]:
        """The finished table (if any) then the shards, oldest first."""
        return ([self.out] if self.out.is_file() else []) + self.part_files()

    def check_identity(self, identity: BundleIdentity) -> None:
        """Refuse to add one bundle's scores to a table another bundle wrote."""
        for path in self.table_files():
            for value in _read(path, ["bundle_sha256"]).column(0).unique().to_pylist():
                if value != identity.sha256:
                    raise CollectionError(
                        f"{path} holds scores of another bundle (manifest sha256 {str(value)[:12]}..., this bundle "
                        f"{identity.sha256[:12]}...); scores of two bundles do not mix: pass another --out, or "
                        "delete the old table to start again")

    def done(self) -> FingerprintSet:
        """The paths already in the table (finished or shards)."""
        seen = FingerprintSet()
        for path in self.table_files():
            for batch in _batches(path, ["path"]):
                for entry in batch.column(0).to_pylist():
                    seen.add(entry)
        return seen

    # --- this run's work list ------------------------------------------------------------------------
    def spool_pending(self, paths: Iterable[str]) -> int:
        """Write the paths to score to the spool; returns how many."""
        pa = arrow()
        tmp = self.pending_file.with_name(self.pending_file.name + ".tmp")
        count, chunk = 0, []
        field = pa.schema([("path", pa.string())])
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, field) as writer:
            for path in paths:
                chunk.append(path)
                if len(chunk) == 8192:
                    writer.write_batch(pa.record_batch([pa.array(chunk, pa.string())], schema=field))
                    count, chunk = count + len(chunk), []
            if chunk:
                writer.write_batch(pa.record_batch([pa.array(chunk, pa.string())], schema=field))
                count += len(chunk)
        os.replace(tmp, self.pending_file)
        return count

    def pending(self) -> Iterator[str]:
        pa = arrow()
        with pa.OSFile(str(self.pending_file), "rb") as source:
            for batch in pa.ipc.open_stream(source):
                yield from batch.column(0).to_pylist()

    # --- writing -------------------------------------------------------------------------------------
    def writer(self, identity: BundleIdentity, shard_size: int, flush_seconds: float) -> ShardWriter:
        last = self.part_files()
        first = int(last[-1].stem.split("-")[1]) + 1 if last else 1
        return ShardWriter(self, identity, shard_size, flush_seconds, first)

    def write_part(self, table: Any, number: int) -> Path:
        target = self.parts / f"part-{number:06d}.parquet"
        _write_atomically(table, target)
        return target

    def finalise(self) -> int:
        """Compact the finished table and the shards into ``out`` (every path once); remove the
        shards. Returns the number of rows of the finished table."""
        pq = arrow().parquet
        if self.out.is_file() and not self.part_files():  # nothing new: the finished table stands as it is
            shutil.rmtree(self.parts, ignore_errors=True)
            return pq.ParquetFile(str(self.out)).metadata.num_rows
        sources = self.table_files()
        tmp = self.out.with_name(self.out.name + ".compact.tmp")
        seen, rows = FingerprintSet(), 0
        with pq.ParquetWriter(str(tmp), schema()) as writer:
            for path in sources:
                for batch in _batches(path, None):
                    keep = [seen.add(entry) for entry in batch.column(0).to_pylist()]
                    if not all(keep):
                        batch = batch.filter(arrow().array(keep))
                    if batch.num_rows:
                        writer.write_batch(batch)
                        rows += batch.num_rows
        _fsync(tmp)
        os.replace(tmp, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)
        return rows


class ShardWriter:
    """Collects results and writes a shard every ``shard_size`` rows or ``flush_seconds``, whichever
    comes first, so a killed job loses at most one shard's rows. A path already written in this run
    is dropped (a retried Ray task must not add a row twice)."""

    def __init__(self, store: ShardStore, identity: BundleIdentity, shard_size: int, flush_seconds: float,
                 first_number: int) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        self.store, self.identity = store, identity
        self.shard_size, self.flush_seconds = shard_size, flush_seconds
        self._number = first_number
        self._buffer: list[ScoredBatch] = []
        self._buffered = 0
        self._since = time.monotonic()
        self._written = FingerprintSet()
        self.rows = 0
        self.failed = 0

    def add(self, batch: ScoredBatch) -> int:
        """Take a batch; returns how many of its rows are new."""
        keep = [self._written.add(path) for path in batch.paths]
        if not all(keep):
            batch = ScoredBatch([p for p, k in zip(batch.paths, keep, strict=True) if k], batch.scores[keep],
                                [e for e, k in zip(batch.errors, keep, strict=True) if k],
                                [t for t, k in zip(batch.error_types, keep, strict=True) if k])
        self._buffer.append(batch)
        self._buffered += len(batch)
        self.rows += len(batch)
        self.failed += batch.failed
        if self._buffered >= self.shard_size or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()
        return len(batch)

    def flush(self) -> None:
        self._since = time.monotonic()
        if not self._buffered:
            return
        pa = arrow()
        table = pa.concat_tables([batch.to_arrow(self.identity) for batch in self._buffer])
        self.store.write_part(table, self._number)
        self._number += 1
        self._buffer, self._buffered = [], 0


def _read(path: Path, columns: list[str] | None) -> Any:
    try:
        return arrow().parquet.read_table(str(path), columns=columns)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise CollectionError(f"{path}: not a scores table edge-iqa can read ({exc}); pass another --out, or "
                              "delete it to start again") from exc


def _batches(path: Path, columns: list[str] | None) -> Iterator[Any]:
    try:
        handle = arrow().parquet.ParquetFile(str(path))
        if columns is None and handle.schema_arrow.names != list(schema().names):
            raise ValueError(f"columns {handle.schema_arrow.names}")
        yield from handle.iter_batches(batch_size=_READ_BATCH, columns=columns)
    except CollectionError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, KeyError ...
        raise CollectionError(f"{path}: not a scores table edge-iqa can read ({exc}); pass another --out, or "
                              "delete it to start again") from exc


def _write_atomically(table: Any, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    arrow().parquet.write_table(table, str(tmp))
    _fsync(tmp)
    os.replace(tmp, target)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
