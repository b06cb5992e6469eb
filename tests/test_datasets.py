"""Label files (our CSV and pyiqa meta), their errors, seeded splits, and the torch dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_iqa.data.datasets import (
    IQAImageDataset,
    kfold_splits,
    mos_transform,
    normalise_mos,
    read_labels,
    train_val_split,
)
from edge_iqa.data.preprocess import PreprocessSpec
from edge_iqa.errors import DatasetError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIVE = SHARED / "datasets" / "clive"


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path


def test_csv_with_header_and_extra_columns(image_dir: Path) -> None:
    csv = image_dir / "labels.csv"
    csv.write_text("mos_std,image,mos,note\n" + "".join(f"1.0,imgs/{i}.png,{10 * i + 5},x\n" for i in range(4)))
    labels = read_labels(csv)
    assert len(labels) == 4
    assert labels.paths[2] == image_dir / "imgs" / "2.png"
    np.testing.assert_allclose(labels.mos, [5, 15, 25, 35])


@pytest.mark.parametrize("header", ["ref_name,mos_value\n", "name,score\n", ""])
def test_pyiqa_meta_path_first_mos_second(image_dir: Path, header: str) -> None:
    meta = image_dir / "meta.csv"
    meta.write_text(header + "".join(f"{i}.png,{i + 0.5},99\n" for i in range(4)))
    labels = read_labels(meta, image_root=image_dir / "imgs")
    np.testing.assert_allclose(labels.mos, [0.5, 1.5, 2.5, 3.5])
    assert labels.paths[0] == image_dir / "imgs" / "0.png"


def test_pyiqa_meta_whitespace_separated(image_dir: Path) -> None:
    meta = image_dir / "meta.txt"
    meta.write_text("".join(f"imgs/{i}.png  {i}\n" for i in range(4)))
    assert len(read_labels(meta)) == 4


def test_header_names_are_case_insensitive(image_dir: Path) -> None:
    csv = image_dir / "labels.csv"
    csv.write_text("Image,MOS\n" + "".join(f"imgs/{i}.png,{i}\n" for i in range(4)))
    assert len(read_labels(csv)) == 4


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        ("image,mos\n", "no rows"),
        ("image,quality\nimgs/0.png,3\n", r"lacks column\(s\) \['mos'\]"),
        ("image,mos\nimgs/0.png,3\nimgs/1.png,abc\nimgs/2.png,nan\n", r"2 MOS value\(s\).*line 3: 'abc'.*line 4"),
        ("image,mos\nimgs/0.png\nimgs/1.png,2\n", "fewer than 2 fields"),
        ("image,mos\nimgs/0.png,1\n", "at least 2"),
    ],
)
def test_malformed_files_raise_dataset_error(image_dir: Path, content: str, match: str) -> None:
    csv = image_dir / "bad.csv"
    csv.write_text(content)
    with pytest.raises(DatasetError, match=match):
        read_labels(csv)


def test_missing_images_are_listed(image_dir: Path) -> None:
    csv = image_dir / "labels.csv"
    rows = "".join(f"imgs/{i}.png,1\n" for i in range(4)) + "".join(f"gone/{i}.jpg,2\n" for i in range(7))
    csv.write_text("image,mos\n" + rows)
    with pytest.raises(DatasetError, match=r"7 of 11 images are missing .*gone/0.jpg.*\(\+2 more\)"):
        read_labels(csv)
    assert len(read_labels(csv, check_images=False)) == 11


def test_missing_label_file_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such label file"):
        read_labels(tmp_path / "nope.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DatasetError):
        read_labels(binary)


def test_train_val_split_is_seeded_disjoint_and_complete() -> None:
    train, val = train_val_split(930, 0.2, seed=3)
    assert len(val) == 186 and len(train) == 744
    assert not set(train) & set(val)
    assert sorted({*train, *val}) == list(range(930))
    again = train_val_split(930, 0.2, seed=3)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(val, train_val_split(930, 0.2, seed=4)[1])
    everything, none = train_val_split(10, 0.0, seed=0)
    assert len(everything) == 10 and len(none) == 0
    with pytest.raises(DatasetError):
        train_val_split(10, 1.0)


def test_kfold_is_seeded_disjoint_and_covers_everything() -> None:
    folds = kfold_splits(103, 5, seed=1)
    vals = [set(v.tolist()) for _, v in folds]
    assert sum(len(v) for v in vals) == 103
    assert set().union(*vals) == set(range(103))
    for (train, val), other in zip(folds, kfold_splits(103, 5, seed=1), strict=True):
        assert not set(train) & set(val)
        assert len(train) + len(val) == 103
        np.testing.assert_array_equal(val, other[1])
    with pytest.raises(DatasetError):
        kfold_splits(3, 5)


def test_mos_normalisation_round_trip() -> None:
    mos = np.array([3.0, 50.0, 92.0])
    transform = mos_transform(mos)
    norm = normalise_mos(mos, transform)
    np.testing.assert_allclose(norm, [0.0, 47 / 89, 1.0])
    np.testing.assert_allclose(norm * transform["scale"] + transform["offset"], mos)
    with pytest.raises(DatasetError):
        mos_transform(np.ones(4))


def test_torch_dataset_train_crops_and_eval_matches_spec(image_dir: Path) -> None:
    csv = image_dir / "labels.csv"
    csv.write_text("image,mos\n" + "".join(f"imgs/{i}.png,{i}\n" for i in range(4)))
    labels = read_labels(csv)
    spec = PreprocessSpec(input_size=(32, 32))
    train = IQAImageDataset(labels, spec, train=True, crop_size=(24, 16), seed=5)
    x, y = train[3]
    assert tuple(x.shape) == (3, 24, 16) and float(y) == pytest.approx(1.0)
    # Deterministic per (seed, epoch, index); a new epoch draws new crops.
    assert (train[3][0] == x).all()
    train.set_epoch(1)
    assert any(not (train[i][0] == IQAImageDataset(labels, spec, train=True, crop_size=(24, 16), seed=5)[i][0]).all()
               for i in range(4))
    # The crop is a window of the resized, normalised image: values stay in the spec's range.
    from edge_iqa.data.imageio import load_image

    full = spec.apply(load_image(labels.paths[3]))[0]
    assert x.min() >= full.min() - 1e-6 and x.max() <= full.max() + 1e-6
    evaluation = IQAImageDataset(labels, spec, train=False)
    np.testing.assert_array_equal(evaluation[3][0].numpy(), spec.apply(load_image(labels.paths[3])))


@pytest.mark.skipif(not (CLIVE / "labels.csv").is_file(), reason="../shared/datasets/clive is not present")
def test_real_clive_labels_load() -> None:
    labels = read_labels(CLIVE / "labels.csv")
    assert len(labels) == 930
    assert 0 < labels.mos.min() < labels.mos.max() < 100
