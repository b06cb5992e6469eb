"""Checkpoints: safetensors + JSON round trip, fp16, foreign .pth layouts, and refusal of pickles
that carry code (proved with a payload that would create a file if it ran)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from edge_iqa.errors import CheckpointError
from edge_iqa.models import create_model
from edge_iqa.models.checkpoint import load_state_dict_file, read_config, save_checkpoint
from edge_iqa.models.edge_hybrid import EDGE_HYBRID_PREPROCESS
from edge_iqa.predict import TorchScorer


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model("edge_hybrid_n")
    with torch.no_grad():  # make BN statistics non-trivial so a lost buffer would show
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1))


def test_safetensors_round_trip_gives_identical_outputs(tmp_path: Path, model: torch.nn.Module,
                                                        batch: torch.Tensor) -> None:
    path = save_checkpoint(model, tmp_path / "m", model_name="edge_hybrid_n", preprocess=EDGE_HYBRID_PREPROCESS,
                           output_transform={"scale": 89.0, "offset": 3.4}, metadata={"epochs": 3})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    config = read_config(path)
    assert config["model"] == "edge_hybrid_n" and config["output_transform"] == {"scale": 89.0, "offset": 3.4}
    assert config["metadata"] == {"epochs": 3}
    loaded = create_model("edge_hybrid_n", checkpoint=path)
    with torch.no_grad():
        assert torch.equal(model(batch), loaded(batch))
    scorer = TorchScorer.from_checkpoint(path)
    assert (scorer.scale, scorer.offset) == (89.0, 3.4)
    assert scorer.spec == EDGE_HYBRID_PREPROCESS


def test_fp16_checkpoint_is_half_size_and_close(tmp_path: Path, model: torch.nn.Module, batch: torch.Tensor) -> None:
    full = save_checkpoint(model, tmp_path / "f32", model_name="edge_hybrid_n", preprocess=EDGE_HYBRID_PREPROCESS)
    half = save_checkpoint(model, tmp_path / "f16", model_name="edge_hybrid_n", preprocess=EDGE_HYBRID_PREPROCESS,
                           dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert all(t.dtype == torch.float16 for t in load_state_dict_file(half).values() if t.is_floating_point())
    loaded = create_model("edge_hybrid_n", checkpoint=half)
    assert next(loaded.parameters()).dtype == torch.float32  # cast back on load
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch), atol=5e-3, rtol=5e-3)


def test_pth_with_params_wrapper_and_module_prefix(tmp_path: Path, model: torch.nn.Module,
                                                   batch: torch.Tensor) -> None:
    wrapped = {"params": {f"module.{k}": v for k, v in model.state_dict().items()}}
    path = tmp_path / "pyiqa_style.pth"
    torch.save(wrapped, path)
    loaded = create_model("edge_hybrid_n", checkpoint=path)
    with torch.no_grad():
        assert torch.equal(model(batch), loaded(batch))


def test_checkpoint_of_another_model_is_refused_readably(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match=r"missing .*1 unexpected \[fc.weight\]"):
        create_model("edge_hybrid_n", checkpoint=path)


class _Payload:
    """Unpickling this calls ``open(marker, 'w')``: a file appears iff the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_pickle_carrying_code_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"params": {"w": _Payload(marker)}}, fh, protocol=2)
    # Control: a plain unpickle *would* run the payload.
    control = tmp_path / "control.txt"
    with open(tmp_path / "control.pth", "wb") as fh:
        pickle.dump(_Payload(control), fh, protocol=2)
    with open(tmp_path / "control.pth", "rb") as fh:
        pickle.load(fh).close()  # noqa: S301 - the point of the control
    assert control.exists()

    with pytest.raises(CheckpointError, match="weights_only"):
        load_state_dict_file(path)
    with pytest.raises(CheckpointError):
        create_model("edge_hybrid_n", checkpoint=path)
    assert not marker.exists()


def test_truncated_and_missing_files(tmp_path: Path, model: torch.nn.Module) -> None:
    path = save_checkpoint(model, tmp_path / "m", model_name="edge_hybrid_n", preprocess=EDGE_HYBRID_PREPROCESS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict_file(path)
    with pytest.raises(CheckpointError, match="no such"):
        load_state_dict_file(tmp_path / "nope.safetensors")
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_config(path)


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIVE = SHARED / "datasets" / "clive"
BIQ2021 = Path(os.environ.get("EDGE_IQA_BIQ2021") or SHARED.parent / "data" / "biq2021")
# What install_default_weights puts beside weights trained on each dataset, and the name its README uses.
NOTICES = {"clive": ("LIVE_COPYRIGHT.txt", "CLIVE"), "biq2021": ("BIQ2021_NOTICE.txt", "BIQ2021")}
LOCAL_LABELS = {"clive": CLIVE / "labels.csv", "biq2021": BIQ2021 / "train.csv"}


def training_sets(metadata: dict) -> list[dict]:
    """``trained_on`` as install_default_weights writes it (one entry per dataset). The first embedded
    model (CLIVE only, before multi-dataset training) recorded a single dict: read it the same way."""
    trained_on = metadata["trained_on"]
    if isinstance(trained_on, list):
        return trained_on
    kind = "clive" if "CLIVE" in trained_on["dataset"] else "unknown"
    return [{"kind": kind, "labels_sha256": trained_on["labels_sha256"], "train_images": trained_on["images"],
             "val_images": 0}]


def test_packaged_default_weights_load_and_carry_their_config() -> None:
    """Whatever model is embedded: its config, its training datasets (known ones, each with its notice
    and README mention; label hashes and image counts equal to the local copy of the data where it
    exists), and it loads in eval mode."""
    from edge_iqa.models import get_model_info
    from edge_iqa.models.checkpoint import packaged_weights_path

    path = packaged_weights_path(get_model_info("edge_hybrid_n").default_weights)
    config = read_config(path)
    assert config["model"] == "edge_hybrid_n"
    assert config["preprocess"] == EDGE_HYBRID_PREPROCESS.to_dict()
    assert config["output_transform"]["scale"] > 50  # a MOS scale (CLIVE's or the 0..100 one), not the identity
    metadata = config["metadata"]
    assert metadata["command"].startswith("edge-iqa train ")
    sets = training_sets(metadata)
    assert sets and all(entry["kind"] in NOTICES for entry in sets)  # no data of unknown licence ships
    readme = (path.parent / "README.md").read_text()
    for entry in sets:
        notice, name = NOTICES[entry["kind"]]
        assert (path.parent / notice).is_file() and name in readme
        labels = LOCAL_LABELS[entry["kind"]]
        if labels.is_file():  # the recorded label file is the one we have, and every image of it was used
            from edge_iqa.checksums import sha256_file
            from edge_iqa.data.datasets import read_labels

            assert entry["labels_sha256"] == sha256_file(labels)
            assert entry["train_images"] + entry.get("val_images", 0) == len(read_labels(labels, check_images=False))
    model = create_model("edge_hybrid_n", pretrained=True)
    assert not model.training


@pytest.mark.skipif(not (CLIVE / "labels.csv").is_file(), reason="../shared/datasets/clive is not present")
def test_packaged_weights_are_trained_not_random() -> None:
    from edge_iqa.data.datasets import read_labels
    from edge_iqa.metrics import srocc

    labels = read_labels(CLIVE / "labels.csv").subset(range(24))
    scores = TorchScorer.from_name("edge_hybrid_n").score(labels.paths)
    # These are training images of the shipped model: this checks that the shipped file is the
    # trained model on the MOS scale, not its generalisation (docs/training.md has that).
    assert srocc(scores, labels.mos) > 0.7
    assert scores.min() > 0 and scores.max() < 100
