"""``--int8-noise``: the layers that get noise are the ones INT8 export quantizes, the noise has the
size of one 8-bit rounding step, it exists only inside the noisy pass, and a training run with it
records what it did (docs/training.md, "Training against INT8 noise")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from edge_iqa.export.graph_scopes import module_paths, nodes_matching
from edge_iqa.export.targets import load_target
from edge_iqa.train.int8_noise import (
    LEVELS,
    consistency_loss,
    noisy_inputs,
    propagated_stem_noise,
    quantized_layers,
    rounding_noise,
)
from tests.export_helpers import INPUT_SIZE, dev_model, exported
from tests.test_train import CLIVE, _config, needs_clive


def _layer_of_each_compute_node(graph: onnx.ModelProto) -> dict[str, str]:
    """{ONNX node: PyTorch layer} for Conv nodes (named by their weight: the exporter attributes a
    conv folded with its BatchNorm to the BatchNorm) and MatMul / Gemm nodes with a weight input."""
    weights = {init.name for init in graph.graph.initializer}
    layers = {}
    for node in graph.graph.node:
        if node.op_type == "Conv":
            layers[node.name] = node.input[1].removeprefix("model.").removesuffix(".weight")
        elif node.op_type in ("MatMul", "Gemm") and any(name in weights for name in node.input):
            layers[node.name] = module_paths(node)[-1]
    return layers


@pytest.mark.parametrize("target", ["cpu", "onnxruntime"])
def test_noisy_layers_are_the_layers_int8_export_quantizes(target: str) -> None:
    model, profile = dev_model(), load_target(target)
    noisy = set(quantized_layers(model, profile.keeps_fp))
    graph = onnx.load(str(exported("onnx_attention").path))
    kept = set(nodes_matching(graph, profile.quantization.keep_fp))
    quantized = {layer for node, layer in _layer_of_each_compute_node(graph).items() if node not in kept}
    assert noisy == quantized
    assert not any(name.startswith(("head", "backbone.0.", "backbone.1.")) for name in noisy)
    assert {"backbone.2.conv.0.0", "tokens_c1.proj.0", "semantic.attn.q", "pool.mlp.fc2"} <= noisy


def test_rounding_noise_is_one_step_of_an_8bit_grid_and_passes_gradients() -> None:
    torch.manual_seed(0)
    x = (torch.randn(4, 16, 32, 32) * 3).requires_grad_(True)
    y = rounding_noise(x)
    step = float(x.detach().max() - x.detach().min()) / LEVELS
    error = (y - x).detach()
    assert float(error.abs().max()) <= step / 2 + 1e-6
    assert float(error.std()) == pytest.approx(step / 12 ** 0.5, rel=0.03)  # uniform over one step
    assert abs(float(error.mean())) < step / 50
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # the step is a constant: the noise is additive
    relu = torch.rand(1000) * 6  # an unsigned tensor: the grid starts at 0
    assert float((rounding_noise(relu) - relu).abs().max()) <= float(relu.max()) / LEVELS / 2 + 1e-6


def test_noise_exists_only_inside_the_noisy_pass() -> None:
    model = dev_model().eval()
    layers = list(quantized_layers(model, load_target("cpu").keeps_fp).values())
    x = torch.randn(2, 3, *INPUT_SIZE)
    with torch.no_grad():
        clean = model(x)
        with noisy_inputs(layers):
            noisy = model(x)
        again = model(x)
        with pytest.raises(RuntimeError), noisy_inputs(layers):
            raise RuntimeError("a failing step")
        after_failure = model(x)
    assert torch.equal(clean, again) and torch.equal(clean, after_failure)
    assert not torch.equal(clean, noisy)
    assert float(consistency_loss(noisy, clean)) == pytest.approx(float((noisy - clean).abs().mean()))


def test_propagated_stem_noise_is_measured_per_channel() -> None:
    from edge_iqa.train.stem_cache import stem_of

    model = dev_model().eval()
    stem = stem_of(model)
    inside = {id(m) for m in stem.modules()}
    layers = [layer for layer in quantized_layers(model, load_target("cpu").keeps_fp).values() if id(layer) in inside]
    images = [torch.randn(1, 3, *INPUT_SIZE) for _ in range(2)]
    spread = propagated_stem_noise(stem, layers, images)
    channels = stem[-1].conv[-1].num_features
    assert spread.shape == (channels, 1, 1) and bool((spread > 0).all())
    assert torch.equal(propagated_stem_noise(stem, [], images), torch.zeros(channels, 1, 1))


def _first_clive_images(tmp_path: Path, count: int) -> Path:
    """A folder whose labels.csv lists the first ``count`` CLIVE images (header kept)."""
    folder = tmp_path / f"clive{count}"
    folder.mkdir()
    rows = (CLIVE / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(rows[: count + 1]) + "\n")
    return folder


@needs_clive
def test_training_with_int8_noise_records_it_and_changes_the_run(tmp_path: Path) -> None:
    from edge_iqa.train.command import train_command_line
    from edge_iqa.train.loop import TrainConfig, run

    folder = _first_clive_images(tmp_path, 24)
    cache = tmp_path / "cache"
    plain = _config(folder, tmp_path / "plain", cache, epochs=1, val_fraction=0.0, max_steps=2)
    noisy = dataclasses.replace(plain, out=str(tmp_path / "noisy"), int8_noise=10.0)
    plain_result, noisy_result = run(plain), run(noisy)
    record = json.loads((tmp_path / "noisy" / "metrics.json").read_text())["int8_noise"]
    assert record["weight"] == 10.0 and record["target"] == "cpu" and record["noisy_layers"] > 50
    assert record["keep_fp"] == list(load_target("cpu").quantization.keep_fp)
    assert 0 < record["stem_noise_std"]["min"] <= record["stem_noise_std"]["max"]
    assert plain_result["int8_noise"] is None
    # Same seed, same batches: only the consistency term differs, so the loss does.
    assert noisy_result["history"][0]["train_loss"] != plain_result["history"][0]["train_loss"]
    assert "--int8-noise 10.0" in train_command_line(TrainConfig(**noisy_result["config"]))


@needs_clive
def test_the_full_recipe_trains_with_int8_noise_on_every_quantized_layer(tmp_path: Path) -> None:
    from edge_iqa.train.loop import run

    folder = _first_clive_images(tmp_path, 8)
    config = _config(folder, tmp_path / "full", tmp_path / "cache", recipe="full", epochs=1, batch_size=4,
                     val_fraction=0.0, max_steps=1, int8_noise=3.0)
    result = run(config)
    assert result["recipe"] == "full" and result["history"][0]["step"] == 1
    assert np.isfinite(result["history"][0]["train_loss"])
    # The whole network runs every step, so no stem noise is drawn: every quantized layer gets its own.
    assert result["int8_noise"]["noisy_layers"] == 71 and "stem_noise_std" not in result["int8_noise"]


def test_a_negative_int8_noise_weight_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_iqa.cli import app

    outcome = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o"),
                                       "--int8-noise", "-1"])
    assert outcome.exit_code == 2 and "int8-noise" in outcome.output
    assert not (tmp_path / "o").exists()
