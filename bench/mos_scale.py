"""Put a row's scores on an evaluation set's MOS scale, from the checkpoint's training-dataset mappings.

SROCC, KRCC and PLCC do not change under an increasing affine map; RMSE does. A model trained on
several datasets outputs one scale (0..100) and stores, per training dataset, how its MOS maps onto
that scale (``metadata.datasets`` of a training checkpoint, ``metadata.trained_on`` of the installed
default; :class:`edge_iqa.train.multi.DatasetMapping`). An evaluation set names the mapping of the
study it belongs to (``mos_mapping = "biq2021/train"`` for the BIQ2021 Test split: same study, same
0..1 scale), and its RMSE is then in that set's MOS units. A checkpoint trained on one dataset
outputs that dataset's MOS directly (identity, named after its label file). Where the named mapping
is not in the checkpoint, RMSE is not reported: scores and MOS would be on two different scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ScoreToMOS:
    """``mos = score * slope + intercept`` (slope > 0)."""

    name: str
    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) * self.slope + self.intercept

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "slope": self.slope, "intercept": self.intercept}


def mappings_of(config: dict[str, Any]) -> dict[str, ScoreToMOS]:
    """Every training dataset's score -> MOS map in a checkpoint config (``read_config``)."""
    from edge_iqa.train.multi import dataset_name

    metadata = config.get("metadata") or {}
    entries = metadata.get("datasets") or metadata.get("trained_on")
    out: dict[str, ScoreToMOS] = {}
    if isinstance(entries, list):
        for entry in entries:
            if {"name", "mos_scale", "mos_offset", "model_scale", "model_offset"} <= set(entry):
                slope = entry["mos_scale"] / entry["model_scale"]
                intercept = entry["mos_offset"] - entry["model_offset"] * slope
                out[entry["name"]] = ScoreToMOS(entry["name"], slope, intercept)
    if not out:  # one training dataset (before multi-dataset training): the output is its MOS
        data = (metadata.get("config") or {}).get("data")
        if isinstance(data, str) and data:
            out[dataset_name(Path(data))] = ScoreToMOS(dataset_name(Path(data)))
    return out


def checkpoint_mappings(model: str, checkpoint: Path | None) -> dict[str, ScoreToMOS]:
    """The mappings of the checkpoint every row uses (``None``: the model's embedded weights)."""
    from edge_iqa.errors import EdgeIQAError
    from edge_iqa.models import get_model_info
    from edge_iqa.models.checkpoint import packaged_weights_path, read_config

    try:
        if checkpoint is None:
            default = get_model_info(model).default_weights
            if default is None:
                return {}
            checkpoint = packaged_weights_path(default)
        return mappings_of(read_config(checkpoint))
    except (EdgeIQAError, OSError, KeyError, ValueError):
        return {}  # a checkpoint without a config: no mapping, RMSE not reported
