"""The evaluation images of a suite: each labelled set, minus the shipped calibration images.

The 256 calibration photos are CLIVE images; quantization saw them, so scoring them would flatter
INT8. They are removed by file name (CLIVE's ``labels.csv`` basename or original name) before the
optional seeded ``limit`` sample is drawn. A set marked ``optional`` whose label file is absent
(BIQ2021 is not on every machine, nor in CI) is skipped with the reason instead of stopping the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_iqa.bench.suite import DatasetSpec, SuiteError
from edge_iqa.checksums import sha256_hex


@dataclass(frozen=True)
class EvalSet:
    paths: list[Path]
    mos: np.ndarray
    source: str
    total: int  # rows in the label file
    excluded_calibration: int
    name: str = ""
    role: str = ""
    mos_mapping: str = ""

    def image_list_sha256(self) -> str:
        """Hash of the (file name, MOS) list: two reports compare SROCC only on the same images."""
        text = "\n".join(f"{p.name},{m:.6f}" for p, m in zip(self.paths, self.mos, strict=True))
        return sha256_hex(text, length=16)

    def record(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "labels": self.source, "images": len(self.paths),
                "label_rows": self.total, "mos_mapping": self.mos_mapping or None,
                "image_list_sha256": self.image_list_sha256(),
                "excluded_calibration_images": self.excluded_calibration,
                "mos_range": [float(self.mos.min()), float(self.mos.max())] if len(self.mos) else None}


def calibration_names() -> frozenset[str]:
    from edge_iqa.calibration_data import calibration_clive_names

    return calibration_clive_names()


def load_eval_set(spec: DatasetSpec) -> EvalSet:
    if spec.labels is None or not spec.labels.is_file():
        raise SuiteError(f"evaluation set {spec.name!r}: labels {spec.labels} do not exist; set its labels to a CSV "
                         "with columns image,mos (the default suite expects ../shared/datasets/clive/labels.csv "
                         "beside the checkout)")
    from edge_iqa.data.datasets import read_labels
    from edge_iqa.errors import DatasetError

    try:
        labels = read_labels(spec.labels, image_root=spec.image_root)
    except DatasetError as exc:  # present but broken data stops the run: a skip would hide it
        raise SuiteError(f"evaluation set {spec.name!r}: {exc}") from exc
    excluded = calibration_names() if spec.exclude_calibration else frozenset()
    kept = [item for item in labels.items if item.path.name not in excluded]
    removed = len(labels.items) - len(kept)
    if spec.limit and spec.limit < len(kept):
        order = np.random.default_rng(spec.seed).permutation(len(kept))[: spec.limit]
        kept = [kept[i] for i in sorted(order)]
    if len(kept) < 3:
        raise SuiteError(f"evaluation set {spec.name!r} ({spec.labels}): only {len(kept)} evaluation images left; "
                         "need at least 3")
    return EvalSet([item.path for item in kept], np.array([item.mos for item in kept]), str(spec.labels),
                   len(labels.items), removed, spec.name, spec.role, spec.mos_mapping)


@dataclass(frozen=True)
class SkippedSet:
    """An optional evaluation set whose data is not on this machine."""

    name: str
    reason: str
    role: str = ""

    def record(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role, "skipped": self.reason}


def absent_reason(spec: DatasetSpec) -> str | None:
    """Why an optional set cannot run here, or None when its label file exists."""
    if spec.labels is not None and spec.labels.is_file():
        return None
    where = (f"set ${spec.folder_env} to its folder (now {spec.folder})" if spec.folder_env
             else "fix the set's labels path in the suite file")
    return f"label file {spec.labels} is absent: {where}"


def load_eval_sets(specs: tuple[DatasetSpec, ...] | list[DatasetSpec]) -> tuple[list[EvalSet], list[SkippedSet]]:
    """Every set of a suite; optional sets without data are skipped, and at least one set must run."""
    sets: list[EvalSet] = []
    skipped: list[SkippedSet] = []
    for spec in specs:
        reason = absent_reason(spec) if spec.optional else None
        if reason:
            skipped.append(SkippedSet(spec.name, reason, spec.role))
        else:
            sets.append(load_eval_set(spec))
    if not sets:
        raise SuiteError("no evaluation set has data on this machine: "
                         + "; ".join(f"{s.name}: {s.reason}" for s in skipped))
    return sets, skipped
