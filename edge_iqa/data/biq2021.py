"""BIQ2021 (Ahmed & Asif, J. Electronic Imaging 31(5) 053010, 2022) as published -> our dataset layout.

A clone of ``github.com/nisarahmedrana/BIQ2021`` holds ``Images/`` and two CSVs,
``Train (Images and MOS).csv`` and ``Test (Images and MOS).csv`` (header ``Image Name,MOS``, some
rows with two empty extra columns, MOS in 0..1, higher is better). :func:`prepare_biq2021` writes
``train.csv`` and ``test.csv`` in our ``image,mos`` format (paths relative to the written CSV).

One published Train row names ``ss02 (1014).jpg`` while the file is ``ss02 (1014).JPG``. We do not
fix such rows silently: each one is returned as a :class:`CaseMismatch` (listed name -> file on
disk), printed by the script, recorded in ``prepare_report.json``, and the CSV we write names the
file that exists. Rows whose image is missing altogether stop the preparation with an error.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from edge_iqa.data.datasets import CaseMismatch, case_mismatched_names, read_labels
from edge_iqa.errors import DatasetError

SPLIT_FILES = {"train": "Train (Images and MOS).csv", "test": "Test (Images and MOS).csv"}
IMAGE_FOLDER = "Images"


@dataclass(frozen=True)
class PreparedSplit:
    """One written CSV and the case fixes it needed."""

    name: str
    csv: Path
    images: int
    case_fixes: tuple[CaseMismatch, ...]


def prepare_biq2021(clone: str | Path, out: str | Path | None = None) -> list[PreparedSplit]:
    """Write ``train.csv`` / ``test.csv`` (``image,mos``) for a BIQ2021 clone into ``out`` (default: the clone)."""
    clone = Path(clone)
    out = Path(out) if out is not None else clone
    images = clone / IMAGE_FOLDER
    if not images.is_dir():
        raise DatasetError(f"{clone}: no {IMAGE_FOLDER}/ folder; pass the folder of a clone of "
                           "https://github.com/nisarahmedrana/BIQ2021 (git clone, with its Images/)")
    planned = []  # every split is checked before anything is written: no half-prepared folder
    for name, file_name in SPLIT_FILES.items():
        source = clone / file_name
        if not source.is_file():
            raise DatasetError(f"{source}: missing; is {clone} a complete clone of BIQ2021?")
        labels = read_labels(source, images, check_images=False)
        missing = [item.path for item in labels.items if not item.path.is_file()]
        fixes = {m.listed: m.on_disk for m in case_mismatched_names(missing)}
        absent = [str(p) for p in missing if p not in fixes]
        if absent:
            raise DatasetError(f"{source}: {len(absent)} listed image(s) are not in {images} "
                               f"(first: {absent[:3]}); re-clone the repository")
        rows = [(os.path.relpath(fixes.get(item.path, item.path), out), item.mos) for item in labels.items]
        planned.append((PreparedSplit(name, out / f"{name}.csv", len(rows),
                                      tuple(CaseMismatch(k, v) for k, v in fixes.items())), rows))
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in planned:
        tmp = out / f".{split.name}.csv.tmp"
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "mos"])
            writer.writerows((path, repr(mos)) for path, mos in rows)
        tmp.replace(split.csv)
    prepared = [split for split, _ in planned]
    report = {split.name: {"csv": str(split.csv), "images": split.images,
                           "case_fixes": [{"listed": str(m.listed), "on_disk": str(m.on_disk)}
                                          for m in split.case_fixes]}
              for split in prepared}
    (out / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return prepared


__all__ = ["PreparedSplit", "SPLIT_FILES", "prepare_biq2021"]
