"""Activation equalization of MobileNetV2's linear bottlenecks (issue 16): which streams qualify,
that the rescaled network computes the same scores on real photos while its stream channels span
equal ranges, and that an INT8 export with it passes the FP32 parity gate and records what it did."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.errors import ExportError, TargetError
from edge_iqa.export import calibration, equalize
from edge_iqa.export.pipeline import export_bundle, load_model_for_export
from edge_iqa.export.targets import load_target
from edge_iqa.runtime import load
from tests.export_helpers import INPUT_SIZE, MODEL, dev_model

# torchvision MobileNetV2: blocks 1, 2, 4, 7, 11, 14, 17 start a stream (no residual), the others add to it.
DEFAULT_STREAMS = [(1,), (2, 3), (4, 5, 6), (7, 8, 9, 10), (11, 12, 13), (14, 15, 16), (17,)]


@pytest.fixture(scope="module")
def default_model() -> torch.nn.Module:
    model, _spec, _transform, _weights = load_model_for_export(MODEL)
    return model.eval()


@pytest.fixture(scope="module")
def photos(default_model) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, validation rows) of real shipped CLIVE photos at the model's input size."""
    spec = load_model_for_export(MODEL)[1]
    split = calibration.split(16, 0, 8, "mos_spread")
    return (spec.normalize_pixels(calibration.prepare_images(split.calibration, spec).rows()),
            spec.normalize_pixels(calibration.prepare_images(split.validation[:8], spec).rows()))


def test_streams_of_the_default_model_and_the_ones_left_alone(default_model) -> None:
    features, taps = default_model.equalizable_backbone()
    assert [s.producers for s in equalize.find_streams(features, taps)] == DEFAULT_STREAMS
    # Blocks 4-6 are read by the next block's expansion conv and by tokens_c1 (through its pool).
    stream = equalize.find_streams(features, taps)[2]
    assert stream.readers[-1] is default_model.tokens_c1.proj[0] and len(stream.readers) == 4
    # A tap read by something that cannot absorb a per-channel scale leaves its stream alone.
    unsafe = {**taps, 13: None}
    assert (11, 12, 13) not in [s.producers for s in equalize.find_streams(features, unsafe)]
    depthwise = {**taps, 6: features[7].conv[1][0]}  # a 3x3 depthwise conv
    assert (4, 5, 6) not in [s.producers for s in equalize.find_streams(features, depthwise)]


def test_equalized_copy_scores_the_same_with_even_channel_ranges(default_model, photos) -> None:
    cal, val = photos
    before = copy.deepcopy(default_model.state_dict())
    feeds = [{"image": cal[i:i + 4]} for i in range(0, len(cal), 4)]  # as the export's calibration feeds
    equalized, records = equalize.equalized_copy(default_model, feeds, 1.0)
    assert equalized is not default_model
    assert all(torch.equal(before[k], v) for k, v in default_model.state_dict().items())  # original untouched
    assert [tuple(r["blocks"]) for r in records] == DEFAULT_STREAMS
    # The stride-32 stream (trained by us) is the uneven one: its widest channel is several medians wide.
    # alpha 1 evens the channel peaks out up to the power-of-two rounding (each within sqrt(2) of the mean).
    assert records[5]["range_ratio_before"] > 3 and all(r["range_ratio_after"] <= 2 + 1e-3 for r in records)
    with torch.no_grad():
        original = default_model(torch.from_numpy(val)).numpy()
        rescaled = equalized(torch.from_numpy(val)).numpy()
        # Measured again on the rescaled copy: every stream channel now peaks at the same |value|.
        features, taps = equalized.equalizable_backbone()
        streams = equalize.find_streams(features, taps)
        peaks = equalize.channel_ranges(features, streams, [torch.from_numpy(cal)])
    # Power-of-two scales: the same scores bit for bit, not merely close.
    np.testing.assert_array_equal(rescaled, original)
    assert np.ptp(original) > 0.05  # real photos, different scores: the comparison means something
    for peak in peaks:
        assert float(peak.max() / peak.min()) <= 2 + 1e-3


def test_a_finer_scale_grid_evens_the_channels_out_further_at_float_rounding_cost(default_model, photos) -> None:
    cal, val = photos
    feeds = [{"image": cal[i:i + 4]} for i in range(0, len(cal), 4)]
    coarse, coarse_records = equalize.equalized_copy(default_model, feeds, 1.0)
    fine, records = equalize.equalized_copy(default_model, feeds, 1.0, steps_per_octave=8)
    assert {r["steps_per_octave"] for r in records} == {8} and {r["steps_per_octave"] for r in coarse_records} == {1}
    with torch.no_grad():
        original = default_model(torch.from_numpy(val)).numpy()
        rescaled = fine(torch.from_numpy(val)).numpy()
        peaks = {}
        for name, model in (("coarse", coarse), ("fine", fine)):
            features, taps = model.equalizable_backbone()
            peaks[name] = equalize.channel_ranges(features, equalize.find_streams(features, taps),
                                                  [torch.from_numpy(cal)])
    # Not bit for bit any more, but within float32 rounding of the scores.
    np.testing.assert_allclose(rescaled, original, rtol=0, atol=1e-5)
    # Each channel within 2^(1/16) of the others' peak (on the photos measured), every stream at least as
    # even as with powers of two and the block-1 stream (ratio about 1.4 with powers of two) clearly more.
    for fine_peak, coarse_peak in zip(peaks["fine"], peaks["coarse"], strict=True):
        assert float(fine_peak.max() / fine_peak.min()) <= 2 ** (1 / 8) + 1e-3
        assert float(fine_peak.max() / fine_peak.min()) <= float(coarse_peak.max() / coarse_peak.min()) + 1e-3
    assert float(peaks["coarse"][0].max() / peaks["coarse"][0].min()) > 1.2
    with pytest.raises(ExportError, match="steps_per_octave >= 1"):
        equalize.equalized_copy(default_model, feeds, 1.0, steps_per_octave=0)


def test_bad_alpha_and_models_without_a_declared_backbone(default_model, photos, tmp_path: Path) -> None:
    features, taps = default_model.equalizable_backbone()
    streams = equalize.find_streams(features, taps)
    with pytest.raises(ExportError, match=r"alpha must be in \(0, 1\]"):
        equalize.equalize_streams(copy.deepcopy(features), streams, [torch.ones(1)] * len(streams), 0.0)
    # A channel that was 0 on every calibration photo moves by at most 2^4, not by 1e8.
    model = copy.deepcopy(default_model)
    features, taps = model.equalizable_backbone()
    streams = equalize.find_streams(features, taps)
    peaks = [torch.ones(stream.readers[0].weight.shape[1]) for stream in streams]
    peaks[5][0] = 0.0
    gamma = features[14].conv[-1].weight.clone()
    equalize.equalize_streams(features, streams, peaks, 1.0)
    moved = (gamma / features[14].conv[-1].weight).detach()
    assert float(moved[0]) == 2.0 ** -equalize.MAX_LOG2_SCALE and float(moved.max()) <= 2.0 ** equalize.MAX_LOG2_SCALE
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    assert equalize.equalized_copy(plain, [{"image": photos[0]}], 1.0) == (plain, [])
    with pytest.raises(ExportError, match="no calibration batch"):
        equalize.equalized_copy(default_model, [], 1.0)
    path = tmp_path / "bad.toml"
    path.write_text('inherits = "cpu"\nname = "bad"\n[quantization]\nactivation_equalization = 1.5\n')
    with pytest.raises(TargetError, match="activation_equalization' is an alpha"):
        load_target(path)
    path.write_text('inherits = "cpu"\nname = "bad"\n[quantization]\nequalization_steps_per_octave = 0\n')
    with pytest.raises(TargetError, match="equalization_steps_per_octave' is the equalization scales' grid"):
        load_target(path)


def test_int8_export_with_equalization_passes_the_parity_gate_and_records_it(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    profile = tmp_path / "tiny.toml"
    profile.write_text(f'inherits = "onnxruntime"\nname = "tiny-eq"\ninput_size = [{INPUT_SIZE[0]}, {INPUT_SIZE[1]}]\n'
                       "[quantization]\ncalibration_samples = 8\nactivation_equalization = 0.5\nqat_steps = 4\n"
                       "[parity]\nimages = 8\naccuracy_images = 8\n")
    out = export_bundle(MODEL, load_target(profile), "int8", model=dev_model(), out=tmp_path / "bundle",
                        accuracy_gate=False, quiet=True)
    scorer = load(out)
    manifest = scorer.manifest
    assert [tuple(r["blocks"]) for r in manifest["calibration"]["equalized_streams"]] == DEFAULT_STREAMS
    assert manifest["target"]["quantization"]["activation_equalization"] == 0.5
    # The graph was exported from the rescaled copy; the gate compared it with the model as given.
    assert manifest["parity"]["onnx_fp32_vs_torch"]["max_abs_diff"] < 1e-3
    assert np.isfinite(scorer.score(calibration.image_file(calibration.read_manifest()[0]))).all()
