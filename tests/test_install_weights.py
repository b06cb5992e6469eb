"""scripts/install_default_weights.py on a real (tiny) two-dataset run: CLIVE photos + a BIQ2021-style
clone prepared by scripts/prepare_biq2021.py. The installed fp16 weights score like the run's own
checkpoint, the json lists both datasets (label sha256, counts, MOS ranges, the 0-100 output scale),
the recorded command parses back through the CLI into the run's exact configuration, and both
datasets' notices sit beside the weights."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from edge_iqa.data.biq2021 import SPLIT_FILES, prepare_biq2021
from edge_iqa.data.datasets import read_labels
from tests.test_multi import _script
from tests.test_train import CLIVE, MOBILENET, needs_clive


@pytest.fixture(scope="module")
def tiny_two_dataset_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    from edge_iqa.train.loop import TrainConfig, run

    folder = tmp_path_factory.mktemp("install")
    clive = read_labels(CLIVE / "labels.csv")
    (folder / "clive").mkdir()
    clive_csv = folder / "clive" / "labels.csv"
    clive_csv.write_text("image,mos\n" + "".join(f"{item.path},{item.mos}\n" for item in clive.items[:12]))
    shutil.copyfile(CLIVE / "LIVE_COPYRIGHT.txt", folder / "clive" / "LIVE_COPYRIGHT.txt")
    clone = folder / "biq2021"
    (clone / "Images").mkdir(parents=True)
    rows = []
    for item in clive.items[12:24]:
        shutil.copyfile(item.path, clone / "Images" / item.path.name)
        rows.append([item.path.name, f"{item.mos / 100:.4f}", "", ""])
    for split, published in SPLIT_FILES.items():
        with (clone / published).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Image Name", "MOS", "", ""])
            writer.writerows(rows[:10] if split == "train" else rows[10:])
    biq_csv = prepare_biq2021(clone)[0].csv
    config = TrainConfig(data=[str(clive_csv), str(biq_csv)], out=str(folder / "run"), epochs=1, max_steps=2,
                         batch_size=4, crop=128, val_fraction=0.0, threads=1, cache_dir=str(folder / "cache"),
                         cache_views=1, exact_eval=False, backbone_weights=str(MOBILENET), progress=False)
    run(config)
    return folder / "run", [clive_csv, biq_csv]


@needs_clive
def test_installed_weights_carry_both_datasets_their_notices_and_a_replayable_command(
        tiny_two_dataset_run: tuple[Path, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from edge_iqa.cli import app
    from edge_iqa.models.checkpoint import read_config
    from edge_iqa.predict import TorchScorer
    from edge_iqa.train import loop

    run_dir, label_files = tiny_two_dataset_run
    target = tmp_path / "weights" / "edge_hybrid_n.safetensors"
    target.parent.mkdir()
    (target.parent / "README.md").write_text("# the previous model's README\n")
    _script("install_default_weights").main([str(run_dir), "--target", str(target)])

    with safe_open(str(target), "pt") as handle:
        dtypes = {str(handle.get_tensor(k).dtype) for k in handle.keys()}  # noqa: SIM118
    assert dtypes == {"torch.float16", "torch.int64"}  # floats in fp16; BN batch counters stay integers
    images = read_labels(label_files[1]).paths[:4]
    installed = TorchScorer.from_checkpoint(target).score(images)
    trained = TorchScorer.from_checkpoint(run_dir / "last.safetensors").score(images)
    np.testing.assert_allclose(installed, trained, atol=0.5)  # fp16 storage, 0-100 scale

    meta = read_config(target)["metadata"]
    assert [d["kind"] for d in meta["trained_on"]] == ["clive", "biq2021"]
    assert [d["labels_sha256"] for d in meta["trained_on"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in label_files]
    assert [d["train_images"] for d in meta["trained_on"]] == [12, 10]
    assert meta["trained_on"][1]["mos_range"][1] <= 1.0 and meta["output_scale"].startswith("0..100")
    assert "LIVE_COPYRIGHT.txt" in meta["licences"] and "BIQ2021_NOTICE.txt" in meta["licences"]
    assert (target.parent / "LIVE_COPYRIGHT.txt").read_bytes() == (CLIVE / "LIVE_COPYRIGHT.txt").read_bytes()
    notice = (target.parent / "BIQ2021_NOTICE.txt").read_text()
    assert "053010" in notice and "free for use and benchmarking" in notice

    # The README is written from the run: both datasets cited with their counts and label hashes, the
    # recorded command, the run's epochs/steps and init, both notices named; nothing of the old one left.
    readme = (target.parent / "README.md").read_text()
    assert "previous model" not in readme
    assert "Ghadiyaram" in readme and "BIQ2021" in readme and "053010" in readme
    assert "12 training images" in readme and "10 training images" in readme
    for entry in meta["trained_on"]:
        assert entry["labels_sha256"][:16] in readme
    assert meta["command"] in readme and f"({meta['steps']} steps)" in readme
    assert "`LIVE_COPYRIGHT.txt`" in readme and "`BIQ2021_NOTICE.txt`" in readme
    assert "no synthetic pre-training" in readme and "0..100" in readme

    # The recorded command, parsed by the real CLI, gives back the run's configuration.
    captured = []
    monkeypatch.setattr(loop, "run", lambda config, resume=False: captured.append(config))
    outcome = CliRunner().invoke(app, shlex.split(meta["command"])[1:])
    assert outcome.exit_code == 0, outcome.output
    replayed = dataclasses.asdict(captured[0])
    recorded = json.loads((run_dir / "metrics.json").read_text())["config"]
    assert {k: v for k, v in replayed.items() if k != "progress"} == \
        {k: v for k, v in recorded.items() if k != "progress"}


@needs_clive
def test_notices_of_data_no_longer_trained_on_are_removed(tiny_two_dataset_run: tuple[Path, list[Path]],
                                                          tmp_path: Path) -> None:
    """Weights trained on CLIVE only, installed over BIQ2021-trained ones: the BIQ2021 notice goes."""
    from edge_iqa.train.loop import TrainConfig, run

    clive_csv = tiny_two_dataset_run[1][0]
    folder = tmp_path / "clive_only"
    run(TrainConfig(data=str(clive_csv), out=str(folder), epochs=1, max_steps=1, batch_size=4, crop=128,
                    val_fraction=0.0, threads=1, cache_dir=str(tmp_path / "cache"), cache_views=1, exact_eval=False,
                    backbone_weights=str(MOBILENET), progress=False))
    target = tmp_path / "weights" / "edge_hybrid_n.safetensors"
    target.parent.mkdir()
    (target.parent / "BIQ2021_NOTICE.txt").write_text("left from earlier weights")
    _script("install_default_weights").main([str(folder), "--target", str(target)])
    assert not (target.parent / "BIQ2021_NOTICE.txt").exists()
    assert (target.parent / "LIVE_COPYRIGHT.txt").is_file()
    readme = (target.parent / "README.md").read_text()
    assert "Ghadiyaram" in readme and "053010" not in readme and "BIQ2021_NOTICE" not in readme


def test_unknown_dataset_is_recorded_as_such(tmp_path: Path) -> None:
    labels = tmp_path / "mine" / "labels.csv"
    labels.parent.mkdir()
    labels.write_text("image,mos\n")
    assert _script("install_default_weights").identify(labels).kind == "unknown"
