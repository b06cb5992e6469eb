"""The calibration images shipped with edge-iqa: 256 CLIVE photos (torch-free).

INT8 post-training quantization calibrates activation ranges on these images, and the export
parity gate compares PyTorch and the exported graph on them. They are CLIVE development images,
so evaluation must leave them out: :func:`calibration_clive_names` returns their CLIVE file
names (as in CLIVE's ``labels.csv``, e.g. ``533.JPG``) for bench/eval to exclude.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MANIFEST = "manifest.csv"
IMAGES_DIR = "images"
COLUMNS = ("file", "source", "original_name", "sha256", "mos")


@dataclass(frozen=True)
class CalibrationImage:
    file: str  # path relative to the calibration_data package
    source: str  # dataset it comes from
    original_name: str  # its name in that dataset
    sha256: str
    mos: float  # the dataset's mean opinion score (0-100), for the accuracy-budget check


def data_dir() -> Path:
    return Path(str(resources.files(__name__)))


def read_manifest() -> list[CalibrationImage]:
    """Rows of ``manifest.csv`` in their committed (seeded) order."""
    with open(data_dir() / MANIFEST, newline="", encoding="utf-8") as fh:
        return [CalibrationImage(r["file"], r["source"], r["original_name"], r["sha256"], float(r["mos"]))
                for r in csv.DictReader(fh)]


def image_paths() -> list[Path]:
    root = data_dir()
    return [root / row.file for row in read_manifest()]


def calibration_clive_names() -> frozenset[str]:
    """CLIVE file names (``labels.csv`` basenames, e.g. ``533.JPG``) used for calibration:
    exclude these from any evaluation of a quantized or exported model."""
    return frozenset(row.original_name for row in read_manifest() if row.source == "CLIVE")


def verify_checksums() -> list[str]:
    """Files whose sha256 differs from the manifest (empty when the set is intact)."""
    root = data_dir()
    bad = []
    for row in read_manifest():
        path = root / row.file
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != row.sha256:
            bad.append(row.file)
    return bad
