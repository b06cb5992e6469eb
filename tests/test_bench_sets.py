"""Several evaluation sets in one suite (issue 19: CLIVE + the BIQ2021 Test split) and baselines that
belong to one suite: parsing and data-folder resolution, optional sets skipped with their reason,
per-set metrics computed from one score list, scores put on each set's MOS scale for RMSE, per-set
regression checks, and a baseline of another suite refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from edge_iqa import metrics
from edge_iqa.bench import regression
from edge_iqa.bench.dataset import EvalSet, load_eval_sets
from edge_iqa.bench.machine import describe_machine
from edge_iqa.bench.mos_scale import ScoreToMOS, mappings_of
from edge_iqa.bench.report import goals, to_markdown
from edge_iqa.bench.runner import finish_rows
from edge_iqa.bench.suite import PYTORCH_EAGER, Budgets, SuiteError, load_suite
from tests.helpers_bench import REFERENCES, write_labels

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
TWO_SETS = """
name = "two"
[[datasets]]
name = "first"
labels = "first/labels.csv"
[[datasets]]
name = "second"
folder_env = "EDGE_IQA_TEST_SECOND"
folder = "data/second"
labels = "test.csv"
optional = true
exclude_calibration = false
mos_mapping = "second/train"
role = "held out: reported, never used to select anything"
"""


def _labelled(folder: Path, count: int, scale: float = 100.0) -> Path:
    """``count`` copies of a shipped reference photo with MOS 0..scale (the bench only needs files)."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = sorted(REFERENCES.glob("*.webp"))[0]
    images = []
    for i in range(count):
        path = folder / f"img{i}.webp"
        path.write_bytes(photo.read_bytes())
        images.append(path)
    return write_labels(folder / "labels.csv", images, np.linspace(0, scale, count))


def _suite_file(tmp_path: Path, text: str = TWO_SETS) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_shipped_full_suite_scores_clive_and_the_biq2021_test_split_for_report_only() -> None:
    suite = load_suite(BENCH_DIR / "suite.toml")
    assert [d.name for d in suite.datasets] == ["clive", "biq2021-test"]
    assert suite.dataset.name == "clive" and not suite.dataset.optional
    biq = suite.datasets[1]
    assert biq.optional and biq.folder_env == "EDGE_IQA_BIQ2021" and biq.labels.name == "test.csv"
    assert not biq.exclude_calibration and biq.mos_mapping == "biq2021/train"
    assert "never used to select" in biq.role and "one-time" in biq.role
    assert "training images" in suite.dataset.role  # CLIVE: drift and speed, not generalisation
    quick = load_suite(BENCH_DIR / "suite_quick.toml")
    assert [d.name for d in quick.datasets] == ["clive"]  # the Test split is not scored by CI runs
    assert suite.default_baseline_path() == BENCH_DIR / "baselines" / "full.json"
    assert quick.default_baseline_path() == BENCH_DIR / "baselines" / "quick.json"


def test_folder_comes_from_the_environment_else_the_suite_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_IQA_TEST_SECOND", raising=False)
    suite = load_suite(_suite_file(tmp_path))
    assert suite.datasets[0].labels == tmp_path / "first" / "labels.csv"
    assert suite.datasets[1].labels == tmp_path / "data" / "second" / "test.csv"
    monkeypatch.setenv("EDGE_IQA_TEST_SECOND", str(tmp_path / "elsewhere"))
    assert load_suite(_suite_file(tmp_path)).datasets[1].labels == tmp_path / "elsewhere" / "test.csv"


def test_set_mistakes_are_reported(tmp_path: Path) -> None:
    for text, message in [
        ('[dataset]\nlabels = "a.csv"\n[[datasets]]\nlabels = "b.csv"', "not both"),
        ('[[datasets]]\nname = "a"\nlabels = "a.csv"\n[[datasets]]\nname = "a"\nlabels = "b.csv"', "unique"),
        ('[[datasets]]\nname = "a"\nlabel = "a.csv"', r"unknown \[\[datasets\]\] #1 keys label"),
    ]:
        with pytest.raises(SuiteError, match=message):
            load_suite(_suite_file(tmp_path, text))
    suite = load_suite(_suite_file(tmp_path))
    with pytest.raises(SuiteError, match="no evaluation set third"):
        suite.with_datasets(["third"])
    with pytest.raises(SuiteError, match="no evaluation set third"):
        suite.with_datasets(None, {"third": 3})
    picked = suite.with_datasets(["second"], {"second": 5})
    assert [(d.name, d.limit) for d in picked.datasets] == [("second", 5)]


def test_optional_set_without_data_is_skipped_with_the_reason(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_IQA_TEST_SECOND", str(tmp_path / "absent"))
    _labelled(tmp_path / "first", 6)
    suite = load_suite(_suite_file(tmp_path))
    sets, skipped = load_eval_sets(suite.datasets)
    assert [s.name for s in sets] == ["first"] and len(sets[0].paths) == 6
    assert [s.name for s in skipped] == ["second"]
    assert "$EDGE_IQA_TEST_SECOND" in skipped[0].reason and "test.csv" in skipped[0].reason
    assert skipped[0].record()["role"].startswith("held out")

    # Present but broken data stops the run (a skip would hide it); no set with data at all too.
    second = tmp_path / "absent"
    second.mkdir()
    (second / "test.csv").write_text("image,mos\nmissing.jpg,0.5\n")
    with pytest.raises(SuiteError, match="evaluation set 'second'"):
        load_eval_sets(load_suite(_suite_file(tmp_path)).datasets)
    (second / "test.csv").unlink()
    (tmp_path / "first" / "labels.csv").unlink()
    with pytest.raises(SuiteError, match="labels .* do not exist"):
        load_eval_sets(load_suite(_suite_file(tmp_path)).datasets)
    only_optional = load_suite(_suite_file(tmp_path)).with_datasets(["second"])
    with pytest.raises(SuiteError, match="no evaluation set has data on this machine: second"):
        load_eval_sets(only_optional.datasets)


def test_mappings_from_multi_dataset_and_single_dataset_checkpoints() -> None:
    multi = {"metadata": {"datasets": [
        {"name": "biq2021/train", "mos_scale": 0.8, "mos_offset": 0.1, "model_scale": 100.0, "model_offset": 0.0},
        {"name": "clive/labels", "mos_scale": 89.0, "mos_offset": 3.4, "model_scale": 100.0, "model_offset": 0.0}]}}
    mapped = mappings_of(multi)
    np.testing.assert_allclose(mapped["biq2021/train"].apply(np.array([0.0, 50.0, 100.0])), [0.1, 0.5, 0.9])
    np.testing.assert_allclose(mapped["clive/labels"].apply(np.array([100.0])), [92.4])
    installed = {"metadata": {"trained_on": multi["metadata"]["datasets"]}}  # install_default_weights' layout
    assert mappings_of(installed) == mapped
    legacy = {"metadata": {"trained_on": {"images": 930}, "config": {"data": "../shared/datasets/clive/labels.csv"}}}
    assert mappings_of(legacy) == {"clive/labels": ScoreToMOS("clive/labels")}
    assert mappings_of({"metadata": {"note": "untrained"}}) == {}


def _two_set_report(second_noise: float = 0.0) -> dict:
    """PyTorch + ORT INT8 rows scored on two sets (60 + 40 images) by the real finish_rows; the INT8
    row drifts only on the second set when ``second_noise`` > 0."""
    rng = np.random.default_rng(0)
    mos_a, mos_b = rng.uniform(0, 100, 60), rng.uniform(0, 1, 40)
    ref = np.concatenate([mos_a + rng.normal(0, 10, 60), mos_b * 100 + rng.normal(0, 10, 40)])
    int8 = ref + np.concatenate([rng.normal(0, 1e-4, 60), rng.normal(0, second_noise, 40) if second_noise
                                 else rng.normal(0, 1e-4, 40)])
    sets = [EvalSet([Path(f"a{i}.jpg") for i in range(60)], mos_a, "a/labels.csv", 60, 0, "first", "",
                    "first/labels"),
            EvalSet([Path(f"b{i}.jpg") for i in range(40)], mos_b, "b/test.csv", 40, 0, "second", "held out",
                    "second/train")]
    suite = load_suite().with_overrides(name="two", bootstrap_resamples=50)
    speed = {"throughput": {"1": {"images_per_s": 10.0}}, "latency_bs1": {"p50_ms": 100.0}}
    raw = [{"id": rid, "kind": "pytorch", "target": rid.split("/")[0], "precision": rid.split("/")[1], "status": "ok",
            "info": {"size_bytes": 1}, "speed": copy.deepcopy(speed), "_scores": scores.tolist(),
            "_sensitivity_scores": []}
           for rid, scores in ((PYTORCH_EAGER, ref), ("onnxruntime/int8", int8))]
    # The first set's model scores are its MOS (identity); the second's are 100 x its MOS.
    mappings = {"first/labels": ScoreToMOS("first/labels"), "second/train": ScoreToMOS("second/train", 0.01, 0.0)}
    rows = finish_rows(raw, sets, [], suite, mappings)
    return {"suite": suite.to_dict(), "suite_fingerprint": suite.fingerprint(), "machine": describe_machine(),
            "dataset": sets[0].record(), "datasets": {s.name: s.record() for s in sets}, "rows": rows,
            "_scores": (ref, int8), "_mos": (mos_a, mos_b)}


def test_each_set_gets_its_own_metrics_from_one_score_list() -> None:
    report = _two_set_report()
    (ref, _), (mos_a, mos_b) = report["_scores"], report["_mos"]
    pytorch = report["rows"][0]
    assert set(pytorch["datasets"]) == {"first", "second"}
    assert pytorch["accuracy"] is pytorch["datasets"]["first"]["accuracy"]  # the primary set, as before
    assert pytorch["datasets"]["first"]["accuracy"]["srocc"] == pytest.approx(metrics.srocc(ref[:60], mos_a))
    assert pytorch["datasets"]["second"]["accuracy"]["srocc"] == pytest.approx(metrics.srocc(ref[60:], mos_b))
    # RMSE on each set's own MOS scale: the second set's scores are mapped 0..100 -> 0..1.
    assert pytorch["datasets"]["second"]["accuracy"]["rmse"] == pytest.approx(metrics.rmse(ref[60:] / 100, mos_b))
    assert pytorch["datasets"]["second"]["accuracy"]["mos_mapping"]["name"] == "second/train"

    # A checkpoint without the set's mapping: correlations stay, RMSE across two scales is not reported.
    sets = [EvalSet([Path("x.jpg")] * 5, np.linspace(0, 1, 5), "b/test.csv", 5, 0, "second", "", "second/train")]
    row = {"id": PYTORCH_EAGER, "status": "ok", "info": {}, "_scores": [1.0, 2.0, 3.0, 5.0, 4.0],
           "_sensitivity_scores": []}
    accuracy = finish_rows([row], sets, [], load_suite().with_overrides(bootstrap_resamples=20), {})[0]["accuracy"]
    assert accuracy["rmse"] is None and "no 'second/train' mapping" in accuracy["rmse_note"]
    assert accuracy["srocc"] == pytest.approx(0.9) and "rmse" not in accuracy["ci"]


def test_drift_on_the_second_set_fails_its_own_check_and_shows_in_the_report() -> None:
    clean, drifting = _two_set_report(), _two_set_report(second_noise=8.0)
    checks = regression.check_report(drifting, None, Budgets())
    by_name = {(c.row, c.check): c.status for c in checks}
    assert by_name[("onnxruntime/int8", "delta_srocc")] == "pass"  # the primary set is clean
    assert by_name[("onnxruntime/int8", "score_error@second")] == "fail"
    assert by_name[("pytorch/fp32", "delta_srocc@second")] == "skip"
    assert regression.failures(regression.check_report(clean, None, Budgets())) == []

    baseline = regression.baseline_from_report(clean)
    assert baseline["rows"]["onnxruntime/int8"]["datasets"]["second"]["srocc"] == \
        clean["rows"][1]["datasets"]["second"]["accuracy"]["srocc"]
    baseline["rows"]["onnxruntime/int8"]["datasets"]["second"]["srocc"] += 0.05
    assert ("onnxruntime/int8", "srocc@second") in {
        (c.row, c.check) for c in regression.failures(regression.check_report(clean, baseline, Budgets()))}
    baseline["datasets"]["second"]["image_list_sha256"] = "other"
    skipped = next(c for c in regression.check_report(clean, baseline, Budgets())
                   if c.check == "srocc@second" and c.row == "onnxruntime/int8")
    assert skipped.status == "skip" and "other images" in skipped.message

    text = to_markdown({**drifting, "created": "now", "weights": {"checkpoint": "embedded"},
                        "sensitivity": {"types": [], "skipped": "off"},
                        "dataset": {**drifting["dataset"], "excluded_calibration_images": 0}})
    assert "## Evaluation sets" in text and "held out" in text
    assert "Accuracy vs MOS on `second`" in text
    goal = next(g for g in goals(drifting) if g["goal"].endswith("on second"))
    assert goal["row"] == "cpu/int8" and goal["met"] is None  # no cpu/int8 row in this report


def test_a_baseline_of_another_suite_is_refused() -> None:
    report = _two_set_report()
    baseline = regression.baseline_from_report(report)
    assert baseline["suite"] == "two" and baseline["suite_fingerprint"] == report["suite_fingerprint"]
    regression.ensure_same_suite(report, baseline, "b.json")  # the same suite: accepted

    suite = load_suite()
    assert suite.fingerprint() == suite.with_overrides(rows=suite.rows[:1], checkpoint=Path("x")).fingerprint()
    for changed in (suite.with_overrides(**{"dataset.limit": 20}), suite.with_overrides(threads=1),
                    suite.with_overrides(**{"speed.repeats": 1}), suite.with_datasets(["clive"]),
                    suite.with_overrides(name="other")):
        assert changed.fingerprint() != suite.fingerprint()

    quick = {**baseline, "suite": "quick", "suite_fingerprint": "0123"}
    with pytest.raises(regression.BaselineMismatch, match=r"written by suite 'quick' .* --update-baseline"):
        regression.ensure_same_suite(report, quick, "bench/baselines/quick.json")
    legacy = {k: v for k, v in baseline.items() if k != "suite_fingerprint"}
    with pytest.raises(regression.BaselineMismatch, match="before baselines recorded"):
        regression.ensure_same_suite(report, legacy, "bench/baseline.json")


def test_committed_quick_baseline_belongs_to_the_quick_suite() -> None:
    baseline = regression.read_baseline(BENCH_DIR / "baselines" / "quick.json")
    quick = load_suite(BENCH_DIR / "suite_quick.toml")
    regression.ensure_same_suite({"suite": quick.to_dict(), "suite_fingerprint": quick.fingerprint()},
                                 baseline, "quick.json")
    full = load_suite(BENCH_DIR / "suite.toml")
    with pytest.raises(regression.BaselineMismatch):
        regression.ensure_same_suite({"suite": full.to_dict(), "suite_fingerprint": full.fingerprint()},
                                     baseline, "quick.json")


def test_the_test_split_is_scored_once_per_model(tmp_path: Path) -> None:
    from edge_iqa.bench import once

    weights = once.embedded_weights_sha256()
    scored = {"weights": {"sha256": weights}, "datasets": {"biq2021-test": {"images": 2000}}}
    assert once.already_scored(scored, "biq2021-test", weights)
    assert not once.already_scored(scored, "biq2021-test", "other-weights")  # new weights: score them
    assert not once.already_scored({**scored, "datasets": {"biq2021-test": {"skipped": "absent"}}},
                                   "biq2021-test", weights)
    report = tmp_path / "report.json"
    assert once.main([str(report), "biq2021-test"]) == 0  # no report yet
    report.write_text(json.dumps(scored))
    assert once.main([str(report), "biq2021-test"]) == 1
    assert once.main([str(report), "clive"]) == 0
