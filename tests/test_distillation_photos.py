"""``--qat-images``: more photos for the quantization-aware fine-tuning (export/distillation_photos.py):
listed as ``edge-iqa collect`` lists inputs, checked before any work (images only, never one of the
export's held-out validation photos), recorded by content, and drawn from by the distillation."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.errors import CollectionError, ExportError, TargetError
from edge_iqa.export import calibration, pipeline, qat
from edge_iqa.export.distillation_photos import distillation_photos
from edge_iqa.export.targets import load_target
from tests.export_helpers import MODEL, dev_model, dev_spec

PROFILE = load_target("onnxruntime")
SPLIT = calibration.profile_split(PROFILE)
HELD_OUT = [calibration.image_file(row) for row in SPLIT.evaluation]


def _calibration_photos(folder: Path, count: int) -> list[Path]:
    """Copies of shipped calibration photos (never held out) under new names."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for i, row in enumerate(SPLIT.calibration[:count]):
        source = calibration.image_file(row)
        copies.append(Path(shutil.copy(source, folder / f"photo{i}{source.suffix}")))
    return copies


def test_photos_are_listed_and_recorded_by_content(tmp_path: Path) -> None:
    photos = _calibration_photos(tmp_path / "camera" / "day1", 3)
    (tmp_path / "camera" / "notes.txt").write_text("not an image extension: not listed\n")
    found = distillation_photos([str(tmp_path / "camera")], HELD_OUT)
    assert sorted(found.paths) == sorted(photos)
    assert found.record() == {"extra_photos": 3, "extra_photos_sha256": found.sha256}
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in reversed(photos)) + "\n")
    assert distillation_photos([str(listing)], HELD_OUT).sha256 == found.sha256  # contents, not order or names
    photos[0].write_bytes(calibration.image_file(SPLIT.calibration[5]).read_bytes())
    assert distillation_photos([str(listing)], HELD_OUT).sha256 != found.sha256


def test_a_file_that_is_not_an_image_is_refused_before_any_work(tmp_path: Path) -> None:
    _calibration_photos(tmp_path, 2)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ExportError, match=r"1 file\(s\) are not readable images \(.*broken\.jpg\)"):
        distillation_photos([str(tmp_path)], HELD_OUT)


def test_held_out_validation_photos_are_refused_whatever_their_name(tmp_path: Path) -> None:
    _calibration_photos(tmp_path, 2)
    shutil.copy(HELD_OUT[7], tmp_path / "renamed.jpg")
    with pytest.raises(ExportError, match="held-out validation photos .*must not be trained on"):
        distillation_photos([str(tmp_path)], HELD_OUT)


def test_inputs_that_name_no_photo_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="names no image files"):
        distillation_photos([str(tmp_path)], HELD_OUT)
    with pytest.raises(CollectionError, match="no such file, folder or glob"):
        distillation_photos([str(tmp_path / "missing")], HELD_OUT)


def test_exports_that_do_no_fine_tuning_refuse_the_option(tmp_path: Path) -> None:
    photos = [str(tmp_path)]
    _calibration_photos(tmp_path, 1)
    with pytest.raises(TargetError, match="--qat-images feeds the quantization-aware fine-tuning"):
        pipeline.export_bundle(MODEL, "onnxruntime", "fp32", model=dev_model(), out=tmp_path / "b", quiet=True,
                               qat_images=photos)
    with pytest.raises(TargetError, match="--qat-steps above 0"):
        pipeline.export_bundle(MODEL, "onnxruntime", "int8", model=dev_model(), out=tmp_path / "b", quiet=True,
                               qat_steps=0, qat_images=photos)
    assert not (tmp_path / "b").exists()


def test_the_distillation_draws_its_crops_from_both_sets_of_photos(tmp_path: Path, monkeypatch) -> None:
    """Each crop's photo is the seeded draw over the calibration photos followed by the extra photos;
    without extra photos the draws are exactly those of the fine-tuning before the option."""
    spec = dev_spec()
    extra = distillation_photos([str(p) for p in _calibration_photos(tmp_path, 4)], HELD_OUT)
    drawn: list[Path] = []
    real = qat._augmented_pixels

    def recorded(draw, path, spec, *args):
        drawn.append(path)
        return real(draw, path, spec, *args)

    monkeypatch.setattr(qat, "_augmented_pixels", recorded)
    weights: list[torch.nn.Parameter] = []

    def student(batch: torch.Tensor) -> torch.Tensor:
        return weights[-1] * batch.float().mean(dim=(1, 2, 3))

    def teacher(rows: torch.Tensor) -> torch.Tensor:
        return rows.mean(dim=(1, 2, 3))

    quant = PROFILE.quantization.__class__(**{**PROFILE.quantization.__dict__, "qat_steps": 5})
    photos = SPLIT.calibration
    base = [calibration.image_file(row) for row in photos]
    for given, pool in ((None, base), (extra, base + list(extra.paths))):
        drawn.clear()
        weights.append(torch.nn.Parameter(torch.zeros(())))  # _distil freezes what it trained
        losses = qat._distil(student, weights[-1:], teacher, spec, photos, quant, 1.0, pixel_input=True,
                             extra_photos=given)
        assert len(losses) == 5 and np.isfinite(losses).all()
        replay = random.Random(quant.seed)
        expected = []
        for _ in range(5 * qat.BATCH):  # a photo, then the crop's own draws (side, corner, mirror)
            expected.append(replay.choice(pool))
            real(replay, expected[-1], spec)
        assert drawn == expected
    assert set(drawn) & set(extra.paths)
