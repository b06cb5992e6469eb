"""The table's contract: its columns, the bundle identity every row carries, and a batch of results.

Columns (one row per input image, every input exactly once):

    path           string   absolute path of the image
    score          float64  the bundle's score (MOS scale); null when the image failed
    error          string   why it failed (the runtime's message: what went wrong, what to do); null when scored
    error_type     string   the error's class (ImageDecodeError, ImageTooSmallError, ...); null when scored
    model          string   the bundle's model name
    precision      string   fp32 / fp16 / int8
    runtime        string   openvino / onnxruntime / tensorrt
    bundle_sha256  string   sha256 of the bundle's manifest.json (which holds every file's sha256)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_iqa.errors import CollectionError

COLUMNS = ("path", "score", "error", "error_type", "model", "precision", "runtime", "bundle_sha256")
INSTALL_HINT = 'pip install "edge-iqa[collection]" (or just pyarrow)'


def arrow() -> Any:
    """pyarrow, or a one-line error naming the extra that brings it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule the table needs
    except ImportError as exc:
        raise CollectionError(f"writing a scores table needs pyarrow: {INSTALL_HINT}") from exc
    return pyarrow


def schema() -> Any:
    pa = arrow()
    return pa.schema([("path", pa.string()), ("score", pa.float64()), ("error", pa.string()),
                      ("error_type", pa.string()), ("model", pa.string()), ("precision", pa.string()),
                      ("runtime", pa.string()), ("bundle_sha256", pa.string())])


@dataclass(frozen=True)
class BundleIdentity:
    """Which bundle scored a row; a table holds the rows of one bundle only."""

    model: str
    precision: str
    runtime: str
    sha256: str

    @classmethod
    def of(cls, bundle_dir: Path) -> BundleIdentity:
        # Torch-free and cheap: only the manifest; load() verifies every file's checksum later.
        from edge_iqa.runtime.bundle import MANIFEST_NAME, read_manifest, sha256_file

        manifest = read_manifest(bundle_dir)
        return cls(model=manifest.model_name or "unknown", precision=str(manifest.precision),
                   runtime=str(manifest.runtime), sha256=sha256_file(Path(bundle_dir) / MANIFEST_NAME))


@dataclass
class ScoredBatch:
    """Results of a batch of images, column-wise: ``scores[i]`` is NaN exactly where ``error_types[i]``
    is set. The same object travels through both engines (as plain columns between Ray processes)."""

    paths: list[str]
    scores: np.ndarray  # float64
    errors: list[str | None] = field(default_factory=list)
    error_types: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if not self.errors:
            self.errors = [None] * len(self.paths)
        if not self.error_types:
            self.error_types = [None] * len(self.paths)
        if not len(self.paths) == len(self.scores) == len(self.errors) == len(self.error_types):
            raise ValueError("a ScoredBatch needs one score, error and error type per path")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def failed(self) -> int:
        return sum(kind is not None for kind in self.error_types)

    def to_columns(self) -> dict[str, np.ndarray]:
        """Plain numpy columns (Ray Data's batch format); a missing error is the empty string."""
        return {"path": np.array(self.paths, dtype=object), "score": self.scores,
                "error": np.array([e or "" for e in self.errors], dtype=object),
                "error_type": np.array([t or "" for t in self.error_types], dtype=object)}

    @classmethod
    def from_columns(cls, columns: dict[str, Any]) -> ScoredBatch:
        return cls(paths=[str(p) for p in columns["path"]], scores=np.asarray(columns["score"], dtype=np.float64),
                   errors=[str(e) or None for e in columns["error"]],
                   error_types=[str(t) or None for t in columns["error_type"]])

    def to_arrow(self, identity: BundleIdentity) -> Any:
        pa = arrow()
        failed = np.array([t is not None for t in self.error_types], dtype=bool)
        count = len(self.paths)
        return pa.table({
            "path": pa.array(self.paths, pa.string()),
            "score": pa.array(self.scores, pa.float64(), mask=failed),
            "error": pa.array(self.errors, pa.string()),
            "error_type": pa.array(self.error_types, pa.string()),
            "model": pa.array([identity.model] * count, pa.string()),
            "precision": pa.array([identity.precision] * count, pa.string()),
            "runtime": pa.array([identity.runtime] * count, pa.string()),
            "bundle_sha256": pa.array([identity.sha256] * count, pa.string()),
        }, schema=schema())
