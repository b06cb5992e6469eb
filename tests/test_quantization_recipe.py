"""The INT8 recipe keys of a target profile that the quantization study compares (issue 16):
calibration photos spread over the MOS range, NNCF's model type and overflow fix. Each must reach
the quantizer (or the split) and be refused where the runtime has no such setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_iqa.errors import TargetError
from edge_iqa.export import calibration
from edge_iqa.export.targets import load_target
from tests.export_helpers import exported


def _profile(tmp_path: Path, parent: str, quantization: str) -> Path:
    path = tmp_path / f"{parent}-variant.toml"
    path.write_text(f'inherits = "{parent}"\nname = "{parent}-variant"\n[quantization]\n{quantization}')
    return path


def test_mos_spread_calibration_covers_the_whole_mos_range() -> None:
    shipped = sorted(row.mos for row in calibration.read_manifest())
    spread = calibration.split(128, 0, 128, "mos_spread")
    calib = sorted(row.mos for row in spread.calibration)
    assert len(calib) == 128 and len(spread.validation) == 128
    assert not {r.file for r in spread.calibration} & {r.file for r in spread.validation}
    # The worst and the best shipped photo calibrate, and every MOS decile holds ~1/10 of the photos.
    assert calib[0] == shipped[0] and calib[-1] == shipped[-1]
    deciles = np.quantile(shipped, np.linspace(0, 1, 11))
    counts, _ = np.histogram(calib, bins=deciles)
    assert counts.min() >= 11 and counts.max() <= 15, counts
    # Same seed, same split; the held-out photos keep the seeded permutation's order.
    again = calibration.split(128, 0, 128, "mos_spread")
    assert [r.file for r in again.validation] == [r.file for r in spread.validation]
    random_split = calibration.split(128, 0, 128)
    assert {r.file for r in random_split.calibration} != {r.file for r in spread.calibration}


def test_recipe_keys_are_parsed_and_refused_where_the_runtime_lacks_them(tmp_path) -> None:
    cpu = load_target(_profile(tmp_path, "cpu", 'model_type = "default"\noverflow_fix = "disable"\n'
                                               'calibration_selection = "mos_spread"\n')).quantization
    assert (cpu.model_type, cpu.overflow_fix, cpu.calibration_selection) == ("default", "disable", "mos_spread")
    # The shipped recipe of issue 16's variants study: block 1 kept in float, photos spread over MOS.
    for target in ("cpu", "onnxruntime"):
        shipped = load_target(target).quantization
        assert shipped.calibration_selection == "mos_spread" and "backbone.1" in shipped.keep_fp, target
        # The equalized bottlenecks (tests/test_equalize.py), alpha chosen per runtime on the validation photos.
        assert shipped.activation_equalization == {"cpu": 0.5, "onnxruntime": 1.0}[target]
        # ONNX Runtime's equalization scales on 2^(k/8), chosen on the tuning photos; OpenVINO keeps powers of two.
        assert shipped.equalization_steps_per_octave == {"cpu": 1, "onnxruntime": 8}[target]
    cpu_shipped = load_target("cpu").quantization
    assert (cpu_shipped.model_type, cpu_shipped.overflow_fix) == ("auto", "first_layer")
    ort = load_target(_profile(tmp_path, "onnxruntime", 'calibration_selection = "mos_spread"\n'))
    assert ort.quantization.calibration_selection == "mos_spread"
    with pytest.raises(TargetError, match="overflow_fix are NNCF"):
        load_target(_profile(tmp_path, "onnxruntime", 'overflow_fix = "disable"\n'))
    with pytest.raises(TargetError, match="model_type.*choose one of auto, transformer, default"):
        load_target(_profile(tmp_path, "cpu", 'model_type = "cnn"\n'))
    with pytest.raises(TargetError, match="channel_alignment' must be bool"):
        load_target(_profile(tmp_path, "cpu", 'channel_alignment = "yes"\n'))
    with pytest.raises(TargetError, match="calibration_selection"):
        load_target(_profile(tmp_path, "cpu", 'calibration_selection = "best"\n'))


def test_nncf_gets_the_model_type_and_overflow_fix(tmp_path) -> None:
    pytest.importorskip("nncf")
    import nncf
    from nncf.quantization.advanced_parameters import OverflowFix

    from edge_iqa.export.quantize_openvino import _nncf_arguments

    graph = exported("onnx_attention").path  # has attention: "auto" means transformer
    kwargs, record = _nncf_arguments(graph, load_target("cpu"))
    assert kwargs["model_type"] == nncf.ModelType.TRANSFORMER and record["model_type"] == "transformer"
    assert kwargs["advanced_parameters"].overflow_fix == OverflowFix.FIRST_LAYER
    assert kwargs["advanced_parameters"].disable_channel_alignment and not record["channel_alignment"]
    variant = load_target(_profile(tmp_path, "cpu", 'model_type = "default"\noverflow_fix = "disable"\n'
                                                    "channel_alignment = true\n"))
    kwargs, record = _nncf_arguments(graph, variant)
    assert kwargs["model_type"] is None and record["model_type"] is None
    assert kwargs["advanced_parameters"].overflow_fix == OverflowFix.DISABLE and record["overflow_fix"] == "disable"
    assert not kwargs["advanced_parameters"].disable_channel_alignment and record["channel_alignment"]


def test_mean_minmax_leaves_the_range_estimator_to_nncf(tmp_path) -> None:
    """``method = "mean_minmax"`` passes no activation range estimator (NNCF's own choice: per-tensor ranges
    averaged over the calibration crops, per-channel ones the extremes); ``minmax`` passes MINMAX."""
    pytest.importorskip("nncf")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from edge_iqa.export.quantize_openvino import nncf_settings

    mean = load_target(_profile(tmp_path, "cpu", 'method = "mean_minmax"\n')).quantization
    kwargs, record = nncf_settings(mean, attention=True)
    assert kwargs["advanced_parameters"].activations_range_estimator_params is None
    assert record["method"] == "mean_minmax" and record["range_estimator"].startswith("NNCF default")
    plain = load_target(_profile(tmp_path, "cpu", 'method = "minmax"\n')).quantization
    kwargs, record = nncf_settings(plain, attention=True)
    assert kwargs["advanced_parameters"].activations_range_estimator_params == RangeEstimatorParametersSet.MINMAX
    assert record["range_estimator"] == "MINMAX"
