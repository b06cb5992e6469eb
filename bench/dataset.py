"""The evaluation images of a suite: a labelled dataset minus the shipped calibration images.

The 256 calibration photos are CLIVE images; quantization saw them, so scoring them would flatter
INT8. They are removed by file name (CLIVE's ``labels.csv`` basename or original name) before the
optional seeded ``limit`` sample is drawn.
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

    def image_list_sha256(self) -> str:
        """Hash of the (file name, MOS) list: two reports compare SROCC only on the same images."""
        text = "\n".join(f"{p.name},{m:.6f}" for p, m in zip(self.paths, self.mos, strict=True))
        return sha256_hex(text, length=16)

    def record(self) -> dict[str, object]:
        return {"labels": self.source, "images": len(self.paths), "label_rows": self.total,
                "image_list_sha256": self.image_list_sha256(),
                "excluded_calibration_images": self.excluded_calibration,
                "mos_range": [float(self.mos.min()), float(self.mos.max())] if len(self.mos) else None}


def calibration_names() -> frozenset[str]:
    from edge_iqa.calibration_data import calibration_clive_names

    return calibration_clive_names()


def load_eval_set(spec: DatasetSpec) -> EvalSet:
    if spec.labels is None or not spec.labels.is_file():
        raise SuiteError(f"the suite's dataset labels {spec.labels} do not exist; set [dataset] labels to a CSV "
                         "with columns image,mos (the default suite expects ../shared/datasets/clive/labels.csv "
                         "beside the checkout)")
    from edge_iqa.data.datasets import read_labels

    labels = read_labels(spec.labels, image_root=spec.image_root)
    excluded = calibration_names() if spec.exclude_calibration else frozenset()
    kept = [item for item in labels.items if item.path.name not in excluded]
    removed = len(labels.items) - len(kept)
    if spec.limit and spec.limit < len(kept):
        order = np.random.default_rng(spec.seed).permutation(len(kept))[: spec.limit]
        kept = [kept[i] for i in sorted(order)]
    if len(kept) < 3:
        raise SuiteError(f"{spec.labels}: only {len(kept)} evaluation images left; need at least 3")
    return EvalSet([item.path for item in kept], np.array([item.mos for item in kept]), str(spec.labels),
                   len(labels.items), removed)
