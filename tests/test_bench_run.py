"""End to end on tiny real bundles: ``edge-iqa bench`` survives failing rows, writes the report,
and fails the regression check for a deliberately degraded bundle (head weights ruined)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge_iqa.bench.degrade import degrade_head, head_weights
from edge_iqa.cli import app
from edge_iqa.runtime import load
from tests.helpers_bench import REFERENCES, tiny_suite_images, write_labels
from tests.helpers_runtime import TinyNet, build_bundle

pytest.importorskip("onnxruntime")


def _suite(tmp_path: Path, labels: Path, good: Path) -> Path:
    text = f"""
name = "tiny"
pytorch_eager = false
pytorch_compile = false
threads = 1
bootstrap_resamples = 200
[[rows]]
target = "onnxruntime"
precision = "int8"
bundle = "{good}"
[[rows]]
target = "cpu"
precision = "fp32"
bundle = "{tmp_path / 'no-such-bundle'}"
[[rows]]
target = "no_such_target"
precision = "fp32"
[[datasets]]
name = "tiny"
labels = "{labels}"
[[datasets]]
name = "half"
labels = "{labels.parent / 'half.csv'}"
[[datasets]]
name = "absent"
labels = "{tmp_path / 'no-such-folder' / 'test.csv'}"
optional = true
[speed]
warmup = 1
iterations = 3
repeats = 2
batch_sizes = [1, 4]
sweep_images = 4
concurrency = [1, 2]
concurrent_images = 2
[sensitivity]
references = "{REFERENCES}"
count = 1
types = ["jpeg"]
[budgets]
throughput_drop = 0.99    # a tiny net's sub-millisecond timings on a shared machine are noise:
latency_rise = 100.0      # these tests are about accuracy and the baseline, not speed
"""
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bench_run")
    good = build_bundle(tmp / "good", TinyNet.random(3))
    images = tiny_suite_images(tmp / "images")
    # MOS that the good bundle reproduces exactly (SROCC 1): any damage to it can only show.
    mos = load(good, threads=1).score(images)
    labels = write_labels(tmp / "images" / "labels.csv", images, mos)
    write_labels(tmp / "images" / "half.csv", images[::2], -mos[::2])  # a second set: MOS reversed (SROCC -1)
    return {"tmp": tmp, "good": good, "labels": labels, "suite": _suite(tmp, labels, good)}


def test_failing_rows_become_error_rows_and_the_report_is_written(setup: dict[str, Path]) -> None:
    tmp = setup["tmp"]
    result = CliRunner().invoke(app, ["bench", "--suite", str(setup["suite"]), "--out", str(tmp / "report"),
                                      "--work-dir", str(tmp / "work"), "--update-baseline",
                                      "--baseline", str(tmp / "baseline.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp / "report" / "report.json").read_text())
    rows = {row["id"]: row for row in report["rows"]}
    assert rows["onnxruntime/int8"]["status"] == "ok"
    assert rows["onnxruntime/int8"]["accuracy"]["srocc"] == pytest.approx(1.0)
    assert rows["onnxruntime/int8"]["accuracy"]["n"] == len(list((tmp / "images").glob("*.png")))
    # Each set scored from the one score list: the second set's MOS are reversed, the third is absent.
    half = rows["onnxruntime/int8"]["datasets"]["half"]["accuracy"]
    assert half["srocc"] == pytest.approx(-1.0)
    assert half["n"] == (rows["onnxruntime/int8"]["accuracy"]["n"] + 1) // 2
    assert report["datasets"]["absent"]["skipped"].startswith("label file")
    assert "absent | skipped" in (tmp / "report" / "report.md").read_text()
    assert rows["onnxruntime/int8"]["memory"]["peak_rss_mb_speed"] > 10
    assert rows["onnxruntime/int8"]["speed"]["latency_bs1"]["p50_ms"] > 0
    assert set(rows["onnxruntime/int8"]["speed"]["concurrency"]) == {"1", "2"}
    assert rows["cpu/fp32"]["status"] == "error" and rows["cpu/fp32"]["stage"] == "run"
    assert "BundleError" in rows["cpu/fp32"]["error"]
    assert rows["no_such_target/fp32"]["status"] == "error" and rows["no_such_target/fp32"]["stage"] == "export"
    assert "error: TargetError" in (tmp / "report" / "report.md").read_text()
    baseline = json.loads((tmp / "baseline.json").read_text())
    assert baseline["rows"]["onnxruntime/int8"]["srocc"] == pytest.approx(1.0)


def test_degraded_bundle_fails_the_regression_check(setup: dict[str, Path]) -> None:
    tmp = setup["tmp"]
    if not (tmp / "baseline.json").is_file():
        pytest.skip("needs the baseline written by the previous test")
    bad = degrade_head(setup["good"], tmp / "degraded", layers=2)  # the tiny net: Conv + Gemm
    import onnx

    assert head_weights(onnx.load(str(bad / "model.onnx")), 2) == ["fc_w", "conv_w"]
    junit = tmp / "junit.xml"
    args = ["bench", "--suite", str(setup["suite"]), "--out", str(tmp / "report-bad"), "--work-dir",
            str(tmp / "work"), "--rows", "onnxruntime/int8", "--baseline", str(tmp / "baseline.json"),
            "--junit", str(junit)]
    result = CliRunner().invoke(app, [*args, "--bundle", f"onnxruntime/int8={bad}"])
    assert result.exit_code == 1, result.output
    assert "REGRESSION onnxruntime/int8::srocc" in result.output
    cases = ET.parse(junit).getroot().iter("testcase")
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert ("edge_iqa.bench.onnxruntime/int8", "srocc") in failed
    scores_bad = load(bad, threads=1).score(sorted((tmp / "images").glob("*.png")))
    assert not np.allclose(scores_bad, load(setup["good"], threads=1).score(sorted((tmp / "images").glob("*.png"))))


def test_the_suite_keeps_its_own_baseline_and_refuses_another_suites(setup: dict[str, Path]) -> None:
    tmp = setup["tmp"]
    own = setup["suite"].parent / "baselines" / "tiny.json"  # the suite's default baseline
    base = ["bench", "--suite", str(setup["suite"]), "--work-dir", str(tmp / "work"), "--rows", "onnxruntime/int8",
            "--no-sensitivity"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp / "report-own"), "--update-baseline"])
    assert result.exit_code == 0, result.output
    assert json.loads(own.read_text())["suite"] == "tiny"
    result = CliRunner().invoke(app, [*base, "--out", str(tmp / "report-check")])
    assert result.exit_code == 0, result.output  # checked against its own baseline without --baseline
    assert json.loads((tmp / "report-check" / "report.json").read_text())["regression"]["baseline"] == str(own)
    # The same suite with another sample is another suite: refused before anything runs.
    result = CliRunner().invoke(app, [*base, "--out", str(tmp / "report-other"), "--set-limit", "tiny=5"])
    assert result.exit_code == 2 and "fingerprint" in result.output
    assert not (tmp / "report-other").exists()
