"""Calibration and parity inputs from the shipped CLIVE images (``edge_iqa.calibration_data``).

One seeded permutation of the 256 images splits them: the first ``calibration_samples`` calibrate
the quantizer, the rest are held out: the parity gate reads the first ``parity.images`` of them and
the accuracy-budget check the first ``parity.accuracy_images`` (when too few are left, the FP32
parity gate tops up with calibration images, and the manifest says so).

Three splits never overlap: *calibration* (the quantizer's statistics), *validation* (the held-out
shipped images only, never topped up: the INT8 accuracy budget and the mixed-precision search read
them) and *evaluation* (``edge-iqa bench``: CLIVE development images that are not shipped here,
see :func:`edge_iqa.calibration_data.calibration_clive_names`). Every image goes through the
model's own :class:`PreprocessSpec`, exactly as at run time.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_iqa.calibration_data import CalibrationImage, data_dir, read_manifest
from edge_iqa.checksums import sha256_file
from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError

CLIVE_SELECTION_SEED = 20250
CLIVE_SELECTION_COUNT = 256


@dataclass(frozen=True)
class CalibrationSplit:
    calibration: list[CalibrationImage]
    evaluation: list[CalibrationImage]  # parity-gate images: held out first, topped up if too few
    evaluation_overlaps_calibration: bool

    @property
    def validation(self) -> list[CalibrationImage]:
        """The held-out prefix of ``evaluation``: never a calibration image."""
        used = {row.file for row in self.calibration}
        held_out = []
        for row in self.evaluation:
            if row.file in used:
                break
            held_out.append(row)
        return held_out

    def record(self) -> dict[str, object]:
        return {"calibration_files": [row.original_name for row in self.calibration],
                "evaluation_images": len(self.evaluation),
                "evaluation_overlaps_calibration": self.evaluation_overlaps_calibration,
                "validation_files": [row.original_name for row in self.validation],
                "validation_overlaps_calibration": False}


def split(calibration_samples: int, seed: int, evaluation_images: int, selection: str = "random") -> CalibrationSplit:
    """Seeded calibration / held-out split of the shipped images: ``evaluation_images`` held-out
    images, topped up from the calibration images when too few are held out.

    ``selection`` "random": the first ``calibration_samples`` of the seeded permutation calibrate.
    "mos_spread": the images sorted by MOS, ``calibration_samples`` of them at evenly spaced ranks
    calibrate (every quality level, from the worst photo to the best, is in the activation ranges);
    the held-out images keep the seeded permutation's order."""
    rows = read_manifest()
    if calibration_samples > len(rows):
        raise ExportError(f"the profile asks for {calibration_samples} calibration images, but only {len(rows)} "
                          "ship with edge-iqa; lower [quantization] calibration_samples")
    order = list(rows)
    random.Random(seed).shuffle(order)
    if selection == "mos_spread":
        by_mos = sorted(order, key=lambda row: (row.mos, row.file))
        ranks = np.unique(np.round(np.linspace(0, len(by_mos) - 1, calibration_samples)).astype(int))
        chosen = {by_mos[i].file for i in ranks}
        calibration = [row for row in order if row.file in chosen]
        rest = [row for row in order if row.file not in chosen]
    elif selection == "random":
        calibration, rest = order[:calibration_samples], order[calibration_samples:]
    else:
        raise ExportError(f"unknown calibration selection {selection!r}; choose random or mos_spread")
    overlaps = len(rest) < evaluation_images
    evaluation = (rest + order)[:evaluation_images]
    return CalibrationSplit(calibration, evaluation, overlaps)


def image_file(row: CalibrationImage) -> Path:
    return data_dir() / row.file


def depth_proxy(image_batch: np.ndarray) -> np.ndarray:
    """Stand-in depth input for calibrating/gating RGB+depth models (no depth maps ship with the
    calibration set): the per-pixel channel mean, repeated to 3 channels. Exercises the depth
    branch with realistic image statistics; it is not a depth estimate."""
    gray = image_batch.mean(axis=1, keepdims=True)
    return np.ascontiguousarray(np.repeat(gray, 3, axis=1))


def preprocess_rows(rows: list[CalibrationImage], spec: PreprocessSpec) -> list[np.ndarray]:
    """Each image -> its (num_crops, 3, H, W) float32 stack."""
    return [spec.apply(load_image(image_file(row))) for row in rows]


def model_feeds(stack: np.ndarray, input_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Network feeds for one preprocessed crop stack."""
    feeds = {"image": stack}
    if "depth" in input_names:
        feeds["depth"] = depth_proxy(stack)
    return feeds


def iter_calibration_feeds(rows: list[CalibrationImage], spec: PreprocessSpec,
                           input_names: tuple[str, ...]) -> Iterator[dict[str, np.ndarray]]:
    """One feed dict per calibration crop (batch 1), decoded lazily to keep memory flat."""
    for row in rows:
        stack = spec.apply(load_image(image_file(row)))
        for crop in stack:
            yield model_feeds(crop[None], input_names)


def build_calibration_set(clive_dir: Path, out_dir: Path, count: int = CLIVE_SELECTION_COUNT,
                          seed: int = CLIVE_SELECTION_SEED) -> None:
    """Rebuild ``calibration_data/`` from a CLIVE folder (``labels.csv`` + ``images/``): a seeded
    sample of the JPEGs, copied unchanged, with the manifest. Maintainers only."""
    with open(clive_dir / "labels.csv", newline="", encoding="utf-8") as fh:
        labels = {Path(row["image"]).name: row for row in csv.DictReader(fh)}
    jpegs = sorted(p.name for p in (clive_dir / "images").glob("*.JPG"))
    chosen = random.Random(seed).sample(jpegs, count)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name in chosen:
        target = out_dir / "images" / name
        shutil.copyfile(clive_dir / "images" / name, target)
        rows.append({"file": f"images/{name}", "source": "CLIVE", "original_name": labels[name]["original_name"],
                     "sha256": sha256_file(target), "mos": labels[name]["mos"]})
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "source", "original_name", "sha256", "mos"])
        writer.writeheader()
        writer.writerows(rows)
    shutil.copyfile(clive_dir / "LIVE_COPYRIGHT.txt", out_dir / "LIVE_COPYRIGHT.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description="Rebuild the shipped calibration set from CLIVE.")
    parser.add_argument("--rebuild", type=Path, required=True, help="CLIVE folder (labels.csv, images/)")
    parser.add_argument("--out", type=Path, default=data_dir())
    args = parser.parse_args()
    build_calibration_set(args.rebuild, args.out)


if __name__ == "__main__":
    main()
