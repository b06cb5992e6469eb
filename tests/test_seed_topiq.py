"""TOPIQ-NR seed model: reference layout, golden outputs, pyiqa checkpoints, fixed-size export path."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge_iqa.errors import CheckpointError
from edge_iqa.models import create_model, get_model_info
from edge_iqa.models.layers.attention import MultiHeadAttention, attention_form
from edge_iqa.models.topiq import TOPIQNR, adaptive_pool_matrix, bicubic_matrix
from tests import golden

CASES = golden.golden_cases("topiq_nr")
CASE_IDS = [case["name"] for case in CASES]
CASE_224 = next(case for case in CASES if case["name"] == "224x224")
# 5 level self-attentions + 4 top-down cross-attentions + 1 attention pooling
NUM_ATTENTION_CALLS = 10
FREEZE_ATOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _deterministic_cpu() -> Any:
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    torch.set_num_threads(1)
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)


@pytest.fixture(scope="module")
def golden_model() -> TOPIQNR:
    """TOPIQ-NR with the fixture's deterministic weights, strictly loaded. Tests that freeze it
    unfreeze it again; nothing else mutates it."""
    return golden.golden_model("topiq_nr")


@pytest.fixture(scope="module")
def golden_runs(golden_model: TOPIQNR) -> dict[str, dict[str, Any]]:
    """One forward per golden case: the output and the probed submodules' outputs (seq-first)."""
    probes = {"semantic_model": golden_model.semantic_model, "sa_attn_blks.4": golden_model.sa_attn_blks[4],
              "attn_blks.3": golden_model.attn_blks[3], "attn_pool": golden_model.attn_pool,
              "score_linear": golden_model.score_linear}
    runs: dict[str, dict[str, Any]] = {}

    def record(captured: dict[str, list[torch.Tensor]], name: str, out: Any) -> None:
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        # our tokens are (B, L, C); the fixture's are pyiqa's sequence-first (L, B, C)
        captured.setdefault(name, [o.transpose(0, 1) if o.dim() == 3 else o for o in outs])

    for case in CASES:
        captured: dict[str, list[torch.Tensor]] = {}
        handles = [m.register_forward_hook(lambda _m, _i, out, n=n, c=captured: record(c, n, out))
                   for n, m in probes.items()]
        try:
            with torch.no_grad():
                output = golden_model(torch.from_numpy(golden.raw_input(case)))
        finally:
            for handle in handles:
                handle.remove()
        runs[case["name"]] = {"output": output, "intermediates": captured}
    return runs


def _max_diff_to_golden(y: torch.Tensor, case: dict[str, Any]) -> float:
    return float(np.abs(y.double().numpy().reshape(-1) - golden.golden_output(case)).max())


# --- layout, registry ---------------------------------------------------------------------------
def test_state_dict_layout_is_the_reference() -> None:
    golden.assert_same_state_dict_layout(create_model("topiq_nr"), "topiq_nr")


@pytest.mark.parametrize("name, size", [("topiq_nr", (384, 512)), ("topiq_nr_384", (384, 384)),
                                        ("topiq_nr_224", (224, 224))])
def test_registry_variants(name: str, size: tuple[int, int]) -> None:
    info = get_model_info(name)
    spec = info.preprocess
    assert info.family == "seed" and info.inputs == ("image",)
    assert spec.input_size == size and spec.crop == "center" and spec.num_crops == 1
    assert spec.normalize is False  # the model normalises inside forward
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert info.extra["fixed_size_hook"] == "freeze_input_size"


def test_preprocess_output_is_raw_unit_range() -> None:
    """The spec hands the model [0, 1] pixels: a mid-grey image stays 128/255, not ImageNet-normalised."""
    image = np.full((300, 500, 3), 128, dtype=np.uint8)
    batch = get_model_info("topiq_nr_224").preprocess.apply(image)
    assert batch.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(batch, 128 / 255, atol=1e-7)


# --- golden ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fed_tensor_matches_fixture(case: dict[str, Any]) -> None:
    expected = case["fed_tensor_summaries"][0]
    x = golden.raw_input(case).astype(np.float64)
    assert list(x.shape) == expected["shape"]
    assert x.sum() == pytest.approx(expected["sum"], rel=1e-9)
    np.testing.assert_allclose(x.reshape(-1)[:4], expected["first4"], rtol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_golden_output(golden_runs: dict[str, dict[str, Any]], case: dict[str, Any]) -> None:
    y = golden_runs[case["name"]]["output"]
    assert tuple(y.shape) == tuple(case["output"]["shape"])
    assert _max_diff_to_golden(y, case) <= golden.output_atol(case)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_golden_intermediates(golden_runs: dict[str, dict[str, Any]], case: dict[str, Any]) -> None:
    """Backbone levels, last level self-attention, last cross-attention, pooling, head: 1e-4 x RMS."""
    captured = golden_runs[case["name"]]["intermediates"]
    for name, summaries in case["intermediate_summaries"]["modules"].items():
        assert len(captured[name]) == len(summaries), name
        for tensor, ref in zip(captured[name], summaries, strict=True):
            t = tensor.double()
            assert list(t.shape) == ref["shape"], name
            rms = float(np.hypot(ref["mean"], ref["std"]))
            # the fixture's std is numpy's (population, ddof=0): it matters for the (2, 1) head output
            for got, want in ((t.mean(), ref["mean"]), (t.std(correction=0), ref["std"]),
                              (t.abs().max(), ref["absmax"])):
                assert abs(got.item() - want) <= 1e-4 * rms, name
            np.testing.assert_allclose(t.flatten()[:4].numpy(), ref["first4"], atol=1e-4 * rms, rtol=0)


def test_fixture_detects_head_perturbation() -> None:
    """The golden comparison can fail: the fixture's head perturbation moves the output past atol."""
    perturbation = CASE_224["perturbation"][0]
    assert perturbation["param"] == "score_linear.6.weight"
    state = golden.deterministic_state_dict("topiq_nr")
    state[perturbation["param"]][tuple(perturbation["index"])] += perturbation["delta"]
    model = create_model("topiq_nr")
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        y = model(torch.from_numpy(golden.raw_input(CASE_224)))
    np.testing.assert_allclose(y.numpy().reshape(-1), perturbation["output"], atol=golden.output_atol(CASE_224), rtol=0)
    assert _max_diff_to_golden(y, CASE_224) > golden.output_atol(CASE_224)


def test_every_attention_goes_through_the_shared_module(
    golden_model: TOPIQNR, monkeypatch: pytest.MonkeyPatch
) -> None:
    with golden.recorded_attention(monkeypatch) as calls, torch.no_grad():
        golden_model(torch.zeros(1, 3, 224, 224))
    assert Counter(calls) == {(1, 4, 49, 64): NUM_ATTENTION_CALLS}  # every level pooled to 7x7 tokens
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in golden_model.modules())
    # 16 modules: the 10 called + the 4 decoder self_attn kept only for checkpoint compatibility
    assert sum(isinstance(m, MultiHeadAttention) for m in golden_model.modules()) == NUM_ATTENTION_CALLS + 4


def test_matmul_softmax_form_matches_golden(golden_model: TOPIQNR) -> None:
    with attention_form("matmul_softmax"), torch.no_grad():
        y = golden_model(torch.from_numpy(golden.raw_input(CASE_224)))
    assert _max_diff_to_golden(y, CASE_224) <= golden.output_atol(CASE_224)


# --- checkpoints, training mode ---------------------------------------------------------------------
def test_pyiqa_checkpoint_format_loads(golden_model: TOPIQNR, tmp_path: Path) -> None:
    """pyiqa's cfanet_nr_*.pth layout: {'params': state_dict} saved from DataParallel ('module.')."""
    state = golden.deterministic_state_dict("topiq_nr")
    path = tmp_path / "cfanet_nr_deterministic.pth"
    torch.save({"params": {f"module.{k}": v for k, v in state.items()}}, path)
    model = create_model("topiq_nr", checkpoint=path)
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), golden_model(x))


def test_backbone_weights_initialise_the_resnet(tmp_path: Path) -> None:
    """backbone_weights=PATH takes an ImageNet ResNet-50 file (timm/torchvision names, fc ignored)."""
    import timm

    source = timm.create_model("resnet50", pretrained=False)
    path = tmp_path / "resnet50_imagenet.pth"
    torch.save(source.state_dict(), path)
    model = create_model("topiq_nr", backbone_weights=path)
    own = model.semantic_model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in source.state_dict().items() if not k.startswith("fc."))
    torch.save({"conv1.weight": source.conv1.weight.detach()}, path)
    with pytest.raises(CheckpointError, match="not an ImageNet ResNet-50"):
        create_model("topiq_nr", backbone_weights=path)


def test_training_keeps_backbone_batchnorm_frozen() -> None:
    """pyiqa's fix_bn: backbone BN stays in eval (running stats untouched) and its affine is frozen."""
    model = create_model("topiq_nr_224").train()
    bns = [m for m in model.semantic_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)
    assert not any(p.requires_grad for bn in bns for p in bn.parameters())
    before = bns[0].running_mean.clone()
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    assert torch.equal(bns[0].running_mean, before)
    assert model.h_emb.grad is not None and model.score_linear[6].weight.grad is not None
    assert model.attn_blks[0].layers[0].self_attn.in_proj_weight.grad is None  # never called


def test_any_input_size_gives_one_score_per_image(golden_model: TOPIQNR) -> None:
    with torch.no_grad():
        y = golden_model(torch.rand(3, 3, 70, 93))
    assert y.shape == (3, 1) and torch.isfinite(y).all()


# --- the fixed-size (export) path ----------------------------------------------------------------
@pytest.mark.parametrize("in_size, out_size", [(32, 7), (32, 12), (32, 16), (32, 49), (32, 32), (32, 1)])
def test_bicubic_matrix_is_torch_bicubic(in_size: int, out_size: int) -> None:
    grid = torch.randn(2, 5, in_size, in_size, generator=torch.Generator().manual_seed(out_size))
    expected = F.interpolate(grid, size=(out_size, out_size + 3), mode="bicubic", align_corners=False)
    matrix_h, matrix_w = bicubic_matrix(in_size, out_size), bicubic_matrix(in_size, out_size + 3)
    torch.testing.assert_close(matrix_h @ grid @ matrix_w.T, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("in_size, out_size", [(112, 7), (57, 8), (15, 8), (29, 8), (10, 10)])
def test_adaptive_pool_matrix_is_torch_adaptive_pool(in_size: int, out_size: int) -> None:
    x = torch.randn(2, 3, in_size, generator=torch.Generator().manual_seed(in_size))
    expected = F.adaptive_avg_pool1d(x, out_size)
    torch.testing.assert_close(x @ adaptive_pool_matrix(in_size, out_size).T, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(384, 384), (224, 224), (225, 250)], ids=["384", "224", "225x250-nonintegral"])
def test_frozen_input_size_matches_dynamic_path(golden_model: TOPIQNR, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        dynamic = golden_model(x)
        golden_model.freeze_input_size(*size)
        try:
            frozen = golden_model(x)
            levels = list(golden_model.frozen_levels)
        finally:
            golden_model.unfreeze_input_size()
    assert (dynamic - frozen).abs().max().item() <= FREEZE_ATOL
    integral = size[0] % 32 == 0 and size[1] % 32 == 0
    assert all(level.out_hw == levels[-1].out_hw for level in levels)
    if integral:  # strides 2..16 vs 32: fixed avg-pool kernels 16, 8, 4, 2; the last level untouched
        assert [level.pool_kernel for level in levels] == [(16, 16), (8, 8), (4, 4), (2, 2), None]
    else:
        assert [level.use_pool_matrices for level in levels] == [True] * 4 + [False]


def test_frozen_model_keeps_state_dict_and_rejects_other_sizes(golden_model: TOPIQNR) -> None:
    keys = list(golden_model.state_dict())
    golden_model.freeze_input_size(64, 64)
    try:
        assert list(golden_model.state_dict()) == keys
        with pytest.raises(ValueError, match="64x64"):
            golden_model(torch.zeros(1, 3, 96, 96))
    finally:
        golden_model.unfreeze_input_size()


def _export_and_run(model: TOPIQNR, x: torch.Tensor, form: str, path: Path) -> tuple[Counter, np.ndarray]:
    pytest.importorskip("onnxruntime")
    return golden.export_and_run(model, x, form, path)


@pytest.mark.parametrize("form, expected_attention_nodes", [
    ("sdpa", NUM_ATTENTION_CALLS),
    # ~20-40 s more of export on 2 shared cores; the sdpa case already covers the frozen path in CI
    pytest.param("matmul_softmax", 0, marks=pytest.mark.slow),
])
def test_onnx_export_at_fixed_size_matches_pytorch(
    golden_model: TOPIQNR, tmp_path: Path, form: str, expected_attention_nodes: int
) -> None:
    x = torch.from_numpy(golden.raw_input(CASE_224))
    golden_model.freeze_input_size(224, 224)
    try:
        ops, y = _export_and_run(golden_model, x, form, tmp_path / f"topiq_{form}.onnx")
        with attention_form(form), torch.no_grad():
            expected = golden_model(x).numpy()
    finally:
        golden_model.unfreeze_input_size()
    assert ops["Attention"] == expected_attention_nodes
    assert ops["Softmax"] == (0 if form == "sdpa" else NUM_ATTENTION_CALLS)
    assert ops["Resize"] == 0 and ops["AveragePool"] == 4  # no shape-dependent resize / adaptive pool
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)
    assert float(np.abs(y.astype(np.float64).reshape(-1) - golden.golden_output(CASE_224)).max()) <= 1e-4
