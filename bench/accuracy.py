"""Accuracy of one row's scores: agreement with MOS (with bootstrap CIs) and drift from PyTorch FP32.

All numbers come from :mod:`edge_iqa.metrics` (scipy); NaN (e.g. a constant score list) is
reported as ``None`` so the JSON stays valid.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from edge_iqa import metrics

CI_METRICS = ("srocc", "plcc", "krcc", "rmse")


def _clean(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def accuracy_record(scores: np.ndarray, mos: np.ndarray, *, n_resamples: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """SROCC, PLCC (raw and after the 4-parameter logistic), KRCC, RMSE vs MOS, each correlation
    and RMSE with a paired percentile-bootstrap CI."""
    scores, mos = np.asarray(scores, dtype=np.float64), np.asarray(mos, dtype=np.float64)
    if np.ptp(scores) == 0:
        return {"n": int(scores.size), "srocc": None, "plcc": None, "plcc_logistic": None, "krcc": None,
                "rmse": metrics.rmse(scores, mos), "ci": {}, "note": "constant scores: correlations undefined"}
    with np.errstate(over="ignore"):  # the logistic fit's exp() overflows harmlessly on far-out scores
        point = metrics.evaluate(scores, mos).to_dict()
    record: dict[str, Any] = {k: _clean(v) for k, v in point.items()}
    record["n"] = int(scores.size)
    record["ci"] = {name: list(metrics.bootstrap_ci(name, scores, mos, confidence=confidence,
                                                    n_resamples=n_resamples, seed=seed))
                    for name in CI_METRICS}
    record["ci_confidence"] = confidence
    return record


def drift_record(scores: np.ndarray, reference: np.ndarray, mos: np.ndarray | None) -> dict[str, float | None]:
    """delta SROCC, rank agreement and max/mean |score difference| vs the PyTorch FP32 scores."""
    with warnings.catch_warnings():  # a constant score list: NaN correlations, reported as None
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        result = metrics.drift(scores, reference, mos).to_dict()
    return {k: _clean(v) for k, v in result.items()}
