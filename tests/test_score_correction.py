"""The INT8 score correction: the least-squares fit, the multiply-add appended to OpenVINO and ONNX
Runtime artifacts (scores exactly as computed in float32, output name kept), and the export that
fits it on the calibration photos, records it and applies it to the search's candidates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_iqa.errors import ExportError
from edge_iqa.export import calibration, pipeline, quantize_openvino, quantize_ort, score_correction
from edge_iqa.export.parity import raw_scores, reference_scorer
from edge_iqa.export.staging import load_staged
from edge_iqa.export.targets import load_target
from tests.export_helpers import MODEL, artifact_scorer, dev_model, dev_spec, exported, first_blocks_only
from tests.test_accuracy_control import tiny_profile

FORM = "onnx_attention"


@pytest.fixture(scope="module")
def images():
    return calibration.prepare_images(calibration.split(4, 0, 3).evaluation, dev_spec())


def test_fit_recovers_the_line_and_lowers_the_error() -> None:
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.2, 0.8, 200)
    scores = (reference - 0.01) / 0.97 + rng.normal(0, 0.002, 200)  # stretched, shifted, noisy
    found = score_correction.fit(scores, reference)
    assert found.slope == pytest.approx(0.97, abs=0.01) and found.intercept == pytest.approx(0.01, abs=0.005)
    assert found.mean_abs_diff_after < found.mean_abs_diff_before / 3
    assert found.record()["photos"] == 200 and found.record()["applied"] and found.skipped is None


@pytest.mark.parametrize("scores, reason", [
    (np.full(10, 0.5), "every photo one score"),
    (np.linspace(0.8, 0.2, 10), "would reverse the ranking"),
])
def test_a_line_that_would_flatten_or_flip_the_ranking_is_not_applied(scores: np.ndarray, reason: str) -> None:
    found = score_correction.fit(scores, np.linspace(0.2, 0.8, len(scores)))
    assert (found.slope, found.intercept) == (1.0, 0.0) and reason in found.skipped
    assert not found.record()["applied"] and found.mean_abs_diff_after == found.mean_abs_diff_before


def test_fit_needs_three_photos_with_references() -> None:
    with pytest.raises(ExportError, match=">= 3 calibration photos"):
        score_correction.fit(np.array([0.1, 0.2]), np.array([0.1, 0.2]))
    with pytest.raises(ExportError, match="a reference score each"):
        score_correction.fit(np.linspace(0, 1, 5), np.linspace(0, 1, 4))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_appended_affine_is_exact_and_keeps_the_output_name(tmp_path: Path, images, runtime: str) -> None:
    graph = exported(FORM).path
    if runtime == "openvino":
        pytest.importorskip("openvino")
        quantize_openvino.build(graph, tmp_path, "fp32", load_target("cpu"), lambda: iter(()), tmp_path)
        artifact, backend = tmp_path / "model.xml", quantize_openvino
    else:
        artifact, backend = graph, quantize_ort
    before = raw_scores(artifact_scorer(artifact, tmp_path / "before", runtime), images)
    identity = tmp_path / "identity"
    artifact_scorer(artifact, identity, runtime).close()  # a copy of the artifact
    backend.append_score_affine(identity / artifact.name, 1.0, 0.0)
    assert np.array_equal(raw_scores(artifact_scorer(identity / artifact.name, tmp_path / "i2", runtime), images),
                          before)
    scaled = tmp_path / "scaled"
    artifact_scorer(artifact, scaled, runtime).close()
    backend.append_score_affine(scaled / artifact.name, 0.5, 0.25)
    after = raw_scores(artifact_scorer(scaled / artifact.name, tmp_path / "s2", runtime), images)
    np.testing.assert_allclose(after, 0.5 * before + 0.25, rtol=0, atol=1e-6)
    if runtime == "onnxruntime":
        assert [o.name for o in onnx.load(str(scaled / artifact.name)).graph.output] == ["score"]
    else:
        import openvino as ov

        assert "score" in ov.Core().read_model(str(scaled / artifact.name)).outputs[0].get_names()


def test_export_fits_on_calibration_photos_and_corrects_every_candidate(tmp_path: Path, monkeypatch) -> None:
    """ONNX Runtime INT8 with the correction on and a per-photo budget nothing meets, so the search
    runs (over 2 blocks): the candidates and the final bundle are corrected, the manifest records the
    final fit, and refitting the finished bundle on the same photos finds (almost) nothing left."""
    monkeypatch.setattr(pipeline, "export_onnx", lambda *a, **k: exported(FORM))
    first_blocks_only(monkeypatch, 2)
    fitted: list[Path] = []
    real_corrector = score_correction.corrector

    def watched(*args):
        correct = real_corrector(*args)

        def spy(artifact, template):
            fitted.append(artifact)
            return correct(artifact, template)
        return spy

    monkeypatch.setattr(score_correction, "corrector", watched)
    profile = tiny_profile(tmp_path, "onnxruntime", 1.0, max_score_error=1e-6, max_kept_blocks=1,
                           score_correction='"affine"')
    out = pipeline.export_bundle(MODEL, profile, model=dev_model(), out=tmp_path / "bundle", quiet=True,
                                 allow_over_budget=True)
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["calibration"]["score_correction"]
    assert record["photos"] == manifest["calibration"]["samples"] == 8 and record["applied"] and record["slope"] > 0
    # Least squares lowers the squared difference on the photos it was fitted on (checked below on the
    # bundle's own scores); the mean |difference| it records may move either way once the INT8 scores are
    # nearly unbiased (bias correction), so only that it stays about where it was.
    assert record["mean_abs_diff_after"] <= record["mean_abs_diff_before"] * 1.05
    # full INT8, one candidate per searched block, at least one give-back try, the final build
    assert len(fitted) >= 1 + 2 + 1 and any("candidates" in str(path) for path in fitted)
    assert manifest["target"]["quantization"]["score_correction"] == "affine"
    rows = calibration.profile_split(load_target(profile)).calibration
    assert [row.original_name for row in rows] == manifest["calibration"]["calibration_files"]
    photos = calibration.prepare_images(rows, dev_spec())
    reference = raw_scores(reference_scorer(dev_model(), dev_spec(), ("image",)), photos)
    corrected = raw_scores(load_staged(out), photos)
    as_built = (corrected - record["intercept"]) / record["slope"]
    assert np.mean((corrected - reference) ** 2) <= np.mean((as_built - reference) ** 2) * (1 + 1e-9)
    again = score_correction.fit(corrected, reference)
    assert again.slope == pytest.approx(1.0, abs=1e-4) and again.intercept == pytest.approx(0.0, abs=1e-4)
    nodes = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node][-2:]
    assert nodes == ["Mul", "Add"]
