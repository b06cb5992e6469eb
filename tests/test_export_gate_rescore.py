"""The export gate measures the artifact that ships: after export, re-scoring the evaluation images
through ``runtime.load`` of the bundle (the TensorRT bundle through its ONNX Runtime Q/DQ proxy
bundle) gives exactly the drift recorded in its manifest, for every runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_iqa.export import calibration, pipeline
from edge_iqa.export.parity import compare, raw_scores, reference_scorer
from edge_iqa.export.staging import load_staged
from edge_iqa.export.targets import load_target
from edge_iqa.runtime.bundle import read_manifest
from tests.export_helpers import INPUT_SIZE, MODEL, dev_model, dev_spec, exported, fine_tuning_steps

TINY = "[quantization]\ncalibration_samples = 4\n[parity]\nimages = 4\naccuracy_images = 8\n"
CASES = [("onnxruntime", "onnx_attention", "int8", "onnxruntime"), ("cpu", "onnx_attention", "int8", "openvino"),
         ("jetson", "matmul_softmax", "int8", "modelopt")]


def _profile(tmp_path: Path, parent: str, form: str):
    path = tmp_path / f"tiny_{parent}.toml"
    tiny = TINY.replace("[quantization]\n", "[quantization]\n" + fine_tuning_steps(parent, 4))
    path.write_text(f'inherits = "{parent}"\nname = "tiny-{parent}"\nattention_form = "{form}"\n'
                    f"input_size = [{INPUT_SIZE[0]}, {INPUT_SIZE[1]}]\n{tiny}")
    return load_target(path)


@pytest.mark.parametrize(("parent", "form", "precision", "needs"), CASES, ids=[c[0] for c in CASES])
def test_recorded_drift_equals_a_fresh_runtime_load_rescore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            parent: str, form: str, precision: str,
                                                            needs: str) -> None:
    pytest.importorskip({"modelopt": "modelopt.onnx.quantization", "openvino": "nncf"}.get(needs, needs))
    graph, real_export = exported(form), pipeline.export_onnx

    def cached_export(model, path: Path, **kwargs):  # the shared trace of this attention form and opset
        if kwargs["opset"] != graph.opset:  # TensorRT 10.3 targets trace at their own opset
            return real_export(model, path, **kwargs)
        shutil.copyfile(graph.path, path)
        return graph.__class__(**{**graph.__dict__, "path": path})

    monkeypatch.setattr(pipeline, "export_onnx", cached_export)
    profile = _profile(tmp_path, parent, form)
    out = pipeline.export_bundle(MODEL, profile, precision, out=tmp_path / "bundle", model=dev_model(),
                                 accuracy_gate=False, quiet=True)
    manifest = read_manifest(out)
    recorded = manifest["accuracy"]

    # The same held-out images the export validated on, scored again from the finished bundle.
    rows = calibration.profile_split(profile).validation
    assert [row.original_name for row in rows] == manifest["calibration"]["validation_files"]
    stacks = calibration.prepare_images(rows, dev_spec())
    mos = np.array([row.mos for row in rows])
    reference = raw_scores(reference_scorer(dev_model(), dev_spec(), ("image",)), stacks)
    scorer = load_staged(out, proxy_dir=tmp_path / "proxy")
    assert scorer.manifest.runtime == ("onnxruntime" if parent == "jetson" else manifest.runtime)
    fresh = compare(raw_scores(scorer, stacks), reference, mos)
    assert recorded["images"] == len(rows) == 8  # [parity] accuracy_images, none a calibration image
    for key in ("max_abs_diff", "mean_abs_diff", "rank_agreement", "delta_srocc"):
        assert fresh[key] == recorded[key], key
    assert recorded["max_abs_diff"] > 0  # INT8 really moved the scores: the equality is not 0 == 0
