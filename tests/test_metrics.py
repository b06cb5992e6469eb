"""edge_iqa.metrics against scipy computed directly, on scores with ties and noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from edge_iqa import metrics


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    mos = rng.uniform(5, 95, 200)
    pred = 1 / (1 + np.exp(-(mos - 50) / 15)) + rng.normal(0, 0.08, mos.size)
    pred[::17] = pred[3]  # ties
    return pred, mos


def test_point_metrics_match_scipy(scores: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = scores
    assert metrics.srocc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos)[0], abs=1e-12)
    assert metrics.plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos)[0], abs=1e-12)
    assert metrics.krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos)[0], abs=1e-12)
    assert metrics.rmse(pred, mos) == pytest.approx(np.sqrt(np.mean((pred - mos) ** 2)), abs=1e-9)
    result = metrics.evaluate(pred, mos)
    assert result.n == 200 and result.srocc == pytest.approx(metrics.srocc(pred, mos))
    assert set(result.to_dict()) == {"srocc", "plcc", "plcc_logistic", "krcc", "rmse", "n"}


def test_logistic_plcc_matches_own_curve_fit_and_beats_linear(scores: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = scores
    beta, _ = optimize.curve_fit(metrics.logistic4, pred, mos,
                                 p0=[mos.max(), mos.min(), pred.mean(), pred.std()], maxfev=20000)
    expected = stats.pearsonr(metrics.logistic4(pred, *beta), mos)[0]
    assert metrics.plcc_logistic(pred, mos) == pytest.approx(expected, abs=1e-6)
    # The predictions are a sigmoid of the MOS: the logistic fit must linearise them.
    assert metrics.plcc_logistic(pred, mos) > metrics.plcc(pred, mos)
    fitted = metrics.fit_logistic(pred, mos)
    assert np.sqrt(np.mean((fitted - mos) ** 2)) < np.std(mos)


def test_logistic_falls_back_on_constant_predictions() -> None:
    mos = np.linspace(0, 100, 20)
    fitted = metrics.fit_logistic(np.ones(20), mos)
    assert np.isfinite(fitted).all()


def test_bootstrap_ci_brackets_the_statistic(scores: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = scores
    low, high = metrics.bootstrap_ci("srocc", pred, mos, n_resamples=300, seed=1)
    res = stats.bootstrap((pred, mos), lambda a, b: stats.spearmanr(a, b)[0], paired=True, vectorized=False,
                          n_resamples=300, method="percentile", random_state=np.random.default_rng(1))
    assert (low, high) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high), abs=1e-12)
    assert low < metrics.srocc(pred, mos) < high
    assert metrics.bootstrap_ci("srocc", pred, mos, n_resamples=300, seed=1) == (low, high)


def test_drift(scores: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = scores
    candidate = pred + np.random.default_rng(2).normal(0, 0.01, pred.size)
    d = metrics.drift(candidate, pred, mos)
    assert d.max_abs_diff == pytest.approx(np.abs(candidate - pred).max())
    assert d.mean_abs_diff == pytest.approx(np.abs(candidate - pred).mean())
    assert d.rank_agreement == pytest.approx(stats.spearmanr(candidate, pred)[0])
    assert d.delta_srocc == pytest.approx(stats.spearmanr(candidate, mos)[0] - stats.spearmanr(pred, mos)[0])
    assert np.isnan(metrics.drift(candidate, pred).delta_srocc)
    same = metrics.drift(pred, pred, mos)
    assert same.max_abs_diff == 0 and same.delta_srocc == 0 and same.rank_agreement == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("pred", "mos"), [([1, 2, np.nan], [1, 2, 3]), ([1, 2, 3], [1, 2]), ([1, 2], [1, 2])]
)
def test_bad_inputs_raise(pred: list[float], mos: list[float]) -> None:
    with pytest.raises(ValueError):
        metrics.srocc(pred, mos)
