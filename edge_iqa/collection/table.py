"""The table's contract: its columns, the bundle identity every row carries, and a batch of results.

Columns (one row per input image, every input exactly once):

    path           string   absolute path of the image
    score          float64  the bundle's score (MOS scale); null when the image failed
    error          string   why it failed (the runtime's message: what went wrong, what to do); null when scored
    error_type     string   the error's class (ImageDecodeError, ImageTooSmallError, ...); null when scored
    model          string   the bundle's model name
    precision      string   fp32 / fp16 / int8
    runtime        string   openvino / onnxruntime / tensorrt (torch: a model scored by name, no bundle)
    bundle_sha256  string   sha256 of the bundle's manifest.json (which holds every file's sha256); for a
                            model scored by name, of its runtime manifest (see BundleIdentity)
"""

from __future__ import annotations

import json
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
    """Which model scored a row; a table holds the rows of one model only.

    For a bundle: its manifest's model name, precision, runtime and the sha256 of its
    ``manifest.json`` (which lists every file's sha256). For a model scored by name without a
    bundle (``edge-iqa score --out T`` with no ``--bundle``: the default model, on whatever
    :func:`edge_iqa.runtime.load` resolves the name to) the same fields of the manifest the runtime
    builds for it: ``runtime`` is ``torch``, ``precision`` fp32, and the sha256 is that of the
    manifest as canonical JSON, which records the weights file's sha256, the preprocessing and the
    output transform, so other weights or another preprocessing give another identity.
    """

    model: str
    precision: str
    runtime: str
    sha256: str

    @classmethod
    def of(cls, source: str | Path) -> BundleIdentity:
        # Cheap: only the manifest (and for a bundle its file); load() verifies every file's checksum later.
        from edge_iqa.checksums import sha256_file, sha256_hex
        from edge_iqa.runtime.manifest import MANIFEST_NAME
        from edge_iqa.runtime.scorer import describe_source

        manifest, folder = describe_source(source)
        digest = sha256_file(folder / MANIFEST_NAME) if folder is not None else \
            sha256_hex(json.dumps(manifest.to_dict(), sort_keys=True, separators=(",", ":")))
        return cls(model=manifest.model_name or "unknown", precision=str(manifest.precision),
                   runtime=str(manifest.runtime), sha256=digest)


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
