"""Bench metrics: the numbers in a report equal scipy's on the same scores; the sensitivity tau."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from edge_iqa.bench import sensitivity as sens
from edge_iqa.bench.accuracy import accuracy_record, drift_record
from edge_iqa.bench.suite import PYTORCH_EAGER
from tests.helpers_bench import synthetic_items, synthetic_report


def test_report_accuracy_matches_scipy() -> None:
    report = synthetic_report()
    mos = report["_mos"]
    rows = {row["id"]: row for row in report["rows"]}
    raw = {row["id"]: np.asarray(row["_scores"]) for row in report["_raw"] if "_scores" in row}
    for rid, scores in raw.items():
        acc = rows[rid]["accuracy"]
        assert acc["srocc"] == pytest.approx(stats.spearmanr(scores, mos).statistic, abs=1e-12)
        assert acc["plcc"] == pytest.approx(stats.pearsonr(scores, mos).statistic, abs=1e-12)
        assert acc["krcc"] == pytest.approx(stats.kendalltau(scores, mos).statistic, abs=1e-12)
        assert acc["rmse"] == pytest.approx(np.sqrt(np.mean((scores - mos) ** 2)), rel=1e-12)
        assert acc["n"] == len(mos)
        for name in ("srocc", "plcc", "krcc", "rmse"):
            low, high = acc["ci"][name]
            assert low <= acc[name] <= high
        drift = rows[rid]["drift"]
        ref = raw[PYTORCH_EAGER]
        assert drift["delta_srocc"] == pytest.approx(stats.spearmanr(scores, mos).statistic
                                                     - stats.spearmanr(ref, mos).statistic, abs=1e-12)
        assert drift["max_abs_diff"] == pytest.approx(np.abs(scores - ref).max())
        assert drift["mean_abs_diff"] == pytest.approx(np.abs(scores - ref).mean())
        assert drift["rank_agreement"] == pytest.approx(stats.spearmanr(scores, ref).statistic)
    # the speed-up is a ratio of batch-1 throughputs measured in the same run
    assert rows["onnxruntime/int8"]["speedup_vs_pytorch"] == pytest.approx(4.0)
    assert rows[PYTORCH_EAGER]["speedup_vs_pytorch"] == pytest.approx(1.0)
    assert rows["onnxruntime/int8"]["size_mb"] == pytest.approx(2.9)
    assert rows["cpu/int8"]["status"] == "error" and "accuracy" not in rows["cpu/int8"]


def test_logistic_plcc_is_at_least_as_good_as_raw_on_a_sigmoid() -> None:
    rng = np.random.default_rng(1)
    pred = rng.uniform(-4, 4, 200)
    mos = 100 / (1 + np.exp(-1.5 * pred)) + rng.normal(0, 2, 200)
    record = accuracy_record(pred, mos, n_resamples=200)
    assert record["plcc_logistic"] > record["plcc"]


def test_constant_scores_give_null_correlations_not_nan() -> None:
    record = accuracy_record(np.ones(10), np.arange(10.0))
    assert record["srocc"] is None and record["plcc"] is None
    assert drift_record(np.ones(10), np.arange(10.0), np.arange(10.0))["rank_agreement"] is None


def test_tau_by_type_is_the_mean_per_photo_kendall() -> None:
    items = synthetic_items()
    rng = np.random.default_rng(0)
    scores = rng.normal(size=len(items))
    taus = sens.tau_by_type(items, scores)
    for type_name in ("jpeg", "gaussian_blur"):
        per_photo = []
        for ref in ("a", "b"):
            idx = [i for i, it in enumerate(items) if it.type_name == type_name and it.reference == ref]
            per_photo.append(stats.kendalltau([items[i].level for i in idx], scores[idx]).statistic)
        assert taus[type_name] == pytest.approx(np.mean(per_photo))
    # a perfectly monotone model: -1; a constant one: 0 (no sensitivity), not NaN
    assert sens.tau_by_type(items, [-it.level for it in items]) == pytest.approx({"jpeg": -1.0, "gaussian_blur": -1.0})
    assert sens.tau_by_type(items, [0.0] * len(items)) == {"jpeg": 0.0, "gaussian_blur": 0.0}


def test_sensitivity_flags_only_moves_toward_zero_beyond_the_budget() -> None:
    reference = {"jpeg": -0.9, "gaussian_blur": -0.8, "brighten": 0.5, "darken": 0.0}
    row = {"jpeg": -0.6, "gaussian_blur": -1.0, "brighten": -0.1, "darken": 0.7}
    result = sens.compare(reference, row, budget=0.2)
    assert result["per_type"]["jpeg"]["toward_zero"] == pytest.approx(0.3)
    assert result["per_type"]["gaussian_blur"]["toward_zero"] == pytest.approx(-0.2)  # more sensitive: fine
    assert result["per_type"]["brighten"]["toward_zero"] == pytest.approx(0.6)  # crossed zero: counts in full
    assert sorted(result["flagged"]) == ["brighten", "jpeg"]
    assert sens.compare(reference, reference, 0.2)["flagged"] == []


def test_sensitivity_images_are_deterministic_and_cached(tmp_path) -> None:
    from tests.helpers_bench import sensitivity_spec

    spec = sensitivity_spec(count=1, types=("jpeg", "pixelate"))
    items = sens.prepare_images(spec, tmp_path)
    assert len(items) == 10 and all(item.path.is_file() for item in items)
    stamp = {item.path: item.path.stat().st_mtime_ns for item in items}
    again = sens.prepare_images(spec, tmp_path)
    assert [i.path for i in again] == [i.path for i in items]
    assert all(item.path.stat().st_mtime_ns == stamp[item.path] for item in again)
    assert sens.skip_reason(spec.__class__(references=tmp_path / "missing")) is not None
