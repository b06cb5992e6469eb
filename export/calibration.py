"""Calibration and parity inputs from the shipped CLIVE images (``edge_iqa.calibration_data``).

One seeded permutation of the 256 images splits them: the first ``calibration_samples`` calibrate
the quantizer, the rest are held out: the parity gate reads the first ``parity.images`` of them and
the accuracy-budget check the first ``parity.accuracy_images`` (when too few are left, the FP32
parity gate tops up with calibration images, and the manifest says so).

Three splits never overlap: *calibration* (the quantizer's statistics), *validation* (the held-out
shipped images only, never topped up: the INT8 accuracy budget and the mixed-precision search read
them) and *evaluation* (``edge-iqa bench``: CLIVE development images that are not shipped here,
see :func:`edge_iqa.calibration_data.calibration_clive_names`). Every image goes through the
model's own :class:`PreprocessSpec`, exactly as at run time (the runtime's own preparation,
:func:`~edge_iqa.runtime.scorer.network_inputs`; a depth input gets :func:`stand_in_depth`).
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_iqa.calibration_data import CalibrationImage, data_dir, read_manifest
from edge_iqa.checksums import sha256_file
from edge_iqa.data.depth import DepthFromMap
from edge_iqa.data.imageio import load_image
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import ExportError
from edge_iqa.runtime.scorer import network_inputs

if TYPE_CHECKING:
    from edge_iqa.export.targets import TargetProfile

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


def profile_split(profile: TargetProfile) -> CalibrationSplit:
    """The split ``edge-iqa export`` uses for ``profile``: its calibration photos, then the held-out
    photos of the parity gate and of the accuracy budget (``validation``: the export's validation photos)."""
    quant = profile.quantization
    return split(quant.calibration_samples, quant.seed, max(profile.parity.images, profile.parity.accuracy_images),
                 quant.calibration_selection)


def image_file(row: CalibrationImage) -> Path:
    return data_dir() / row.file


def stand_in_depth(image: np.ndarray) -> np.ndarray:
    """The depth map the export gives an RGB + depth model (DGIQA) for a calibration or validation
    photo, since no depth maps ship with them: the photo's (H, W) channel mean. It is fed the way the
    runtime feeds a user's depth map (:func:`~edge_iqa.runtime.scorer.network_inputs`: min-max
    scaled, quantised to an 8-bit map, the image's resize and crops), so calibration and the gates
    see the depth input the shipped network gets. It exercises the depth branch with real image
    statistics; it is not a depth estimate."""
    return np.asarray(image, dtype=np.float32).mean(axis=2)


@dataclass(frozen=True)
class PreparedImages:
    """Images as the runtime feeds them: per image, one stack per network input, in ``names`` order:
    ``("image",)``: the crops' ``(num_crops, H, W, 3)`` uint8 pixels, which every scorer takes
    (:meth:`~edge_iqa.runtime.scorer.Scorer.score_tensor` normalises them for a float-input
    network); ``("image", "depth")``: ``(num_crops, 3, H, W)`` float32 rows of both."""

    names: tuple[str, ...]
    stacks: tuple[tuple[np.ndarray, ...], ...]

    def __len__(self) -> int:
        return len(self.stacks)

    def take(self, indices: Sequence[int] | slice) -> PreparedImages:
        """The images at ``indices`` (a list of positions or a slice), in that order."""
        chosen = self.stacks[indices] if isinstance(indices, slice) else tuple(self.stacks[i] for i in indices)
        return PreparedImages(self.names, chosen)

    def rows(self, name: str = "image") -> np.ndarray:
        """Every image's rows of input ``name``, image after image (``len * num_crops`` rows)."""
        index = self.names.index(name)
        return np.concatenate([stack[index] for stack in self.stacks])


def prepare_image(path: Path, spec: PreprocessSpec, input_names: tuple[str, ...],
                  pixels: bool | None = None) -> tuple[np.ndarray, ...]:
    """One photo file -> its network input stacks (``input_names`` order), through the runtime's
    preparation with :func:`stand_in_depth` for a depth input. ``pixels``: the image as uint8 pixels
    (default: for single-input networks) or as float32 rows."""
    decoded = load_image(path)
    depth = DepthFromMap(stand_in_depth(decoded)) if "depth" in input_names else None
    pixels = "depth" not in input_names if pixels is None else pixels
    return network_inputs(decoded, spec, input_names, depth, pixels=pixels)


def prepare_files(paths: Sequence[Path], spec: PreprocessSpec,
                  input_names: tuple[str, ...] = ("image",)) -> PreparedImages:
    """Photo files as the runtime feeds them (see :func:`prepare_image`)."""
    return PreparedImages(tuple(input_names), tuple(prepare_image(path, spec, input_names) for path in paths))


def prepare_images(rows: Sequence[CalibrationImage], spec: PreprocessSpec,
                   input_names: tuple[str, ...] = ("image",)) -> PreparedImages:
    """The shipped images ``rows`` as the runtime feeds them (see :func:`prepare_image`)."""
    return prepare_files([image_file(row) for row in rows], spec, input_names)


def iter_calibration_feeds(rows: list[CalibrationImage], spec: PreprocessSpec,
                           input_names: tuple[str, ...], pixels: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """One feed dict per calibration crop (batch 1), decoded lazily to keep memory flat; the same
    input rows the runtime would feed (:func:`prepare_image`): uint8 pixels with ``pixels`` (a
    graph that normalises), else float32 rows (the PyTorch model, a float-input graph)."""
    for row in rows:
        stacks = prepare_image(image_file(row), spec, input_names, pixels)
        for crop in range(len(stacks[0])):
            yield {name: stack[crop : crop + 1] for name, stack in zip(input_names, stacks, strict=True)}


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
