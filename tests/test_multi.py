"""Training on several MOS datasets at once: rank/PLCC terms never pair images of two studies,
every batch holds one dataset, each dataset keeps its own seeded split and MOS mapping, and a
short real run on two small datasets (CLIVE photos; the second on BIQ2021's 0..1 scale, in
BIQ2021's published CSV format) writes a checkpoint on the 0-100 scale that scores through the
scorer and maps back onto each dataset's MOS."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.data.datasets import read_labels, train_val_split
from edge_iqa.errors import DatasetError
from edge_iqa.train.losses import IQALoss
from edge_iqa.train.multi import (
    MODEL_SCALE,
    DatasetMapping,
    combine,
    count_batches,
    dataset_repeats,
    plan_batches,
    seeded_splits,
)
from tests.test_train import CLIVE, MOBILENET, needs_clive


def test_rank_and_plcc_terms_never_compare_two_datasets() -> None:
    # Within each dataset the prediction is the target shifted (perfect order, margins, linearity);
    # across the two datasets every pair is in the wrong order. Only cross-dataset pairs are wrong.
    target = torch.tensor([0.1, 0.3, 0.5, 0.6, 0.8, 1.0])
    pred = target + torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    loss = IQALoss(l1=0.0, mse=0.0, plcc=1.0, rank=1.0)
    assert float(loss(pred, target, groups)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(pred, target)) > 0.1  # the same batch taken as one study is penalised
    # Per-group terms still see within-dataset mistakes, and gradients flow.
    wrong = pred.clone().requires_grad_(True)
    value = loss(wrong * torch.tensor([1, 1, 1, -1, -1, -1.0]), target, groups)
    value.backward()
    assert float(value.detach()) > 0.3 and wrong.grad is not None and wrong.grad.abs().sum() > 0
    # A group of one image has no pair: it adds nothing to the rank/PLCC terms.
    single = IQALoss(l1=0.0, plcc=1.0, rank=1.0)(pred[:4], target[:4], groups[:4])
    assert float(single) == pytest.approx(0.0, abs=1e-6)


def test_batches_hold_one_dataset_and_cover_each_training_image_once() -> None:
    parts = [np.arange(0, 37), np.arange(100, 110), np.arange(200, 203)]
    rng = np.random.default_rng(0)
    batches = plan_batches(parts, 8, rng)
    assert len(batches) == count_batches([37, 10, 3], 8) == 5 + 2 + 1
    for batch in batches:
        assert len({int(i) // 100 for i in batch}) == 1 and len(batch) >= 2
    seen = np.sort(np.concatenate(batches))
    # 37 % 8 == 5 and 10 % 8 == 2 are kept; nothing is dropped here.
    assert np.array_equal(seen, np.concatenate(parts))
    again = plan_batches(parts, 8, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    # A last chunk of one image carries no pair and is dropped.
    assert sum(len(b) for b in plan_batches([np.arange(9)], 8, rng)) == 8 == 8 * count_batches([9], 8)


def test_mapping_round_trips_between_model_scale_and_dataset_mos() -> None:
    mapping = DatasetMapping(name="biq2021/train", data="x.csv", labels_sha256="0", images=10, train_images=9,
                             val_images=1, mos_scale=0.9, mos_offset=0.05, **{
                                 f"model_{k}": v for k, v in MODEL_SCALE.items()})
    mos = np.array([0.05, 0.5, 0.95])
    score = mapping.to_model_score(mos)
    np.testing.assert_allclose(score, [0.0, 50.0, 100.0])
    np.testing.assert_allclose(mapping.to_dataset_mos(score), mos)
    assert DatasetMapping(**mapping.to_dict()) == mapping


def _write_biq_style(folder: Path, rows: list[tuple[Path, float]]) -> Path:
    """A CSV in BIQ2021's published format (header `Image Name,MOS,,`), MOS on a 0..1 scale."""
    path = folder / "Train (Images and MOS).csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Name", "MOS", "", ""])
        writer.writerows([str(image), f"{mos:.4f}", "", ""] for image, mos in rows)
    return path


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 CLIVE photos as they are (absolute paths), and 24 other CLIVE photos re-labelled onto
    BIQ2021's 0..1 scale."""
    folder = tmp_path_factory.mktemp("multi")
    clive = read_labels(CLIVE / "labels.csv")
    (folder / "clive").mkdir()
    (folder / "clive" / "labels.csv").write_text(
        "image,mos\n" + "".join(f"{item.path},{item.mos}\n" for item in clive.items[:24]))
    (folder / "study2").mkdir()
    other = [(clive.items[i].path, clive.items[i].mos / 100.0) for i in range(24, 48)]
    return folder / "clive" / "labels.csv", _write_biq_style(folder / "study2", other)


@needs_clive
def test_each_dataset_keeps_its_own_seeded_split_and_scale(two_datasets: tuple[Path, Path]) -> None:
    files = [read_labels(two_datasets[0]), read_labels(two_datasets[1])]
    data = combine(files, seeded_splits(files, [0.25, 0.5], split_seed=3))
    assert data.output_transform == MODEL_SCALE
    for part, labels, fraction, offset in zip(data.parts, files, [0.25, 0.5], [0, 24], strict=True):
        train, val = train_val_split(len(labels), fraction, 3)  # as if the dataset were alone
        assert np.array_equal(part.train_idx, train + offset) and np.array_equal(part.val_idx, val + offset)
        assert data.targets[part.train_idx].min() == 0.0 and data.targets[part.train_idx].max() == 1.0
        assert set(data.group[offset : offset + len(labels)]) == {data.parts.index(part)}
        # Each dataset's mapping turns its own MOS into the normalised targets x 100.
        np.testing.assert_allclose(part.mapping.to_model_score(labels.mos), data.targets[offset:offset + 24] * 100,
                                   rtol=1e-5, atol=1e-4)
    assert [p.mapping.name for p in data.parts] == ["clive/labels", "study2/Train (Images and MOS)"]
    single = combine(files[:1], seeded_splits(files[:1], [0.25], 3))
    assert single.output_transform == {"scale": single.parts[0].mapping.mos_scale,
                                       "offset": single.parts[0].mapping.mos_offset}
    with pytest.raises(DatasetError, match="one for all or one per --data"):
        seeded_splits(files, [0.2, 0.2, 0.2], 0)


@needs_clive
def test_repeat_gives_a_dataset_several_shuffled_passes_per_epoch() -> None:
    parts = [np.arange(0, 37), np.arange(100, 110)]
    batches = plan_batches(parts, 8, np.random.default_rng(0), [1, 3])
    assert len(batches) == count_batches([37, 10], 8, [1, 3]) == 5 + 3 * 2
    small = np.concatenate([b for b in batches if int(b[0]) >= 100])
    # Every image of the repeated dataset is seen exactly 3 times, the other dataset's once.
    assert np.array_equal(np.unique(small, return_counts=True)[1], np.full(10, 3))
    assert np.array_equal(np.sort(np.concatenate([b for b in batches if int(b[0]) < 100])), parts[0])
    # The passes are shuffled independently (not one order three times), and repeat 1 is the old plan.
    passes = [b for b in batches if int(b[0]) >= 100]
    assert len({tuple(b) for b in passes}) > 2
    once = plan_batches(parts, 8, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(once, plan_batches(parts, 8, np.random.default_rng(0), [1, 1]),
                                                    strict=True))
    assert dataset_repeats(2, 3) == [2, 2, 2] and dataset_repeats([1, 4], 2) == [1, 4]
    with pytest.raises(DatasetError, match="3 --repeat values for 2 --data files"):
        dataset_repeats([1, 2, 3], 2)
    with pytest.raises(DatasetError, match="at least 1"):
        dataset_repeats([1, 0], 2)


def test_short_run_on_two_datasets_scores_0_to_100_and_keeps_batches_within_a_dataset(
        two_datasets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_iqa.models.checkpoint import read_config
    from edge_iqa.predict import TorchScorer
    from edge_iqa.train import loop

    seen_groups: list[set[int]] = []
    original = IQALoss.__call__

    def recording(self: IQALoss, pred: torch.Tensor, target: torch.Tensor, groups: torch.Tensor | None = None):  # noqa: ANN202
        seen_groups.append(set(groups.tolist()))
        return original(self, pred, target, groups)

    monkeypatch.setattr(IQALoss, "__call__", recording)
    config = loop.TrainConfig(
        data=[str(two_datasets[0]), str(two_datasets[1])], image_root=None, out=str(tmp_path / "run"), epochs=2,
        batch_size=6, crop=128, lr=1e-3, warmup_epochs=0.5, val_fraction=[0.25, 0.25], repeat=[1, 2], threads=1,
        cache_dir=str(tmp_path / "cache"), cache_views=1, exact_eval=True, backbone_weights=str(MOBILENET),
        progress=False)
    files = [read_labels(two_datasets[0]), read_labels(two_datasets[1])]
    result = loop.run(config)

    assert seen_groups and all(len(g) == 1 for g in seen_groups)  # every batch: one dataset
    assert {next(iter(g)) for g in seen_groups} == {0, 1}
    # --repeat 1 2: the second dataset gets two passes per epoch, so twice the first one's steps.
    assert len(seen_groups) == 2 * count_batches([18, 18], 6, [1, 2])
    steps_per_group = [sum(1 for g in seen_groups if g == {i}) for i in (0, 1)]
    assert steps_per_group == [2 * count_batches([18], 6), 2 * count_batches([18], 6, [2])]
    assert set(result["history"][-1]["val_datasets"]) == {"clive/labels", "study2/Train (Images and MOS)"}
    assert set(result["last_exact_datasets"]) == set(result["history"][-1]["val_datasets"])

    checkpoint = tmp_path / "run" / "last.safetensors"
    stored = read_config(checkpoint)
    assert stored["output_transform"] == MODEL_SCALE
    mappings = [DatasetMapping(**m) for m in stored["metadata"]["datasets"]]
    assert [m.images for m in mappings] == [24, 24] and mappings[1].mos_scale < 1.01
    scorer = TorchScorer.from_checkpoint(checkpoint)
    scores = scorer.score(files[1].paths[:3])
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    # The score read on the second study's scale is the model score mapped by its stored mapping.
    np.testing.assert_allclose(mappings[1].to_dataset_mos(scores),
                               (scores / 100.0) * mappings[1].mos_scale + mappings[1].mos_offset)
    # The exact deployment-path numbers are the mean of the per-dataset numbers.
    per = result["last_exact_datasets"].values()
    assert result["last_exact"]["srocc"] == pytest.approx(np.mean([m["srocc"] for m in per]), abs=1e-6)
    assert result["last_exact"]["n"] == 12 == sum(m["n"] for m in per)

    # scripts/compare_on_val.py re-derives the same val images: scored against itself, every paired
    # difference is exactly 0, and its numbers equal the run's own deployment-path evaluation.
    compare = _script("compare_on_val")
    assert compare.main([str(tmp_path / "run"), "--reference", str(checkpoint)]) == 0
    report = json.loads((tmp_path / "run" / "compare_on_val.json").read_text())
    assert set(report["datasets"]) == set(result["last_exact_datasets"])
    for name, row in report["datasets"].items():
        assert row["images"] == 6 and row["d_srocc"] == 0.0 and row["d_srocc_ci95"] == [0.0, 0.0]
        assert row["run"]["srocc"] == pytest.approx(result["last_exact_datasets"][name]["srocc"], abs=1e-5)


def _script(name: str):  # noqa: ANN202
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


@needs_clive
def test_folds_refuse_several_datasets(two_datasets: tuple[Path, Path], tmp_path: Path) -> None:
    from edge_iqa.train.loop import TrainConfig, run

    config = TrainConfig(data=[str(two_datasets[1]), str(two_datasets[1])], out=str(tmp_path / "o"), folds=2,
                         backbone_weights=str(MOBILENET), progress=False)
    with pytest.raises(DatasetError, match="--folds works with one --data"):
        run(config)


@needs_clive
def test_a_dataset_can_train_whole_while_another_is_validated(two_datasets: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """The CLIVE split protocol: BIQ2021 Train all in training (--val-fraction 0), CLIVE split 80/20."""
    from edge_iqa.train import loop

    config = loop.TrainConfig(
        data=[str(two_datasets[1]), str(two_datasets[0])], image_root=None, out=str(tmp_path / "run"), epochs=1,
        batch_size=6, crop=128, lr=1e-3, warmup_epochs=0.5, val_fraction=[0.0, 0.25], threads=1,
        cache_dir=str(tmp_path / "cache"), cache_views=1, exact_eval=True, backbone_weights=str(MOBILENET),
        progress=False)
    result = loop.run(config)
    assert result["split"]["train"] == 24 + 18 and result["split"]["val"] == 6
    assert set(result["last_exact_datasets"]) == {"clive/labels"} == set(result["history"][-1]["val_datasets"])
    assert result["last_exact_datasets"]["clive/labels"]["n"] == 6
