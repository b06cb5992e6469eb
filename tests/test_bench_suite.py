"""Suite files: the shipped ones parse, paths are relative to the file, mistakes are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_iqa.bench.runner import plan_rows
from edge_iqa.bench.suite import SuiteError, default_suite_path, load_suite

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("name", ["suite.toml", "suite_quick.toml"])
def test_shipped_suites(name: str) -> None:
    suite = load_suite(BENCH_DIR / name)
    assert suite.model == "edge_hybrid_n"
    assert sorted(r.row_id for r in suite.rows) == ["cpu/fp16", "cpu/fp32", "cpu/int8",
                                                    "onnxruntime/fp16", "onnxruntime/fp32", "onnxruntime/int8"]
    assert suite.dataset.exclude_calibration
    assert suite.dataset.labels == BENCH_DIR / "../../shared/datasets/clive/labels.csv"
    assert suite.sensitivity.references == BENCH_DIR / "references"
    assert len(list(suite.sensitivity.references.glob("*.webp"))) >= suite.sensitivity.count
    plans = [p.row_id for p in plan_rows(suite)]
    assert plans[0] == "pytorch/fp32" and plans[-1] == "pytorch-compile/fp32"  # compile last: it may be slow
    assert default_suite_path().resolve() == (BENCH_DIR / "suite.toml").resolve()


def test_overrides_and_errors(tmp_path: Path) -> None:
    suite = load_suite().with_overrides(**{"dataset.limit": 8, "speed.repeats": 1, "threads": None})
    assert suite.dataset.limit == 8 and suite.speed.repeats == 1 and suite.threads == 2
    bad = tmp_path / "bad.toml"
    for text, message in [
        ('colour = "red"', "unknown keys colour"),
        ('[speed]\nrepeat = 3', "unknown \\[speed\\] keys repeat"),
        ('[[rows]]\ntarget = "cpu"\nprecisions = ["int4"]', "unknown precision"),
        ('[[rows]]\ntarget = "cpu"\nbundle = "b"', "exactly one 'precision'"),
        ('[speed]\nbatch_sizes = [4, 16]', "batch size 1"),
        ("rows = [", "not valid TOML"),
    ]:
        bad.write_text(text)
        with pytest.raises(SuiteError, match=message):
            load_suite(bad)
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "missing.toml")


def test_evaluation_set_excludes_the_calibration_images() -> None:
    from edge_iqa.bench.dataset import load_eval_set
    from edge_iqa.calibration_data import calibration_clive_names

    suite = load_suite()
    if suite.dataset.labels is None or not suite.dataset.labels.is_file():
        pytest.skip("../shared/datasets/clive is not beside the checkout")
    full = load_eval_set(suite.dataset)
    names = calibration_clive_names()
    assert full.excluded_calibration == len(names) == 256
    assert len(full.paths) == full.total - 256
    assert not {p.name for p in full.paths} & names
    sample = load_eval_set(suite.with_overrides(**{"dataset.limit": 20}).dataset)
    assert len(sample.paths) == 20 and set(sample.paths) <= set(full.paths)
    assert sample.image_list_sha256() == load_eval_set(suite.with_overrides(**{"dataset.limit": 20}).dataset
                                                       ).image_list_sha256()
