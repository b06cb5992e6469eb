"""``edge-iqa train --init``: a run starts from a checkpoint's weights (40 CLIVE images, one step),
records which checkpoint it was, keys the stem cache by the stem it really uses, and refuses a
checkpoint that does not fit with an error that says what to pass instead."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from edge_iqa.models.checkpoint import load_state_dict_file
from tests.test_train import CLIVE, MOBILENET, needs_clive

pytestmark = needs_clive
FREEZE_THROUGH = 13  # the default: blocks 0..13 frozen, 14..17 + head trained


@pytest.fixture(scope="module")
def small_clive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clive40_init")
    rows = (CLIVE / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(rows[:41]) + "\n")
    return folder


def _config(data: Path, out: Path, **overrides: object):  # noqa: ANN202
    from edge_iqa.train.loop import TrainConfig

    base = TrainConfig(data=str(data / "labels.csv"), image_root=str(CLIVE), out=str(out), epochs=1,
                       batch_size=8, crop=128, lr=1e-4, warmup_epochs=0.5, val_fraction=0.0, threads=1,
                       cache_dir=str(data / "cache"), exact_eval=False, backbone_weights=str(MOBILENET),
                       max_steps=1, progress=False)
    return dataclasses.replace(base, **overrides)


def _imagenet_model() -> torch.nn.Module:
    """What a run without --init starts from (seed 0): ImageNet backbone, seeded random head."""
    from edge_iqa.models import create_model

    torch.manual_seed(0)
    return create_model("edge_hybrid_n", backbone_weights=str(MOBILENET))


def _trained(name: str) -> bool:
    return not name.startswith("backbone.") or int(name.split(".")[1]) > FREEZE_THROUGH


def _save(model: torch.nn.Module, path: Path) -> Path:
    from edge_iqa.models import get_model_info
    from edge_iqa.models.checkpoint import save_checkpoint

    spec = get_model_info("edge_hybrid_n").preprocess
    return save_checkpoint(model, path, model_name="edge_hybrid_n", preprocess=spec,
                           metadata={"recipe": "stem-cache", "epoch": 3})


@pytest.fixture(scope="module")
def perturbed_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageNet stem, every trained parameter moved by N(0, 0.1): far from any fresh start."""
    model = _imagenet_model()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if _trained(name):
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return _save(model, tmp_path_factory.mktemp("init") / "pretrained.safetensors")


def test_first_step_starts_from_the_init_weights(small_clive: Path, perturbed_init: Path, tmp_path: Path) -> None:
    from edge_iqa.train.loop import run

    config = _config(small_clive, tmp_path / "run", init=str(perturbed_init))
    result = run(config)
    start = load_state_dict_file(perturbed_init)
    after = load_state_dict_file(tmp_path / "run" / "last.safetensors")
    fresh = _imagenet_model()
    parameters = {name for name, _ in fresh.named_parameters()}
    fresh_state = fresh.state_dict()
    for name in parameters:
        if _trained(name):
            # One AdamW step moves a weight by at most about lr (its first step is lr x sign(grad)
            # plus a tiny decay), while the fresh start is ~0.1 away: the step began at the init.
            assert (after[name] - start[name]).abs().max() <= 2 * config.lr, name
            assert (after[name] - fresh_state[name]).abs().max() > 0.05, name
    # Frozen blocks (parameters and BN statistics) are exactly the init checkpoint's.
    for name, tensor in start.items():
        if not _trained(name):
            assert torch.equal(after[name], tensor), name

    sha = hashlib.sha256(perturbed_init.read_bytes()).hexdigest()
    assert result["init"]["sha256"] == sha and result["init"]["path"] == str(perturbed_init.resolve())
    assert result["init"]["frozen_equal_imagenet"] is True and result["init"]["frozen_blocks_differing"] == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["init"] == str(perturbed_init) and metrics["init"]["sha256"] == sha
    checkpoint_meta = json.loads((tmp_path / "run" / "last.json").read_text())["metadata"]
    assert checkpoint_meta["init"]["sha256"] == sha and checkpoint_meta["init"]["source_epoch"] == 3


def test_a_different_frozen_stem_gets_its_own_cache(small_clive: Path, tmp_path: Path) -> None:
    from edge_iqa.data.datasets import read_labels
    from edge_iqa.models import get_model_info
    from edge_iqa.train.loop import run
    from edge_iqa.train.stem_cache import _cache_key, stem_of

    model = _imagenet_model()
    labels = read_labels(small_clive / "labels.csv", CLIVE)
    spec = get_model_info("edge_hybrid_n").preprocess
    imagenet_key = _cache_key(labels, spec, stem_of(model))
    with torch.no_grad():
        model.backbone[0][0].weight.mul_(1.01)  # first conv of the cached stem
    other_key = _cache_key(labels, spec, stem_of(model))
    assert other_key != imagenet_key
    init = _save(model, tmp_path / "other_stem.safetensors")

    result = run(_config(small_clive, tmp_path / "run", init=str(init)))
    assert (small_clive / "cache" / f"stem-{other_key}.safetensors").is_file()
    assert result["init"]["frozen_equal_imagenet"] is False and result["init"]["frozen_blocks_differing"] == [0]
    # The stem stays frozen at the init's values, not reset to ImageNet's.
    after = load_state_dict_file(tmp_path / "run" / "last.safetensors")
    assert torch.equal(after["backbone.0.0.weight"], load_state_dict_file(init)["backbone.0.0.weight"])


def test_bad_init_checkpoints_exit_with_a_clear_error(small_clive: Path, perturbed_init: Path,
                                                      tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from typer.testing import CliRunner

    from edge_iqa.cli import app

    def train(init: Path) -> str:
        args = ["train", "--data", str(small_clive / "labels.csv"), "--image-root", str(CLIVE), "--out",
                str(tmp_path / "out"), "--threads", "1", "--backbone-weights", str(MOBILENET), "--max-steps", "1",
                "--cache-dir", str(small_clive / "cache"), "--init", str(init)]
        outcome = CliRunner().invoke(app, args)
        assert outcome.exit_code == 2, outcome.output
        assert not (tmp_path / "out" / "last.safetensors").exists()
        return outcome.output

    missing = tmp_path / "nope.safetensors"
    assert "no such checkpoint file" in train(missing) and str(missing) in train(missing)

    # A checkpoint whose config names another model.
    other = tmp_path / "other.safetensors"
    other.write_bytes(perturbed_init.read_bytes())
    config = json.loads(perturbed_init.with_suffix(".json").read_text())
    other.with_suffix(".json").write_text(json.dumps({**config, "model": "dgiqa"}))
    assert "a checkpoint of 'dgiqa'" in train(other) and "--model dgiqa" in train(other)

    # The right model name but weights that do not fit: strict loading names what is missing.
    state = load_state_dict_file(perturbed_init)
    del state["pool_query"]
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial))
    partial.with_suffix(".json").write_text(json.dumps(config))
    message = train(partial)
    assert "does not fit" in message and "1 missing [pool_query]" in message

    # Weights without their NAME.json config.
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(perturbed_init.read_bytes())
    assert "bare.json: missing" in train(bare)
