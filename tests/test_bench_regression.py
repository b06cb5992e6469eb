"""Regression check against a baseline: pass, fail, noise within budget, machine mismatch, JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from edge_iqa.bench import regression
from edge_iqa.bench.suite import Budgets
from tests.helpers_bench import synthetic_report

BUDGETS = Budgets(delta_srocc=0.005, srocc_drop=0.01, throughput_drop=0.10, latency_rise=0.15, sensitivity_tau=0.2)


def _status(results: list[regression.CheckResult], row: str, check: str) -> str:
    return next(r.status for r in results if r.row == row and r.check == check)


def _scale_speed(report: dict, row_id: str, factor: float) -> None:
    row = next(r for r in report["rows"] if r["id"] == row_id)
    row["speed"]["throughput"]["1"]["images_per_s"] *= factor
    row["speed"]["latency_bs1"]["p50_ms"] /= factor


def test_same_run_passes_against_its_own_baseline() -> None:
    report = synthetic_report(int8_noise=1e-5, error_row=False)
    baseline = regression.baseline_from_report(report)
    results = regression.check_report(report, baseline, BUDGETS)
    assert regression.failures(results) == []
    assert _status(results, "onnxruntime/int8", "throughput") == "pass"
    assert _status(results, "pytorch/fp32", "delta_srocc") == "skip"  # the reference itself
    assert len(results) == 3 * 7  # one per row x check


def test_noise_within_budget_passes_and_a_real_drop_fails() -> None:
    report = synthetic_report(int8_noise=1e-5, error_row=False)
    baseline = regression.baseline_from_report(report)
    _scale_speed(report, "onnxruntime/int8", 0.95)  # 5% slower: noise, within the 10% budget
    assert regression.failures(regression.check_report(report, baseline, BUDGETS)) == []
    _scale_speed(report, "onnxruntime/int8", 0.8 / 0.95)  # 20% slower than the baseline
    failed = {(r.row, r.check) for r in regression.failures(regression.check_report(report, baseline, BUDGETS))}
    assert failed == {("onnxruntime/int8", "throughput"), ("onnxruntime/int8", "latency_p50")}


def test_other_machine_skips_speed_but_still_checks_accuracy() -> None:
    report = synthetic_report(int8_noise=1e-5, error_row=False)
    baseline = regression.baseline_from_report(report)
    baseline["machine"]["fingerprint"] = "another-machine"
    _scale_speed(report, "onnxruntime/int8", 0.5)
    results = regression.check_report(report, baseline, BUDGETS)
    assert regression.failures(results) == []
    assert _status(results, "onnxruntime/int8", "throughput") == "skip"
    assert "differs" in next(r.message for r in results if r.check == "throughput")
    baseline["rows"]["onnxruntime/int8"]["srocc"] += 0.05  # the baseline was clearly better
    assert _status(regression.check_report(report, baseline, BUDGETS), "onnxruntime/int8", "srocc") == "fail"


def test_drift_beyond_budget_and_blind_distortion_fail_without_a_baseline() -> None:
    report = synthetic_report(int8_noise=0.2, int8_blind_to="jpeg", error_row=False)
    results = regression.check_report(report, None, BUDGETS)
    failed = {(r.row, r.check) for r in regression.failures(results)}
    assert ("onnxruntime/int8", "delta_srocc") in failed
    assert ("onnxruntime/int8", "sensitivity") in failed
    assert "jpeg" in next(r.message for r in results if r.check == "sensitivity" and r.status == "fail")
    assert ("onnxruntime/fp32", "delta_srocc") not in failed
    assert _status(results, "onnxruntime/int8", "srocc") == "skip"  # needs a baseline


def test_one_photo_moved_too_far_fails_the_score_error_check(tmp_path) -> None:
    """SROCC barely notices one photo moving 5 MOS points; the per-photo check does."""
    report = synthetic_report(int8_noise=1e-5, error_row=False)
    assert _status(regression.check_report(report, None, BUDGETS), "onnxruntime/int8", "score_error") == "pass"
    row = next(r for r in report["rows"] if r["id"] == "onnxruntime/int8")
    row["drift"]["max_abs_diff"], row["drift"]["p99_abs_diff"] = 5.0, 1.5
    results = regression.check_report(report, None, BUDGETS)
    check = next(r for r in results if r.row == "onnxruntime/int8" and r.check == "score_error")
    assert check.status == "fail" and "max 5.00 (budget 4)" in check.message and check.value == 5.0 / 4.0
    assert _status(results, "onnxruntime/int8", "delta_srocc") == "pass"
    assert _status(results, "pytorch/fp32", "score_error") == "skip"
    junit = ET.tostring(ET.parse(regression.write_junit(results, tmp_path / "junit.xml")).getroot(), "unicode")
    assert 'name="score_error"' in junit and "max 5.00" in junit


def test_error_row_fails_unless_the_baseline_errored_too() -> None:
    report = synthetic_report(int8_noise=1e-5)
    assert _status(regression.check_report(report, None, BUDGETS), "cpu/int8", "status") == "fail"
    baseline = regression.baseline_from_report(report)  # the baseline has the same error
    results = regression.check_report(report, baseline, BUDGETS)
    assert _status(results, "cpu/int8", "status") == "skip"
    ok_report = synthetic_report(int8_noise=1e-5, error_row=False)
    good_baseline = regression.baseline_from_report(ok_report)
    good_baseline["rows"]["cpu/int8"] = {**good_baseline["rows"]["onnxruntime/int8"]}
    assert _status(regression.check_report(report, good_baseline, BUDGETS), "cpu/int8", "status") == "fail"


def test_junit_parses_and_counts_failures(tmp_path) -> None:
    report = synthetic_report(int8_noise=0.2, int8_blind_to="jpeg")
    results = regression.check_report(report, None, BUDGETS)
    path = regression.write_junit(results, tmp_path / "junit.xml", "edge-iqa-bench.test")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(results) == int(suite.get("tests"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == int(suite.get("failures")) == len(regression.failures(results)) >= 3
    assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases)
    names = {(c.get("classname"), c.get("name")) for c in failures}
    assert ("edge_iqa.bench.cpu/int8", "status") in names


def test_baseline_round_trip(tmp_path) -> None:
    report = synthetic_report(error_row=False)
    path = regression.write_baseline(report, tmp_path / "baseline.json")
    loaded = regression.read_baseline(path)
    assert loaded["machine"]["fingerprint"] == report["machine"]["fingerprint"]
    assert loaded["rows"]["onnxruntime/int8"]["images_per_s_bs1"] == pytest.approx(40.0)
    (tmp_path / "bad.json").write_text('{"schema": "something-else"}')
    with pytest.raises(ValueError, match="update-baseline"):
        regression.read_baseline(tmp_path / "bad.json")


def test_srocc_is_compared_only_on_the_same_images() -> None:
    report = synthetic_report(int8_noise=1e-5, error_row=False)
    baseline = regression.baseline_from_report(report)
    baseline["rows"]["onnxruntime/int8"]["srocc"] += 0.05
    assert _status(regression.check_report(report, baseline, BUDGETS), "onnxruntime/int8", "srocc") == "fail"
    baseline["dataset"]["image_list_sha256"] = "other-images"
    results = regression.check_report(report, baseline, BUDGETS)
    assert _status(results, "onnxruntime/int8", "srocc") == "skip"
    assert "other images" in next(r.message for r in results if r.check == "srocc" and r.row == "onnxruntime/int8")
