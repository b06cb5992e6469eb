"""What a quantized model may cost against PyTorch FP32 on the validation photos: the ranking
(|delta SROCC| against MOS) and each photo's score (|score(model) - score(FP32)| on the output MOS
scale, as max and 99th percentile), and whether a budget is finer than those photos can resolve.

A camera that keeps or drops a frame by a score threshold sees single-photo errors, not SROCC, so
the per-photo budget is separate: INT8 can keep the ranking (SROCC) and still move one photo by
several MOS points.

Resolution. |delta SROCC| measured on n photos is an estimate; its paired bootstrap standard error
(resample the photos, recompute SROCC(model) - SROCC(FP32) on each resample) is the smallest drift
those photos can tell apart from zero. A budget below it would pass or fail by chance, so export
refuses one the user asks for before the (minutes-long) give-back search instead of searching for
noise; a target profile's default budget is judged at the resolution instead (with a warning, and
recorded), so the plain export still runs and its INT8 speed does not depend on chance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_iqa.errors import AccuracyBudgetError

RESOLUTION_RESAMPLES = 200
RESOLUTION_SEED = 0


@dataclass(frozen=True)
class AccuracyBudget:
    """``delta_srocc``: max |SROCC(model) - SROCC(FP32)| against MOS. ``max_score_error`` /
    ``p99_score_error``: max and 99th-percentile |score difference| in MOS points (None: not
    budgeted). ``score_scale``: MOS points per raw output unit (the checkpoint's output transform;
    the exported graph outputs raw scores)."""

    delta_srocc: float
    max_score_error: float | None = None
    p99_score_error: float | None = None
    score_scale: float = 1.0

    def score_errors(self, drift: dict[str, Any]) -> dict[str, float | None]:
        """p99 and max |dscore| of a ``parity.compare`` record, on the MOS scale."""
        scale = abs(self.score_scale)
        return {key: (None if drift.get(raw) is None else float(drift[raw]) * scale)
                for key, raw in (("p99_abs_dscore", "p99_abs_diff"), ("max_abs_dscore", "max_abs_diff"))}

    def ratios(self, drift: dict[str, Any]) -> dict[str, float]:
        """Each budgeted figure divided by its budget (<= 1: within); a missing figure is inf."""
        errors = self.score_errors(drift)
        delta = drift.get("delta_srocc")
        out = {"delta_srocc": (abs(delta) / self.delta_srocc if self.delta_srocc > 0 else
                               (0.0 if delta == 0 else math.inf)) if delta is not None else math.inf}
        for key, budget in (("max_abs_dscore", self.max_score_error), ("p99_abs_dscore", self.p99_score_error)):
            if budget is not None:
                out[key] = errors[key] / budget if errors[key] is not None else math.inf
        return out

    def excess(self, drift: dict[str, Any]) -> float:
        """The worst ratio of a figure to its budget: the give-back search lowers it to <= 1."""
        return max(self.ratios(drift).values())

    def within(self, drift: dict[str, Any]) -> bool:
        return self.excess(drift) <= 1.0

    def over(self, drift: dict[str, Any]) -> list[str]:
        """The budgeted figures over their budget, in words."""
        errors, ratios = self.score_errors(drift), self.ratios(drift)
        words = {"delta_srocc": lambda: f"|delta SROCC| {_fmt(drift.get('delta_srocc'), True)} > {self.delta_srocc:g}",
                 "max_abs_dscore": lambda: f"max |dscore| {_fmt(errors['max_abs_dscore'])} > "
                                           f"{self.max_score_error:g} MOS points",
                 "p99_abs_dscore": lambda: f"p99 |dscore| {_fmt(errors['p99_abs_dscore'])} > "
                                           f"{self.p99_score_error:g} MOS points"}
        return [words[key]() for key, ratio in ratios.items() if ratio > 1.0]

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: float | None, absolute: bool = False) -> str:
    return "n/a" if value is None else f"{abs(value) if absolute else value:.4f}"


def srocc_resolution(scores: np.ndarray, reference: np.ndarray, mos: np.ndarray,
                     resamples: int = RESOLUTION_RESAMPLES, seed: int = RESOLUTION_SEED) -> float:
    """Paired bootstrap standard error of SROCC(scores) - SROCC(reference) against MOS over the
    photos: the smallest |delta SROCC| these photos resolve."""
    from scipy.stats import rankdata

    scores, reference, mos = (np.asarray(a, dtype=np.float64) for a in (scores, reference, mos))
    n = len(mos)
    if n < 3:
        return math.inf
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))

    def srocc_rows(values: np.ndarray) -> np.ndarray:
        a, b = rankdata(values[index], axis=1), rankdata(mos[index], axis=1)
        a -= a.mean(axis=1, keepdims=True)
        b -= b.mean(axis=1, keepdims=True)
        denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a * b).sum(axis=1) / denominator

    deltas = srocc_rows(scores) - srocc_rows(reference)
    deltas = deltas[np.isfinite(deltas)]
    return float(np.std(deltas, ddof=1)) if len(deltas) > 1 else math.inf


def unresolvable(budget: AccuracyBudget, drift: dict[str, Any]) -> bool:
    """Full INT8 misses the SROCC budget and that budget is finer than the validation photos resolve
    (``drift["srocc_resolution"]``): a give-back search on it would chase noise."""
    return budget.delta_srocc < drift["srocc_resolution"] and budget.ratios(drift)["delta_srocc"] > 1.0


def refuse_unresolvable(budget: AccuracyBudget, drift: dict[str, Any], images: int, runtime: str) -> None:
    """AccuracyBudgetError for an explicitly requested SROCC budget that is ``unresolvable``. A search
    driven only by the per-photo budget goes ahead."""
    resolution = drift["srocc_resolution"]
    if unresolvable(budget, drift):
        raise AccuracyBudgetError(
            f"--accuracy-budget {budget.delta_srocc:g} is below what the {images} validation photos can resolve: "
            f"the bootstrap standard error of delta SROCC between this INT8 model ({runtime}) and FP32 on them is "
            f"{resolution:.4f}, so the check would pass or fail by chance. Nothing was searched and no bundle was "
            f"written. Pass --accuracy-budget >= {math.ceil(resolution * 1e4) / 1e4:g}, or bound each photo's "
            "error instead with --max-score-error / --p99-score-error (MOS points)")
