"""BIQ2021's CSVs as published: read directly (header ``Image Name,MOS,,``, empty extra columns), the
case-mismatched row reported (never silently fixed), and ``scripts/prepare_biq2021.py`` turning a
clone into our ``image,mos`` layout. A fake clone of real photos (CLIVE images re-encoded as small
JPEGs) runs everywhere; the real clone (``EDGE_IQA_BIQ2021``, default ``../data/biq2021``) is
checked when present."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_iqa.data.biq2021 import prepare_biq2021
from edge_iqa.data.datasets import read_labels
from edge_iqa.data.imageio import load_image
from edge_iqa.errors import DatasetError

ROOT = Path(__file__).resolve().parents[1]
CLIVE = ROOT.parent / "shared" / "datasets" / "clive"
BIQ2021 = Path(os.environ.get("EDGE_IQA_BIQ2021", ROOT.parent / "data" / "biq2021"))
needs_clive = pytest.mark.skipif(not (CLIVE / "labels.csv").is_file(), reason="../shared/datasets/clive is not present")

# (name listed in the CSV, name of the file on disk, MOS): one row differs in case, as in BIQ2021.
TRAIN_ROWS = [("ss01 (1).jpg", "ss01 (1).jpg", 0.2874), ("ss02 (7).jpg", "ss02 (7).JPG", 0.4357),
              ("ss03 (2).jpg", "ss03 (2).jpg", 0.8471), ("ss01 (5).jpg", "ss01 (5).jpg", 0.0)]
TEST_ROWS = [("ss02 (3).jpg", "ss02 (3).jpg", 0.61), ("ss03 (9).jpg", "ss03 (9).jpg", 1.0)]


@pytest.fixture()
def fake_clone(tmp_path: Path) -> Path:
    """A folder laid out like a clone of github.com/nisarahmedrana/BIQ2021, with real (small) photos."""
    clone = tmp_path / "BIQ2021"
    (clone / "Images").mkdir(parents=True)
    photos = sorted((CLIVE / "images").iterdir())[:6]
    for photo, (_, on_disk, _) in zip(photos, TRAIN_ROWS + TEST_ROWS, strict=True):
        Image.open(photo).convert("RGB").resize((64, 64)).save(clone / "Images" / on_disk, quality=90)
    # As published: Train has two empty extra columns on every row, Test has none.
    with (clone / "Train (Images and MOS).csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Name", "MOS", "", ""])
        writer.writerows([listed, mos, "", ""] for listed, _, mos in TRAIN_ROWS)
    with (clone / "Test (Images and MOS).csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Name", "MOS"])
        writer.writerows([listed, mos] for listed, _, mos in TEST_ROWS)
    return clone


@needs_clive
def test_published_csv_reads_and_the_case_mismatch_is_an_error_naming_it(fake_clone: Path) -> None:
    train_csv = fake_clone / "Train (Images and MOS).csv"
    # Without the image check the published format parses: `Image Name` is the image column,
    # the empty columns are ignored, MOS stays on BIQ2021's 0..1 scale.
    labels = read_labels(train_csv, fake_clone / "Images", check_images=False)
    assert [item.path.name for item in labels.items] == [listed for listed, _, _ in TRAIN_ROWS]
    np.testing.assert_allclose(labels.mos, [mos for _, _, mos in TRAIN_ROWS])
    # With it, the row whose extension differs in case is reported, not silently fixed.
    mismatch = r"differ only in letter case.*ss02 \(7\)\.jpg -> .*ss02 \(7\)\.JPG.*prepare_biq2021"
    with pytest.raises(DatasetError, match=mismatch):
        read_labels(train_csv, fake_clone / "Images")
    test_labels = read_labels(fake_clone / "Test (Images and MOS).csv", fake_clone / "Images")
    assert len(test_labels) == 2


@needs_clive
def test_prepare_writes_our_format_and_reports_each_case_fix(fake_clone: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import prepare_biq2021 as script
    finally:
        sys.path.pop(0)
    out = tmp_path / "prepared"
    assert script.main([str(fake_clone), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "lists 'ss02 (7).jpg' but the file is 'ss02 (7).JPG'" in printed.err
    assert (out / "train.csv").read_text().splitlines()[0] == "image,mos"

    train = read_labels(out / "train.csv")  # images checked: every path exists
    assert [item.path.name for item in train.items] == [on_disk for _, on_disk, _ in TRAIN_ROWS]
    np.testing.assert_allclose(train.mos, [mos for _, _, mos in TRAIN_ROWS])
    assert load_image(train.items[1].path).shape == (64, 64, 3)
    assert len(read_labels(out / "test.csv")) == 2

    report = json.loads((out / "prepare_report.json").read_text())
    assert [Path(fix["listed"]).name for fix in report["train"]["case_fixes"]] == ["ss02 (7).jpg"]
    assert [Path(fix["on_disk"]).name for fix in report["train"]["case_fixes"]] == ["ss02 (7).JPG"]
    assert report["test"] == {"csv": str(out / "test.csv"), "images": 2, "case_fixes": []}


@needs_clive
def test_prepare_refuses_a_clone_with_a_missing_image_and_writes_nothing(fake_clone: Path, tmp_path: Path) -> None:
    (fake_clone / "Images" / "ss03 (2).jpg").unlink()
    out = tmp_path / "prepared"
    with pytest.raises(DatasetError, match=r"1 listed image\(s\) are not in .*ss03 \(2\)\.jpg.*re-clone"):
        prepare_biq2021(fake_clone, out)
    assert not (out / "train.csv").exists() and not (out / "prepare_report.json").exists()
    with pytest.raises(DatasetError, match="no Images/ folder.*git clone"):
        prepare_biq2021(tmp_path / "empty", out)


@pytest.mark.skipif(not (BIQ2021 / "Train (Images and MOS).csv").is_file(),
                    reason=f"BIQ2021 clone not found at {BIQ2021}: git clone https://github.com/nisarahmedrana/BIQ2021 "
                           "there, or set EDGE_IQA_BIQ2021 to the clone")
def test_the_real_biq2021_clone_prepares_with_exactly_one_case_fix(tmp_path: Path) -> None:
    train, test = prepare_biq2021(BIQ2021, tmp_path)
    assert (train.images, test.images) == (10000, 2000)
    assert [(m.listed.name, m.on_disk.name) for m in train.case_fixes] == [("ss02 (1014).jpg", "ss02 (1014).JPG")]
    assert test.case_fixes == ()
    labels = read_labels(train.csv)
    assert labels.mos.min() == 0.0 and labels.mos.max() == 1.0
    # Train and Test are disjoint sets of images.
    assert not set(labels.paths) & set(read_labels(test.csv).paths)
