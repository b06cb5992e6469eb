"""``scripts/quantization_study.py --photos labels``: the tuning photos a recipe is chosen on (a seeded
draw of a labels CSV, photos to leave out, never a test split)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import quantization_study
    finally:
        sys.path.pop(0)
    return quantization_study


def _labels(folder: Path, name: str, count: int) -> Path:
    folder.mkdir(exist_ok=True)
    rows = ["image,mos"]
    for i in range(count):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"p{i}.jpg")
        rows.append(f"p{i}.jpg,{i / count:.3f}")
    (folder / name).write_text("\n".join(rows) + "\n")
    return folder / name


def test_a_seeded_draw_leaves_the_listed_photos_out(study, tmp_path: Path) -> None:
    csv = _labels(tmp_path / "set", "train.csv", 20)
    exclude = tmp_path / "drawn.txt"
    exclude.write_text("Images/p3.jpg\nImages/p4.jpg\n")
    paths, mos = study.labelled_set(csv, 10, seed=0, exclude=exclude)
    again, _ = study.labelled_set(csv, 10, seed=0, exclude=exclude)
    other, _ = study.labelled_set(csv, 10, seed=1, exclude=exclude)
    assert len(paths) == 10 and paths == again and paths != other
    assert not {"p3.jpg", "p4.jpg"} & {p.name for p in paths}
    np.testing.assert_allclose(mos, [int(p.stem[1:]) / 20 for p in paths], atol=1e-3)
    everything, _ = study.labelled_set(csv, 0, seed=0, exclude=None)
    assert len(everything) == 20


def test_a_test_split_is_refused(study, tmp_path: Path) -> None:
    csv = _labels(tmp_path / "set", "Test (Images and MOS).csv", 3)
    with pytest.raises(SystemExit, match="test split; tune on training photos only"):
        study.labelled_set(csv, 0, seed=0, exclude=None)
