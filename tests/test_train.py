"""A short real training run on 40 CLIVE images: the loss falls, checkpoints score on the MOS scale,
runs are deterministic given the seed, and --resume continues exactly where a run stopped."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.data.datasets import read_labels, train_val_split
from edge_iqa.models.checkpoint import load_state_dict_file, read_config
from edge_iqa.train.losses import IQALoss, pairwise_rank_loss, plcc_loss

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIVE = SHARED / "datasets" / "clive"
MOBILENET = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
needs_clive = pytest.mark.skipif(
    not (CLIVE / "labels.csv").is_file() or not MOBILENET.is_file(),
    reason="../shared/datasets/clive or ../shared/weights/mobilenet_v2 is not present",
)


def test_losses_behave() -> None:
    target = torch.tensor([0.1, 0.4, 0.5, 0.9])
    assert float(plcc_loss(target * 3 + 1, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(plcc_loss(-target, target)) == pytest.approx(1.0, abs=1e-6)
    assert float(pairwise_rank_loss(target, target)) == 0.0
    assert float(pairwise_rank_loss(target.flip(0), target)) > 0.3
    assert float(pairwise_rank_loss(torch.ones(3), torch.ones(3))) == 0.0
    loss = IQALoss()
    assert float(loss(target, target)) == pytest.approx(0.0, abs=1e-6)
    pred = torch.tensor([0.5, 0.2, 0.7, 0.1], requires_grad=True)
    value = loss(pred, target)
    value.backward()
    assert value > 0 and pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def small_clive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clive40")
    rows = (CLIVE / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(rows[:41]) + "\n")
    return folder


def _config(data: Path, out: Path, cache: Path, **overrides: object):  # noqa: ANN202
    from edge_iqa.train.loop import TrainConfig

    base = TrainConfig(data=str(data / "labels.csv"), image_root=str(CLIVE), out=str(out), epochs=3,
                       batch_size=8, crop=128, lr=1e-3, warmup_epochs=0.5, val_fraction=0.2, threads=1,
                       cache_dir=str(cache), exact_eval=False, backbone_weights=str(MOBILENET), progress=False)
    return dataclasses.replace(base, **overrides)


@needs_clive
def test_short_training_lowers_loss_and_checkpoints_score_on_mos_scale(small_clive: Path, tmp_path: Path) -> None:
    from edge_iqa.predict import TorchScorer
    from edge_iqa.train.loop import run

    cache = small_clive / "cache"
    result = run(_config(small_clive, tmp_path / "a", cache))
    losses = [epoch["train_loss"] for epoch in result["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert {"srocc", "plcc", "krcc", "rmse"} <= set(result["history"][-1]["val"])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["split"] == {"train": 32, "val": 8, "split_seed": 0, "val_fraction": 0.2, "folds": 0, "fold": None}

    # The checkpoint maps [0, 1] back onto the training MOS range.
    labels = read_labels(small_clive / "labels.csv", CLIVE)
    train_idx, _ = train_val_split(len(labels), 0.2, 0)
    config = read_config(tmp_path / "a" / "last.safetensors")
    assert config["output_transform"]["offset"] == pytest.approx(labels.mos[train_idx].min())
    assert config["output_transform"]["scale"] == pytest.approx(np.ptp(labels.mos[train_idx]))
    assert config["metadata"]["recipe"] == "stem-cache" and config["metadata"]["epoch"] == 3
    scores = TorchScorer.from_checkpoint(tmp_path / "a" / "last.safetensors").score(labels.paths[:2])
    assert np.all((scores > -20) & (scores < 120))

    # The frozen stem is still ImageNet's: the exported network is the unchanged architecture.
    imagenet = load_state_dict_file(MOBILENET)
    trained = load_state_dict_file(tmp_path / "a" / "last.safetensors")
    assert torch.equal(trained["backbone.0.0.weight"], imagenet["features.0.0.weight"])
    assert torch.equal(trained["backbone.6.conv.0.1.running_var"], imagenet["features.6.conv.0.1.running_var"])
    # Default --freeze-through 13: blocks 7..13 run every step but stay frozen too, BN statistics included.
    assert torch.equal(trained["backbone.13.conv.2.weight"], imagenet["features.13.conv.2.weight"])
    assert torch.equal(trained["backbone.13.conv.3.running_mean"], imagenet["features.13.conv.3.running_mean"])
    assert not torch.equal(trained["backbone.17.conv.0.0.weight"], imagenet["features.17.conv.0.0.weight"])


@needs_clive
def test_seeded_runs_are_identical_and_resume_continues_exactly(small_clive: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_iqa.cli import app
    from edge_iqa.train.loop import run

    cache = small_clive / "cache"
    full = _config(small_clive, tmp_path / "full", cache, epochs=2, val_fraction=0.0)
    run(full)
    again = _config(small_clive, tmp_path / "again", cache, epochs=2, val_fraction=0.0)
    run(again)
    a = load_state_dict_file(tmp_path / "full" / "last.safetensors")
    b = load_state_dict_file(tmp_path / "again" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Stop after epoch 1, then resume through the CLI to epoch 2: same weights as the uninterrupted run.
    run(_config(small_clive, tmp_path / "resumed", cache, epochs=2, val_fraction=0.0, max_steps=5))
    args = ["train", "--data", str(small_clive / "labels.csv"), "--image-root", str(CLIVE), "--out",
            str(tmp_path / "resumed"), "--epochs", "2", "--batch-size", "8", "--crop", "128", "--lr", "1e-3",
            "--warmup-epochs", "0.5", "--val-fraction", "0", "--threads", "1", "--cache-dir", str(cache),
            "--no-exact-eval", "--backbone-weights", str(MOBILENET), "--resume"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "resumed" in outcome.output
    c = load_state_dict_file(tmp_path / "resumed" / "last.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


@needs_clive
def test_train_cli_reports_bad_data_cleanly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_iqa.cli import app

    bad = tmp_path / "labels.csv"
    bad.write_text("image,mos\nmissing.jpg,3\nalso_missing.jpg,4\n")
    outcome = CliRunner().invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "o")])
    assert outcome.exit_code == 2
    assert "2 of 2 images are missing" in outcome.output


@needs_clive
def test_kfold_runs_every_fold_and_summarises(small_clive: Path, tmp_path: Path) -> None:
    from edge_iqa.train.loop import run

    summary = run(_config(small_clive, tmp_path / "cv", small_clive / "cache", epochs=1, folds=2, max_steps=1))
    assert summary["runs"] == 2
    assert len(summary["last"]["srocc"]["values"]) == 2
    for k in (0, 1):
        split = json.loads((tmp_path / "cv" / f"fold{k}" / "metrics.json").read_text())["split"]
        assert split["fold"] == k and split["train"] + split["val"] == 40 and split["val"] == 20
    assert json.loads((tmp_path / "cv" / "summary.json").read_text()) == summary
