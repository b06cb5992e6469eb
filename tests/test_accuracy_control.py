"""INT8 within an accuracy budget: blocks by module path, the sensitivity + give-back loop, Q/DQ
stripping, the never-overlapping splits, the too-tight failure (nothing written) and the manifest
record of an over-budget export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_iqa.errors import AccuracyBudgetError, TargetError
from edge_iqa.export import accuracy_control, calibration, pipeline
from edge_iqa.export.accuracy_budget import AccuracyBudget, srocc_resolution
from edge_iqa.export.accuracy_control import Validation, block_nodes, search, strip_qdq
from edge_iqa.export.calibration import PreparedImages
from edge_iqa.export.graph_scopes import nodes_matching
from edge_iqa.export.parity import raw_scores
from edge_iqa.export.targets import load_target
from tests.export_helpers import (
    FINE_TUNED_TARGETS,
    INPUT_SIZE,
    MODEL,
    SHARED,
    artifact_scorer,
    dev_model,
    exported,
    first_blocks_only,
)

FORM = "onnx_attention"


def tiny_profile(tmp_path: Path, parent: str, budget: float, max_score_error: float | None = None,
                 **quant: int) -> Path:
    """A user profile inheriting a shipped one: small input, few calibration/validation images (and the
    fine-tuning of cpu and onnxruntime off: the search's mechanics are the same on the post-training
    network, and tests/test_qat*.py run the search on fine-tuned ones)."""
    if parent in FINE_TUNED_TARGETS:
        quant.setdefault("qat_steps", 0)
    extra = "".join(f"{k} = {v}\n" for k, v in quant.items())
    score = f"max_score_error = {max_score_error}\n" if max_score_error else ""
    path = tmp_path / f"tiny-{parent}.toml"
    path.write_text(f'inherits = "{parent}"\nname = "tiny-{parent}"\nprecision = "int8"\n'
                    f'attention_form = "{FORM}"\ninput_size = [{INPUT_SIZE[0]}, {INPUT_SIZE[1]}]\n'
                    f"accuracy_budget = {budget}\n{score}"
                    f"[quantization]\ncalibration_samples = 8\nsensitivity_images = 6\n{extra}"
                    "[parity]\nimages = 8\naccuracy_images = 16\n")
    return path


@pytest.fixture
def cached_graph(monkeypatch):
    """The pipeline's ONNX export replaced by the process-cached trace of the same dev model."""
    monkeypatch.setattr(pipeline, "export_onnx", lambda *a, **k: exported(FORM))


# --- blocks -----------------------------------------------------------------------------------------
def test_blocks_are_tens_of_module_paths() -> None:
    model = onnx.load(str(exported(FORM).path))
    static = set(nodes_matching(model, ("head", "backbone.0")))
    blocks = block_nodes(model, static)
    assert 15 <= len(blocks) <= 60, sorted(blocks)
    assert "backbone.3" in blocks and "head" not in blocks and "backbone.0" not in blocks
    assert not any(name == "backbone" for name in blocks)  # the 50-conv backbone is split into stages
    compute = {n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")}
    in_blocks = {n for nodes in blocks.values() for n in nodes}
    assert compute <= in_blocks | static  # every quantizable layer is searchable or kept by keep_fp
    assert not in_blocks & static


# --- the loop, on synthetic scores ------------------------------------------------------------------
class SyntheticScorer:
    """Stands in for a loaded candidate in the search's unit tests: ``score_tensor`` of image rows
    whose value is the image's index -> ``scores[index]``."""

    needs_depth = False

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score_tensor(self, batch: np.ndarray, depth: np.ndarray | None = None, *, raw: bool = False) -> np.ndarray:
        assert raw and depth is None
        return self.scores[batch.reshape(-1).astype(int)]

    def close(self) -> None:
        pass

    def __enter__(self) -> SyntheticScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def indexed_images(n: int) -> PreparedImages:
    return PreparedImages(("image",), tuple((np.full((1, 1), i, np.float32),) for i in range(n)))


def _synthetic(harm: dict[str, float], n: int = 40, seed: int = 0):
    """Scores whose drift from the reference is the sum of the still-quantized blocks' harm."""
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=n)
    mos = reference + 0.3 * rng.normal(size=n)
    noise = {b: rng.normal(size=n) for b in harm}
    validation = Validation(indexed_images(n), reference, mos)

    def runner_for(path: Path):
        kept = set(path.name.split("+")) - {""}
        return SyntheticScorer(reference + sum(harm[b] * noise[b] for b in harm if b not in kept))

    blocks = {b: [b] for b in harm}
    return validation, runner_for, blocks


def test_search_gives_back_the_most_harmful_block_first() -> None:
    validation, runner_for, blocks = _synthetic({"stem": 0.02, "attn": 1.5, "mlp": 0.05})
    full = Path("full")
    result = search(blocks, lambda nodes: Path("+".join(nodes)), runner_for, validation, AccuracyBudget(0.01),
                    full_int8=full, sensitivity_images=20, max_kept_blocks=3)
    assert result.sensitivity[0]["block"] == "attn" and result.sensitivity[0]["gain_rank_agreement"] > 0
    assert result.kept_blocks[0] == "attn" and result.within_budget
    assert result.steps[-1]["delta_srocc"] is not None and abs(result.steps[-1]["delta_srocc"]) <= 0.01
    assert {r["block"] for r in result.sensitivity} == set(blocks)
    assert result.step_artifacts[0] == full and len(result.step_artifacts) == len(result.kept_blocks) + 1


def test_search_stops_at_the_cap_and_says_so() -> None:
    validation, runner_for, blocks = _synthetic({"a": 1.0, "b": 1.0, "c": 1.0})
    result = search(blocks, lambda nodes: Path("+".join(nodes)), runner_for, validation, AccuracyBudget(1e-9),
                    full_int8=Path("full"), sensitivity_images=10, max_kept_blocks=1)
    assert not result.within_budget and len(result.kept_blocks) <= 1
    assert result.stopped_because


def test_per_photo_budget_drives_the_search() -> None:
    """One block moves a single photo a lot (max |dscore|) but barely changes the ranking; the other
    adds small noise everywhere. SROCC alone keeps both; the per-photo budget gives back the spike."""
    n = 40
    rng = np.random.default_rng(1)
    reference = np.linspace(0.0, 1.0, n)
    mos = reference + 0.05 * rng.normal(size=n)
    spike = np.zeros(n)
    spike[7] = 0.08  # 0.08 raw = 8 MOS points at scale 100
    noise = 0.004 * rng.normal(size=n)
    harm = {"spike": spike, "noise": noise}
    validation = Validation(indexed_images(n), reference, mos)

    def runner_for(path: Path):
        kept = set(path.name.split("+")) - {""}
        return SyntheticScorer(reference + sum(v for b, v in harm.items() if b not in kept))

    blocks = {b: [b] for b in harm}
    srocc_only = AccuracyBudget(0.05, score_scale=100.0)
    assert srocc_only.within(validation.measure(runner_for(Path("full"))))
    budget = AccuracyBudget(0.05, max_score_error=2.0, p99_score_error=2.0, score_scale=100.0)
    full = validation.measure(runner_for(Path("full")))
    assert budget.score_errors(full)["max_abs_dscore"] == pytest.approx(8.0, abs=0.5)
    assert budget.over(full) and "max |dscore|" in budget.over(full)[0]
    result = search(blocks, lambda nodes: Path("+".join(nodes)), runner_for, validation, budget,
                    full_int8=Path("full"), sensitivity_images=10, max_kept_blocks=2)
    assert result.sensitivity_subset == "worst photos of full INT8"
    assert result.sensitivity[0]["block"] == "spike" and result.kept_blocks == ["spike"] and result.within_budget
    assert result.steps[-1]["max_abs_dscore"] <= 2.0


def test_srocc_resolution_is_the_paired_bootstrap_error() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=128)
    mos = reference + 0.5 * rng.normal(size=128)
    identical = srocc_resolution(reference, reference, mos)
    slightly = srocc_resolution(reference + 0.01 * rng.normal(size=128), reference, mos)
    noisy = srocc_resolution(reference + 0.3 * rng.normal(size=128), reference, mos)
    assert identical == 0.0 and 0 < slightly < noisy < 0.1
    # Fewer photos resolve less.
    assert srocc_resolution(reference[:32] + 0.3 * rng.normal(size=32), reference[:32], mos[:32]) > noisy / 2


# --- Q/DQ stripping (TensorRT candidates) -------------------------------------------------------------
def test_strip_qdq_puts_the_block_back_in_float(tmp_path) -> None:
    """On modelopt's explicit Q/DQ graph (float weights behind Q/DQ too), as the jetson search uses it."""
    pytest.importorskip("modelopt")
    from edge_iqa.export.quantize_modelopt import quantize_int8_qdq

    spec = dev_model_spec()
    rows = calibration.split(4, 0, 2).calibration
    crops = spec.normalize_pixels(calibration.prepare_images(rows, spec).rows())  # the float graph's rows
    graph_path = exported("matmul_softmax").path
    qdq = tmp_path / "qdq.onnx"
    quantize_int8_qdq(graph_path, qdq, {"image": crops}, method="minmax")
    nodes = block_nodes(onnx.load(str(graph_path)))["backbone.3"]
    out = strip_qdq(qdq, nodes, tmp_path / "stripped" / "model.onnx")
    graph = onnx.load(str(out)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    convs = [n for n in graph.node if n.name in set(nodes) and n.op_type == "Conv"]
    assert len(convs) == 3 and all(producer.get(i) != "DequantizeLinear" for n in convs for i in n.input)
    others = [n for n in graph.node if n.op_type == "Conv" and n.name not in set(nodes)]
    assert all(producer.get(n.input[0]) == "DequantizeLinear" for n in others)  # the rest stays INT8
    before = sum(n.op_type == "DequantizeLinear" for n in onnx.load(str(qdq)).graph.node)
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) < before
    two = calibration.prepare_images(rows, spec)
    scores = raw_scores(artifact_scorer(out, tmp_path / "loaded-stripped", precision="int8"), two)
    full = raw_scores(artifact_scorer(qdq, tmp_path / "loaded-full", precision="int8"), two)
    assert np.isfinite(scores).all() and not np.array_equal(scores, full)


def dev_model_spec():
    from tests.export_helpers import dev_spec

    return dev_spec()


# --- splits -----------------------------------------------------------------------------------------
def test_calibration_validation_and_evaluation_never_overlap() -> None:
    split = calibration.split(128, 0, 128)
    calib = {r.original_name for r in split.calibration}
    valid = {r.original_name for r in split.validation}
    assert len(valid) == 128 and not calib & valid
    shipped = {r.original_name for r in calibration.read_manifest()}
    assert calib | valid <= shipped
    # Too few held out: the parity images top up from calibration, validation never does.
    crowded = calibration.split(250, 0, 32)
    assert crowded.evaluation_overlaps_calibration and len(crowded.validation) == 6
    assert not {r.file for r in crowded.validation} & {r.file for r in crowded.calibration}
    labels = SHARED / "datasets" / "clive" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"CLIVE labels not found at {labels}")
    from edge_iqa.bench.dataset import load_eval_set
    from edge_iqa.bench.suite import DatasetSpec

    evalset = load_eval_set(DatasetSpec(labels=labels))
    assert not {p.name for p in evalset.paths} & shipped
    with open(labels, newline="") as fh:
        assert len(evalset.paths) == sum(1 for _ in csv.DictReader(fh)) - len(shipped)


def test_profile_keys_are_validated(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('inherits = "cpu"\n[quantization]\nsensitivity_images = 2\n')
    with pytest.raises(TargetError, match="sensitivity_images"):
        load_target(bad)
    assert load_target(tiny_profile(tmp_path, "cpu", 0.01, max_kept_blocks=3)).quantization.max_kept_blocks == 3


# --- end to end (ONNX Runtime: the fastest backend) ----------------------------------------------------
def test_too_tight_budget_fails_and_writes_nothing(tmp_path, cached_graph) -> None:
    profile = tiny_profile(tmp_path, "onnxruntime", 1.0, max_score_error=1e-6, max_kept_blocks=0)
    out = tmp_path / "bundle"
    with pytest.raises(AccuracyBudgetError, match="max [|]dscore[|].*no bundle was written"):
        pipeline.export_bundle(MODEL, profile, model=dev_model(), out=out, quiet=True)
    assert not out.exists()
    assert not list(tmp_path.glob(".bundle*"))  # no staging left behind either


def test_unresolvable_budget_is_refused_before_the_search(tmp_path, cached_graph, monkeypatch) -> None:
    def no_search(*args, **kwargs):
        raise AssertionError("the search ran")

    monkeypatch.setattr(accuracy_control, "restore", no_search)
    out = tmp_path / "bundle"
    with pytest.raises(AccuracyBudgetError, match=r"below what the 16 validation photos can resolve.*"
                                                   r"standard error of delta SROCC"):
        pipeline.export_bundle(MODEL, tiny_profile(tmp_path, "onnxruntime", 1.0), model=dev_model(), out=out,
                               quiet=True, allow_over_budget=True, accuracy_budget=1e-5)
    assert not out.exists()
    # The same budget as the target profile's default is not refused: it is judged at the photos'
    # resolution instead (said, recorded). This dev build drifts by |delta SROCC| 0.068: with a
    # resolution above that it passes without a search, with one below it the search still runs.
    monkeypatch.setattr(pipeline, "srocc_resolution", lambda *a, **k: 0.1)
    out = pipeline.export_bundle(MODEL, tiny_profile(tmp_path, "onnxruntime", 1e-5), model=dev_model(), out=out,
                                 quiet=True, allow_over_budget=True)
    manifest = json.loads((out / "manifest.json").read_text())
    control, full = manifest["accuracy_control"], manifest["accuracy_control"]["full_int8"]
    assert control["profile_budget"] == 1e-5 and control["budget_raised_to_resolution"] == 0.1
    assert control["budget"] == manifest["accuracy"]["budget"] == 0.1 and 0.01 < abs(full["delta_srocc"]) <= 0.1
    assert not control["needed"] and control["within_budget"] and control["kept_blocks"] == []
    monkeypatch.setattr(pipeline, "srocc_resolution", lambda *a, **k: 0.01)
    with pytest.raises(AssertionError, match="the search ran"):
        pipeline.export_bundle(MODEL, tiny_profile(tmp_path, "onnxruntime", 1e-5), model=dev_model(),
                               out=tmp_path / "again", quiet=True, allow_over_budget=True)


def test_over_budget_bundle_records_the_search(tmp_path, cached_graph, monkeypatch) -> None:
    first_blocks_only(monkeypatch, 4)
    # The post-training build's search (the fine-tuned graph's: tests/test_qat_graph.py).
    profile = tiny_profile(tmp_path, "onnxruntime", 1.0, max_score_error=1e-6, max_kept_blocks=2)
    out = pipeline.export_bundle(MODEL, profile, model=dev_model(), out=tmp_path / "bundle", quiet=True,
                                 allow_over_budget=True, accuracy_budget=0.9, p99_score_error=2e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    control = manifest["accuracy_control"]
    assert control["budget"] == 0.9 and manifest["target"]["accuracy_budget"] == 0.9
    assert control["max_score_error"] == 1e-6 and control["p99_score_error"] == 2e-6
    assert manifest["accuracy"]["max_abs_dscore"] > 1e-6 and manifest["accuracy"]["p99_abs_dscore"] > 0
    assert control["sensitivity_subset"] == "worst photos of full INT8"
    assert control["over_budget"] and control["allowed_over_budget"] and not control["within_budget"]
    assert control["needed"] and control["validation_images"] == 16
    assert len(control["sensitivity"]) == control["blocks_searched"] == 4
    assert all({"block", "rank", "gain_rank_agreement", "delta_srocc"} <= set(s) for s in control["sensitivity"])
    assert len(control["kept_blocks"]) <= 2 and control["stopped_because"]
    assert control["speed_cost"]["full_int8_ms"] > 0 and len(control["speed_cost"]["per_block"]) == len(
        control["kept_blocks"])
    kept_nodes = manifest["quantization"]["kept_fp_by_accuracy_control"]
    assert len(kept_nodes) == control["kept_nodes"]
    record = manifest["calibration"]
    assert not set(record["validation_files"]) & set(record["calibration_files"])
    assert len(record["validation_files"]) >= control["validation_images"]
    assert manifest["accuracy"]["images"] == 16 and not manifest["accuracy"]["within_budget"]


def test_restore_is_skipped_within_budget(tmp_path, cached_graph) -> None:
    out = pipeline.export_bundle(MODEL, tiny_profile(tmp_path, "onnxruntime", 1.0), model=dev_model(),
                                 out=tmp_path / "bundle", quiet=True)
    control = json.loads((out / "manifest.json").read_text())["accuracy_control"]
    assert not control["needed"] and control["kept_blocks"] == [] and control["within_budget"]


def test_openvino_search_bypasses_fake_quantize_and_keeps_blocks(tmp_path, cached_graph, monkeypatch) -> None:
    """The same search on OpenVINO (trimmed to 3 blocks): candidates are the NNCF model with the
    block's FakeQuantize ops bypassed; the final IR keeps the chosen blocks in FP (NNCF ignored scope)."""
    pytest.importorskip("nncf")
    import openvino as ov

    from edge_iqa.export import quantize_openvino

    first_blocks_only(monkeypatch, 3)
    profile = tiny_profile(tmp_path, "cpu", 1.0, max_score_error=1e-6, max_kept_blocks=1)
    out = pipeline.export_bundle(MODEL, profile, model=dev_model(), out=tmp_path / "b", quiet=True,
                                 allow_over_budget=True)
    manifest = json.loads((out / "manifest.json").read_text())
    control = manifest["accuracy_control"]
    assert control["tool"] == "edge_iqa.export.accuracy_control" and "FakeQuantize" in control["candidates"]
    assert control["blocks_searched"] == 3 and len(control["sensitivity"]) == 3
    assert control["over_budget"] and len(control["kept_blocks"]) <= 1 and control["stopped_because"]
    kept = manifest["quantization"]["kept_fp_by_accuracy_control"]
    assert len(kept) == control["kept_nodes"]
    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(str(out / "model.xml")).get_ordered_ops()}

    def fed_by_fake_quantize(onnx_node: str) -> bool:
        return any(port.get_source_output().get_node().get_type_name() == "FakeQuantize"
                   for name, op in ops.items() if name == onnx_node or name.startswith(onnx_node + "/")
                   for port in op.inputs())

    assert not any(fed_by_fake_quantize(n) for n in kept)
    assert manifest["integer_kernels"]["integer_kernel_count"] > 0
    # The candidate: FakeQuantize bypassed in front of one block only, scores change.
    graph = exported(FORM).path
    rows = calibration.split(4, 0, 2).calibration
    spec = dev_model_spec()
    build = quantize_openvino.candidate_builder(
        graph, graph, load_target(profile), lambda: calibration.iter_calibration_feeds(rows, spec, ("image",)),
        tmp_path)
    nodes = block_nodes(onnx.load(str(graph)))["backbone.3"]
    full, stripped = build([], tmp_path / "c0"), build(nodes, tmp_path / "c1")
    two = calibration.prepare_images(rows, spec)
    a, b = (raw_scores(artifact_scorer(p, tmp_path / f"loaded-{p.parent.name}", "openvino", "int8"), two)
            for p in (full, stripped))
    assert np.isfinite(b).all() and not np.array_equal(a, b)
    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(str(stripped)).get_ordered_ops()}
    convs = [name for name, op in ops.items() if name.split("/")[0] in set(nodes)
             and op.get_type_name() == "Convolution"]
    assert convs and not any(fed_by_fake_quantize(name) for name in convs)
    assert any(op.get_type_name() == "FakeQuantize" for op in ops.values())  # the rest stays INT8
    # The bundle with that block given back is the candidate the search measured, bit for bit (an
    # NNCF rerun with the block in its ignored scope would recalibrate and score otherwise).
    (final := tmp_path / "final").mkdir()
    built = quantize_openvino.build(graph, final, "int8", load_target(profile),
                                    lambda: calibration.iter_calibration_feeds(rows, spec, ("image",)), tmp_path,
                                    exclude_nodes=nodes)
    assert built["quantization"]["kept_fp_by_accuracy_control"] == nodes
    shipped = raw_scores(artifact_scorer(final / "model.xml", tmp_path / "loaded-final", "openvino", "int8"), two)
    assert np.array_equal(shipped, b)


@pytest.mark.slow
@pytest.mark.parametrize("parent", ["jetson"])
def test_tensorrt_records_kept_blocks(tmp_path, parent, monkeypatch) -> None:
    """The modelopt Q/DQ search (jetson) on a per-photo budget nothing meets."""
    pytest.importorskip("modelopt")
    form = "matmul_softmax"
    profile = tiny_profile(tmp_path, parent, 1.0, max_score_error=1e-6, max_kept_blocks=2)
    profile.write_text(profile.read_text().replace(FORM, form))
    out = pipeline.export_bundle(MODEL, profile, model=dev_model(), out=tmp_path / "b", quiet=True,
                                 allow_over_budget=True)
    control = json.loads((out / "manifest.json").read_text())["accuracy_control"]
    assert control["needed"] and control["over_budget"] and control["speed_cost"]["final_ms"] > 0
    assert control["kept_blocks"] or control.get("steps") is not None
    assert control["validation_images"] >= accuracy_control.MIN_VALIDATION_IMAGES


def test_bench_report_shows_the_kept_blocks() -> None:
    from edge_iqa.bench.report import mixed_precision_table

    control = {"budget": 0.005, "full_int8": {"delta_srocc": -0.012}, "final": {"delta_srocc": -0.003},
               "within_budget": True, "kept_blocks": ["semantic"],
               "sensitivity": [{"block": "semantic", "gain_rank_agreement": 0.004}],
               "speed_cost": {"final_vs_full_int8": 1.08}}
    report = {"rows": [{"id": "cpu/int8", "accuracy_control": control}, {"id": "cpu/fp32"}]}
    header, rows = mixed_precision_table(report)
    assert len(rows) == 1 and rows[0][0] == "cpu/int8"
    assert "semantic (+0.004)" in rows[0][5] and rows[0][6] == "1.08x" and rows[0][4] == "yes"
    assert mixed_precision_table({"rows": [{"id": "cpu/fp32"}]}) is None


# --- the real model (slow: minutes) ---------------------------------------------------------------------
@pytest.mark.slow
def test_openvino_give_back_completes_on_the_default_model(tmp_path) -> None:
    """The issue's case on the embedded trained model, as a user runs it: ``edge-iqa export --target
    cpu`` with per-photo budgets full INT8 misses; the block search runs on OpenVINO, gives blocks
    back, lowers the worst photo's error, and the manifest records both budgets and the figures."""
    pytest.importorskip("nncf")
    from typer.testing import CliRunner

    from edge_iqa.cli import app

    out = tmp_path / "b"
    result = CliRunner().invoke(app, ["export", "--target", "cpu", "--max-score-error", "1", "--p99-score-error",
                                      "0.5", "--allow-over-budget", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    control = manifest["accuracy_control"]
    assert control["needed"] and control["kept_blocks"] and control["tool"] == "edge_iqa.export.accuracy_control"
    assert control["max_score_error"] == 1.0 and control["p99_score_error"] == 0.5
    assert manifest["target"]["max_score_error"] == 1.0 and manifest["target"]["p99_score_error"] == 0.5
    assert control["profile_budget"] == manifest["target"]["accuracy_budget"] == load_target("cpu").accuracy_budget
    assert control["budget"] == max(control["profile_budget"], control["budget_raised_to_resolution"] or 0)
    # The search lowers the worst budget ratio (here p99 / 0.5), not every figure (max may rise a little).
    budget = AccuracyBudget(control["budget"], 1.0, 0.5, score_scale=manifest["output_transform"]["scale"])
    assert budget.excess(control["final"]) < budget.excess(control["full_int8"])
    assert control["final"]["p99_abs_dscore"] < control["full_int8"]["p99_abs_dscore"]
    assert manifest["accuracy"]["max_abs_dscore"] == control["final"]["max_abs_dscore"]
    assert manifest["accuracy"]["p99_abs_dscore"] == control["final"]["p99_abs_dscore"]
    assert control["speed_cost"]["final_ms"] > 0 and manifest["integer_kernels"]["integer_kernel_count"] > 0


@pytest.mark.slow
def test_unresolvable_budget_on_the_default_model_is_refused(tmp_path) -> None:
    """``--accuracy-budget 0.00001`` (the issue's reproduction, which crashed inside NNCF) is refused
    with the resolution of the 128 validation photos, before any search."""
    pytest.importorskip("nncf")
    with pytest.raises(AccuracyBudgetError, match="below what the 128 validation photos can resolve"):
        pipeline.export_bundle(MODEL, "cpu", out=tmp_path / "b", quiet=True, accuracy_budget=0.00001)
    assert not (tmp_path / "b").exists()
