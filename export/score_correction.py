"""Affine score correction of an INT8 artifact: the one linear error INT8 makes on every photo.

A per-tensor INT8 network does not only add noise to each photo's score: its whole score range can
come out slightly stretched or shifted (on the default model's OpenVINO build, FP32 ≈ 0.983 x INT8
+ 1.1 MOS points on the calibration photos), which lands on the photos at both ends of the scale,
the ones that set p99 and max |dscore|. Fitting ``reference ≈ slope x int8 + intercept`` by least
squares on the calibration photos (the images NNCF / ONNX Runtime calibrated on, never the
validation photos that judge the result) and appending that multiply-add to the artifact's output
removes it at no speed cost. Every rank is kept (a line with ``slope <= 0`` is not applied), so SROCC
and PLCC against MOS do not change; only the per-photo distance to FP32 does.

The correction is part of the network (a Multiply and an Add in front of its output), not of the
manifest: every reader of the bundle (the Python runtime, the native library, the export's own
gates, which compare raw outputs) sees the corrected score without knowing about it. The manifest
records the fit (``calibration.score_correction``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_iqa.errors import ExportError
from edge_iqa.export import calibration
from edge_iqa.export.parity import raw_scores, reference_scorer
from edge_iqa.export.staging import load_artifact

if TYPE_CHECKING:
    from torch import nn

    from edge_iqa.calibration_data import CalibrationImage
    from edge_iqa.data.preprocess import PreprocessSpec


@dataclass(frozen=True)
class ScoreCorrection:
    """``corrected = slope * raw + intercept`` (raw network units), fitted on ``photos`` photos."""

    slope: float
    intercept: float
    photos: int
    mean_abs_diff_before: float  # on the fitting photos, raw units
    mean_abs_diff_after: float
    skipped: str | None = None  # why nothing was appended (a fit that would flip or flatten the ranking)

    def record(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept, "fitted_on": "calibration photos",
                "photos": self.photos, "mean_abs_diff_before": self.mean_abs_diff_before,
                "mean_abs_diff_after": self.mean_abs_diff_after, "applied": self.skipped is None,
                "skipped": self.skipped,
                "method": "least squares of the FP32 (PyTorch) raw scores on the artifact's raw scores"}


def fit(scores: np.ndarray, reference: np.ndarray) -> ScoreCorrection:
    """Least-squares ``reference ≈ slope * scores + intercept``. A line that would flip or flatten the
    ranking (slope <= 0, or scores without spread: an untrained model, a broken build) is not a bias
    to correct: the result is the identity, ``skipped`` says why, and the accuracy gate judges the
    artifact as built."""
    scores, reference = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(scores) != len(reference) or len(scores) < 3:
        raise ExportError(f"score correction needs >= 3 calibration photos with a reference score each, got "
                          f"{len(scores)} scores and {len(reference)} references; raise calibration_samples")
    before = float(np.mean(np.abs(scores - reference)))
    if np.ptp(scores) == 0:
        return ScoreCorrection(1.0, 0.0, len(scores), before, before, "the artifact gives every photo one score")
    slope, intercept = np.polyfit(scores, reference, 1)
    if not slope > 0:
        return ScoreCorrection(1.0, 0.0, len(scores), before, before,
                               f"the fitted slope {slope:.3g} <= 0 would reverse the ranking")
    corrected = slope * scores + intercept
    return ScoreCorrection(float(slope), float(intercept), len(scores), before,
                           float(np.mean(np.abs(corrected - reference))))


Correct = Callable[[Path, Mapping[str, Any]], ScoreCorrection]


def corrector(backend: Any, model: nn.Module, spec: PreprocessSpec, names: tuple[str, ...],
              photos: Sequence[CalibrationImage]) -> Correct:
    """``correct(artifact, manifest template)``: score the artifact on ``photos`` (the calibration
    photos, through ``runtime.load`` as every candidate is scored), fit against ``model``'s PyTorch
    FP32 scores of them (computed once, here), and append the fit to the artifact in place (the
    backend's ``append_score_affine``)."""
    images = calibration.prepare_images(photos, spec, names)
    reference = raw_scores(reference_scorer(model, spec, names), images)

    def correct(artifact: Path, template: Mapping[str, Any]) -> ScoreCorrection:
        with load_artifact(artifact, template) as scorer:
            found = fit(raw_scores(scorer, images), reference)
        if found.skipped is None:
            backend.append_score_affine(artifact, found.slope, found.intercept)
        return found

    return correct
