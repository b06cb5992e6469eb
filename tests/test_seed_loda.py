"""LoDa seed model: reference layout, golden outputs, shared attention, crop protocol, ONNX export."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_iqa.data.imageio import load_image
from edge_iqa.models import create_model, get_model_info
from edge_iqa.models.layers.attention import MultiHeadAttention, attention_form
from edge_iqa.models.loda import LoDa, load_reference_training_state
from tests import golden

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CASE = golden.golden_cases("loda")[0]
NUM_ATTENTION_CALLS = 24  # 12 ViT self-attentions + 12 learner cross-attentions


@pytest.fixture(scope="module")
def golden_model() -> LoDa:
    """LoDa with the fixture's deterministic weights, strictly loaded. Do not mutate in tests."""
    return golden.golden_model("loda")


@pytest.fixture(scope="module")
def golden_input() -> torch.Tensor:
    x = golden.normalise(golden.raw_input(CASE), golden.IMAGENET_MEAN, golden.IMAGENET_STD)
    return torch.from_numpy(x)


def _max_diff_to_golden(y: torch.Tensor) -> float:
    return float(np.abs(y.double().numpy().reshape(-1) - golden.golden_output(CASE)).max())


def test_fed_tensor_matches_fixture(golden_input: torch.Tensor) -> None:
    golden.assert_fed_tensor_matches(golden_input, CASE["fed_tensor_summaries"][0])


def test_registry_entry_and_crop_protocol() -> None:
    info = get_model_info("loda")
    spec = info.preprocess
    assert info.family == "seed" and info.inputs == ("image",)
    assert spec.input_size == (224, 224) and spec.resize == "none"
    assert spec.crop == "grid" and spec.num_crops == 15
    assert spec.normalize and spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    # The grid spans every position the reference's RandomCrop(224) can draw: corners included.
    boxes = spec.crop_boxes(384, 512)
    assert len(set(boxes)) == 15
    assert min(boxes) == (0, 0) and max(boxes) == (384 - 224, 512 - 224)


def test_state_dict_layout_is_the_reference() -> None:
    golden.assert_same_state_dict_layout(create_model("loda"), "loda")


def test_golden_output(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    with torch.no_grad():
        y = golden_model(golden_input)
    assert y.shape == tuple(CASE["output"]["shape"])
    assert _max_diff_to_golden(y) <= golden.output_atol(CASE)


def test_golden_intermediates(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    """ResNet stages, ViT blocks 0 and 11 and the final norm, within 1e-4 x RMS of the fixture."""
    captured: dict[str, list[torch.Tensor]] = {}

    def keep(name: str):  # noqa: ANN202 - a forward hook; it must return None to leave the output alone
        def hook(_module: torch.nn.Module, _inputs: object, out: torch.Tensor | list[torch.Tensor]) -> None:
            captured.setdefault(name, list(out) if isinstance(out, (list, tuple)) else [out])
        return hook

    modules = {"feature_model": golden_model.feature_model, "blocks.0": golden_model.blocks[0],
               "blocks.11": golden_model.blocks[11], "norm": golden_model.norm}
    handles = [m.register_forward_hook(keep(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            golden_model(golden_input)
    finally:
        for handle in handles:
            handle.remove()
    for name, summaries in CASE["intermediate_summaries"]["modules"].items():
        if name == "learner":
            continue
        assert len(captured[name]) == len(summaries), name
        for tensor, ref in zip(captured[name], summaries, strict=True):
            golden.assert_summary_matches(name, tensor, ref)


def test_float64_matches_reference_float64(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    """In float64 the rounding noise vanishes: a structural difference of any size would show (README §4)."""
    model64 = copy.deepcopy(golden_model).double()
    expected = np.asarray(CASE["nondeterminism"]["variants"]["fp64_t1"]["values"])
    with torch.no_grad():
        y = model64(golden_input.double()).numpy().reshape(-1)
    np.testing.assert_allclose(y, expected, atol=1e-9, rtol=0)


def test_fixture_detects_head_perturbation(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    """The golden comparison can fail: the fixture's head perturbation moves the output past atol."""
    perturbation = CASE["perturbation"][0]
    assert perturbation["param"] == "learner.head.weight"
    weight = golden_model.learner.head.weight
    index = tuple(perturbation["index"])
    original = weight[index].item()
    assert original == np.float32(perturbation["original"])
    try:
        with torch.no_grad():
            weight[index] += perturbation["delta"]
            y = golden_model(golden_input).double().numpy().reshape(-1)
    finally:
        with torch.no_grad():
            weight[index] = original  # exact restore: the fixture model is shared by the module
    np.testing.assert_allclose(y, perturbation["output"], atol=golden.output_atol(CASE) / 2, rtol=0)
    assert _max_diff_to_golden(torch.from_numpy(y)) > golden.output_atol(CASE)


def test_every_attention_goes_through_the_shared_module(
    golden_model: LoDa, golden_input: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    with golden.recorded_attention(monkeypatch) as calls, torch.no_grad():
        golden_model(golden_input[:1])
    shapes = Counter(calls)
    assert shapes == {(1, 12, 197, 64): 12, (1, 4, 196, 16): 12}
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in golden_model.modules())
    assert sum(isinstance(m, MultiHeadAttention) for m in golden_model.modules()) == NUM_ATTENTION_CALLS


def test_matmul_softmax_form_matches_golden(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    with attention_form("matmul_softmax"), torch.no_grad():
        y = golden_model(golden_input)
    assert _max_diff_to_golden(y) <= golden.output_atol(CASE)


def test_only_the_learner_trains(golden_model: LoDa, golden_input: torch.Tensor) -> None:
    # eval mode on purpose: train() would update the shared fixture's BatchNorm running statistics.
    model = golden_model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.learner.named_parameters(prefix="learner")}
    try:
        model(golden_input[:1]).sum().backward()
        assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for n, p in model.named_parameters()
                   if n in trainable)
    finally:
        model.zero_grad(set_to_none=True)


def test_rejects_other_input_sizes(golden_model: LoDa) -> None:
    with pytest.raises(ValueError, match="224x224"):
        golden_model(torch.zeros(1, 3, 256, 256))


def test_reference_checkpoint_format_round_trips(
    golden_model: LoDa, tmp_path: Path
) -> None:
    """A file in the authors' save format ({'learner', 'bn_buffer'}) restores the learner and BN stats."""
    bn_buffer = {k: v for k, v in golden_model.feature_model.state_dict().items()
                 if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}
    path = tmp_path / "loda_reference.pt"
    torch.save({"learner": golden_model.learner.state_dict(), "bn_buffer": bn_buffer}, path)
    fresh = create_model("loda")
    backbone = {k: v for k, v in golden_model.state_dict().items()
                if not k.startswith("learner.") and not k.startswith("feature_model.")}
    backbone.update({f"feature_model.{k}": v for k, v in golden_model.feature_model.state_dict().items()
                     if k not in bn_buffer})
    fresh.load_state_dict(backbone, strict=False)
    load_reference_training_state(fresh, path)
    restored, expected = fresh.state_dict(), golden_model.state_dict()
    assert restored.keys() == expected.keys()
    assert all(torch.equal(restored[k], expected[k]) for k in expected)


def test_imagenet_backbones_load_from_timm_checkpoints(tmp_path: Path) -> None:
    """timm's own vit_base_patch16_224 / resnet50 state dicts (classifier heads included) load as is."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    vit = timm.create_model("vit_base_patch16_224", pretrained=False).state_dict()
    cnn = timm.create_model("resnet50", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in vit.items()}, str(tmp_path / "vit.safetensors"))
    torch.save(cnn, tmp_path / "resnet50.pth")
    model = LoDa(vit_weights=tmp_path / "vit.safetensors", cnn_weights=tmp_path / "resnet50.pth")
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in vit.items() if not k.startswith("head."))
    assert all(torch.equal(own[f"feature_model.{k}"], v) for k, v in cnn.items() if not k.startswith("fc."))
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("learner."))


def test_crops_of_a_real_photo(golden_model: LoDa) -> None:
    """The registered 15-crop protocol on a CLIVE photo: native pixels, crops where the grid says."""
    labels = SHARED / "datasets" / "clive" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"CLIVE not found at {labels.parent} (the shared data folder beside the checkout)")
    first_image = labels.read_text().splitlines()[1].split(",")[0]
    image = load_image(labels.parent / first_image)
    spec = get_model_info("loda").preprocess
    batch = spec.apply(image)
    assert batch.shape == (15, 3, 224, 224) and batch.dtype == np.float32
    (r, c) = spec.crop_boxes(*image.shape[:2])[-1]
    last = (image[r:r + 224, c:c + 224].astype(np.float32) / 255 - np.float32(spec.mean)) / np.float32(spec.std)
    np.testing.assert_allclose(batch[-1], last.transpose(2, 0, 1), atol=1e-6)
    with torch.no_grad():
        scores = golden_model(torch.from_numpy(batch[:3]))
    assert scores.shape == (3, 1) and torch.isfinite(scores).all() and scores.abs().max() <= 1


def _export_and_run(model: LoDa, x: torch.Tensor, form: str, path: Path) -> tuple[Counter, np.ndarray]:
    pytest.importorskip("onnxruntime")
    return golden.export_and_run(model, x, form, path)


@pytest.mark.slow  # ~15 s of export per form on 2 cores, plus ~470 MB of ONNX written to tmp
@pytest.mark.parametrize("form, expected_attention_nodes", [("sdpa", NUM_ATTENTION_CALLS), ("matmul_softmax", 0)])
def test_onnx_export_matches_pytorch(
    golden_model: LoDa, golden_input: torch.Tensor, tmp_path: Path, form: str, expected_attention_nodes: int
) -> None:
    ops, y = _export_and_run(golden_model, golden_input, form, tmp_path / f"loda_{form}.onnx")
    assert ops["Attention"] == expected_attention_nodes
    assert ops["Softmax"] == (0 if form == "sdpa" else NUM_ATTENTION_CALLS)
    with attention_form(form), torch.no_grad():
        expected = golden_model(golden_input).numpy()
    # The scores are ~1e-2, so the absolute gate alone would be loose: check relative error too.
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-7)
