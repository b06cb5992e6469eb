"""The OpenVINO INT8 give-back (block sensitivity + the chosen candidate shipped, ``accuracy_control``)
completes on the seed models with their golden deterministic weights (issue 16).

A per-photo budget nothing meets (``max_score_error`` 1e-6: golden weights have no meaningful MOS,
so only the score error can drive the search) forces the whole search: every block's sensitivity,
give-back steps up to ``max_kept_blocks``, the final build (the full INT8 model with the kept blocks'
FakeQuantize ops bypassed), the staged bundle measured through ``runtime.load``. The bundle must then load and score
real photos, with the kept blocks' ops fed by no FakeQuantize.

``slow``: ResNet-50 / ViT-B / 2x Swin-T INT8 calibrations take minutes each on a CPU (the trimmed
TOPIQ-224 run, the search over its first 2 blocks, took 12 min on the shared 2-core machine at load
average ~12), too long for CI; CI covers the same OpenVINO search on the development model
(``test_accuracy_control.py::test_openvino_search_bypasses_fake_quantize_and_keeps_blocks``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.export import pipeline
from tests.export_helpers import first_blocks_only
from tests.test_seed_export import bundle_scores, golden_checkpoint, photos

pytest.importorskip("nncf")


def giveback_profile(tmp: Path) -> Path:
    """cpu with a budget nothing meets, few calibration/validation photos, one block kept at most."""
    path = tmp / "giveback-cpu.toml"
    path.write_text('inherits = "cpu"\nname = "giveback-cpu"\nprecision = "int8"\naccuracy_budget = 1.0\n'
                    "max_score_error = 1e-6\n[quantization]\ncalibration_samples = 4\nsensitivity_images = 4\n"
                    "qat_steps = 0\nmax_kept_blocks = 1\n[parity]\nimages = 4\naccuracy_images = 8\n")
    return path


def check_giveback(model_name: str, tmp: Path) -> dict:
    import openvino as ov

    torch.set_num_threads(2)
    checkpoint = golden_checkpoint(model_name, tmp)
    out = pipeline.export_bundle(model_name, giveback_profile(tmp), "int8", checkpoint, tmp / "b", quiet=True,
                                 allow_over_budget=True)
    manifest = json.loads((out / "manifest.json").read_text())
    control = manifest["accuracy_control"]
    assert control["tool"] == "edge_iqa.export.accuracy_control" and "FakeQuantize" in control["candidates"]
    assert control["needed"] and control["over_budget"] and control["stopped_because"]
    assert control["blocks_searched"] >= 1 and len(control["sensitivity"]) == control["blocks_searched"]
    assert 1 <= len(control["steps"]) <= 2 and len(control["kept_blocks"]) <= 1
    assert control["max_score_error"] == 1e-6 and manifest["accuracy"]["max_abs_dscore"] is not None
    assert manifest["integer_kernels"]["integer_kernel_count"] > 0
    kept = set(manifest["quantization"]["kept_fp_by_accuracy_control"])
    assert len(kept) == control["kept_nodes"]
    model = ov.Core().read_model(str(out / "model.xml"))
    for op in model.get_ordered_ops():
        if op.get_friendly_name().split("/")[0] in kept:
            assert not any(port.get_source_output().get_node().get_type_name() == "FakeQuantize"
                           for port in op.inputs()), op.get_friendly_name()
    assert np.isfinite(bundle_scores(out, photos())).all()
    return control


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole search on ViT-B (LoDa, 15 crops a photo) ran past the default 900 s
@pytest.mark.parametrize("model_name", ["topiq_nr_224", "glintiqa", "loda", "dgiqa"])
def test_openvino_giveback_completes_on_the_seed_model(model_name: str, tmp_path: Path) -> None:
    check_giveback(model_name, tmp_path)


@pytest.mark.slow
def test_openvino_giveback_completes_on_topiq_trimmed(tmp_path: Path, monkeypatch) -> None:
    """The quick variant: TOPIQ-224 (ResNet-50 + attention), the search over its first 2 blocks."""
    first_blocks_only(monkeypatch, 2)
    assert check_giveback("topiq_nr_224", tmp_path)["blocks_searched"] == 2
