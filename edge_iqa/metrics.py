"""IQA agreement metrics over scipy: SROCC, PLCC (raw and after the 4-parameter logistic), KRCC,
RMSE, bootstrap confidence intervals, and drift between two score lists."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats


def _as_1d(name: str, values: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_pair(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    p, m = _as_1d("predictions", pred), _as_1d("mos", mos)
    if p.shape != m.shape:
        raise ValueError(f"predictions ({p.size}) and mos ({m.size}) differ in length")
    if p.size < 3:
        raise ValueError("need at least 3 scores to correlate")
    return p, m


def srocc(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> float:
    p, m = _check_pair(pred, mos)
    return float(stats.spearmanr(p, m).statistic)


def plcc(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> float:
    p, m = _check_pair(pred, mos)
    return float(stats.pearsonr(p, m).statistic)


def krcc(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> float:
    p, m = _check_pair(pred, mos)
    return float(stats.kendalltau(p, m).statistic)


def rmse(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> float:
    p, m = _check_pair(pred, mos)
    return float(np.sqrt(np.mean((p - m) ** 2)))


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic: (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2."""
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / np.abs(b4))) + b2


def fit_logistic(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> np.ndarray:
    """Map predictions onto the MOS scale with the 4-parameter logistic (least squares).

    Falls back to a linear fit when the logistic does not converge (e.g. constant predictions)."""
    p, m = _check_pair(pred, mos)
    spread = float(np.std(p)) or 1.0
    beta0 = [m.max(), m.min(), float(np.mean(p)), spread]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beta, _ = optimize.curve_fit(logistic4, p, m, p0=beta0, maxfev=20000)
        fitted = logistic4(p, *beta)
        if np.isfinite(fitted).all():
            return fitted
    except (RuntimeError, optimize.OptimizeWarning, ValueError):
        pass
    slope, intercept = np.polyfit(p, m, 1)
    return slope * p + intercept


def plcc_logistic(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> float:
    p, m = _check_pair(pred, mos)
    return plcc(fit_logistic(p, m), m)


@dataclass(frozen=True)
class IQAMetrics:
    srocc: float
    plcc: float
    plcc_logistic: float
    krcc: float
    rmse: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(pred: np.ndarray | list[float], mos: np.ndarray | list[float]) -> IQAMetrics:
    """All point metrics at once (RMSE on the raw prediction scale)."""
    p, m = _check_pair(pred, mos)
    return IQAMetrics(srocc(p, m), plcc(p, m), plcc_logistic(p, m), krcc(p, m), rmse(p, m), int(p.size))


def bootstrap_ci(
    metric: str,
    pred: np.ndarray | list[float],
    mos: np.ndarray | list[float],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric`` (srocc, plcc, krcc, rmse) over paired resamples."""
    funcs = {"srocc": srocc, "plcc": plcc, "krcc": krcc, "rmse": rmse}
    p, m = _check_pair(pred, mos)
    func = funcs[metric]
    result = stats.bootstrap(
        (p, m), lambda a, b: func(a, b), paired=True, vectorized=False, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class Drift:
    """How far a deployed model's scores moved from the reference (FP32) scores."""

    delta_srocc: float  # srocc(candidate, mos) - srocc(reference, mos); nan without MOS
    rank_agreement: float  # SROCC between the two score lists
    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float = float("nan")  # 99th percentile of |candidate - reference| (one photo's error)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def drift(candidate: np.ndarray | list[float], reference: np.ndarray | list[float],
          mos: np.ndarray | list[float] | None = None) -> Drift:
    c, r = _check_pair(candidate, reference)
    diff = np.abs(c - r)
    delta = srocc(c, mos) - srocc(r, mos) if mos is not None else float("nan")
    agreement = float(stats.spearmanr(c, r).statistic) if np.ptp(c) > 0 and np.ptp(r) > 0 else float("nan")
    return Drift(float(delta), agreement, float(diff.max()), float(diff.mean()), float(np.percentile(diff, 99)))
